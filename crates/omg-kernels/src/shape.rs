//! Shape helpers: element counts, NHWC offsets and TFLM-style broadcasting (up to 6 dimensions),
//! plus the copy kernels RESHAPE and CONCATENATION.

use crate::{KernelError, Result};

/// Maximum rank handled by broadcasting kernels (TFLM's `BroadcastAdd6DSlow`).
pub const MAX_BROADCAST_DIMS: usize = 6;

/// Number of elements of a shape (1 for a scalar), or an error on overflow.
pub fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(KernelError::Shape("element count overflows usize"))
}

/// Element count of an NHWC shape, saturating (used by cheap eval-time checks).
pub(crate) fn count4(s: [usize; 4]) -> usize {
    s.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

/// Broadcast plan for a binary elementwise operator, as TFLM's
/// `NdArrayDescsForElementwiseBroadcast` over shapes right-aligned and extended to 6 dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broadcast {
    /// Output extents (6D, leading ones for lower ranks).
    pub out_dims: [usize; MAX_BROADCAST_DIMS],
    /// Element strides of input 1 per output dimension (0 where input 1 is broadcast).
    pub strides1: [usize; MAX_BROADCAST_DIMS],
    /// Element strides of input 2 per output dimension.
    pub strides2: [usize; MAX_BROADCAST_DIMS],
    /// Elements of input 1.
    pub len1: usize,
    /// Elements of input 2.
    pub len2: usize,
    /// Elements of the output.
    pub out_len: usize,
    /// True when both input shapes are identical (plain elementwise loop).
    pub same_shape: bool,
}

fn extend(shape: &[usize]) -> Result<[usize; MAX_BROADCAST_DIMS]> {
    if shape.len() > MAX_BROADCAST_DIMS {
        return Err(KernelError::Unsupported(
            "broadcast of more than 6 dimensions",
        ));
    }
    let mut out = [1usize; MAX_BROADCAST_DIMS];
    out[MAX_BROADCAST_DIMS - shape.len()..].copy_from_slice(shape);
    Ok(out)
}

fn strides(dims: &[usize; MAX_BROADCAST_DIMS]) -> [usize; MAX_BROADCAST_DIMS] {
    let mut s = [0usize; MAX_BROADCAST_DIMS];
    let mut acc = 1usize;
    for i in (0..MAX_BROADCAST_DIMS).rev() {
        s[i] = acc;
        acc = acc.saturating_mul(dims[i]);
    }
    s
}

impl Broadcast {
    /// Plans `op(input1, input2)`. Each dimension pair must be equal or one of them 1.
    pub fn new(shape1: &[usize], shape2: &[usize]) -> Result<Self> {
        let d1 = extend(shape1)?;
        let d2 = extend(shape2)?;
        let mut out_dims = [1usize; MAX_BROADCAST_DIMS];
        let mut strides1 = strides(&d1);
        let mut strides2 = strides(&d2);
        for i in 0..MAX_BROADCAST_DIMS {
            out_dims[i] = if d1[i] == d2[i] {
                d1[i]
            } else if d1[i] == 1 {
                strides1[i] = 0;
                d2[i]
            } else if d2[i] == 1 {
                strides2[i] = 0;
                d1[i]
            } else {
                return Err(KernelError::Shape(
                    "input shapes are not broadcast-compatible",
                ));
            };
        }
        Ok(Broadcast {
            out_dims,
            strides1,
            strides2,
            len1: element_count(shape1)?,
            len2: element_count(shape2)?,
            out_len: element_count(&out_dims)?,
            same_shape: shape1 == shape2,
        })
    }

    /// Output shape (right-aligned, with the rank of the larger input).
    pub fn output_shape(&self, rank: usize) -> &[usize] {
        &self.out_dims[MAX_BROADCAST_DIMS - rank.min(MAX_BROADCAST_DIMS)..]
    }

    /// Checks that `output_shape` is the broadcast result (element-wise).
    pub fn check_output(&self, output_shape: &[usize]) -> Result<()> {
        if extend(output_shape)? != self.out_dims {
            return Err(KernelError::Shape(
                "output shape is not the broadcast of the input shapes",
            ));
        }
        Ok(())
    }

    /// Checks slice lengths against the plan.
    pub fn check_lengths(&self, len1: usize, len2: usize, out_len: usize) -> Result<()> {
        if len1 != self.len1 || len2 != self.len2 || out_len != self.out_len {
            return Err(KernelError::Shape(
                "slice lengths do not match the broadcast shapes",
            ));
        }
        Ok(())
    }

