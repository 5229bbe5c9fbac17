//! Errors of every format: [`ProtocolError`] says which format and which field was wrong.

use core::fmt;

/// The format an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The signed and encrypted model package (`.omgpkg`).
    Package,
    /// The attestation token (EAT / PSA profile, COSE_Sign1).
    Token,
    /// The vendor's challenge (nonce and expiry).
    Challenge,
    /// The HPKE key release message.
    KeyRelease,
    /// The vendor-signed licence.
    Licence,
    /// The sealed blob (content key and licence bound to HUK and measurement).
    SealedBlob,
    /// The pipeline bundle inside a package.
    Bundle,
    /// Keys handed in by the caller (SEC1 points, HPKE keys, HUK, measurement).
    Key,
    /// A device maker's endorsement of a device attestation key.
    Endorsement,
}

impl Format {
    /// A short human name of the format.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Package => "model package",
            Format::Token => "attestation token",
            Format::Challenge => "challenge",
            Format::KeyRelease => "key release",
            Format::Licence => "licence",
            Format::SealedBlob => "sealed blob",
            Format::Bundle => "pipeline bundle",
            Format::Key => "key",
            Format::Endorsement => "endorsement",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong while building, parsing, verifying or decrypting a format.
///
/// Parsers never panic on hostile input: every defect maps to one of these variants, and the
/// `Display` text names the format and, where there is one, the field.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The input is larger than the format's maximum size.
    TooLarge {
        /// Which format.
        format: Format,
        /// Length of the input in bytes.
        len: usize,
        /// Maximum accepted length in bytes.
        max: usize,
    },
    /// The input is not well-formed CBOR / COSE for this format (truncated, trailing bytes,
    /// wrong structure, non-canonical encoding, wrong tag...).
    Malformed {
        /// Which format.
        format: Format,
        /// What was wrong.
        what: &'static str,
    },
    /// A required field is missing.
    MissingField {
        /// Which format.
        format: Format,
        /// Name of the field.
        field: &'static str,
    },
    /// A field has the wrong type, length or value.
    InvalidField {
        /// Which format.
        format: Format,
        /// Name of the field.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A map carries a key this format does not define (only strict parsers reject these).
    UnknownField {
        /// Which format.
        format: Format,
        /// The unknown map key (integer keys only; other key types are `Malformed`).
        key: i64,
    },
    /// A map carries the same key twice.
    DuplicateField {
        /// Which format.
        format: Format,
        /// Name of the field.
        field: &'static str,
    },
    /// The format version is not one this crate understands.
    UnsupportedVersion {
        /// Which format.
        format: Format,
        /// The version found.
        version: u64,
    },
    /// The message names (by key id) a different signer than the key it is verified with.
    WrongKey {
        /// Which format.
        format: Format,
    },
    /// The signature does not verify.
    BadSignature {
        /// Which format.
        format: Format,
    },
    /// Authenticated decryption failed: wrong key, wrong associated data or tampered ciphertext.
    DecryptionFailed {
        /// Which format.
        format: Format,
    },
    /// Encryption or key encapsulation failed (e.g. an invalid recipient public key).
    EncryptionFailed {
        /// Which format.
        format: Format,
    },
    /// A verified message does not match what the verifier expected (nonce, measurement, key
    /// hash, model...).
    Mismatch {
        /// Which format.
        format: Format,
        /// Which field differs.
        field: &'static str,
    },
    /// The message (a challenge) has expired.
    Expired {
        /// Which format.
        format: Format,
        /// Expiry time in seconds since the Unix epoch.
        expires_at: u64,
        /// The caller's current time in seconds since the Unix epoch.
        now: u64,
    },
    /// A caller-supplied output buffer is too small.
    BufferTooSmall {
        /// Which format.
        format: Format,
        /// Bytes needed.
        needed: usize,
        /// Bytes provided.
        got: usize,
    },
    /// A caller-supplied input to a builder is invalid (e.g. an empty model id).
    InvalidInput {
        /// Which format.
        format: Format,
        /// Name of the input.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::TooLarge { format, len, max } => {
                write!(
                    f,
                    "{format}: input of {len} bytes exceeds the maximum of {max} bytes"
                )
            }
            ProtocolError::Malformed { format, what } => write!(f, "{format}: malformed: {what}"),
            ProtocolError::MissingField { format, field } => {
                write!(f, "{format}: missing field `{field}`")
            }
            ProtocolError::InvalidField {
                format,
                field,
                reason,
            } => write!(f, "{format}: invalid field `{field}`: {reason}"),
            ProtocolError::UnknownField { format, key } => {
                write!(f, "{format}: unknown field with key {key}")
            }
            ProtocolError::DuplicateField { format, field } => {
                write!(f, "{format}: duplicate field `{field}`")
            }
            ProtocolError::UnsupportedVersion { format, version } => {
                write!(f, "{format}: unsupported format version {version}")
            }
            ProtocolError::WrongKey { format } => {
                write!(f, "{format}: signed by a different key (key id mismatch)")
            }
            ProtocolError::BadSignature { format } => {
                write!(f, "{format}: signature verification failed")
            }
            ProtocolError::DecryptionFailed { format } => write!(
                f,
                "{format}: authenticated decryption failed (wrong key, wrong binding or tampered data)"
            ),
            ProtocolError::EncryptionFailed { format } => {
                write!(f, "{format}: encryption failed")
            }
            ProtocolError::Mismatch { format, field } => {
                write!(f, "{format}: `{field}` does not match the expected value")
            }
            ProtocolError::Expired {
                format,
                expires_at,
                now,
            } => write!(f, "{format}: expired at {expires_at} (now {now})"),
            ProtocolError::BufferTooSmall {
                format,
                needed,
                got,
            } => write!(
                f,
                "{format}: output buffer too small ({got} bytes, {needed} needed)"
            ),
            ProtocolError::InvalidInput {
                format,
                field,
                reason,
            } => write!(f, "{format}: invalid input `{field}`: {reason}"),
        }
    }
}

impl core::error::Error for ProtocolError {}

/// Short alias used throughout the crate.
pub type Result<T, E = ProtocolError> = core::result::Result<T, E>;
