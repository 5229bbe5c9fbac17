//! The sealed blob: the content key and the licence, bound to the device (HUK), the enclave
//! (measurement), the vendor (its key id) and the model, stored by the untrusted host.
//!
//! # Key derivation and encryption
//!
//! ```text
//! sealing key = HKDF-SHA256(ikm = HUK, salt = enclave measurement,
//!                           info = "omg sealed v2" || vendor key id (16 bytes)
//!                                  || model id (UTF-8), L = 32)
//! AES-256-GCM(sealing key, nonce = 96 random bits, aad = SealedAad, plaintext = SealedContent)
//! ```
//!
//! # Layout
//!
//! ```text
//! SealedBlob = [
//!     2,                 ; sealed blob format version
//!     bstr .size 12,     ; nonce
//!     bstr,              ; AES-256-GCM ciphertext of SealedContent || 16-byte tag
//! ]
//! SealedAad = [2, bstr .size 16, tstr]     ; format version, vendor key id, model id
//!                                          ; (canonical CBOR)
//! SealedContent = [
//!     bstr .size 32,     ; content key
//!     bstr,              ; licence (the vendor-signed COSE_Sign1 bytes, at most 4 KiB)
//! ]
//! ```
//!
//! Canonical CBOR, at most [`MAX_SEALED_LEN`] bytes. `SealedContent` always starts with the
//! fixed bytes `82 58 20` and the key, so the key is read straight out of the zeroizing
//! plaintext buffer. Another HUK (device), another measurement (enclave build), another vendor
//! key ([`crate::key_id`] of the vendor's public key) or another model id gives another key or
//! AAD and the blob fails to open: two vendors shipping the same model id never share a key. Rollback to an older blob of the
//! same device is not detected here: the runtime checks the licence's revocation epoch against
//! its monotonic counter.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use coset::cbor::value::Value;
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::cbor;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{CONTENT_KEY_LEN, ContentKey, KEY_ID_LEN};
use crate::licence::MAX_LICENCE_LEN;

/// Maximum size of a sealed blob (64 KiB).
pub const MAX_SEALED_LEN: usize = 64 * 1024;
/// HKDF info prefix (followed by the vendor key id and the model id).
pub const SEALED_INFO_PREFIX: &[u8] = b"omg sealed v2";
/// Sealed blob format version.
pub const SEALED_FORMAT_VERSION: u64 = 2;
/// Minimum HUK length in bytes.
pub const MIN_HUK_LEN: usize = 16;
/// Maximum length of a model id (the same for every format).
pub use crate::package::MAX_MODEL_ID_LEN;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const CONTENT_PREFIX: [u8; 3] = [0x82, 0x58, 0x20];
const F: Format = Format::SealedBlob;

/// What a sealed blob holds.
#[derive(Debug, PartialEq, Eq)]
pub struct SealedContent {
    /// The model content key.
    pub content_key: ContentKey,
    /// The licence bytes (COSE_Sign1, verify with [`crate::licence::Licence::verify`]).
    pub licence: Vec<u8>,
}

fn check_inputs(huk: &[u8], measurement: &[u8], model_id: &str) -> Result<()> {
    let bad = |field, reason| ProtocolError::InvalidInput {
        format: F,
        field,
        reason,
    };
    if huk.len() < MIN_HUK_LEN {
        return Err(bad("huk", "must be at least 16 bytes"));
    }
    if measurement.is_empty() || measurement.len() > 64 {
        return Err(bad("measurement", "must be 1..=64 bytes"));
    }
    if model_id.is_empty() || model_id.len() > MAX_MODEL_ID_LEN {
        return Err(bad("model id", "must be 1..=128 bytes"));
    }
    Ok(())
}

/// The key a sealed blob is encrypted under, for one device, enclave, vendor and model:
/// `HKDF-SHA256(ikm = HUK, salt = measurement, info = "omg sealed v2" || vendor key id ||
/// model id)`.
///
/// The platform derives it ([`SealingKey::derive`]) and hands only this key to the enclave, so
/// the enclave never holds the HUK itself (as with a TEE's derived-key service). Zeroized on drop.
pub struct SealingKey {
    key: Zeroizing<[u8; 32]>,
    vendor: [u8; KEY_ID_LEN],
    model_id: String,
}

impl core::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealingKey")
            .field("vendor", &self.vendor)
            .field("model_id", &self.model_id)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// Derives the sealing key of the vendor's (`vendor`, its [`crate::key_id`]) `model_id`
    /// for this device (`huk`) and enclave (`measurement`).
    pub fn derive(
        huk: &[u8],
        measurement: &[u8],
        vendor: &[u8; KEY_ID_LEN],
        model_id: &str,
    ) -> Result<Self> {
        check_inputs(huk, measurement, model_id)?;
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(measurement), huk)
            .expand_multi_info(
                &[SEALED_INFO_PREFIX, vendor, model_id.as_bytes()],
                key.as_mut_slice(),
            )
            .map_err(|_| ProtocolError::EncryptionFailed { format: F })?;
        Ok(Self {
            key,
            vendor: *vendor,
            model_id: String::from(model_id),
        })
    }

    /// A key derived elsewhere (by the platform, which sends it over its channel) for the
    /// vendor's (`vendor`) `model_id`.
    pub fn from_bytes(key: [u8; 32], vendor: &[u8; KEY_ID_LEN], model_id: &str) -> Result<Self> {
        if model_id.is_empty() || model_id.len() > MAX_MODEL_ID_LEN {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "model id",
                reason: "must be 1..=128 bytes",
            });
        }
        Ok(Self {
            key: Zeroizing::new(key),
            vendor: *vendor,
            model_id: String::from(model_id),
        })
    }

    /// The key bytes, for the platform to hand to the enclave.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.key)
    }

    /// The model this key seals for.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Key id of the vendor whose model this key seals for.
    pub fn vendor(&self) -> &[u8; KEY_ID_LEN] {
        &self.vendor
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }

    /// Seals `content` (see [`seal`]).
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        content: &SealedContent,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        seal_with(self, content, rng)
    }

    /// Opens a blob sealed under this key (see [`unseal`]).
    pub fn unseal(&self, blob: &[u8]) -> Result<SealedContent> {
        unseal_with(self, blob)
    }
}

