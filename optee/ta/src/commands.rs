//! The TA's commands, independent of OP-TEE's entry points: a session loads one model and runs
//! it. Every byte from the normal world goes through the engine's validating parser; a bad
//! command, size or model is an error code, never a panic.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use alloc::string::ToString;
use omg_enclave::PlatformError;
use omg_enclave::commands::Commands;
use omg_engine::Interpreter;
use zeroize::Zeroizing;

use crate::platform::OpteePlatform;

/// Command: load the model in parameter 0 (a memory reference to the `.tflite` bytes); returns
/// the byte sizes of all inputs and of all outputs in value parameter 1 (`a`, `b`).
pub const CMD_LOAD_MODEL: u32 = 0;
/// Command: run the loaded model on parameter 0 (all inputs, concatenated in order) and write
/// all outputs, concatenated, to parameter 1.
pub const CMD_INVOKE: u32 = 1;
/// Command: clear the state stateful operators keep across invocations.
pub const CMD_RESET: u32 = 2;
/// Command: fill the memory reference of parameter 0 (at most 64 bytes) from the TEE's random
/// number generator.
pub const CMD_RANDOM: u32 = 3;
/// Command: add value parameter 0's `b` to counter `a` (0 or 1) in RPMB secure storage; returns
/// the new value in `a` (high 32 bits) and `b` (low 32 bits).
pub const CMD_COUNTER: u32 = 4;
/// Command: write to the memory reference of parameter 1 the SHA-256 of the key OP-TEE derives
/// for this TA from the hardware-unique key and the label in parameter 0 (at most 64 bytes).
pub const CMD_KEY_FINGERPRINT: u32 = 5;
/// Command: attestation evidence for the nonce in parameter 0 (1 to 64 bytes), written to the
/// memory reference of parameter 1: the SHA-256 of the TA's memory and the attestation PTA's
/// signature of SHA-256("omg optee raw evidence v1" || nonce) || hash (never of the nonce
/// itself, so that it is no attestation token's binding).
pub const CMD_ATTEST: u32 = 6;
/// Command: check omg-enclave's `Platform` on OP-TEE (optee/ta/src/selftest.rs). Value
/// parameter 0: in `a` = phase (0: exercise every service; 1: read the check's counters back,
/// from another session); out `a` = the check's epoch, `b` = its inferences counted.
pub const CMD_PLATFORM_CHECK: u32 = 7;
/// Command: an attestation token (omg_protocol::optee) over the nonce in parameter 0 (32, 48 or
/// 64 bytes), written to the memory reference of parameter 1 (at most 4096 bytes), for an
/// enclave key hash the TA draws at random: a sample of the token for verifiers outside the
/// TA, which releases nothing to anyone.
pub const CMD_SAMPLE_TOKEN: u32 = 8;

/// Largest model a session accepts, in bytes.
pub const MAX_MODEL_BYTES: usize = 2 << 20;

/// Why a command failed; each maps to one GlobalPlatform error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Unknown command, wrong parameter size, or a model larger than [`MAX_MODEL_BYTES`].
    BadParameters,
    /// The model was refused by the engine's parser or validation.
    BadFormat,
    /// The model uses something the engine does not implement.
    NotSupported,
    /// A command out of order: invoking before loading, loading twice.
    BadState,
    /// The TA heap cannot hold the model.
    OutOfMemory,
    /// An operator failed at run time.
    Generic,
}

impl From<&omg_engine::Error> for Failure {
    fn from(e: &omg_engine::Error) -> Self {
        match e {
            omg_engine::Error::Format(_)
            | omg_engine::Error::Model(_)
            | omg_engine::Error::Operator { .. } => Failure::BadFormat,
            omg_engine::Error::Unsupported(_) => Failure::NotSupported,
            omg_engine::Error::Usage(_) => Failure::BadParameters,
            omg_engine::Error::OutOfMemory { .. } => Failure::OutOfMemory,
            _ => Failure::Generic,
        }
    }
}

/// The enclave's command layer (omg-enclave's protocol) on OP-TEE: the decrypted bundle lives
/// in a TA heap buffer that is zeroed when the operation ends.
pub type EnclaveCommands = Commands<OpteePlatform, Zeroizing<Vec<u8>>>;

/// How the enclave's memory is protected, as the `Ready` reply names it.
pub const ENCLAVE_MEMORY: &str = "OP-TEE TA heap (secure world)";

/// A zeroed buffer of `len` bytes in the TA's heap for a decrypted bundle.
fn protected(len: usize) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
    omg_engine::memory::filled(len, 0u8, "decrypted bundle")
        .map(Zeroizing::new)
        .map_err(|e| PlatformError::new("memory", e.to_string()))
}

/// OP-TEE's system time in µs (monotonic, from the TEE's start), timing the pipeline.
fn clock_us() -> u64 {
    let mut time = optee_utee::Time::new();
    time.system_time();
    u64::from(time.seconds) * 1_000_000 + u64::from(time.millis) * 1_000
}

