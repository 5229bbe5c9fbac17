//! NEON (ARMv8.0 Advanced SIMD) kernels.
//!
//! Exactness: dot products multiply sign-extended int8 values in 16-bit lanes into 32-bit
//! accumulators (`SMLAL`), depthwise products are formed in 16 bits (`SMULL` of int8 values:
//! at most `128 * 128`) and added in pairs into 32-bit lanes (`SADALP`); all 32-bit additions
//! wrap, so the sums are the portable kernels' sums modulo 2^32. The requantization is TFLM's
//! double-rounding `MultiplyByQuantizedMultiplier`, lane by lane:
//!
//! * `SaturatingRoundingDoublingHighMul(a, b)` is exactly `SQRDMULH`: both compute
//!   `floor((2 a b + 2^31) / 2^32)` and saturate only `i32::MIN * i32::MIN` to `i32::MAX`;
//! * `RoundingDivideByPOT(x, e)` rounds half away from zero; `SRSHL` by `-e` rounds half up,
//!   so negative `x` are first decremented (saturating: `i32::MIN`, whose low bits are zero,
//!   rounds to the same value either way), which turns half up into half down for them.
//!
//! The inner functions are compiled with the `neon` target feature, which the build target
//! enables (see [`Neon::detect`]); loads and stores go through fixed-size arrays, so every
//! access is in bounds by its type, and the few pointer offsets are justified where they occur.

use core::arch::aarch64::*;

use crate::elementwise::AddParams;
use crate::simd::{
    BIAS, Block, Channels, Clamp, Job, Kernels, LEFT, MULTIPLIER, NoPanels, RIGHT, depthwise_shape,
    padded,
};

/// Proof that the CPU supports NEON: only [`Neon::detect`] creates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// The token, if the build target enables NEON (every aarch64 target but the `-softfloat`
    /// ones; an aarch64 CPU running an application profile always has it).
    pub(crate) fn detect() -> Option<Self> {
        cfg!(target_feature = "neon").then_some(Neon(()))
    }
}

/// Runs `job` with the NEON kernels, its loops compiled with NEON enabled.
#[inline]
pub(crate) fn run_neon<J: Job>(token: Neon, job: J) -> J::Output {
    // SAFETY: `token` exists, so the CPU supports NEON, the only feature `run` enables.
    unsafe { run(token, job) }
}

#[target_feature(enable = "neon")]
fn run<J: Job>(token: Neon, job: J) -> J::Output {
    job.run(token)
}

/// Loads 8 `i32`s as two vectors.
#[inline]
#[target_feature(enable = "neon")]
fn load8(s: &[i32; 8]) -> [int32x4_t; 2] {
    // SAFETY: `s` is 32 readable bytes.
    let v = unsafe { vld1q_s32_x2(s.as_ptr()) };
    [v.0, v.1]
}

/// Loads 8 bytes.
#[inline]
#[target_feature(enable = "neon")]
fn load_i8x8(s: &[i8; 8]) -> int8x8_t {
    // SAFETY: `s` is 8 readable bytes.
    unsafe { vld1_s8(s.as_ptr()) }
}

/// Loads 16 bytes.
#[inline]
#[target_feature(enable = "neon")]
fn load_i8x16(s: &[i8; 16]) -> int8x16_t {
    // SAFETY: `s` is 16 readable bytes.
    unsafe { vld1q_s8(s.as_ptr()) }
}

/// Stores 8 bytes.
#[inline]
#[target_feature(enable = "neon")]
fn store_i8x8(v: int8x8_t, out: &mut [i8; 8]) {
    // SAFETY: `out` is 8 writable bytes.
    unsafe { vst1_s8(out.as_mut_ptr(), v) }
}

/// gemmlowp `RoundingDivideByPOT` per lane, with the exponents negated (`-e`, `e` in
/// `0..=31`) in `neg_exponent` (see the module documentation).
#[inline]
#[target_feature(enable = "neon")]
fn rdbpot(x: int32x4_t, neg_exponent: int32x4_t) -> int32x4_t {
    // -1 for negative `x` when the exponent is not 0 (then `-e` has its sign bit set).
    let fixup = vshrq_n_s32::<31>(vandq_s32(x, neg_exponent));
    vrshlq_s32(vqaddq_s32(x, fixup), neg_exponent)
}

