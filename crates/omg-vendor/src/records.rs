//! The store's records: what its listings and lookups return. A leaf module: the database
//! backends and the store build on it.

use serde::Serialize;

use crate::policy::Policy;
use crate::store_error::StoreError;

/// Seconds as a SQL BIGINT (saturating: times past year 292 billion are clamped).
pub(crate) fn sql_time(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_u64(v: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(what))
}

pub(crate) fn from_sql_u32(v: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(what))
}

/// A device as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceRecord {
    /// UEID, lowercase hex (33 bytes).
    pub ueid: String,
    /// Attestation public key in its wire form ([`crate::DeviceKey`]: SEC1 P-256 or RSA DER
    /// SubjectPublicKeyInfo), lowercase hex; `None` for a device revoked before it was ever
    /// seen.
    pub public_key: Option<String>,
    /// Time of the first successful activation.
    pub first_seen: Option<u64>,
    /// Time of the device's enrolment by the vendor; `None` if never enrolled.
    pub enrolled_at: Option<u64>,
    /// Key id (hex) of the trusted device maker whose endorsement let the device in at its
    /// first activation; `None` if it was enrolled. A device neither enrolled nor endorsed is
    /// refused as [`crate::Refusal::UnknownDevice`].
    pub endorsed_by: Option<String>,
    /// Whether the device is revoked.
    pub revoked: bool,
}

/// One successful activation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivationRecord {
    /// Sequence number.
    pub id: u64,
    /// Device UEID, lowercase hex.
    pub ueid: String,
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub version: u32,
    /// Time of the activation.
    pub activated_at: u64,
    /// The signed licence that was issued.
    #[serde(skip)]
    pub licence: Vec<u8>,
}

/// One audit row: an activation attempt and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Sequence number.
    pub seq: u64,
    /// Time of the attempt.
    pub at: u64,
    /// Device UEID as claimed by the request, lowercase hex.
    pub ueid: Option<String>,
    /// Model id asked for.
    pub model_id: Option<String>,
    /// Model version asked for.
    pub version: Option<u32>,
    /// `"activated"` or `"refused"`.
    pub outcome: String,
    /// Refusal code ([`crate::Refusal::code`]); `None` when activated.
    pub reason: Option<String>,
}

/// A model as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRecord {
    /// Model id.
    pub model_id: String,
    /// Its policy.
    pub policy: Policy,
    /// Current revocation epoch (written into new licences).
    pub revocation_epoch: u32,
}
