//! SOFTMAX with int8 input and int8 or int16 output (TFLM `reference_ops::Softmax<int8_t, T>`)
//! and its prepare (`CalculateSoftmaxParams`: `PreprocessSoftmaxScaling` with 5 integer bits,
//! `CalculateInputRadius`).

use crate::fixedpoint::{
    exp_on_negative_values, get_reciprocal, rescale, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
};
use crate::quant::{
    multiply_by_quantized_multiplier_greater_than_one, quantize_multiplier_greater_than_one,
};
use crate::{KernelError, Result};

/// Integer bits of the scaled input difference (Q5.26), TFLM `kScaledDiffIntegerBits`.
pub const SCALED_DIFF_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;

/// Output type of an int8-input SOFTMAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftmaxOutput {
    /// int8 output; TFLM requires zero point -128 and scale exactly 1/256.
    Int8,
    /// int16 output; TFLM requires zero point -32768 and scale 1/65536 (within 0.1%).
    Int16,
}

/// Prepared int8 SOFTMAX parameters (TFLM `SoftmaxParams` subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftmaxParams {
    /// Q0.31 significand of `beta * input_scale * 2^26`.
    pub input_multiplier: i32,
    /// Left shift applied with it.
    pub input_left_shift: i32,
    /// Differences below this (in input quanta) contribute exactly 0.
    pub diff_min: i32,
    /// Output element type.
    pub output: SoftmaxOutput,
}

/// TFLM `CalculateInputRadius(input_integer_bits, input_left_shift, 31)`.
pub fn calculate_input_radius(input_integer_bits: i32, input_left_shift: i32) -> i32 {
    let total_signed_bits = 31;
    let max_input_rescaled = f64::from((1i32 << input_integer_bits) - 1)
        * (1i64 << (total_signed_bits - input_integer_bits)) as f64
        / (1i64 << input_left_shift.clamp(0, 62)) as f64;
    // floor of a non-negative value
    max_input_rescaled as i32
}

impl SoftmaxParams {
    /// TFLM prepare for int8 input: validates the output quantization and computes the
    /// multiplier with `PreprocessSoftmaxScaling(beta, input_scale, 5)` (all in double) and
    /// `diff_min = -CalculateInputRadius(5, left_shift)`.
    pub fn prepare(
        beta: f32,
        input_scale: f32,
        output: SoftmaxOutput,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Result<Self> {
        match output {
            SoftmaxOutput::Int8 => {
                if output_zero_point != -128 || output_scale != 1.0 / 256.0 {
                    return Err(KernelError::Unsupported(
                        "int8 softmax output must have zero point -128 and scale 1/256",
                    ));
                }
            }
            SoftmaxOutput::Int16 => {
                let want = 1.0f32 / 65536.0;
                if output_zero_point != -32768 || !((output_scale - want).abs() <= 0.001 * want) {
                    return Err(KernelError::Unsupported(
                        "int16 softmax output must have zero point -32768 and scale 1/65536",
                    ));
                }
            }
        }
        let max_real_multiplier = ((1i64 << 31) - 1) as f64;
        let real = (f64::from(beta)
            * f64::from(input_scale)
            * (1i64 << (31 - SCALED_DIFF_INTEGER_BITS)) as f64)
            .min(max_real_multiplier);
        let qm = quantize_multiplier_greater_than_one(real)?;
        let diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, qm.shift);
        Ok(SoftmaxParams {
            input_multiplier: qm.multiplier,
            input_left_shift: qm.shift,
            diff_min,
            output,
        })
    }
}

/// An output element type of [`softmax_i8`].
pub trait SoftmaxOut: Copy {
    /// Bits of the type (8 or 16).
    const BITS: i32;
    /// Minimum value.
    const MIN: i32;
    /// Maximum value.
    const MAX: i32;
    /// Conversion from an already clamped value.
    fn from_i32(v: i32) -> Self;
}