/// Adds the zero point to 8 values, clamps them and truncates them to bytes.
#[inline]
#[target_feature(enable = "neon")]
fn narrow(v: [int32x4_t; 2], clamp: Clamp) -> int8x8_t {
    let (zp, min, max) = (
        vdupq_n_s32(clamp.zero_point),
        vdupq_n_s32(clamp.min),
        vdupq_n_s32(clamp.max),
    );
    let c = |v: int32x4_t| vmovn_s32(vminq_s32(vmaxq_s32(vaddq_s32(v, zp), min), max));
    vmovn_s16(vcombine_s16(c(v[0]), c(v[1])))
}

/// Requantizes 8 accumulators plus `offset` with the channel data `ch` (`shifts_left`: some
/// left shift is not 0) to bytes.
#[inline]
#[target_feature(enable = "neon")]
fn requantize8(
    acc: [int32x4_t; 2],
    offset: int32x4_t,
    ch: &Block,
    shifts_left: bool,
    clamp: Clamp,
) -> int8x8_t {
    let (bias, mult, left, right) = (
        load8(&ch[BIAS]),
        load8(&ch[MULTIPLIER]),
        load8(&ch[LEFT]),
        load8(&ch[RIGHT]),
    );
    let mut out = [vdupq_n_s32(0); 2];
    for h in 0..2 {
        let mut x = vaddq_s32(vaddq_s32(acc[h], bias[h]), offset);
        if shifts_left {
            x = vshlq_s32(x, left[h]);
        }
        out[h] = rdbpot(vqrdmulhq_s32(x, mult[h]), vnegq_s32(right[h]));
    }
    narrow(out, clamp)
}

/// Requantizes `acc` (lanes past `out.len()`, at most 8, are ignored) for channels `c..` of
/// `ch` (`c` a multiple of 8) into `out`.
#[inline]
#[target_feature(enable = "neon")]
fn requantize_tail(acc: [int32x4_t; 2], ch: &Channels<'_>, c: usize, out: &mut [i8]) {
    let Some(block) = ch.block(c) else {
        return;
    };
    let v = requantize8(acc, vdupq_n_s32(0), block, ch.shifts_left, ch.clamp);
    match out.first_chunk_mut::<8>() {
        Some(o) => store_i8x8(v, o),
        None => {
            let mut o = [0i8; 8];
            store_i8x8(v, &mut o);
            let n = out.len();
            out.copy_from_slice(&o[..n]);
        }
    }
}

/// `patches[m] . rows[n]` over the first `16 * floor(len / 16)` values (see
/// [`Kernels::dot`]).
#[inline]
#[target_feature(enable = "neon")]
fn dot<const MR: usize, const NR: usize>(
    patches: [&[i16]; MR],
    rows: [&[i8]; NR],
) -> [[i32; NR]; MR] {
    // Exactly `chunks` elements each, so the reads below stay in bounds.
    let (chunks, x, w) = crate::simd::dot_chunks(patches, rows);
    let mut acc = [[vdupq_n_s32(0); NR]; MR];
    for i in 0..chunks {
        let mut xv = [[vdupq_n_s16(0); 2]; MR];
        for (v, x) in xv.iter_mut().zip(&x) {
            // SAFETY: `i < chunks` and `x` holds exactly `chunks` arrays of 16 values: the 32
            // bytes read are in bounds.
            let p = unsafe { vld1q_s16_x2(x.as_ptr().add(i).cast()) };
            *v = [p.0, p.1];
        }
        for (n, w) in w.iter().enumerate() {
            // SAFETY: as above, for the 16 bytes of row `n`.
            let wv = unsafe { vld1q_s8(w.as_ptr().add(i).cast()) };
            let (lo, hi) = (vmovl_s8(vget_low_s8(wv)), vmovl_high_s8(wv));
            for (acc, x) in acc.iter_mut().zip(&xv) {
                let a = vmlal_s16(acc[n], vget_low_s16(x[0]), vget_low_s16(lo));
                let a = vmlal_high_s16(a, x[0], lo);
                let a = vmlal_s16(a, vget_low_s16(x[1]), vget_low_s16(hi));
                acc[n] = vmlal_high_s16(a, x[1], hi);
            }
        }
    }
    sums(acc)
}

/// The sums of the lanes of each accumulator (wrapping).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn sums<const MR: usize, const NR: usize>(
    acc: [[int32x4_t; NR]; MR],
) -> [[i32; NR]; MR] {
    let mut out = [[0i32; NR]; MR];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, &a) in o.iter_mut().zip(a) {
            *o = vaddvq_s32(a);
        }
    }
    out
}

