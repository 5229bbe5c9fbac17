//! Reference integer kernels for the TFLite builtin operators, bit-exact with TensorFlow Lite Micro.
//!
//! Every kernel follows the same pattern:
//!
//! * a small parameter `struct` (filled by the engine at prepare time, usually with the help of a
//!   `prepare`-style function in this crate that reproduces TFLM's own parameter computation,
//!   including its exact `float` / `double` conversions);
//! * a `check` function validating shapes and lengths once, at prepare time, returning a
//!   [`KernelError`] that says what is wrong;
//! * an `eval` function that never panics and never allocates. If it is called with data that
//!   `check` would have rejected it returns an error (or, for the cheapest kernels, silently
//!   processes the common prefix) instead of indexing out of bounds.
//!
//! Layout is NHWC, row-major. Arithmetic reproduces TFLM's default build (double-rounding
//! `MultiplyByQuantizedMultiplier`, i.e. `TFLITE_SINGLE_ROUNDING` not defined). Where the C++ code
//! has undefined behaviour on overflow, this crate wraps (two's complement), which is what the
//! compiled C++ does on every target TFLM supports.
//!
//! [`fast`] holds the optimized kernels (weights packed at prepare time, explicit SIMD chosen
//! at run time), which compute the same bytes as the reference kernels. `unsafe` code is denied
//! except in the per-architecture SIMD modules (intrinsics, target features), where every
//! `unsafe` block states why it is sound.
#![no_std]
#![deny(unsafe_code)]
// `!(x <= limit)` is used on purpose: it also rejects NaN parameters.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

// Only for the operating system's report of the CPU's features (the `std` feature).
#[cfg(feature = "std")]
extern crate std;

pub mod cast;
pub mod conv;
pub mod elementwise;
pub mod fast;
pub mod fixedpoint;
pub mod fully_connected;
pub mod pooling;
pub mod quant;
pub mod quantize;
pub mod shape;
mod simd;
pub mod softmax;
pub mod strided_slice;

pub use quant::{Activation, QuantizedMultiplier};

use core::fmt;

/// Why a kernel refused its parameters or data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelError {
    /// Tensor shapes (or slice lengths) are inconsistent; the text names the check that failed.
    Shape(&'static str),
    /// A scalar parameter (stride, scale, zero point, multiplier, ...) is out of its valid range.
    Param(&'static str),
    /// The combination is valid TFLite but not supported by TFLM (or by this crate).
    Unsupported(&'static str),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Shape(s) => write!(f, "shape error: {s}"),
            KernelError::Param(s) => write!(f, "invalid parameter: {s}"),
            KernelError::Unsupported(s) => write!(f, "unsupported: {s}"),
        }
    }
}

impl core::error::Error for KernelError {}

/// Result type of every fallible function in this crate.
pub type Result<T> = core::result::Result<T, KernelError>;
