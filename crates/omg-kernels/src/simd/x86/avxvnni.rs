//! The `avxvnni` level: a convolution panel kernel and FULLY_CONNECTED rows on AVX-VNNI's
//! VEX-encoded `VPDPBUSD` (four `u8 * i8` products per 32-bit lane), and the AVX2 kernels with
//! `VPDPWSSD` as their multiply-accumulate elsewhere.
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
use crate::simd::{Channels, Job, Kernels, PanelKernels, PatchRuns, gemm_shape, quad_rows_shape};

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
pub(super) trait VnniLevel: Mac256 + PanelKernels {
    /// 256-bit `VPDPBUSD` (non-saturating): each 32-bit lane of `acc` plus the four products
    /// of the `u8`s of `u` and the `i8`s of `w` in that lane, wrapping.
    fn dpbusd(self, acc: __m256i, u: __m256i, w: __m256i) -> __m256i;

    /// Same-shape quantized ADD (see [`Kernels::add_i8`]); the AVX2 kernel unless the level
    /// has a wider one.
    #[inline(always)]
    fn add(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        self.avx2().add_i8(p, a, b, out);
    }

    /// A depthwise row (see [`Kernels::depthwise`]); the AVX2 kernel with this level's
    /// multiply-accumulate unless the level has a wider one.
    #[inline(always)]
    fn depthwise_row(
        self,
        (base, taps): (&[i8], &[usize]),
        step: usize,
        weights: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
    ) {
        depthwise_with(self, (base, taps), step, weights, ch, out);
    }
}

impl VnniLevel for AvxVnni {
    /// `vpdpbusd` (VEX).
    #[inline(always)]
    fn dpbusd(self, acc: __m256i, u: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX-VNNI is available (token); register operation only.
        unsafe { _mm256_dpbusd_avx_epi32(acc, u, w) }
    }
}

/// Rows of a FULLY_CONNECTED per pass over the input in [`quad_rows_with`]: 8 accumulators,
/// the input vector and a weight vector stay in the 16 registers of AVX2.
const QUAD_ROWS: usize = 8;

/// [`Kernels::quad_rows`] on `VPDPBUSD`: `R` rows (at most [`QUAD_ROWS`]) per pass over the
/// input, one 256-bit accumulator each (each input vector load feeds `R` multiply-accumulates),
/// then horizontal sums; 8 rows at a time, then 4, then the rest.
#[inline(always)]
fn quad_rows_with<T: VnniLevel>(
    t: T,
    x: &[i8],
    rows: &[i8],
    stride: usize,
    corrections: &[i8],
    acc: &mut [i32],
) {
    let n = acc.len();
    if !quad_rows_shape(x.len(), (rows.len(), stride), corrections.len(), n) || stride == 0 {
        return;
    }
    let x = &x[..stride].as_chunks::<32>().0;
    let mut r = 0;
    while r + QUAD_ROWS <= n {
        quad_block::<T, QUAD_ROWS, 1>(t, x, rows, r, corrections, acc);
        r += QUAD_ROWS;
    }
    if r + 4 <= n {
        quad_block::<T, 4, 2>(t, x, rows, r, corrections, acc);
        r += 4;
    }
    match n - r {
        3 => quad_block::<T, 3, 2>(t, x, rows, r, corrections, acc),
        2 => quad_block::<T, 2, 4>(t, x, rows, r, corrections, acc),
        1 => quad_block::<T, 1, 4>(t, x, rows, r, corrections, acc),
        _ => {}
    }
}

