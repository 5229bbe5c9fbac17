//! The attestation token of the OP-TEE (TrustZone) backend: the same EAT claims as
//! [`crate::token`], signed by an ephemeral key of the trusted application (TA) that OP-TEE's
//! attestation PTA binds to the device and to the TA's memory.
//!
//! # Why an ephemeral key
//!
//! On OP-TEE the device's attestation key is the attestation PTA's RSA key pair: OP-TEE's
//! core makes it and keeps it in secure storage; neither the normal world nor a TA can read
//! its private part or make it sign arbitrary bytes. The only signature a TA can get is the
//! one of `PTA_ATTESTATION_HASH_TA_MEMORY`: given a caller's nonce `n` (any length), the PTA
//! returns `h || s`, where `h` is the SHA-256 of the calling TA's code and read-only data in
//! memory and `s` the RSASSA-PSS signature (SHA-256, MGF1-SHA-256, salt 32 bytes) of the
//! bytes `n || h` (it signs SHA-256(`n || h`), OP-TEE 3.22 `core/pta/attestation.c`). That is
//! not an ES256 COSE signature, so the TA makes a fresh P-256 key pair for each token, signs
//! the COSE_Sign1 with it, and has the PTA sign the binding below as its nonce.
//!
//! # Layout
//!
//! ```text
//! OpteeToken = #6.18([                      ; COSE_Sign1, see crate::cose
//!     << {1: -7,                            ; ES256
//!         4: bstr .size 16,                 ; kid = key_id(ephemeral key)
//!         -65537: OpteeEvidence} >>,        ; private-use header parameter
//!     {},
//!     << Claims >>,                         ; crate::token's claims, with:
//!         ;   265 (profile)            = OPTEE_PROFILE
//!         ;   256 (instance id)        = 0x01 || SHA-256(modulus of the PTA's RSA key)
//!         ;   2396 (implementation id) = SHA-256("omg optee backend v1")
//!         ;   2399 (software comps.)   = exactly one: {1: "omg-optee-ta", 2: h, ...}
//!     bstr .size 64                         ; ES256 r || s by the ephemeral key
//! ])
//!
//! OpteeEvidence = {
//!     1: bstr .size 65,                     ; the ephemeral P-256 public key, SEC1 uncompressed
//!     2: bstr .size 32,                     ; h: the PTA's TA memory hash
//!     3: bstr .size (256..512),             ; s: the PTA's RSASSA-PSS signature
//! }
//!
//! binding = SHA-256("omg optee token v1" || ephemeral SEC1 key (65) || SHA-256(payload))
//! s       = RSASSA-PSS-SIGN(PTA key, SHA-256, MGF1-SHA-256, salt 32)(binding || h)
//! ```
//!
//! `payload` is the exact byte string of the COSE_Sign1's payload (the claims). The modulus
//! in the instance id is big-endian without leading zero bytes, as the PTA's
//! `PTA_ATTESTATION_GET_PUBKEY` returns it. The evidence is a protected header parameter with
//! the private-use label -65537 (COSE header labels below -65536 are private use, RFC 9052
//! section 3.1), so any COSE library verifies the ES256 signature with the evidence's
//! ephemeral key and carries the evidence along.
//!
//! # Why this binding
//!
//! The PTA signs only what the caller passes as nonce, so the nonce must carry everything the
//! verifier relies on. Binding the SHA-256 of the whole claims payload (not only the vendor's
//! nonce and the ephemeral key) makes the PTA's signature itself cover the vendor's nonce (no
//! replay under another challenge), the enclave key hash (no swapped HPKE key), the
//! measurement and the instance id; the ephemeral public key in the binding ties the COSE
//! signer to the same TA call, so a token signed by any other key (an attacker's, with the
//! device's evidence) fails, and even a leaked ephemeral private key cannot sign other claims
//! under the same evidence. The label separates this use of the PTA from every other: the TA
//! never lets the normal world choose a PTA nonce (its raw evidence command passes
//! SHA-256([`RAW_EVIDENCE_LABEL`] || caller nonce), see [`raw_evidence_nonce`]).
//!
//! # What a verifier must not accept
//!
//! The PTA signs with the same key and the same `n || h` scheme for two more commands that the
//! **normal world** may call with a nonce of its choice: the TA's signed-header digest
//! (`PTA_ATTESTATION_GET_TA_SHDR_DIGEST`, the hash `sign_encrypt.py` writes into the signed TA
//! file) and the OP-TEE core's memory hash (`PTA_ATTESTATION_HASH_TEE_MEMORY`). A signature
//! alone does not tell which command made it, so a policy's OP-TEE reference values must be
//! TA **memory** hashes only: listing a TA's signed-header digest or the core's hash would let
//! the normal world make valid evidence for any key.
//!
//! # Verification
//!
//! [`OpteeToken::open`] (no device key needed, `no_std`) checks the strict encoding, the
//! protected header, the ES256 signature by the ephemeral key, the profile, that the one
//! software component's measurement is `h`, and returns the claims, the evidence and the bytes
//! the PTA signed. With the `optee-verify` feature (RSA, std side only),
//! [`OpteeToken::verify`] adds the instance id (the device's RSA key) and the PSS signature.
//! Then, as for every token, [`Claims::verify_against`] or the service's policy checks the
//! nonce and the measurement, and [`Claims::check_enclave_key`] the HPKE key hash.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use coset::cbor::value::Value;
use coset::{HeaderBuilder, ProtectedHeader, iana};
use p256::ecdsa::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::cbor::{self, FieldMap};
use crate::cose;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{
    SEC1_PUBLIC_KEY_LEN, UEID_LEN, key_id, public_key_sec1, sha256, verifying_key_from_sec1,
};
use crate::token::{Claims, MAX_TOKEN_LEN, SecurityLifecycle, SoftwareComponent};

