//! Stateless challenge nonces: a nonce carries its own expiry and a MAC, so issuing one writes
//! nothing to the database.
//!
//! ```text
//! nonce = expires_at (8 bytes, big endian) || random (8 bytes) || tag (16 bytes)
//! tag   = HMAC-SHA256(nonce key, "omg challenge nonce v1" || expires_at || random)[..16]
//! nonce key = HKDF-SHA256(salt = "omg challenge nonce key v1", ikm = vendor signing key)
//! ```
//!
//! Every service instance holding the vendor key derives the same nonce key, so a fleet of
//! instances on one PostgreSQL database accepts each other's nonces. A nonce is recorded only
//! when an activation whose token verified consumes it (see [`crate::service`]): single use is
//! kept by that record, not by a row per challenge.

use hkdf::Hkdf;
use hkdf::hmac::{Hmac, KeyInit, Mac};
use omg_protocol::SigningKey;
use omg_protocol::challenge::{Challenge, NONCE_LEN};
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::zeroize::Zeroizing;
use sha2::Sha256;

/// Domain separation of the tag.
const TAG_CONTEXT: &[u8] = b"omg challenge nonce v1";
/// HKDF salt of the nonce key.
const KEY_SALT: &[u8] = b"omg challenge nonce key v1";
/// Bytes of the nonce covered by the tag: the expiry and the random part.
const BODY_LEN: usize = 16;

/// The key that tags and checks challenge nonces.
pub(crate) struct NonceKey(Zeroizing<[u8; 32]>);

impl NonceKey {
    /// The nonce key derived from the vendor's signing key.
    pub(crate) fn derive(vendor_key: &SigningKey) -> Self {
        let secret = Zeroizing::new(vendor_key.to_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(KEY_SALT), &secret)
            .expand(b"", key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        NonceKey(key)
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(TAG_CONTEXT);
        mac.update(body);
        mac
    }

    /// A fresh challenge valid for `ttl_secs` from `now`, its nonce tagged with this key.
    pub(crate) fn issue<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        now: u64,
        ttl_secs: u64,
    ) -> Challenge {
        let expires_at = now.saturating_add(ttl_secs);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..8].copy_from_slice(&expires_at.to_be_bytes());
        rng.fill_bytes(&mut nonce[8..BODY_LEN]);
        let tag = self.mac(&nonce[..BODY_LEN]).finalize().into_bytes();
        nonce[BODY_LEN..].copy_from_slice(&tag[..NONCE_LEN - BODY_LEN]);
        Challenge { nonce, expires_at }
    }

    /// The expiry a nonce carries if this key tagged it (checked in constant time), `None`
    /// for any other value.
    pub(crate) fn open(&self, nonce: &[u8]) -> Option<u64> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        self.mac(&nonce[..BODY_LEN])
            .verify_truncated_left(&nonce[BODY_LEN..])
            .ok()?;
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&nonce[..8]);
        Some(u64::from_be_bytes(expiry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omg_testkit::DeterministicRng;

    #[test]
    fn a_nonce_opens_only_under_its_key_and_unaltered() {
        let mut rng = DeterministicRng::new(7);
        let key = NonceKey::derive(&omg_protocol::generate_signing_key(&mut rng));
        let other = NonceKey::derive(&omg_protocol::generate_signing_key(&mut rng));
        let c = key.issue(&mut rng, 1_000, 60);
        assert_eq!(c.expires_at, 1_060);
        assert_eq!(key.open(&c.nonce), Some(1_060));
        assert_eq!(other.open(&c.nonce), None);
        for i in 0..NONCE_LEN {
            let mut bad = c.nonce;
            bad[i] ^= 1;
            assert_eq!(key.open(&bad), None, "byte {i}");
        }
        assert_eq!(key.open(&c.nonce[..31]), None);
        assert_ne!(key.issue(&mut rng, 1_000, 60).nonce, c.nonce);
    }
}
