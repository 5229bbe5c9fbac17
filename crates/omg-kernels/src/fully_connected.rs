//! FULLY_CONNECTED int8 (TFLM `reference_integer_ops::FullyConnected` and
//! `FullyConnectedPerChannel`) with the multiplier computation of TFLM's
//! `CalculateOpDataFullyConnected`.

use crate::quant::{OutputStage, QuantizedMultiplier, quantize_multiplier};
use crate::{KernelError, Result};

/// Per-tensor FC multiplier as TFLM's `GetQuantizedConvolutionMultipler` computes it: the
/// product `input_scale * filter_scale` is taken in **float**, then divided in double by the
/// output scale. With a bias, TFLM also requires
/// `|in*filter (double) - bias_scale| / output_scale <= 0.02`.
pub fn fc_per_tensor_multiplier(
    input_scale: f32,
    filter_scale: f32,
    bias_scale: Option<f32>,
    output_scale: f32,
) -> Result<QuantizedMultiplier> {
    if let Some(bias_scale) = bias_scale {
        let input_product_scale = f64::from(input_scale) * f64::from(filter_scale);
        let scale_diff = (input_product_scale - f64::from(bias_scale)).abs();
        if !(scale_diff / f64::from(output_scale) <= 0.02) {
            return Err(KernelError::Param(
                "bias scale differs from input_scale * filter_scale",
            ));
        }
    }
    let input_product_scale = f64::from(input_scale * filter_scale);
    if !(input_product_scale >= 0.0) {
        return Err(KernelError::Param(
            "input_scale * filter_scale must be >= 0",
        ));
    }
    quantize_multiplier(input_product_scale / f64::from(output_scale))
}

/// Per-channel FC multipliers (TFLM, when the filter has more than one scale; int8 input only):
/// `QuantizeMultiplier((double)input_scale * (double)filter_scale[c] / (double)output_scale)`.
pub fn fc_per_channel_multipliers(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    out: &mut [QuantizedMultiplier],
) -> Result<()> {
    if filter_scales.len() != out.len() {
        return Err(KernelError::Shape(
            "one filter scale per output channel is required",
        ));
    }
    for (slot, &s) in out.iter_mut().zip(filter_scales) {
        *slot =
            quantize_multiplier(f64::from(input_scale) * f64::from(s) / f64::from(output_scale))?;
    }
    Ok(())
}

/// Quantization of an FC call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FcQuantization<'a> {
    /// One multiplier for all outputs; `filter_zero_point` is honoured (TFLM keeps it for
    /// backward compatibility; it is 0 in valid int8 models).
    PerTensor {
        /// Output multiplier from [`fc_per_tensor_multiplier`].
        multiplier: QuantizedMultiplier,
        /// Filter zero point.
        filter_zero_point: i32,
    },
    /// One multiplier per output channel; the filter zero point is ignored (symmetric).
    PerChannel(&'a [QuantizedMultiplier]),
}

impl FcQuantization<'_> {
    /// Filter zero point (0 for per-channel quantization, which ignores it).
    pub(crate) fn filter_zero_point(self) -> i32 {
        match self {
            FcQuantization::PerTensor {
                filter_zero_point, ..
            } => filter_zero_point,
            FcQuantization::PerChannel(_) => 0,
        }
    }

    /// Multiplier of output channel `oc` (the default for a missing per-channel entry).
    #[inline]
    pub(crate) fn multiplier(self, oc: usize) -> QuantizedMultiplier {
        match self {
            FcQuantization::PerTensor { multiplier, .. } => multiplier,
            FcQuantization::PerChannel(m) => m.get(oc).copied().unwrap_or_default(),
        }
    }
}

/// Parameters of an int8 FULLY_CONNECTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullyConnectedParams {
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Lower clamp from the fused activation.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
    /// Output channels (`filter` rows).
    pub output_depth: usize,
    /// Input features per batch (`filter` columns).
    pub accum_depth: usize,
    /// Number of rows: output elements / `output_depth` (TFLM `FlatSizeSkipDim`).
    pub batches: usize,
}

impl FullyConnectedParams {
    /// Prepare-time validation against the slice lengths of input, filter, bias and output and
    /// the number of per-channel multipliers (`None` for per-tensor).
    pub fn check(
        &self,
        input_len: usize,
        filter_len: usize,
        bias_len: Option<usize>,
        per_channel_len: Option<usize>,
        output_len: usize,
    ) -> Result<()> {
        if self.act_min > self.act_max {
            return Err(KernelError::Param("activation min > max"));
        }
        let need = |a: usize, b: usize| a.checked_mul(b).ok_or(KernelError::Shape("size overflow"));
        if filter_len != need(self.output_depth, self.accum_depth)? {
            return Err(KernelError::Shape(
                "filter length must be output_depth * accum_depth",
            ));
        }
        if input_len != need(self.batches, self.accum_depth)? {
            return Err(KernelError::Shape(
                "input length must be batches * accum_depth",
            ));
        }
        if output_len != need(self.batches, self.output_depth)? {
            return Err(KernelError::Shape(
                "output length must be batches * output_depth",
            ));
        }
        if bias_len.is_some_and(|b| b != self.output_depth) {
            return Err(KernelError::Shape("bias length must equal output depth"));
        }
        if per_channel_len.is_some_and(|n| n != self.output_depth) {
            return Err(KernelError::Shape(
                "one multiplier per output channel is required",
            ));
        }
        Ok(())
    }

