//! The provisioning / licensing logic: nonces, activation, revocation, listings.
//!
//! # Activation
//!
//! [`Service::activate`] checks, in this order:
//!
//! 1. the request fields parse (the device key — a Linux-backend SEC1 P-256 key or an OP-TEE
//!    device's RSA key, see [`DeviceKey`], whose form decides the backend —, HPKE key, model
//!    id, the endorsement's key id if there is one) — [`Refusal::MalformedRequest`],
//!    [`Refusal::MalformedEndorsement`];
//! 2. the token verifies with the device key as its backend's token (strict omg encoding; for
//!    OP-TEE the ES256 signature by the token's ephemeral key and the attestation PTA's
//!    RSASSA-PSS evidence binding that key and the claims, see `omg_protocol::optee`) —
//!    [`Refusal::MalformedToken`], [`Refusal::BadSignature`], [`Refusal::InstanceIdMismatch`];
//!
//! then, inside one write transaction (serialized with every other writer: `BEGIN IMMEDIATE`
//! on SQLite, an advisory lock on PostgreSQL; see [`crate::Store`]):
//!
//! 3. the device is not revoked ([`Refusal::DeviceRevoked`]), and either the vendor enrolled
//!    it ([`Store::enroll_devices`]) with the very key the request sends (compared in constant
//!    time), or the request carries an endorsement of that key by a device maker the
//!    operator trusts ([`Store::trust_maker`]): signed by a trusted maker's key
//!    ([`Refusal::UntrustedMaker`]), well-formed ([`Refusal::MalformedEndorsement`]), for
//!    this device key ([`Refusal::EndorsementMismatch`]) and not expired
//!    ([`Refusal::EndorsementExpired`]); a device neither enrolled nor endorsed is
//!    [`Refusal::UnknownDevice`]. It comes first, so a stranger's request consumes no nonce
//!    and records nothing but a capped audit row;
//! 4. the token's nonce was issued by this service (its MAC verifies, see [`crate::nonce`]:
//!    [`Refusal::UnknownNonce`]), is unused ([`Refusal::ReusedNonce`]) and unexpired
//!    ([`Refusal::ExpiredNonce`]); it is consumed now (recorded as used: the only row a nonce
//!    ever gets), so any later refusal burns it too;
//! 5. the model and version exist ([`Refusal::UnknownModel`]) and the version is not revoked
//!    ([`Refusal::ModelVersionRevoked`]);
//! 6. every software component's measurement is allowed by the policy for the device's
//!    backend (`allowed_measurements` for Linux, `[backends.optee] measurements` for OP-TEE;
//!    [`Refusal::WrongMeasurement`]);
//! 7. the token's enclave key hash is the SHA-256 of the enclave HPKE key sent
//!    ([`Refusal::EnclaveKeyMismatch`]);
//! 8. the security lifecycle is "secured" unless the policy allows otherwise
//!    ([`Refusal::InsecureLifecycle`]);
//! 9. the policy's not-after has not passed ([`Refusal::LicenceExpired`]);
//! 10. the device is already activated for this model, or fewer than `max_devices` distinct
//!     devices are ([`Refusal::DeviceLimitReached`]); revoked devices keep counting.
//!
//! A device neither enrolled nor endorsed is never recorded by an activation: the token's
//! signature only proves that the request holds the key it sends, so without this chain
//! anyone with a self-made key would be served. Check 3 runs on the snapshot too, so such a
//! request gets nothing signed or sealed. An endorsed device is recorded at its first
//! activation with the key id of the maker that endorsed it.
//!
//! On success it records the device's first activation, the activation (with its licence)
//! and an audit row, commits, and only then returns the licence and the key release (the
//! content key HPKE-sealed to the enclave key, AAD = hash of the token). Every attempt,
//! refused or not, leaves exactly one audit row — except the refusals anyone can cause
//! without a trusted device key (checks 1 to 3: [`Refusal::is_unauthenticated`]; a self-made
//! key passes check 2): their rows are capped at [`MAX_UNSIGNED_AUDIT_PER_MINUTE`] a minute,
//! the rest are refused without a row.
//!
//! The licence names its activation (the same SHA-256 of the token) and, when the policy sets
//! `lease_seconds`, carries a lease: renew after `now + lease_seconds`, usable offline until
//! `min(not_after, renew_after + offline_grace_seconds)`. A renewal is a new activation of an
//! already activated device (check 10 lets it through without counting the device twice);
//! checks 5 and 3 refuse it for a revoked model version or device, which is how revocation
//! reaches a device: its lease runs out and is not renewed.
//!
//! The licence's signature and the HPKE sealing are made *before* the write transaction, so
//! they do not hold up other writers: checks 3 to 10 first run on a read-only snapshot (a
//! request the snapshot refuses gets nothing signed), the licence is signed under the model's
//! terms seen there, and the write transaction runs the checks again and uses the prepared
//! answer only if the model's policy and revocation epoch are still those it was made under;
//! otherwise it rolls back (consuming nothing) and the activation is prepared again. The write
//! transaction itself is one write of a group commit ([`crate::Store`]): it may share its
//! transaction and commit with other activations, each in a savepoint of its own.

