//! Internal CBOR helpers: exact and canonical decoding, integer-keyed maps, typed field access.

use alloc::string::String;
use alloc::vec::Vec;

use coset::cbor::value::Value;

use crate::error::{Format, ProtocolError, Result};

/// Encodes a CBOR value (ciborium writes definite lengths and minimal integer encodings).
pub(crate) fn encode(value: &Value, format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    coset::cbor::ser::into_writer(value, &mut out).map_err(|_| ProtocolError::Malformed {
        format,
        what: "value cannot be encoded as CBOR",
    })?;
    Ok(out)
}

/// Decodes exactly one CBOR data item spanning all of `bytes` (no trailing bytes).
pub(crate) fn decode_exact(bytes: &[u8], format: Format) -> Result<Value> {
    if bytes.is_empty() {
        return Err(ProtocolError::Malformed {
            format,
            what: "empty input",
        });
    }
    let mut rest = bytes;
    let value: Value =
        coset::cbor::de::from_reader(&mut rest).map_err(|e| ProtocolError::Malformed {
            format,
            what: match e {
                coset::cbor::de::Error::Io(_) => "truncated CBOR",
                coset::cbor::de::Error::Syntax(_) => "invalid CBOR syntax",
                coset::cbor::de::Error::Semantic(..) => "invalid CBOR item",
                coset::cbor::de::Error::RecursionLimitExceeded => "CBOR nested too deeply",
            },
        })?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed {
            format,
            what: "trailing bytes after the CBOR item",
        });
    }
    Ok(value)
}

/// Decodes one CBOR item and requires that re-encoding it gives back exactly `bytes`
/// (definite lengths, minimal integer and length encodings). This makes every accepted message
/// have exactly one encoding, so no byte can change without the change being seen.
pub(crate) fn decode_canonical(bytes: &[u8], format: Format) -> Result<Value> {
    let value = decode_exact(bytes, format)?;
    let again = encode(&value, format)?;
    if again.as_slice() != bytes {
        return Err(ProtocolError::Malformed {
            format,
            what: "non-canonical CBOR encoding",
        });
    }
    Ok(value)
}

/// Checks the size limit of a format before any parsing.
pub(crate) fn check_size(bytes: &[u8], max: usize, format: Format) -> Result<()> {
    if bytes.len() > max {
        return Err(ProtocolError::TooLarge {
            format,
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// An integer-keyed CBOR map split into its entries, with duplicate detection.
pub(crate) struct FieldMap {
    entries: Vec<(i64, Value)>,
    format: Format,
}

impl FieldMap {
    /// Splits a map. `known` lists the keys this format defines, with their names.
    /// Strict: unknown or non-integer keys are errors. Lenient: they are ignored.
    /// Duplicate known keys are always errors.
    pub(crate) fn parse(
        value: Value,
        format: Format,
        what: &'static str,
        known: &[(i64, &'static str)],
        strict: bool,
    ) -> Result<Self> {
        let Value::Map(pairs) = value else {
            return Err(ProtocolError::Malformed { format, what });
        };
        let mut entries: Vec<(i64, Value)> = Vec::with_capacity(pairs.len().min(known.len()));
        for (k, v) in pairs {
            let key = match k {
                Value::Integer(i) => i64::try_from(i128::from(i)).ok(),
                _ => None,
            };
            let Some(key) = key else {
                if strict {
                    return Err(ProtocolError::Malformed {
                        format,
                        what: "map key is not a small integer",
                    });
                }
                continue;
            };
            let Some((_, name)) = known.iter().find(|(k, _)| *k == key) else {
                if strict {
                    return Err(ProtocolError::UnknownField { format, key });
                }
                continue;
            };
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(ProtocolError::DuplicateField {
                    format,
                    field: name,
                });
            }
            entries.push((key, v));
        }
        Ok(FieldMap { entries, format })
    }

    /// Takes an optional field.
    pub(crate) fn take(&mut self, key: i64) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| *k == key)?;
        Some(self.entries.swap_remove(pos).1)
    }

    /// Takes a required field.
    pub(crate) fn require(&mut self, key: i64, field: &'static str) -> Result<Value> {
        self.take(key).ok_or(ProtocolError::MissingField {
            format: self.format,
            field,
        })
    }
}

fn invalid(format: Format, field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidField {
        format,
        field,
        reason,
    }
}

/// A byte string of any length up to `max`.
pub(crate) fn bytes(v: Value, format: Format, field: &'static str, max: usize) -> Result<Vec<u8>> {
    match v {
        Value::Bytes(b) if b.len() <= max => Ok(b),
        Value::Bytes(_) => Err(invalid(format, field, "byte string too long")),
        _ => Err(invalid(format, field, "expected a byte string")),
    }
}

/// A byte string of exactly `N` bytes.
pub(crate) fn bytes_n<const N: usize>(
    v: Value,
    format: Format,
    field: &'static str,
) -> Result<[u8; N]> {
    match v {
        Value::Bytes(b) => b
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format, field, "byte string has the wrong length")),
        _ => Err(invalid(format, field, "expected a byte string")),
    }
}

/// A UTF-8 text string of 1..=max bytes.
pub(crate) fn text(v: Value, format: Format, field: &'static str, max: usize) -> Result<String> {
    match v {
        Value::Text(s) if s.is_empty() => Err(invalid(format, field, "empty text")),
        Value::Text(s) if s.len() <= max => Ok(s),
        Value::Text(_) => Err(invalid(format, field, "text too long")),
        _ => Err(invalid(format, field, "expected a text string")),
    }
}

/// An unsigned integer that fits in u64.
pub(crate) fn uint(v: Value, format: Format, field: &'static str) -> Result<u64> {
    match v {
        Value::Integer(i) => {
            u64::try_from(i128::from(i)).map_err(|_| invalid(format, field, "out of range"))
        }
        _ => Err(invalid(format, field, "expected an unsigned integer")),
    }
}

/// An unsigned integer that fits in u32.
pub(crate) fn uint32(v: Value, format: Format, field: &'static str) -> Result<u32> {
    u32::try_from(uint(v, format, field)?).map_err(|_| invalid(format, field, "out of range"))
}

/// A (possibly negative) integer that fits in i64.
pub(crate) fn int(v: Value, format: Format, field: &'static str) -> Result<i64> {
    match v {
        Value::Integer(i) => {
            i64::try_from(i128::from(i)).map_err(|_| invalid(format, field, "out of range"))
        }
        _ => Err(invalid(format, field, "expected an integer")),
    }
}

/// An array of at most `max` items.
pub(crate) fn array(
    v: Value,
    format: Format,
    field: &'static str,
    max: usize,
) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) if a.len() <= max => Ok(a),
        Value::Array(_) => Err(invalid(format, field, "too many items")),
        _ => Err(invalid(format, field, "expected an array")),
    }
}

/// Builds an integer-keyed map value.
pub(crate) fn int_map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    )
}

/// Builds an unsigned integer value.
pub(crate) fn u(v: u64) -> Value {
    Value::Integer(v.into())
}