/// Rows `r..r + R` of [`quad_rows_with`] (the caller checked the shapes: `x` holds
/// `stride / 32` vectors, `rows` at least `n * stride` values, `corrections` `4 n` bytes, and
/// `r + R <= n = acc.len()`), `U` input vectors per step with an accumulator each per row
/// (`R * U` at most 8: enough independent multiply-accumulates to hide their latency when
/// there are few rows).
#[inline(always)]
fn quad_block<T: VnniLevel, const R: usize, const U: usize>(
    t: T,
    x: &[[i8; 32]],
    rows: &[i8],
    r: usize,
    corrections: &[i8],
    acc: &mut [i32],
) {
    let vecs = x.len();
    // Row `r + i`'s vector `j` is chunk `i * vecs + j`; indexing one slice (rather than
    // splitting it into `R` row slices) keeps LLVM from building the row slices with
    // scatters.
    let Some(block) = rows.get(r * 32 * vecs..(r + R) * 32 * vecs) else {
        return;
    };
    let block = block.as_chunks::<32>().0;
    // SAFETY: AVX2 is available (token); register operation only.
    let zero = unsafe { _mm256_setzero_si256() };
    let mut au = [[zero; R]; U];
    let (steps, _) = x.as_chunks::<U>();
    for (s, xs) in steps.iter().enumerate() {
        for (u, (xj, a)) in xs.iter().zip(&mut au).enumerate() {
            let j = s * U + u;
            // SAFETY: AVX2 is available (token); `xj` is 32 readable bytes, and `block` holds
            // `R * vecs` chunks with `i < R` and `j < vecs`, so `i * vecs + j` is in bounds.
            unsafe {
                let xv = _mm256_loadu_si256(xj.as_ptr().cast());
                for (i, a) in a.iter_mut().enumerate() {
                    let w = _mm256_loadu_si256(block.get_unchecked(i * vecs + j).as_ptr().cast());
                    *a = t.dpbusd(*a, xv, w);
                }
            }
        }
    }
    // The vectors past the last whole step, into the first accumulators.
    for (j, xj) in x.iter().enumerate().skip(steps.len() * U) {
        // SAFETY: as above (`j < vecs`).
        unsafe {
            let xv = _mm256_loadu_si256(xj.as_ptr().cast());
            for (i, a) in au[0].iter_mut().enumerate() {
                let w = _mm256_loadu_si256(block.get_unchecked(i * vecs + j).as_ptr().cast());
                *a = t.dpbusd(*a, xv, w);
            }
        }
    }
    // Row `i`'s accumulators summed into `a[i]`; zero past `R`.
    let mut a = [zero; QUAD_ROWS];
    for (i, a) in a.iter_mut().enumerate().take(R) {
        for au in &au {
            // SAFETY: AVX2 is available (token); register operation only.
            *a = unsafe { _mm256_add_epi32(*a, au[i]) };
        }
    }
    // SAFETY: AVX2 is available (token); register operations only (the accumulators past `R`
    // are zero).
    let sums = unsafe {
        let h = [
            _mm256_hadd_epi32(a[0], a[1]),
            _mm256_hadd_epi32(a[2], a[3]),
            _mm256_hadd_epi32(a[4], a[5]),
            _mm256_hadd_epi32(a[6], a[7]),
        ];
        // Rows 0..4 and 4..8, each 128-bit half holding half of each row's sum.
        let q0 = _mm256_hadd_epi32(h[0], h[1]);
        let q1 = _mm256_hadd_epi32(h[2], h[3]);
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(q0, q1),
            _mm256_permute2x128_si256::<0x31>(q0, q1),
        )
    };
    let mut s = [0i32; 8];
    store8(t.avx2(), sums, &mut s);
    let c = &corrections[4 * r..4 * (r + R)];
    for ((a, s), c) in acc[r..r + R].iter_mut().zip(s).zip(c.as_chunks::<4>().0) {
        *a = s.wrapping_add(i32::from_le_bytes(c.map(|b| b as u8)));
    }
}

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
    fn quad_rows(self, x: &[i8], rows: &[i8], stride: usize, corrections: &[i8], acc: &mut [i32]) {
        quad_rows_with(self, x, rows, stride, corrections, acc);
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
        self.depthwise_row((base, taps), step, weights, ch, out);
    }

    #[inline(always)]
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        self.add(p, a, b, out);
    }
}

impl PanelKernels for AvxVnni {
    type Patch = i8;
    const GROUP: usize = 4;
    const HEADER: usize = 32;
    /// 10 accumulators (5 pixels times 2 panels): 5 pixels measured faster than 4 on the
    /// ResNets (large 671 -> 602 us); 3 panels (12 accumulators at 4 pixels, 3 weight vectors
    /// and the broadcast quad in the 16 registers) measured slower.
    const MAX_NB: usize = 2;
    const MR: usize = 5;

    /// One panel (8 channels) per 256-bit accumulator: for each quad of patch values, the
    /// panel's 32 weight bytes times the broadcast quad of `u8`s.
    #[inline(always)]
    fn gemm<const MR: usize, const NB: usize>(
        self,
        patches: PatchRuns<'_, i8>,
        panels: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
        stride: usize,
    ) {
        let Some(n) = gemm_shape::<Self, _>((MR, NB), &patches, panels.len(), &ch, (&*out, stride))
        else {
            return;
        };
        let len = patches.len();
        let (t, quads, panel_len) = (self.0, patches.run / 4, 8 * len + Self::HEADER);
        let mut all: [&[[i8; 32]]; NB] = [&[]; NB];
        // SAFETY: AVX2 is available (token); register operation only.
        let mut init = unsafe { [_mm256_setzero_si256(); NB] };
        for ((w, init), nb) in all.iter_mut().zip(&mut init).zip(0..) {
            let (head, body) = panels[nb * panel_len..(nb + 1) * panel_len].split_at(32);
            *w = &body.as_chunks::<32>().0[..len / 4];
            // SAFETY: AVX2 is available (token); `head` is 32 readable bytes.
            *init = unsafe { _mm256_loadu_si256(head.as_ptr().cast()) };
        }
        let mut acc = [init; MR];
        for r in 0..patches.runs {
            let Some((x, w)) = patches.units::<4, MR, _, NB>(r, quads, &all) else {
                // Never: `gemm_shape` checked every run.
                return;
            };
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