/// The EAT profile of OP-TEE tokens: omg's PSA claim set, signed by an ephemeral key that
/// the evidence in header -65537 binds to the device's attestation PTA key.
pub const OPTEE_PROFILE: &str = "tag:omg.example.invalid,2026:eat-psa-optee-v1";
/// The private-use COSE header label of the OP-TEE evidence.
pub const HEADER_OPTEE_EVIDENCE: i64 = -65537;
/// The label that starts the binding the PTA signs as nonce.
pub const BINDING_LABEL: &[u8] = b"omg optee token v1";
/// The label the TA puts before a normal-world nonce in its raw evidence command.
pub const RAW_EVIDENCE_LABEL: &[u8] = b"omg optee raw evidence v1";
/// The implementation id's preimage: the claim is its SHA-256.
pub const IMPLEMENTATION_NAME: &str = "omg optee backend v1";
/// The measurement type of the TA's software component.
pub const MEASUREMENT_TYPE: &str = "omg-optee-ta";
/// The signer id's preimage: the PTA's evidence does not name the TA's signing key, so the
/// claim says so (its SHA-256) instead of claiming a key nobody attested.
pub const SIGNER_NAME: &str = "omg optee ta: signer not attested";
/// Shortest and longest RSA signature (and modulus) accepted: 2048 to 4096 bits.
pub const MIN_RSA_BYTES: usize = 256;
/// Longest RSA signature (and modulus) accepted, in bytes.
pub const MAX_RSA_BYTES: usize = 512;
/// Length of the PTA's TA memory hash.
pub const TA_HASH_LEN: usize = 32;

const F: Format = Format::Token;
const EVIDENCE_KEYS: &[(i64, &str)] = &[
    (1, "ephemeral public key"),
    (2, "TA memory hash"),
    (3, "PTA signature"),
];

fn invalid(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidField {
        format: F,
        field,
        reason,
    }
}

/// The OP-TEE implementation id (claim 2396).
pub fn implementation_id() -> [u8; 32] {
    sha256(IMPLEMENTATION_NAME.as_bytes())
}

