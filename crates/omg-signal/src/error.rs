//! The error type shared by every constructor and per-frame function.

use core::fmt;

/// What is wrong with a configuration or with the buffers passed to a per-frame function.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalError {
    /// A shift amount (option or runtime tensor) lies outside `0..=max`.
    Shift {
        /// Which parameter.
        what: &'static str,
        /// The value found.
        value: i32,
        /// The largest accepted value.
        max: u32,
    },
    /// A buffer does not have the length the operator needs.
    Length {
        /// Which buffer.
        what: &'static str,
        /// Required number of elements.
        expected: usize,
        /// Number of elements given.
        actual: usize,
    },
    /// A buffer is shorter than the configuration requires.
    TooShort {
        /// Which buffer or table.
        what: &'static str,
        /// Minimum number of elements.
        required: usize,
        /// Number of elements given.
        actual: usize,
    },
    /// The FFT length is not supported (see [`crate::Rfft::new`]).
    FftLength {
        /// The requested length.
        value: i32,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A count or index option is negative or otherwise out of range.
    Parameter {
        /// Which parameter.
        what: &'static str,
        /// The value found.
        value: i64,
        /// What range was expected.
        expected: &'static str,
    },
    /// A filter-bank channel addresses spectrum bins or weights outside the given arrays.
    FilterBankChannel {
        /// Channel number (0 is the extra leading channel TFLM computes and discards).
        channel: usize,
        /// Which array it overruns.
        what: &'static str,
        /// First index the channel reads.
        start: i64,
        /// Number of elements the channel reads.
        width: i64,
        /// Length of the array.
        len: usize,
    },
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shift { what, value, max } => {
                write!(
                    f,
                    "{what} = {value} is not a valid shift (expected 0..={max})"
                )
            }
            Self::Length {
                what,
                expected,
                actual,
            } => {
                write!(f, "{what} has {actual} elements, expected {expected}")
            }
            Self::TooShort {
                what,
                required,
                actual,
            } => {
                write!(f, "{what} has {actual} elements, needs at least {required}")
            }
            Self::FftLength { value, reason } => {
                write!(f, "fft_length = {value} is not supported: {reason}")
            }
            Self::Parameter {
                what,
                value,
                expected,
            } => {
                write!(f, "{what} = {value} is out of range (expected {expected})")
            }
            Self::FilterBankChannel {
                channel,
                what,
                start,
                width,
                len,
            } => write!(
                f,
                "filter bank channel {channel} reads {what}[{start}..{start}+{width}] \
                 but {what} has {len} elements"
            ),
        }
    }
}

impl core::error::Error for SignalError {}
