//! Device attestation keys of each backend, as enrolled and as sent with an activation.
//!
//! | backend | key | wire form | UEID (token instance id) | token |
//! |---|---|---|---|---|
//! | Linux | the device's P-256 attestation key (`omg device init`) | SEC1 uncompressed, 65 bytes (`0x04 ...`) | `0x01 \|\| SHA-256(SEC1 key)` | [`omg_protocol::token::Token`], ES256 by that key |
//! | OP-TEE | the attestation PTA's RSA key (2048 to 4096 bits), kept by OP-TEE | DER SubjectPublicKeyInfo (`0x30 ...`) | `0x01 \|\| SHA-256(modulus)` | [`omg_protocol::optee::OpteeToken`], ES256 by an ephemeral key the PTA's RSASSA-PSS evidence binds |
//!
//! The first byte tells the two forms apart (a SEC1 point starts with 0x04, a DER SEQUENCE
//! with 0x30); each parser accepts only its own canonical form, so one key has one byte
//! string, which enrolment stores and activation compares in constant time.

use omg_protocol::optee::{self, OpteeToken};
use omg_protocol::token::{Claims, Token};
use omg_protocol::{ProtocolError, VerifyingKey, keys::UEID_LEN};

/// The platform backend a device key (and so its tokens) belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The Linux backend: the enclave is a sandboxed process, the device key a P-256 key the
    /// platform side keeps.
    Linux,
    /// The OP-TEE backend: the enclave is a trusted application in TrustZone's secure world,
    /// the device key OP-TEE's attestation PTA key.
    Optee,
}

impl Backend {
    /// Its name in policies and messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Linux => "linux",
            Backend::Optee => "optee",
        }
    }
}

/// A device attestation public key of either backend.
#[derive(Clone, Debug)]
pub enum DeviceKey {
    /// A Linux-backend device key (P-256).
    Linux(VerifyingKey),
    /// An OP-TEE device key (the attestation PTA's RSA key).
    Optee(optee::DeviceKey),
}

impl DeviceKey {
    /// Parses a device key in its wire form (see the module doc); `None` if it is neither.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        match bytes.first() {
            Some(0x04) => omg_protocol::verifying_key_from_sec1(bytes)
                .ok()
                .map(DeviceKey::Linux),
            Some(0x30) => optee::DeviceKey::from_der(bytes).ok().map(DeviceKey::Optee),
            _ => None,
        }
    }

    /// The backend whose tokens this key verifies.
    pub fn backend(&self) -> Backend {
        match self {
            DeviceKey::Linux(_) => Backend::Linux,
            DeviceKey::Optee(_) => Backend::Optee,
        }
    }

    /// The device's UEID (the instance id its tokens carry).
    pub fn ueid(&self) -> [u8; UEID_LEN] {
        match self {
            DeviceKey::Linux(k) => omg_protocol::ueid(k),
            DeviceKey::Optee(k) => k.ueid(),
        }
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            DeviceKey::Linux(k) => omg_protocol::public_key_sec1(k).to_vec(),
            DeviceKey::Optee(k) => k.to_der().to_vec(),
        }
    }

    /// Verifies a token of this device's backend (strict omg encoding) and returns its
    /// claims: signature(s), profile and instance id. The nonce, measurements and enclave key
    /// are the service's to check.
    pub fn verify_token(&self, token: &[u8]) -> Result<Claims, ProtocolError> {
        match self {
            DeviceKey::Linux(k) => Token::verify(token, k),
            DeviceKey::Optee(k) => OpteeToken::verify(token, k),
        }
    }
}

/// The error message for a device key that does not parse.
pub(crate) const DEVICE_KEY_FORMS: &str = "a device key must be a SEC1 uncompressed P-256 key \
     (65 bytes, Linux backend) or the DER SubjectPublicKeyInfo of an RSA key of 2048 to 4096 \
     bits (OP-TEE backend)";
