//! A bounds-checked, read-only FlatBuffers reader.
//!
//! The `flatbuffers` crate's table accessors are `unsafe` and trust a prior verifier pass; the engine
//! instead checks every offset at the moment it follows it, so no byte sequence can make it read out of
//! bounds. Only the wire format is handled here; what the fields mean lives in [`crate::schema`].

use crate::error::{Error, Result};

/// Reads a little-endian scalar at `pos`, or fails if it would run past the end of `buf`.
fn read<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N]> {
    pos.checked_add(N)
        .and_then(|end| buf.get(pos..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Format("offset points outside the model"))
}

fn read_u16(buf: &[u8], pos: usize) -> Result<u16> {
    read::<2>(buf, pos).map(u16::from_le_bytes)
}

fn read_u32(buf: &[u8], pos: usize) -> Result<u32> {
    read::<4>(buf, pos).map(u32::from_le_bytes)
}

/// Follows a `uoffset_t` stored at `pos`, returning the absolute position it points to.
fn follow(buf: &[u8], pos: usize) -> Result<usize> {
    let off = read_u32(buf, pos)? as usize;
    pos.checked_add(off)
        .filter(|&p| p < buf.len())
        .ok_or(Error::Format("offset points outside the model"))
}

/// A scalar type that can be stored in a table field or a vector.
pub(crate) trait Scalar: Copy {
    /// Size in bytes on the wire.
    const SIZE: usize;
    /// Decodes the value from its little-endian bytes (`bytes.len() == SIZE`).
    fn decode(bytes: &[u8]) -> Self;
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            fn decode(bytes: &[u8]) -> Self {
                let mut a = [0u8; core::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
        }
    )*};
}
scalar!(u8, i8, u16, i16, u32, i32, u64, i64, f32);

/// A table: a position in the buffer plus its validated vtable.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
    table_len: usize,
}

impl<'a> Table<'a> {
    /// The root table of a finished buffer.
    pub(crate) fn root(buf: &'a [u8]) -> Result<Self> {
        let pos = follow(buf, 0)?;
        Self::at(buf, pos)
    }

    fn at(buf: &'a [u8], pos: usize) -> Result<Self> {
        let soff = read::<4>(buf, pos).map(i32::from_le_bytes)?;
        let vtable = (pos as i64)
            .checked_sub(i64::from(soff))
            .filter(|&v| v >= 0)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(Error::Format("table has a vtable offset outside the model"))?;
        let vtable_len = usize::from(read_u16(buf, vtable)?);
        let table_len = usize::from(read_u16(buf, vtable + 2)?);
        if vtable_len < 4
            || vtable_len % 2 != 0
            || vtable.checked_add(vtable_len).is_none_or(|e| e > buf.len())
        {
            return Err(Error::Format("table has a malformed vtable"));
        }
        if table_len < 4 || pos.checked_add(table_len).is_none_or(|e| e > buf.len()) {
            return Err(Error::Format("table runs past the end of the model"));
        }
        Ok(Self {
            buf,
            pos,
            vtable,
            vtable_len,
            table_len,
        })
    }

    /// Absolute position of field `id` with `size` bytes, or `None` when the field is absent.
    fn field(&self, id: usize, size: usize) -> Result<Option<usize>> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = usize::from(read_u16(self.buf, self.vtable + slot)?);
        if off == 0 {
            return Ok(None);
        }
        if off + size > self.table_len {
            return Err(Error::Format("table field lies outside its table"));
        }
        Ok(Some(self.pos + off))
    }

    /// A scalar field, or `default` when absent.
    pub(crate) fn scalar<T: Scalar>(&self, id: usize, default: T) -> Result<T> {
        match self.field(id, T::SIZE)? {
            None => Ok(default),
            Some(p) => Ok(T::decode(&self.buf[p..p + T::SIZE])),
        }
    }

    /// A boolean field, or `default` when absent.
    pub(crate) fn boolean(&self, id: usize, default: bool) -> Result<bool> {
        Ok(self.scalar::<u8>(id, u8::from(default))? != 0)
    }

    /// A sub-table field.
    pub(crate) fn table(&self, id: usize) -> Result<Option<Table<'a>>> {
        match self.field(id, 4)? {
            None => Ok(None),
            Some(p) => Table::at(self.buf, follow(self.buf, p)?).map(Some),
        }
    }

    /// The position and length of a vector field whose elements are `elem` bytes wide.
    fn vector_raw(&self, id: usize, elem: usize) -> Result<Option<(usize, usize)>> {
        let Some(p) = self.field(id, 4)? else {
            return Ok(None);
        };
        let start = follow(self.buf, p)?;
        let len = read_u32(self.buf, start)? as usize;
        let data = start + 4;
        let bytes = len
            .checked_mul(elem)
            .ok_or(Error::Format("vector length overflows"))?;
        if data.checked_add(bytes).is_none_or(|e| e > self.buf.len()) {
            return Err(Error::Format("vector runs past the end of the model"));
        }
        Ok(Some((data, len)))
    }

    /// A vector of scalars.
    pub(crate) fn vector<T: Scalar>(&self, id: usize) -> Result<Option<Vector<'a, T>>> {
        Ok(self.vector_raw(id, T::SIZE)?.map(|(start, len)| Vector {
            buf: self.buf,
            start,
            len,
            _t: core::marker::PhantomData,
        }))
    }

    /// A byte vector as a slice of the underlying buffer.
    pub(crate) fn bytes(&self, id: usize) -> Result<Option<&'a [u8]>> {
        Ok(self
            .vector_raw(id, 1)?
            .map(|(start, len)| &self.buf[start..start + len]))
    }

    /// A string field (must be UTF-8).
    pub(crate) fn string(&self, id: usize) -> Result<Option<&'a str>> {
        match self.bytes(id)? {
            None => Ok(None),
            Some(b) => core::str::from_utf8(b)
                .map(Some)
                .map_err(|_| Error::Format("string is not UTF-8")),
        }
    }

    /// A vector of tables.
    pub(crate) fn tables(&self, id: usize) -> Result<Option<Tables<'a>>> {
        Ok(self.vector_raw(id, 4)?.map(|(start, len)| Tables {
            buf: self.buf,
            start,
            len,
        }))
    }
}

