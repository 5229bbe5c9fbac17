//! omg's TFLite interpreter: `no_std`, fully validating, bit-exact with TensorFlow Lite Micro.
//!
//! ```no_run
//! # fn main() -> Result<(), omg_engine::Error> {
//! let bytes: &[u8] = &[]; // a .tflite model
//! let mut interp = omg_engine::Interpreter::new(bytes)?;
//! interp.set_input(0, &[0u8; 1960])?;
//! interp.invoke()?;
//! let scores = interp.output(0)?;
//! # let _ = scores; Ok(()) }
//! ```
//!
//! Loading validates everything before anything runs: the FlatBuffer structure, every index,
//! shape, buffer size and quantization parameter, and each operator's inputs and options. A
//! hostile or truncated model yields an [`Error`] that names what is wrong; it never panics.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod error;
mod exec;
mod flatbuf;
mod flexbuf;
mod interpreter;
pub mod memory;
pub mod model;
mod ops;
pub mod planner;
mod schema;

pub use error::{Error, Result};
pub use interpreter::{Interpreter, MAX_ARENA_BYTES};
pub use model::{DType, Model, Quantization, Tensor};
pub use omg_kernels::fast::Isa;
pub use ops::KernelSet;
