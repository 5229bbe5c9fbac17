//! AVX2 kernels.
//!
//! Exactness: products are formed with `vpmaddwd` on sign-extended int8 values (each product
//! is at most `128 * 128`, each pair sum fits `i32`), accumulated with wrapping `vpaddd`, so the
//! sums are the portable kernels' sums modulo 2^32. The requantization reproduces TFLM's
//! double-rounding `MultiplyByQuantizedMultiplier` lane by lane:
//!
//! * `SaturatingRoundingDoublingHighMul(a, b)` is `(a * b + nudge) / 2^31` with C truncation;
//!   for both signs of `a * b` that equals `floor((a * b + 2^30) / 2^31)`, whose low 32 bits are
//!   bits 31..62 of the 64-bit sum (taken with `vpmuldq` on even and odd lanes), except for
//!   the single saturating case `a == b == i32::MIN`, which is patched;
//! * `RoundingDivideByPOT(x, e)` is `(x >> e) + (x & mask > (mask >> 1) + (x < 0))` with
//!   per-lane shifts.
//!
//! Loads and stores go through fixed-size arrays (`&[i32; 8]`, `&[i8; 16]`, ...) obtained with
//! `as_chunks`, so every access is in bounds by its type; the few pointer offsets are justified
//! where they occur.

use core::arch::x86_64::*;

use crate::elementwise::AddParams;
use crate::simd::{
    BIAS, Block, Channels, Clamp, HALF, Job, Kernels, LEFT, MASK, MULTIPLIER, PanelKernels,
    PatchRuns, RIGHT, depthwise_shape, gemm_shape, padded,
};

/// Proof that the CPU supports AVX2: only [`Avx2::detect`] creates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token, if this CPU (and its operating system) supports AVX2.
    pub(crate) fn detect() -> Option<Self> {
        super::avx2_cpuid::get().then_some(Avx2(()))
    }
}

/// Runs `job` with the AVX2 kernels, its loops compiled with AVX2 enabled.
#[inline]
pub(crate) fn run_avx2<J: Job>(token: Avx2, job: J) -> J::Output {
    // SAFETY: `token` exists, so the CPU supports AVX2, the only feature `run` enables.
    unsafe { run(token, job) }
}

#[target_feature(enable = "avx2")]
fn run<J: Job>(token: Avx2, job: J) -> J::Output {
    job.run(token)
}