    /// [`Self::check`] on the operands of one eval call (reference and fast kernels).
    pub(crate) fn check_eval(
        &self,
        quant: FcQuantization<'_>,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        output: &[i8],
    ) -> Result<()> {
        let per_channel_len = match quant {
            FcQuantization::PerChannel(m) => Some(m.len()),
            FcQuantization::PerTensor { .. } => None,
        };
        self.check(
            input.len(),
            filter.len(),
            bias.map(<[i32]>::len),
            per_channel_len,
            output.len(),
        )
    }
}

/// FULLY_CONNECTED int8 eval: `filter` is `[output_depth, accum_depth]`, `output` is
/// `[batches, output_depth]`.
pub fn fully_connected_i8(
    p: &FullyConnectedParams,
    quant: FcQuantization<'_>,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
) -> Result<()> {
    p.check_eval(quant, input, filter, bias, output)?;
    let input_offset = -p.input_zero_point;
    let filter_offset = -quant.filter_zero_point();
    let out = OutputStage::new(p.output_zero_point, p.act_min, p.act_max);
    let depth = p.accum_depth;
    for (in_row, out_row) in input
        .chunks_exact(depth.max(1))
        .zip(output.chunks_exact_mut(p.output_depth.max(1)))
    {
        for (oc, (w_row, o)) in filter
            .chunks_exact(depth.max(1))
            .zip(out_row.iter_mut())
            .enumerate()
        {
            let mut acc: i32 = 0;
            for (&x, &w) in in_row.iter().zip(w_row) {
                acc = acc
                    .wrapping_add((i32::from(w) + filter_offset) * (i32::from(x) + input_offset));
            }
            *o = out.with_bias(acc, bias, oc, quant.multiplier(oc));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fc_hand_computed() {
        // TFLM fully_connected_test "SimpleTestQuantizedInt8": input scale 1, zp -1? We use a
        // hand case: 2 batches x 3 inputs, 2 outputs.
        let p = FullyConnectedParams {
            input_zero_point: 1,
            output_zero_point: -5,
            act_min: -128,
            act_max: 127,
            output_depth: 2,
            accum_depth: 3,
            batches: 2,
        };
        let input = [2i8, 3, 4, 1, 1, 1];
        let filter = [1i8, 2, 3, -1, 0, 1];
        let qm = QuantizedMultiplier {
            multiplier: 1 << 30,
            shift: 0,
        }; // x0.5
        let mut out = [0i8; 4];
        fully_connected_i8(
            &p,
            FcQuantization::PerTensor {
                multiplier: qm,
                filter_zero_point: 0,
            },
            &input,
            &filter,
            Some(&[10, -10]),
            &mut out,
        )
        .unwrap();
        // batch0: (1,2,3)·(1,2,3)=14+10=24 -> 12 -5 = 7; (-1,0,1)·(1,2,3)=2-10=-8 -> -4 -5 = -9
        // batch1: zeros -> 10 -> 5-5=0 ; -10 -> -5 -5 = -10
        assert_eq!(out, [7, -9, 0, -10]);
        let mut short = [0i8; 3];
        assert!(
            fully_connected_i8(
                &p,
                FcQuantization::PerChannel(&[qm; 2]),
                &input,
                &filter,
                None,
                &mut short
            )
            .is_err()
        );
        fully_connected_i8(
            &p,
            FcQuantization::PerChannel(&[
                qm,
                QuantizedMultiplier {
                    multiplier: 1 << 30,
                    shift: 1,
                },
            ]),
            &input,
            &filter,
            None,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [2, -3, -5, -5]);
    }

    #[test]
    fn fc_multiplier_uses_float_product() {
        // product in float vs double differ; the float product is what TFLM uses.
        let (a, b, c) = (0.1f32, 0.3f32, 0.7f32);
        let m = fc_per_tensor_multiplier(a, b, None, c).unwrap();
        let want = quantize_multiplier(f64::from(a * b) / f64::from(c)).unwrap();
        assert_eq!(m, want);
        assert!(fc_per_tensor_multiplier(a, b, Some(1.0), c).is_err());
        assert!(fc_per_tensor_multiplier(a, b, Some(a * b), c).is_ok());
    }
}
