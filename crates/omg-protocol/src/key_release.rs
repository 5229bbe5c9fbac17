//! Key release: the vendor sends the model content key to one attested enclave with HPKE.
//!
//! HPKE (RFC 9180) in base mode with the suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
//! AES-256-GCM (KEM 0x0020, KDF 0x0001, AEAD 0x0002):
//!
//! * `info` = `"omg key release v1"` ([`KEY_RELEASE_INFO`]): names protocol and version;
//! * `aad` = SHA-256 of the exact attestation token bytes the enclave presented, so a key
//!   release is only accepted by the enclave session that made that token;
//! * the recipient key is the enclave's ephemeral [`HpkeKeyPair`], whose public key hash
//!   ([`HpkePublicKey::hash`]) is claim -65537 of the token.
//!
//! # Layout
//!
//! ```text
//! KeyRelease = [
//!     1,                   ; key release format version
//!     bstr .size 32,       ; enc: the HPKE encapsulated key (X25519 public key)
//!     bstr,                ; ct: HPKE ciphertext of KeyReleasePayload || 16-byte tag
//! ]
//!
//! KeyReleasePayload = [
//!     bstr .size 32,       ; content key
//!     tstr,                ; model id (1..=128 bytes)
//!     uint,                ; model version (u32)
//! ]
//! ```
//!
//! Both are canonical CBOR; the whole message is at most [`MAX_KEY_RELEASE_LEN`] bytes. The
//! payload always starts with the fixed bytes `83 58 20` followed by the key, so the key is
//! copied out of the (zeroizing) plaintext buffer directly and never passes through a CBOR
//! decoder's buffers.
//!
//! HPKE base mode does not authenticate the sender: anyone who knows the enclave public key
//! can make a key release. That only lets them hand the enclave a key that fails to decrypt the
//! vendor-signed package; the model key itself stays confidential to the attested enclave.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use coset::cbor::value::Value;
use hpke::aead::{AeadTag, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::cbor;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{CONTENT_KEY_LEN, ContentKey, sha256};

/// Maximum encoded size of a key release.
pub const MAX_KEY_RELEASE_LEN: usize = 1024;
/// HPKE info string: protocol and version.
pub const KEY_RELEASE_INFO: &[u8] = b"omg key release v1";
/// Key release format version.
pub const KEY_RELEASE_FORMAT_VERSION: u64 = 1;
/// Length of an X25519 public key / HPKE encapsulated key.
pub const HPKE_PUBLIC_KEY_LEN: usize = 32;
/// Maximum length of a model id (the same for every format).
pub use crate::package::MAX_MODEL_ID_LEN;

const TAG_LEN: usize = 16;
const PAYLOAD_PREFIX: [u8; 3] = [0x83, 0x58, 0x20];
const F: Format = Format::KeyRelease;

type KemT = X25519HkdfSha256;
type KdfT = HkdfSha256;
type AeadT = AesGcm256;

/// The enclave's HPKE public key (X25519, 32 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpkePublicKey(<KemT as Kem>::PublicKey);

impl HpkePublicKey {
    /// Parses a 32-byte X25519 public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        <KemT as Kem>::PublicKey::from_bytes(bytes)
            .map(HpkePublicKey)
            .map_err(|_| ProtocolError::InvalidInput {
                format: Format::Key,
                field: "HPKE public key",
                reason: "expected 32 bytes",
            })
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; HPKE_PUBLIC_KEY_LEN] {
        self.0.to_bytes().into()
    }

    /// SHA-256 of the key bytes: the token's enclave key hash claim.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&self.to_bytes())
    }
}

/// The enclave's HPKE private key (X25519). Zeroized on drop by the underlying type.
#[derive(Clone)]
pub struct HpkePrivateKey(<KemT as Kem>::PrivateKey);

