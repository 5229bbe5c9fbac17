//! The `avxvnni` level: the AVX2 kernels with AVX-VNNI's VEX-encoded `VPDPWSSD` as their
//! multiply-accumulate.
//!
//! Exactness: `VPDPWSSD` (the non-saturating form) adds the two products of each pair of
//! `i16` lanes to the 32-bit accumulator with wrapping arithmetic, exactly what `vpmaddwd`
//! then `vpaddd` compute on int8 operands (no pair sum can overflow). Everything else
//! (requantization, widening, ADD) is the AVX2 level's code.

use core::arch::x86_64::*;

use super::avx2::{Avx2, Mac256, depthwise_with, dot_with, gemm_with};
use crate::elementwise::AddParams;
use crate::simd::{Channels, Job, Kernels, PanelKernels};

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
        gemm_with::<_, MR, NB>(self, (patches, len), panels, ch, (out, stride));
    }
}
