//! The C API of omg: `libomg.so` / `libomg.a` and the header `include/omg.h`.
//!
//! Two kinds of opaque handle:
//!
//! * [`ffi::OmgInterpreter`]: one TFLite model run by omg's engine (bit-exact with TensorFlow
//!   Lite Micro), with its tensors' details, inputs, outputs and kernel level;
//! * [`ffi::OmgPipeline`]: a keyword-spotting pipeline (the bundled `micro_speech` or a
//!   manifest directory) fed with 16 kHz mono PCM, its keyword events delivered by callback
//!   or by polling;
//! * [`ffi::OmgProtected`]: the protected path, the app's side: a provisioned package run in
//!   an enclave, through the platform service's socket or the embedded launcher, fed with PCM,
//!   its events delivered the same way; with provisioning for platform integrators;
//! * [`ffi::OmgResampler`]: a streaming resampler from any rate to 16 kHz for raw PCM.
//!
//! The safe core ([`interpreter`], [`pipeline`], [`protected`], [`error`]) wraps omg-engine,
//! omg-kws, omg-enclave's pipeline builder, omg-cli's manifest loading and omg-cli's sessions
//! and provisioning; only [`ffi`] touches raw pointers, and every call there runs under `catch_unwind`, so no panic crosses into C. See
//! docs/c-api.md.
#![deny(unsafe_code)]

pub mod error;
#[allow(unsafe_code)]
pub mod ffi;
pub mod interpreter;
pub mod pipeline;
pub mod protected;
pub mod resample;
