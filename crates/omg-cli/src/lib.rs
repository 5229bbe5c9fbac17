//! The parts of the `omg` command-line tool that others use too: audio decoding, pipeline
//! manifests and the bundles built from them (parsing outside input on their own, for the fuzz
//! targets under `fuzz/`), and the device side of the protected path (the device directory,
//! provisioning against a vendor service, the enclave backends, starting a session in the
//! embedded launcher or through the platform service), so that the C API (`omg-capi`) runs the
//! same code as `omg provision` and `omg run`; the `omg` binary uses them from here.
#![forbid(unsafe_code)]

pub mod audio;
pub mod backend;
pub mod bundle;
pub mod clock;
pub mod device;
pub mod enclave;
pub mod files;
pub mod identity;
pub mod manifest;
#[cfg(feature = "mic")]
pub mod mic;
#[cfg(feature = "optee")]
pub mod optee;
pub mod run;
pub mod stream;