/// A vector of scalars inside the buffer (already bounds-checked as a whole).
#[derive(Clone, Copy)]
pub(crate) struct Vector<'a, T> {
    buf: &'a [u8],
    start: usize,
    len: usize,
    _t: core::marker::PhantomData<T>,
}

impl<T: Scalar> Vector<'_, T> {
    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Iterates over the elements.
    pub(crate) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.buf[self.start..self.start + self.len * T::SIZE]
            .chunks_exact(T::SIZE)
            .map(T::decode)
    }
}

/// A vector of tables inside the buffer.
#[derive(Clone, Copy)]
pub(crate) struct Tables<'a> {
    buf: &'a [u8],
    start: usize,
    len: usize,
}

impl<'a> Tables<'a> {
    /// Number of tables.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The table at `i` (must be `< len`).
    pub(crate) fn get(&self, i: usize) -> Result<Table<'a>> {
        if i >= self.len {
            return Err(Error::Format("table index out of range"));
        }
        let slot = self.start + 4 * i;
        Table::at(self.buf, follow(self.buf, slot)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-assembled buffer: root table with a u16 scalar (field 0) and a vector of two i32 (field 1).
    fn sample() -> alloc::vec::Vec<u8> {
        let mut b = alloc::vec::Vec::new();
        b.extend_from_slice(&12u32.to_le_bytes()); // 0: root offset -> table at 12
        // 4: vtable: len 8, table len 12, field0 at +4, field1 at +8
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&12u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        // 12: table: soffset to vtable (12 - 4 = 8)
        b.extend_from_slice(&8i32.to_le_bytes());
        b.extend_from_slice(&7u16.to_le_bytes()); // 16: field 0
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&4u32.to_le_bytes()); // 20: field 1 -> vector at 24
        b.extend_from_slice(&2u32.to_le_bytes()); // 24: len
        b.extend_from_slice(&(-5i32).to_le_bytes());
        b.extend_from_slice(&9i32.to_le_bytes());
        b
    }

    #[test]
    fn reads_fields() {
        let b = sample();
        let t = Table::root(&b).unwrap();
        assert_eq!(t.scalar::<u16>(0, 0).unwrap(), 7);
        assert_eq!(
            t.scalar::<u16>(5, 42).unwrap(),
            42,
            "absent field gives the default"
        );
        let v = t.vector::<i32>(1).unwrap().unwrap();
        assert_eq!(v.iter().collect::<alloc::vec::Vec<_>>(), [-5, 9]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = sample();
        for n in 0..b.len() {
            let r =
                Table::root(&b[..n]).and_then(|t| t.vector::<i32>(1).map(|v| v.map(|v| v.len())));
            assert!(r.is_err(), "truncated to {n} bytes was accepted");
        }
    }

    #[test]
    fn every_byte_flip_is_handled() {
        let b = sample();
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                // Must not panic; result may be Ok with different values or Err.
                let _ = Table::root(&c).and_then(|t| {
                    t.scalar::<u16>(0, 0)?;
                    if let Some(v) = t.vector::<i32>(1)? {
                        let _ = v.iter().count();
                    }
                    Ok(())
                });
            }
        }
    }
}