fn aad(key: &SealingKey) -> Result<Vec<u8>> {
    cbor::encode(
        &Value::Array(vec![
            cbor::u(SEALED_FORMAT_VERSION),
            Value::Bytes(key.vendor.to_vec()),
            Value::Text(key.model_id.clone()),
        ]),
        F,
    )
}

/// Seals `content` for this device (`huk`), this enclave (`measurement`) and the vendor's
/// (`vendor`, its key id) `model_id`.
pub fn seal<R: CryptoRng + ?Sized>(
    huk: &[u8],
    measurement: &[u8],
    vendor: &[u8; KEY_ID_LEN],
    model_id: &str,
    content: &SealedContent,
    rng: &mut R,
) -> Result<Vec<u8>> {
    SealingKey::derive(huk, measurement, vendor, model_id)?.seal(content, rng)
}

fn seal_with<R: CryptoRng + ?Sized>(
    key: &SealingKey,
    content: &SealedContent,
    rng: &mut R,
) -> Result<Vec<u8>> {
    if content.licence.len() > MAX_LICENCE_LEN {
        return Err(ProtocolError::InvalidInput {
            format: F,
            field: "licence",
            reason: "longer than 4 KiB",
        });
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(48 + content.licence.len() + TAG_LEN));
    buf.extend_from_slice(&CONTENT_PREFIX);
    buf.extend_from_slice(content.content_key.as_bytes());
    buf.extend_from_slice(&cbor::encode(&Value::Bytes(content.licence.clone()), F)?);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let tag = key
        .cipher()
        .encrypt_inout_detached(&nonce.into(), &aad(key)?, buf.as_mut_slice().into())
        .map_err(|_| ProtocolError::EncryptionFailed { format: F })?;
    let mut ct = Vec::with_capacity(buf.len() + TAG_LEN);
    ct.extend_from_slice(&buf);
    ct.extend_from_slice(&tag);
    let out = cbor::encode(
        &Value::Array(vec![
            cbor::u(SEALED_FORMAT_VERSION),
            Value::Bytes(nonce.to_vec()),
            Value::Bytes(ct),
        ]),
        F,
    )?;
    cbor::check_size(&out, MAX_SEALED_LEN, F)?;
    Ok(out)
}

/// Opens a sealed blob on this device (`huk`) in this enclave (`measurement`) for the vendor's
/// (`vendor`, its key id) `model_id`.
pub fn unseal(
    blob: &[u8],
    huk: &[u8],
    measurement: &[u8],
    vendor: &[u8; KEY_ID_LEN],
    model_id: &str,
) -> Result<SealedContent> {
    SealingKey::derive(huk, measurement, vendor, model_id)?.unseal(blob)
}

fn unseal_with(key: &SealingKey, blob: &[u8]) -> Result<SealedContent> {
    cbor::check_size(blob, MAX_SEALED_LEN, F)?;
    let malformed = |what| ProtocolError::Malformed { format: F, what };
    let Value::Array(items) = cbor::decode_canonical(blob, F)? else {
        return Err(malformed("sealed blob must be a CBOR array"));
    };
    let Ok::<[Value; 3], _>([version, nonce, ct]) = items.try_into() else {
        return Err(malformed("sealed blob must have 3 items"));
    };
    let version = cbor::uint(version, F, "format version")?;
    if version != SEALED_FORMAT_VERSION {
        return Err(ProtocolError::UnsupportedVersion { format: F, version });
    }
    let nonce = cbor::bytes_n::<NONCE_LEN>(nonce, F, "nonce")?;
    let ct = cbor::bytes(ct, F, "ciphertext", MAX_SEALED_LEN)?;
    if ct.len() < TAG_LEN + CONTENT_PREFIX.len() + CONTENT_KEY_LEN + 1 {
        return Err(ProtocolError::InvalidField {
            format: F,
            field: "ciphertext",
            reason: "too short",
        });
    }
    let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
    let tag = aes_gcm::Tag::try_from(tag).map_err(|_| ProtocolError::InvalidField {
        format: F,
        field: "ciphertext",
        reason: "bad tag",
    })?;
    let mut buf = Zeroizing::new(body.to_vec());
    key.cipher()
        .decrypt_inout_detached(&nonce.into(), &aad(key)?, buf.as_mut_slice().into(), &tag)
        .map_err(|_| ProtocolError::DecryptionFailed { format: F })?;

    if buf[..3] != CONTENT_PREFIX {
        return Err(malformed("content must start with a 32-byte content key"));
    }
    let content_key = ContentKey::from_slice(&buf[3..3 + CONTENT_KEY_LEN])?;
    let rest = &buf[3 + CONTENT_KEY_LEN..];
    let licence = cbor::decode_canonical(rest, F)
        .and_then(|v| cbor::bytes(v, F, "licence", MAX_LICENCE_LEN))?;
    Ok(SealedContent {
        content_key,
        licence,
    })
}
