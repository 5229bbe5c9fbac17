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

/// A named monotonic counter kept by the platform (per model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// The highest licence revocation epoch seen for the model: an older licence (a rolled
    /// back sealed blob) is refused.
    Epoch,
    /// Inferences reserved against the model's quota.
    Inferences,
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

    /// The sealing key of `model_id` for this device and this enclave measurement.
    fn sealing_key(&mut self, model_id: &str) -> Result<SealingKey, PlatformError>;

    /// A cryptographic RNG.
    fn rng(&mut self) -> &mut dyn CryptoRng;

    /// Current time in seconds since the Unix epoch.
    fn now(&mut self) -> Result<u64, PlatformError>;

    /// Reads counter `counter` of `model_id` (0 if never raised).
    fn counter(&mut self, model_id: &str, counter: Counter) -> Result<u64, PlatformError>;

    /// Raises counter `counter` of `model_id` to at least `value` durably before returning;
    /// a counter never goes down. Returns the counter's value afterwards.
    fn raise_counter(
        &mut self,
        model_id: &str,
        counter: Counter,
        value: u64,
    ) -> Result<u64, PlatformError>;
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
