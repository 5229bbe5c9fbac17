//! TFLM's fixed-point requantization and ADD on 16 lanes (AVX-512 F and BW), for the
//! `avx512vnni` level: the AVX2 level's arithmetic (see its module) with 512-bit registers and
//! mask registers in place of blends and comparison vectors.

use core::arch::x86_64::*;

use super::avx2::AddVectors;
use super::avx512vnni::Avx512Vnni;
use crate::elementwise::AddParams;
use crate::simd::{
    BIAS, Block, Clamp, LEFT, MULTIPLIER, ODD_MULTIPLIER, ROUND, SHIFT, THRESHOLD, padded,
};

/// `floor((a * b + 2^30) / 2^31)` per lane (gemmlowp's `SaturatingRoundingDoublingHighMul`);
/// the saturating case `a == b == i32::MIN` is patched only when `saturating`.
#[inline(always)]
fn srdhm(_: Avx512Vnni, a: __m512i, b: __m512i, saturating: bool) -> __m512i {
    // SAFETY: AVX-512 F is available (token); register operations only.
    unsafe {
        let nudge = _mm512_set1_epi64(1 << 30);
        let even = _mm512_add_epi64(_mm512_mul_epi32(a, b), nudge);
        let odd = _mm512_add_epi64(
            _mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(b)),
            nudge,
        );
        // Bits 31..62 of each 64-bit sum: to the low half for even lanes, the high half for odd.
        let r = _mm512_mask_blend_epi32(
            0xaaaa,
            _mm512_srli_epi64::<31>(even),
            _mm512_slli_epi64::<1>(odd),
        );
        if !saturating {
            return r;
        }
        let min = _mm512_set1_epi32(i32::MIN);
        let both = _mm512_cmpeq_epi32_mask(a, min) & _mm512_cmpeq_epi32_mask(b, min);
        _mm512_mask_mov_epi32(r, both, _mm512_set1_epi32(i32::MAX))
    }
}

/// gemmlowp `RoundingDivideByPOT` per lane: `[exponent, mask, half]` with
/// `mask = (1 << exponent) - 1` and `half = mask >> 1`.
#[inline(always)]
fn rdbpot(_: Avx512Vnni, x: __m512i, [exponent, mask, half]: [__m512i; 3]) -> __m512i {
    // SAFETY: AVX-512 F is available (token); register operations only.
    unsafe {
        let remainder = _mm512_and_si512(x, mask);
        // half + (x < 0): subtracting x >> 31 (0 or -1) adds the sign bit.
        let threshold = _mm512_sub_epi32(half, _mm512_srai_epi32::<31>(x));
        let up = _mm512_cmpgt_epi32_mask(remainder, threshold);
        let shifted = _mm512_srav_epi32(x, exponent);
        _mm512_mask_add_epi32(shifted, up, shifted, _mm512_set1_epi32(1))
    }
}

/// Adds the zero point, clamps (`[zero_point, min, max]`) and narrows each lane to a byte;
/// `full`: the clamp is the whole `i8` range, which the saturating narrow alone applies.
#[inline(always)]
fn clamp_narrow(
    _: Avx512Vnni,
    v: __m512i,
    [zero_point, min, max]: [__m512i; 3],
    full: bool,
) -> __m128i {
    // SAFETY: AVX-512 F is available (token); register operations only.
    unsafe {
        let v = _mm512_add_epi32(v, zero_point);
        if full {
            _mm512_cvtsepi32_epi8(v)
        } else {
            _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(v, min), max))
        }
    }
}

/// The output zero point, lower and upper clamp as vectors, and whether the clamp is the whole
/// `i8` range (see [`clamp_narrow`]): what [`requantize16`] ends with, made once per call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Narrow {
    v: [__m512i; 3],
    full: bool,
}

impl Narrow {
    /// The vectors of `clamp`.
    #[inline(always)]
    pub(super) fn new(_: Avx512Vnni, clamp: Clamp) -> Self {
        // SAFETY: AVX-512 F is available (token); register operations only.
        let v = unsafe {
            [
                _mm512_set1_epi32(clamp.zero_point),
                _mm512_set1_epi32(clamp.min),
                _mm512_set1_epi32(clamp.max),
            ]
        };
        Narrow {
            v,
            full: clamp.min == i32::from(i8::MIN) && clamp.max == i32::from(i8::MAX),
        }
    }
}

/// The [`Block`] fields [`requantize16`] reads, in the order it takes them.
const USED: [usize; 10] = [
    BIAS,
    MULTIPLIER,
    ODD_MULTIPLIER,
    LEFT,
    ROUND[0],
    ROUND[1],
    SHIFT[0],
    SHIFT[1],
    THRESHOLD[0],
    THRESHOLD[1],
];

