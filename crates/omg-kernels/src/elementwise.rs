//! Binary elementwise operators with broadcasting (see [`crate::shape::Broadcast`]):
//! quantized ADD / MUL (int8, int16) with TFLM's parameter computation, and float32 / int32
//! ADD, SUB, MUL, DIV, MINIMUM, MAXIMUM.

use crate::Result;
use crate::quant::{
    QuantizedMultiplier, clamp_f32, multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
};
use crate::shape::Broadcast;

/// Quantized element of ADD / MUL (int8 or int16).
pub trait QuantElement: Copy {
    /// Minimum value.
    const MIN: i32;
    /// Maximum value.
    const MAX: i32;
    /// Widening conversion.
    fn to_i32(self) -> i32;
    /// Narrowing conversion of a clamped value.
    fn from_i32(v: i32) -> Self;
}

impl QuantElement for i8 {
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl QuantElement for i16 {
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
    fn from_i32(v: i32) -> Self {
        v as i16
    }
}

/// Quantization of one tensor: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorQuant {
    /// Scale (float, as stored in the model).
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
}

/// Prepared quantized ADD parameters (TFLM `OpDataAdd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddParams {
    /// Inputs are shifted left by this before rescaling (20 for int8, 15 for int16).
    pub left_shift: i32,
    /// Input 1 zero point.
    pub input1_zero_point: i32,
    /// Input 2 zero point.
    pub input2_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Input 1 multiplier (shift <= 0).
    pub input1: QuantizedMultiplier,
    /// Input 2 multiplier (shift <= 0).
    pub input2: QuantizedMultiplier,
    /// Output multiplier (shift <= 0).
    pub output: QuantizedMultiplier,
    /// Lower clamp from the fused activation.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

impl AddParams {
    /// TFLM `CalculateOpDataAdd` for int8 (`int16_output == false`, left shift 20) or int16
    /// (left shift 15): `twice_max_input_scale = 2 * (double)max(s1, s2)`, input multipliers
    /// `s_i / twice_max`, output multiplier `twice_max / (2^left_shift * s_out)`, each through
    /// `QuantizeMultiplierSmallerThanOneExp`. `act_min/act_max` come from
    /// [`crate::quant::activation_range_quantized`].
    pub fn prepare(
        in1: TensorQuant,
        in2: TensorQuant,
        out: TensorQuant,
        int16_output: bool,
        act_min: i32,
        act_max: i32,
    ) -> Result<Self> {
        let left_shift = if int16_output { 15 } else { 20 };
        let twice_max_input_scale = 2.0 * f64::from(in1.scale.max(in2.scale));
        let real1 = f64::from(in1.scale) / twice_max_input_scale;
        let real2 = f64::from(in2.scale) / twice_max_input_scale;
        let real_out =
            twice_max_input_scale / (f64::from(1i32 << left_shift) * f64::from(out.scale));
        Ok(AddParams {
            left_shift,
            input1_zero_point: in1.zero_point,
            input2_zero_point: in2.zero_point,
            output_zero_point: out.zero_point,
            input1: quantize_multiplier_smaller_than_one_exp(real1)?,
            input2: quantize_multiplier_smaller_than_one_exp(real2)?,
            output: quantize_multiplier_smaller_than_one_exp(real_out)?,
            act_min,
            act_max,
        })
    }

    /// TFLM `AddFunc` for one pair of quantized values.
    #[inline]
    pub fn apply(&self, x: i32, y: i32) -> i32 {
        let shift = 1i32 << self.left_shift;
        let a = (x - self.input1_zero_point).wrapping_mul(shift);
        let b = (y - self.input2_zero_point).wrapping_mul(shift);
        let sa = multiply_by_quantized_multiplier_smaller_than_one_exp(
            a,
            self.input1.multiplier,
            self.input1.shift,
        );
        let sb = multiply_by_quantized_multiplier_smaller_than_one_exp(
            b,
            self.input2.multiplier,
            self.input2.shift,
        );
        let raw = multiply_by_quantized_multiplier_smaller_than_one_exp(
            sa.wrapping_add(sb),
            self.output.multiplier,
            self.output.shift,
        )
        .wrapping_add(self.output_zero_point);
        raw.clamp(self.act_min, self.act_max)
    }
}

/// Quantized ADD eval (int8 or int16), with broadcasting.
pub fn add_quantized<T: QuantElement>(
    p: &AddParams,
    bc: &Broadcast,
    input1: &[T],
    input2: &[T],
    output: &mut [T],
) -> Result<()> {
    quantized(bc, input1, input2, output, |a, b| p.apply(a, b))
}

/// Applies `f` to the widened values of each broadcast pair and narrows its (clamped) result.
#[inline]
fn quantized<T: QuantElement>(
    bc: &Broadcast,
    input1: &[T],
    input2: &[T],
    output: &mut [T],
    f: impl Fn(i32, i32) -> i32,
) -> Result<()> {
    bc.apply(input1, input2, output, |a, b| {
        T::from_i32(f(a.to_i32(), b.to_i32()))
    })
}

