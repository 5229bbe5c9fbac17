//! QUANTIZE (float32 -> int8/int16, and integer requantization) and DEQUANTIZE
//! (int8/int16/uint8 -> float32), as TFLM's `AffineQuantize`, `Requantize` and `Dequantize`.

use crate::quant::{
    QuantizedMultiplier, multiply_by_quantized_multiplier, quantize_multiplier, round_f32,
};
use crate::{KernelError, Result};

/// An integer element type that can be quantized to / dequantized from.
pub trait QuantInt: Copy {
    /// Minimum value as i32.
    const MIN: i32;
    /// Maximum value as i32.
    const MAX: i32;
    /// Widening conversion.
    fn to_i32(self) -> i32;
    /// Narrowing conversion of a clamped value.
    fn from_i32(v: i32) -> Self;
}

macro_rules! quant_int {
    ($($t:ty),*) => {$(
        impl QuantInt for $t {
            const MIN: i32 = <$t>::MIN as i32;
            const MAX: i32 = <$t>::MAX as i32;
            #[inline]
            fn to_i32(self) -> i32 {
                self as i32
            }
            #[inline]
            fn from_i32(v: i32) -> Self {
                v as $t
            }
        }
    )*};
}
quant_int!(i8, u8, i16, i32);

/// QUANTIZE float32 -> int8/int16 (TFLM `AffineQuantize`):
/// `clamp((int32)TfLiteRound(x / (float)scale) + zero_point)`, division and rounding in float
/// (half away from zero). Values beyond the int32 range saturate (UB in C++). Copies the
/// common prefix if the lengths differ.
pub fn quantize_f32<T: QuantInt>(scale: f32, zero_point: i32, input: &[f32], output: &mut [T]) {
    for (o, &x) in output.iter_mut().zip(input) {
        let unclamped = (round_f32(x / scale) as i32).saturating_add(zero_point);
        *o = T::from_i32(unclamped.clamp(T::MIN, T::MAX));
    }
}

/// DEQUANTIZE (TFLM `Dequantize`): `scale * (float)(q - zero_point)`, in float.
pub fn dequantize<T: QuantInt>(scale: f32, zero_point: i32, input: &[T], output: &mut [f32]) {
    for (o, &q) in output.iter_mut().zip(input) {
        *o = scale * (q.to_i32().wrapping_sub(zero_point) as f32);
    }
}

/// Prepared integer -> integer QUANTIZE (requantization) parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequantizeParams {
    /// `QuantizeMultiplier((double)input_scale / (double)output_scale)`.
    pub multiplier: QuantizedMultiplier,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
}

impl RequantizeParams {
    /// TFLM `PrepareQuantizeReference` for integer input (int8/int16/int32/uint8 -> int8/...).
    pub fn prepare(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Result<Self> {
        if !(output_scale > 0.0) {
            return Err(KernelError::Param("output scale must be positive"));
        }
        let effective = f64::from(input_scale) / f64::from(output_scale);
        Ok(RequantizeParams {
            multiplier: quantize_multiplier(effective)?,
            input_zero_point,
            output_zero_point,
        })
    }
}

/// Integer QUANTIZE eval (TFLM `Requantize`):
/// `clamp(MultiplyByQuantizedMultiplier(q - zp_in, m, shift) + zp_out)`.
/// (TFLM's int8<->uint8 xor fast path gives identical results and is not special-cased.)
pub fn requantize<I: QuantInt, O: QuantInt>(p: &RequantizeParams, input: &[I], output: &mut [O]) {
    for (o, &q) in output.iter_mut().zip(input) {
        let v = multiply_by_quantized_multiplier(
            q.to_i32().wrapping_sub(p.input_zero_point),
            p.multiplier.multiplier,
            p.multiplier.shift,
        )
        .wrapping_add(p.output_zero_point);
        *o = O::from_i32(v.clamp(O::MIN, O::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounding() {
        let mut out = [0i8; 7];
        quantize_f32(
            0.5,
            -1,
            &[0.25, -0.25, 0.75, 100.0, -100.0, f32::NAN, 1e30],
            &mut out,
        );
        // 0.5 -> 1 (half away) -1 = 0; -0.5 -> -1 -1 = -2; 1.5 -> 2 - 1 = 1
        assert_eq!(out, [0, -2, 1, 127, -128, -1, 127]);
        let mut out16 = [0i16; 2];
        quantize_f32(1.0 / 32768.0, 0, &[0.5, -1.0], &mut out16);
        assert_eq!(out16, [16384, -32768]);
    }

    #[test]
    fn quantize_tflm_runtime_golden() {
        // Produced by the TFLM reference runtime (QUANTIZE float32 -> int8, scale 0.0317, zp 17).
        let input = [
            -1.780_183_1f32,
            -0.751_320_2,
            -5.455_304,
            -3.454_157_3,
            4.853_147,
            -6.564_422,
            -1.013_407_7,
            0.657_594_7,
            -1.123_047_7,
            -2.424_472_6,
            -0.183_235_6,
            -0.014_896_205,
        ];
        let golden: [i8; 12] = [-39, -7, -128, -92, 127, -128, -15, 38, -18, -59, 11, 17];
        let mut out = [0i8; 12];
        quantize_f32(0.0317, 17, &input, &mut out);
        assert_eq!(out, golden);
    }

    #[test]
    fn dequantize_values() {
        let mut out = [0f32; 3];
        dequantize(0.5f32, -128, &[-128i8, 127, 0], &mut out);
        assert_eq!(out, [0.0, 127.5, 64.0]);
        dequantize(0.25f32, 0, &[-4i16, 4, 0], &mut out);
        assert_eq!(out, [-1.0, 1.0, 0.0]);
    }

    #[test]
    fn requantize_values() {
        let p = RequantizeParams::prepare(0.5, 0, 0.25, -128).unwrap();
        let mut out = [0i8; 3];
        requantize(&p, &[1i8, 60, -100], &mut out);
        assert_eq!(out, [-126, -8, -128]);
        // same scale int8 -> uint8 with zero point shift of 128 (TFLM xor fast path)
        let p = RequantizeParams::prepare(0.5, -128, 0.5, 0).unwrap();
        let mut out_u = [0u8; 3];
        requantize(&p, &[-128i8, 0, 127], &mut out_u);
        assert_eq!(out_u, [0, 128, 255]);
    }
}