impl HpkePrivateKey {
    /// Parses a 32-byte X25519 private key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        <KemT as Kem>::PrivateKey::from_bytes(bytes)
            .map(HpkePrivateKey)
            .map_err(|_| ProtocolError::InvalidInput {
                format: Format::Key,
                field: "HPKE private key",
                reason: "expected 32 bytes",
            })
    }

    /// The 32 key bytes, in a zeroizing buffer.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.0.write_exact(out.as_mut_slice());
        out
    }
}

impl core::fmt::Debug for HpkePrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HpkePrivateKey(<redacted>)")
    }
}

/// The enclave's ephemeral HPKE key pair.
#[derive(Clone, Debug)]
pub struct HpkeKeyPair {
    /// The private key (stays in the enclave).
    pub private_key: HpkePrivateKey,
    /// The public key (sent to the vendor with the token).
    pub public_key: HpkePublicKey,
}

impl HpkeKeyPair {
    /// Generates a key pair from the platform's RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let (sk, pk) = KemT::gen_keypair_with_rng(&mut &mut *rng);
        HpkeKeyPair {
            private_key: HpkePrivateKey(sk),
            public_key: HpkePublicKey(pk),
        }
    }

    /// SHA-256 of the public key, for the token's claim -65537.
    pub fn public_key_hash(&self) -> [u8; 32] {
        self.public_key.hash()
    }
}

/// What a key release carries, after decryption.
#[derive(Debug, PartialEq, Eq)]
pub struct ReleasedKey {
    /// The model content key (zeroized on drop).
    pub content_key: ContentKey,
    /// The model id the key is for.
    pub model_id: String,
    /// The model version the key is for.
    pub version: u32,
}

impl ReleasedKey {
    /// Checks that the key was released for `model_id` version `version`.
    pub fn check_model(&self, model_id: &str, version: u32) -> Result<()> {
        if self.model_id != model_id {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "model id",
            });
        }
        if self.version != version {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "model version",
            });
        }
        Ok(())
    }
}

fn malformed(what: &'static str) -> ProtocolError {
    ProtocolError::Malformed { format: F, what }
}

/// Sealing and opening of key releases.
pub struct KeyRelease;

