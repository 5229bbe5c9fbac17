//! Status codes and the per-thread error message.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::ffi::CString;

/// What a call returned. Every function that can fail returns one; `OMG_STATUS_OK` is zero, and
/// on any other value `omg_last_error_message()` explains what went wrong.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OmgStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is out of range or does not fit: a tensor index past the last tensor, a
    /// buffer of the wrong size, an unknown kernel level, a string that is not UTF-8.
    InvalidArgument = 2,
    /// The model bytes are malformed or describe an invalid model (truncated, garbage, bad
    /// indices or quantization, invalid operator options).
    InvalidModel = 3,
    /// The model uses something omg does not implement, or the CPU cannot run the requested
    /// kernel level.
    Unsupported = 4,
    /// An operator failed while running.
    Eval = 5,
    /// A file could not be read.
    Io = 6,
    /// Memory could not be allocated.
    OutOfMemory = 7,
    /// A pipeline manifest or its models are invalid, or the pipeline failed on its input.
    Pipeline = 8,
    /// omg panicked (a bug in omg); the handle involved should be freed and not used again.
    Panic = 9,
    /// The protected path refused or ended: a package not provisioned on this device (or
    /// provisioned for another one), a licence that ended or does not allow the source, a
    /// vendor service that refused the activation, an enclave or platform service that stopped
    /// the session.
    Refused = 10,
}

/// A failed call: its status and the message `omg_last_error_message()` returns.
#[derive(Debug)]
pub struct Failure {
    /// The status returned to C.
    pub status: OmgStatus,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: OmgStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// A NULL pointer where `what` was required.
    pub fn null(what: &str) -> Self {
        Self::new(OmgStatus::NullArgument, format!("{what} is NULL"))
    }

    /// An invalid argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(OmgStatus::InvalidArgument, message)
    }
}

impl From<omg_engine::Error> for Failure {
    fn from(e: omg_engine::Error) -> Self {
        use omg_engine::Error as E;
        let status = match &e {
            E::Format(_) | E::Model(_) | E::Operator { .. } => OmgStatus::InvalidModel,
            E::Unsupported(_) => OmgStatus::Unsupported,
            E::Eval(_) => OmgStatus::Eval,
            E::Usage(_) => OmgStatus::InvalidArgument,
            E::OutOfMemory { .. } => OmgStatus::OutOfMemory,
            _ => OmgStatus::InvalidModel,
        };
        Self::new(status, e.to_string())
    }
}

impl From<omg_kws::KwsError> for Failure {
    fn from(e: omg_kws::KwsError) -> Self {
        match e {
            omg_kws::KwsError::Engine(e) => e.into(),
            omg_kws::KwsError::Length { .. } => Self::invalid(e.to_string()),
            e => Self::new(OmgStatus::Pipeline, e.to_string()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    /// Errors of omg-cli's manifest and file loading: I/O errors are [`OmgStatus::Io`], the
    /// rest [`OmgStatus::Pipeline`]; the message carries the whole chain of causes.
    fn from(e: anyhow::Error) -> Self {
        let status = if e.chain().any(|c| c.is::<std::io::Error>()) {
            OmgStatus::Io
        } else if let Some(engine) = e
            .chain()
            .find_map(|c| c.downcast_ref::<omg_engine::Error>())
        {
            Failure::from(engine.clone()).status
        } else {
            OmgStatus::Pipeline
        };
        Self::new(status, format!("{e:#}"))
    }
}

thread_local! {
    /// The message of the latest failed call on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `failure` as this thread's latest error and returns its status.
pub fn record(failure: Failure) -> OmgStatus {
    let message = CString::new(failure.message.replace('\0', "\\0")).unwrap_or_default();
    // During the thread's exit (its locals destroyed) the message is lost; the status is not.
    let _ = LAST_ERROR.try_with(|m| *m.borrow_mut() = message);
    failure.status
}

/// This thread's latest error message (empty if no call failed on it yet, or while the thread
/// exits), valid until the next failure is recorded on this thread.
pub fn last_message_ptr() -> *const std::ffi::c_char {
    LAST_ERROR
        .try_with(|m| m.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// Runs `f`, turning a panic into a failure with [`OmgStatus::Panic`] (for bindings that report
/// failures their own way, such as the Python module).
pub fn catch<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(Failure::new(
                OmgStatus::Panic,
                format!("internal error (omg panicked: {what}); please report it"),
            ))
        }
    }
}

/// Runs `f`, turning a panic into [`OmgStatus::Panic`] and any failure into its status, with
/// the message recorded for this thread.
pub fn guard(f: impl FnOnce() -> Result<(), Failure>) -> OmgStatus {
    match catch(f) {
        Ok(()) => OmgStatus::Ok,
        Err(failure) => record(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        LAST_ERROR.with(|m| m.borrow().to_str().unwrap().to_string())
    }

    #[test]
    fn failures_and_panics_become_codes_and_messages() {
        assert_eq!(guard(|| Ok(())), OmgStatus::Ok);
        assert_eq!(
            guard(|| Err(Failure::invalid("bad\0thing"))),
            OmgStatus::InvalidArgument
        );
        assert_eq!(last(), "bad\\0thing");
        assert_eq!(guard(|| panic!("boom")), OmgStatus::Panic);
        assert!(last().contains("boom"));
        let io: anyhow::Error =
            anyhow::Error::from(std::io::Error::other("gone")).context("reading x");
        assert_eq!(Failure::from(io).status, OmgStatus::Io);
    }
}
