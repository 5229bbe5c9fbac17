//! The `avx512vnni` level: 512-bit `VPDPBUSD` (AVX-512 VNNI, four `u8 * i8` products per
//! 32-bit lane) for the convolution panel kernel (two panels, 16 output channels, per
//! register); 256-bit EVEX `VPDPBUSD` for FULLY_CONNECTED (the `avxvnni` kernel); the 256-bit
//! EVEX form of `VPDPWSSD` for the other dot products and the depthwise kernel; the AVX2
//! level's requantization, widening and ADD.
//!
//! Exactness: as for the `avxvnni` level (see its module): `VPDPWSSD` sums pairs of int8
//! products exactly then wraps like `vpaddd`; the quad panel kernel multiplies `x + 128` from
//! an accumulator started at `-128 * sum w`, which leaves `sum x w` modulo 2^32. Lanes that
//! only pad a register start at zero and meet zero weights: they add nothing.

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

impl VnniLevel for Avx512Vnni {
    /// `vpdpbusd` (EVEX, 256-bit).
    #[inline(always)]
    fn dpbusd(self, acc: __m256i, u: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI and VL are available (token); register operation only.
        unsafe { _mm256_dpbusd_epi32(acc, u, w) }
    }
}

impl PanelKernels for Avx512Vnni {
    type Patch = i8;
    const GROUP: usize = 4;
    const HEADER: usize = 32;
    /// 8 accumulators (4 pixels times 2 registers of 2 panels).
    const MAX_NB: usize = 4;

    /// Two panels (16 channels) per 512-bit accumulator: for each quad of patch values, the
    /// two panels' 32 weight bytes side by side times the broadcast quad of `u8`s.
    #[inline(always)]
    fn gemm<const MR: usize, const NB: usize>(
        self,
        patches: &[i8],
        len: usize,
        panels: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
        stride: usize,
    ) {
        let shape = ((patches.len(), len), panels.len(), (&*out, stride));
        let Some(n) = gemm_shape::<Self>((MR, NB), shape.0, shape.1, &ch, shape.2) else {
            return;
        };
        let (t, quads, pairs) = (self.0, len / 4, NB.div_ceil(2));
        let panel_len = 8 * len + Self::HEADER;
        let mut x: [&[[i8; 4]]; MR] = [&[]; MR];
        for (m, x) in x.iter_mut().enumerate() {
            *x = &patches[m * len..(m + 1) * len].as_chunks::<4>().0[..quads];
        }
        let mut w: [&[[i8; 32]]; NB] = [&[]; NB];
        let mut head: [&[i8]; NB] = [&[]; NB];
        for ((w, head), nb) in w.iter_mut().zip(&mut head).zip(0..) {
            let (h, body) = panels[nb * panel_len..(nb + 1) * panel_len].split_at(32);
            (*head, *w) = (h, &body.as_chunks::<32>().0[..quads]);
        }
        // Accumulator `q` holds panels `2q` and `2q + 1` (only the first `pairs` are used),
        // starting at their headers (zero for a missing second panel).
        // SAFETY: AVX-512 F is available (token); register operation only.
        let mut init = unsafe { [_mm512_setzero_si512(); NB] };
        for (q, v) in init.iter_mut().enumerate().take(pairs) {
            // SAFETY: AVX2 and AVX-512 F are available (token); each header is 32 readable
            // bytes.
            unsafe {
                let lo = _mm256_loadu_si256(head[2 * q].as_ptr().cast());
                let hi = match head.get(2 * q + 1) {
                    Some(h) => _mm256_loadu_si256(h.as_ptr().cast()),
                    None => _mm256_setzero_si256(),
                };
                *v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
            }
        }
        let mut acc = [init; MR];
        for j in 0..quads {
            // SAFETY: AVX-512 F and VNNI are available (token). `j < quads`, and every slice
            // of `x` and `w` holds exactly `quads` elements: the unchecked reads are in
            // bounds; `2q + 1` is read only when below `NB`.
            unsafe {
                let mut wv = [_mm512_setzero_si512(); NB];
                for (q, v) in wv.iter_mut().enumerate().take(pairs) {
                    let lo = _mm256_loadu_si256(w[2 * q].get_unchecked(j).as_ptr().cast());
                    let hi = match w.get(2 * q + 1) {
                        Some(w) => _mm256_loadu_si256(w.get_unchecked(j).as_ptr().cast()),
                        None => _mm256_setzero_si256(),
                    };
                    *v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                }
                for (a, x) in acc.iter_mut().zip(&x) {
                    // The quad as one 32-bit lane, broadcast.
                    let quad = i32::from_ne_bytes(x.get_unchecked(j).map(|b| b as u8));
                    let b = _mm512_set1_epi32(quad);
                    for (a, &w) in a.iter_mut().zip(&wv).take(pairs) {
                        *a = _mm512_dpbusd_epi32(*a, b, w);
                    }
                }
            }
        }
        // Through memory once, so that the accumulators above stay in registers.
        let mut lanes = [[[[0i32; 8]; 2]; NB]; MR];
        for (l, a) in lanes.iter_mut().zip(&acc) {
            for (l, a) in l.iter_mut().zip(a).take(pairs) {
                // SAFETY: AVX-512 F is available (token); `l` is 64 writable bytes.
                unsafe { _mm512_storeu_si512(l.as_mut_ptr().cast(), *a) };
            }
        }
        for (m, l) in lanes.iter().enumerate() {
            let o = &mut out[m * stride..m * stride + n];
            for (q, l) in l.iter().enumerate().take(pairs) {
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
