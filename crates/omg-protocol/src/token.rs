//! The attestation token: an EAT (RFC 9711) with the claims of the Arm PSA attestation token
//! (RFC 9783), signed by the device's attestation key as a COSE_Sign1 with ES256.
//!
//! # Layout
//!
//! ```text
//! Token = #6.18([                       ; COSE_Sign1, see crate::cose
//!     << {1: -7, 4: kid} >>,             ; ES256, kid = key_id(device key)
//!     {},
//!     << Claims >>,
//!     bstr .size 64                      ; r || s
//! ])
//!
//! Claims = {
//!     10:     bstr .size (32 / 48 / 64), ; eat_nonce: the vendor's challenge nonce
//!     256:    bstr .size 33,             ; ueid / PSA instance id: 0x01 || SHA-256(SEC1 device pk)
//!     265:    tstr,                      ; eat_profile: OMG_PROFILE
//!     2394:   int,                       ; PSA client id (caller partition; 1 = the omg enclave)
//!     2395:   uint,                      ; PSA security lifecycle (0x0000..=0x60ff)
//!     2396:   bstr .size 32,             ; PSA implementation id (platform / backend identity)
//!     2399:   [+ SwComponent],           ; PSA software components (1..=16)
//!     -65537: bstr .size 32,             ; omg: SHA-256 of the enclave's HPKE public key
//! }
//!
//! SwComponent = {
//!     ? 1: tstr,                         ; measurement type, e.g. "enclave"
//!       2: bstr .size (32 / 48 / 64),    ; measurement value (the enclave measurement)
//!     ? 4: tstr,                         ; version
//!       5: bstr .size (32 / 48 / 64),    ; signer id (hash of the code signer's key)
//!     ? 6: tstr,                         ; measurement description, e.g. "sha-256"
//! }
//! ```
//!
//! Claim keys are those of the IANA CWT claims registry used by RFC 9783 (`eat_nonce` 10,
//! `ueid` 256, `eat_profile` 265, `psa-client-id` 2394, `psa-security-lifecycle` 2395,
//! `psa-implementation-id` 2396, `psa-software-components` 2399). The enclave key hash uses
//! the private-use key **-65537** (CWT claim keys below -65536 are private use, RFC 8392
//! section 9.1), so it cannot collide with a registered claim.
//!
//! # Profile
//!
//! The token does **not** claim the PSA profile `tag:psacertified.org,2023:psa#tfm`: that
//! profile promises a PSA Root of Trust (TF-M, a certified initial attestation key) and no
//! private claims, which a Linux backend cannot honestly promise. It carries omg's own profile
//! [`OMG_PROFILE`] (`tag:omg.example.invalid,2026:eat-psa-v1`): "the PSA claim set of RFC 9783
//! with the same encodings, plus the enclave key hash claim -65537, signed with ES256 by the
//! device attestation key whose UEID is the instance id". A PSA-aware verifier can still read
//! every PSA claim.
//!
//! # The OP-TEE backend
//!
//! On OP-TEE the same claims carry another profile and instance id and are signed by an
//! ephemeral key, which the attestation PTA's RSA evidence in a protected header binds to the
//! device and the TA: see [`crate::optee`] for that layout. [`Token::verify`] refuses such a
//! token (its header and profile are not this module's).
//!
//! # Verification
//!
//! [`Token::verify`] is strict (canonical encoding, exact headers, no unknown claims) and binds
//! the instance id to the verifying key. [`Token::verify_foreign`] accepts the same claims
//! signed by any COSE library (tagged or not, any valid CBOR encoding, extra header parameters
//! and unknown claims ignored). [`Claims::verify_against`] then checks the nonce and the
//! measurements; [`Claims::check_enclave_key`] checks the HPKE key hash.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use coset::cbor::value::Value;
use p256::ecdsa::{SigningKey, VerifyingKey};

use crate::cbor::{self, FieldMap};
use crate::cose;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::{UEID_LEN, ct_eq, sha256, ueid};

