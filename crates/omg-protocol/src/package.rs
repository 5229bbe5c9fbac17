//! The model package `.omgpkg`: the pipeline bundle encrypted under a content key, with a
//! public header, signed by the vendor. Safe to publish.
//!
//! # Layout
//!
//! ```text
//! Package = #6.18([                                           ; COSE_Sign1, see crate::cose
//!     << {1: -7, 3: "application/vnd.omg.package+cbor", 4: kid} >>,  ; kid = key_id(vendor)
//!     {},
//!     << PackagePayload >>,
//!     bstr .size 64                                           ; ES256 r || s
//! ])
//!
//! PackagePayload = [
//!     1,                                  ; package format version
//!     PackageHeader,
//!     #6.16([                             ; COSE_Encrypt0 (RFC 9052 §5.2)
//!         << {1: 3} >>,                   ; protected: alg A256GCM
//!         {5: bstr .size 12},             ; unprotected: IV (random 96 bits)
//!         bstr,                           ; ciphertext || 16-byte GCM tag
//!     ]),
//! ]
//!
//! PackageHeader = {
//!     1: tstr,                            ; model id (1..=128 bytes)
//!     2: uint,                            ; model version (u32)
//!     3: bstr .size 16,                   ; vendor key id = key_id(vendor public key)
//!     4: uint,                            ; created, seconds since the Unix epoch (u64)
//! }
//! ```
//!
//! The AES-256-GCM additional data is the standard COSE `Enc_structure`
//! `["Encrypt0", << {1: 3} >>, external_aad]` with `external_aad` = the canonical CBOR
//! encoding of `PackageHeader`, so the ciphertext is bound to the model id, version, vendor key
//! id and creation time even apart from the outer signature.
//!
//! The whole package is canonical CBOR (one encoding only) and at most [`MAX_PACKAGE_LEN`]
//! bytes. [`Package::open_signed`] checks the signature before anything else is trusted;
//! the bundle is decrypted only by [`VerifiedPackage::decrypt`] /
//! [`VerifiedPackage::decrypt_in_place`], the latter straight into a caller buffer (e.g.
//! protected memory) without any other plaintext copy.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use coset::cbor::value::Value;
use coset::{
    AsCborValue, CoseEncrypt0, CoseEncrypt0Builder, EncryptionContext, HeaderBuilder,
    ProtectedHeader, RegisteredLabelWithPrivate, iana,
};
use p256::ecdsa::{SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::cbor::{self, FieldMap};
use crate::cose;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{ContentKey, KEY_ID_LEN, key_id};

/// Maximum size of a package (64 MiB).
pub const MAX_PACKAGE_LEN: usize = 64 * 1024 * 1024;
/// Maximum length of a model id.
pub const MAX_MODEL_ID_LEN: usize = 128;
/// COSE content type of a package.
pub const PACKAGE_CONTENT_TYPE: &str = "application/vnd.omg.package+cbor";
/// Package format version.
pub const PACKAGE_FORMAT_VERSION: u64 = 1;
/// CBOR tag of COSE_Encrypt0.
pub const COSE_ENCRYPT0_TAG: u64 = 16;
/// AES-GCM IV length.
pub const IV_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;

const F: Format = Format::Package;
const HEADER_KEYS: &[(i64, &str)] = &[
    (1, "model id"),
    (2, "model version"),
    (3, "vendor key id"),
    (4, "created"),
];

/// The public header of a package (readable after the signature check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageHeader {
    /// Model id.
    pub model_id: String,
    /// Model version.
    pub version: u32,
    /// Key id of the vendor key that signs the package.
    pub vendor_key_id: [u8; KEY_ID_LEN],
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

impl PackageHeader {
    /// A header for a package signed by `vendor_key`.
    pub fn new(model_id: &str, version: u32, created: u64, vendor_key: &VerifyingKey) -> Self {
        PackageHeader {
            model_id: String::from(model_id),
            version,
            vendor_key_id: key_id(vendor_key),
            created,
        }
    }

    fn to_value(&self) -> Value {
        cbor::int_map(vec![
            (1, Value::Text(self.model_id.clone())),
            (2, cbor::u(self.version.into())),
            (3, Value::Bytes(self.vendor_key_id.to_vec())),
            (4, cbor::u(self.created)),
        ])
    }

    fn from_value(value: Value) -> Result<Self> {
        let mut map = FieldMap::parse(
            value,
            F,
            "package header must be a CBOR map",
            HEADER_KEYS,
            true,
        )?;
        Ok(PackageHeader {
            model_id: cbor::text(map.require(1, "model id")?, F, "model id", MAX_MODEL_ID_LEN)?,
            version: cbor::uint32(map.require(2, "model version")?, F, "model version")?,
            vendor_key_id: cbor::bytes_n::<KEY_ID_LEN>(
                map.require(3, "vendor key id")?,
                F,
                "vendor key id",
            )?,
            created: cbor::uint(map.require(4, "created")?, F, "created")?,
        })
    }

    /// The external AAD of the COSE_Encrypt0: the canonical encoding of this header.
    fn external_aad(&self) -> Result<Vec<u8>> {
        cbor::encode(&self.to_value(), F)
    }
}

fn malformed(what: &'static str) -> ProtocolError {
    ProtocolError::Malformed { format: F, what }
}

fn invalid(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidField {
        format: F,
        field,
        reason,
    }
}

fn encrypt0_protected() -> ProtectedHeader {
    ProtectedHeader {
        original_data: None,
        header: HeaderBuilder::new()
            .algorithm(iana::Algorithm::A256GCM)
            .build(),
    }
}

fn cipher(key: &ContentKey) -> Aes256Gcm {
    // A 32-byte key always has the right length for AES-256.
    Aes256Gcm::new(key.as_bytes().into())
}

/// Sealing and opening of model packages.
pub struct Package;

impl Package {
    /// Encrypts `bundle` under `content_key` (fresh random IV from `rng`), attaches `header`
    /// and signs the whole with the vendor key. `header.vendor_key_id` must be the key id of
    /// `vendor_signing_key`.
    pub fn seal<R: CryptoRng + ?Sized>(
        header: &PackageHeader,
        bundle: &[u8],
        content_key: &ContentKey,
        vendor_signing_key: &SigningKey,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        if header.model_id.is_empty() || header.model_id.len() > MAX_MODEL_ID_LEN {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "model id",
                reason: "must be 1..=128 bytes",
            });
        }
        if header.vendor_key_id != key_id(vendor_signing_key.verifying_key()) {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "vendor key id",
                reason: "is not the key id of the signing key",
            });
        }
        if bundle.len() > MAX_PACKAGE_LEN {
            return Err(ProtocolError::TooLarge {
                format: F,
                len: bundle.len(),
                max: MAX_PACKAGE_LEN,
            });
        }
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let external_aad = header.external_aad()?;
        let aead = cipher(content_key);
        let encrypt0 = CoseEncrypt0Builder::new()
            .protected(encrypt0_protected().header)
            .unprotected(HeaderBuilder::new().iv(iv.to_vec()).build())
            .try_create_ciphertext(bundle, &external_aad, |plaintext, aad| -> Result<Vec<u8>> {
                let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
                buf.extend_from_slice(plaintext);
                let tag = aead
                    .encrypt_inout_detached(&iv.into(), aad, buf.as_mut_slice().into())
                    .map_err(|_| ProtocolError::EncryptionFailed { format: F })?;
                buf.extend_from_slice(&tag);
                Ok(buf)
            })?
            .build();
        let encrypt0 = encrypt0
            .to_cbor_value()
            .map_err(|_| malformed("COSE_Encrypt0 cannot be encoded"))?;
        let payload = Value::Array(vec![
            cbor::u(PACKAGE_FORMAT_VERSION),
            header.to_value(),
            Value::Tag(COSE_ENCRYPT0_TAG, alloc::boxed::Box::new(encrypt0)),
        ]);
        let payload = cbor::encode(&payload, F)?;
        let out = cose::sign(payload, vendor_signing_key, Some(PACKAGE_CONTENT_TYPE), F)?;
        cbor::check_size(&out, MAX_PACKAGE_LEN, F)?;
        Ok(out)
    }

    /// The key id of the vendor key a package claims to be signed with (the kid of its
    /// protected header), not verified: fails when `bytes` are not an omg package at all, which
    /// tells such a file apart from a package signed with a key nobody here knows.
    pub fn vendor_key_id(bytes: &[u8]) -> Result<Vec<u8>> {
        cose::key_id_strict(bytes, F, MAX_PACKAGE_LEN)
    }

    /// Verifies the vendor signature and the package structure and returns the verified
    /// package, whose header can be read and whose bundle can be decrypted.
    pub fn open_signed(bytes: &[u8], vendor_public_key: &VerifyingKey) -> Result<VerifiedPackage> {
        let payload = cose::verify_strict(
            bytes,
            vendor_public_key,
            Some(PACKAGE_CONTENT_TYPE),
            F,
            MAX_PACKAGE_LEN,
        )?;
        let value = cbor::decode_canonical(&payload, F)?;
        let Value::Array(items) = value else {
            return Err(malformed("package payload must be a CBOR array"));
        };
        let Ok::<[Value; 3], _>([version, header, encrypted]) = items.try_into() else {
            return Err(malformed("package payload must have 3 items"));
        };
        let version = cbor::uint(version, F, "format version")?;
        if version != PACKAGE_FORMAT_VERSION {
            return Err(ProtocolError::UnsupportedVersion { format: F, version });
        }
        let header = PackageHeader::from_value(header)?;
        if header.vendor_key_id != key_id(vendor_public_key) {
            return Err(ProtocolError::WrongKey { format: F });
        }
        let Value::Tag(COSE_ENCRYPT0_TAG, encrypted) = encrypted else {
            return Err(malformed("expected a tagged COSE_Encrypt0 (CBOR tag 16)"));
        };
        let encrypt0 = CoseEncrypt0::from_cbor_value(*encrypted)
            .map_err(|_| malformed("not a COSE_Encrypt0 structure"))?;

        let expected_protected = encrypt0_protected()
            .cbor_bstr()
            .map_err(|_| malformed("protected header cannot be encoded"))?;
        let protected_ok = matches!(&expected_protected, Value::Bytes(b)
            if encrypt0.protected.original_data.as_deref() == Some(b.as_slice()));
        if encrypt0.protected.header.alg
            != Some(RegisteredLabelWithPrivate::Assigned(
                iana::Algorithm::A256GCM,
            ))
            || !protected_ok
        {
            return Err(invalid(
                "encrypt0 protected header",
                "must be exactly {alg: A256GCM}",
            ));
        }
        let u = &encrypt0.unprotected;
        let iv: [u8; IV_LEN] =
            u.iv.as_slice()
                .try_into()
                .map_err(|_| invalid("iv", "must be 12 bytes"))?;
        let only_iv = u.alg.is_none()
            && u.crit.is_empty()
            && u.content_type.is_none()
            && u.key_id.is_empty()
            && u.partial_iv.is_empty()
            && u.counter_signatures.is_empty()
            && u.rest.is_empty();
        if !only_iv {
            return Err(invalid(
                "encrypt0 unprotected header",
                "must hold only the IV",
            ));
        }
        let ciphertext = encrypt0.ciphertext.ok_or(ProtocolError::MissingField {
            format: F,
            field: "ciphertext",
        })?;
        if ciphertext.len() < TAG_LEN {
            return Err(invalid("ciphertext", "shorter than the GCM tag"));
        }
        let aad = coset::enc_structure_data(
            EncryptionContext::CoseEncrypt0,
            encrypt0.protected,
            &header.external_aad()?,
        );
        Ok(VerifiedPackage {
            header,
            iv,
            aad,
            ciphertext,
        })
    }
}