/// A 256-bit multiply-accumulate of pairs of `i16` lanes: per 32-bit lane,
/// `acc + a[2i] * b[2i] + a[2i + 1] * b[2i + 1]` (wrapping). Implementations are tokens of
/// levels that include AVX2, each with its own instruction (the sums are the same: with int8
/// operands no pair sum overflows).
pub(super) trait Mac256: Copy {
    /// The AVX2 token that the level implies.
    fn avx2(self) -> Avx2;
    /// `acc + madd(a, b)` per 32-bit lane.
    fn mac(self, acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

impl Mac256 for Avx2 {
    #[inline(always)]
    fn avx2(self) -> Avx2 {
        self
    }

    /// `vpmaddwd` then `vpaddd`.
    #[inline(always)]
    fn mac(self, acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (token); register operations only.
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
    }
}

/// Loads 8 `i32`s.
#[inline(always)]
pub(super) fn load8(_: Avx2, s: &[i32; 8]) -> __m256i {
    // SAFETY: AVX2 is available (token); `s` is 32 readable bytes.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Stores 8 `i32`s.
#[inline(always)]
pub(super) fn store8(_: Avx2, v: __m256i, s: &mut [i32; 8]) {
    // SAFETY: AVX2 is available (token); `s` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), v) }
}

/// Loads 8 bytes into the low half of a vector.
#[inline(always)]
fn load_i8x8(_: Avx2, s: &[i8; 8]) -> __m128i {
    // SAFETY: AVX2 is available (token); `s` is 8 readable bytes.
    unsafe { _mm_loadl_epi64(s.as_ptr().cast()) }
}

/// Loads 16 bytes.
#[inline(always)]
fn load_i8x16(_: Avx2, s: &[i8; 16]) -> __m128i {
    // SAFETY: AVX2 is available (token); `s` is 16 readable bytes.
    unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
}

/// [`Kernels::flip`] in 32-byte vectors, then 8-byte and 4-byte words, then bytes (the loop that LLVM
/// vectorized on its own ran byte by byte on short rows at the AVX-512 level).
#[inline(always)]
pub(super) fn flip(_: Avx2, dst: &mut [i8], src: &[i8]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let (d32, d_rest) = dst.as_chunks_mut::<32>();
    let (s32, s_rest) = src.as_chunks::<32>();
    // SAFETY: AVX2 is available (token); register operation only.
    let bit = unsafe { _mm256_set1_epi8(i8::MIN) };
    for (d, s) in d32.iter_mut().zip(s32) {
        // SAFETY: AVX2 is available (token); `s` is 32 readable bytes, `d` 32 writable ones.
        unsafe {
            let v = _mm256_xor_si256(_mm256_loadu_si256(s.as_ptr().cast()), bit);
            _mm256_storeu_si256(d.as_mut_ptr().cast(), v);
        }
    }
    let (d8, d_rest) = d_rest.as_chunks_mut::<8>();
    let (s8, s_rest) = s_rest.as_chunks::<8>();
    for (d, s) in d8.iter_mut().zip(s8) {
        let v = u64::from_ne_bytes(s.map(|b| b as u8)) ^ 0x8080_8080_8080_8080;
        *d = v.to_ne_bytes().map(|b| b as i8);
    }
    // At most one word of 4 (rows of 4 values are common: a 4-wide filter on one channel).
    let (d4, d_rest) = d_rest.as_chunks_mut::<4>();
    let (s4, s_rest) = s_rest.as_chunks::<4>();
    for (d, s) in d4.iter_mut().zip(s4) {
        let v = u32::from_ne_bytes(s.map(|b| b as u8)) ^ 0x8080_8080;
        *d = v.to_ne_bytes().map(|b| b as i8);
    }
    for (d, &s) in d_rest.iter_mut().zip(s_rest) {
        *d = s ^ i8::MIN;
    }
}

/// `floor((a * b + 2^30) / 2^31)` per lane, i.e. gemmlowp's
/// `SaturatingRoundingDoublingHighMul` (see the module documentation); the saturating case is
/// patched only when `saturating`.
#[inline(always)]
fn srdhm(_: Avx2, a: __m256i, b: __m256i, saturating: bool) -> __m256i {
    // SAFETY: AVX2 is available (token); register operations only.
    unsafe {
        let nudge = _mm256_set1_epi64x(1 << 30);
        let even = _mm256_add_epi64(_mm256_mul_epi32(a, b), nudge);
        let odd = _mm256_add_epi64(
            _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(b)),
            nudge,
        );
        // Bits 31..62 of each 64-bit sum: to the low half for even lanes, the high half for odd.
        let r = _mm256_blend_epi32::<0b1010_1010>(
            _mm256_srli_epi64::<31>(even),
            _mm256_slli_epi64::<1>(odd),
        );
        if !saturating {
            return r;
        }
        let min = _mm256_set1_epi32(i32::MIN);
        let saturate = _mm256_and_si256(_mm256_cmpeq_epi32(a, min), _mm256_cmpeq_epi32(b, min));
        // i32::MIN ^ -1 == i32::MAX.
        _mm256_xor_si256(r, saturate)
    }
}

/// gemmlowp `RoundingDivideByPOT` per lane, with `mask = (1 << exponent) - 1` and
/// `half = mask >> 1` given.
#[inline(always)]
fn rdbpot(_: Avx2, x: __m256i, exponent: __m256i, mask: __m256i, half: __m256i) -> __m256i {
    // SAFETY: AVX2 is available (token); register operations only.
    unsafe {
        let remainder = _mm256_and_si256(x, mask);
        // half + (x < 0): subtracting x >> 31 (0 or -1) adds the sign bit.
        let threshold = _mm256_sub_epi32(half, _mm256_srai_epi32::<31>(x));
        // A true comparison is -1: subtracting it rounds up.
        _mm256_sub_epi32(
            _mm256_srav_epi32(x, exponent),
            _mm256_cmpgt_epi32(remainder, threshold),
        )
    }
}

/// Adds the zero point, clamps, and stores the low byte of each lane to `out`.
#[inline(always)]
fn store_i8(t: Avx2, v: __m256i, clamp: Clamp, out: &mut [i8; 8]) {
    // SAFETY: AVX2 is available (token); register operations only.
    let v = unsafe {
        let v = _mm256_add_epi32(v, _mm256_set1_epi32(clamp.zero_point));
        _mm256_min_epi32(
            _mm256_max_epi32(v, _mm256_set1_epi32(clamp.min)),
            _mm256_set1_epi32(clamp.max),
        )
    };
    pack_store_i8(t, v, out);
}

/// Stores the low byte of each lane to `out`.
#[inline(always)]
fn pack_store_i8(_: Avx2, v: __m256i, out: &mut [i8; 8]) {
    // SAFETY: AVX2 is available (token); `out` is 8 writable bytes.
    unsafe {
        // Byte 0 of each lane to the low 4 bytes of each 128-bit half, then both halves together.
        let bytes = _mm256_shuffle_epi8(
            v,
            _mm256_setr_epi8(
                0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1,
                -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            ),
        );
        let packed = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
        _mm_storel_epi64(out.as_mut_ptr().cast(), _mm256_castsi256_si128(packed));
    }
}

/// Requantizes 8 accumulators (with the channel data `ch`) into `out`.
#[inline(always)]
fn requantize8(
    t: Avx2,
    acc: __m256i,
    offset: __m256i,
    ch: &Block,
    flags: (bool, bool),
    clamp: Clamp,
    out: &mut [i8; 8],
) {
    let (saturating, shifts_left) = flags;
    let bias = load8(t, &ch[BIAS]);
    // SAFETY: AVX2 is available (token); register operations only.
    let mut x = unsafe { _mm256_add_epi32(_mm256_add_epi32(acc, bias), offset) };
    if shifts_left {
        // SAFETY: as above.
        x = unsafe { _mm256_sllv_epi32(x, load8(t, &ch[LEFT])) };
    }
    let x = srdhm(t, x, load8(t, &ch[MULTIPLIER]), saturating);
    let (right, mask, half) = (
        load8(t, &ch[RIGHT]),
        load8(t, &ch[MASK]),
        load8(t, &ch[HALF]),
    );
    store_i8(t, rdbpot(t, x, right, mask, half), clamp, out);
}

/// Requantizes the first `out.len()` (at most 8) lanes of `acc` for channels `c..` of `ch`
/// (`c` a multiple of 8) into `out`.
#[inline(always)]
pub(super) fn requantize_tail(t: Avx2, acc: __m256i, ch: &Channels<'_>, c: usize, out: &mut [i8]) {
    let flags = (ch.saturating, ch.shifts_left);
    // SAFETY: AVX2 is available (token); register operation only.
    let zero = unsafe { _mm256_setzero_si256() };
    let Some(block) = ch.block(c) else {
        return;
    };
    match out.first_chunk_mut::<8>() {
        Some(o) => requantize8(t, acc, zero, block, flags, ch.clamp, o),
        None => {
            // Fewer than 8 channels (the block's other lanes are zero).
            let mut o = [0i8; 8];
            requantize8(t, acc, zero, block, flags, ch.clamp, &mut o);
            let n = out.len();
            out.copy_from_slice(&o[..n]);
        }
    }
}

/// `acc + (x0, x1) . (w0, w1)` per channel for 8 channels: `x0`, `x1` hold 8 int8 inputs in
/// their low halves, `w` the 8 interleaved weight pairs.
#[inline(always)]
fn depthwise8<M: Mac256>(m: M, acc: __m256i, x0: __m128i, x1: __m128i, w: __m128i) -> __m256i {
    // SAFETY: AVX2 is available (`M` implies it); register operations only.
    let (x, w) = unsafe {
        (
            _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1)),
            _mm256_cvtepi8_epi16(w),
        )
    };
    m.mac(acc, x, w)
}

