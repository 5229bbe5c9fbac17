//! A bounds-checked reader for the FlexBuffers maps that hold custom operator options.
//!
//! Only what operator options use is supported: a root map whose values are integers, floats or
//! booleans (inline or indirect). Every offset is checked before it is followed.

use crate::error::{Error, Result};

const FBT_NULL: u8 = 0;
const FBT_INT: u8 = 1;
const FBT_UINT: u8 = 2;
const FBT_FLOAT: u8 = 3;
const FBT_INDIRECT_INT: u8 = 6;
const FBT_INDIRECT_UINT: u8 = 7;
const FBT_INDIRECT_FLOAT: u8 = 8;
const FBT_MAP: u8 = 9;
const FBT_BOOL: u8 = 26;

const BAD: Error = Error::Format("malformed FlexBuffers custom options");

fn uint(buf: &[u8], pos: usize, width: usize) -> Result<u64> {
    let b = pos
        .checked_add(width)
        .and_then(|e| buf.get(pos..e))
        .ok_or(BAD)?;
    let mut a = [0u8; 8];
    a[..width].copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

fn int(buf: &[u8], pos: usize, width: usize) -> Result<i64> {
    let u = uint(buf, pos, width)?;
    let shift = 64 - 8 * width as u32;
    Ok(((u << shift) as i64) >> shift)
}

fn float(buf: &[u8], pos: usize, width: usize) -> Result<f64> {
    match width {
        4 => Ok(f64::from(f32::from_bits(uint(buf, pos, 4)? as u32))),
        8 => Ok(f64::from_bits(uint(buf, pos, 8)?)),
        _ => Err(BAD),
    }
}

/// Follows a backwards offset stored at `pos` with `width` bytes.
fn indirect(buf: &[u8], pos: usize, width: usize) -> Result<usize> {
    let off = usize::try_from(uint(buf, pos, width)?).map_err(|_| BAD)?;
    pos.checked_sub(off).ok_or(BAD)
}

fn check_width(w: usize) -> Result<usize> {
    match w {
        1 | 2 | 4 | 8 => Ok(w),
        _ => Err(BAD),
    }
}

/// A scalar option value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Signed or unsigned integer (unsigned values above `i64::MAX` are rejected).
    Int(i64),
    /// Floating point.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// The root map of a FlexBuffers blob.
pub struct Map<'a> {
    buf: &'a [u8],
    pos: usize,
    width: usize,
    len: usize,
    keys: usize,
    key_width: usize,
}

impl<'a> Map<'a> {
    /// Opens the root map of `buf`.
    pub fn root(buf: &'a [u8]) -> Result<Self> {
        let n = buf.len();
        if n < 3 {
            return Err(BAD);
        }
        let root_width = check_width(usize::from(buf[n - 1]))?;
        let packed = buf[n - 2];
        let root = (n - 2).checked_sub(root_width).ok_or(BAD)?;
        if packed >> 2 != FBT_MAP {
            return Err(Error::Format("custom options are not a FlexBuffers map"));
        }
        let pos = indirect(buf, root, root_width)?;
        let width = check_width(1 << (packed & 3))?;
        let header = pos.checked_sub(3 * width).ok_or(BAD)?;
        let len = usize::try_from(uint(buf, pos - width, width)?).map_err(|_| BAD)?;
        let keys = indirect(buf, header, width)?;
        let key_width =
            check_width(usize::try_from(uint(buf, header + width, width)?).map_err(|_| BAD)?)?;
        // Values, then one type byte per value, must fit.
        let end = len
            .checked_mul(width + 1)
            .and_then(|b| b.checked_add(pos))
            .ok_or(BAD)?;
        if end > n {
            return Err(BAD);
        }
        let key_len = usize::try_from(uint(
            buf,
            keys.checked_sub(key_width).ok_or(BAD)?,
            key_width,
        )?)
        .map_err(|_| BAD)?;
        if key_len != len
            || len
                .checked_mul(key_width)
                .and_then(|b| b.checked_add(keys))
                .is_none_or(|e| e > n)
        {
            return Err(BAD);
        }
        Ok(Self {
            buf,
            pos,
            width,
            len,
            keys,
            key_width,
        })
    }