/// Maximum encoded size of a token.
pub const MAX_TOKEN_LEN: usize = 4096;
/// omg's EAT profile (see the module doc for why not the PSA profile).
pub const OMG_PROFILE: &str = "tag:omg.example.invalid,2026:eat-psa-v1";
/// The PSA 2023 profile string, for reference (not used by omg tokens).
pub const PSA_PROFILE: &str = "tag:psacertified.org,2023:psa#tfm";

/// Claim key `eat_nonce`.
pub const CLAIM_NONCE: i64 = 10;
/// Claim key `ueid` (PSA instance id).
pub const CLAIM_UEID: i64 = 256;
/// Claim key `eat_profile`.
pub const CLAIM_PROFILE: i64 = 265;
/// Claim key `psa-client-id`.
pub const CLAIM_CLIENT_ID: i64 = 2394;
/// Claim key `psa-security-lifecycle`.
pub const CLAIM_SECURITY_LIFECYCLE: i64 = 2395;
/// Claim key `psa-implementation-id`.
pub const CLAIM_IMPLEMENTATION_ID: i64 = 2396;
/// Claim key `psa-software-components`.
pub const CLAIM_SW_COMPONENTS: i64 = 2399;
/// omg's private-use claim key: SHA-256 of the enclave's HPKE public key.
pub const CLAIM_ENCLAVE_KEY_HASH: i64 = -65537;

/// Maximum number of software components in a token.
pub const MAX_SW_COMPONENTS: usize = 16;
/// Maximum length of text fields inside a token.
pub const MAX_TEXT_LEN: usize = 128;

const F: Format = Format::Token;
const CLAIM_KEYS: &[(i64, &str)] = &[
    (CLAIM_NONCE, "nonce"),
    (CLAIM_UEID, "instance id"),
    (CLAIM_PROFILE, "profile"),
    (CLAIM_CLIENT_ID, "client id"),
    (CLAIM_SECURITY_LIFECYCLE, "security lifecycle"),
    (CLAIM_IMPLEMENTATION_ID, "implementation id"),
    (CLAIM_SW_COMPONENTS, "software components"),
    (CLAIM_ENCLAVE_KEY_HASH, "enclave key hash"),
];
const COMPONENT_KEYS: &[(i64, &str)] = &[
    (1, "measurement type"),
    (2, "measurement value"),
    (4, "version"),
    (5, "signer id"),
    (6, "measurement description"),
];

/// PSA security lifecycle (claim 2395): the high byte is the state, the low byte is
/// implementation defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityLifecycle(pub u16);

impl SecurityLifecycle {
    /// Unknown.
    pub const UNKNOWN: Self = Self(0x0000);
    /// Assembly and test.
    pub const ASSEMBLY_AND_TEST: Self = Self(0x1000);
    /// PSA RoT provisioning.
    pub const PSA_ROT_PROVISIONING: Self = Self(0x2000);
    /// Secured: the only state in which a production device should get model keys.
    pub const SECURED: Self = Self(0x3000);
    /// Non-PSA-RoT debug.
    pub const NON_PSA_ROT_DEBUG: Self = Self(0x4000);
    /// Recoverable PSA RoT debug.
    pub const RECOVERABLE_PSA_ROT_DEBUG: Self = Self(0x5000);
    /// Decommissioned.
    pub const DECOMMISSIONED: Self = Self(0x6000);

    /// Whether the state (high byte) is "secured".
    pub fn is_secured(self) -> bool {
        self.0 & 0xff00 == 0x3000
    }

    fn is_valid(self) -> bool {
        self.0 <= 0x60ff
    }
}

/// One PSA software component (an entry of claim 2399).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftwareComponent {
    /// Measurement type (key 1), e.g. `"enclave"`.
    pub measurement_type: Option<String>,
    /// Measurement value (key 2): 32, 48 or 64 bytes.
    pub measurement_value: Vec<u8>,
    /// Version (key 4).
    pub version: Option<String>,
    /// Signer id (key 5): 32, 48 or 64 bytes.
    pub signer_id: Vec<u8>,
    /// Measurement description (key 6), e.g. `"sha-256"`.
    pub measurement_desc: Option<String>,
}