/// Sum of the 8 lanes.
#[inline(always)]
fn hsum(_: Avx2, v: __m256i) -> i32 {
    // SAFETY: AVX2 is available (token); register operations only.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b0100_1110>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b1011_0001>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// The sums of the 8 lanes of each of four vectors.
#[inline(always)]
fn hsum4(_: Avx2, v: [__m256i; 4]) -> [i32; 4] {
    let mut out = [0i32; 4];
    // SAFETY: AVX2 is available (token); the store writes the 16 bytes of `out`.
    unsafe {
        let t0 = _mm256_hadd_epi32(v[0], v[1]);
        let t1 = _mm256_hadd_epi32(v[2], v[3]);
        let u = _mm256_hadd_epi32(t0, t1);
        let s = _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256::<1>(u));
        _mm_storeu_si128(out.as_mut_ptr().cast(), s);
    }
    out
}

impl Kernels for Avx2 {
    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        self,
        patches: [&[i16]; MR],
        rows: [&[i8]; NR],
    ) -> [[i32; NR]; MR] {
        dot_with(self, patches, rows)
    }

    type Panels = Avx2;

    fn panels(self) -> Option<Avx2> {
        Some(self)
    }

    #[inline(always)]
    fn widen(self, dst: &mut [i16], src: &[i8]) {
        let n = dst.len().min(src.len());
        let (dst, src) = (&mut dst[..n], &src[..n]);
        let (d16, d_rest) = dst.as_chunks_mut::<16>();
        let (s16, s_rest) = src.as_chunks::<16>();
        for (d, s) in d16.iter_mut().zip(s16) {
            // SAFETY: AVX2 is available (token); `d` is 32 writable bytes.
            unsafe {
                let v = _mm256_cvtepi8_epi16(load_i8x16(self, s));
                _mm256_storeu_si256(d.as_mut_ptr().cast(), v);
            }
        }
        let (d8, d_rest) = d_rest.as_chunks_mut::<8>();
        let (s8, s_rest) = s_rest.as_chunks::<8>();
        for (d, s) in d8.iter_mut().zip(s8) {
            // SAFETY: AVX2 is available (token); `d` is 16 writable bytes.
            unsafe {
                _mm_storeu_si128(d.as_mut_ptr().cast(), _mm_cvtepi8_epi16(load_i8x8(self, s)))
            };
        }
        for (d, &s) in d_rest.iter_mut().zip(s_rest) {
            *d = i16::from(s);
        }
    }

    #[inline(always)]
    fn requantize(self, acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]) {
        let n = acc.len().min(out.len()).min(ch.len());
        let (acc, out) = (&acc[..n], &mut out[..n]);
        let flags = (ch.saturating, ch.shifts_left);
        // SAFETY: AVX2 is available (token); register operation only.
        let offset = unsafe { _mm256_set1_epi32(offset) };
        let (acc8, acc_rest) = acc.as_chunks::<8>();
        let (out8, out_rest) = out.as_chunks_mut::<8>();
        for ((a, o), block) in acc8.iter().zip(out8).zip(ch.blocks) {
            requantize8(self, load8(self, a), offset, block, flags, ch.clamp, o);
        }
        if let (false, Some(block)) = (out_rest.is_empty(), ch.blocks.get(n / 8)) {
            // The last channels through a zero-padded copy (the block is padded too).
            let mut o = [0i8; 8];
            let a = load8(self, &padded(acc_rest));
            requantize8(self, a, offset, block, flags, ch.clamp, &mut o);
            let rest = out_rest.len();
            out_rest.copy_from_slice(&o[..rest]);
        }
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
        depthwise_with(self, (base, taps), step, weights, ch, out)
    }

    #[inline(always)]
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        let n = a.len().min(b.len()).min(out.len());
        // SAFETY: AVX2 is available (token); register operation only.
        let v = AddVectors::new(p, |x| unsafe { _mm256_set1_epi32(x) });
        let (a8, b8) = (a[..n].as_chunks::<8>().0, b[..n].as_chunks::<8>().0);
        for ((x, y), o) in a8.iter().zip(b8).zip(out[..n].as_chunks_mut::<8>().0) {
            add8(self, &v, x, y, o);
        }
        let full = n / 8 * 8;
        if full < n {
            let mut o = [0i8; 8];
            add8(self, &v, &padded(&a[full..n]), &padded(&b[full..n]), &mut o);
            out[full..n].copy_from_slice(&o[..n - full]);
        }
    }
}

