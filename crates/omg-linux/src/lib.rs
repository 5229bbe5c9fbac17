//! # omg-linux: the platform side of omg's Linux backend
//!
//! What the Linux backend's trusted launcher holds and does for the enclave (docs/design.md,
//! "The Linux backend"): the device identity (a P-256 attestation key and a 256-bit
//! hardware-unique key in owner-only files), the measurement of the enclave image, attestation
//! tokens signed over that measurement, sealing keys derived from the HUK, randomness, time, and
//! monotonic counters kept in files. [`LinuxPlatform`] implements [`omg_enclave::Platform`] with them.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod channel;
pub mod counters;
pub mod enclave_entry;
pub mod fs;
pub mod identity;
pub mod launcher;
mod platform;
pub mod platform_server;
#[allow(unsafe_code)]
pub mod protected;
#[allow(unsafe_code)]
pub mod sandbox;
pub mod service;

pub use identity::DeviceIdentity;
pub use platform::{IMPLEMENTATION_ID, LinuxPlatform, SIGNER_ID, measure_file};