/// The UEID of an OP-TEE device: `0x01 || SHA-256(modulus)`, the modulus of the attestation
/// PTA's RSA key big-endian without leading zero bytes (leading zeros given are ignored).
pub fn device_ueid(modulus: &[u8]) -> [u8; UEID_LEN] {
    let start = modulus
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(modulus.len());
    let mut out = [0u8; UEID_LEN];
    out[0] = 0x01;
    out[1..].copy_from_slice(&sha256(&modulus[start..]));
    out
}

/// The nonce the TA's raw evidence command gives the PTA for a normal-world `nonce`: never a
/// token binding, whatever the normal world sends.
pub fn raw_evidence_nonce(nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(RAW_EVIDENCE_LABEL);
    h.update(nonce);
    h.finalize().into()
}

/// The binding the PTA signs as its nonce for a token whose COSE payload is `payload` and
/// whose COSE signer is `ephemeral` (SEC1 uncompressed).
pub fn binding(ephemeral: &[u8; SEC1_PUBLIC_KEY_LEN], payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(BINDING_LABEL);
    h.update(ephemeral);
    h.update(sha256(payload));
    h.finalize().into()
}

/// The claims of an OP-TEE token: omg's claims with [`OPTEE_PROFILE`], the device's UEID
/// ([`device_ueid`]), the OP-TEE implementation id, lifecycle "secured", client id 1, and one
/// software component: the TA's memory hash `ta_hash` ([`MEASUREMENT_TYPE`], `version`).
pub fn claims(
    instance_id: [u8; UEID_LEN],
    nonce: &[u8],
    ta_hash: [u8; TA_HASH_LEN],
    version: Option<&str>,
    enclave_key_hash: [u8; 32],
) -> Claims {
    Claims {
        nonce: nonce.to_vec(),
        instance_id,
        profile: String::from(OPTEE_PROFILE),
        client_id: 1,
        security_lifecycle: SecurityLifecycle::SECURED,
        implementation_id: implementation_id(),
        software_components: vec![SoftwareComponent {
            measurement_type: Some(String::from(MEASUREMENT_TYPE)),
            measurement_value: ta_hash.to_vec(),
            version: version.map(String::from),
            signer_id: sha256(SIGNER_NAME.as_bytes()).to_vec(),
            measurement_desc: Some(String::from("sha-256")),
        }],
        enclave_key_hash,
    }
}

/// The evidence carried in header -65537.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The ephemeral P-256 public key that signs the COSE_Sign1 (SEC1 uncompressed).
    pub ephemeral_public_key: [u8; SEC1_PUBLIC_KEY_LEN],
    /// The PTA's hash of the TA's code and read-only data in memory.
    pub ta_hash: [u8; TA_HASH_LEN],
    /// The PTA's RSASSA-PSS signature of `binding || ta_hash` (256 to 512 bytes).
    pub signature: Vec<u8>,
}

impl Evidence {
    fn to_value(&self) -> Value {
        cbor::int_map(vec![
            (1, Value::Bytes(self.ephemeral_public_key.to_vec())),
            (2, Value::Bytes(self.ta_hash.to_vec())),
            (3, Value::Bytes(self.signature.clone())),
        ])
    }

    fn from_value(value: Value) -> Result<Self> {
        let mut map = FieldMap::parse(
            value,
            F,
            "OP-TEE evidence must be a CBOR map",
            EVIDENCE_KEYS,
            true,
        )?;
        let ephemeral_public_key = cbor::bytes_n::<SEC1_PUBLIC_KEY_LEN>(
            map.require(1, "ephemeral public key")?,
            F,
            "ephemeral public key",
        )?;
        let ta_hash =
            cbor::bytes_n::<TA_HASH_LEN>(map.require(2, "TA memory hash")?, F, "TA memory hash")?;
        let signature = cbor::bytes(
            map.require(3, "PTA signature")?,
            F,
            "PTA signature",
            MAX_RSA_BYTES,
        )?;
        if signature.len() < MIN_RSA_BYTES {
            return Err(invalid(
                "PTA signature",
                "must be 256 to 512 bytes (RSA-2048 to RSA-4096)",
            ));
        }
        Ok(Evidence {
            ephemeral_public_key,
            ta_hash,
            signature,
        })
    }

