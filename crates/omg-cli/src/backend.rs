//! The enclave backends of `omg provision`, `omg renew` and `omg run`: the Linux enclave process
//! (an isolated, sandboxed process of this machine) or the OP-TEE trusted application in
//! TrustZone's secure world (the `optee` cargo feature, through libteec). Both answer the same
//! host requests ([`HostRequest`]); the provisioning flow and the presentation of a session's
//! events are written once against [`EnclaveLink`].

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result, bail};
use omg_enclave::messages::{EnclaveReply, HostRequest};
use omg_linux::launcher::RunningEnclave;

/// The character device of the TEE driver: OP-TEE is there.
pub const TEE_DEVICE: &str = "/dev/tee0";

/// Where the enclave runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The OP-TEE trusted application (TrustZone's secure world), through /dev/tee0.
    Optee,
    /// The Linux enclave process.
    Linux,
}

impl Backend {
    /// `--backend`'s value, else OP-TEE when this build has it and /dev/tee0 exists, else
    /// Linux.
    pub fn choose(arg: Option<Backend>) -> Backend {
        arg.unwrap_or(
            if cfg!(feature = "optee") && Path::new(TEE_DEVICE).exists() {
                Backend::Optee
            } else {
                Backend::Linux
            },
        )
    }

    /// The backend's name, as `--backend` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Optee => "optee",
            Backend::Linux => "linux",
        }
    }
}

/// An enclave that answers host requests, whichever backend runs it.
pub trait EnclaveLink {
    /// Sends `request` and returns the enclave's reply to it (`Attested`, `Sealed` or
    /// `Ready`); a `Failed` reply is an error with the enclave's reason.
    fn request(&mut self, request: &HostRequest) -> Result<EnclaveReply>;

    /// The next reply of a running operation (`Event`s, then `Finished`); the audio reaches
    /// the enclave as the backend needs (a descriptor the Linux enclave reads, blocks pushed
    /// into the TA).
    fn next_reply(&mut self) -> Result<EnclaveReply>;

    /// The device's attestation public key, as the vendor enrolls it: SEC1 (P-256) for Linux,
    /// DER SubjectPublicKeyInfo of the attestation PTA's RSA key for OP-TEE.
    fn device_public_key(&mut self) -> Result<Vec<u8>>;

    /// The enclave's measurement (the one `token` attests).
    fn measurement(&self, token: &[u8]) -> Result<[u8; 32]>;

    /// The enclave process's pid, when this process can see it.
    fn pid(&self) -> Option<u32>;

    /// Ends the session with the enclave.
    fn close(self: Box<Self>) -> Result<()>;
}

/// Starts the enclave of `backend` for the device in `dir`, with `audio` for an operation.
pub fn open(backend: Backend, dir: &Path, audio: Option<OwnedFd>) -> Result<Box<dyn EnclaveLink>> {
    match backend {
        Backend::Linux => {
            let device_public_key = crate::enclave::identity(dir)?.public_key().to_vec();
            Ok(Box::new(LinuxLink {
                enclave: crate::enclave::start(dir, audio)?,
                device_public_key,
            }))
        }
        Backend::Optee => open_optee(audio),
    }
}

#[cfg(feature = "optee")]
fn open_optee(audio: Option<OwnedFd>) -> Result<Box<dyn EnclaveLink>> {
    available(Backend::Optee)?;
    Ok(Box::new(crate::optee::OpteeLink::open(audio)?))
}

#[cfg(not(feature = "optee"))]
fn open_optee(_audio: Option<OwnedFd>) -> Result<Box<dyn EnclaveLink>> {
    available(Backend::Optee).and_then(|()| bail!("this omg was built without the OP-TEE backend"))
}

/// Fails, saying what to do, when `backend` cannot run here: OP-TEE without /dev/tee0 or in a
/// build without the `optee` feature. Checked before any file is read.
pub fn available(backend: Backend) -> Result<()> {
    if backend == Backend::Linux {
        return Ok(());
    }
    if !Path::new(TEE_DEVICE).exists() {
        bail!(
            "--backend optee: this machine has no OP-TEE ({TEE_DEVICE} does not exist: no \
             TrustZone OS, or its driver is not loaded); use --backend linux"
        );
    }
    if !cfg!(feature = "optee") {
        bail!(
            "--backend optee: this omg was built without the OP-TEE backend (cargo feature \
             `optee`, aarch64 OP-TEE builds); use --backend linux"
        );
    }
    Ok(())
}

/// The Linux enclave process.
struct LinuxLink {
    enclave: RunningEnclave,
    device_public_key: Vec<u8>,
}

impl EnclaveLink for LinuxLink {
    fn request(&mut self, request: &HostRequest) -> Result<EnclaveReply> {
        self.enclave.send(request)?;
        Ok(self.enclave.reply()?)
    }

    fn next_reply(&mut self) -> Result<EnclaveReply> {
        Ok(self.enclave.reply()?)
    }

    fn device_public_key(&mut self) -> Result<Vec<u8>> {
        Ok(self.device_public_key.clone())
    }

    fn measurement(&self, _token: &[u8]) -> Result<[u8; 32]> {
        Ok(self.enclave.measurement())
    }

    fn pid(&self) -> Option<u32> {
        Some(self.enclave.pid())
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.enclave
            .shutdown()
            .context("the enclave did not stop cleanly")
    }
}