/// A reference value the verifier expects in the token's software components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceValue {
    /// Expected measurement type; `None` matches any.
    pub measurement_type: Option<String>,
    /// Expected measurement value.
    pub measurement_value: Vec<u8>,
    /// Expected signer id.
    pub signer_id: Vec<u8>,
}

impl ReferenceValue {
    fn matches(&self, c: &SoftwareComponent) -> bool {
        let type_ok = match &self.measurement_type {
            None => true,
            Some(t) => c.measurement_type.as_deref() == Some(t.as_str()),
        };
        // Evaluate both comparisons to keep the timing independent of which one differs.
        let value_ok = ct_eq(&self.measurement_value, &c.measurement_value);
        let signer_ok = ct_eq(&self.signer_id, &c.signer_id);
        type_ok & value_ok & signer_ok
    }
}

/// The claims of an omg attestation token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Claim 10: the vendor's nonce (32, 48 or 64 bytes; omg challenges use 32).
    pub nonce: Vec<u8>,
    /// Claim 256: UEID of the device key, `0x01 || SHA-256(SEC1 public key)`.
    pub instance_id: [u8; UEID_LEN],
    /// Claim 265: the EAT profile, [`OMG_PROFILE`].
    pub profile: String,
    /// Claim 2394: PSA client id of the caller.
    pub client_id: i32,
    /// Claim 2395: PSA security lifecycle.
    pub security_lifecycle: SecurityLifecycle,
    /// Claim 2396: implementation id (identifies the platform / backend implementation).
    pub implementation_id: [u8; 32],
    /// Claim 2399: measured software components (1..=16).
    pub software_components: Vec<SoftwareComponent>,
    /// Claim -65537: SHA-256 of the enclave's HPKE public key.
    pub enclave_key_hash: [u8; 32],
}

fn is_psa_hash_len(len: usize) -> bool {
    matches!(len, 32 | 48 | 64)
}

fn invalid(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidField {
        format: F,
        field,
        reason,
    }
}

impl Claims {
    /// Claims for `device_key` with omg's profile, client id 1 and lifecycle "secured".
    pub fn new(
        device_key: &VerifyingKey,
        nonce: &[u8],
        implementation_id: [u8; 32],
        software_components: Vec<SoftwareComponent>,
        enclave_key_hash: [u8; 32],
    ) -> Self {
        Claims {
            nonce: nonce.to_vec(),
            instance_id: ueid(device_key),
            profile: String::from(OMG_PROFILE),
            client_id: 1,
            security_lifecycle: SecurityLifecycle::SECURED,
            implementation_id,
            software_components,
            enclave_key_hash,
        }
    }

    fn validate(&self) -> Result<()> {
        if !is_psa_hash_len(self.nonce.len()) {
            return Err(invalid("nonce", "must be 32, 48 or 64 bytes"));
        }
        if self.instance_id[0] != 0x01 {
            return Err(invalid("instance id", "UEID type must be 0x01 (RAND)"));
        }
        if self.profile.is_empty() || self.profile.len() > MAX_TEXT_LEN {
            return Err(invalid("profile", "must be 1..=128 bytes"));
        }
        if !self.security_lifecycle.is_valid() {
            return Err(invalid("security lifecycle", "not a PSA lifecycle value"));
        }
        if self.software_components.is_empty() || self.software_components.len() > MAX_SW_COMPONENTS
        {
            return Err(invalid(
                "software components",
                "must hold 1..=16 components",
            ));
        }
        for c in &self.software_components {
            if !is_psa_hash_len(c.measurement_value.len()) {
                return Err(invalid("measurement value", "must be 32, 48 or 64 bytes"));
            }
            if !is_psa_hash_len(c.signer_id.len()) {
                return Err(invalid("signer id", "must be 32, 48 or 64 bytes"));
            }
            for (t, name) in [
                (&c.measurement_type, "measurement type"),
                (&c.version, "version"),
                (&c.measurement_desc, "measurement description"),
            ] {
                if let Some(t) = t
                    && (t.is_empty() || t.len() > MAX_TEXT_LEN)
                {
                    return Err(invalid(name, "must be 1..=128 bytes"));
                }
            }
        }
        Ok(())
    }

