//! The endorsement: a device maker's signed statement that a device attestation key is the key
//! of a genuine device it made (the RATS endorser's endorsement of the attester's key).
//!
//! # Layout
//!
//! ```text
//! Endorsement = #6.18([                              ; COSE_Sign1, see crate::cose
//!     << {1: -7, 3: "application/vnd.omg.endorsement+cbor", 4: kid} >>,  ; kid = key_id(maker)
//!     {},
//!     << EndorsementPayload >>,
//!     bstr .size 64
//! ])
//!
//! EndorsementPayload = {
//!     1: bstr .size 65,     ; the device's attestation public key, SEC1 uncompressed
//!     2: bstr .size 16,     ; the maker's key id (the same as kid)
//!     3: uint,              ; issued at: seconds since the Unix epoch (u64)
//!     ? 4: uint,            ; not after: seconds since the Unix epoch (u64), inclusive
//! }
//! ```
//!
//! Canonical CBOR, no other keys, at most [`MAX_ENDORSEMENT_LEN`] bytes in all. The content
//! type in the protected header keeps an endorsement from being confused with another message
//! signed by the same key. A verifier finds the maker's key by the kid
//! ([`Endorsement::maker_key_id`], unverified), then verifies with it
//! ([`Endorsement::verify`]) and checks the device key and the time ([`Endorsement::check`]).

use alloc::vec::Vec;

use coset::cbor::value::Value;
use p256::ecdsa::{SigningKey, VerifyingKey};

use crate::cbor::{self, FieldMap};
use crate::cose;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{KEY_ID_LEN, SEC1_PUBLIC_KEY_LEN, ct_eq, key_id, verifying_key_from_sec1};

/// Maximum encoded size of an endorsement.
pub const MAX_ENDORSEMENT_LEN: usize = 1024;
/// COSE content type of an endorsement.
pub const ENDORSEMENT_CONTENT_TYPE: &str = "application/vnd.omg.endorsement+cbor";

const F: Format = Format::Endorsement;

const KEYS: &[(i64, &str)] = &[
    (1, "device public key"),
    (2, "maker key id"),
    (3, "issued at"),
    (4, "not after"),
];

/// Why an endorsement does not vouch for a device now. Each reason is its own variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The endorsement names another device key.
    WrongDevice,
    /// `now` is past the endorsement's not-after time.
    Expired,
}

/// The terms of an endorsement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endorsement {
    /// The endorsed device attestation public key (SEC1 uncompressed).
    pub device_public_key: [u8; SEC1_PUBLIC_KEY_LEN],
    /// The key id of the maker's signing key.
    pub maker_key_id: [u8; KEY_ID_LEN],
    /// When the maker signed it, seconds since the Unix epoch.
    pub issued_at: u64,
    /// Last second (inclusive) at which it vouches for the device; `None` for no end.
    pub not_after: Option<u64>,
}

impl Endorsement {
    fn to_cbor(&self) -> Result<Vec<u8>> {
        verifying_key_from_sec1(&self.device_public_key).map_err(|_| {
            ProtocolError::InvalidInput {
                format: F,
                field: "device public key",
                reason: "not a SEC1 uncompressed P-256 key",
            }
        })?;
        let mut m = alloc::vec![
            (1, Value::Bytes(self.device_public_key.to_vec())),
            (2, Value::Bytes(self.maker_key_id.to_vec())),
            (3, cbor::u(self.issued_at)),
        ];
        if let Some(t) = self.not_after {
            m.push((4, cbor::u(t)));
        }
        cbor::encode(&cbor::int_map(m), F)
    }

    fn from_cbor(bytes: &[u8]) -> Result<Self> {
        let value = cbor::decode_canonical(bytes, F)?;
        let mut map = FieldMap::parse(
            value,
            F,
            "endorsement payload must be a CBOR map",
            KEYS,
            true,
        )?;
        let device_public_key = cbor::bytes_n::<SEC1_PUBLIC_KEY_LEN>(
            map.require(1, "device public key")?,
            F,
            "device public key",
        )?;
        verifying_key_from_sec1(&device_public_key).map_err(|_| ProtocolError::InvalidField {
            format: F,
            field: "device public key",
            reason: "not a SEC1 uncompressed P-256 key",
        })?;
        let maker_key_id =
            cbor::bytes_n::<KEY_ID_LEN>(map.require(2, "maker key id")?, F, "maker key id")?;
        let issued_at = cbor::uint(map.require(3, "issued at")?, F, "issued at")?;
        let not_after = map
            .take(4)
            .map(|v| cbor::uint(v, F, "not after"))
            .transpose()?;
        Ok(Endorsement {
            device_public_key,
            maker_key_id,
            issued_at,
            not_after,
        })
    }

    /// Signs the endorsement with the maker's key (its key id must be `maker_key_id`).
    pub fn sign(&self, maker_key: &SigningKey) -> Result<Vec<u8>> {
        if self.maker_key_id != key_id(maker_key.verifying_key()) {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "maker key id",
                reason: "is not the key id of the signing key",
            });
        }
        let bytes = cose::sign(
            self.to_cbor()?,
            maker_key,
            Some(ENDORSEMENT_CONTENT_TYPE),
            F,
        )?;
        cbor::check_size(&bytes, MAX_ENDORSEMENT_LEN, F)?;
        Ok(bytes)
    }

    /// The key id the endorsement claims to be signed with (the kid of its protected header),
    /// to find the maker's key. Not verified: verify with that key next.
    pub fn maker_key_id(bytes: &[u8]) -> Result<[u8; KEY_ID_LEN]> {
        let kid = cose::key_id_strict(bytes, F, MAX_ENDORSEMENT_LEN)?;
        kid.try_into().map_err(|_| ProtocolError::InvalidField {
            format: F,
            field: "kid",
            reason: "must be 16 bytes",
        })
    }

    /// Verifies an endorsement signed by `maker_public_key` and returns its terms (not yet
    /// checked against a device: see [`Endorsement::check`]).
    pub fn verify(bytes: &[u8], maker_public_key: &VerifyingKey) -> Result<Self> {
        let payload = cose::verify_strict(
            bytes,
            maker_public_key,
            Some(ENDORSEMENT_CONTENT_TYPE),
            F,
            MAX_ENDORSEMENT_LEN,
        )?;
        let endorsement = Self::from_cbor(&payload)?;
        if endorsement.maker_key_id != key_id(maker_public_key) {
            return Err(ProtocolError::InvalidField {
                format: F,
                field: "maker key id",
                reason: "is not the key id of the signing key",
            });
        }
        Ok(endorsement)
    }

    /// Whether this endorsement vouches for the device key `device_public_key` (SEC1) at time
    /// `now`: the key first (constant time), then the time.
    pub fn check(&self, device_public_key: &[u8], now: u64) -> core::result::Result<(), Refusal> {
        if !ct_eq(&self.device_public_key, device_public_key) {
            return Err(Refusal::WrongDevice);
        }
        if self.not_after.is_some_and(|t| now > t) {
            return Err(Refusal::Expired);
        }
        Ok(())
    }
}
