//! STRIDED_SLICE (TFLM `strided_slice.cc` + `reference_ops::StridedSlice`): a prepare-time plan
//! and a copy kernel generic over the element type.
//!
//! TFLM builds its parameters with `ellipsis_mask = 0` and `new_axis_mask = 0` whatever the model
//! says, and accepts at most 4 dimensions. This crate accepts up to 5 (the reference kernel's
//! limit), ignores the two masks the same way and reports that in
//! [`StridedSlicePlan::ignored_masks`].

use crate::{KernelError, Result};

/// Maximum rank handled.
pub const MAX_DIMS: usize = 5;

/// STRIDED_SLICE attributes and index tensors (one entry per input dimension).
#[derive(Debug, Clone, Copy)]
pub struct StridedSliceParams<'a> {
    /// `begin` tensor values.
    pub begin: &'a [i32],
    /// `end` tensor values.
    pub end: &'a [i32],
    /// `strides` tensor values (non-zero).
    pub strides: &'a [i32],
    /// Bit i: ignore `begin[i]` (start from the first element in stride direction).
    pub begin_mask: i32,
    /// Bit i: ignore `end[i]`.
    pub end_mask: i32,
    /// Bit i: take a single element at `begin[i]` and drop the axis.
    pub shrink_axis_mask: i32,
    /// Ignored (as in TFLM).
    pub ellipsis_mask: i32,
    /// Ignored (as in TFLM).
    pub new_axis_mask: i32,
}

/// A validated slicing plan (input padded at the front to 5 dimensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StridedSlicePlan {
    input_dims: [usize; MAX_DIMS],
    start: [i64; MAX_DIMS],
    stop: [i64; MAX_DIMS],
    stride: [i64; MAX_DIMS],
    output_shape: [usize; MAX_DIMS],
    output_rank: usize,
    output_len: usize,
    input_len: usize,
    /// True if the model set `ellipsis_mask` or `new_axis_mask`, which TFLM (and this plan)
    /// ignore.
    pub ignored_masks: bool,
}

fn clamp(v: i64, lo: i64, hi: i64) -> i64 {
    if hi < v {
        hi
    } else if v < lo {
        lo
    } else {
        v
    }
}

/// An index counted from the end when negative, clamped to the positions a walk in the
/// direction of `stride` can start or stop at: `0..=size` forwards, `-1..=size - 1` backwards.
fn wrap_and_clamp(v: i64, size: i64, stride: i64) -> i64 {
    let v = if v < 0 { v + size } else { v };
    if stride > 0 {
        clamp(v, 0, size)
    } else {
        clamp(v, -1, size - 1)
    }
}

/// Number of indices `start, start + stride, ...` before `stop` (0 if none).
fn axis_count(start: i64, stop: i64, stride: i64) -> i64 {
    if stride > 0 {
        if stop > start {
            (stop - start + stride - 1) / stride
        } else {
            0
        }
    } else if start > stop {
        (start - stop + (-stride) - 1) / (-stride)
    } else {
        0
    }
}

