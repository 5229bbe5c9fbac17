//! The crate's error type.

use alloc::string::String;
use core::fmt;

/// Why a keyword-spotting component could not be built or could not process its input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KwsError {
    /// A configuration value is invalid (the message says which and why).
    Config(&'static str),
    /// A signal-processing stage rejected its configuration or buffers.
    Signal(omg_signal::SignalError),
    /// The interpreter rejected a model, or failed while running it.
    Engine(omg_engine::Error),
    /// A model does not have the inputs or outputs the pipeline needs.
    Model(String),
    /// A buffer passed by the caller has the wrong length.
    Length {
        /// Which buffer.
        what: &'static str,
        /// Required number of elements.
        expected: usize,
        /// Number of elements given.
        actual: usize,
    },
    /// Results were given to the recognizer with a time earlier than a previous one.
    TimeOrder {
        /// The time given, in ms.
        time_ms: u64,
        /// The latest time seen before, in ms.
        previous_ms: u64,
    },
}

impl fmt::Display for KwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(what) => write!(f, "invalid configuration: {what}"),
            Self::Signal(e) => write!(f, "front end: {e}"),
            Self::Engine(e) => write!(f, "{e}"),
            Self::Model(what) => write!(f, "unsuitable model: {what}"),
            Self::Length {
                what,
                expected,
                actual,
            } => write!(f, "{what} has {actual} elements, expected {expected}"),
            Self::TimeOrder {
                time_ms,
                previous_ms,
            } => write!(
                f,
                "results must come in time order: {time_ms} ms is earlier than {previous_ms} ms"
            ),
        }
    }
}

impl core::error::Error for KwsError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Signal(e) => Some(e),
            Self::Engine(e) => Some(e),
            _ => None,
        }
    }
}

impl From<omg_signal::SignalError> for KwsError {
    fn from(e: omg_signal::SignalError) -> Self {
        Self::Signal(e)
    }
}

impl From<omg_engine::Error> for KwsError {
    fn from(e: omg_engine::Error) -> Self {
        Self::Engine(e)
    }
}

/// Returns a [`KwsError::Length`] unless `actual == expected`.
pub(crate) fn expect_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), KwsError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KwsError::Length {
            what,
            expected,
            actual,
        })
    }
}
