//! The engine's error type: every rejection says what was wrong and where.

use alloc::string::String;
use core::fmt;

/// Why a model could not be loaded, prepared or run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed FlatBuffer (truncated, offsets out of range, ...).
    Format(&'static str),
    /// The FlatBuffer is well-formed but the model it describes is invalid.
    Model(String),
    /// An operator's inputs, outputs or options are invalid for that operator.
    Operator {
        /// Position of the operator in the subgraph's execution order.
        index: usize,
        /// Operator name (builtin name or custom code).
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// The model uses something this engine does not implement.
    Unsupported(String),
    /// An operator failed while running (its kernel refused the data it was given).
    Eval(String),
    /// The caller passed data that does not fit the model (e.g. wrong input size).
    Usage(String),
    /// The model needs more memory than the heap can give.
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// How many bytes were asked for.
        bytes: usize,
    },
}

/// Shorthand for results with [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(what) => write!(f, "malformed model file: {what}"),
            Error::Model(what) => write!(f, "invalid model: {what}"),
            Error::Operator { index, op, reason } => {
                write!(f, "invalid model: operator {index} ({op}): {reason}")
            }
            Error::Unsupported(what) => write!(f, "unsupported model: {what}"),
            Error::Eval(what) => write!(f, "evaluation failed: {what}"),
            Error::Usage(what) => f.write_str(what),
            Error::OutOfMemory { what, bytes } => {
                write!(f, "not enough memory for the {what} ({bytes} bytes)")
            }
        }
    }
}

impl core::error::Error for Error {}

impl From<omg_kernels::KernelError> for Error {
    fn from(e: omg_kernels::KernelError) -> Self {
        Error::Eval(alloc::format!("{e}"))
    }
}

/// Builds an [`Error::Model`] from format arguments.
macro_rules! model_err {
    ($($arg:tt)*) => { $crate::error::Error::Model(alloc::format!($($arg)*)) };
}
pub(crate) use model_err;