/// A package whose vendor signature and structure have been verified. The bundle is still
/// encrypted.
#[derive(Clone, Debug)]
pub struct VerifiedPackage {
    header: PackageHeader,
    iv: [u8; IV_LEN],
    aad: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl VerifiedPackage {
    /// The package's public header.
    pub fn header(&self) -> &PackageHeader {
        &self.header
    }

    /// Length of the decrypted bundle in bytes.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len() - TAG_LEN
    }

    /// Decrypts the bundle into a new zeroizing buffer.
    pub fn decrypt(&self, content_key: &ContentKey) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.plaintext_len()]);
        self.decrypt_in_place(content_key, &mut out)?;
        Ok(out)
    }

    /// Decrypts the bundle straight into `out` (e.g. protected memory) and returns its length.
    /// `out` must hold at least [`VerifiedPackage::plaintext_len`] bytes; on failure the bytes
    /// written are zeroized again.
    pub fn decrypt_in_place(&self, content_key: &ContentKey, out: &mut [u8]) -> Result<usize> {
        let len = self.plaintext_len();
        if out.len() < len {
            return Err(ProtocolError::BufferTooSmall {
                format: F,
                needed: len,
                got: out.len(),
            });
        }
        let (ct, tag) = self.ciphertext.split_at(len);
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| invalid("ciphertext", "bad tag"))?;
        let dst = &mut out[..len];
        dst.copy_from_slice(ct);
        let result = cipher(content_key).decrypt_inout_detached(
            &self.iv.into(),
            &self.aad,
            dst.into(),
            &tag,
        );
        if result.is_err() {
            dst.zeroize();
            return Err(ProtocolError::DecryptionFailed { format: F });
        }
        Ok(len)
    }
}
