//! AVERAGE_POOL_2D and MAX_POOL_2D for int8/int16 (TFLM `reference_integer_ops::AveragePool`
//! and `MaxPool`).

use crate::shape::count4;
use crate::{KernelError, Result};

/// Parameters of a quantized pooling operator (TFLM `PoolParams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Vertical stride (>= 1).
    pub stride_height: usize,
    /// Horizontal stride (>= 1).
    pub stride_width: usize,
    /// Window height (>= 1).
    pub filter_height: usize,
    /// Window width (>= 1).
    pub filter_width: usize,
    /// Leading (top) padding from [`crate::quant::compute_padding_height_width`] (dilation 1).
    pub pad_height: usize,
    /// Leading (left) padding.
    pub pad_width: usize,
    /// Lower clamp from the fused activation.
    pub act_min: i32,
    /// Upper clamp.
    pub act_max: i32,
}

/// Quantized element of a pooling tensor.
pub trait PoolElement: Copy + Ord {
    /// Smallest value (initial maximum).
    const LOWEST: Self;
    /// Widening conversion.
    fn to_i32(self) -> i32;
    /// Narrowing conversion of a clamped value.
    fn from_i32(v: i32) -> Self;
}

impl PoolElement for i8 {
    const LOWEST: Self = i8::MIN;
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl PoolElement for i16 {
    const LOWEST: Self = i16::MIN;
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
    fn from_i32(v: i32) -> Self {
        v as i16
    }
}

/// TFLM pooling prepare check: input and output must share the quantization
/// (`|scale_in - scale_out| <= 1e-6` in double, equal zero points).
pub fn check_pool_quantization(
    input_scale: f32,
    input_zero_point: i32,
    output_scale: f32,
    output_zero_point: i32,
) -> Result<()> {
    if !((f64::from(input_scale) - f64::from(output_scale)).abs() <= 1.0e-6)
        || input_zero_point != output_zero_point
    {
        return Err(KernelError::Unsupported(
            "pooling input and output quantization must match",
        ));
    }
    Ok(())
}

impl PoolParams {
    /// Prepare-time validation of NHWC shapes `input` and `output`.
    pub fn check(&self, input: [usize; 4], output: [usize; 4]) -> Result<()> {
        if self.stride_height == 0
            || self.stride_width == 0
            || self.filter_height == 0
            || self.filter_width == 0
        {
            return Err(KernelError::Param("pool stride and filter must be >= 1"));
        }
        if self.act_min > self.act_max {
            return Err(KernelError::Param("activation min > max"));
        }
        if input[0] != output[0] || input[3] != output[3] {
            return Err(KernelError::Shape("pool batch and depth must match"));
        }
        Ok(())
    }

    pub(crate) fn window(
        &self,
        oy: usize,
        ox: usize,
        in_h: usize,
        in_w: usize,
    ) -> (usize, usize, usize, usize) {
        // clamp the window to the image (TFLM filter_{x,y}_{start,end})
        let y0 = (oy * self.stride_height) as isize - self.pad_height as isize;
        let x0 = (ox * self.stride_width) as isize - self.pad_width as isize;
        let ys = y0.max(0);
        let ye = (y0 + self.filter_height as isize).min(in_h as isize);
        let xs = x0.max(0);
        let xe = (x0 + self.filter_width as isize).min(in_w as isize);
        (
            ys as usize,
            ye.max(ys) as usize,
            xs as usize,
            xe.max(xs) as usize,
        )
    }
}

fn pool<T: PoolElement>(
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[T],
    output: &mut [T],
    mut reduce: impl FnMut(&mut dyn Iterator<Item = T>) -> Option<T>,
) -> Result<()> {
    p.check(input_shape, output_shape)?;
    if input.len() != count4(input_shape) || output.len() != count4(output_shape) {
        return Err(KernelError::Shape(
            "pool slice length does not match its shape",
        ));
    }
    let [batches, in_h, in_w, depth] = input_shape;
    let [_, out_h, out_w, _] = output_shape;
    let mut out_iter = output.iter_mut();
    for b in 0..batches {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let (ys, ye, xs, xe) = p.window(oy, ox, in_h, in_w);
                for c in 0..depth {
                    let mut values = (ys..ye)
                        .flat_map(|y| {
                            (xs..xe).map(move |x| ((b * in_h + y) * in_w + x) * depth + c)
                        })
                        .filter_map(|i| input.get(i).copied());
                    let Some(v) = reduce(&mut values) else {
                        return Err(KernelError::Shape(
                            "pooling window does not overlap the input",
                        ));
                    };
                    if let Some(o) = out_iter.next() {
                        *o = v;
                    }
                }
            }
        }
    }
    Ok(())
}