/// Prepared quantized MUL parameters (TFLM `OpDataMul`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulParams {
    /// Input 1 zero point.
    pub input1_zero_point: i32,
    /// Input 2 zero point.
    pub input2_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// `QuantizeMultiplier((double)s1 * (double)s2 / (double)s_out)`.
    pub output: QuantizedMultiplier,
    /// Lower clamp from the fused activation.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

impl MulParams {
    /// TFLM `CalculateOpDataMul` for int8 / int16 (int16 requires all zero points 0).
    pub fn prepare(
        in1: TensorQuant,
        in2: TensorQuant,
        out: TensorQuant,
        act_min: i32,
        act_max: i32,
    ) -> Result<Self> {
        let real = f64::from(in1.scale) * f64::from(in2.scale) / f64::from(out.scale);
        Ok(MulParams {
            input1_zero_point: in1.zero_point,
            input2_zero_point: in2.zero_point,
            output_zero_point: out.zero_point,
            output: quantize_multiplier(real)?,
            act_min,
            act_max,
        })
    }

    /// TFLM `MulElementwise` for one pair of quantized values.
    #[inline]
    pub fn apply(&self, x: i32, y: i32) -> i32 {
        let a = x - self.input1_zero_point;
        let b = y - self.input2_zero_point;
        multiply_by_quantized_multiplier(
            a.wrapping_mul(b),
            self.output.multiplier,
            self.output.shift,
        )
        .wrapping_add(self.output_zero_point)
        .clamp(self.act_min, self.act_max)
    }
}

/// Quantized MUL eval (int8 or int16), with broadcasting.
pub fn mul_quantized<T: QuantElement>(
    p: &MulParams,
    bc: &Broadcast,
    input1: &[T],
    input2: &[T],
    output: &mut [T],
) -> Result<()> {
    quantized(bc, input1, input2, output, |a, b| p.apply(a, b))
}

/// Unquantized binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b` (int32: truncation toward zero; see [`binary_i32`]).
    Div,
    /// `a < b ? a : b` (TFLM `MinimumOp`).
    Minimum,
    /// `a > b ? a : b` (TFLM `MaximumOp`).
    Maximum,
}

/// float32 ADD/SUB/MUL/DIV/MINIMUM/MAXIMUM with broadcasting, clamped to `[act_min, act_max]`
/// (from [`crate::quant::activation_range_f32`]; pass `(f32::MIN, f32::MAX)` for MINIMUM /
/// MAXIMUM, which have no fused activation). NaN propagates as in the C++ code.
pub fn binary_f32(
    op: BinaryOp,
    act_min: f32,
    act_max: f32,
    bc: &Broadcast,
    input1: &[f32],
    input2: &[f32],
    output: &mut [f32],
) -> Result<()> {
    bc.apply(input1, input2, output, |a, b| {
        let v = match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Minimum => return if a < b { a } else { b },
            BinaryOp::Maximum => return if a > b { a } else { b },
        };
        clamp_f32(v, act_min, act_max)
    })
}

