//! A software stand-in for OP-TEE's attestation PTA and for the omg TA's token making, so
//! that verifiers can be tested on the host. The PTA's key here is an ordinary RSA key made
//! from a deterministic RNG: test keys only.

use alloc::vec;
use alloc::vec::Vec;

use coset::cbor::value::Value;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use omg_protocol::optee::{self, DeviceKey, Evidence, PendingToken};
use omg_protocol::rand_core::CryptoRng;
use omg_protocol::token::Claims;
use p256::ecdsa::signature::Signer;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

use crate::DeterministicRng;

/// A simulated attestation PTA: an RSA-2048 key pair and the memory hash of "the calling TA".
pub struct SimulatedPta {
    key: rsa::PrivateKey,
    /// The hash `PTA_ATTESTATION_HASH_TA_MEMORY` reports for the calling TA.
    pub ta_hash: [u8; 32],
}

impl SimulatedPta {
    /// A PTA whose RSA-2048 key comes from `seed`, for a TA whose memory hash is `ta_hash`.
    pub fn new(seed: u64, ta_hash: [u8; 32]) -> Self {
        let mut rng = DeterministicRng::new(seed);
        let key = rsa::PrivateKey::new(&mut rng, 2048).expect("RSA-2048 key generation");
        SimulatedPta { key, ta_hash }
    }

    /// The same PTA key, for a TA with another memory hash.
    pub fn for_ta(&self, ta_hash: [u8; 32]) -> Self {
        SimulatedPta {
            key: self.key.clone(),
            ta_hash,
        }
    }

    /// The device's attestation key, as a verifier enrols it.
    pub fn device_key(&self) -> DeviceKey {
        let public = self.key.to_public_key();
        DeviceKey::from_components(&public.e_bytes(), &public.n_bytes())
            .expect("a valid RSA-2048 key")
    }

    /// The device key's DER SubjectPublicKeyInfo (what enrolment and activation send).
    pub fn device_key_der(&self) -> Vec<u8> {
        self.device_key().to_der().to_vec()
    }

    /// The device's UEID, `0x01 || SHA-256(modulus)`.
    pub fn ueid(&self) -> [u8; 33] {
        self.device_key().ueid()
    }

    /// What `PTA_ATTESTATION_HASH_TA_MEMORY` returns for `nonce`: the TA hash followed by the
    /// RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signature of `nonce || hash`.
    pub fn hash_ta_memory(&self, nonce: &[u8], rng: &mut dyn CryptoRng) -> Vec<u8> {
        self.sign_hash(nonce, &self.ta_hash, rng)
    }

    /// The PTA's signature scheme over any `hash` (what its other commands, the TA's
    /// signed-header digest and the core's memory hash, sign for the normal world).
    pub fn sign_hash(&self, nonce: &[u8], hash: &[u8; 32], rng: &mut dyn CryptoRng) -> Vec<u8> {
        let signer = rsa::pss::SigningKey::<Sha256>::new_with_salt_len(self.key.clone(), 32);
        let mut message = Vec::with_capacity(nonce.len() + 32);
        message.extend_from_slice(nonce);
        message.extend_from_slice(hash);
        let signature = signer.sign_with_rng(rng, &message);
        let mut out = hash.to_vec();
        out.extend_from_slice(&signature.to_vec());
        out
    }

    /// The claims the omg TA makes on this device for `nonce` and `enclave_key_hash`.
    pub fn claims(&self, nonce: &[u8], enclave_key_hash: [u8; 32]) -> Claims {
        optee::claims(
            self.ueid(),
            nonce,
            self.ta_hash,
            Some("0.1.0"),
            enclave_key_hash,
        )
    }

    /// A token as the omg TA makes it: a fresh ephemeral key signs `claims`, the PTA signs
    /// their binding.
    pub fn token_for(&self, claims: &Claims, rng: &mut dyn CryptoRng) -> Vec<u8> {
        let ephemeral = omg_protocol::generate_signing_key(rng);
        let pending = PendingToken::new(claims, &ephemeral).expect("OP-TEE claims");
        let output = self.hash_ta_memory(&pending.pta_nonce(), rng);
        pending.finish(&output).expect("token")
    }

    /// [`SimulatedPta::token_for`] the TA's own claims.
    pub fn token(
        &self,
        nonce: &[u8],
        enclave_key_hash: [u8; 32],
        rng: &mut dyn CryptoRng,
    ) -> Vec<u8> {
        self.token_for(&self.claims(nonce, enclave_key_hash), rng)
    }
}

/// A token of `claims` signed by `signer`, carrying `evidence`, built from the layout
/// docs/protocol.md gives ("The OP-TEE token"), not by omg's token code: what an attacker who
/// holds a genuine token (but not its ephemeral key) can make.
pub fn forge_token(
    claims: &Claims,
    signer: &omg_protocol::SigningKey,
    evidence: &Evidence,
) -> Vec<u8> {
    let value = Value::Map(vec![
        (
            Value::Integer(1.into()),
            Value::Bytes(evidence.ephemeral_public_key.to_vec()),
        ),
        (
            Value::Integer(2.into()),
            Value::Bytes(evidence.ta_hash.to_vec()),
        ),
        (
            Value::Integer(3.into()),
            Value::Bytes(evidence.signature.clone()),
        ),
    ]);
    let header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(omg_protocol::key_id(signer.verifying_key()).to_vec())
        .value(optee::HEADER_OPTEE_EVIDENCE, value)
        .build();
    CoseSign1Builder::new()
        .protected(header)
        .payload(claims.to_cbor().expect("claims encode"))
        .create_signature(b"", |tbs| {
            let sig: p256::ecdsa::Signature = signer.sign(tbs);
            sig.to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .expect("token encodes")
}
