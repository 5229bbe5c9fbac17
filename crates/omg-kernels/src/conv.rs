//! CONV_2D and DEPTHWISE_CONV_2D, int8 per-channel (TFLM `reference_integer_ops::ConvPerChannel`
//! and `DepthwiseConvPerChannel`), plus the prepare-time multiplier computation of
//! `PopulateConvolutionQuantizationParams`.

use crate::quant::{OutputStage, QuantizedMultiplier, quantize_multiplier};
use crate::shape::count4;
use crate::{KernelError, Result};

/// Per-channel output multipliers as TFLM's `PopulateConvolutionQuantizationParams` computes
/// them for int8/int16 inputs: for each output channel,
/// `QuantizeMultiplier((double)input_scale * (double)filter_scale[c] / (double)output_scale)`.
///
/// `filter_scales` holds 1 (per-tensor, broadcast to every channel) or `out.len()` scales.
/// The results are written to `out` (one entry per output channel).
pub fn populate_conv_quantization(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    out: &mut [QuantizedMultiplier],
) -> Result<()> {
    if filter_scales.len() != 1 && filter_scales.len() != out.len() {
        return Err(KernelError::Shape(
            "filter scale count must be 1 or the number of output channels",
        ));
    }
    for (i, slot) in out.iter_mut().enumerate() {
        let scale = if filter_scales.len() == 1 {
            filter_scales[0]
        } else {
            filter_scales[i]
        };
        let effective = f64::from(input_scale) * f64::from(scale) / f64::from(output_scale);
        *slot = quantize_multiplier(effective)?;
    }
    Ok(())
}

/// Input coordinate `origin + dilation * f` of filter tap `f` if it lies inside `0..len`
/// (TFLM's `is_point_inside_image`); `None` for a padded tap.
#[inline]
fn input_coord(origin: isize, dilation: usize, f: usize, len: usize) -> Option<usize> {
    let c = origin + (dilation * f) as isize;
    (c >= 0 && c < len as isize).then_some(c as usize)
}

/// Parameters of an int8 CONV_2D (TFLM `ConvParams` + per-channel data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Vertical stride (>= 1).
    pub stride_height: usize,
    /// Horizontal stride (>= 1).
    pub stride_width: usize,
    /// Vertical dilation (>= 1).
    pub dilation_height: usize,
    /// Horizontal dilation (>= 1).
    pub dilation_width: usize,
    /// Leading (top) padding from [`crate::quant::compute_padding_height_width`].
    pub pad_height: usize,
    /// Leading (left) padding.
    pub pad_width: usize,
    /// Input zero point (TFLM uses `input_offset = -zero_point`).
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Lower clamp from the fused activation ([`crate::quant::activation_range_i8`]).
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

/// Shapes of a convolution call, NHWC. `filter` is `[out_c, kh, kw, in_c / groups]` for
/// CONV_2D and `[1, kh, kw, out_c]` for DEPTHWISE_CONV_2D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShapes {
    /// `[batches, height, width, channels]`.
    pub input: [usize; 4],
    /// Filter shape (see above).
    pub filter: [usize; 4],
    /// `[batches, out_height, out_width, out_channels]`.
    pub output: [usize; 4],
}

/// Checks shared by [`ConvParams::check`] and [`DepthwiseParams::check`]: strides and
/// dilations `[h, w, dh, dw]`, activation range `[min, max]`, zero points `[input, output]`.
fn check_common(strides: [usize; 4], act: [i32; 2], zero_points: [i32; 2]) -> Result<()> {
    if strides.contains(&0) {
        return Err(KernelError::Param("stride and dilation must be >= 1"));
    }
    if act[0] > act[1] {
        return Err(KernelError::Param("activation min > max"));
    }
    if !zero_points.iter().all(|zp| (-128..=127).contains(zp)) {
        return Err(KernelError::Param("int8 zero point out of range"));
    }
    Ok(())
}

