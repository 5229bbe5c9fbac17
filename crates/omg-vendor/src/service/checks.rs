//! The checks of an activation against the database (checks 3 to 10 of the service's
//! documentation) and the state they pass along.

use omg_protocol::endorsement::{self, Endorsement};
use omg_protocol::token::Claims;
use omg_protocol::{ContentKey, ProtocolError, ct_eq};

use crate::device::Backend;
use crate::policy::Policy;
use crate::records::{ModelRecord, sql_time};
use crate::sql::{Tx, args};
use crate::store;
use crate::store_error::StoreError;
use omg_protocol::hex;

use super::audit::AuditSubject;
use super::{Activation, Inner, Refusal};

/// Maps a token verification error to a refusal.
pub(super) fn token_refusal(e: &ProtocolError) -> Refusal {
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

/// An activation request past its stateless checks: what its write transaction needs.
pub(super) struct Checked {
    pub(super) subject: AuditSubject,
    pub(super) claims: Claims,
    /// The backend of the device key (and so of the token).
    pub(super) backend: Backend,
    pub(super) ueid_hex: String,
    /// The device key's wire form ([`DeviceKey::to_bytes`]).
    pub(super) device_key: Vec<u8>,
    pub(super) device_key_hex: String,
    /// The endorsement sent, and the key id (hex) it names.
    pub(super) endorsement: Option<(String, Vec<u8>)>,
    pub(super) model_id: String,
    pub(super) version: u32,
    pub(super) enclave_public_key: Vec<u8>,
}

/// An activation's licence and key release, made before its write transaction, and the
/// model's terms they were made under.
pub(super) struct Prepared {
    pub(super) policy: Policy,
    pub(super) epoch: u32,
    pub(super) activation: Activation,
}

/// What an activation's write transaction decided; either is committed with its audit row.
pub(super) enum Decision {
    Activated(Activation),
    Refused(Refusal),
}

/// Why an activation's write transaction was rolled back.
pub(super) enum Undo {
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
pub(super) enum Stop {
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
pub(super) enum Nonce {
    /// Only check it (a read-only snapshot, before the write transaction).
    Check,
    /// Check it and mark it used (in the write transaction), before the checks after it, so
    /// any later refusal burns it too.
    Consume,
}

/// The terms an activation that passed every check is granted under.
pub(super) struct Terms {
    pub(super) model: ModelRecord,
    pub(super) content_key: ContentKey,
    /// Whether the device has no activation of this model yet (so it counts towards the
    /// device limit from now on).
    pub(super) new_device: bool,
    /// The key id (hex) of the maker whose endorsement let the device in; `None` if enrolled.
    pub(super) endorsed_by: Option<String>,
}

/// Checks 3 to 10 of the module documentation, in that order, against the database as `tx`
/// sees it.
pub(super) fn check_in(
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