/// The requantization of 16 accumulators with the channel data `f` (the [`USED`] fields, 16
/// lanes each; `flags`: whether a multiplier may saturate, whether some channel shifts left),
/// narrowed by `narrow`, as 16 bytes: TFLM's two roundings as one rounding of each 64-bit product (see
/// [`one_step`](crate::simd::one_step)), the even lanes' products and the odd lanes' apart.
#[inline(always)]
pub(super) fn requantize16(
    t: Avx512Vnni,
    acc: __m512i,
    f: &[__m512i; 10],
    (saturating, shifts_left): (bool, bool),
    narrow: &Narrow,
) -> __m128i {
    // SAFETY: AVX-512 F is available (token); register operations only.
    let v = unsafe {
        let x = _mm512_add_epi32(acc, f[0]);
        let x = if shifts_left {
            _mm512_sllv_epi32(x, f[3])
        } else {
            x
        };
        let two_31 = _mm512_set1_epi64(1 << 31);
        let products = [
            _mm512_mul_epi32(x, f[1]),
            _mm512_mul_epi32(_mm512_srli_epi64::<32>(x), f[2]),
        ];
        let mut r = [_mm512_setzero_si512(); 2];
        for (p, (r, mut product)) in r.iter_mut().zip(products).enumerate() {
            if saturating {
                // `x == M == i32::MIN`, the only product of 2^62: the doubling high multiply
                // saturates to `i32::MAX`, which the product `2^62 - 2^31` gives.
                let max = _mm512_cmpeq_epi64_mask(product, _mm512_set1_epi64(1 << 62));
                product = _mm512_mask_sub_epi64(product, max, product, two_31);
            }
            let negative = _mm512_cmplt_epi64_mask(product, f[8 + p]);
            let sum = _mm512_add_epi64(product, f[4 + p]);
            let sum = _mm512_mask_sub_epi64(sum, negative, sum, two_31);
            *r = _mm512_srav_epi64(sum, f[6 + p]);
        }
        // The odd lanes' results (each in its 64-bit lane's low half) to the odd lanes.
        _mm512_mask_shuffle_epi32::<_MM_PERM_CCAA>(r[0], 0xaaaa, r[1])
    };
    clamp_narrow(t, v, narrow.v, narrow.full)
}

/// The channel data of 16 channels, those of `lo` then those of `hi`, as
/// [`requantize16`] takes it (for one pixel's accumulators of the 16 channels).
#[inline(always)]
pub(super) fn fields_16(t: Avx512Vnni, [lo, hi]: [&Block; 2]) -> [__m512i; 10] {
    // A loop, not `map`: a closure would not inherit the target features.
    let mut fields = [halves(t, &lo[BIAS], &hi[BIAS]); 10];
    for (v, f) in fields.iter_mut().zip(USED) {
        *v = halves(t, &lo[f], &hi[f]);
    }
    fields
}

/// `lo` and `hi` as the two halves of a 512-bit vector.
#[inline(always)]
fn halves(_: Avx512Vnni, lo: &[i32; 8], hi: &[i32; 8]) -> __m512i {
    // SAFETY: AVX2 and AVX-512 F are available (token); `lo` and `hi` are 32 readable bytes.
    unsafe {
        let lo = _mm256_loadu_si256(lo.as_ptr().cast());
        let hi = _mm256_loadu_si256(hi.as_ptr().cast());
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
    }
}

/// Same-shape quantized ADD (TFLM `AddFunc`) on 16 pairs at a time.
#[inline(always)]
pub(super) fn add_i8(t: Avx512Vnni, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    let n = a.len().min(b.len()).min(out.len());
    // SAFETY: AVX-512 F is available (token); register operation only.
    let v = AddVectors::new(p, |x| unsafe { _mm512_set1_epi32(x) });
    let (a16, b16) = (a[..n].as_chunks::<16>().0, b[..n].as_chunks::<16>().0);
    for ((x, y), o) in a16.iter().zip(b16).zip(out[..n].as_chunks_mut::<16>().0) {
        add16(t, &v, x, y, o);
    }
    let full = n / 16 * 16;
    if full < n {
        let mut o = [0i8; 16];
        add16(t, &v, &padded(&a[full..n]), &padded(&b[full..n]), &mut o);
        out[full..n].copy_from_slice(&o[..n - full]);
    }
}

/// TFLM `AddFunc` on 16 pairs of values.
#[inline(always)]
fn add16(t: Avx512Vnni, v: &AddVectors<__m512i>, a: &[i8; 16], b: &[i8; 16], out: &mut [i8; 16]) {
    let (sa, sb) = (add_input(t, v, a, 0), add_input(t, v, b, 1));
    // SAFETY: AVX-512 F is available (token); register operation only.
    let sum = unsafe { _mm512_add_epi32(sa, sb) };
    let sum = rdbpot(
        t,
        srdhm(t, sum, v.multipliers[2], v.saturating[2]),
        v.shifts[2],
    );
    let bytes = clamp_narrow(t, sum, v.clamp, v.full_range);
    // SAFETY: SSE2 is available (x86-64); `out` is 16 writable bytes.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) };
}

/// Input `i` (0 or 1) of ADD rescaled: `x` less its zero point, shifted left, times its
/// multiplier.
#[inline(always)]
fn add_input(t: Avx512Vnni, v: &AddVectors<__m512i>, x: &[i8; 16], i: usize) -> __m512i {
    // SAFETY: AVX-512 F is available (token); `x` is 16 readable bytes.
    let x = unsafe {
        let x = _mm512_cvtepi8_epi32(_mm_loadu_si128(x.as_ptr().cast()));
        _mm512_sllv_epi32(_mm512_sub_epi32(x, v.zero_points[i]), v.left_shift)
    };
    rdbpot(
        t,
        srdhm(t, x, v.multipliers[i], v.saturating[i]),
        v.shifts[i],
    )
}
