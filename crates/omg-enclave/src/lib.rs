//! # omg-enclave: the trusted logic of the Offline Model Guard enclave
//!
//! `no_std` + `alloc`, no I/O, no `unsafe`. Everything the enclave decides lives here, and it
//! reaches the outside world only through the [`Platform`] trait (measurement, attestation
//! signing, sealing-key derivation, randomness, time, the epoch counter and inference
//! reservations, each per vendor and model: [`platform::ModelScope`]), so the same code runs
//! in the Linux isolated-process backend and in the OP-TEE trusted application.
//!
//! The three phases of docs/design.md ("Phases"):
//!
//! 1. **Preparation** ([`provision::Preparation`]): check the vendor-signed package, make an
//!    ephemeral HPKE key pair, have the platform sign an attestation token over the vendor's
//!    nonce and the key's hash, then open the vendor's key release, check the licence, prove the
//!    key decrypts the package and seal key and licence to this device and enclave.
//! 2. **Initialization** ([`runtime::initialize`]): unseal, check package signature and
//!    licence (device, model, version, revocation epoch, expiry, input source, quota), decrypt
//!    the pipeline bundle into memory the platform provides (protected memory on Linux), parse
//!    and validate it.
//! 3. **Operation** ([`runtime::Session`]): audio in, keyword events out, reduced to what the
//!    output policy allows.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod commands;
mod error;
pub mod ledger;
pub mod messages;
pub mod pipeline;
pub mod platform;
pub mod provision;
pub mod runtime;
pub mod server;

pub use error::EnclaveError;
pub use platform::{Platform, PlatformError};
