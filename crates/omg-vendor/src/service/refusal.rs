//! Why an activation was refused ([`Refusal`]) or failed ([`ActivateError`]).

use std::fmt;

use crate::store_error::StoreError;

/// Why an activation was refused. Each reason is its own variant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A request field is malformed (names the field).
    MalformedRequest(&'static str),
    /// The token does not parse as an omg attestation token.
    MalformedToken,
    /// The token's signature does not verify with the device key.
    BadSignature,
    /// The token is signed by the device key but names another device.
    InstanceIdMismatch,
    /// The token's nonce was never issued here (or was purged long after expiry).
    UnknownNonce,
    /// The token's nonce has expired.
    ExpiredNonce,
    /// The token's nonce was already used.
    ReusedNonce,
    /// The model or model version is unknown.
    UnknownModel,
    /// The model version is revoked.
    ModelVersionRevoked,
    /// The enclave measurement is not allowed by the policy.
    WrongMeasurement,
    /// The token's enclave key hash does not match the enclave public key sent.
    EnclaveKeyMismatch,
    /// The device's security lifecycle is not "secured".
    InsecureLifecycle,
    /// The device is revoked.
    DeviceRevoked,
    /// The device was never enrolled by the vendor (or its enrolled key is another one) and
    /// the request carries no endorsement.
    UnknownDevice,
    /// The endorsement sent is not signed by a device maker this service trusts.
    UntrustedMaker,
    /// The endorsement sent is not a well-formed endorsement.
    MalformedEndorsement,
    /// The endorsement sent is for another device key.
    EndorsementMismatch,
    /// The endorsement sent has expired.
    EndorsementExpired,
    /// The licence period (the policy's not-after) is over.
    LicenceExpired,
    /// The model's device limit is reached.
    DeviceLimitReached,
}

impl Refusal {
    /// A stable machine-readable code (snake case), used in the audit table and the HTTP API.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::MalformedRequest(_) => "malformed_request",
            Refusal::MalformedToken => "malformed_token",
            Refusal::BadSignature => "bad_signature",
            Refusal::InstanceIdMismatch => "instance_id_mismatch",
            Refusal::UnknownNonce => "unknown_nonce",
            Refusal::ExpiredNonce => "expired_nonce",
            Refusal::ReusedNonce => "reused_nonce",
            Refusal::UnknownModel => "unknown_model",
            Refusal::ModelVersionRevoked => "model_version_revoked",
            Refusal::WrongMeasurement => "wrong_measurement",
            Refusal::EnclaveKeyMismatch => "enclave_key_mismatch",
            Refusal::InsecureLifecycle => "insecure_lifecycle",
            Refusal::DeviceRevoked => "device_revoked",
            Refusal::UnknownDevice => "unknown_device",
            Refusal::UntrustedMaker => "untrusted_maker",
            Refusal::MalformedEndorsement => "malformed_endorsement",
            Refusal::EndorsementMismatch => "endorsement_mismatch",
            Refusal::EndorsementExpired => "endorsement_expired",
            Refusal::LicenceExpired => "licence_expired",
            Refusal::DeviceLimitReached => "device_limit_reached",
        }
    }

    /// Whether anyone can cause this refusal without a device key the service trusts: a
    /// malformed request or token, a bad signature or another device's id (checks 1 and 2 of the module
    /// documentation), or a device neither enrolled nor endorsed (check 3: a self-made key
    /// signs a valid token). Their audit rows are capped ([`MAX_UNSIGNED_AUDIT_PER_MINUTE`]).
    pub fn is_unauthenticated(&self) -> bool {
        UNAUTHENTICATED_CODES.contains(&self.code())
    }
}

/// The codes of the refusals anyone can cause ([`Refusal::is_unauthenticated`]).
pub(super) const UNAUTHENTICATED_CODES: [&str; 9] = [
    "malformed_request",
    "malformed_token",
    "bad_signature",
    "instance_id_mismatch",
    "unknown_device",
    "untrusted_maker",
    "malformed_endorsement",
    "endorsement_mismatch",
    "endorsement_expired",
];

/// Most audit rows written per minute for the refusals anyone can cause
/// ([`Refusal::is_unauthenticated`]); beyond it such requests are refused without a row, so a
/// flood of garbage cannot grow the append-only table without bound.
pub const MAX_UNSIGNED_AUDIT_PER_MINUTE: i64 = 30;

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MalformedRequest(field) => write!(f, "malformed request field: {field}"),
            Refusal::MalformedToken => f.write_str("the attestation token is malformed"),
            Refusal::BadSignature => {
                f.write_str("the attestation token's signature does not verify")
            }
            Refusal::InstanceIdMismatch => {
                f.write_str("the attestation token names another device")
            }
            Refusal::UnknownNonce => f.write_str("the nonce was not issued by this service"),
            Refusal::ExpiredNonce => f.write_str("the nonce has expired"),
            Refusal::ReusedNonce => f.write_str("the nonce was already used"),
            Refusal::UnknownModel => f.write_str("unknown model or model version"),
            Refusal::ModelVersionRevoked => f.write_str("the model version is revoked"),
            Refusal::WrongMeasurement => {
                f.write_str("the enclave measurement is not allowed by the policy")
            }
            Refusal::EnclaveKeyMismatch => {
                f.write_str("the token does not name this enclave public key")
            }
            Refusal::InsecureLifecycle => {
                f.write_str("the device is not in the secured lifecycle state")
            }
            Refusal::DeviceRevoked => f.write_str("the device is revoked"),
            Refusal::UnknownDevice => f.write_str("the device is not enrolled with the vendor"),
            Refusal::UntrustedMaker => {
                f.write_str("the endorsement is not signed by a device maker the vendor trusts")
            }
            Refusal::MalformedEndorsement => f.write_str("the endorsement is malformed"),
            Refusal::EndorsementMismatch => {
                f.write_str("the endorsement is for another device key")
            }
            Refusal::EndorsementExpired => f.write_str("the endorsement has expired"),
            Refusal::LicenceExpired => f.write_str("the licence period is over"),
            Refusal::DeviceLimitReached => f.write_str("the model's device limit is reached"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Why [`Service::activate`](super::Service::activate) failed: a policy refusal, or an internal failure.
#[derive(Debug)]
pub enum ActivateError {
    /// The request was refused (recorded in the audit table).
    Refused(Refusal),
    /// The service failed (database, signing); nothing was committed.
    Internal(StoreError),
}

impl fmt::Display for ActivateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActivateError::Refused(r) => write!(f, "activation refused: {r}"),
            ActivateError::Internal(e) => write!(f, "activation failed: {e}"),
        }
    }
}

impl std::error::Error for ActivateError {}

impl From<StoreError> for ActivateError {
    fn from(e: StoreError) -> Self {
        ActivateError::Internal(e)
    }
}

impl ActivateError {
    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ActivateError::Refused(r) => Some(r),
            ActivateError::Internal(_) => None,
        }
    }
}