impl PanelKernels for Avx2 {
    type Patch = i16;
    const GROUP: usize = 2;
    const HEADER: usize = 0;
    const MAX_NB: usize = 2;
    /// 8 accumulators (4 pixels times 2 panels): 5 pixels measured within noise here (an
    /// AVX-512 CPU), not on the AVX2-only CPUs this level is for.
    const MR: usize = 4;

    #[inline(always)]
    fn gemm<const MR: usize, const NB: usize>(
        self,
        patches: PatchRuns<'_, i16>,
        panels: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
        stride: usize,
    ) {
        gemm_with::<_, MR, NB>(self, patches, panels, ch, (out, stride))
    }
}

/// [`Kernels::dot`] with the multiply-accumulate `mac`.
#[inline(always)]
pub(super) fn dot_with<M: Mac256, const MR: usize, const NR: usize>(
    mac: M,
    patches: [&[i16]; MR],
    rows: [&[i8]; NR],
) -> [[i32; NR]; MR] {
    let t = mac.avx2();
    // Exactly `chunks` elements each, so the reads below stay in bounds.
    let (chunks, x, w) = crate::simd::dot_chunks(patches, rows);
    // SAFETY: AVX2 is available (token); register operation only.
    let mut acc = unsafe { [[_mm256_setzero_si256(); NR]; MR] };
    for i in 0..chunks {
        // SAFETY: AVX2 is available (token). `i < chunks`, and every slice of `x` and `w`
        // holds exactly `chunks` elements: the unchecked reads are in bounds.
        unsafe {
            let mut xv = [_mm256_setzero_si256(); MR];
            for (v, x) in xv.iter_mut().zip(&x) {
                *v = _mm256_loadu_si256(x.get_unchecked(i).as_ptr().cast());
            }
            for (n, w) in w.iter().enumerate() {
                let wv = _mm_loadu_si128(w.get_unchecked(i).as_ptr().cast());
                let wv = _mm256_cvtepi8_epi16(wv);
                for (acc, &xv) in acc.iter_mut().zip(&xv) {
                    acc[n] = mac.mac(acc[n], xv, wv);
                }
            }
        }
    }
    sums(t, acc)
}

