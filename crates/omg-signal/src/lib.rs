//! Fixed-point audio signal processing, bit-exact with TensorFlow Lite Micro's `signal` library.
//!
//! Each module implements the arithmetic of one TFLM Signal custom operator
//! (`SignalWindow`, `SignalFftAutoScale`, `SignalRfft`, `SignalEnergy`,
//! `SignalFilterBank`, `SignalFilterBankSquareRoot`,
//! `SignalFilterBankSpectralSubtraction`, `SignalPCAN`, `SignalFilterBankLog`)
//! so that, given the same inputs, the outputs are identical bit for bit.
//!
//! # Contract
//!
//! * Configuration (operator options and constant tensors) is validated once,
//!   by a constructor returning [`SignalError`] when the values would make
//!   TFLM read or write out of bounds, shift by an undefined amount, or
//!   otherwise misbehave.
//! * Per-frame functions (`apply` / `process`) never allocate and never
//!   panic, for every sample value and every configuration a constructor
//!   accepted. They check the slice lengths they are given (a few
//!   comparisons) and return [`SignalError::Length`] on a mismatch; an engine
//!   can call the `check_lengths` helpers once at prepare time instead of
//!   handling that error per frame.
//! * Where TFLM's C code relies on integer wrap-around (unsigned arithmetic,
//!   or narrowing conversions to 16 bits), this crate wraps explicitly, so
//!   results are the same in debug builds with overflow checks.
//!
//! Only the constructors allocate (`alloc`), to own a copy of constant tables
//! and to precompute FFT twiddle factors.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod energy;
mod error;
pub mod fft_auto_scale;
pub mod filter_bank;
pub mod filter_bank_log;
pub mod filter_bank_square_root;
pub mod log;
pub mod msb;
pub mod pcan;
pub mod rfft;
pub mod spectral_subtraction;
pub mod square_root;
pub mod window;

pub use energy::Energy;
pub use error::SignalError;
pub use fft_auto_scale::fft_auto_scale;
pub use filter_bank::{FilterBank, FilterBankConfig};
pub use filter_bank_log::FilterBankLog;
pub use filter_bank_square_root::filter_bank_square_root;
pub use pcan::Pcan;
pub use rfft::Rfft;
pub use spectral_subtraction::{SpectralSubtraction, SpectralSubtractionConfig};
pub use window::Window;

/// Returns `Ok(())` when `actual == expected`, else a [`SignalError::Length`] naming `what`.
pub(crate) fn expect_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), SignalError> {
    if expected == actual {
        Ok(())
    } else {
        Err(SignalError::Length {
            what,
            expected,
            actual,
        })
    }
}

/// Validates a shift amount read from a model: it must lie in `0..=max`.
pub(crate) fn check_shift(what: &'static str, value: i32, max: u32) -> Result<u32, SignalError> {
    match u32::try_from(value) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(SignalError::Shift { what, value, max }),
    }
}