use std::fmt;
use std::sync::Arc;

use omg_protocol::challenge::Challenge;
use omg_protocol::endorsement::{self, Endorsement};
use omg_protocol::key_release::{HpkePublicKey, KeyRelease};
use omg_protocol::licence::Licence;
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::token::Claims;
use omg_protocol::{ContentKey, ProtocolError, SigningKey, VerifyingKey, ct_eq};

use crate::device::{Backend, DeviceKey};
use crate::nonce::NonceKey;
use crate::policy::Policy;
use crate::sql::{Tx, args};
use crate::store::{
    self, ActivationRecord, AuditRecord, DeviceRecord, ModelRecord, Sequence, Store, StoreError,
    sql_time,
};
use omg_protocol::hex;

/// Service settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// How long a challenge nonce stays valid, in seconds.
    pub nonce_ttl_secs: u64,
    /// Used nonces expired longer than this are purged when another nonce is consumed, in
    /// seconds. (A token that late is refused as [`Refusal::ExpiredNonce`] either way.)
    pub nonce_retention_secs: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            nonce_ttl_secs: 60,
            nonce_retention_secs: 3600,
        }
    }
}

/// An activation request, as the device's platform sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivationRequest {
    /// The attestation token (COSE_Sign1, the omg profile of the device key's backend).
    pub token: Vec<u8>,
    /// The device attestation public key: SEC1 uncompressed (65 bytes) for the Linux backend,
    /// the attestation PTA's RSA key as a DER SubjectPublicKeyInfo for OP-TEE
    /// ([`DeviceKey`]).
    pub device_public_key: Vec<u8>,
    /// The model asked for.
    pub model_id: String,
    /// The model version asked for.
    pub version: u32,
    /// The enclave's ephemeral HPKE (X25519) public key, 32 bytes.
    pub enclave_public_key: Vec<u8>,
    /// A device maker's endorsement of the device key
    /// ([`omg_protocol::endorsement::Endorsement`]), for a device the vendor did not enrol.
    pub endorsement: Option<Vec<u8>>,
}

/// What a successful activation returns to the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    /// The key release (HPKE to the enclave key, bound to the token).
    pub key_release: Vec<u8>,
    /// The licence signed with the vendor key.
    pub licence: Vec<u8>,
}

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
const UNAUTHENTICATED_CODES: [&str; 9] = [
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

/// Why [`Service::activate`] failed: a policy refusal, or an internal failure.
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

struct Inner {
    store: Store,
    vendor_key: SigningKey,
    nonce_key: NonceKey,
    config: ServiceConfig,
}

/// The provisioning / licensing service. Cheap to clone (shared state); safe to use from many
/// threads at once.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What the audit row records about the request.
struct AuditSubject {
    ueid: Option<String>,
    model_id: String,
    version: u32,
}

fn write_audit(
    tx: &mut dyn Tx,
    now: u64,
    subject: &AuditSubject,
    refusal: Option<&Refusal>,
) -> Result<(), StoreError> {
    let seq = store::next_seq(tx, Sequence::Audit)?;
    let model_id = truncate(&subject.model_id, omg_protocol::licence::MAX_MODEL_ID_LEN);
    tx.execute(
        "INSERT INTO audit (seq, at, ueid, model_id, version, outcome, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            seq,
            sql_time(now),
            subject.ueid.as_deref(),
            model_id,
            i64::from(subject.version),
            if refusal.is_some() {
                "refused"
            } else {
                "activated"
            },
            refusal.map(Refusal::code),
        ],
    )?;
    Ok(())
}