/// The lane sums of accumulators: `out[m][n]` is the sum of the 8 lanes of `acc[m][n]`.
#[inline(always)]
fn sums<const MR: usize, const NR: usize>(t: Avx2, acc: [[__m256i; NR]; MR]) -> [[i32; NR]; MR] {
    // Through memory once, so that the accumulators above stay in registers.
    let mut lanes = [[[0i32; 8]; NR]; MR];
    for (l, a) in lanes.iter_mut().zip(&acc) {
        for (l, &a) in l.iter_mut().zip(a) {
            store8(t, a, l);
        }
    }
    let mut out = [[0i32; NR]; MR];
    for (o, l) in out.iter_mut().zip(&lanes) {
        let mut groups = l.chunks_exact(4);
        let mut sums = o.chunks_exact_mut(4);
        for (s, g) in sums.by_ref().zip(groups.by_ref()) {
            let g = [
                load8(t, &g[0]),
                load8(t, &g[1]),
                load8(t, &g[2]),
                load8(t, &g[3]),
            ];
            s.copy_from_slice(&hsum4(t, g));
        }
        for (o, l) in sums.into_remainder().iter_mut().zip(groups.remainder()) {
            *o = hsum(t, load8(t, l));
        }
    }
    out
}

/// [`Kernels::depthwise`] with the multiply-accumulate `mac`.
#[inline(always)]
pub(super) fn depthwise_with<M: Mac256>(
    mac: M,
    (base, taps): (&[i8], &[usize]),
    step: usize,
    weights: &[i8],
    ch: Channels<'_>,
    out: &mut [i8],
) {
    let k = mac.avx2();
    let Some((c, n)) = depthwise_shape((base, taps), step, weights, &ch, out) else {
        return;
    };
    let full = c / 8 * 8;
    let flags = (ch.saturating, ch.shifts_left);
    // SAFETY: AVX2 is available (token); register operation only.
    let zero = unsafe { _mm256_setzero_si256() };
    for (j, out) in out.chunks_exact_mut(c).take(n).enumerate() {
        let (out8, out_rest) = out.as_chunks_mut::<8>();
        for (cb, o) in out8.iter_mut().enumerate() {
            let c0 = 8 * cb;
            let mut acc = zero;
            for (t, p) in taps.chunks_exact(2).zip(0..) {
                // SAFETY: AVX2 is available (token). `depthwise_shape` checked that every
                // run `taps[t]..taps[t] + (n - 1) * step + c` lies in `base`; with `j < n`
                // and `c0 + 8 <= c` the 8 bytes read at `taps[t] + j * step + c0` are
                // inside it. It also checked `weights.len() >= taps.len() * c`: the 16
                // bytes at `2 * (p * c + c0)` end at most at `2 * (p + 1) * c`.
                unsafe {
                    let at = j * step + c0;
                    let x0 = _mm_loadl_epi64(base.as_ptr().add(t[0] + at).cast());
                    let x1 = _mm_loadl_epi64(base.as_ptr().add(t[1] + at).cast());
                    let w = _mm_loadu_si128(weights.as_ptr().add(2 * (p * c + c0)).cast());
                    acc = depthwise8(mac, acc, x0, x1, w);
                }
            }
            if let Some(block) = ch.block(c0) {
                requantize8(k, acc, zero, block, flags, ch.clamp, o);
            }
        }
        if !out_rest.is_empty() {
            // The last channels through zero-padded copies.
            let mut acc = zero;
            for (t, w) in taps.chunks_exact(2).zip(weights.chunks_exact(2 * c)) {
                let run = |t: usize| &base[t + j * step + full..t + j * step + c];
                acc = depthwise8(
                    mac,
                    acc,
                    load_i8x8(k, &padded(run(t[0]))),
                    load_i8x8(k, &padded(run(t[1]))),
                    load_i8x16(k, &padded(&w[2 * full..])),
                );
            }
            requantize_tail(k, acc, &ch, full, out_rest);
        }
    }
}

