//! DEPTHWISE_CONV_2D rows on 16 channels per 512-bit register (the `avx512vnni` level's
//! [`Kernels::depthwise`](crate::simd::Kernels::depthwise)).
//!
//! Exactness: per tap, the input's 16 bytes are sign-extended to 32-bit lanes and meet the
//! tap's weights as 16-bit values with a zero high half, so `VPDPWSSD` adds exactly `x * w` to
//! each lane (the high half, the sign extension of `x`, is multiplied by zero) with the
//! wrapping of `vpaddd`: the AVX2 kernel's sums. The last channels of a row (fewer than 16)
//! go through masked loads and stores, which touch nothing past them.

use core::arch::x86_64::*;

use super::avx512vnni::Avx512Vnni;
use super::fixed512::{Narrow, fields_16, requantize16};
use crate::simd::{Channels, depthwise_shape};

/// Output pixels per pass over the taps (8 accumulators): each tap pair's weights are
/// widened once per pass. Five pixels left take one pass of 5 (10 accumulators; rows of 5
/// pixels are common, and one pass measured faster than 4 + 1; passes of 5 throughout measured
/// no faster on long rows).
const PIXELS: usize = 4;

/// A row of a depthwise convolution, as [`Kernels::depthwise`](crate::simd::Kernels::depthwise)
/// describes: 16 channels and up to [`PIXELS`] pixels at a time, each pixel's even and odd
/// taps in separate accumulators, its 16 channels requantized together with the channel data
/// loaded once per 16 channels.
#[inline(always)]
pub(super) fn depthwise(
    t: Avx512Vnni,
    (base, taps): (&[i8], &[usize]),
    step: usize,
    weights: &[i8],
    ch: Channels<'_>,
    out: &mut [i8],
) {
    let Some((c, n)) = depthwise_shape((base, taps), step, weights, &ch, out) else {
        return;
    };
    for c0 in (0..c).step_by(16) {
        let Some(lo) = ch.block(c0) else {
            break;
        };
        // Without a second block, the upper lanes are not stored.
        let fields = fields_16(t, [lo, ch.block(c0 + 8).unwrap_or(lo)]);
        let channels = Run {
            c,
            c0,
            k: (c - c0).min(16),
            fields,
            flags: (ch.saturating, ch.shifts_left),
            narrow: Narrow::new(t, ch.clamp),
        };
        let mut j = 0;
        while j < n {
            let row = (base, taps, weights);
            let pass = match n - j {
                1 => channels.pixels::<1>(t, row, (j, step), out),
                2 => channels.pixels::<2>(t, row, (j, step), out),
                3 => channels.pixels::<3>(t, row, (j, step), out),
                5 => channels.pixels::<5>(t, row, (j, step), out),
                _ => channels.pixels::<PIXELS>(t, row, (j, step), out),
            };
            j += pass;
        }
    }
}

/// 16 channels (or the last `k < 16`) of a depthwise row: channels `c0..c0 + k` of `c`, their
/// requantization data.
struct Run {
    c: usize,
    c0: usize,
    k: usize,
    fields: [__m512i; 10],
    flags: (bool, bool),
    narrow: Narrow,
}

impl Run {
    /// Pixels `j..j + P` (input `step` bytes apart) of the row; returns `P`.
    #[inline(always)]
    fn pixels<const P: usize>(
        &self,
        t: Avx512Vnni,
        (base, taps, weights): (&[i8], &[usize], &[i8]),
        (j, step): (usize, usize),
        out: &mut [i8],
    ) -> usize {
        let (c, c0, k) = (self.c, self.c0, self.k);
        // The channels' input bytes, and their weight pairs.
        let (x_mask, w_mask) = ((1u32 << k) - 1, ((1u64 << (2 * k)) - 1) as u32);
        // SAFETY: AVX-512 F is available (token); register operation only.
        let mut acc = unsafe { [[_mm512_setzero_si512(); 2]; P] };
        for (p, tp) in taps.chunks_exact(2).enumerate() {
            // SAFETY: AVX-512 F, BW, VL and VNNI are available (token). The masked loads read
            // only the bytes their masks select: weights `2 (p c + c0)` up to `2 (p c + c0 +
            // k) <= 2 (p + 1) c <= taps.len() c <= weights.len()` (`depthwise_shape`), inputs
            // `tp[i] + (j + q) step + c0` up to `+ k <= tp[i] + (n - 1) step + c <=
            // base.len()` (also checked there, `j + q < n`); the pointers formed stay inside
            // their slices.
            unsafe {
                let w = weights.as_ptr().add(2 * (p * c + c0));
                let w = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(w_mask, w.cast()));
                // Tap 2p's weight in the low half of each lane, tap 2p + 1's alone.
                let w = [
                    _mm512_and_si512(w, _mm512_set1_epi32(0xffff)),
                    _mm512_srli_epi32::<16>(w),
                ];
                for (q, acc) in acc.iter_mut().enumerate() {
                    let at = (j + q) * step + c0;
                    for ((a, &tap), w) in acc.iter_mut().zip(tp).zip(w) {
                        let x = base.as_ptr().add(tap + at);
                        let x = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(
                            x_mask as __mmask16,
                            x.cast(),
                        ));
                        *a = _mm512_dpwssd_epi32(*a, x, w);
                    }
                }
            }
        }
        for (q, [even, odd]) in acc.into_iter().enumerate() {
            // SAFETY: AVX-512 F is available (token); register operation only.
            let sum = unsafe { _mm512_add_epi32(even, odd) };
            let bytes = requantize16(t, sum, &self.fields, self.flags, &self.narrow);
            let o = &mut out[(j + q) * c + c0..][..k];
            // SAFETY: AVX-512 BW and VL are available (token); the mask selects the `k`
            // bytes of `o`, and a masked store writes nothing else.
            unsafe { _mm_mask_storeu_epi8(o.as_mut_ptr().cast(), x_mask as __mmask16, bytes) };
        }
        P
    }
}
