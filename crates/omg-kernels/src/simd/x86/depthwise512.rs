//! DEPTHWISE_CONV_2D rows on 16 channels per 512-bit register (the `avx512vnni` level's
//! [`Kernels::depthwise`](crate::simd::Kernels::depthwise)).
//!
//! Exactness: per tap, the input's 16 bytes are sign-extended to 32-bit lanes and meet the
//! tap's weights as 16-bit values with a zero high half, so `VPDPWSSD` adds exactly `x * w` to
//! each lane (the high half, the sign extension of `x`, is multiplied by zero) with the
//! wrapping of `vpaddd`: the AVX2 kernel's sums. The last channels of a row (fewer than 16)
//! go through masked loads, which read nothing past them.

use core::arch::x86_64::*;

use super::avx512vnni::Avx512Vnni;
use super::fixed512::{requantize_16, requantize_pair, store_pair};
use crate::simd::{Channels, depthwise_shape};

/// A row of a depthwise convolution, as [`Kernels::depthwise`](crate::simd::Kernels::depthwise)
/// describes: 16 channels and two pixels at a time, each pixel's even and odd taps in
/// separate accumulators.
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
    let flags = (ch.saturating, ch.shifts_left);
    for c0 in (0..c).step_by(16) {
        let k = (c - c0).min(16);
        // The channels' input bytes, and their weight pairs.
        let (x_mask, w_mask) = ((1u32 << k) - 1, ((1u64 << (2 * k)) - 1) as u32);
        for j in (0..n).step_by(2) {
            let pixels = (n - j).min(2);
            // SAFETY: AVX-512 F is available (token); register operation only.
            let mut acc = unsafe { [[_mm512_setzero_si512(); 2]; 2] };
            for (p, tp) in taps.chunks_exact(2).enumerate() {
                // SAFETY: AVX-512 F, BW, VL and VNNI are available (token). The masked loads
                // read only the bytes their masks select: weights `2 (p c + c0)` up to
                // `2 (p c + c0 + k) <= 2 (p + 1) c <= taps.len() c <= weights.len()`
                // (`depthwise_shape`), inputs `tp[i] + (j + q) step + c0` up to
                // `+ k <= tp[i] + (n - 1) step + c <= base.len()` (also checked there); the
                // pointers formed stay inside their slices.
                unsafe {
                    let w = weights.as_ptr().add(2 * (p * c + c0));
                    let w = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(w_mask, w.cast()));
                    // Tap 2p's weight in the low half of each lane, tap 2p + 1's alone.
                    let w = [
                        _mm512_and_si512(w, _mm512_set1_epi32(0xffff)),
                        _mm512_srli_epi32::<16>(w),
                    ];
                    for (q, acc) in acc.iter_mut().enumerate().take(pixels) {
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
            // Even and odd taps added; channels `c0..c0 + 8` of both pixels, then
            // `c0 + 8..c0 + 16`.
            // SAFETY: AVX-512 F is available (token); register operations only.
            let (a, halves) = unsafe {
                let a = _mm512_add_epi32(acc[0][0], acc[0][1]);
                let b = _mm512_add_epi32(acc[1][0], acc[1][1]);
                let halves = [
                    _mm512_shuffle_i64x2::<0x44>(a, b),
                    _mm512_shuffle_i64x2::<0xee>(a, b),
                ];
                (a, halves)
            };
            if pixels == 1 {
                // One pixel: its 16 channels in one requantization.
                let Some(lo) = ch.block(c0) else {
                    break;
                };
                // Without a second block, the upper lanes are not stored.
                let hi = ch.block(c0 + 8).unwrap_or(lo);
                let bytes = requantize_16(t, a, [lo, hi], flags, ch.clamp);
                let mut b = [0i8; 16];
                // SAFETY: SSE2 is available (x86-64); `b` is 16 writable bytes.
                unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), bytes) };
                let o = &mut out[j * c + c0..][..k];
                match o.first_chunk_mut::<16>() {
                    Some(o) => *o = b,
                    None => o.copy_from_slice(&b[..k]),
                }
                continue;
            }
            for (h, v) in halves.into_iter().enumerate() {
                let Some(block) = ch.block(c0 + 8 * h) else {
                    break;
                };
                let bytes = requantize_pair(t, v, block, flags, ch.clamp);
                let at = j * c + c0 + 8 * h;
                store_pair(bytes, out, [at, at + c], pixels, (k - 8 * h).min(8));
            }
        }
    }
}