/// The audit row of a refusal: capped for the refusals anyone can cause, one each otherwise.
fn write_refusal_audit(
    tx: &mut dyn Tx,
    now: u64,
    subject: &AuditSubject,
    refusal: &Refusal,
) -> Result<(), StoreError> {
    if refusal.is_unauthenticated() {
        write_unsigned_audit(tx, now, subject, refusal)
    } else {
        write_audit(tx, now, subject, Some(refusal))
    }
}

/// The audit row of a refusal anyone can cause ([`Refusal::is_unauthenticated`]), unless
/// [`MAX_UNSIGNED_AUDIT_PER_MINUTE`] such rows were already written in `now`'s minute.
fn write_unsigned_audit(
    tx: &mut dyn Tx,
    now: u64,
    subject: &AuditSubject,
    refusal: &Refusal,
) -> Result<(), StoreError> {
    let minute = now - now % 60;
    // The codes are this module's constants, not input.
    let codes = UNAUTHENTICATED_CODES.map(|c| format!("'{c}'")).join(", ");
    let written = tx
        .query_opt(
            &format!(
                "SELECT COUNT(*) FROM audit WHERE at >= ?1 AND at < ?2 AND outcome = 'refused'
                 AND reason IN ({codes})"
            ),
            args![sql_time(minute), sql_time(minute + 60)],
        )?
        .map(|mut row| row.int(0, "audit count"))
        .transpose()?
        .unwrap_or(0);
    if written >= MAX_UNSIGNED_AUDIT_PER_MINUTE {
        return Ok(());
    }
    write_audit(tx, now, subject, Some(refusal))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Maps a token verification error to a refusal.
fn token_refusal(e: &ProtocolError) -> Refusal {
    match e {
        ProtocolError::BadSignature { .. } | ProtocolError::WrongKey { .. } => {
            Refusal::BadSignature
        }
        ProtocolError::Mismatch { .. } => Refusal::InstanceIdMismatch,
        _ => Refusal::MalformedToken,
    }
}

/// Whether every software component carries an allowed measurement (constant time per
/// comparison).
fn measurements_allowed(claims: &Claims, allowed: &[[u8; 32]]) -> bool {
    !claims.software_components.is_empty()
        && claims.software_components.iter().all(|c| {
            allowed
                .iter()
                .fold(false, |ok, m| ok | ct_eq(m, &c.measurement_value))
        })
}

/// How many times an activation is prepared again when the model's terms changed between its
/// preparation and its write transaction (each time, someone changed the policy or revoked a
/// version in between).
const MAX_PREPARE_ATTEMPTS: usize = 8;

/// An activation request past its stateless checks: what its write transaction needs.
struct Checked {
    subject: AuditSubject,
    claims: Claims,
    /// The backend of the device key (and so of the token).
    backend: Backend,
    ueid_hex: String,
    /// The device key's wire form ([`DeviceKey::to_bytes`]).
    device_key: Vec<u8>,
    device_key_hex: String,
    /// The endorsement sent, and the key id (hex) it names.
    endorsement: Option<(String, Vec<u8>)>,
    model_id: String,
    version: u32,
    enclave_public_key: Vec<u8>,
}

/// An activation's licence and key release, made before its write transaction, and the
/// model's terms they were made under.
struct Prepared {
    policy: Policy,
    epoch: u32,
    activation: Activation,
}

/// What an activation's write transaction decided; either is committed with its audit row.
enum Decision {
    Activated(Activation),
    Refused(Refusal),
}

/// Why an activation's write transaction was rolled back.
enum Undo {
    /// The model's terms are no longer those the licence was prepared under: prepare again.
    Stale,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for Undo {
    fn from(e: StoreError) -> Self {
        Undo::Store(e)
    }
}

/// Why the checks of an activation stopped.
enum Stop {
    Refuse(Refusal),
    Undo(Undo),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Undo(Undo::Store(e))
    }
}

/// What the checks of an activation do with its nonce.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nonce {
    /// Only check it (a read-only snapshot, before the write transaction).
    Check,
    /// Check it and mark it used (in the write transaction), before the checks after it, so
    /// any later refusal burns it too.
    Consume,
}

