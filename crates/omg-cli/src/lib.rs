//! The parts of the `omg` command-line tool that parse outside input on their own: audio
//! decoding and pipeline manifests. They live in this library so that the fuzz targets under
//! `fuzz/` can drive them; the `omg` binary uses them from here.
#![forbid(unsafe_code)]

pub mod audio;
pub mod files;
pub mod manifest;