/// Sign-extends `src` into `dst` (the common prefix).
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn widen(dst: &mut [i16], src: &[i8]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let (d16, d_rest) = dst.as_chunks_mut::<16>();
    let (s16, s_rest) = src.as_chunks::<16>();
    for (d, s) in d16.iter_mut().zip(s16) {
        let v = load_i8x16(s);
        let v = int16x8x2_t(vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
        // SAFETY: `d` is 32 writable bytes.
        unsafe { vst1q_s16_x2(d.as_mut_ptr(), v) };
    }
    let (d8, d_rest) = d_rest.as_chunks_mut::<8>();
    let (s8, s_rest) = s_rest.as_chunks::<8>();
    for (d, s) in d8.iter_mut().zip(s8) {
        // SAFETY: `d` is 16 writable bytes.
        unsafe { vst1q_s16(d.as_mut_ptr(), vmovl_s8(load_i8x8(s))) };
    }
    for (d, &s) in d_rest.iter_mut().zip(s_rest) {
        *d = i16::from(s);
    }
}

/// See [`Kernels::requantize`].
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn requantize(acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]) {
    let n = acc.len().min(out.len()).min(ch.len());
    let (acc, out) = (&acc[..n], &mut out[..n]);
    let offset = vdupq_n_s32(offset);
    let (acc8, acc_rest) = acc.as_chunks::<8>();
    let (out8, out_rest) = out.as_chunks_mut::<8>();
    for ((a, o), block) in acc8.iter().zip(out8).zip(ch.blocks) {
        store_i8x8(
            requantize8(load8(a), offset, block, ch.shifts_left, ch.clamp),
            o,
        );
    }
    if let (false, Some(block)) = (out_rest.is_empty(), ch.blocks.get(n / 8)) {
        // The last channels through a zero-padded copy (the block is padded too).
        let mut o = [0i8; 8];
        let a = load8(&padded(acc_rest));
        store_i8x8(
            requantize8(a, offset, block, ch.shifts_left, ch.clamp),
            &mut o,
        );
        let rest = out_rest.len();
        out_rest.copy_from_slice(&o[..rest]);
    }
}

/// `acc + (x0, x1) . (w0, w1)` per channel for 8 channels: `x0`, `x1` hold 8 int8 inputs,
/// `w` the 8 interleaved weight pairs.
#[inline]
#[target_feature(enable = "neon")]
fn depthwise8(acc: [int32x4_t; 2], x0: int8x8_t, x1: int8x8_t, w: int8x16_t) -> [int32x4_t; 2] {
    // The inputs interleaved like the weights: channels 0..4, then 4..8.
    let (lo, hi) = (vzip1_s8(x0, x1), vzip2_s8(x0, x1));
    let lo = vmull_s8(lo, vget_low_s8(w));
    let hi = vmull_s8(hi, vget_high_s8(w));
    // Adjacent products (one channel's pair) added into 32-bit lanes.
    [vpadalq_s16(acc[0], lo), vpadalq_s16(acc[1], hi)]
}

/// See [`Kernels::depthwise`].
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn depthwise(
    base: &[i8],
    taps: &[usize],
    step: usize,
    weights: &[i8],
    ch: Channels<'_>,
    out: &mut [i8],
) {
    let Some((c, n)) = depthwise_shape((base, taps), step, weights, &ch, out) else {
        return;
    };
    let full = c / 8 * 8;
    let zero = [vdupq_n_s32(0); 2];
    for (j, out) in out.chunks_exact_mut(c).take(n).enumerate() {
        let (out8, out_rest) = out.as_chunks_mut::<8>();
        for (cb, o) in out8.iter_mut().enumerate() {
            let c0 = 8 * cb;
            let mut acc = zero;
            for (t, p) in taps.chunks_exact(2).zip(0..) {
                // SAFETY: `depthwise_shape` checked that every run
                // `taps[t]..taps[t] + (n - 1) * step + c` lies in `base`; with `j < n` and
                // `c0 + 8 <= c` the 8 bytes read at `taps[t] + j * step + c0` are inside it.
                // It also checked `weights.len() >= taps.len() * c`: the 16 bytes at
                // `2 * (p * c + c0)` end at most at `2 * (p + 1) * c`.
                let (x0, x1, w) = unsafe {
                    let at = j * step + c0;
                    (
                        vld1_s8(base.as_ptr().add(t[0] + at)),
                        vld1_s8(base.as_ptr().add(t[1] + at)),
                        vld1q_s8(weights.as_ptr().add(2 * (p * c + c0))),
                    )
                };
                acc = depthwise8(acc, x0, x1, w);
            }
            if let Some(block) = ch.block(c0) {
                let v = requantize8(acc, vdupq_n_s32(0), block, ch.shifts_left, ch.clamp);
                store_i8x8(v, o);
            }
        }
        if !out_rest.is_empty() {
            // The last channels through zero-padded copies.
            let mut acc = zero;
            for (t, w) in taps.chunks_exact(2).zip(weights.chunks_exact(2 * c)) {
                let run = |t: usize| &base[t + j * step + full..t + j * step + c];
                acc = depthwise8(
                    acc,
                    load_i8x8(&padded(run(t[0]))),
                    load_i8x8(&padded(run(t[1]))),
                    load_i8x16(&padded(&w[2 * full..])),
                );
            }
            requantize_tail(acc, &ch, full, out_rest);
        }
    }
}