/// The terms an activation that passed every check is granted under.
struct Terms {
    model: ModelRecord,
    content_key: ContentKey,
    /// Whether the device has no activation of this model yet (so it counts towards the
    /// device limit from now on).
    new_device: bool,
    /// The key id (hex) of the maker whose endorsement let the device in; `None` if enrolled.
    endorsed_by: Option<String>,
}

/// Checks 3 to 10 of the module documentation, in that order, against the database as `tx`
/// sees it.
fn check_in(
    tx: &mut dyn Tx,
    c: &Checked,
    now: u64,
    nonce: Nonce,
    inner: &Inner,
) -> Result<Terms, Stop> {
    let refuse = |r| Err(Stop::Refuse(r));

    // 3. Device: not revoked; enrolled with the request's key, or endorsed. First, so that a
    // stranger's request consumes and records nothing.
    let mut enrolled = false;
    if let Some(mut device) = tx.query_opt(
        "SELECT revoked, enrolled_at, public_key FROM devices WHERE ueid = ?1",
        args![&c.ueid_hex],
    )? {
        if device.int(0, "device revoked flag")? != 0 {
            return refuse(Refusal::DeviceRevoked);
        }
        let key = device.opt_text(2, "device public key")?.unwrap_or_default();
        enrolled = device.opt_int(1, "device enrolment time")?.is_some()
            && ct_eq(key.as_bytes(), c.device_key_hex.as_bytes());
    }
    let endorsed_by = if enrolled {
        None
    } else {
        match check_endorsement(tx, c, now)? {
            Ok(maker) => Some(maker),
            Err(refusal) => return refuse(refusal),
        }
    };

    // 4. Nonce: tagged here, unused, unexpired; consume it (its first and only row).
    let Some(expires_at) = inner.nonce_key.open(&c.claims.nonce) else {
        return refuse(Refusal::UnknownNonce);
    };
    let nonce_hex = hex::encode(&c.claims.nonce);
    if tx
        .query_opt("SELECT 1 FROM nonces WHERE nonce = ?1", args![&nonce_hex])?
        .is_some()
    {
        return refuse(Refusal::ReusedNonce);
    }
    if nonce == Nonce::Consume {
        tx.execute(
            "DELETE FROM nonces WHERE expires_at < ?1",
            args![sql_time(
                now.saturating_sub(inner.config.nonce_retention_secs)
            )],
        )?;
        tx.execute(
            "INSERT INTO nonces (nonce, issued_at, expires_at, used, used_at)
             VALUES (?1, ?2, ?3, 1, ?4)",
            args![
                &nonce_hex,
                sql_time(expires_at.saturating_sub(inner.config.nonce_ttl_secs)),
                sql_time(expires_at),
                sql_time(now)
            ],
        )?;
    }
    if now > expires_at {
        return refuse(Refusal::ExpiredNonce);
    }

    // 5. Model and version.
    let Some(model) = store::load_model(tx, &c.model_id)? else {
        return refuse(Refusal::UnknownModel);
    };
    let Some((content_key, revoked)) = store::load_version(tx, &c.model_id, c.version)? else {
        return refuse(Refusal::UnknownModel);
    };
    if revoked {
        return refuse(Refusal::ModelVersionRevoked);
    }
    let policy = &model.policy;

    // 6.-8. Attestation against the policy.
    if !measurements_allowed(&c.claims, &policy.measurements_for(c.backend)) {
        return refuse(Refusal::WrongMeasurement);
    }
    if c.claims.check_enclave_key(&c.enclave_public_key).is_err() {
        return refuse(Refusal::EnclaveKeyMismatch);
    }
    if !policy.allow_insecure_lifecycle && !c.claims.security_lifecycle.is_secured() {
        return refuse(Refusal::InsecureLifecycle);
    }

    // 9. Licence period.
    if now > policy.not_after {
        return refuse(Refusal::LicenceExpired);
    }

    // 10. Device limit: distinct devices with an activation of this model (kept in
    // model_device_counts by the activations that add a device).
    let new_device = tx
        .query_opt(
            "SELECT 1 FROM activations WHERE model_id = ?1 AND ueid = ?2 LIMIT 1",
            args![&c.model_id, &c.ueid_hex],
        )?
        .is_none();
    if new_device {
        let count = tx
            .query_opt(
                "SELECT devices FROM model_device_counts WHERE model_id = ?1",
                args![&c.model_id],
            )?
            .map(|mut row| row.int(0, "device count"))
            .transpose()?
            .unwrap_or(0);
        if count >= i64::from(policy.max_devices) {
            return refuse(Refusal::DeviceLimitReached);
        }
    }
    Ok(Terms {
        model,
        content_key,
        new_device,
        endorsed_by,
    })
}