    /// Applies `f` to every output element in row-major order, handing it the two input values.
    /// Returns an error (writing nothing) if the slice lengths do not match the plan.
    pub fn apply<A: Copy, B: Copy, O>(
        &self,
        input1: &[A],
        input2: &[B],
        output: &mut [O],
        mut f: impl FnMut(A, B) -> O,
    ) -> Result<()> {
        self.check_lengths(input1.len(), input2.len(), output.len())?;
        match (self.same_shape, input1, input2) {
            (true, _, _) => {
                for ((o, &a), &b) in output.iter_mut().zip(input1).zip(input2) {
                    *o = f(a, b);
                }
                return Ok(());
            }
            // One operand is a single value (a scalar or a tensor of ones) and the other has
            // the output's length: a plain loop.
            (false, &[a], _) if input2.len() == output.len() => {
                for (o, &b) in output.iter_mut().zip(input2) {
                    *o = f(a, b);
                }
                return Ok(());
            }
            (false, _, &[b]) if input1.len() == output.len() => {
                for (o, &a) in output.iter_mut().zip(input1) {
                    *o = f(a, b);
                }
                return Ok(());
            }
            _ => {}
        }
        let d = self.out_dims;
        let (s1, s2) = (self.strides1, self.strides2);
        let mut out_iter = output.iter_mut();
        let mut i1 = [0usize; MAX_BROADCAST_DIMS];
        let mut i2 = [0usize; MAX_BROADCAST_DIMS];
        for a in 0..d[0] {
            i1[0] = a * s1[0];
            i2[0] = a * s2[0];
            for b in 0..d[1] {
                i1[1] = i1[0] + b * s1[1];
                i2[1] = i2[0] + b * s2[1];
                for c in 0..d[2] {
                    i1[2] = i1[1] + c * s1[2];
                    i2[2] = i2[1] + c * s2[2];
                    for e in 0..d[3] {
                        i1[3] = i1[2] + e * s1[3];
                        i2[3] = i2[2] + e * s2[3];
                        for g in 0..d[4] {
                            i1[4] = i1[3] + g * s1[4];
                            i2[4] = i2[3] + g * s2[4];
                            for h in 0..d[5] {
                                let (Some(&x), Some(&y), Some(o)) = (
                                    input1.get(i1[4] + h * s1[5]),
                                    input2.get(i2[4] + h * s2[5]),
                                    out_iter.next(),
                                ) else {
                                    return Err(KernelError::Shape("broadcast index out of range"));
                                };
                                *o = f(x, y);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// RESHAPE: validates that both shapes have the same number of elements.
pub fn reshape_check(input_shape: &[usize], output_shape: &[usize]) -> Result<()> {
    if element_count(input_shape)? != element_count(output_shape)? {
        return Err(KernelError::Shape("reshape changes the number of elements"));
    }
    Ok(())
}

/// RESHAPE eval: a plain copy (copies the common prefix if the lengths differ).
pub fn reshape<T: Copy>(input: &[T], output: &mut [T]) {
    let n = input.len().min(output.len());
    output[..n].copy_from_slice(&input[..n]);
}

/// One input of [`concatenation`].
#[derive(Debug, Clone, Copy)]
pub struct ConcatInput<'a, T> {
    /// Shape of this input.
    pub shape: &'a [usize],
    /// Its elements, row-major.
    pub data: &'a [T],
}

/// Maximum number of CONCATENATION inputs TFLM accepts.
pub const MAX_CONCAT_INPUTS: usize = 10;

/// CONCATENATION prepare: resolves a negative `axis` (against the output rank, like TFLM) and
/// checks that every input matches the output outside `axis` and that the axis sizes add up.
/// TFLM additionally requires a NONE activation, at most 10 inputs and rank <= 6; checked here.
pub fn concatenation_check(
    input_shapes: &[&[usize]],
    axis: i32,
    output_shape: &[usize],
) -> Result<usize> {
    let rank = output_shape.len();
    if input_shapes.is_empty() || input_shapes.len() > MAX_CONCAT_INPUTS {
        return Err(KernelError::Unsupported(
            "concatenation needs 1..=10 inputs",
        ));
    }
    if rank == 0 || rank > 6 {
        return Err(KernelError::Unsupported("concatenation rank must be 1..=6"));
    }
    let axis_pos = if axis < 0 { axis + rank as i32 } else { axis };
    if axis_pos < 0 || axis_pos as usize >= rank {
        return Err(KernelError::Param("concatenation axis out of range"));
    }
    let axis_pos = axis_pos as usize;
    let mut axis_sum = 0usize;
    for s in input_shapes {
        if s.len() != rank {
            return Err(KernelError::Shape(
                "concatenation inputs must have the output rank",
            ));
        }
        for (i, (&a, &b)) in s.iter().zip(output_shape).enumerate() {
            if i != axis_pos && a != b {
                return Err(KernelError::Shape(
                    "concatenation inputs differ outside the axis",
                ));
            }
        }
        axis_sum = axis_sum.saturating_add(s[axis_pos]);
    }
    if axis_sum != output_shape[axis_pos] {
        return Err(KernelError::Shape(
            "concatenation axis sizes do not add up to the output",
        ));
    }
    Ok(axis_pos)
}

/// CONCATENATION eval (TFLM `reference_ops::Concatenation`, any element type; int8 is copied
/// without requantization, as TFLM does). `axis` is the non-negative axis from
/// [`concatenation_check`]. Returns an error if a slice is shorter than its shape says.
pub fn concatenation<T: Copy>(
    inputs: &[ConcatInput<'_, T>],
    axis: usize,
    output_shape: &[usize],
    output: &mut [T],
) -> Result<()> {
    if axis >= output_shape.len() {
        return Err(KernelError::Param("concatenation axis out of range"));
    }
    let outer: usize = element_count(&output_shape[..axis])?;
    let inner: usize = element_count(&output_shape[axis + 1..])?;
    if output.len() != element_count(output_shape)? {
        return Err(KernelError::Shape("concatenation output length mismatch"));
    }
    let mut out_pos = 0usize;
    for k in 0..outer {
        for input in inputs {
            let axis_size = input.shape.get(axis).copied().unwrap_or(0);
            let copy = axis_size.saturating_mul(inner);
            let src = input.data.get(k * copy..(k + 1) * copy);
            let dst = output.get_mut(out_pos..out_pos + copy);
            match (src, dst) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                _ => {
                    return Err(KernelError::Shape(
                        "concatenation slice shorter than its shape",
                    ));
                }
            }
            out_pos += copy;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_basic() {
        let b = Broadcast::new(&[2, 1, 3], &[4, 1]).unwrap();
        assert_eq!(b.output_shape(3), &[2, 4, 3]);
        let a: [i32; 6] = [1, 2, 3, 4, 5, 6];
        let c: [i32; 4] = [10, 20, 30, 40];
        let mut out = [0i32; 24];
        b.apply(&a, &c, &mut out, |x, y| x + y).unwrap();
        assert_eq!(&out[..6], &[11, 12, 13, 21, 22, 23]);
        assert_eq!(&out[12..15], &[14, 15, 16]);
        assert!(Broadcast::new(&[2, 3], &[3, 2]).is_err());
        let mut short = [0i32; 5];
        assert!(b.apply(&a, &c, &mut short, |x, y| x + y).is_err());
        // scalar broadcast
        let b = Broadcast::new(&[3], &[]).unwrap();
        let mut out = [0i32; 3];
        b.apply(&[1, 2, 3], &[5], &mut out, |x, y| x * y).unwrap();
        assert_eq!(out, [5, 10, 15]);
    }

    #[test]
    fn concat_and_reshape() {
        let a = [1, 2, 3, 4];
        let b = [5, 6];
        let shapes: [&[usize]; 2] = [&[2, 2], &[2, 1]];
        let axis = concatenation_check(&shapes, -1, &[2, 3]).unwrap();
        assert_eq!(axis, 1);
        let mut out = [0; 6];
        concatenation(
            &[
                ConcatInput {
                    shape: &[2, 2],
                    data: &a,
                },
                ConcatInput {
                    shape: &[2, 1],
                    data: &b,
                },
            ],
            axis,
            &[2, 3],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [1, 2, 5, 3, 4, 6]);
        assert!(concatenation_check(&shapes, 0, &[2, 3]).is_err());
        assert!(reshape_check(&[2, 3], &[6]).is_ok());
        assert!(reshape_check(&[2, 3], &[5]).is_err());
        let mut r = [0u8; 3];
        reshape(&[1u8, 2, 3], &mut r);
        assert_eq!(r, [1, 2, 3]);
    }
}