/// `bias_len` (if any) and `multipliers_len` must equal the output channels (CONV_2D's
/// messages).
fn check_per_channel(bias_len: Option<usize>, multipliers_len: usize, out_c: usize) -> Result<()> {
    if bias_len.is_some_and(|b| b != out_c) {
        return Err(KernelError::Shape("bias length must equal output channels"));
    }
    if multipliers_len != out_c {
        return Err(KernelError::Shape(
            "one quantized multiplier per output channel is required",
        ));
    }
    Ok(())
}

/// Eval-time length checks of a convolution call (after the parameter `check`), shared with
/// [`crate::fast`].
pub(crate) fn check_lengths(
    shapes: &ConvShapes,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    multipliers: &[QuantizedMultiplier],
    output: &[i8],
    out_c: usize,
) -> Result<()> {
    if input.len() != count4(shapes.input)
        || filter.len() != count4(shapes.filter)
        || output.len() != count4(shapes.output)
    {
        return Err(KernelError::Shape("slice length does not match its shape"));
    }
    check_per_channel(bias.map(<[i32]>::len), multipliers.len(), out_c)
}

impl ConvParams {
    /// Prepare-time validation of a CONV_2D call (grouped convolution is supported when the
    /// input depth is a multiple of the filter depth, as in TFLM's reference kernel).
    pub fn check(
        &self,
        shapes: &ConvShapes,
        bias_len: Option<usize>,
        multipliers_len: usize,
    ) -> Result<()> {
        check_common(
            [
                self.stride_height,
                self.stride_width,
                self.dilation_height,
                self.dilation_width,
            ],
            [self.act_min, self.act_max],
            [self.input_zero_point, self.output_zero_point],
        )?;
        let [n, _, _, in_c] = shapes.input;
        let [out_c, _, _, f_c] = shapes.filter;
        let [on, _, _, oc] = shapes.output;
        if n != on || out_c != oc {
            return Err(KernelError::Shape("conv batch or output channels mismatch"));
        }
        if f_c == 0 || in_c % f_c != 0 {
            return Err(KernelError::Shape(
                "input depth must be a multiple of the filter depth",
            ));
        }
        let groups = in_c / f_c;
        if groups == 0 || out_c % groups != 0 {
            return Err(KernelError::Shape(
                "output channels must be a multiple of the group count",
            ));
        }
        check_per_channel(bias_len, multipliers_len, out_c)
    }
}

