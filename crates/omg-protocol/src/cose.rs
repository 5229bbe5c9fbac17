//! COSE_Sign1 with ES256 (RFC 9052 / RFC 9053), as used by the package, the token and the licence.
//!
//! omg's own messages have exactly one encoding:
//!
//! ```text
//! COSE_Sign1 = #6.18([
//!     protected:   bstr .cbor { 1: -7,                ; alg: ES256
//!                               ? 3: tstr,            ; content type (package, licence)
//!                               4: bstr .size 16 },   ; kid: key_id(signer)
//!     unprotected: {},                                ; always empty
//!     payload:     bstr,                              ; the format's CBOR payload
//!     signature:   bstr .size 64,                     ; r || s, 32 bytes each (RFC 9053 §2.1)
//! ])
//! ```
//!
//! and the strict verifier (`verify_strict`, used by every `verify`/`open` of this crate)
//! accepts nothing else: canonical CBOR, tag 18, exactly that protected header, empty
//! unprotected header, external AAD empty. The signature is checked over the standard
//! `Sig_structure` `["Signature1", protected, h'', payload]`.
//!
//! [`verify_sign1_es256`] is the lenient verifier for COSE_Sign1 messages produced by other
//! libraries (e.g. pycose): tagged or untagged, any encoding, any header parameters besides
//! `alg` = ES256 in the protected header, no `crit`.

use alloc::string::String;
use alloc::vec::Vec;

use coset::cbor::value::Value;
use coset::{
    AsCborValue, CoseSign1, CoseSign1Builder, HeaderBuilder, ProtectedHeader,
    RegisteredLabelWithPrivate, TaggedCborSerializable, iana,
};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

use crate::cbor;
use crate::error::{Format, ProtocolError, Result};
use crate::keys::key_id;

/// CBOR tag of COSE_Sign1.
pub const COSE_SIGN1_TAG: u64 = 18;
/// Length of an ES256 signature (r || s).
pub const ES256_SIGNATURE_LEN: usize = 64;

fn protected_header(content_type: Option<&str>, kid: &[u8]) -> ProtectedHeader {
    let mut builder = HeaderBuilder::new().algorithm(iana::Algorithm::ES256);
    if let Some(ct) = content_type {
        builder = builder.content_type(String::from(ct));
    }
    ProtectedHeader {
        original_data: None,
        header: builder.key_id(kid.to_vec()).build(),
    }
}

fn malformed(format: Format, what: &'static str) -> ProtocolError {
    ProtocolError::Malformed { format, what }
}

/// Signs `payload` as a tagged COSE_Sign1 (ES256, kid = key id of `key`).
pub(crate) fn sign(
    payload: Vec<u8>,
    key: &SigningKey,
    content_type: Option<&str>,
    format: Format,
) -> Result<Vec<u8>> {
    let kid = key_id(key.verifying_key());
    sign_with_header(
        payload,
        key,
        protected_header(content_type, &kid).header,
        format,
    )
}

/// Signs `payload` as a tagged COSE_Sign1 (ES256) with the protected header `header` (which
/// must say ES256) and an empty unprotected header.
pub(crate) fn sign_with_header(
    payload: Vec<u8>,
    key: &SigningKey,
    header: coset::Header,
    format: Format,
) -> Result<Vec<u8>> {
    let sign1 = CoseSign1Builder::new()
        .protected(header)
        .payload(payload)
        .try_create_signature(b"", |tbs| -> Result<Vec<u8>> {
            let sig: Signature = key
                .try_sign(tbs)
                .map_err(|_| malformed(format, "ECDSA signing failed"))?;
            Ok(sig.to_bytes().to_vec())
        })?
        .build();
    sign1
        .to_tagged_vec()
        .map_err(|_| malformed(format, "COSE_Sign1 cannot be encoded"))
}

fn check_signature(sign1: &CoseSign1, key: &VerifyingKey, format: Format) -> Result<()> {
    if sign1.signature.len() != ES256_SIGNATURE_LEN {
        return Err(ProtocolError::InvalidField {
            format,
            field: "signature",
            reason: "an ES256 signature is 64 bytes (r || s)",
        });
    }
    let sig = Signature::from_slice(&sign1.signature)
        .map_err(|_| ProtocolError::BadSignature { format })?;
    sign1.verify_signature(b"", |sig_bytes, tbs| {
        debug_assert_eq!(sig_bytes.len(), ES256_SIGNATURE_LEN);
        key.verify(tbs, &sig)
            .map_err(|_| ProtocolError::BadSignature { format })
    })
}

pub(crate) fn is_es256(sign1: &CoseSign1) -> bool {
    sign1.protected.header.alg == Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256))
}

