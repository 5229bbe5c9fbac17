//! The parts of the `omg` command-line tool that parse outside input on their own: audio
//! decoding, pipeline manifests and the bundles built from them. They live in this library so
//! that the fuzz targets under `fuzz/` and the C API (`omg-capi`) can use them; the `omg`
//! binary uses them from here.
#![forbid(unsafe_code)]

pub mod audio;
pub mod bundle;
pub mod files;
pub mod manifest;