/// CONV_2D int8 per-channel eval. `bias` is optional (int32, one per output channel);
/// `multipliers` holds one [`QuantizedMultiplier`] per output channel.
pub fn conv2d_i8(
    p: &ConvParams,
    shapes: &ConvShapes,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    multipliers: &[QuantizedMultiplier],
    output: &mut [i8],
) -> Result<()> {
    p.check(shapes, bias.map(<[i32]>::len), multipliers.len())?;
    let [batches, in_h, in_w, in_c] = shapes.input;
    let [out_c, f_h, f_w, f_c] = shapes.filter;
    let [_, out_h, out_w, _] = shapes.output;
    check_lengths(shapes, input, filter, bias, multipliers, output, out_c)?;
    let out = OutputStage::new(p.output_zero_point, p.act_min, p.act_max);
    let groups = in_c / f_c;
    let filters_per_group = out_c / groups;
    let input_offset = -p.input_zero_point;
    let (pad_h, pad_w) = (p.pad_height as isize, p.pad_width as isize);
    let mut out_iter = output.iter_mut();
    for b in 0..batches {
        for oy in 0..out_h {
            let in_y_origin = (oy * p.stride_height) as isize - pad_h;
            for ox in 0..out_w {
                let in_x_origin = (ox * p.stride_width) as isize - pad_w;
                for oc in 0..out_c {
                    let group = oc / filters_per_group;
                    let mut acc: i32 = 0;
                    for fy in 0..f_h {
                        let Some(in_y) = input_coord(in_y_origin, p.dilation_height, fy, in_h)
                        else {
                            continue;
                        };
                        for fx in 0..f_w {
                            let Some(in_x) = input_coord(in_x_origin, p.dilation_width, fx, in_w)
                            else {
                                continue;
                            };
                            let in_base = ((b * in_h + in_y) * in_w + in_x) * in_c + group * f_c;
                            let f_base = ((oc * f_h + fy) * f_w + fx) * f_c;
                            let (Some(xs), Some(ws)) = (
                                input.get(in_base..in_base + f_c),
                                filter.get(f_base..f_base + f_c),
                            ) else {
                                return Err(KernelError::Shape("conv index out of range"));
                            };
                            for (&x, &w) in xs.iter().zip(ws) {
                                acc =
                                    acc.wrapping_add(i32::from(w) * (i32::from(x) + input_offset));
                            }
                        }
                    }
                    let qm = multipliers.get(oc).copied().unwrap_or_default();
                    if let Some(o) = out_iter.next() {
                        *o = out.with_bias(acc, bias, oc, qm);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parameters of an int8 DEPTHWISE_CONV_2D (TFLM `DepthwiseParams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseParams {
    /// Vertical stride (>= 1).
    pub stride_height: usize,
    /// Horizontal stride (>= 1).
    pub stride_width: usize,
    /// Vertical dilation (>= 1).
    pub dilation_height: usize,
    /// Horizontal dilation (>= 1).
    pub dilation_width: usize,
    /// Leading (top) padding.
    pub pad_height: usize,
    /// Leading (left) padding.
    pub pad_width: usize,
    /// Output channels per input channel (any value >= 1).
    pub depth_multiplier: usize,
    /// Input zero point.
    pub input_zero_point: i32,
    /// Output zero point.
    pub output_zero_point: i32,
    /// Lower clamp from the fused activation.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

impl DepthwiseParams {
    /// Prepare-time validation: filter `[1, kh, kw, out_c]`, `out_c = in_c * depth_multiplier`,
    /// bias (if any) and multipliers one per output channel.
    pub fn check(
        &self,
        shapes: &ConvShapes,
        bias_len: Option<usize>,
        multipliers_len: usize,
    ) -> Result<()> {
        check_common(
            [
                self.stride_height,
                self.stride_width,
                self.dilation_height,
                self.dilation_width,
            ],
            [self.act_min, self.act_max],
            [self.input_zero_point, self.output_zero_point],
        )?;
        if self.depth_multiplier == 0 {
            return Err(KernelError::Param("depth multiplier must be >= 1"));
        }
        let [n, _, _, in_c] = shapes.input;
        let [f0, _, _, f_c] = shapes.filter;
        let [on, _, _, oc] = shapes.output;
        if f0 != 1 {
            return Err(KernelError::Shape(
                "depthwise filter must be [1, kh, kw, out_c]",
            ));
        }
        if n != on || f_c != oc || in_c.checked_mul(self.depth_multiplier) != Some(oc) {
            return Err(KernelError::Shape(
                "depthwise output channels must be input channels * depth multiplier",
            ));
        }
        if bias_len.is_some_and(|b| b != oc) || multipliers_len != oc {
            return Err(KernelError::Shape(
                "bias and multipliers must have one entry per output channel",
            ));
        }
        Ok(())
    }
}

/// DEPTHWISE_CONV_2D int8 per-channel eval (any depth multiplier, dilation, padding).
pub fn depthwise_conv2d_i8(
    p: &DepthwiseParams,
    shapes: &ConvShapes,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    multipliers: &[QuantizedMultiplier],
    output: &mut [i8],
) -> Result<()> {
    p.check(shapes, bias.map(<[i32]>::len), multipliers.len())?;
    let [batches, in_h, in_w, in_c] = shapes.input;
    let [_, f_h, f_w, out_c] = shapes.filter;
    let [_, out_h, out_w, _] = shapes.output;
    check_lengths(shapes, input, filter, bias, multipliers, output, out_c)?;
    let out = OutputStage::new(p.output_zero_point, p.act_min, p.act_max);
    let dm = p.depth_multiplier;
    let input_offset = -p.input_zero_point;
    let (pad_h, pad_w) = (p.pad_height as isize, p.pad_width as isize);
    let mut out_iter = output.iter_mut();
    for b in 0..batches {
        for oy in 0..out_h {
            let in_y_origin = (oy * p.stride_height) as isize - pad_h;
            for ox in 0..out_w {
                let in_x_origin = (ox * p.stride_width) as isize - pad_w;
                for ic in 0..in_c {
                    for m in 0..dm {
                        let oc = m + ic * dm;
                        let mut acc: i32 = 0;
                        for fy in 0..f_h {
                            let Some(in_y) = input_coord(in_y_origin, p.dilation_height, fy, in_h)
                            else {
                                continue;
                            };
                            for fx in 0..f_w {
                                let Some(in_x) =
                                    input_coord(in_x_origin, p.dilation_width, fx, in_w)
                                else {
                                    continue;
                                };
                                let xi = ((b * in_h + in_y) * in_w + in_x) * in_c + ic;
                                let wi = (fy * f_w + fx) * out_c + oc;
                                let (Some(&x), Some(&w)) = (input.get(xi), filter.get(wi)) else {
                                    return Err(KernelError::Shape("depthwise index out of range"));
                                };
                                acc =
                                    acc.wrapping_add(i32::from(w) * (i32::from(x) + input_offset));
                            }
                        }
                        let qm = multipliers.get(oc).copied().unwrap_or_default();
                        if let Some(o) = out_iter.next() {
                            *o = out.with_bias(acc, bias, oc, qm);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Activation, Padding, activation_range_i8, compute_padding_height_width};

    const UNIT: QuantizedMultiplier = QuantizedMultiplier {
        multiplier: 1 << 30,
        shift: 1,
    };

    fn params(pad: usize, stride: usize) -> ConvParams {
        ConvParams {
            stride_height: stride,
            stride_width: stride,
            dilation_height: 1,
            dilation_width: 1,
            pad_height: pad,
            pad_width: pad,
            input_zero_point: 0,
            output_zero_point: 0,
            act_min: -128,
            act_max: 127,
        }
    }

    #[test]
    fn conv_1x1_identity() {
        let shapes = ConvShapes {
            input: [1, 2, 2, 2],
            filter: [2, 1, 1, 2],
            output: [1, 2, 2, 2],
        };
        let input = [1i8, -2, 3, -4, 5, -6, 7, -8];
        let filter = [1i8, 0, 0, 1];
        let mut out = [0i8; 8];
        conv2d_i8(
            &params(0, 1),
            &shapes,
            &input,
            &filter,
            None,
            &[UNIT; 2],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn conv_3x3_same_with_zero_points_and_bias() {
        // 3x3 input of ones (zp -1 -> real 2), 3x3 filter of ones, SAME padding.
        let g = compute_padding_height_width(1, 1, 1, 1, 3, 3, 3, 3, Padding::Same).unwrap();
        let mut p = params(g.padding.height, 1);
        p.input_zero_point = -1;
        p.output_zero_point = 10;
        let shapes = ConvShapes {
            input: [1, 3, 3, 1],
            filter: [1, 3, 3, 1],
            output: [1, 3, 3, 1],
        };
        let input = [1i8; 9];
        let filter = [1i8; 9];
        let mut out = [0i8; 9];
        conv2d_i8(&p, &shapes, &input, &filter, Some(&[1]), &[UNIT], &mut out).unwrap();
        // corner: 4 taps * 2 + 1 = 9, edge: 6*2+1 = 13, centre 9*2+1 = 19; + zp 10
        assert_eq!(out, [19, 23, 19, 23, 29, 23, 19, 23, 19]);
    }

    #[test]
    fn conv_saturates_and_uses_activation() {
        let shapes = ConvShapes {
            input: [1, 1, 1, 1],
            filter: [2, 1, 1, 1],
            output: [1, 1, 1, 2],
        };
        let mut p = params(0, 1);
        p.output_zero_point = -128;
        let (lo, hi) = activation_range_i8(Activation::Relu6, 0.05, -128).unwrap();
        p.act_min = lo;
        p.act_max = hi;
        let mut out = [0i8; 2];
        conv2d_i8(
            &p,
            &shapes,
            &[127],
            &[127, -127],
            None,
            &[UNIT; 2],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [-8, -128]); // 6/0.05 = 120 -> -8 clamp; negative -> -128
    }

    #[test]
    fn grouped_conv() {
        // 2 groups, in_c 4, filter depth 2, out_c 2: each output sums its own group's channels.
        let shapes = ConvShapes {
            input: [1, 1, 1, 4],
            filter: [2, 1, 1, 2],
            output: [1, 1, 1, 2],
        };
        let mut out = [0i8; 2];
        conv2d_i8(
            &params(0, 1),
            &shapes,
            &[1, 2, 3, 4],
            &[1, 1, 1, 1],
            None,
            &[UNIT; 2],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [3, 7]);
    }

    #[test]
    fn conv_rejects_bad_lengths() {
        let shapes = ConvShapes {
            input: [1, 2, 2, 2],
            filter: [2, 1, 1, 2],
            output: [1, 2, 2, 2],
        };
        let mut out = [0i8; 7];
        assert!(
            conv2d_i8(
                &params(0, 1),
                &shapes,
                &[0; 8],
                &[0; 4],
                None,
                &[UNIT; 2],
                &mut out
            )
            .is_err()
        );
        let mut out = [0i8; 8];
        assert!(
            conv2d_i8(
                &params(0, 1),
                &shapes,
                &[0; 8],
                &[0; 4],
                None,
                &[UNIT; 1],
                &mut out
            )
            .is_err()
        );
        assert!(
            conv2d_i8(
                &params(0, 1),
                &shapes,
                &[0; 8],
                &[0; 4],
                Some(&[0; 3]),
                &[UNIT; 2],
                &mut out
            )
            .is_err()
        );
        assert!(
            conv2d_i8(
                &params(0, 0),
                &shapes,
                &[0; 8],
                &[0; 4],
                None,
                &[UNIT; 2],
                &mut out
            )
            .is_err()
        );
    }

    #[test]
    fn populate_params() {
        let mut out = [QuantizedMultiplier::default(); 2];
        populate_conv_quantization(0.5, &[0.25, 0.5], 0.125, &mut out).unwrap();
        assert_eq!(
            out[0],
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(
            out[1],
            QuantizedMultiplier {
                multiplier: 1 << 30,
                shift: 2
            }
        );
        populate_conv_quantization(0.5, &[0.25], 0.125, &mut out).unwrap();
        assert_eq!(out[1], out[0]);
        assert!(populate_conv_quantization(0.5, &[0.25; 3], 0.125, &mut out).is_err());
    }

    #[test]
    fn depthwise_multiplier_2_dilation() {
        // in 1x3x3x1, dm 2, 2x2 filter dilated by 2 -> VALID out 1x1x1x2
        let p = DepthwiseParams {
            stride_height: 1,
            stride_width: 1,
            dilation_height: 2,
            dilation_width: 2,
            pad_height: 0,
            pad_width: 0,
            depth_multiplier: 2,
            input_zero_point: 0,
            output_zero_point: 0,
            act_min: -128,
            act_max: 127,
        };
        let shapes = ConvShapes {
            input: [1, 3, 3, 1],
            filter: [1, 2, 2, 2],
            output: [1, 1, 1, 2],
        };
        let input = [1i8, 2, 3, 4, 5, 6, 7, 8, 9];
        // filter [1,2,2,2]: channel 0 = ones, channel 1 = (1, -1, 0, 2)
        let filter = [1i8, 1, 1, -1, 1, 0, 1, 2];
        let mut out = [0i8; 2];
        depthwise_conv2d_i8(
            &p,
            &shapes,
            &input,
            &filter,
            Some(&[0, 100]),
            &[UNIT; 2],
            &mut out,
        )
        .unwrap();
        // taps at (0,0)=1,(0,2)=3,(2,0)=7,(2,2)=9
        assert_eq!(out, [20, 1 - 3 + 18 + 100]);
        let bad = ConvShapes {
            input: [1, 3, 3, 1],
            filter: [1, 2, 2, 3],
            output: [1, 1, 1, 3],
        };
        assert!(p.check(&bad, None, 3).is_err());
    }
}
