//! The provisioning / licensing logic: nonces, activation, revocation, listings.
//!
//! # Activation
//!
//! [`Service::activate`] checks, in this order:
//!
//! 1. the request fields parse (the device key — a Linux-backend SEC1 P-256 key or an OP-TEE
//!    device's RSA key, see [`DeviceKey`](crate::DeviceKey), whose form decides the backend —, HPKE key, model
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
//!
//! Layout: the refusal reasons (`refusal`), the audit rows (`audit`), the checks against the
//! database (`checks`) and the activation's flow (`activate`); this module holds the service's
//! state, its settings and the administration calls.

mod activate;
mod audit;
mod checks;
mod refusal;

pub use refusal::{ActivateError, MAX_UNSIGNED_AUDIT_PER_MINUTE, Refusal};

use std::fmt;
use std::sync::Arc;

use omg_protocol::challenge::Challenge;
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::{SigningKey, VerifyingKey};

use crate::nonce::NonceKey;
use crate::records::{ActivationRecord, AuditRecord, DeviceRecord};
use crate::store::Store;
use crate::store_error::StoreError;

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
    /// ([`DeviceKey`](crate::DeviceKey)).
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

    /// Enrols a device by its attestation public key ([`DeviceKey`](crate::DeviceKey)'s wire form): only devices
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