    fn to_value(&self) -> Value {
        let components = self
            .software_components
            .iter()
            .map(|c| {
                let mut m = Vec::new();
                if let Some(t) = &c.measurement_type {
                    m.push((1, Value::Text(t.clone())));
                }
                m.push((2, Value::Bytes(c.measurement_value.clone())));
                if let Some(v) = &c.version {
                    m.push((4, Value::Text(v.clone())));
                }
                m.push((5, Value::Bytes(c.signer_id.clone())));
                if let Some(d) = &c.measurement_desc {
                    m.push((6, Value::Text(d.clone())));
                }
                cbor::int_map(m)
            })
            .collect();
        // Deterministic order: positive keys ascending, then the negative key.
        cbor::int_map(vec![
            (CLAIM_NONCE, Value::Bytes(self.nonce.clone())),
            (CLAIM_UEID, Value::Bytes(self.instance_id.to_vec())),
            (CLAIM_PROFILE, Value::Text(self.profile.clone())),
            (CLAIM_CLIENT_ID, Value::Integer(self.client_id.into())),
            (
                CLAIM_SECURITY_LIFECYCLE,
                cbor::u(u64::from(self.security_lifecycle.0)),
            ),
            (
                CLAIM_IMPLEMENTATION_ID,
                Value::Bytes(self.implementation_id.to_vec()),
            ),
            (CLAIM_SW_COMPONENTS, Value::Array(components)),
            (
                CLAIM_ENCLAVE_KEY_HASH,
                Value::Bytes(self.enclave_key_hash.to_vec()),
            ),
        ])
    }

    /// Encodes the claims map (the COSE payload).
    pub fn to_cbor(&self) -> Result<Vec<u8>> {
        self.validate()?;
        cbor::encode(&self.to_value(), F)
    }

    /// Parses a claims map. `strict`: canonical encoding and no unknown claims.
    pub fn from_cbor(bytes: &[u8], strict: bool) -> Result<Self> {
        cbor::check_size(bytes, MAX_TOKEN_LEN, F)?;
        let value = if strict {
            cbor::decode_canonical(bytes, F)?
        } else {
            cbor::decode_exact(bytes, F)?
        };
        let mut map = FieldMap::parse(value, F, "claims must be a CBOR map", CLAIM_KEYS, strict)?;
        let nonce = cbor::bytes(map.require(CLAIM_NONCE, "nonce")?, F, "nonce", 64)?;
        let instance_id =
            cbor::bytes_n::<UEID_LEN>(map.require(CLAIM_UEID, "instance id")?, F, "instance id")?;
        let profile = cbor::text(
            map.require(CLAIM_PROFILE, "profile")?,
            F,
            "profile",
            MAX_TEXT_LEN,
        )?;
        let client_id = i32::try_from(cbor::int(
            map.require(CLAIM_CLIENT_ID, "client id")?,
            F,
            "client id",
        )?)
        .map_err(|_| invalid("client id", "out of range"))?;
        let lifecycle = u16::try_from(cbor::uint(
            map.require(CLAIM_SECURITY_LIFECYCLE, "security lifecycle")?,
            F,
            "security lifecycle",
        )?)
        .map_err(|_| invalid("security lifecycle", "out of range"))?;
        let implementation_id = cbor::bytes_n::<32>(
            map.require(CLAIM_IMPLEMENTATION_ID, "implementation id")?,
            F,
            "implementation id",
        )?;
        let items = cbor::array(
            map.require(CLAIM_SW_COMPONENTS, "software components")?,
            F,
            "software components",
            MAX_SW_COMPONENTS,
        )?;
        let mut software_components = Vec::with_capacity(items.len());
        for item in items {
            let mut c = FieldMap::parse(
                item,
                F,
                "software component must be a CBOR map",
                COMPONENT_KEYS,
                strict,
            )?;
            let opt_text = |v: Option<Value>, name| -> Result<Option<String>> {
                v.map(|v| cbor::text(v, F, name, MAX_TEXT_LEN)).transpose()
            };
            software_components.push(SoftwareComponent {
                measurement_type: opt_text(c.take(1), "measurement type")?,
                measurement_value: cbor::bytes(
                    c.require(2, "measurement value")?,
                    F,
                    "measurement value",
                    64,
                )?,
                version: opt_text(c.take(4), "version")?,
                signer_id: cbor::bytes(c.require(5, "signer id")?, F, "signer id", 64)?,
                measurement_desc: opt_text(c.take(6), "measurement description")?,
            });
        }
        let enclave_key_hash = cbor::bytes_n::<32>(
            map.require(CLAIM_ENCLAVE_KEY_HASH, "enclave key hash")?,
            F,
            "enclave key hash",
        )?;
        let claims = Claims {
            nonce,
            instance_id,
            profile,
            client_id,
            security_lifecycle: SecurityLifecycle(lifecycle),
            implementation_id,
            software_components,
            enclave_key_hash,
        };
        claims.validate()?;
        Ok(claims)
    }