impl KeyRelease {
    /// Seals `content_key` for model `model_id` version `version` to the enclave key, bound to
    /// the attestation token `token_bytes` (which the caller has verified, including that its
    /// enclave key hash is `enclave_hpke_public_key.hash()`).
    pub fn seal<R: CryptoRng + ?Sized>(
        enclave_hpke_public_key: &HpkePublicKey,
        token_bytes: &[u8],
        content_key: &ContentKey,
        model_id: &str,
        version: u32,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        if model_id.is_empty() || model_id.len() > MAX_MODEL_ID_LEN {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "model id",
                reason: "must be 1..=128 bytes",
            });
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(64 + model_id.len()));
        buf.extend_from_slice(&PAYLOAD_PREFIX);
        buf.extend_from_slice(content_key.as_bytes());
        buf.extend_from_slice(&cbor::encode(&Value::Text(String::from(model_id)), F)?);
        buf.extend_from_slice(&cbor::encode(&cbor::u(version.into()), F)?);
        let aad = sha256(token_bytes);
        let (enc, tag) = hpke::single_shot_seal_inout_detached_with_rng::<AeadT, KdfT, KemT>(
            &OpModeS::Base,
            &enclave_hpke_public_key.0,
            KEY_RELEASE_INFO,
            buf.as_mut_slice().into(),
            &aad,
            &mut &mut *rng,
        )
        .map_err(|_| ProtocolError::EncryptionFailed { format: F })?;
        let mut ct = Vec::with_capacity(buf.len() + TAG_LEN);
        ct.extend_from_slice(&buf);
        ct.extend_from_slice(&tag.to_bytes());
        let value = Value::Array(vec![
            cbor::u(KEY_RELEASE_FORMAT_VERSION),
            Value::Bytes(enc.to_bytes().to_vec()),
            Value::Bytes(ct),
        ]);
        let out = cbor::encode(&value, F)?;
        cbor::check_size(&out, MAX_KEY_RELEASE_LEN, F)?;
        Ok(out)
    }

    /// Opens a key release with the enclave's private key; `token_bytes` must be the exact
    /// token the enclave presented for this release.
    pub fn open(
        bytes: &[u8],
        enclave_hpke_private_key: &HpkePrivateKey,
        token_bytes: &[u8],
    ) -> Result<ReleasedKey> {
        cbor::check_size(bytes, MAX_KEY_RELEASE_LEN, F)?;
        let value = cbor::decode_canonical(bytes, F)?;
        let Value::Array(items) = value else {
            return Err(malformed("key release must be a CBOR array"));
        };
        let Ok::<[Value; 3], _>([version, enc, ct]) = items.try_into() else {
            return Err(malformed("key release must have 3 items"));
        };
        let version = cbor::uint(version, F, "format version")?;
        if version != KEY_RELEASE_FORMAT_VERSION {
            return Err(ProtocolError::UnsupportedVersion { format: F, version });
        }
        let enc = cbor::bytes_n::<HPKE_PUBLIC_KEY_LEN>(enc, F, "enc")?;
        let ct = cbor::bytes(ct, F, "ciphertext", MAX_KEY_RELEASE_LEN)?;
        if ct.len() < TAG_LEN + PAYLOAD_PREFIX.len() + CONTENT_KEY_LEN {
            return Err(ProtocolError::InvalidField {
                format: F,
                field: "ciphertext",
                reason: "too short",
            });
        }
        let enc = <KemT as Kem>::EncappedKey::from_bytes(&enc).map_err(|_| {
            ProtocolError::InvalidField {
                format: F,
                field: "enc",
                reason: "not an X25519 public key",
            }
        })?;
        let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
        let tag = AeadTag::<AeadT>::from_bytes(tag).map_err(|_| ProtocolError::InvalidField {
            format: F,
            field: "ciphertext",
            reason: "bad tag",
        })?;
        let mut buf = Zeroizing::new(body.to_vec());
        let aad = sha256(token_bytes);
        hpke::single_shot_open_inout_detached::<AeadT, KdfT, KemT>(
            &OpModeR::Base,
            &enclave_hpke_private_key.0,
            &enc,
            KEY_RELEASE_INFO,
            buf.as_mut_slice().into(),
            &aad,
            &tag,
        )
        .map_err(|_| ProtocolError::DecryptionFailed { format: F })?;
        parse_payload(&buf)
    }
}

fn parse_payload(buf: &[u8]) -> Result<ReleasedKey> {
    let bad = |what| ProtocolError::Malformed { format: F, what };
    if buf.len() < PAYLOAD_PREFIX.len() + CONTENT_KEY_LEN || buf[..3] != PAYLOAD_PREFIX {
        return Err(bad("payload must start with a 32-byte content key"));
    }
    let content_key = ContentKey::from_slice(&buf[3..3 + CONTENT_KEY_LEN])?;
    let rest = &buf[3 + CONTENT_KEY_LEN..];
    // The rest is two canonical CBOR items: model id, version.
    let mut reader = rest;
    let model_id: Value =
        coset::cbor::de::from_reader(&mut reader).map_err(|_| bad("payload: invalid model id"))?;
    let version: Value =
        coset::cbor::de::from_reader(&mut reader).map_err(|_| bad("payload: invalid version"))?;
    if !reader.is_empty() {
        return Err(bad("payload: trailing bytes"));
    }
    let mut again = cbor::encode(&model_id, F)?;
    again.extend_from_slice(&cbor::encode(&version, F)?);
    if again.as_slice() != rest {
        return Err(bad("payload: non-canonical CBOR encoding"));
    }
    Ok(ReleasedKey {
        content_key,
        model_id: cbor::text(model_id, F, "model id", MAX_MODEL_ID_LEN)?,
        version: cbor::uint32(version, F, "model version")?,
    })
}