/// AVERAGE_POOL_2D eval: sum over the window clipped to the image, divided by the number of
/// valid taps with rounding half away from zero (C integer division), then clamped.
/// An empty window is an error (TFLM's kernel reports failure too).
pub fn average_pool<T: PoolElement>(
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[T],
    output: &mut [T],
) -> Result<()> {
    pool(p, input_shape, output_shape, input, output, |vals| {
        let mut acc: i32 = 0;
        let mut count: i32 = 0;
        for v in vals {
            acc = acc.wrapping_add(v.to_i32());
            count += 1;
        }
        if count == 0 {
            return None;
        }
        let avg = if acc > 0 {
            (acc + count / 2) / count
        } else {
            (acc - count / 2) / count
        };
        Some(T::from_i32(avg.clamp(p.act_min, p.act_max)))
    })
}

/// MAX_POOL_2D eval: maximum over the window clipped to the image (the lowest value for an
/// empty window, like TFLM), then clamped to the activation range.
pub fn max_pool<T: PoolElement>(
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[T],
    output: &mut [T],
) -> Result<()> {
    pool(p, input_shape, output_shape, input, output, |vals| {
        let m = vals.fold(T::LOWEST, |a, b| a.max(b));
        Some(T::from_i32(m.to_i32().clamp(p.act_min, p.act_max)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: usize, s: usize, pad: usize) -> PoolParams {
        PoolParams {
            stride_height: s,
            stride_width: s,
            filter_height: f,
            filter_width: f,
            pad_height: pad,
            pad_width: pad,
            act_min: -128,
            act_max: 127,
        }
    }

    type Pool = fn(&PoolParams, [usize; 4], [usize; 4], &[i8], &mut [i8]) -> Result<()>;

    /// `pool` over one 2x2 single-channel image, with a square output of `N` (1 or 4) pixels.
    fn on_2x2<const N: usize>(pool: Pool, p: &PoolParams, input: [i8; 4]) -> [i8; N] {
        let side = if N == 1 { 1 } else { 2 };
        let mut out = [0i8; N];
        pool(p, [1, 2, 2, 1], [1, side, side, 1], &input, &mut out).unwrap();
        out
    }

    #[test]
    fn average_rounds_half_away_from_zero() {
        let avg = |input| on_2x2::<1>(average_pool, &params(2, 2, 0), input)[0];
        assert_eq!(avg([1, 2, 2, 2]), 2); // 7/4 = 1.75 -> 2
        assert_eq!(avg([1, 1, 1, 3]), 2); // 6/4 = 1.5 -> 2
        assert_eq!(avg([-1, -1, -1, -3]), -2); // -1.5 -> -2
        assert_eq!(avg([-1, -1, -1, -2]), -1); // -1.25 -> -1
        assert_eq!(avg([-128; 4]), -128);
    }

    #[test]
    fn padded_windows_count_valid_taps_only() {
        // 3x3 SAME pool on 2x2 image, stride 1, pad 1 (total pad 2? out 2 -> total (1)*1+3-2 = 2 -> pad 1)
        let input = [10i8, 20, 30, 40];
        assert_eq!(on_2x2(average_pool, &params(3, 1, 1), input), [25; 4]);
        assert_eq!(on_2x2(max_pool, &params(3, 1, 1), input), [40; 4]);
    }

    #[test]
    fn max_pool_channels_and_activation() {
        let mut p = params(2, 2, 0);
        p.act_max = 5;
        let input = [1i8, -1, 9, -2, 3, -3, 4, -4]; // 2x2x2
        let mut out = [0i8; 2];
        max_pool(&p, [1, 2, 2, 2], [1, 1, 1, 2], &input, &mut out).unwrap();
        assert_eq!(out, [5, -1]);
        let mut bad = [0i8; 3];
        assert!(max_pool(&p, [1, 2, 2, 2], [1, 1, 1, 2], &input, &mut bad).is_err());
        assert!(check_pool_quantization(0.5, 1, 0.5, 1).is_ok());
        assert!(check_pool_quantization(0.5, 1, 0.5, 2).is_err());
    }
}
