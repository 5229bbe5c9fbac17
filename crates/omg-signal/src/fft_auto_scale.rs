//! `SignalFftAutoScale`: shift a frame left to use the full int16 range.

use crate::{SignalError, expect_len, msb::msb32};

/// Largest magnitude in `input`, as TFLM's `MaxAbs16` computes it.
///
/// The negation of -32768 wraps back to -32768 in 16 bits, so a frame whose
/// running maximum is that value behaves as TFLM does (any later positive
/// sample replaces it; if it stays, the scale computed from it is 0).
#[must_use]
pub fn max_abs16(input: &[i16]) -> i16 {
    // Without -32768 the running maximum never goes negative: it is the largest magnitude,
    // found here in a loop that vectorizes.
    if !input.contains(&i16::MIN) {
        return input.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0) as i16;
    }
    running_max(input)
}

/// TFLM's `MaxAbs16` loop as written: the running maximum, replaced by a sample above it or
/// by the negation of a sample whose negation is above it.
fn running_max(input: &[i16]) -> i16 {
    let mut max: i16 = 0;
    for &v in input {
        if v > max {
            max = v;
        } else if -i32::from(v) > i32::from(max) {
            max = v.wrapping_neg();
        }
    }
    max
}

/// Scales `input` into `output` by the largest left shift that keeps its
/// peak within int16, and returns that shift (TFLM `FftAutoScale`).
///
/// `input` and `output` must have the same length. The shift is 0 for an
/// all-zero frame; it is at most 14. Products are truncated to 16 bits like
/// TFLM's store (relevant only for the -32768 corner of [`max_abs16`]).
pub fn fft_auto_scale(input: &[i16], output: &mut [i16]) -> Result<i32, SignalError> {
    expect_len("fft_auto_scale output", input.len(), output.len())?;
    let max = max_abs16(input);
    // The int16 maximum is converted to uint32 (sign-extended) for the msb.
    let msb = msb32(i32::from(max) as u32) as i32;
    let scale_bits = (16 - msb - 1).max(0);
    for (&x, y) in input.iter().zip(output.iter_mut()) {
        *y = (i32::from(x) << scale_bits) as i16;
    }
    Ok(scale_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_to_full_range() {
        let mut out = [0i16; 4];
        assert_eq!(fft_auto_scale(&[1, -3, 0, 2], &mut out).unwrap(), 13);
        assert_eq!(out, [8192, -24576, 0, 16384]);
        assert_eq!(fft_auto_scale(&[0, 0, 0, 0], &mut out).unwrap(), 0);
        assert_eq!(fft_auto_scale(&[16384, 0, 0, 0], &mut out).unwrap(), 0);
        assert_eq!(fft_auto_scale(&[-16384, 0, 0, 0], &mut out).unwrap(), 0);
        assert_eq!(fft_auto_scale(&[16383, 0, -1, 0], &mut out).unwrap(), 1);
        assert_eq!(out, [32766, 0, -2, 0]);
    }

    #[test]
    fn max_abs_equals_the_running_maximum() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for case in 0..2000 {
            let len = case % 97;
            let frame: alloc::vec::Vec<i16> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Every fifth case has samples at the extremes.
                    match (case % 5, x % 7) {
                        (0, 0) => i16::MIN,
                        (0, 1) => i16::MAX,
                        _ => (x >> 16) as i16 >> (x % 16),
                    }
                })
                .collect();
            assert_eq!(max_abs16(&frame), running_max(&frame), "{frame:?}");
        }
    }

    #[test]
    fn min_value_corner() {
        // -32768 last: max wraps to -32768, msb of 0xFFFF8000 is 32, scale 0.
        let mut out = [0i16; 3];
        assert_eq!(max_abs16(&[0, 1, -32768]), -32768);
        assert_eq!(fft_auto_scale(&[0, 1, -32768], &mut out).unwrap(), 0);
        assert_eq!(out, [0, 1, -32768]);
        // Any later sample above -32768 (even 0) replaces it.
        assert_eq!(max_abs16(&[-32768, 0]), 0);
        // A later small positive sample replaces it: shift 13, -32768 wraps to 0.
        assert_eq!(max_abs16(&[-32768, 3, 0]), 3);
        assert_eq!(fft_auto_scale(&[-32768, 3, 0], &mut out).unwrap(), 13);
        assert_eq!(out, [0, 24576, 0]);
    }
}
