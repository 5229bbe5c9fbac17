//! The `avxvnni` level: a convolution panel kernel on AVX-VNNI's VEX-encoded `VPDPBUSD` (four
//! `u8 * i8` products per 32-bit lane), and the AVX2 kernels with `VPDPWSSD` as their
//! multiply-accumulate elsewhere.
//!
//! Exactness of `VPDPWSSD` (the non-saturating form): it adds the two products of each pair
//! of `i16` lanes to the 32-bit accumulator with wrapping arithmetic, exactly what `vpmaddwd`
//! then `vpaddd` compute on int8 operands (no pair sum can overflow).
//!
//! Exactness of the quad panel kernel: the patches hold `u = x + 128` (`x ^ 0x80`, in
//! `0..=255`) and `VPDPBUSD` (the non-saturating form) adds `u0 w0 + u1 w1 + u2 w2 + u3 w3`,
//! computed exactly (at most `4 * 255 * 128` in magnitude), to the 32-bit accumulator with
//! wrapping arithmetic. The accumulator starts at the panel header's `-128 * sum w`
//! (computed with wrapping at pack time), so it ends at
//! `-128 sum w + sum (x + 128) w = sum x w` modulo 2^32: the pair kernels' sum, which is the
//! reference's modulo 2^32 (all its adds wrap in `i32`). Values past the patch depth meet
//! zero weights and add nothing. Requantization, widening and ADD are the AVX2 level's code.

use core::arch::x86_64::*;

use super::avx2::{Avx2, Mac256, depthwise_with, dot_with, flip, load8, requantize_tail, store8};
use crate::elementwise::AddParams;
use crate::simd::{Channels, Job, Kernels, PanelKernels, gemm_shape};

/// Proof that the CPU supports AVX2 and AVX-VNNI: only [`AvxVnni::detect`] creates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AvxVnni(Avx2);

impl AvxVnni {
    /// The token, if this CPU (and its operating system) supports AVX2 and AVX-VNNI.
    pub(crate) fn detect() -> Option<Self> {
        let avx2 = Avx2::detect()?;
        super::vnni_bit(true).then_some(AvxVnni(avx2))
    }
}

/// Runs `job` with the AVX-VNNI kernels, its loops compiled with AVX2 and AVX-VNNI enabled.
#[inline]
pub(crate) fn run_avxvnni<J: Job>(token: AvxVnni, job: J) -> J::Output {
    // SAFETY: `token` exists, so the CPU supports AVX2 and AVX-VNNI, the features `run`
    // enables.
    unsafe { run(token, job) }
}

#[target_feature(enable = "avx2,avxvnni")]
fn run<J: Job>(token: AvxVnni, job: J) -> J::Output {
    job.run(token)
}

impl Mac256 for AvxVnni {
    #[inline(always)]
    fn avx2(self) -> Avx2 {
        self.0
    }

    /// `vpdpwssd` (VEX).
    #[inline(always)]
    fn mac(self, acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI is available (token); register operation only.
        unsafe { _mm256_dpwssd_avx_epi32(acc, a, b) }
    }
}

/// A VNNI level: the AVX2 level's kernels with the level's multiply-accumulate, plus its own
/// panel kernel. Implemented by [`AvxVnni`] and [`super::Avx512Vnni`].
pub(super) trait VnniLevel: Mac256 + PanelKernels {}

impl VnniLevel for AvxVnni {}

impl<T: VnniLevel> Kernels for T {
    type Panels = T;

    fn panels(self) -> Option<T> {
        Some(self)
    }

    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        self,
        patches: [&[i16]; MR],
        rows: [&[i8]; NR],
    ) -> [[i32; NR]; MR] {
        dot_with(self, patches, rows)
    }

    #[inline(always)]
    fn widen(self, dst: &mut [i16], src: &[i8]) {
        self.avx2().widen(dst, src);
    }

    #[inline(always)]
    fn flip(self, dst: &mut [i8], src: &[i8]) {
        flip(self.avx2(), dst, src);
    }

    #[inline(always)]
    fn requantize(self, acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]) {
        self.avx2().requantize(acc, offset, ch, out);
    }

    #[inline(always)]
    fn depthwise(
        self,
        base: &[i8],
        taps: &[usize],
        step: usize,
        weights: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
    ) {
        depthwise_with(self, (base, taps), step, weights, ch, out);
    }

    #[inline(always)]
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        self.avx2().add_i8(p, a, b, out);
    }
}

impl PanelKernels for AvxVnni {
    type Patch = i8;
    const GROUP: usize = 4;
    const HEADER: usize = 32;
    /// 8 accumulators (4 pixels times 2 panels); 3 panels (12 accumulators, 3 weight vectors
    /// and the broadcast quad in the 16 registers) measured slower on the ResNets.
    const MAX_NB: usize = 2;

    /// One panel (8 channels) per 256-bit accumulator: for each quad of patch values, the
    /// panel's 32 weight bytes times the broadcast quad of `u8`s.
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
        let (t, quads, panel_len) = (self.0, len / 4, 8 * len + Self::HEADER);
        let mut x: [&[[i8; 4]]; MR] = [&[]; MR];
        for (m, x) in x.iter_mut().enumerate() {
            *x = &patches[m * len..(m + 1) * len].as_chunks::<4>().0[..quads];
        }
        let mut w: [&[[i8; 32]]; NB] = [&[]; NB];
        // SAFETY: AVX2 is available (token); register operation only.
        let mut init = unsafe { [_mm256_setzero_si256(); NB] };
        for ((w, init), nb) in w.iter_mut().zip(&mut init).zip(0..) {
            let (head, body) = panels[nb * panel_len..(nb + 1) * panel_len].split_at(32);
            *w = &body.as_chunks::<32>().0[..quads];
            // SAFETY: AVX2 is available (token); `head` is 32 readable bytes.
            *init = unsafe { _mm256_loadu_si256(head.as_ptr().cast()) };
        }
        let mut acc = [init; MR];
        for j in 0..quads {
            // SAFETY: AVX2 and AVX-VNNI are available (token). `j < quads`, and every slice
            // of `x` and `w` holds exactly `quads` elements: the unchecked reads are in
            // bounds.
            unsafe {
                let mut wv = [_mm256_setzero_si256(); NB];
                for (v, w) in wv.iter_mut().zip(&w) {
                    *v = _mm256_loadu_si256(w.get_unchecked(j).as_ptr().cast());
                }
                for (a, x) in acc.iter_mut().zip(&x) {
                    // The quad as one 32-bit lane, broadcast.
                    let quad = i32::from_ne_bytes(x.get_unchecked(j).map(|b| b as u8));
                    let b = _mm256_set1_epi32(quad);
                    for (a, &w) in a.iter_mut().zip(&wv) {
                        *a = _mm256_dpbusd_avx_epi32(*a, b, w);
                    }
                }
            }
        }
        // Through memory once, so that the accumulators above stay in registers.
        let mut sums = [[[0i32; 8]; NB]; MR];
        for (s, a) in sums.iter_mut().zip(&acc) {
            for (s, &a) in s.iter_mut().zip(a) {
                store8(t, a, s);
            }
        }
        for (m, a) in sums.iter().enumerate() {
            let o = &mut out[m * stride..m * stride + n];
            for (nb, v) in a.iter().enumerate() {
                let c = 8 * nb;
                if c < n {
                    requantize_tail(t, load8(t, v), &ch, c, &mut o[c..]);
                }
            }
        }
    }
}
