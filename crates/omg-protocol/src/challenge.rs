//! The vendor's challenge: a fresh nonce with an expiry time.
//!
//! ```text
//! Challenge = {
//!     1: bstr .size 32,   ; nonce, 32 random bytes from the vendor service
//!     2: uint,            ; expires_at, seconds since the Unix epoch (u64)
//! }
//! ```
//!
//! Canonical CBOR (keys in this order, minimal lengths), at most [`MAX_CHALLENGE_LEN`] bytes,
//! no other keys. The challenge is not signed: it travels from the vendor to the device and the
//! nonce comes back inside the signed attestation token, where the vendor checks that it issued
//! it (omg-vendor: a MAC inside the nonce, checked in constant time; nothing is stored until an
//! activation consumes it).

use alloc::vec;
use alloc::vec::Vec;

use coset::cbor::value::Value;
use rand_core::CryptoRng;

use crate::cbor::{self, FieldMap};
use crate::error::{Format, ProtocolError, Result};
use crate::keys::ct_eq;

/// Maximum encoded size of a challenge.
pub const MAX_CHALLENGE_LEN: usize = 128;
/// Length of the challenge nonce.
pub const NONCE_LEN: usize = 32;

const F: Format = Format::Challenge;
const KEYS: &[(i64, &str)] = &[(1, "nonce"), (2, "expires_at")];

/// A vendor challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// 32 random bytes.
    pub nonce: [u8; NONCE_LEN],
    /// Expiry, seconds since the Unix epoch; the challenge is valid while `now <= expires_at`.
    pub expires_at: u64,
}

impl Challenge {
    /// Makes a fresh challenge valid for `ttl_secs` seconds from `now`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, now: u64, ttl_secs: u64) -> Self {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        Challenge {
            nonce,
            expires_at: now.saturating_add(ttl_secs),
        }
    }

    /// Encodes the challenge.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let value = cbor::int_map(vec![
            (1, Value::Bytes(self.nonce.to_vec())),
            (2, cbor::u(self.expires_at)),
        ]);
        cbor::encode(&value, F)
    }

    /// Decodes a challenge, rejecting anything but the canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        cbor::check_size(bytes, MAX_CHALLENGE_LEN, F)?;
        let value = cbor::decode_canonical(bytes, F)?;
        let mut map = FieldMap::parse(value, F, "challenge must be a CBOR map", KEYS, true)?;
        let nonce = cbor::bytes_n::<NONCE_LEN>(map.require(1, "nonce")?, F, "nonce")?;
        let expires_at = cbor::uint(map.require(2, "expires_at")?, F, "expires_at")?;
        Ok(Challenge { nonce, expires_at })
    }

    /// Fails with [`ProtocolError::Expired`] when `now > expires_at`.
    pub fn check_fresh(&self, now: u64) -> Result<()> {
        if now > self.expires_at {
            return Err(ProtocolError::Expired {
                format: F,
                expires_at: self.expires_at,
                now,
            });
        }
        Ok(())
    }

    /// Checks (in constant time) that `nonce` is this challenge's nonce and that it is still
    /// fresh at `now`.
    pub fn check_response(&self, nonce: &[u8], now: u64) -> Result<()> {
        self.check_fresh(now)?;
        if !ct_eq(&self.nonce, nonce) {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "nonce",
            });
        }
        Ok(())
    }
}