    /// The ES256 key the COSE_Sign1 must verify with.
    pub fn ephemeral_key(&self) -> Result<VerifyingKey> {
        verifying_key_from_sec1(&self.ephemeral_public_key)
            .map_err(|_| invalid("ephemeral public key", "not a SEC1 uncompressed P-256 key"))
    }
}

fn protected_header(ephemeral: &VerifyingKey, evidence: &Evidence) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(key_id(ephemeral).to_vec())
        .value(HEADER_OPTEE_EVIDENCE, evidence.to_value())
        .build()
}

/// A token being made in the TA: the claims are encoded and signed once the PTA has signed
/// their binding ([`PendingToken::pta_nonce`], then [`PendingToken::finish`]).
pub struct PendingToken<'a> {
    payload: Vec<u8>,
    ephemeral: &'a SigningKey,
    ephemeral_public_key: [u8; SEC1_PUBLIC_KEY_LEN],
    ta_hash: [u8; TA_HASH_LEN],
}

impl<'a> PendingToken<'a> {
    /// Encodes `claims` (profile [`OPTEE_PROFILE`], one software component) to be signed by
    /// `ephemeral`, a key made for this token only.
    pub fn new(claims: &Claims, ephemeral: &'a SigningKey) -> Result<Self> {
        if claims.profile != OPTEE_PROFILE {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "profile",
                reason: "an OP-TEE token carries the OP-TEE profile",
            });
        }
        let [component] = claims.software_components.as_slice() else {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "software components",
                reason: "an OP-TEE token has exactly one: the TA",
            });
        };
        let ta_hash: [u8; TA_HASH_LEN] = component
            .measurement_value
            .as_slice()
            .try_into()
            .map_err(|_| ProtocolError::InvalidInput {
                format: F,
                field: "measurement value",
                reason: "the TA memory hash is 32 bytes",
            })?;
        Ok(PendingToken {
            payload: claims.to_cbor()?,
            ephemeral,
            ephemeral_public_key: public_key_sec1(ephemeral.verifying_key()),
            ta_hash,
        })
    }

    /// The nonce to give the PTA's `PTA_ATTESTATION_HASH_TA_MEMORY`: the [`binding`].
    pub fn pta_nonce(&self) -> [u8; 32] {
        binding(&self.ephemeral_public_key, &self.payload)
    }

    /// Signs the token with the PTA's output for [`PendingToken::pta_nonce`]: the TA memory
    /// hash followed by the RSA signature. The hash must be the claims' measurement.
    pub fn finish(self, pta_output: &[u8]) -> Result<Vec<u8>> {
        if pta_output.len() < TA_HASH_LEN + MIN_RSA_BYTES
            || pta_output.len() > TA_HASH_LEN + MAX_RSA_BYTES
        {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "PTA output",
                reason: "must be a 32-byte hash and a 256- to 512-byte signature",
            });
        }
        let (hash, signature) = pta_output.split_at(TA_HASH_LEN);
        if hash != self.ta_hash {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "PTA output",
                reason: "the PTA's TA memory hash is not the claims' measurement",
            });
        }
        let evidence = Evidence {
            ephemeral_public_key: self.ephemeral_public_key,
            ta_hash: self.ta_hash,
            signature: signature.to_vec(),
        };
        let header = protected_header(self.ephemeral.verifying_key(), &evidence);
        let token = cose::sign_with_header(self.payload, self.ephemeral, header, F)?;
        cbor::check_size(&token, MAX_TOKEN_LEN, F)?;
        Ok(token)
    }
}