/// A session's state: nothing, or one model prepared to run; the enclave once one of its
/// commands arrived.
#[derive(Default)]
pub struct Session {
    enclave: Option<EnclaveCommands>,
    interpreter: Option<Interpreter<'static>>,
    input_bytes: usize,
    output_bytes: usize,
}

impl Session {
    /// The enclave of this session, made on its first command (the platform asks the
    /// attestation PTA for the TA's memory hash and the device's key).
    pub fn enclave(&mut self) -> optee_utee::Result<&mut EnclaveCommands> {
        let enclave = match self.enclave.take() {
            Some(enclave) => enclave,
            None => Commands::new(OpteePlatform::new()?, ENCLAVE_MEMORY, protected, clock_us),
        };
        Ok(self.enclave.insert(enclave))
    }

    /// Ends the enclave's running operation, if any (its quota reservation settled).
    pub fn close(&mut self) {
        if let Some(enclave) = self.enclave.as_mut()
            && let Err(e) = enclave.close()
        {
            optee_utee::trace_println!("omg TA: closing the operation: {}", e);
        }
    }

    /// Loads `model` (a private copy of the shared memory) into this session. The bytes live as
    /// long as the TA instance, which serves this one session: the interpreter borrows its
    /// constant tensors from them.
    pub fn load(&mut self, model: Vec<u8>) -> Result<(usize, usize), Failure> {
        if self.interpreter.is_some() {
            return Err(Failure::BadState);
        }
        let bytes: &'static [u8] = model.leak();
        let interpreter = Interpreter::new(bytes).map_err(|e| Failure::from(&e))?;
        let mut input_bytes = 0usize;
        for i in 0..interpreter.input_count() {
            let t = interpreter.input_tensor(i).map_err(|e| Failure::from(&e))?;
            input_bytes = input_bytes
                .checked_add(t.bytes())
                .ok_or(Failure::BadFormat)?;
        }
        let mut output_bytes = 0usize;
        for i in 0..interpreter.output_count() {
            let t = interpreter
                .output_tensor(i)
                .map_err(|e| Failure::from(&e))?;
            output_bytes = output_bytes
                .checked_add(t.bytes())
                .ok_or(Failure::BadFormat)?;
        }
        self.interpreter = Some(interpreter);
        self.input_bytes = input_bytes;
        self.output_bytes = output_bytes;
        Ok((input_bytes, output_bytes))
    }

    /// Bytes the inputs take together, once a model is loaded.
    pub fn input_bytes(&self) -> Result<usize, Failure> {
        self.interpreter
            .as_ref()
            .map(|_| self.input_bytes)
            .ok_or(Failure::BadState)
    }

    /// Bytes the outputs take together, once a model is loaded.
    pub fn output_bytes(&self) -> Result<usize, Failure> {
        self.interpreter
            .as_ref()
            .map(|_| self.output_bytes)
            .ok_or(Failure::BadState)
    }

    /// Runs the model on `inputs` (all inputs concatenated) and writes the outputs,
    /// concatenated, to `outputs`, which must be [`Self::output_bytes`] long.
    pub fn invoke(&mut self, inputs: &[u8], outputs: &mut [u8]) -> Result<(), Failure> {
        let interpreter = self.interpreter.as_mut().ok_or(Failure::BadState)?;
        if inputs.len() != self.input_bytes || outputs.len() != self.output_bytes {
            return Err(Failure::BadParameters);
        }
        let mut offset = 0;
        for i in 0..interpreter.input_count() {
            let n = interpreter
                .input_tensor(i)
                .map_err(|e| Failure::from(&e))?
                .bytes();
            let part = inputs
                .get(offset..offset + n)
                .ok_or(Failure::BadParameters)?;
            interpreter
                .set_input(i, part)
                .map_err(|e| Failure::from(&e))?;
            offset += n;
        }
        interpreter.invoke().map_err(|e| Failure::from(&e))?;
        let mut offset = 0;
        for i in 0..interpreter.output_count() {
            let out = interpreter.output(i).map_err(|e| Failure::from(&e))?;
            let part = outputs
                .get_mut(offset..offset + out.len())
                .ok_or(Failure::BadParameters)?;
            part.copy_from_slice(out);
            offset += out.len();
        }
        Ok(())
    }

    /// Clears the loaded model's operator state.
    pub fn reset(&mut self) -> Result<(), Failure> {
        self.interpreter.as_mut().ok_or(Failure::BadState)?.reset();
        Ok(())
    }
}

/// A private, fallibly allocated buffer of `len` zero bytes (`len` from the normal world).
pub fn buffer(len: usize, limit: usize) -> Result<Vec<u8>, Failure> {
    if len > limit {
        return Err(Failure::BadParameters);
    }
    omg_engine::memory::filled(len, 0u8, "shared memory copy").map_err(|_| Failure::OutOfMemory)
}
