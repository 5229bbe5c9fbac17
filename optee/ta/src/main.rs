//! The omg enclave as an OP-TEE trusted application: OP-TEE's entry points, which hand the
//! normal world's parameters to [`commands`] as private copies.
//!
//! A session (one TA instance, since the TA is not single-instance) loads one model from shared
//! memory and runs it on input tensors; the outputs go back through shared memory. Memory
//! references are only read and written through copies (optee-utee's `read_at` and
//! `write_at`), so the normal world cannot change bytes after they were checked.
#![no_std]
#![no_main]

extern crate alloc;

mod commands;
mod platform;
mod selftest;

use commands::{
    CMD_ATTEST, CMD_COUNTER, CMD_INVOKE, CMD_KEY_FINGERPRINT, CMD_LOAD_MODEL, CMD_PLATFORM_CHECK,
    CMD_RANDOM, CMD_RESET, CMD_SAMPLE_TOKEN, Failure, MAX_MODEL_BYTES, Session,
};
use omg_enclave::commands::{
    CMD_AUDIO, CMD_DRAIN, CMD_FINISH, CMD_REQUEST, CommandError, MAX_AUDIO_BYTES, MAX_REQUEST_BYTES,
};
use optee_utee::prelude::*;
use optee_utee::{
    ErrorKind, ParameterAny, ParameterMemref, ParameterMemrefRead, ParameterMemrefWrite,
    ParameterNone, ParameterValueRead, ParameterValueWrite, Result,
};

impl From<Failure> for optee_utee::Error {
    fn from(f: Failure) -> Self {
        let kind = match f {
            Failure::BadParameters => ErrorKind::BadParameters,
            Failure::BadFormat => ErrorKind::BadFormat,
            Failure::NotSupported => ErrorKind::NotSupported,
            Failure::BadState => ErrorKind::BadState,
            Failure::OutOfMemory => ErrorKind::OutOfMemory,
            Failure::Generic => ErrorKind::Generic,
        };
        kind.into()
    }
}

#[ta_create]
fn create() -> Result<()> {
    Ok(())
}

#[ta_open_session]
fn open_session(
    _params: &mut (ParameterNone, ParameterNone, ParameterNone, ParameterNone),
    _session: &mut Session,
) -> Result<()> {
    Ok(())
}

#[ta_close_session]
fn close_session(session: &mut Session) {
    session.close();
}

#[ta_destroy]
fn destroy() {}

/// Copies a memory reference parameter of at most `limit` bytes into TA memory.
fn read_memref(param: &ParameterAny<'_>, limit: usize) -> Result<alloc::vec::Vec<u8>> {
    let memref = param.as_memref_input()?;
    let mut copy = commands::buffer(memref.buffer_len(), limit)?;
    if memref.read_at(0, &mut copy)? != copy.len() {
        return Err(ErrorKind::BadParameters.into());
    }
    Ok(copy)
}

