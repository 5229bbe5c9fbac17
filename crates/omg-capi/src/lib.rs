//! The C API of omg: `libomg.so` / `libomg.a` and the header `include/omg.h`.
//!
//! Two kinds of opaque handle:
//!
//! * [`ffi::OmgInterpreter`]: one TFLite model run by omg's engine (bit-exact with TensorFlow
//!   Lite Micro), with its tensors' details, inputs, outputs and kernel level;
//! * [`ffi::OmgPipeline`]: a keyword-spotting pipeline (the bundled `micro_speech` or a
//!   manifest directory) fed with 16 kHz mono PCM, its keyword events delivered by callback
//!   or by polling.
//!
//! The safe core ([`interpreter`], [`pipeline`], [`error`]) wraps omg-engine, omg-kws,
//! omg-enclave's pipeline builder and omg-cli's manifest loading; only [`ffi`] touches raw
//! pointers, and every call there runs under `catch_unwind`, so no panic crosses into C. See
//! docs/c-api.md.
#![deny(unsafe_code)]

pub mod error;
#[allow(unsafe_code)]
pub mod ffi;
pub mod interpreter;
pub mod pipeline;