impl StridedSlicePlan {
    /// Validates the parameters against `input_shape` and computes the output shape exactly as
    /// TFLM's prepare (`StartForAxis` / `StopForAxis`, `ceil((stop - start) / stride)`, shrunk
    /// axes removed) and the iteration bounds of its eval (`StridedSliceStartForAxis` /
    /// `StridedSliceEndForAxis`). The two must agree on the element count.
    pub fn new(input_shape: &[usize], p: &StridedSliceParams<'_>) -> Result<Self> {
        let rank = input_shape.len();
        if rank == 0 || rank > MAX_DIMS {
            return Err(KernelError::Unsupported(
                "strided slice supports 1 to 5 dimensions",
            ));
        }
        if p.begin.len() != rank || p.end.len() != rank || p.strides.len() != rank {
            return Err(KernelError::Shape(
                "begin, end and strides must have one entry per input dimension",
            ));
        }
        if p.strides.contains(&0) {
            return Err(KernelError::Param("stride value has to be non-zero"));
        }
        if input_shape.iter().any(|&d| d > i32::MAX as usize) {
            return Err(KernelError::Shape("dimension too large"));
        }
        let pad = MAX_DIMS - rank;
        let mut input_dims = [1usize; MAX_DIMS];
        input_dims[pad..].copy_from_slice(input_shape);
        let mut out = StridedSlicePlan {
            input_dims,
            start: [0; MAX_DIMS],
            stop: [1; MAX_DIMS],
            stride: [1; MAX_DIMS],
            output_shape: [0; MAX_DIMS],
            output_rank: 0,
            output_len: 1,
            input_len: input_shape.iter().product(),
            ignored_masks: p.ellipsis_mask != 0 || p.new_axis_mask != 0,
        };
        let mut prepare_len: i64 = 1;
        for (axis, &dim) in input_shape.iter().enumerate() {
            let size = dim as i64;
            let stride = i64::from(p.strides[axis]);
            let begin_bit = p.begin_mask & (1 << axis) != 0;
            let end_bit = p.end_mask & (1 << axis) != 0;
            let shrink = p.shrink_axis_mask & (1 << axis) != 0;

            // --- prepare (StartForAxis / StopForAxis) -> output shape
            let (ps, pe) = if size == 0 {
                (0, 0)
            } else {
                let begin = match (begin_bit, stride > 0) {
                    (false, _) => p.begin[axis],
                    (true, true) => i32::MIN,
                    (true, false) => i32::MAX,
                };
                let s = wrap_and_clamp(i64::from(begin), size, stride);
                let e = if shrink {
                    s + 1
                } else {
                    let end = match (end_bit, stride > 0) {
                        (false, _) => p.end[axis],
                        (true, true) => i32::MAX,
                        (true, false) => i32::MIN,
                    };
                    wrap_and_clamp(i64::from(end), size, stride)
                };
                (s, e)
            };
            let pe = if shrink { ps + 1 } else { pe };
            // ceil((end - begin) / (float)stride), clamped at 0
            let dim = axis_count(ps, pe, stride);
            if !shrink {
                out.output_shape[out.output_rank] = dim as usize;
                out.output_rank += 1;
            }
            prepare_len *= dim;

            // --- eval (StridedSliceStartForAxis / StridedSliceEndForAxis)
            let mut s = wrap_and_clamp(i64::from(p.begin[axis]), size, stride);
            if begin_bit {
                s = if stride > 0 { 0 } else { size - 1 };
            }
            let e = if shrink {
                if s >= size { s } else { s + 1 }
            } else {
                let mut e = wrap_and_clamp(i64::from(p.end[axis]), size, stride);
                if end_bit {
                    e = if stride > 0 { size } else { -1 };
                }
                e
            };
            out.start[pad + axis] = s;
            out.stop[pad + axis] = e;
            out.stride[pad + axis] = stride;
            out.output_len = out
                .output_len
                .saturating_mul(axis_count(s, e, stride) as usize);
        }
        if prepare_len < 0 || prepare_len as usize != out.output_len {
            return Err(KernelError::Shape(
                "strided slice: output shape and iteration count disagree",
            ));
        }
        Ok(out)
    }

    /// Output shape (shrunk axes removed).
    pub fn output_shape(&self) -> &[usize] {
        &self.output_shape[..self.output_rank]
    }

