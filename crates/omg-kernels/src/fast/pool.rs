//! AVERAGE_POOL_2D and MAX_POOL_2D, channels vectorized.

use super::Isa;
use crate::pooling::PoolParams;
use crate::shape::count4;
use crate::simd::{Job, Kernels, dispatch};
use crate::{KernelError, Result};

/// Scratch elements (`i32`) of [`average_pool_i8`] and [`max_pool_i8`]: one per channel.
pub fn pool_scratch_len(input_shape: [usize; 4]) -> usize {
    input_shape[3]
}

/// A pooling layer, channels vectorized.
pub(super) struct PoolJob<'a> {
    p: &'a PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &'a [i8],
    output: &'a mut [i8],
    acc: &'a mut [i32],
    average: bool,
}

impl Job for PoolJob<'_> {
    type Output = Result<()>;

    #[inline(always)]
    fn run<K: Kernels>(self, _: K) -> Result<()> {
        let PoolJob {
            p,
            input_shape,
            output_shape,
            input,
            output,
            acc,
            average,
        } = self;
        let oob = KernelError::Shape("pool index out of range");
        let [batches, in_h, in_w, depth] = input_shape;
        let [_, out_h, out_w, _] = output_shape;
        let acc = acc.get_mut(..depth).ok_or(oob)?;
        let mut out = output.chunks_exact_mut(depth.max(1));
        for b in 0..batches {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let (ys, ye, xs, xe) = p.window(oy, ox, in_h, in_w);
                    let count = (ye - ys) * (xe - xs);
                    if average && count == 0 {
                        return Err(KernelError::Shape(
                            "pooling window does not overlap the input",
                        ));
                    }
                    acc.fill(if average { 0 } else { i32::from(i8::MIN) });
                    for y in (ys..ye).filter(|_| count > 0) {
                        let start = ((b * in_h + y) * in_w + xs) * depth;
                        let rows = input.get(start..start + (xe - xs) * depth).ok_or(oob)?;
                        for row in rows.chunks_exact(depth.max(1)) {
                            for (a, &x) in acc.iter_mut().zip(row) {
                                *a = if average {
                                    a.wrapping_add(i32::from(x))
                                } else {
                                    (*a).max(i32::from(x))
                                };
                            }
                        }
                    }
                    let Some(o) = out.next() else {
                        return Ok(());
                    };
                    let count = count as i32;
                    for (o, &a) in o.iter_mut().zip(acc.iter()) {
                        let v = if !average {
                            a
                        } else if a > 0 {
                            a.wrapping_add(count / 2) / count
                        } else {
                            a.wrapping_sub(count / 2) / count
                        };
                        *o = v.clamp(p.act_min, p.act_max) as i8;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks and runs a pooling layer.
pub(super) fn pool(
    isa: Isa,
    p: &PoolParams,
    shapes: ([usize; 4], [usize; 4]),
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i32],
    average: bool,
) -> Result<()> {
    let (input_shape, output_shape) = shapes;
    p.check(input_shape, output_shape)?;
    if input.len() != count4(input_shape) || output.len() != count4(output_shape) {
        return Err(KernelError::Shape(
            "pool slice length does not match its shape",
        ));
    }
    let job = PoolJob {
        p,
        input_shape,
        output_shape,
        input,
        output,
        acc: scratch,
        average,
    };
    dispatch(isa, job)?
}

/// AVERAGE_POOL_2D int8 eval, bit-exact with [`crate::pooling::average_pool`] (same errors).
/// `scratch` holds at least [`pool_scratch_len`] elements.
pub fn average_pool_i8(
    isa: Isa,
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i32],
) -> Result<()> {
    let shapes = (input_shape, output_shape);
    pool(isa, p, shapes, input, output, scratch, true)
}

/// MAX_POOL_2D int8 eval, bit-exact with [`crate::pooling::max_pool`]. `scratch` holds at
/// least [`pool_scratch_len`] elements.
pub fn max_pool_i8(
    isa: Isa,
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i32],
) -> Result<()> {
    let shapes = (input_shape, output_shape);
    pool(isa, p, shapes, input, output, scratch, false)
}