/// Check 3 for a device that is not enrolled: its endorsement, by a trusted maker, for its key,
/// unexpired. Returns the maker's key id (hex).
fn check_endorsement(
    tx: &mut dyn Tx,
    c: &Checked,
    now: u64,
) -> Result<Result<String, Refusal>, StoreError> {
    let Some((maker_key_id, endorsement)) = &c.endorsement else {
        return Ok(Err(Refusal::UnknownDevice));
    };
    let Some(maker_key) = store::load_maker(tx, maker_key_id)? else {
        return Ok(Err(Refusal::UntrustedMaker));
    };
    let terms = match Endorsement::verify(endorsement, &maker_key) {
        Ok(terms) => terms,
        Err(ProtocolError::BadSignature { .. } | ProtocolError::WrongKey { .. }) => {
            return Ok(Err(Refusal::UntrustedMaker));
        }
        Err(_) => return Ok(Err(Refusal::MalformedEndorsement)),
    };
    Ok(match terms.check(&c.device_key, now) {
        Ok(()) => Ok(maker_key_id.clone()),
        Err(endorsement::Refusal::WrongDevice) => Err(Refusal::EndorsementMismatch),
        Err(endorsement::Refusal::Expired) => Err(Refusal::EndorsementExpired),
    })
}

/// An activation's write transaction: the checks, then (granted) the device, the activation
/// and the device count with the prepared licence and key release, or (refused) only the
/// consumed nonce; and its audit row either way. Rolled back if the prepared licence no longer
/// fits the model's terms.
fn decide(
    tx: &mut dyn Tx,
    inner: &Inner,
    c: &Checked,
    prepared: Option<Prepared>,
    now: u64,
) -> Result<Decision, Undo> {
    match grant(tx, inner, c, prepared, now) {
        Ok(activation) => {
            write_audit(tx, now, &c.subject, None)?;
            Ok(Decision::Activated(activation))
        }
        Err(Stop::Refuse(refusal)) => {
            // Commit the refusal's audit row (and the nonce, if check 4 consumed it).
            write_refusal_audit(tx, now, &c.subject, &refusal)?;
            Ok(Decision::Refused(refusal))
        }
        Err(Stop::Undo(undo)) => Err(undo),
    }
}

fn grant(
    tx: &mut dyn Tx,
    inner: &Inner,
    c: &Checked,
    prepared: Option<Prepared>,
    now: u64,
) -> Result<Activation, Stop> {
    let terms = check_in(tx, c, now, Nonce::Consume, inner)?;
    let activation = match prepared {
        Some(p) if p.policy == terms.model.policy && p.epoch == terms.model.revocation_epoch => {
            p.activation
        }
        _ => return Err(Stop::Undo(Undo::Stale)),
    };
    // Check 3 found the device enrolled (its row exists) or endorsed (recorded now, with its
    // maker).
    tx.execute(
        "INSERT INTO devices (ueid, public_key, first_seen, revoked, endorsed_by)
         VALUES (?1, ?2, ?3, 0, ?4)
         ON CONFLICT (ueid) DO UPDATE SET
             public_key = COALESCE(devices.public_key, excluded.public_key),
             first_seen = COALESCE(devices.first_seen, excluded.first_seen),
             endorsed_by = COALESCE(devices.endorsed_by, excluded.endorsed_by)",
        args![
            &c.ueid_hex,
            &c.device_key_hex,
            sql_time(now),
            terms.endorsed_by.as_deref()
        ],
    )?;
    let id = store::next_seq(tx, Sequence::Activations)?;
    tx.execute(
        "INSERT INTO activations (id, ueid, model_id, version, activated_at, licence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            id,
            &c.ueid_hex,
            &c.model_id,
            i64::from(c.version),
            sql_time(now),
            &hex::encode(&activation.licence)
        ],
    )?;
    if terms.new_device {
        tx.execute(
            "INSERT INTO model_device_counts (model_id, devices) VALUES (?1, 1)
             ON CONFLICT (model_id) DO UPDATE SET devices = model_device_counts.devices + 1",
            args![&c.model_id],
        )?;
    }
    Ok(activation)
}

