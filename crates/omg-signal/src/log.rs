//! Fixed-point natural logarithm (TFLM `Log32`).

use crate::msb::msb32;

/// Correction added to the linear fractional part of log2, in 1/65536,
/// sampled at 128 segments (plus padding) over [1, 2).
const LOG2_CORRECTION: [u16; 130] = [
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797, 2944,
    3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549, 4633, 4714,
    4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444, 5477, 5507, 5533,
    5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626, 5615, 5602, 5586, 5568,
    5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203, 5156, 5106, 5054, 5000, 4944,
    4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264, 4184, 4103, 4020, 3935, 3848, 3759,
    3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875, 2768, 2659, 2549, 2437, 2323, 2207, 2090,
    1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094, 963, 830, 695, 559, 421, 282, 142, 0, 0,
];

/// Fractional bits of the internal log2 value.
const FRAC_BITS: u32 = 16;
/// log2(segments) of the correction table.
const SEGMENT_BITS: u32 = 7;
/// ln(2) in Q16, rounded.
const LN2_Q16: u64 = 45426;

/// Fractional part of log2(x), in Q16, for `x` whose integer log2 is `int_log2`.
fn log2_fraction(x: u32, int_log2: u32) -> u32 {
    // x lies in [2^int_log2, 2^(int_log2 + 1)), so this is below 2^31.
    let linear = x - (1u32 << int_log2);
    let frac = if int_log2 < FRAC_BITS {
        linear << (FRAC_BITS - int_log2)
    } else {
        linear >> (int_log2 - FRAC_BITS)
    };
    // frac < 2^16, so seg < 128 and seg + 1 indexes the padded table.
    let seg = (frac >> (FRAC_BITS - SEGMENT_BITS)) as usize;
    let c0 = i32::from(LOG2_CORRECTION[seg]);
    let c1 = i32::from(LOG2_CORRECTION[seg + 1]);
    let seg_start = (seg as i32) << (FRAC_BITS - SEGMENT_BITS);
    let within = frac as i32 - seg_start;
    let interp = ((c1 - c0) * within) >> FRAC_BITS;
    (frac as i32 + c0 + interp) as u32
}

/// Natural logarithm of `x`, scaled by `out_scale`: `round(ln(x) * out_scale)` in
/// TFLM's fixed-point approximation (`Log32`).
///
/// The final multiplication by `out_scale` wraps modulo 2^32 as in TFLM.
/// TFLM never calls it with `x == 0` (its result is unspecified there); this
/// function returns 0 for it.
#[must_use]
pub fn log32(x: u32, out_scale: u32) -> u32 {
    if x == 0 {
        return 0;
    }
    let int_log2 = msb32(x) - 1;
    let log2 = (int_log2 << FRAC_BITS) + log2_fraction(x, int_log2);
    let round = 1u32 << (FRAC_BITS - 1);
    let ln = ((LN2_Q16 * u64::from(log2) + u64::from(round)) >> FRAC_BITS) as u32;
    out_scale.wrapping_mul(ln).wrapping_add(round) >> FRAC_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log32_close_to_ln() {
        for &x in &[
            2u32,
            3,
            10,
            1000,
            65535,
            65536,
            1 << 20,
            123_456_789,
            u32::MAX,
        ] {
            let got = log32(x, 1 << 10) as f64 / 1024.0;
            let want = (x as f64).ln();
            assert!((got - want).abs() < 0.01, "x = {x}: {got} vs {want}");
        }
    }

    #[test]
    fn log32_zero_and_one() {
        assert_eq!(log32(0, 64), 0);
        assert_eq!(log32(1, 64), 0);
    }
}
