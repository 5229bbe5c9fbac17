//! The JSON bodies of the vendor service's HTTP API (`omg vendor serve`), shared by the
//! service and its clients (`omg device activate`, the load generator).
//!
//! Byte strings are standard base64 with padding ([`crate::base64`]), UEIDs and key ids
//! lowercase hex ([`crate::hex`]). The request bodies refuse unknown fields. Every error
//! answer is an [`ErrorResponse`]. The listings (`GET /v1/devices`, `GET /v1/activations`)
//! are the vendor's records and not described here.

use alloc::string::String;

use serde::{Deserialize, Serialize};

/// The answer to `POST /v1/challenge` (its request body is empty or `{}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The nonce to sign into the attestation token, base64.
    pub nonce: String,
    /// When the nonce expires, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The whole challenge ([`crate::challenge::Challenge`]'s CBOR), base64.
    pub challenge: String,
}

/// The body of `POST /v1/activate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The attestation token, base64.
    pub token: String,
    /// The device's attestation public key in its wire form, base64.
    pub device_public_key: String,
    /// The model asked for.
    pub model_id: String,
    /// The model version asked for.
    pub version: u32,
    /// The enclave's HPKE public key (32 bytes), base64.
    pub enclave_public_key: String,
    /// A device maker's endorsement of the device key ([`crate::endorsement`]), base64; for
    /// a device the vendor did not enrol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<String>,
}

/// The answer to `POST /v1/activate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// The key release ([`crate::key_release`]), base64.
    pub key_release: String,
    /// The signed licence ([`crate::licence`]), base64.
    pub licence: String,
}

/// The body of `POST /v1/devices/enroll` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The device's attestation public key in its wire form, base64.
    pub device_public_key: String,
}

/// The answer to `POST /v1/devices/enroll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The device's UEID, hex.
    pub ueid: String,
}

/// The body of `POST /v1/makers/trust` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustMakerRequest {
    /// The device maker's public key, SEC1 uncompressed P-256 (65 bytes), base64.
    pub maker_public_key: String,
}

/// The answer to `POST /v1/makers/trust`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustMakerResponse {
    /// The maker's key id ([`crate::key_id`]), hex.
    pub key_id: String,
}

/// The body of `POST /v1/revoke/device` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeDeviceRequest {
    /// The device's UEID, hex (33 bytes).
    pub ueid: String,
}

/// The answer to `POST /v1/revoke/device`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeDeviceResponse {
    /// Always `true`.
    pub revoked: bool,
}

/// The body of `POST /v1/revoke/model` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeModelRequest {
    /// The model.
    pub model_id: String,
    /// The version to revoke.
    pub version: u32,
}

/// The answer to `POST /v1/revoke/model`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeModelResponse {
    /// The model's new revocation epoch.
    pub revocation_epoch: u32,
}

/// Every error answer: a category, a reason code and a human message. A client reading an
/// answer that did not come from the service (a proxy's, say) gets empty strings for what it
/// lacks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// The category (`bad_request`, `refused`, `unavailable`...).
    pub error: String,
    /// The reason code (`wrong_measurement`, `service_busy`...).
    pub reason: String,
    /// What went wrong, for a human.
    pub message: String,
}