/// An OP-TEE token whose encoding, ephemeral signature and inner consistency are checked,
/// but not yet the device's signature ([`OpteeToken::open`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The claims.
    pub claims: Claims,
    /// The evidence of header -65537.
    pub evidence: Evidence,
    /// The bytes the PTA's signature must sign: `binding || ta_hash` (64 bytes).
    pub pta_message: [u8; 64],
}

/// Verification of OP-TEE tokens.
pub struct OpteeToken;

impl OpteeToken {
    /// Parses a token (strict omg encoding: canonical CBOR, tag 18, exactly the protected
    /// header of the module doc, empty unprotected header), verifies its ES256 signature with
    /// the evidence's ephemeral key, parses the claims (strict), and checks the profile and
    /// that the one software component's measurement is the PTA's hash. The PTA's signature
    /// and the instance id are **not** checked: that needs the device's key
    /// ([`OpteeToken::verify`], or check `pta_message` against it yourself).
    pub fn open(bytes: &[u8]) -> Result<Opened> {
        let sign1 = cose::parse_strict(bytes, F, MAX_TOKEN_LEN)?;
        if !cose::is_es256(&sign1) {
            return Err(invalid(
                "alg",
                "expected ES256 (-7) in the protected header",
            ));
        }
        let header = &sign1.protected.header;
        let mut evidence = None;
        for (label, value) in &header.rest {
            if *label == coset::Label::Int(HEADER_OPTEE_EVIDENCE) && evidence.is_none() {
                evidence = Some(Evidence::from_value(value.clone())?);
            } else {
                return Err(invalid(
                    "protected header",
                    "must be exactly {alg: ES256, kid, -65537: evidence}",
                ));
            }
        }
        let Some(evidence) = evidence else {
            return Err(ProtocolError::MissingField {
                format: F,
                field: "OP-TEE evidence (header -65537)",
            });
        };
        let ephemeral = evidence.ephemeral_key()?;
        if header.key_id.as_slice() != key_id(&ephemeral).as_slice() {
            return Err(ProtocolError::WrongKey { format: F });
        }
        let expected = ProtectedHeader {
            original_data: None,
            header: protected_header(&ephemeral, &evidence),
        }
        .cbor_bstr()
        .map_err(|_| ProtocolError::Malformed {
            format: F,
            what: "protected header cannot be encoded",
        })?;
        let Value::Bytes(expected) = expected else {
            return Err(ProtocolError::Malformed {
                format: F,
                what: "protected header cannot be encoded",
            });
        };
        if sign1.protected.original_data.as_deref() != Some(expected.as_slice()) {
            return Err(invalid(
                "protected header",
                "must be exactly {alg: ES256, kid, -65537: evidence}",
            ));
        }
        if !sign1.unprotected.is_empty() {
            return Err(invalid("unprotected header", "must be empty"));
        }
        let payload = cose::verified_payload(sign1, &ephemeral, F)?;
        let claims = Claims::from_cbor(&payload, true)?;
        if claims.profile != OPTEE_PROFILE {
            return Err(invalid("profile", "not the omg OP-TEE EAT profile"));
        }
        let [component] = claims.software_components.as_slice() else {
            return Err(invalid(
                "software components",
                "an OP-TEE token has exactly one: the TA",
            ));
        };
        if component.measurement_value.as_slice() != evidence.ta_hash {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "measurement (not the PTA's TA memory hash)",
            });
        }
        let mut pta_message = [0u8; 64];
        pta_message[..32].copy_from_slice(&binding(&evidence.ephemeral_public_key, &payload));
        pta_message[32..].copy_from_slice(&evidence.ta_hash);
        Ok(Opened {
            claims,
            evidence,
            pta_message,
        })
    }
}

#[cfg(feature = "optee-verify")]
mod rsa_verify;
#[cfg(feature = "optee-verify")]
pub use rsa_verify::DeviceKey;