    /// Checks the nonce (constant time) and the software components against the verifier's
    /// reference values: every component must match a reference value and every reference
    /// value must be matched by a component (type when given, value and signer id).
    pub fn verify_against(&self, expected: &[ReferenceValue], expected_nonce: &[u8]) -> Result<()> {
        if !ct_eq(&self.nonce, expected_nonce) {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "nonce",
            });
        }
        let all_known = self
            .software_components
            .iter()
            .all(|c| expected.iter().any(|r| r.matches(c)));
        let all_present = expected
            .iter()
            .all(|r| self.software_components.iter().any(|c| r.matches(c)));
        if expected.is_empty() || !all_known || !all_present {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "software components",
            });
        }
        Ok(())
    }

    /// Checks (constant time) that the token names this enclave HPKE public key.
    pub fn check_enclave_key(&self, enclave_hpke_public_key: &[u8]) -> Result<()> {
        if !ct_eq(&sha256(enclave_hpke_public_key), &self.enclave_key_hash) {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "enclave key hash",
            });
        }
        Ok(())
    }
}

/// Signing and verification of attestation tokens.
pub struct Token;

impl Token {
    /// Signs `claims` with the device attestation key. The claims' instance id must be the UEID
    /// of that key.
    pub fn sign(claims: &Claims, device_key: &SigningKey) -> Result<Vec<u8>> {
        if claims.instance_id != ueid(device_key.verifying_key()) {
            return Err(ProtocolError::InvalidInput {
                format: F,
                field: "instance id",
                reason: "is not the UEID of the signing key",
            });
        }
        let payload = claims.to_cbor()?;
        let token = cose::sign(payload, device_key, None, F)?;
        cbor::check_size(&token, MAX_TOKEN_LEN, F)?;
        Ok(token)
    }

    /// Verifies an omg token (strict form) against the device public key and returns its
    /// claims. The profile must be [`OMG_PROFILE`] and the instance id the key's UEID.
    pub fn verify(bytes: &[u8], device_public_key: &VerifyingKey) -> Result<Claims> {
        let payload = cose::verify_strict(bytes, device_public_key, None, F, MAX_TOKEN_LEN)?;
        let claims = Claims::from_cbor(&payload, true)?;
        Self::check_binding(&claims, device_public_key)?;
        Ok(claims)
    }

    /// Verifies a token produced by another COSE implementation: a COSE_Sign1 (tagged or
    /// untagged) with ES256 over the claims map of the module doc. Encoding variations, extra
    /// header parameters and unknown claims are tolerated; signature, profile and instance id
    /// binding are checked as in [`Token::verify`].
    pub fn verify_foreign(bytes: &[u8], device_public_key: &VerifyingKey) -> Result<Claims> {
        let payload = cose::verify_sign1_es256(bytes, device_public_key, F, MAX_TOKEN_LEN)?;
        let claims = Claims::from_cbor(&payload, false)?;
        Self::check_binding(&claims, device_public_key)?;
        Ok(claims)
    }

    fn check_binding(claims: &Claims, key: &VerifyingKey) -> Result<()> {
        if claims.profile != OMG_PROFILE {
            return Err(invalid("profile", "not the omg EAT profile"));
        }
        if claims.instance_id != ueid(key) {
            return Err(ProtocolError::Mismatch {
                format: F,
                field: "instance id",
            });
        }
        Ok(())
    }
}