impl Service {
    /// A service over `store`, signing licences with `vendor_key`, default settings.
    pub fn new(store: Store, vendor_key: SigningKey) -> Self {
        Self::with_config(store, vendor_key, ServiceConfig::default())
    }

    /// A service with explicit settings.
    pub fn with_config(store: Store, vendor_key: SigningKey, config: ServiceConfig) -> Self {
        Service {
            inner: Arc::new(Inner {
                store,
                nonce_key: NonceKey::derive(&vendor_key),
                vendor_key,
                config,
            }),
        }
    }

    /// The store (for model administration: [`Store::put_model`], [`Store::add_model_version`]).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The vendor's public key, which verifies the licences.
    pub fn vendor_public_key(&self) -> VerifyingKey {
        *self.inner.vendor_key.verifying_key()
    }

    /// Issues a fresh single-use challenge valid for [`ServiceConfig::nonce_ttl_secs`]. Writes
    /// nothing: the nonce carries its expiry and a MAC under a key derived from the vendor key
    /// ([`crate::nonce`]), and is recorded only when an activation consumes it. (Fallible so
    /// that a store-backed issuer can replace it without changing callers; it never fails.)
    pub fn issue_nonce<R: CryptoRng + ?Sized>(
        &self,
        now: u64,
        rng: &mut R,
    ) -> Result<Challenge, StoreError> {
        Ok(self
            .inner
            .nonce_key
            .issue(rng, now, self.inner.config.nonce_ttl_secs))
    }

    /// Activates a model on a device (see the module doc for the checks and their order).
    /// Returns only after the activation and its audit row are committed.
    pub fn activate<R: CryptoRng + ?Sized>(
        &self,
        request: &ActivationRequest,
        now: u64,
        rng: &mut R,
    ) -> Result<Activation, ActivateError> {
        let (checked, device_ueid, enclave_key) = match Self::check_request(request) {
            Ok(v) => v,
            Err((refusal, subject)) => {
                let audited = refusal.clone();
                self.inner
                    .store
                    .write_batched(move |tx| write_refusal_audit(tx, now, &subject, &audited))?;
                return Err(ActivateError::Refused(refusal));
            }
        };
        let checked = Arc::new(checked);
        for _ in 0..MAX_PREPARE_ATTEMPTS {
            let prepared = self.prepare(
                &checked,
                device_ueid,
                &enclave_key,
                &request.token,
                now,
                rng,
            )?;
            let job = Arc::clone(&checked);
            let inner = Arc::clone(&self.inner);
            match self
                .inner
                .store
                .write_batched(move |tx| decide(tx, &inner, &job, prepared, now))
            {
                Ok(Decision::Activated(activation)) => return Ok(activation),
                Ok(Decision::Refused(refusal)) => return Err(ActivateError::Refused(refusal)),
                Err(Undo::Stale) => {}
                Err(Undo::Store(e)) => return Err(ActivateError::Internal(e)),
            }
        }
        Err(ActivateError::Internal(StoreError::Busy(format!(
            "the model's terms changed during each of {MAX_PREPARE_ATTEMPTS} attempts to \
             activate it"
        ))))
    }