/// int32 ADD/SUB/MUL/DIV/MINIMUM/MAXIMUM with broadcasting, clamped to `[act_min, act_max]`.
///
/// TFLM specifics: int32 ADD ignores the fused activation (pass `(i32::MIN, i32::MAX)`);
/// MUL and DIV use [`crate::quant::activation_range_i32`]. Overflow wraps (UB in C++).
/// DIV truncates toward zero like C; the cases that are undefined in C (and trap on x86) get a
/// defined result here: `x / 0 = 0` and `i32::MIN / -1 = i32::MIN` (wrapping).
pub fn binary_i32(
    op: BinaryOp,
    act_min: i32,
    act_max: i32,
    bc: &Broadcast,
    input1: &[i32],
    input2: &[i32],
    output: &mut [i32],
) -> Result<()> {
    // One loop per operator, so that each is compiled (and vectorized) on its own.
    let clamp = |v: i32| v.clamp(act_min, act_max);
    let (a, b, o) = (input1, input2, output);
    match op {
        BinaryOp::Add => bc.apply(a, b, o, |a, b| clamp(a.wrapping_add(b))),
        BinaryOp::Sub => bc.apply(a, b, o, |a, b| clamp(a.wrapping_sub(b))),
        BinaryOp::Mul => bc.apply(a, b, o, |a, b| clamp(a.wrapping_mul(b))),
        BinaryOp::Div => bc.apply(a, b, o, |a, b| {
            clamp(if b == 0 { 0 } else { a.wrapping_div(b) })
        }),
        BinaryOp::Minimum => bc.apply(a, b, o, i32::min),
        BinaryOp::Maximum => bc.apply(a, b, o, i32::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Activation, activation_range_f32, activation_range_i8};

    fn q(scale: f32, zero_point: i32) -> TensorQuant {
        TensorQuant { scale, zero_point }
    }

    fn quantize(x: f32, t: TensorQuant) -> i8 {
        (crate::quant::round_f32(x / t.scale) as i32 + t.zero_point).clamp(-128, 127) as i8
    }

    #[test]
    fn add_int8_tflm_style() {
        // Values of TFLM add_test QuantizedAddNoActivationInt8 with scales that fit int8.
        let (i1, i2, o) = (q(0.05, 0), q(0.05, 0), q(0.05, 0));
        let p = AddParams::prepare(i1, i2, o, false, -128, 127).unwrap();
        assert_eq!(p.left_shift, 20);
        let a = [-2.01f32, -1.01, -0.01, 0.98].map(|x| quantize(x, i1));
        let b = [1.01f32, 1.99, 2.99, 4.02].map(|x| quantize(x, i2));
        let golden = [-1.0f32, 0.98, 2.98, 5.0].map(|x| quantize(x, o));
        let bc = Broadcast::new(&[1, 2, 2, 1], &[1, 2, 2, 1]).unwrap();
        let mut out = [0i8; 4];
        add_quantized(&p, &bc, &a, &b, &mut out).unwrap();
        for (x, g) in out.iter().zip(golden) {
            assert!((i32::from(*x) - i32::from(g)).abs() <= 1, "{x} vs {g}");
        }
        // saturation
        let bc1 = Broadcast::new(&[1], &[1]).unwrap();
        let mut o1 = [0i8];
        add_quantized(&p, &bc1, &[127i8], &[127i8], &mut o1).unwrap();
        assert_eq!(o1, [127]);
        add_quantized(&p, &bc1, &[-128i8], &[-128i8], &mut o1).unwrap();
        assert_eq!(o1, [-128]);
    }

    #[test]
    fn add_identity_and_zero_points() {
        // same scale everywhere: out = a + b - zp shifts
        let t = q(0.5, -128);
        let p = AddParams::prepare(t, t, t, false, -128, 127).unwrap();
        // real(a)=(a+128)*.5 ; (-100 -> 14, -90 -> 19) sum 33 -> q = 66-128 = -62
        assert_eq!(p.apply(-100, -90), -62);
        let (lo, hi) = activation_range_i8(Activation::Relu6, 0.5, -128).unwrap();
        let p = AddParams::prepare(t, t, t, false, lo, hi).unwrap();
        assert_eq!(p.apply(-100, -90), -116);
        assert!(AddParams::prepare(t, t, q(1e-9, 0), false, -128, 127).is_err());
    }

    #[test]
    fn mul_int8() {
        let t = q(0.1, 0);
        let p = MulParams::prepare(t, t, q(0.1, 0), -128, 127).unwrap();
        // 1.0 * 2.0 = 2.0
        assert_eq!(p.apply(10, 20), 20);
        assert_eq!(p.apply(100, 100), 127);
        assert_eq!(p.apply(-100, 100), -128);
        let bc = Broadcast::new(&[2, 2], &[2]).unwrap();
        let mut out = [0i8; 4];
        mul_quantized(&p, &bc, &[10, 20, 30, 40], &[10, -10], &mut out).unwrap();
        assert_eq!(out, [10, -20, 30, -40]);
    }

    #[test]
    fn float_and_int32_ops() {
        let bc = Broadcast::new(&[3], &[1]).unwrap();
        let mut out = [0f32; 3];
        let (lo, hi) = activation_range_f32(Activation::Relu);
        binary_f32(
            BinaryOp::Sub,
            lo,
            hi,
            &bc,
            &[1.0, 2.0, 3.0],
            &[2.0],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [0.0, 0.0, 1.0]);
        binary_f32(
            BinaryOp::Maximum,
            f32::MIN,
            f32::MAX,
            &bc,
            &[1.0, f32::NAN, 3.0],
            &[2.0],
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], 2.0);
        assert_eq!(out[1], 2.0); // NaN > 2 is false -> b
        let i32s = |op, act: (i32, i32), a: [i32; 3], b: i32| {
            let mut o = [0i32; 3];
            binary_i32(op, act.0, act.1, &bc, &a, &[b], &mut o).unwrap();
            o
        };
        let full = (i32::MIN, i32::MAX);
        let div = |b| i32s(BinaryOp::Div, full, [7, -7, i32::MIN], b);
        assert_eq!(div(-2), [-3, 3, 1 << 30]);
        assert_eq!(div(0), [0, 0, 0]);
        assert_eq!(div(-1), [-7, 7, i32::MIN]);
        assert_eq!(
            i32s(BinaryOp::Add, full, [i32::MAX, 1, 2], 1),
            [i32::MIN, 2, 3]
        );
        assert_eq!(i32s(BinaryOp::Mul, (0, 6), [-1, 2, 5], 2), [0, 4, 6]);
    }
}
