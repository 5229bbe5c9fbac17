//! Dot products of rows (patches, input rows) with weight rows, for the levels without a panel
//! kernel and for FULLY_CONNECTED.

use crate::simd::{Channels, Kernels};
use crate::{KernelError, Result};

/// Stores the `N` sums of each patch at `acc[m][r..r + N]`.
#[inline(always)]
pub(super) fn store<const M: usize, const N: usize>(
    acc: &mut [&mut [i32]; M],
    r: usize,
    sums: [[i32; N]; M],
) {
    for (a, s) in acc.iter_mut().zip(sums) {
        if let Some(d) = a.get_mut(r..r + N) {
            d.copy_from_slice(&s);
        }
    }
}

/// The `N` consecutive rows of `stride` values of `block`.
#[inline(always)]
pub(super) fn split_rows<const N: usize>(block: &[i8], stride: usize) -> [&[i8]; N] {
    // Not a loop over `chunks_exact`: with AVX-512 enabled, LLVM turned that loop into
    // 512-bit scatters of the slices' pointers and lengths, which cost more than the dot
    // products of a small FULLY_CONNECTED layer.
    let mut chunks = block.chunks_exact(stride);
    core::array::from_fn(|_| chunks.next().unwrap_or(&[]))
}

/// `acc[m][r] = patches[m] . row r` for the rows of `rows` (stride `stride`, at least as many
/// as the accumulators): eight at a time for one patch, then four, then the rest.
#[inline(always)]
pub(super) fn dot_rows<K: Kernels, const M: usize>(
    k: K,
    patches: [&[i16]; M],
    rows: &[i8],
    stride: usize,
    mut acc: [&mut [i32]; M],
) {
    let n = acc.iter().map(|a| a.len()).min().unwrap_or(0);
    let Some(mut rows) = rows.get(..n * stride).filter(|_| stride > 0) else {
        // Empty rows: every dot product is 0.
        acc.iter_mut().for_each(|a| a.fill(0));
        return;
    };
    let mut r = 0;
    if M == 1 {
        let mut blocks = rows.chunks_exact(8 * stride);
        for block in blocks.by_ref() {
            store(&mut acc, r, k.dot(patches, split_rows::<8>(block, stride)));
            r += 8;
        }
        rows = blocks.remainder();
    }
    let mut blocks = rows.chunks_exact(4 * stride);
    for block in blocks.by_ref() {
        store(&mut acc, r, k.dot(patches, split_rows::<4>(block, stride)));
        r += 4;
    }
    let rest = blocks.remainder();
    match rest.len() / stride {
        3 => store(&mut acc, r, k.dot(patches, split_rows::<3>(rest, stride))),
        2 => store(&mut acc, r, k.dot(patches, split_rows::<2>(rest, stride))),
        1 => store(&mut acc, r, k.dot(patches, split_rows::<1>(rest, stride))),
        _ => {}
    }
}

/// Where [`rows_by_two`] takes its rows from: the patches of a convolution, the input rows of
/// a fully connected layer. (A trait rather than a closure: a closure would not be compiled
/// with the target features of the level, and the kernels it calls would not be inlined.)
pub(super) trait RowSource {
    /// Widens the next row into `buffer` and returns its offset (added before requantization).
    fn next_row<K: Kernels>(&mut self, k: K, buffer: &mut [i16]) -> Result<i32>;
}

/// Runs `count` rows from `source` against the weight `rows` (stride `stride`), two at a time
/// where it can; row `i`'s requantized outputs go to `output[range(i)]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn rows_by_two<K: Kernels, S: RowSource>(
    k: K,
    count: usize,
    (rows, stride): (&[i8], usize),
    ch: Channels<'_>,
    (p0, p1): (&mut [i16], &mut [i16]),
    (a0, a1): (&mut [i32], &mut [i32]),
    source: &mut S,
    (output, range): (&mut [i8], impl Fn(usize) -> core::ops::Range<usize>),
) -> Result<()> {
    let oob = KernelError::Shape("output index out of range");
    let mut i = 0;
    while i < count {
        let off0 = source.next_row(k, p0)?;
        if i + 1 < count {
            let off1 = source.next_row(k, p1)?;
            dot_rows(k, [&*p0, &*p1], rows, stride, [&mut *a0, &mut *a1]);
            k.requantize(a0, off0, ch, output.get_mut(range(i)).ok_or(oob)?);
            k.requantize(a1, off1, ch, output.get_mut(range(i + 1)).ok_or(oob)?);
            i += 2;
        } else {
            dot_rows(k, [&*p0], rows, stride, [&mut *a0]);
            k.requantize(a0, off0, ch, output.get_mut(range(i)).ok_or(oob)?);
            i += 1;
        }
    }
    Ok(())
}

/// Splits `s` into two consecutive pieces of `n` elements.
pub(super) fn two<T>(s: &mut [T], n: usize) -> Result<(&mut [T], &mut [T])> {
    let oob = KernelError::Shape("scratch too short");
    let (a, rest) = s.split_at_mut_checked(n).ok_or(oob)?;
    Ok((a, rest.get_mut(..n).ok_or(oob)?))
}
