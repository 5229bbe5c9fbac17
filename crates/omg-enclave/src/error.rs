//! The enclave's error type.

use alloc::boxed::Box;
use core::fmt;

use omg_kws::KwsError;
use omg_protocol::ProtocolError;
use omg_protocol::licence::Refusal;

use crate::platform::PlatformError;

/// Why a phase of the enclave failed. Every variant says which check failed; none carries
/// secret material.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EnclaveError {
    /// A message or stored blob is malformed, tampered, signed by another key or fails to
    /// decrypt (another device, another enclave build, another model).
    Protocol(ProtocolError),
    /// The licence forbids this use.
    Refused(Refusal),
    /// A platform service failed.
    Platform(PlatformError),
    /// The pipeline in the package cannot be built or run.
    Pipeline(KwsError),
    /// Two things that must agree do not (the message says which).
    Mismatch(&'static str),
    /// A running operation stopped on `cause` (and was settled) after `classifications`.
    Stopped {
        /// Why it stopped.
        cause: Box<EnclaveError>,
        /// Classifications made in the session before it stopped.
        classifications: u64,
    },
}

impl fmt::Display for EnclaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "{e}"),
            Self::Refused(r) => write!(f, "refused by the licence: {r}"),
            Self::Platform(e) => write!(f, "{e}"),
            Self::Pipeline(e) => write!(f, "pipeline: {e}"),
            Self::Mismatch(what) => write!(f, "mismatch: {what}"),
            Self::Stopped {
                cause,
                classifications,
            } => write!(
                f,
                "{cause} (after {classifications} classification(s) in this session)"
            ),
        }
    }
}

impl core::error::Error for EnclaveError {}

impl From<ProtocolError> for EnclaveError {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<Refusal> for EnclaveError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

impl From<PlatformError> for EnclaveError {
    fn from(e: PlatformError) -> Self {
        Self::Platform(e)
    }
}

impl From<KwsError> for EnclaveError {
    fn from(e: KwsError) -> Self {
        Self::Pipeline(e)
    }
}

impl From<omg_engine::Error> for EnclaveError {
    fn from(e: omg_engine::Error) -> Self {
        Self::Pipeline(KwsError::Engine(e))
    }
}
