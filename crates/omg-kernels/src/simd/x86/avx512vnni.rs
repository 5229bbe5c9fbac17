//! The `avx512vnni` level: 512-bit `VPDPWSSD` (AVX-512 VNNI) for the convolution panel kernel
//! (two panels, 16 output channels, per register); the 256-bit EVEX form of the same
//! instruction for the dot products (FULLY_CONNECTED) and the depthwise kernel; the AVX2
//! level's requantization, widening and ADD.
//!
//! Exactness: `VPDPWSSD` (the non-saturating form) adds the two products of each pair of
//! `i16` lanes to the 32-bit accumulator with wrapping arithmetic, exactly what `vpmaddwd`
//! then `vpaddd` compute on int8 operands (no pair sum can overflow); lanes that only pad a
//! register hold zeros and add nothing.

use core::arch::x86_64::*;

use super::avx2::{Avx2, Mac256, load8, requantize_tail};
use super::avxvnni::VnniLevel;
use crate::simd::{Channels, Job, PanelKernels, gemm_shape};

/// Proof that the CPU supports AVX2, AVX-512 F/BW/VL and AVX-512 VNNI (with the operating
/// system saving the 512-bit state): only [`Avx512Vnni::detect`] creates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512Vnni(Avx2);

impl Avx512Vnni {
    /// The token, if this CPU (and its operating system) supports the level.
    pub(crate) fn detect() -> Option<Self> {
        let avx2 = Avx2::detect()?;
        (super::avx512_cpuid::get() && super::vnni_bit(false)).then_some(Avx512Vnni(avx2))
    }
}

/// Runs `job` with the AVX-512 VNNI kernels, its loops compiled with the level's features.
#[inline]
pub(crate) fn run_avx512vnni<J: Job>(token: Avx512Vnni, job: J) -> J::Output {
    // SAFETY: `token` exists, so the CPU supports every feature `run` enables.
    unsafe { run(token, job) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn run<J: Job>(token: Avx512Vnni, job: J) -> J::Output {
    job.run(token)
}

impl Mac256 for Avx512Vnni {
    #[inline(always)]
    fn avx2(self) -> Avx2 {
        self.0
    }

    /// `vpdpwssd` (EVEX, 256-bit).
    #[inline(always)]
    fn mac(self, acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI and VL are available (token); register operation only.
        unsafe { _mm256_dpwssd_epi32(acc, a, b) }
    }
}

impl VnniLevel for Avx512Vnni {}

impl PanelKernels for Avx512Vnni {
    /// Two panels (16 channels) per 512-bit accumulator: for each pair of patch values, the
    /// two panels' 16 weight bytes side by side, sign-extended, times the broadcast pair.
    #[inline(always)]
    fn gemm<const MR: usize, const NB: usize>(
        self,
        patches: &[i16],
        len: usize,
        panels: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
        stride: usize,
    ) {
        let Some(n) = gemm_shape((MR, NB), (patches, len), panels, &ch, (out, stride)) else {
            return;
        };
        let (t, pairs, quads) = (self.0, len / 2, NB.div_ceil(2));
        let mut x: [&[[i16; 2]]; MR] = [&[]; MR];
        for (m, x) in x.iter_mut().enumerate() {
            *x = &patches[m * len..(m + 1) * len].as_chunks::<2>().0[..pairs];
        }
        let mut w: [&[[i8; 16]]; NB] = [&[]; NB];
        for (nb, w) in w.iter_mut().enumerate() {
            *w = &panels[nb * 8 * len..(nb + 1) * 8 * len].as_chunks::<16>().0[..pairs];
        }
        // Accumulator `q` holds panels `2q` and `2q + 1` (only the first `quads` are used).
        // SAFETY: AVX-512 F is available (token); register operation only.
        let mut acc = unsafe { [[_mm512_setzero_si512(); NB]; MR] };
        for j in 0..pairs {
            // SAFETY: AVX-512 F, BW and VNNI are available (token). `j < pairs`, and every
            // slice of `x` and `w` holds exactly `pairs` elements: the unchecked reads are in
            // bounds; `2q + 1` is read only when below `NB`.
            unsafe {
                let mut wv = [_mm512_setzero_si512(); NB];
                for (q, v) in wv.iter_mut().enumerate().take(quads) {
                    let lo = _mm_loadu_si128(w[2 * q].get_unchecked(j).as_ptr().cast());
                    let hi = match w.get(2 * q + 1) {
                        Some(w) => _mm_loadu_si128(w.get_unchecked(j).as_ptr().cast()),
                        None => _mm_setzero_si128(),
                    };
                    *v = _mm512_cvtepi8_epi16(_mm256_set_m128i(hi, lo));
                }
                for (a, x) in acc.iter_mut().zip(&x) {
                    // The pair as one 32-bit lane (4 readable bytes), broadcast.
                    let pair = x.get_unchecked(j).as_ptr().cast::<i32>().read_unaligned();
                    let b = _mm512_set1_epi32(pair);
                    for (a, &w) in a.iter_mut().zip(&wv).take(quads) {
                        *a = _mm512_dpwssd_epi32(*a, b, w);
                    }
                }
            }
        }
        // Through memory once, so that the accumulators above stay in registers.
        let mut lanes = [[[[0i32; 8]; 2]; NB]; MR];
        for (l, a) in lanes.iter_mut().zip(&acc) {
            for (l, a) in l.iter_mut().zip(a).take(quads) {
                // SAFETY: AVX-512 F is available (token); `l` is 64 writable bytes.
                unsafe { _mm512_storeu_si512(l.as_mut_ptr().cast(), *a) };
            }
        }
        for (m, l) in lanes.iter().enumerate() {
            let o = &mut out[m * stride..m * stride + n];
            for (q, l) in l.iter().enumerate().take(quads) {
                for (h, l) in l.iter().enumerate() {
                    let c = 16 * q + 8 * h;
                    if c < n {
                        requantize_tail(t, load8(t, l), &ch, c, &mut o[c..]);
                    }
                }
            }
        }
    }
}
