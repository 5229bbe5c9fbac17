//! Key material and identifiers shared by the formats.
//!
//! * Signing keys are P-256 ECDSA keys ([`SigningKey`] / [`VerifyingKey`]); public keys are
//!   exchanged as 65-byte SEC1 uncompressed points ([`public_key_sec1`], [`verifying_key_from_sec1`]).
//! * A key id ([`key_id`]) is the first 16 bytes of SHA-256 over the SEC1 uncompressed point.
//! * A device's UEID / PSA instance id ([`ueid`]) is `0x01 || SHA-256(SEC1 uncompressed point)`
//!   (33 bytes, UEID type 0x01 "RAND" as RFC 9783 requires for the instance id).
//! * The model content key ([`ContentKey`]) is 32 random bytes, zeroized on drop.

use core::fmt;

use p256::ecdsa::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Format, ProtocolError, Result};

/// Length of a SEC1 uncompressed P-256 point.
pub const SEC1_PUBLIC_KEY_LEN: usize = 65;
/// Length of a key id.
pub const KEY_ID_LEN: usize = 16;
/// Length of a UEID / instance id.
pub const UEID_LEN: usize = 33;
/// Length of a content key.
pub const CONTENT_KEY_LEN: usize = 32;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The 65-byte SEC1 uncompressed encoding of a P-256 public key.
pub fn public_key_sec1(key: &VerifyingKey) -> [u8; SEC1_PUBLIC_KEY_LEN] {
    let point = key.to_sec1_point(false);
    let mut out = [0u8; SEC1_PUBLIC_KEY_LEN];
    // An uncompressed P-256 point is always 65 bytes.
    out.copy_from_slice(point.as_bytes());
    out
}

/// Parses a SEC1 uncompressed P-256 public key (65 bytes, leading 0x04, point on the curve).
pub fn verifying_key_from_sec1(bytes: &[u8]) -> Result<VerifyingKey> {
    if bytes.len() != SEC1_PUBLIC_KEY_LEN || bytes[0] != 0x04 {
        return Err(ProtocolError::InvalidInput {
            format: Format::Key,
            field: "public key",
            reason: "expected a 65-byte SEC1 uncompressed P-256 point",
        });
    }
    VerifyingKey::from_sec1_bytes(bytes).map_err(|_| ProtocolError::InvalidInput {
        format: Format::Key,
        field: "public key",
        reason: "not a valid P-256 point",
    })
}

/// Generates a P-256 signing key (vendor or device key) from the platform's RNG.
pub fn generate_signing_key<R: CryptoRng + ?Sized>(rng: &mut R) -> SigningKey {
    use p256::elliptic_curve::Generate;
    SigningKey::generate_from_rng(rng)
}

/// Parses a P-256 private key from its 32-byte big-endian scalar.
pub fn signing_key_from_bytes(bytes: &[u8]) -> Result<SigningKey> {
    SigningKey::from_slice(bytes).map_err(|_| ProtocolError::InvalidInput {
        format: Format::Key,
        field: "private key",
        reason: "expected a 32-byte non-zero P-256 scalar",
    })
}

/// Key id of a P-256 public key: the first 16 bytes of SHA-256(SEC1 uncompressed point).
pub fn key_id(key: &VerifyingKey) -> [u8; KEY_ID_LEN] {
    let digest = sha256(&public_key_sec1(key));
    let mut out = [0u8; KEY_ID_LEN];
    out.copy_from_slice(&digest[..KEY_ID_LEN]);
    out
}

/// UEID (PSA instance id) of a device key: `0x01 || SHA-256(SEC1 uncompressed point)`.
pub fn ueid(device_key: &VerifyingKey) -> [u8; UEID_LEN] {
    let mut out = [0u8; UEID_LEN];
    out[0] = 0x01;
    out[1..].copy_from_slice(&sha256(&public_key_sec1(device_key)));
    out
}

/// Constant-time equality of two byte strings (the lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The 256-bit model content key. Zeroized on drop; `Debug` does not print it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContentKey([u8; CONTENT_KEY_LEN]);

impl ContentKey {
    /// Draws a fresh random content key from the platform's RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; CONTENT_KEY_LEN];
        rng.fill_bytes(&mut key);
        let out = ContentKey(key);
        key.zeroize();
        out
    }

    /// Wraps existing key bytes (the caller should zeroize its copy).
    pub fn from_bytes(bytes: [u8; CONTENT_KEY_LEN]) -> Self {
        ContentKey(bytes)
    }

    /// Wraps a 32-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut key = [0u8; CONTENT_KEY_LEN];
        if bytes.len() != CONTENT_KEY_LEN {
            return Err(ProtocolError::InvalidInput {
                format: Format::Key,
                field: "content key",
                reason: "expected 32 bytes",
            });
        }
        key.copy_from_slice(bytes);
        let out = ContentKey(key);
        key.zeroize();
        Ok(out)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; CONTENT_KEY_LEN] {
        &self.0
    }
}

impl PartialEq for ContentKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for ContentKey {}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(<redacted>)")
    }
}
