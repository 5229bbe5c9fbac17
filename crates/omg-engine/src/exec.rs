//! Run-time memory: the arena, the constants, and safe split borrows of them for one operator.
//!
//! An operator reads its inputs and writes its outputs in the same arena. The planner never lets
//! an operator's outputs overlap anything it reads (and prepare checks it), so the arena is split
//! around the output ranges: outputs become `&mut`, the pieces in between stay shared.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use bytemuck::Pod;

use crate::error::{Error, Result};

/// Where an operator finds a tensor at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A byte range of the arena.
    Arena(Range<usize>),
    /// The index of a constant in [`Memory::consts`].
    Const(usize),
}

/// Constant tensor data, aligned for its element type.
pub(crate) enum ConstData<'m> {
    /// Read in place from the model bytes (they were suitably aligned).
    Borrowed(&'m [u8]),
    /// Copied into aligned storage because the model bytes were not aligned.
    Owned(Vec<u64>, usize),
}

impl<'m> ConstData<'m> {
    /// Wraps `data`, copying only if it is not aligned to `align` bytes.
    pub(crate) fn new(data: &'m [u8], align: usize) -> Self {
        if (data.as_ptr() as usize).is_multiple_of(align) {
            ConstData::Borrowed(data)
        } else {
            let mut words = vec![0u64; data.len().div_ceil(8)];
            bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..data.len()].copy_from_slice(data);
            ConstData::Owned(words, data.len())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            ConstData::Borrowed(b) => b,
            ConstData::Owned(w, len) => &bytemuck::cast_slice::<u64, u8>(w)[..*len],
        }
    }
}

/// The memory an operator runs against.
pub(crate) struct Memory<'a, 'm> {
    /// The whole arena.
    pub arena: &'a mut [u8],
    /// All constants, indexed by [`Slot::Const`].
    pub consts: &'a [ConstData<'m>],
}

/// One operator's view: shared inputs and exclusive outputs.
pub(crate) struct Io<'a> {
    shared: [(usize, &'a [u8]); 3],
    consts: &'a [ConstData<'a>],
    outs: [&'a mut [u8]; 2],
}

const INTERNAL: Error = Error::Format("internal error: tensor slot outside the arena");

impl<'a, 'm: 'a> Memory<'a, 'm> {
    /// Splits the arena around one or two output ranges (sorted, disjoint).
    pub(crate) fn io<'s>(&'s mut self, outs: &[Slot]) -> Result<Io<'s>>
    where
        'a: 's,
    {
        let ranges: [Range<usize>; 2] = match outs {
            [Slot::Arena(a)] => [a.clone(), a.end..a.end],
            [Slot::Arena(a), Slot::Arena(b)] if a.end <= b.start => [a.clone(), b.clone()],
            [Slot::Arena(a), Slot::Arena(b)] if b.end <= a.start => [b.clone(), a.clone()],
            _ => return Err(INTERNAL),
        };
        let swapped = matches!(outs, [Slot::Arena(a), Slot::Arena(b)] if b.end <= a.start);
        let arena: &'s mut [u8] = self.arena;
        let [r0, r1] = ranges;
        if r1.end > arena.len() || r0.end > r1.start || r0.start > r0.end || r1.start > r1.end {
            return Err(INTERNAL);
        }
        let (head, rest) = arena.split_at_mut(r0.start);
        let (o0, rest) = rest.split_at_mut(r0.end - r0.start);
        let (mid, rest) = rest.split_at_mut(r1.start - r0.end);
        let (o1, tail) = rest.split_at_mut(r1.end - r1.start);
        let outs = if swapped { [o1, o0] } else { [o0, o1] };
        Ok(Io {
            shared: [(0, head), (r0.end, mid), (r1.end, tail)],
            consts: covariant(self.consts),
            outs,
        })
    }
}

/// Shortens the lifetime of the constant table (it only lives as long as the borrow of memory).
fn covariant<'s, 'm: 's>(c: &'s [ConstData<'m>]) -> &'s [ConstData<'s>] {
    c
}

impl<'a> Io<'a> {
    /// The bytes of an input slot.
    pub(crate) fn input(&self, slot: &Slot) -> Result<&'a [u8]> {
        match slot {
            Slot::Const(i) => self.consts.get(*i).map(ConstData::bytes).ok_or(INTERNAL),
            Slot::Arena(r) => {
                for &(base, piece) in &self.shared {
                    if r.start >= base && r.end <= base + piece.len() {
                        return Ok(&piece[r.start - base..r.end - base]);
                    }
                }
                Err(INTERNAL)
            }
        }
    }

    /// A typed view of an input slot.
    pub(crate) fn typed<T: Pod>(&self, slot: &Slot) -> Result<&'a [T]> {
        cast(self.input(slot)?)
    }

    /// The first output.
    pub(crate) fn out<T: Pod>(&mut self) -> Result<&mut [T]> {
        cast_mut(self.outs[0])
    }

    /// Both outputs at once.
    pub(crate) fn outs2<T: Pod, U: Pod>(&mut self) -> Result<(&mut [T], &mut [U])> {
        let [a, b] = &mut self.outs;
        Ok((cast_mut(a)?, cast_mut(b)?))
    }
}

/// Views bytes as a slice of `T` (alignment and size were fixed by planning).
pub(crate) fn cast<T: Pod>(b: &[u8]) -> Result<&[T]> {
    bytemuck::try_cast_slice(b).map_err(|_| Error::Format("internal error: misaligned tensor"))
}

/// Views bytes as a mutable slice of `T`.
pub(crate) fn cast_mut<T: Pod>(b: &mut [u8]) -> Result<&mut [T]> {
    bytemuck::try_cast_slice_mut(b).map_err(|_| Error::Format("internal error: misaligned tensor"))
}