#[ta_invoke_command]
fn invoke_command(
    session: &mut Session,
    cmd_id: u32,
    params: &mut (ParameterAny, ParameterAny, ParameterAny, ParameterAny),
) -> Result<()> {
    match cmd_id {
        CMD_LOAD_MODEL => {
            params.2.as_none()?;
            params.3.as_none()?;
            let model = read_memref(&params.0, MAX_MODEL_BYTES)?;
            let sizes = params.1.as_value_output()?;
            let (inputs, outputs) = session.load(model).inspect_err(|f| {
                trace_println!("omg TA: model refused ({:?})", f);
            })?;
            sizes.set_a(u32::try_from(inputs).map_err(|_| ErrorKind::BadFormat)?);
            sizes.set_b(u32::try_from(outputs).map_err(|_| ErrorKind::BadFormat)?);
            Ok(())
        }
        CMD_INVOKE => {
            params.2.as_none()?;
            params.3.as_none()?;
            let inputs = read_memref(&params.0, session.input_bytes()?)?;
            let mut outputs = commands::buffer(session.output_bytes()?, usize::MAX)?;
            session.invoke(&inputs, &mut outputs)?;
            params.1.as_memref_output()?.set_output(&outputs)
        }
        CMD_RESET => {
            params.0.as_none()?;
            params.1.as_none()?;
            params.2.as_none()?;
            params.3.as_none()?;
            Ok(session.reset()?)
        }
        CMD_RANDOM => {
            params.1.as_none()?;
            params.2.as_none()?;
            params.3.as_none()?;
            let out = params.0.as_memref_output()?;
            let len = out.buffer_len();
            if len > platform::MAX_RANDOM_BYTES {
                return Err(ErrorKind::BadParameters.into());
            }
            let mut bytes = [0u8; platform::MAX_RANDOM_BYTES];
            platform::random(&mut bytes[..len]);
            out.set_output(&bytes[..len])
        }
        CMD_COUNTER => {
            params.1.as_none()?;
            params.2.as_none()?;
            params.3.as_none()?;
            let value = params.0.as_value_inout()?;
            let raised = platform::raise_counter(value.get_a(), u64::from(value.get_b()))?;
            value.set_a((raised >> 32) as u32);
            value.set_b(raised as u32);
            Ok(())
        }
        CMD_KEY_FINGERPRINT => {
            params.2.as_none()?;
            params.3.as_none()?;
            let label = read_memref(&params.0, platform::MAX_LABEL_BYTES)?;
            let fingerprint = platform::key_fingerprint(&label)?;
            params.1.as_memref_output()?.set_output(fingerprint)
        }
        CMD_ATTEST => {
            params.2.as_none()?;
            params.3.as_none()?;
            let nonce = read_memref(&params.0, platform::MAX_NONCE_BYTES)?;
            let mut evidence = [0u8; platform::MAX_EVIDENCE_BYTES];
            let len = platform::attest(&nonce, &mut evidence)?;
            params.1.as_memref_output()?.set_output(&evidence[..len])
        }
        CMD_SAMPLE_TOKEN => {
            params.2.as_none()?;
            params.3.as_none()?;
            let nonce = read_memref(&params.0, platform::MAX_NONCE_BYTES)?;
            let token = platform::sample_token(&nonce)?;
            params.1.as_memref_output()?.set_output(&token)
        }
        CMD_PLATFORM_CHECK => {
            params.1.as_none()?;
            params.2.as_none()?;
            params.3.as_none()?;
            let value = params.0.as_value_inout()?;
            let (epoch, inferences) = selftest::run(value.get_a())?;
            value.set_a(u32::try_from(epoch).map_err(|_| ErrorKind::Overflow)?);
            value.set_b(u32::try_from(inferences).map_err(|_| ErrorKind::Overflow)?);
            Ok(())
        }
        CMD_REQUEST | CMD_AUDIO | CMD_FINISH | CMD_DRAIN => {
            params.2.as_none()?;
            params.3.as_none()?;
            let input = match cmd_id {
                CMD_REQUEST => read_memref(&params.0, MAX_REQUEST_BYTES)?,
                CMD_AUDIO => read_memref(&params.0, MAX_AUDIO_BYTES)?,
                _ => {
                    params.0.as_none()?;
                    alloc::vec::Vec::new()
                }
            };
            let out = params.1.as_memref_output()?;
            let replies = session
                .enclave()?
                .command(cmd_id, &input, out.buffer_len())
                .map_err(|e| {
                    optee_utee::Error::from(match e {
                        CommandError::BadParameters => ErrorKind::BadParameters,
                        CommandError::BadFormat => ErrorKind::BadFormat,
                        CommandError::ShortBuffer => ErrorKind::ShortBuffer,
                        CommandError::OutOfMemory => ErrorKind::OutOfMemory,
                    })
                })?;
            out.set_output(&replies)
        }
        _ => Err(ErrorKind::BadParameters.into()),
    }
}

include!(concat!(env!("OUT_DIR"), "/user_ta_header.rs"));
