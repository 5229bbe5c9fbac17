//! # omg-vendor: the vendor's provisioning / licensing service core
//!
//! The vendor side of the preparation phase (DESIGN.md section 3): a device's platform asks for
//! a [`Challenge`](omg_protocol::challenge::Challenge), signs an attestation token over its
//! nonce, the enclave measurement and the enclave's HPKE public key hash, and sends it back;
//! the [`Service`] checks it against the model's [`Policy`] and answers with an HPKE key
//! release of the model content key and a signed licence.
//!
//! * [`Store`]: SQLite (WAL, versioned migrations applied at open) holding models and their
//!   policies, devices, nonces, activations and an append-only audit table. The SQL is portable
//!   (TEXT / INTEGER / BIGINT only) so a PostgreSQL store can reuse it.
//! * [`Policy`]: the licensing terms of a model, read from TOML.
//! * [`Service`]: nonce issuance, activation (every check and every write in one
//!   `BEGIN IMMEDIATE` transaction, so a device limit holds under concurrency), revocation and
//!   listings. Each refusal has its own [`Refusal`] reason.
//! * [`http`]: the HTTP API (axum): [`http::router`], [`http::serve`]; OpenAPI description in
//!   [`http::OPENAPI_YAML`].
//!
//! Time is always passed in as seconds since the Unix epoch; randomness as a
//! [`rand_core::CryptoRng`](omg_protocol::rand_core::CryptoRng) ([`OsRng`] in production).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod hex;
pub mod http;
mod policy;
mod rng;
mod service;
mod store;

pub use policy::{InputSourceName, OutputPolicyName, Policy, PolicyError};
pub use rng::OsRng;
pub use service::{ActivateError, Activation, ActivationRequest, Refusal, Service, ServiceConfig};
pub use store::{ActivationRecord, AuditRecord, DeviceRecord, ModelRecord, Store, StoreError};
