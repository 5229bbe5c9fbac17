//! The subset of gemmlowp's `fixedpoint.h` (int32 scalar) that TFLM's reference kernels use,
//! plus TFLM's `GetReciprocal` and leading-bit counters from `common.h`.
//!
//! Values are raw `i32`s; the number of integer bits of each value is stated in the docs.
//! Plain additions/subtractions wrap (they are undefined on overflow in the C++ code, and the
//! algorithms never overflow for valid inputs).

/// gemmlowp `SaturatingRoundingDoublingHighMul` (ARM `VQRDMULH`): `round(a * b / 2^31)`,
/// saturating the single overflow case `MIN * MIN`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: arithmetic right shift rounding to nearest, ties away from
/// zero. `exponent` must be in `0..=31` (clamped otherwise).
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(0, 31) as u32;
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT<exponent>` for int32: saturating left shift for a
/// positive exponent, rounding right shift for a negative one.
#[inline]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let e = exponent.min(31) as u32;
        let threshold = ((1i64 << (31 - e)) - 1) as i32;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x.wrapping_shl(e)
        }
    } else if exponent < 0 {
        rounding_divide_by_pot(x, -exponent)
    } else {
        x
    }
}

/// gemmlowp `RoundingHalfSum` for int32: `(a + b) / 2` rounded away from zero.
#[inline]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// gemmlowp `Rescale<dst_bits>` of a value with `src_bits` integer bits.
#[inline]
pub fn rescale(x: i32, src_bits: i32, dst_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_bits - dst_bits)
}

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl` (Q0.31 in and out).
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(-1/8)
    const CONSTANT_1_OVER_3: i32 = 715_827_883;
    let srdhm = saturating_rounding_doubling_high_mul;
    let x = a.wrapping_add(1 << 28); // a + 1/8
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let poly = rounding_divide_by_pot(
        srdhm(x4_over_4.wrapping_add(x3), CONSTANT_1_OVER_3).wrapping_add(x2),
        1,
    );
    CONSTANT_TERM.wrapping_add(srdhm(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// gemmlowp `exp_on_negative_values`: input has `integer_bits` integer bits (`0..=30`), output
/// is Q0.31. Valid for `a <= 0`.
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    let fractional_bits = 31 - integer_bits;
    let one_quarter = 1i32 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);

    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if integer_bits > exponent {
            let shift = fractional_bits + exponent;
            if remainder & (1i32 << shift) != 0 {
                result = saturating_rounding_doubling_high_mul(result, multiplier);
            }
        }
    }
    if integer_bits > 5 {
        let clamp_b = 36 - integer_bits;
        let clamp = -(1i32 << clamp_b);
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i32::MAX; // ResultF::One()
    }
    result
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1` (Q0.31 in and out).
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let srdhm = saturating_rounding_doubling_high_mul;
    let half_denominator = rounding_half_sum(a, i32::MAX);
    const C48_OVER_17: i32 = 1_515_870_810; // Q2.29
    const CNEG32_OVER_17: i32 = -1_010_580_540; // Q2.29
    const F2_ONE: i32 = 1 << 29;
    let mut x = C48_OVER_17.wrapping_add(srdhm(half_denominator, CNEG32_OVER_17));
    for _ in 0..3 {
        let half_denominator_times_x = srdhm(half_denominator, x);
        let one_minus = F2_ONE.wrapping_sub(half_denominator_times_x);
        x = x.wrapping_add(rescale(srdhm(x, one_minus), 4, 2));
    }
    // ExactMulByPot<-1> (Q2 -> Q1 reinterpretation), then Rescale<0>
    rescale(x, 1, 0)
}

/// Number of leading zero bits of `x` as `u32` (32 for 0), TFLM `CountLeadingZeros`.
#[inline]
pub fn count_leading_zeros(x: u32) -> i32 {
    x.leading_zeros() as i32
}

/// TFLM `CountLeadingSignBits` for int32 (number of redundant sign bits).
#[inline]
pub fn count_leading_sign_bits(x: i32) -> i32 {
    if x >= 0 {
        count_leading_zeros(x as u32) - 1
    } else if x != i32::MIN {
        count_leading_zeros(2u32.wrapping_mul(x.unsigned_abs()).wrapping_sub(1))
    } else {
        0
    }
}

/// TFLM `GetReciprocal(x, x_integer_digits, &num_bits_over_unit)`: returns the Q0.31 value
/// `1 / (x scaled to [1, 2))` and the number of bits above the unit. `x` must be positive.
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = count_leading_zeros(x as u32);
    let num_bits_over_unit = x_integer_digits - headroom_plus_one;
    let shifted = (x as u32)
        .checked_shl(headroom_plus_one as u32)
        .unwrap_or(0);
    let shifted_sum_minus_one = shifted.wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_f(x: i32, int_bits: i32) -> f64 {
        f64::from(x) / f64::from(1u32 << (31 - int_bits) as u32).max(1.0)
    }

    #[test]
    fn srdhm_and_rdbpot() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0); // -0.5 rounds toward... (-2^30 + 1 - 2^30)/2^31 = 0
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1); // -1.5 -> -2^31..: (-3*2^30 - 2^30 + 1)/2^31 = -1
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 28, 3), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 28), 3), i32::MIN);
        assert_eq!(saturating_rounding_multiply_by_pot(3, 2), 12);
        assert_eq!(rounding_half_sum(1, 2), 2);
        assert_eq!(rounding_half_sum(-1, -2), -2);
    }

    #[test]
    fn exp_accuracy() {
        // Q5.26 input
        for k in 0..200 {
            let real = -(k as f64) * 0.05;
            let raw = (real * f64::from(1 << 26)) as i32;
            let got = to_f(exp_on_negative_values(raw, 5), 0);
            let want = libm_exp(real);
            assert!(
                (got - want).abs() < 2e-6,
                "exp({real}) = {got}, want {want}"
            );
        }
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
    }

    fn libm_exp(x: f64) -> f64 {
        // series for small test purposes (x in [-10, 0]): exp(x) = 1/exp(-x)
        let y = -x;
        let mut term = 1.0;
        let mut sum = 1.0;
        for n in 1..80 {
            term *= y / f64::from(n);
            sum += term;
        }
        1.0 / sum
    }

    #[test]
    fn reciprocal_accuracy() {
        for k in 0..100 {
            let x = k as f64 / 100.0;
            let raw = (x * 2_147_483_648.0) as i32;
            let got = to_f(one_over_one_plus_x_for_x_in_0_1(raw), 0);
            assert!((got - 1.0 / (1.0 + x)).abs() < 1e-8, "1/(1+{x}) = {got}");
        }
        // 1.25 in Q12.19 -> 0.8 with 0 bits over unit
        let (r, bits) = get_reciprocal(5 << 17, 12);
        assert_eq!(bits, 0);
        assert!((to_f(r, 0) - 0.8).abs() < 1e-8);
    }

    #[test]
    fn leading_bits() {
        assert_eq!(count_leading_zeros(0), 32);
        assert_eq!(count_leading_sign_bits(0), 31);
        assert_eq!(count_leading_sign_bits(1), 30);
        assert_eq!(count_leading_sign_bits(-1), 31);
        assert_eq!(count_leading_sign_bits(-2), 30);
        assert_eq!(count_leading_sign_bits(i32::MIN), 0);
        assert_eq!(count_leading_sign_bits(i32::MAX), 0);
    }
}
