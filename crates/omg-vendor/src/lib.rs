//! # omg-vendor: the vendor's provisioning / licensing service core
//!
//! The vendor side of the preparation phase (docs/design.md, "Phases"): a device's platform asks
//! for a [`Challenge`](omg_protocol::challenge::Challenge), signs an attestation token over its
//! nonce, the enclave measurement and the enclave's HPKE public key hash, and sends it back;
//! the [`Service`] checks it against the model's [`Policy`] and answers with an HPKE key
//! release of the model content key and a signed licence.
//!
//! * [`Store`]: models and their policies, devices, nonces, activations and an append-only
//!   audit table, in a SQLite file ([`Store::open`]; WAL) or a PostgreSQL database
//!   ([`Store::connect`] with a `postgres://` URL), with the same schema, versioned migrations
//!   (applied at open) and queries on both: the SQL is portable (TEXT / INTEGER / BIGINT only)
//!   and written once.
//! * [`Policy`]: the licensing terms of a model, read from TOML.
//! * [`Service`]: nonce issuance, the trust chain for device keys (only devices the vendor
//!   enrolled, or that a device maker the operator trusts endorsed, are activated), activation
//!   (every check and every write in one write transaction, and write transactions
//!   serialized — `BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL — so a device
//!   limit holds under concurrency, across processes too),
//!   revocation and listings. Each refusal has its own [`Refusal`] reason.
//! * [`http`]: the HTTP API (axum): [`http::router`], [`http::serve`]; OpenAPI description in
//!   [`http::OPENAPI_YAML`].
//! * [`console`]: the web console at `/console/` (server-rendered pages behind the admin
//!   token), mounted by [`http::router_with`].
//!
//! Time is always passed in as seconds since the Unix epoch; randomness as a
//! [`rand_core::CryptoRng`](omg_protocol::rand_core::CryptoRng) ([`OsRng`] in production).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod console;
mod device;
pub mod http;
pub mod metrics;
mod nonce;
mod pg;
mod policy;
mod pool;
mod records;
mod service;
mod sql;
mod sqlite;
mod store;
mod store_error;

pub use device::{Backend, DeviceKey};
/// The operating system's RNG (omg-protocol's, through getrandom).
pub use omg_protocol::OsRng;
pub use policy::{BackendPolicy, Backends, InputSourceName, OutputPolicyName, Policy, PolicyError};
pub use records::{ActivationRecord, AuditRecord, DeviceRecord, ModelRecord};
pub use service::{
    ActivateError, Activation, ActivationRequest, MAX_UNSIGNED_AUDIT_PER_MINUTE, Refusal, Service,
    ServiceConfig,
};
pub use store::Store;
pub use store_error::{DatabaseError, StoreError};
