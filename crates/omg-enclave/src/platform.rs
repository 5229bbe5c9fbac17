//! The platform interface: everything the enclave needs from the system around it.
//!
//! On Linux the platform side is the trusted launcher (it measured the enclave image and holds
//! the device secrets); on OP-TEE it is the TEE core. The enclave never sees the HUK or the
//! device attestation key: it asks for a token and for a derived sealing key.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use omg_protocol::rand_core::CryptoRng;
use omg_protocol::sealed::SealingKey;

/// A platform service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformError {
    /// The service (`"attest"`, `"sealing key"`, `"counter"`, `"memory"`...).
    pub service: &'static str,
    /// Why, in words.
    pub reason: String,
}

impl PlatformError {
    /// An error of `service`.
    pub fn new(service: &'static str, reason: impl Into<String>) -> Self {
        Self {
            service,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "platform {}: {}", self.service, self.reason)
    }
}

impl core::error::Error for PlatformError {}

/// Whose model a piece of platform state belongs to: everything the platform keeps per model
/// (sealing key, counters) and everything the host stores per model is keyed by the vendor's
/// key AND the model id, so a second vendor shipping the same model id never touches the
/// first vendor's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelScope<'a> {
    /// The vendor: [`omg_protocol::key_id`] of its package-signing public key (the first 16
    /// bytes of the SHA-256 of the SEC1 point).
    pub vendor: [u8; omg_protocol::KEY_ID_LEN],
    /// The model id, as the package header names it.
    pub model_id: &'a str,
}

impl<'a> ModelScope<'a> {
    /// The scope of `vendor`'s model `model_id`.
    pub fn new(vendor: &omg_protocol::VerifyingKey, model_id: &'a str) -> Self {
        Self {
            vendor: omg_protocol::key_id(vendor),
            model_id,
        }
    }

    /// A 32-byte name of the scope for the host's file names: SHA-256 of the vendor key id
    /// followed by the model id (model ids may hold any character).
    pub fn digest(&self) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(self.vendor.len() + self.model_id.len());
        bytes.extend_from_slice(&self.vendor);
        bytes.extend_from_slice(self.model_id.as_bytes());
        omg_protocol::sha256(&bytes)
    }
}

/// A named monotonic counter kept by the platform (per [`ModelScope`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The highest licence revocation epoch seen for the model: an older licence (a rolled
    /// back sealed blob) is refused. Raised with [`Platform::raise_epoch`].
    Epoch,
    /// Inferences counted against the model's quota: those used plus those reserved by open
    /// sessions. Changed only with [`Platform::reserve_inferences`] and
    /// [`Platform::settle_inferences`].
    Inferences,
}

/// A private range of inferences granted to one session by
/// [`Platform::reserve_inferences`]: no other session is granted any of them until it is
/// settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The platform's name for the reservation (to settle it).
    pub id: u64,
    /// The inference count at which the range starts (used plus reserved by others, when it
    /// was granted).
    pub start: u64,
    /// How many inferences the range holds (0: the quota is exhausted).
    pub granted: u64,
}

impl Counter {
    /// The counter's number on the platform channel.
    pub const fn code(self) -> u8 {
        match self {
            Counter::Epoch => 0,
            Counter::Inferences => 1,
        }
    }

    /// The counter numbered `code` on the platform channel, if any.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Counter::Epoch),
            1 => Some(Counter::Inferences),
            _ => None,
        }
    }
}

/// What the enclave needs from its platform.
pub trait Platform {
    /// The measurement (SHA-256) of the running enclave image, computed by the platform.
    fn measurement(&self) -> [u8; 32];

    /// UEID of the device attestation key (`0x01 || SHA-256(SEC1 public key)`).
    fn device_ueid(&self) -> [u8; 33];

    /// Signs an attestation token (omg_protocol::token) with the device key over the
    /// platform's own measurement of the enclave, `nonce` and `enclave_key_hash`.
    fn attest(
        &mut self,
        nonce: &[u8],
        enclave_key_hash: [u8; 32],
    ) -> Result<Vec<u8>, PlatformError>;

    /// The sealing key of the model `scope` names, for this device and this enclave
    /// measurement.
    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError>;

    /// A cryptographic RNG.
    fn rng(&mut self) -> &mut dyn CryptoRng;

    /// Current time in seconds since the Unix epoch.
    fn now(&mut self) -> Result<u64, PlatformError>;

    /// Reads counter `counter` of `scope` (0 if never raised).
    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError>;

    /// Raises the epoch counter of `scope` to at least `value` durably before returning; it
    /// never goes down. Returns its value afterwards.
    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError>;

    /// Reserves up to `wanted` inferences of `scope` in one atomic, durable step: grants
    /// `min(wanted, quota - used - reserved by others)` (0 when the quota is exhausted), never
    /// beyond `quota`, as a range no other reservation overlaps.
    fn reserve_inferences(
        &mut self,
        scope: ModelScope<'_>,
        wanted: u64,
        quota: u64,
    ) -> Result<Reservation, PlatformError>;

    /// Ends `reservation` of `scope`: `used` of its inferences (at most those granted) are
    /// counted as used for ever, the rest go back to the quota. A reservation that is never
    /// settled (its session crashed) is counted as used whole.
    fn settle_inferences(
        &mut self,
        scope: ModelScope<'_>,
        reservation: Reservation,
        used: u64,
    ) -> Result<(), PlatformError>;
}

/// The measurement type the token names for an omg enclave image.
pub const ENCLAVE_MEASUREMENT_TYPE: &str = "omg-enclave";

/// Makes and signs the attestation token for an omg enclave: the profile's claims over
/// `nonce`, one software component (`measurement` of the enclave image, signed by
/// `signer_id`), and `enclave_key_hash`. For [`Platform::attest`] implementations, which hold
/// `device_key`.
pub fn sign_enclave_token(
    device_key: &omg_protocol::SigningKey,
    implementation_id: [u8; 32],
    measurement: [u8; 32],
    signer_id: [u8; 32],
    nonce: &[u8],
    enclave_key_hash: [u8; 32],
) -> Result<Vec<u8>, PlatformError> {
    use omg_protocol::token::{Claims, SoftwareComponent, Token};
    let claims = Claims::new(
        device_key.verifying_key(),
        nonce,
        implementation_id,
        alloc::vec![SoftwareComponent {
            measurement_type: Some(String::from(ENCLAVE_MEASUREMENT_TYPE)),
            measurement_value: measurement.to_vec(),
            version: Some(String::from(env!("CARGO_PKG_VERSION"))),
            signer_id: signer_id.to_vec(),
            measurement_desc: Some(String::from("sha-256")),
        }],
        enclave_key_hash,
    );
    Token::sign(&claims, device_key)
        .map_err(|e| PlatformError::new("attest", alloc::format!("{e}")))
}