impl SoftmaxOut for i8 {
    const BITS: i32 = 8;
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl SoftmaxOut for i16 {
    const BITS: i32 = 16;
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    fn from_i32(v: i32) -> Self {
        v as i16
    }
}

/// SOFTMAX int8 -> int8/int16 eval over the last dimension (`depth` elements per row).
/// `input.len()` must equal `output.len()` and be a multiple of `depth`.
pub fn softmax_i8<T: SoftmaxOut>(
    p: &SoftmaxParams,
    depth: usize,
    input: &[i8],
    output: &mut [T],
) -> Result<()> {
    if depth == 0 || input.len() != output.len() || !input.len().is_multiple_of(depth) {
        return Err(KernelError::Shape(
            "softmax input/output lengths must match and be a multiple of depth",
        ));
    }
    let expected_bits = match p.output {
        SoftmaxOutput::Int8 => 8,
        SoftmaxOutput::Int16 => 16,
    };
    if T::BITS != expected_bits {
        return Err(KernelError::Param(
            "softmax output slice type does not match the prepared output type",
        ));
    }
    let scaled_exp = |x: i8, max: i8| -> Option<i32> {
        let diff = i32::from(x) - i32::from(max);
        if diff >= p.diff_min {
            let rescaled = multiply_by_quantized_multiplier_greater_than_one(
                diff,
                p.input_multiplier,
                p.input_left_shift,
            );
            Some(exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS))
        } else {
            None
        }
    };
    for (row_in, row_out) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max_in_row = row_in.iter().copied().max().unwrap_or(i8::MIN);
        let mut sum_of_exps: i32 = 0; // Q12.19
        for &x in row_in {
            if let Some(e) = scaled_exp(x, max_in_row) {
                sum_of_exps = sum_of_exps.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS));
            }
        }
        let (shifted_scale, num_bits_over_unit) =
            get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        let exponent = num_bits_over_unit + 31 - T::BITS;
        if !(0..=31).contains(&exponent) {
            return Err(KernelError::Shape(
                "softmax row too long for the fixed-point accumulator",
            ));
        }
        for (&x, o) in row_in.iter().zip(row_out.iter_mut()) {
            *o = match scaled_exp(x, max_in_row) {
                Some(e) => {
                    let unsat = rounding_divide_by_pot(
                        saturating_rounding_doubling_high_mul(shifted_scale, e),
                        exponent,
                    );
                    T::from_i32(unsat.wrapping_add(T::MIN).clamp(T::MIN, T::MAX))
                }
                None => T::from_i32(T::MIN),
            };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantize(x: f32, scale: f32, zp: i32) -> i8 {
        (crate::quant::round_f32(x / scale) as i32 + zp).clamp(-128, 127) as i8
    }

    #[test]
    fn tflm_softmax_1d_golden_within_tolerance() {
        // TFLM softmax_test Softmax1DQuantizedInt8: input scale 0.1, zp 0, tolerance 1.
        let input: [i8; 5] = [10, 20, 30, 40, 50];
        let golden = [
            0.011656231f64,
            0.031684921,
            0.086128544,
            0.234121657,
            0.636408647,
        ];
        let p = SoftmaxParams::prepare(1.0, 0.1, SoftmaxOutput::Int8, 1.0 / 256.0, -128).unwrap();
        let mut out = [0i8; 5];
        softmax_i8(&p, 5, &input, &mut out).unwrap();
        for (o, g) in out.iter().zip(golden) {
            let q = quantize(g as f32, 1.0 / 256.0, -128);
            assert!((i32::from(*o) - i32::from(q)).abs() <= 1, "{o} vs {q}");
        }
    }

    #[test]
    fn tflm_runtime_golden() {
        // Produced by the TFLM reference runtime on a synthetic single-op model
        // (input scale 0.02, zp 7, beta 1, depth 17): exact expected bytes.
        let input: [i8; 34] = [
            97, -77, 56, -34, -3, -128, 30, 84, 41, -89, 8, -60, 119, 97, -81, 2, 112, 88, 53, 35,
            -118, 61, -7, -105, -66, 10, 58, 1, 28, 95, 47, -36, 36, 25,
        ];
        let golden: [i8; 34] = [
            -93, -127, -113, -125, -123, -128, -119, -101, -117, -127, -122, -126, -74, -93, -127,
            -123, -81, -87, -108, -114, -127, -104, -122, -127, -126, -119, -105, -121, -116, -81,
            -110, -125, -113, -116,
        ];
        let p = SoftmaxParams::prepare(1.0, 0.02, SoftmaxOutput::Int8, 1.0 / 256.0, -128).unwrap();
        let mut out = [0i8; 34];
        softmax_i8(&p, 17, &input, &mut out).unwrap();
        assert_eq!(out, golden);
    }

    #[test]
    fn prepare_values() {
        let p = SoftmaxParams::prepare(1.0, 0.1, SoftmaxOutput::Int8, 1.0 / 256.0, -128).unwrap();
        // 0.1f as double * 2^26 = 6710886.5 (approx) -> frexp exponent 23
        assert_eq!(p.input_left_shift, 23);
        assert_eq!(p.diff_min, -((31i64 << 26) >> 23) as i32);
        assert!(SoftmaxParams::prepare(1.0, 0.1, SoftmaxOutput::Int8, 1.0 / 255.0, -128).is_err());
        assert!(SoftmaxParams::prepare(1.0, 0.1, SoftmaxOutput::Int8, 1.0 / 256.0, 0).is_err());
        assert!(
            SoftmaxParams::prepare(1e-9, 1e-9, SoftmaxOutput::Int8, 1.0 / 256.0, -128).is_err()
        );
    }

    #[test]
    fn uniform_row_and_saturation() {
        let p = SoftmaxParams::prepare(1.0, 0.1, SoftmaxOutput::Int8, 1.0 / 256.0, -128).unwrap();
        let mut out = [0i8; 4];
        softmax_i8(&p, 4, &[7; 4], &mut out).unwrap();
        assert_eq!(out, [-64; 4]); // 0.25 * 256 - 128
        // one dominant value: 1.0 saturates to 127
        let p = SoftmaxParams::prepare(1.0, 1.0, SoftmaxOutput::Int8, 1.0 / 256.0, -128).unwrap();
        softmax_i8(&p, 4, &[127, -128, -128, -128], &mut out).unwrap();
        assert_eq!(out, [127, -128, -128, -128]);
        let mut out16 = [0i16; 4];
        let p16 =
            SoftmaxParams::prepare(1.0, 0.1, SoftmaxOutput::Int16, 1.0 / 65536.0, -32768).unwrap();
        softmax_i8(&p16, 4, &[7; 4], &mut out16).unwrap();
        assert_eq!(out16, [-16384; 4]);
        assert!(softmax_i8(&p, 4, &[7; 4], &mut out16).is_err());
        assert!(softmax_i8(&p, 3, &[7; 4], &mut out).is_err());
    }
}