/// See [`Kernels::add_i8`].
#[inline]
#[target_feature(enable = "neon")]
pub(super) fn add_i8(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let n = a.len().min(b.len()).min(out.len());
    let (a8, b8) = (a[..n].as_chunks::<8>().0, b[..n].as_chunks::<8>().0);
    for ((x, y), o) in a8.iter().zip(b8).zip(out[..n].as_chunks_mut::<8>().0) {
        store_i8x8(add8(p, load_i8x8(x), load_i8x8(y)), o);
    }
    let full = n / 8 * 8;
    if full < n {
        let (x, y) = (&padded(&a[full..n]), &padded(&b[full..n]));
        let mut o = [0i8; 8];
        store_i8x8(add8(p, load_i8x8(x), load_i8x8(y)), &mut o);
        out[full..n].copy_from_slice(&o[..n - full]);
    }
}

/// TFLM `AddFunc` on 8 pairs of values.
#[inline]
#[target_feature(enable = "neon")]
fn add8(p: &AddParams, a: int8x8_t, b: int8x8_t) -> int8x8_t {
    // The multipliers' shifts are <= 0: right shifts, clamped as in the reference.
    let neg_right = |s: i32| vdupq_n_s32(-s.wrapping_neg().clamp(0, 31));
    let shift = vdupq_n_s32(p.left_shift & 31);
    // Sign-extended, minus the zero point, shifted left (wrapping).
    let input = |v: int8x8_t, zero_point: i32| {
        let v = vmovl_s8(v);
        let zp = vdupq_n_s32(zero_point);
        [vmovl_s16(vget_low_s16(v)), vmovl_high_s16(v)].map(|v| vshlq_s32(vsubq_s32(v, zp), shift))
    };
    let (x, y) = (input(a, p.input1_zero_point), input(b, p.input2_zero_point));
    let (m1, m2, m_out) = (
        vdupq_n_s32(p.input1.multiplier),
        vdupq_n_s32(p.input2.multiplier),
        vdupq_n_s32(p.output.multiplier),
    );
    let (r1, r2, r_out) = (
        neg_right(p.input1.shift),
        neg_right(p.input2.shift),
        neg_right(p.output.shift),
    );
    let mut v = [vdupq_n_s32(0); 2];
    for h in 0..2 {
        let sa = rdbpot(vqrdmulhq_s32(x[h], m1), r1);
        let sb = rdbpot(vqrdmulhq_s32(y[h], m2), r2);
        v[h] = rdbpot(vqrdmulhq_s32(vaddq_s32(sa, sb), m_out), r_out);
    }
    let clamp = Clamp {
        zero_point: p.output_zero_point,
        min: p.act_min,
        max: p.act_max,
    };
    narrow(v, clamp)
}

impl Kernels for Neon {
    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        self,
        patches: [&[i16]; MR],
        rows: [&[i8]; NR],
    ) -> [[i32; NR]; MR] {
        // SAFETY: the token proves NEON, the only feature `dot` needs.
        unsafe { dot(patches, rows) }
    }

    type Panels = NoPanels;

    fn panels(self) -> Option<NoPanels> {
        None
    }

    #[inline(always)]
    fn widen(self, dst: &mut [i16], src: &[i8]) {
        // SAFETY: the token proves NEON, the only feature `widen` needs.
        unsafe { widen(dst, src) }
    }

    #[inline(always)]
    fn requantize(self, acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]) {
        // SAFETY: the token proves NEON, the only feature `requantize` needs.
        unsafe { requantize(acc, offset, ch, out) }
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
        // SAFETY: the token proves NEON, the only feature `depthwise` needs.
        unsafe { depthwise(base, taps, step, weights, ch, out) }
    }

    #[inline(always)]
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        // SAFETY: the token proves NEON, the only feature `add_i8` needs.
        unsafe { add_i8(p, a, b, out) }
    }
}