    /// The stateless checks 1 and 2 of the module documentation; a refusal comes with what its
    /// audit row records.
    #[allow(clippy::type_complexity)]
    fn check_request(
        request: &ActivationRequest,
    ) -> Result<(Checked, [u8; omg_protocol::keys::UEID_LEN], HpkePublicKey), (Refusal, AuditSubject)>
    {
        let device_key = DeviceKey::parse(&request.device_public_key);
        let subject = AuditSubject {
            ueid: device_key.as_ref().map(|k| hex::encode(&k.ueid())),
            model_id: request.model_id.clone(),
            version: request.version,
        };
        let pre = (|| {
            let device_key = device_key.ok_or(Refusal::MalformedRequest("device_public_key"))?;
            let enclave_key = HpkePublicKey::from_bytes(&request.enclave_public_key)
                .map_err(|_| Refusal::MalformedRequest("enclave_public_key"))?;
            store::check_model_id(&request.model_id)
                .map_err(|_| Refusal::MalformedRequest("model_id"))?;
            let endorsement = request
                .endorsement
                .as_ref()
                .map(|bytes| {
                    Endorsement::maker_key_id(bytes)
                        .map(|kid| (hex::encode(&kid), bytes.clone()))
                        .map_err(|_| Refusal::MalformedEndorsement)
                })
                .transpose()?;
            let claims = device_key
                .verify_token(&request.token)
                .map_err(|e| token_refusal(&e))?;
            Ok::<_, Refusal>((device_key, enclave_key, claims, endorsement))
        })();
        let (device_key, enclave_key, claims, endorsement) = match pre {
            Ok(v) => v,
            Err(refusal) => return Err((refusal, subject)),
        };
        let device_ueid = device_key.ueid();
        let ueid_hex = hex::encode(&device_ueid);
        let device_key_bytes = device_key.to_bytes();
        let checked = Checked {
            subject: AuditSubject {
                ueid: Some(ueid_hex.clone()),
                ..subject
            },
            claims,
            backend: device_key.backend(),
            ueid_hex,
            device_key_hex: hex::encode(&device_key_bytes),
            device_key: device_key_bytes,
            endorsement,
            model_id: request.model_id.clone(),
            version: request.version,
            enclave_public_key: request.enclave_public_key.clone(),
        };
        Ok((checked, device_ueid, enclave_key))
    }

    /// Signs the licence and seals the key release of an activation outside its write
    /// transaction, from a snapshot of the database; `None` if the snapshot already refuses
    /// the activation (then nothing is signed, and the write transaction refuses it, or finds
    /// that the database changed and asks for a new preparation).
    fn prepare<R: CryptoRng + ?Sized>(
        &self,
        checked: &Checked,
        device_ueid: [u8; omg_protocol::keys::UEID_LEN],
        enclave_key: &HpkePublicKey,
        token: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Option<Prepared>, StoreError> {
        let terms = match self
            .inner
            .store
            .read(|tx| Ok(check_in(tx, checked, now, Nonce::Check, &self.inner)))?
        {
            Ok(terms) => terms,
            Err(Stop::Refuse(_)) | Err(Stop::Undo(Undo::Stale)) => return Ok(None),
            Err(Stop::Undo(Undo::Store(e))) => return Err(e),
        };
        let policy = &terms.model.policy;
        let licence = Licence {
            device_ueid,
            model_id: checked.model_id.clone(),
            model_version: checked.version,
            not_after: policy.not_after,
            epoch: terms.model.revocation_epoch,
            quota: policy.inference_quota,
            output_policy: policy.output_policy.into(),
            input_sources: policy.input_source_set(),
            activation: omg_protocol::sha256(token),
            lease: policy.lease(now),
        }
        .sign(&self.inner.vendor_key)?;
        let key_release = KeyRelease::seal(
            enclave_key,
            token,
            &terms.content_key,
            &checked.model_id,
            checked.version,
            rng,
        )?;
        Ok(Some(Prepared {
            policy: terms.model.policy,
            epoch: terms.model.revocation_epoch,
            activation: Activation {
                key_release,
                licence,
            },
        }))
    }

    /// Enrols a device by its attestation public key ([`DeviceKey`]'s wire form): only devices
    /// enrolled, or endorsed by a trusted maker, are activated. Returns its UEID. See
    /// [`Store::enroll_devices`].
    pub fn enroll_device(
        &self,
        public_key: &[u8],
        now: u64,
    ) -> Result<[u8; omg_protocol::keys::UEID_LEN], StoreError> {
        let [ueid] = self.inner.store.enroll_devices(&[public_key], now)?[..] else {
            return Err(StoreError::Corrupt("enrolment result (not one UEID)"));
        };
        Ok(ueid)
    }

    /// Trusts a device maker by its public key (SEC1 uncompressed): devices it endorses are
    /// activated without enrolment. Returns its key id. See [`Store::trust_maker`].
    pub fn trust_maker(
        &self,
        public_key: &[u8],
        now: u64,
    ) -> Result<[u8; omg_protocol::keys::KEY_ID_LEN], StoreError> {
        self.inner.store.trust_maker(public_key, now)
    }

    /// Revokes a device by UEID (33 bytes): it gets no further activation of any model.
    pub fn revoke_device(&self, device_ueid: &[u8], now: u64) -> Result<(), StoreError> {
        self.inner.store.revoke_device(device_ueid, now)
    }

    /// Revokes a model version and raises the model's revocation epoch; returns the new epoch.
    pub fn revoke_model_version(
        &self,
        model_id: &str,
        version: u32,
        now: u64,
    ) -> Result<u32, StoreError> {
        self.inner
            .store
            .revoke_model_version(model_id, version, now)
    }

    /// Every known device.
    pub fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.inner.store.list_devices()
    }