    fn key(&self, i: usize) -> Result<&'a [u8]> {
        let start = indirect(self.buf, self.keys + i * self.key_width, self.key_width)?;
        let rest = self.buf.get(start..).ok_or(BAD)?;
        let end = rest.iter().position(|&b| b == 0).ok_or(BAD)?;
        Ok(&rest[..end])
    }

    /// Looks up `key`; `Ok(None)` when the map does not have it.
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        for i in 0..self.len {
            if self.key(i)? == key.as_bytes() {
                return self.value(i).map(Some);
            }
        }
        Ok(None)
    }

    fn value(&self, i: usize) -> Result<Value> {
        let packed = self.buf[self.pos + self.len * self.width + i];
        let pos = self.pos + i * self.width;
        let child_width = check_width(1 << (packed & 3))?;
        let non_negative = |u: u64| i64::try_from(u).map(Value::Int).map_err(|_| BAD);
        match packed >> 2 {
            FBT_INT => Ok(Value::Int(int(self.buf, pos, self.width)?)),
            FBT_UINT => non_negative(uint(self.buf, pos, self.width)?),
            FBT_FLOAT => Ok(Value::Float(float(self.buf, pos, self.width)?)),
            FBT_BOOL => Ok(Value::Bool(uint(self.buf, pos, self.width)? != 0)),
            FBT_INDIRECT_INT => Ok(Value::Int(int(
                self.buf,
                indirect(self.buf, pos, self.width)?,
                child_width,
            )?)),
            FBT_INDIRECT_UINT => non_negative(uint(
                self.buf,
                indirect(self.buf, pos, self.width)?,
                child_width,
            )?),
            FBT_INDIRECT_FLOAT => Ok(Value::Float(float(
                self.buf,
                indirect(self.buf, pos, self.width)?,
                child_width,
            )?)),
            FBT_NULL => Err(Error::Format("custom option is null")),
            _ => Err(Error::Format(
                "custom option has a type other than number or boolean",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python's `flatbuffers.flexbuffers.Dumps({"a": 7, "big": 70000, "f": 0.5, "neg": -3, "t": True})`.
    const SAMPLE: &[u8] = &[
        97, 0, 98, 105, 103, 0, 102, 0, 110, 101, 103, 0, 116, 0, 5, 15, 14, 11, 10, 7, 5, 0, 0, 0,
        1, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0, 112, 17, 1, 0, 0, 0, 0, 63, 253, 255, 255, 255, 1, 0,
        0, 0, 6, 6, 14, 6, 106, 25, 38, 1,
    ];

    #[test]
    fn reads_python_encoded_map() {
        let m = Map::root(SAMPLE).unwrap();
        assert_eq!(m.get("a").unwrap(), Some(Value::Int(7)));
        assert_eq!(m.get("big").unwrap(), Some(Value::Int(70000)));
        assert_eq!(m.get("f").unwrap(), Some(Value::Float(0.5)));
        assert_eq!(m.get("neg").unwrap(), Some(Value::Int(-3)));
        assert_eq!(m.get("t").unwrap(), Some(Value::Bool(true)));
        assert_eq!(m.get("missing").unwrap(), None);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        for n in 0..SAMPLE.len() {
            let _ = Map::root(&SAMPLE[n..]).and_then(|m| m.get("a"));
            let _ = Map::root(&SAMPLE[..n]).and_then(|m| m.get("a"));
        }
        for i in 0..SAMPLE.len() {
            for bit in 0..8 {
                let mut c = SAMPLE.to_vec();
                c[i] ^= 1 << bit;
                let _ = Map::root(&c).and_then(|m| m.get("big").and(m.get("t")));
            }
        }
    }
}