/// [`PanelKernels::gemm`] on pairs with the multiply-accumulate `mac`.
#[inline(always)]
pub(super) fn gemm_with<M: Mac256, const MR: usize, const NB: usize>(
    mac: M,
    patches: PatchRuns<'_, i16>,
    panels: &[i8],
    ch: Channels<'_>,
    (out, stride): (&mut [i8], usize),
) {
    let t = mac.avx2();
    let Some(n) = gemm_shape::<Avx2, _>((MR, NB), &patches, panels.len(), &ch, (&*out, stride))
    else {
        return;
    };
    let (len, pairs) = (patches.len(), patches.run / 2);
    let mut all: [&[[i8; 16]]; NB] = [&[]; NB];
    for (nb, w) in all.iter_mut().enumerate() {
        *w = &panels[nb * 8 * len..(nb + 1) * 8 * len].as_chunks::<16>().0[..len / 2];
    }
    // SAFETY: AVX2 is available (token); register operation only.
    let mut acc = unsafe { [[_mm256_setzero_si256(); NB]; MR] };
    for r in 0..patches.runs {
        let Some((x, w)) = patches.units::<2, MR, _, NB>(r, pairs, &all) else {
            // Never: `gemm_shape` checked every run.
            return;
        };
        for j in 0..pairs {
            // SAFETY: AVX2 is available (token). `j < pairs`, and every slice of `x` and `w`
            // holds exactly `pairs` elements: the unchecked reads are in bounds (checked
            // indexing here costs 15 % of the instructions of a typical layer).
            unsafe {
                let mut wv = [_mm256_setzero_si256(); NB];
                for (v, w) in wv.iter_mut().zip(&w) {
                    let p = w.get_unchecked(j);
                    *v = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.as_ptr().cast()));
                }
                for (a, x) in acc.iter_mut().zip(&x) {
                    // The pair as one 32-bit lane (4 readable bytes), broadcast.
                    let pair = x.get_unchecked(j).as_ptr().cast::<i32>().read_unaligned();
                    let b = _mm256_set1_epi32(pair);
                    for (a, &w) in a.iter_mut().zip(&wv) {
                        *a = mac.mac(*a, b, w);
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

/// ADD's parameters as vectors of some width `V`, built once per call: the inputs' zero
/// points and left shift, the three multipliers (input 1, input 2, output) with their right
/// shifts as `rdbpot` takes them, and the output's zero point and clamp.
#[derive(Clone, Copy)]
pub(super) struct AddVectors<V> {
    /// Input 1 and input 2 zero points.
    pub(super) zero_points: [V; 2],
    /// The left shift of both inputs (`0..=31`).
    pub(super) left_shift: V,
    /// Input 1, input 2 and output multipliers.
    pub(super) multipliers: [V; 3],
    /// Whether each multiplier is `i32::MIN` (its doubling high multiply may saturate).
    pub(super) saturating: [bool; 3],
    /// Each multiplier's right shift: exponent, mask and half (see `rdbpot`).
    pub(super) shifts: [[V; 3]; 3],
    /// Output zero point, lower and upper clamp.
    pub(super) clamp: [V; 3],
    /// Whether the clamp is the whole `i8` range.
    pub(super) full_range: bool,
}

impl<V: Copy> AddVectors<V> {
    /// The vectors of `p`, each value broadcast with `splat`.
    #[inline(always)]
    pub(super) fn new(p: &AddParams, splat: impl Fn(i32) -> V) -> Self {
        let m = [p.input1, p.input2, p.output];
        let shift = |i: usize| {
            // The multipliers' shifts are <= 0: right shifts, clamped as in the reference.
            let e = m[i].shift.wrapping_neg().clamp(0, 31);
            let mask = 1i32.wrapping_shl(e as u32).wrapping_sub(1);
            [splat(e), splat(mask), splat(mask >> 1)]
        };
        AddVectors {
            zero_points: [splat(p.input1_zero_point), splat(p.input2_zero_point)],
            left_shift: splat(p.left_shift & 31),
            multipliers: m.map(|m| splat(m.multiplier)),
            saturating: m.map(|m| m.multiplier == i32::MIN),
            shifts: [shift(0), shift(1), shift(2)],
            clamp: [p.output_zero_point, p.act_min, p.act_max].map(splat),
            full_range: p.act_min == i32::from(i8::MIN) && p.act_max == i32::from(i8::MAX),
        }
    }
}

/// TFLM `AddFunc` on 8 pairs of values.
#[inline(always)]
fn add8(t: Avx2, v: &AddVectors<__m256i>, a: &[i8; 8], b: &[i8; 8], out: &mut [i8; 8]) {
    let (sa, sb) = (add_input(t, v, a, 0), add_input(t, v, b, 1));
    // SAFETY: AVX2 is available (token); register operation only.
    let sum = unsafe { _mm256_add_epi32(sa, sb) };
    let [e, mask, half] = v.shifts[2];
    let sum = rdbpot(
        t,
        srdhm(t, sum, v.multipliers[2], v.saturating[2]),
        e,
        mask,
        half,
    );
    let [zp, min, max] = v.clamp;
    // SAFETY: AVX2 is available (token); register operations only.
    let r = unsafe { _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(sum, zp), min), max) };
    pack_store_i8(t, r, out);
}

/// Input `i` (0 or 1) of ADD rescaled: `x` less its zero point, shifted left, times its
/// multiplier.
#[inline(always)]
fn add_input(t: Avx2, v: &AddVectors<__m256i>, x: &[i8; 8], i: usize) -> __m256i {
    let x = load_i8x8(t, x);
    // SAFETY: AVX2 is available (token); register operations only.
    let x = unsafe {
        _mm256_sllv_epi32(
            _mm256_sub_epi32(_mm256_cvtepi8_epi32(x), v.zero_points[i]),
            v.left_shift,
        )
    };
    let [e, mask, half] = v.shifts[i];
    rdbpot(
        t,
        srdhm(t, x, v.multipliers[i], v.saturating[i]),
        e,
        mask,
        half,
    )
}