    /// Every successful activation.
    pub fn list_activations(&self) -> Result<Vec<ActivationRecord>, StoreError> {
        self.inner.store.list_activations()
    }

    /// The audit log.
    pub fn audit_log(&self) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.store.audit_log()
    }
}

#[cfg(test)]
mod tests {
    use omg_protocol::key_release::HpkeKeyPair;
    use omg_protocol::token::{Claims, SoftwareComponent, Token};
    use omg_testkit::DeterministicRng;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn policy(not_after: u64) -> Policy {
        Policy::from_toml(&format!(
            "allowed_measurements = [\"{}\"]\nmax_devices = 5\nnot_after = {not_after}\n",
            "11".repeat(32)
        ))
        .unwrap()
    }

    /// A licence prepared under terms that change before the write transaction is not issued:
    /// the transaction rolls back (the nonce stays unused, no audit row), and `activate`
    /// prepares again under the new terms.
    #[test]
    fn a_licence_prepared_under_old_terms_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = DeterministicRng::new(5);
        let store = Store::open(dir.path().join("vendor.sqlite")).unwrap();
        store.put_model("m", &policy(NOW + 100), NOW).unwrap();
        store
            .add_model_version("m", 1, &ContentKey::generate(&mut rng), NOW)
            .unwrap();
        let vendor = omg_protocol::generate_signing_key(&mut rng);
        let service = Service::new(store, vendor.clone());

        let device = omg_protocol::generate_signing_key(&mut rng);
        let enclave = HpkeKeyPair::generate(&mut rng);
        service
            .enroll_device(&omg_protocol::public_key_sec1(device.verifying_key()), NOW)
            .unwrap();
        let challenge = service.issue_nonce(NOW, &mut rng).unwrap();
        let claims = Claims::new(
            device.verifying_key(),
            &challenge.nonce,
            [0x33; 32],
            vec![SoftwareComponent {
                measurement_type: None,
                measurement_value: vec![0x11; 32],
                version: None,
                signer_id: vec![0x22; 32],
                measurement_desc: None,
            }],
            enclave.public_key_hash(),
        );
        let request = ActivationRequest {
            token: Token::sign(&claims, &device).unwrap(),
            device_public_key: omg_protocol::public_key_sec1(device.verifying_key()).to_vec(),
            model_id: "m".into(),
            version: 1,
            enclave_public_key: enclave.public_key.to_bytes().to_vec(),
            endorsement: None,
        };

        let Ok((checked, device_ueid, enclave_key)) = Service::check_request(&request) else {
            panic!("the request is well-formed");
        };
        let checked = Arc::new(checked);
        let prepared = service
            .prepare(
                &checked,
                device_ueid,
                &enclave_key,
                &request.token,
                NOW,
                &mut rng,
            )
            .unwrap()
            .expect("prepared");
        // The terms change in between.
        service
            .store()
            .put_model("m", &policy(NOW + 200), NOW)
            .unwrap();
        let (job, inner) = (Arc::clone(&checked), Arc::clone(&service.inner));
        let stale = service
            .store()
            .write_batched(move |tx| decide(tx, &inner, &job, Some(prepared), NOW));
        assert!(matches!(stale, Err(Undo::Stale)));
        assert!(service.audit_log().unwrap().is_empty());
        assert!(service.list_activations().unwrap().is_empty());

        // The whole activation: prepared again, under the new terms.
        let activation = service.activate(&request, NOW, &mut rng).unwrap();
        let licence = Licence::verify(&activation.licence, vendor.verifying_key()).unwrap();
        assert_eq!(licence.not_after, NOW + 200);
        assert_eq!(service.audit_log().unwrap().len(), 1);
    }
}
