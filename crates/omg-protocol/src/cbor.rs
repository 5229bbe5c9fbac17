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

/// A zero-copy reader of canonical CBOR over a byte slice, for payloads too large or too
/// secret to copy into a decoded [`Value`] tree (the decrypted pipeline bundle): byte and text
/// strings come back as slices of the input. Headers are parsed by `ciborium-ll`; the reader
/// adds the canonical-form rule (shortest length encoding, definite lengths only).
pub(crate) struct SliceReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    format: Format,
}

/// Length of the shortest CBOR header carrying `value`.
fn minimal_header_len(value: u64) -> usize {
    match value {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

impl<'a> SliceReader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8], format: Format) -> Self {
        Self {
            bytes,
            pos: 0,
            format,
        }
    }

    fn malformed(&self, what: &'static str) -> ProtocolError {
        ProtocolError::Malformed {
            format: self.format,
            what,
        }
    }

    /// Reads one header; returns it with the argument the canonical check applies to.
    fn header(&mut self) -> Result<ciborium_ll::Header> {
        use ciborium_ll::Header;
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let mut decoder = ciborium_ll::Decoder::from(rest);
        let header = decoder.pull().map_err(|e| match e {
            ciborium_ll::Error::Io(_) => self.malformed("truncated CBOR"),
            ciborium_ll::Error::Syntax(_) => self.malformed("invalid CBOR syntax"),
        })?;
        let argument = match header {
            Header::Positive(v) | Header::Negative(v) | Header::Tag(v) => Some(v),
            Header::Bytes(Some(n)) | Header::Text(Some(n)) | Header::Array(Some(n)) => {
                Some(n as u64)
            }
            Header::Map(Some(n)) => Some(n as u64),
            Header::Bytes(None) | Header::Text(None) | Header::Array(None) | Header::Map(None) => {
                return Err(self.malformed("indefinite-length CBOR item"));
            }
            Header::Float(_) | Header::Simple(_) | Header::Break => None,
        };
        let used = decoder.offset();
        if let Some(v) = argument
            && used != minimal_header_len(v)
        {
            return Err(self.malformed("non-canonical CBOR encoding"));
        }
        self.pos += used;
        Ok(header)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.malformed("truncated CBOR"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// An unsigned integer.
    pub(crate) fn uint(&mut self, field: &'static str) -> Result<u64> {
        match self.header()? {
            ciborium_ll::Header::Positive(v) => Ok(v),
            _ => Err(self.invalid(field, "must be an unsigned integer")),
        }
    }

    /// An unsigned integer that fits 32 bits.
    pub(crate) fn uint32(&mut self, field: &'static str) -> Result<u32> {
        u32::try_from(self.uint(field)?).map_err(|_| self.invalid(field, "larger than 32 bits"))
    }

    /// A byte string of at most `max` bytes, borrowed from the input.
    pub(crate) fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8]> {
        match self.header()? {
            ciborium_ll::Header::Bytes(Some(n)) if n <= max => self.take(n),
            ciborium_ll::Header::Bytes(Some(_)) => Err(self.invalid(field, "too long")),
            _ => Err(self.invalid(field, "must be a byte string")),
        }
    }

    /// A UTF-8 text string of 1..=`max` bytes, borrowed from the input.
    pub(crate) fn text(&mut self, field: &'static str, max: usize) -> Result<&'a str> {
        match self.header()? {
            ciborium_ll::Header::Text(Some(n)) if (1..=max).contains(&n) => {
                let raw = self.take(n)?;
                core::str::from_utf8(raw).map_err(|_| self.invalid(field, "not UTF-8"))
            }
            ciborium_ll::Header::Text(Some(_)) => Err(self.invalid(field, "wrong length")),
            _ => Err(self.invalid(field, "must be a text string")),
        }
    }

    /// The header of an array of `min..=max` items; returns the item count.
    pub(crate) fn array(&mut self, field: &'static str, min: usize, max: usize) -> Result<usize> {
        match self.header()? {
            ciborium_ll::Header::Array(Some(n)) if (min..=max).contains(&n) => Ok(n),
            ciborium_ll::Header::Array(Some(_)) => Err(self.invalid(field, "wrong item count")),
            _ => Err(self.invalid(field, "must be an array")),
        }
    }

    /// The header of a map; returns the entry count.
    pub(crate) fn map(&mut self, what: &'static str) -> Result<usize> {
        match self.header()? {
            ciborium_ll::Header::Map(Some(n)) => Ok(n),
            _ => Err(self.malformed(what)),
        }
    }

    /// Fails unless every input byte was read.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes after the CBOR item"))
        }
    }

    fn invalid(&self, field: &'static str, reason: &'static str) -> ProtocolError {
        ProtocolError::InvalidField {
            format: self.format,
            field,
            reason,
        }
    }
}
