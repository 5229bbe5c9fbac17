//! The device's side of an OP-TEE token: the attestation PTA's RSA public key and the
//! RSASSA-PSS check of its evidence (feature `optee-verify`; verifiers only, never the TA).

use alloc::vec::Vec;

use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{BoxedUint, PublicKey};
use sha2::Sha256;

use super::{MAX_RSA_BYTES, MIN_RSA_BYTES, OpteeToken, device_ueid};
use crate::error::{Format, ProtocolError, Result};
use crate::keys::UEID_LEN;
use crate::token::Claims;

/// The most bytes of an RSA-4096 SubjectPublicKeyInfo with a 33-bit exponent, and some.
pub const MAX_DEVICE_KEY_DER_LEN: usize = 600;

fn bad_key(reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidInput {
        format: Format::Key,
        field: "OP-TEE device key",
        reason,
    }
}

/// An OP-TEE device's attestation key: the attestation PTA's RSA public key (2048 to 4096
/// bits), as enrolled with a verifier. Its wire form is the DER SubjectPublicKeyInfo
/// (RFC 5280, `rsaEncryption`), which [`DeviceKey::from_der`] accepts only in its one DER
/// encoding, so equal keys always have equal bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKey {
    key: PublicKey,
    der: Vec<u8>,
    modulus: Vec<u8>,
}

impl DeviceKey {
    fn from_key(key: PublicKey) -> Result<Self> {
        let modulus = key.n_bytes().into_vec();
        if modulus.len() < MIN_RSA_BYTES || modulus.len() > MAX_RSA_BYTES {
            return Err(bad_key("the modulus must be 2048 to 4096 bits"));
        }
        let der = key
            .to_public_key_der()
            .map_err(|_| bad_key("cannot be encoded as a SubjectPublicKeyInfo"))?
            .into_vec();
        Ok(DeviceKey { key, der, modulus })
    }

    /// The key from its DER SubjectPublicKeyInfo (what `omg vendor enroll` and the service
    /// take). Refuses anything but the canonical DER of an RSA key of 2048 to 4096 bits.
    pub fn from_der(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_DEVICE_KEY_DER_LEN {
            return Err(bad_key("too long for an RSA-4096 SubjectPublicKeyInfo"));
        }
        let key = PublicKey::from_public_key_der(bytes)
            .map_err(|_| bad_key("not a DER SubjectPublicKeyInfo of an RSA key"))?;
        let this = Self::from_key(key)?;
        if this.der != bytes {
            return Err(bad_key("not in its canonical DER encoding"));
        }
        Ok(this)
    }

    /// The key from the PTA's `PTA_ATTESTATION_GET_PUBKEY` output: exponent and modulus,
    /// big-endian.
    pub fn from_components(exponent: &[u8], modulus: &[u8]) -> Result<Self> {
        let trim = |b: &[u8]| -> Vec<u8> {
            let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            b[start..].to_vec()
        };
        let (e, n) = (trim(exponent), trim(modulus));
        if n.len() < MIN_RSA_BYTES || n.len() > MAX_RSA_BYTES || e.is_empty() || e.len() > 8 {
            return Err(bad_key(
                "the modulus must be 2048 to 4096 bits and the exponent 1 to 8 bytes",
            ));
        }
        let n =
            BoxedUint::from_be_slice(&n, (n.len() * 8) as u32).map_err(|_| bad_key("modulus"))?;
        let e = BoxedUint::from_be_slice(&e, 64).map_err(|_| bad_key("exponent"))?;
        let key = PublicKey::new(n, e).map_err(|_| bad_key("not a valid RSA public key"))?;
        Self::from_key(key)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    /// The modulus, big-endian without leading zero bytes.
    pub fn modulus(&self) -> &[u8] {
        &self.modulus
    }

    /// The device's UEID: `0x01 || SHA-256(modulus)` (see [`device_ueid`]).
    pub fn ueid(&self) -> [u8; UEID_LEN] {
        device_ueid(&self.modulus)
    }

    /// Checks an RSASSA-PSS signature (SHA-256, MGF1-SHA-256, 32-byte salt) of `message` made
    /// by the PTA's private key, as `PTA_ATTESTATION_HASH_TA_MEMORY` signs.
    pub fn verify_pta(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let bad = ProtocolError::BadSignature {
            format: Format::Token,
        };
        if signature.len() != self.modulus.len() {
            return Err(bad);
        }
        let signature = rsa::pss::Signature::try_from(signature).map_err(|_| bad.clone())?;
        rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(self.key.clone(), 32)
            .verify(message, &signature)
            .map_err(|_| bad)
    }
}

impl OpteeToken {
    /// Verifies an OP-TEE token against the device's enrolled attestation key and returns its
    /// claims: everything [`OpteeToken::open`] checks, then that the instance id is the key's
    /// UEID ([`ProtocolError::Mismatch`] "instance id") and that the PTA's signature of
    /// `binding || ta_hash` verifies with it ([`ProtocolError::BadSignature`]). The nonce,
    /// the measurement against reference values and the enclave key hash are the caller's to
    /// check, as for [`crate::token::Token::verify`].
    pub fn verify(bytes: &[u8], device: &DeviceKey) -> Result<Claims> {
        let opened = Self::open(bytes)?;
        if opened.claims.instance_id != device.ueid() {
            return Err(ProtocolError::Mismatch {
                format: Format::Token,
                field: "instance id",
            });
        }
        device.verify_pta(&opened.pta_message, &opened.evidence.signature)?;
        Ok(opened.claims)
    }
}