    /// Number of output elements.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// Copies the selected elements of `input` to `output` in row-major order.
    /// Returns an error (possibly after a partial copy) if a slice length does not match.
    pub fn eval<T: Copy>(&self, input: &[T], output: &mut [T]) -> Result<()> {
        if input.len() != self.input_len || output.len() != self.output_len {
            return Err(KernelError::Shape(
                "strided slice: slice lengths do not match the plan",
            ));
        }
        let d = self.input_dims.map(|v| v as i64);
        let lc = |i: i64, stop: i64, stride: i64| if stride < 0 { i > stop } else { i < stop };
        let (s, e, st) = (self.start, self.stop, self.stride);
        let oob = KernelError::Shape("strided slice index out of range");
        // The innermost axis is copied as a run of `n4` values (a plain copy when contiguous).
        let n4 = usize::try_from(axis_count(s[4], e[4], st[4])).map_err(|_| oob)?;
        let mut at = 0;
        let mut i0 = s[0];
        while lc(i0, e[0], st[0]) {
            let mut i1 = s[1];
            while lc(i1, e[1], st[1]) {
                let mut i2 = s[2];
                while lc(i2, e[2], st[2]) {
                    let mut i3 = s[3];
                    while lc(i3, e[3], st[3]) {
                        let base = (((i0 * d[1] + i1) * d[2] + i2) * d[3] + i3) * d[4] + s[4];
                        let dst = output.get_mut(at..at + n4).ok_or(oob)?;
                        at += n4;
                        let first = usize::try_from(base).ok();
                        match first.and_then(|f| input.get(f..f + n4)) {
                            Some(run) if st[4] == 1 => dst.copy_from_slice(run),
                            _ => {
                                for (j, o) in dst.iter_mut().enumerate() {
                                    let i = usize::try_from(base + j as i64 * st[4]).ok();
                                    *o = *i.and_then(|i| input.get(i)).ok_or(oob)?;
                                }
                            }
                        }
                        i3 += st[3];
                    }
                    i2 += st[2];
                }
                i1 += st[1];
            }
            i0 += st[0];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(begin: &'a [i32], end: &'a [i32], strides: &'a [i32]) -> StridedSliceParams<'a> {
        StridedSliceParams {
            begin,
            end,
            strides,
            begin_mask: 0,
            end_mask: 0,
            shrink_axis_mask: 0,
            ellipsis_mask: 0,
            new_axis_mask: 0,
        }
    }

    fn run(
        shape: &[usize],
        p: &StridedSliceParams<'_>,
        input: &[i32],
    ) -> (usize, [i32; 16], usize) {
        let plan = StridedSlicePlan::new(shape, p).unwrap();
        let mut out = [0i32; 16];
        let n = plan.output_len();
        plan.eval(input, &mut out[..n]).unwrap();
        (n, out, plan.output_shape().len())
    }

    #[test]
    fn basic_1d() {
        let input = [1, 2, 3, 4];
        let (n, out, _) = run(&[4], &params(&[1], &[3], &[1]), &input);
        assert_eq!(&out[..n], &[2, 3]);
        let (n, out, _) = run(&[4], &params(&[-3], &[3], &[1]), &input);
        assert_eq!(&out[..n], &[2, 3]);
        let (n, out, _) = run(&[4], &params(&[-1], &[-4], &[-1]), &input);
        assert_eq!(&out[..n], &[4, 3, 2]);
        let (n, out, _) = run(&[4], &params(&[0], &[4], &[2]), &input);
        assert_eq!(&out[..n], &[1, 3]);
        let mut p = params(&[3], &[0], &[-1]);
        p.end_mask = 1;
        let (n, out, _) = run(&[4], &p, &input);
        assert_eq!(&out[..n], &[4, 3, 2, 1]);
        let mut p = params(&[-2], &[0], &[1]);
        p.shrink_axis_mask = 1;
        let (n, out, rank) = run(&[4], &p, &input);
        assert_eq!((&out[..n], rank), (&[3][..], 0));
        let (n, _, _) = run(&[4], &params(&[3], &[1], &[1]), &input);
        assert_eq!(n, 0);
    }

    #[test]
    fn multi_dim_masks() {
        // 2x3x2 input, take [:, 1:, ::-1]
        let input: [i32; 12] = core::array::from_fn(|i| i as i32);
        let mut p = params(&[0, 1, -1], &[0, 3, 0], &[1, 1, -1]);
        p.begin_mask = 0b001;
        p.end_mask = 0b101;
        let plan = StridedSlicePlan::new(&[2, 3, 2], &p).unwrap();
        assert_eq!(plan.output_shape(), &[2, 2, 2]);
        let mut out = [0i32; 8];
        plan.eval(&input, &mut out).unwrap();
        assert_eq!(out, [3, 2, 5, 4, 9, 8, 11, 10]);
        // shrink the middle axis
        let mut p = params(&[0, 2, 0], &[2, 3, 2], &[1, 1, 1]);
        p.shrink_axis_mask = 0b010;
        let plan = StridedSlicePlan::new(&[2, 3, 2], &p).unwrap();
        assert_eq!(plan.output_shape(), &[2, 2]);
        let mut out = [0i32; 4];
        plan.eval(&input, &mut out).unwrap();
        assert_eq!(out, [4, 5, 10, 11]);
    }

    #[test]
    fn rejects() {
        assert!(StridedSlicePlan::new(&[4], &params(&[0], &[4], &[0])).is_err());
        assert!(StridedSlicePlan::new(&[4, 4], &params(&[0], &[4], &[1])).is_err());
        assert!(
            StridedSlicePlan::new(&[1, 1, 1, 1, 1, 1], &params(&[0; 6], &[1; 6], &[1; 6])).is_err()
        );
        let plan = StridedSlicePlan::new(&[4], &params(&[0], &[4], &[1])).unwrap();
        let mut out = [0i32; 3];
        assert!(plan.eval(&[1, 2, 3, 4], &mut out).is_err());
        let mut p = params(&[0], &[4], &[1]);
        p.new_axis_mask = 1;
        assert!(StridedSlicePlan::new(&[4], &p).unwrap().ignored_masks);
    }
}
