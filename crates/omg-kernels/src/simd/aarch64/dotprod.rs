//! Dot-product (ARMv8.2 `SDOT`) kernels.
//!
//! `SDOT` adds to each 32-bit lane the products of four int8 pairs. The patch values are int8
//! values held in 16 bits ([`Kernels::dot`]), so narrowing them back to bytes (`XTN`) is
//! exact, and each lane's sum of four products is exact in `i32`; the lanes accumulate with
//! wrapping additions, as in the portable kernels. Everything else is the NEON level's code.
//!
//! `SDOT` is written as inline assembly: its intrinsic (`vdotq_s32`) is not stable in Rust yet.

use core::arch::aarch64::*;
use core::arch::asm;

use super::neon;
use crate::elementwise::AddParams;
use crate::simd::{Channels, Job, Kernels, NoPanels};

/// Proof that the CPU supports `SDOT` (and NEON): only [`Dotprod::detect`] creates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dotprod(());

impl Dotprod {
    /// The token, if the build enables the `dotprod` target feature or (with the `std`
    /// feature) the operating system reports the instruction.
    pub(crate) fn detect() -> Option<Self> {
        (cfg!(target_feature = "dotprod") || reported()).then_some(Dotprod(()))
    }
}

/// Whether the operating system reports `SDOT` (through `std`, which caches the answer).
#[cfg(feature = "std")]
fn reported() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// Without `std` nothing reports features (reading ID registers may trap, for instance in a
/// trusted application): only the build's target features count.
#[cfg(not(feature = "std"))]
fn reported() -> bool {
    false
}

/// Runs `job` with the dot-product kernels, its loops compiled with `dotprod` enabled.
#[inline]
pub(crate) fn run_dotprod<J: Job>(token: Dotprod, job: J) -> J::Output {
    // SAFETY: `token` exists, so the CPU supports `dotprod` (and NEON, which it implies), the
    // only feature `run` enables.
    unsafe { run(token, job) }
}

#[target_feature(enable = "dotprod")]
fn run<J: Job>(token: Dotprod, job: J) -> J::Output {
    job.run(token)
}

/// `acc + SDOT(a, b)`: each lane plus the sum of the products of its four pairs of bytes.
#[inline]
#[target_feature(enable = "dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: `SDOT` is available (this function's target feature); it reads and writes only
    // the three vector registers named.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// `patches[m] . rows[n]` over the first `16 * floor(len / 16)` values (see
/// [`Kernels::dot`]).
#[inline]
#[target_feature(enable = "dotprod")]
fn dot<const MR: usize, const NR: usize>(
    patches: [&[i16]; MR],
    rows: [&[i8]; NR],
) -> [[i32; NR]; MR] {
    // Exactly `chunks` elements each, so the reads below stay in bounds.
    let (chunks, x, w) = crate::simd::dot_chunks(patches, rows);
    let mut acc = [[vdupq_n_s32(0); NR]; MR];
    for i in 0..chunks {
        let mut xv = [vdupq_n_s8(0); MR];
        for (v, x) in xv.iter_mut().zip(&x) {
            // SAFETY: `i < chunks` and `x` holds exactly `chunks` arrays of 16 values: the 32
            // bytes read are in bounds.
            let p = unsafe { vld1q_s16_x2(x.as_ptr().add(i).cast()) };
            *v = vmovn_high_s16(vmovn_s16(p.0), p.1);
        }
        for (n, w) in w.iter().enumerate() {
            // SAFETY: as above, for the 16 bytes of row `n`.
            let wv = unsafe { vld1q_s8(w.as_ptr().add(i).cast()) };
            for (acc, &x) in acc.iter_mut().zip(&xv) {
                acc[n] = sdot(acc[n], x, wv);
            }
        }
    }
    neon::sums(acc)
}

impl Kernels for Dotprod {
    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        self,
        patches: [&[i16]; MR],
        rows: [&[i8]; NR],
    ) -> [[i32; NR]; MR] {
        // SAFETY: the token proves `dotprod`, the only feature `dot` needs.
        unsafe { dot(patches, rows) }
    }

    type Panels = NoPanels;

    fn panels(self) -> Option<NoPanels> {
        None
    }

    #[inline(always)]
    fn widen(self, dst: &mut [i16], src: &[i8]) {
        // SAFETY: the token proves `dotprod`, which implies NEON, the only feature `widen`
        // needs.
        unsafe { neon::widen(dst, src) }
    }

    #[inline(always)]
    fn requantize(self, acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]) {
        // SAFETY: as in `widen`.
        unsafe { neon::requantize(acc, offset, ch, out) }
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
        // SAFETY: as in `widen`.
        unsafe { neon::depthwise(base, taps, step, weights, ch, out) }
    }

    #[inline(always)]
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        // SAFETY: as in `widen`.
        unsafe { neon::add_i8(p, a, b, out) }
    }
}
