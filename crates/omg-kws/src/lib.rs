//! Keyword spotting, the trusted core: a native micro_speech front end, the
//! sliding feature window, the command recognizer and the streaming pipeline
//! that ties them to omg's TFLite interpreter.
//!
//! Everything is `no_std` + `alloc`, performs no I/O, and allocates only at
//! construction: per-hop work (front end, window, classifier, recognizer)
//! uses buffers sized once. No input (audio values, buffer lengths, times)
//! makes it panic; wrong lengths and out-of-order times are errors.
//!
//! * [`frontend::MicroFrontend`]: TFLM's `audio_preprocessor_int8.tflite`
//!   computed natively, bit for bit, with every table derived from
//!   [`frontend::FrontendConfig`].
//! * [`window::FeatureWindow`]: ring buffer of the latest feature frames.
//! * [`recognizer::Recognizer`]: score averaging, threshold, suppression (like
//!   TFLM's `RecognizeCommands`).
//! * [`pipeline::Pipeline`]: audio in, keyword [`recognizer::Event`]s out.
//! * [`input::starts_like_wav`]: a WAV file where raw samples are expected.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod error;
pub mod frontend;
pub mod input;
pub mod pipeline;
pub mod recognizer;
pub mod tables;
pub mod window;

pub use error::KwsError;
pub use frontend::{FrontendConfig, MicroFrontend};
pub use pipeline::{FeatureExtractor, ModelFrontend, Pipeline, PipelineConfig};
pub use recognizer::{Event, Recognizer, RecognizerConfig};
pub use window::FeatureWindow;