/// One of omg's own COSE_Sign1 messages parsed, not yet verified: at most `max` bytes of
/// canonical CBOR, tag 18.
pub(crate) fn parse_strict(bytes: &[u8], format: Format, max: usize) -> Result<CoseSign1> {
    cbor::check_size(bytes, max, format)?;
    let value = cbor::decode_canonical(bytes, format)?;
    let Value::Tag(COSE_SIGN1_TAG, inner) = value else {
        return Err(malformed(
            format,
            "expected a tagged COSE_Sign1 (CBOR tag 18)",
        ));
    };
    CoseSign1::from_cbor_value(*inner).map_err(|_| malformed(format, "not a COSE_Sign1 structure"))
}

/// Verifies one of omg's own COSE_Sign1 messages (see the module doc) and returns its payload.
pub(crate) fn verify_strict(
    bytes: &[u8],
    key: &VerifyingKey,
    content_type: Option<&str>,
    format: Format,
    max: usize,
) -> Result<Vec<u8>> {
    let sign1 = parse_strict(bytes, format, max)?;
    if !is_es256(&sign1) {
        return Err(ProtocolError::InvalidField {
            format,
            field: "alg",
            reason: "expected ES256 (-7) in the protected header",
        });
    }
    let kid = key_id(key);
    if sign1.protected.header.key_id.as_slice() != kid.as_slice() {
        return Err(ProtocolError::WrongKey { format });
    }
    let expected = protected_header(content_type, &kid)
        .cbor_bstr()
        .map_err(|_| malformed(format, "protected header cannot be encoded"))?;
    let Value::Bytes(expected) = expected else {
        return Err(malformed(format, "protected header cannot be encoded"));
    };
    if sign1.protected.original_data.as_deref() != Some(expected.as_slice()) {
        return Err(ProtocolError::InvalidField {
            format,
            field: "protected header",
            reason: "must be exactly {alg: ES256, content type, kid}",
        });
    }
    if !sign1.unprotected.is_empty() {
        return Err(ProtocolError::InvalidField {
            format,
            field: "unprotected header",
            reason: "must be empty",
        });
    }
    verified_payload(sign1, key, format)
}

/// The kid of one of omg's own COSE_Sign1 messages, unverified (to find the key to verify it
/// with): the message must be canonical CBOR, tagged, with a kid in its protected header.
pub(crate) fn key_id_strict(bytes: &[u8], format: Format, max: usize) -> Result<Vec<u8>> {
    let sign1 = parse_strict(bytes, format, max)?;
    if sign1.protected.header.key_id.is_empty() {
        return Err(ProtocolError::MissingField {
            format,
            field: "kid",
        });
    }
    Ok(sign1.protected.header.key_id)
}

/// The payload of `sign1` once its ES256 signature verifies with `key` (shared by the strict
/// and the lenient verifier).
pub(crate) fn verified_payload(
    sign1: CoseSign1,
    key: &VerifyingKey,
    format: Format,
) -> Result<Vec<u8>> {
    if sign1.payload.is_none() {
        return Err(ProtocolError::MissingField {
            format,
            field: "payload",
        });
    }
    check_signature(&sign1, key, format)?;
    Ok(sign1.payload.unwrap_or_default())
}

/// Verifies a COSE_Sign1 with ES256 made by any conforming COSE library and returns its
/// payload.
///
/// Accepts the tagged (18) or untagged form, any valid CBOR encoding, and any header
/// parameters as long as the protected header says `alg: ES256` and has no `crit`. The
/// signature must be the raw 64-byte `r || s` of RFC 9053 and verify over the
/// `Sig_structure` with empty external AAD. `format` and `max` name the format for errors and
/// its size limit.
pub fn verify_sign1_es256(
    bytes: &[u8],
    key: &VerifyingKey,
    format: Format,
    max: usize,
) -> Result<Vec<u8>> {
    cbor::check_size(bytes, max, format)?;
    let value = cbor::decode_exact(bytes, format)?;
    let inner = match value {
        Value::Tag(COSE_SIGN1_TAG, inner) => *inner,
        Value::Tag(..) => return Err(malformed(format, "wrong CBOR tag (expected 18)")),
        other => other,
    };
    let sign1 = CoseSign1::from_cbor_value(inner)
        .map_err(|_| malformed(format, "not a COSE_Sign1 structure"))?;
    if !is_es256(&sign1) {
        return Err(ProtocolError::InvalidField {
            format,
            field: "alg",
            reason: "expected ES256 (-7) in the protected header",
        });
    }
    if !sign1.protected.header.crit.is_empty() {
        return Err(ProtocolError::InvalidField {
            format,
            field: "crit",
            reason: "critical header parameters are not supported",
        });
    }
    verified_payload(sign1, key, format)
}
