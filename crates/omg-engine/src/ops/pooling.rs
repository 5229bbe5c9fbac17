//! AVERAGE_POOL_2D and MAX_POOL_2D, int8.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use omg_kernels::fast::{self, Isa};
use omg_kernels::pooling::{self, PoolParams};
use omg_kernels::quant::{activation_range_i8, compute_padding_height_width};

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::model::DType;
use crate::ops::{BoxedKernel, Kernel, OpCtx, activation, kernel_err, padding, shape4};

/// Schema field ids of the options table both pooling operators read.
mod field {
    /// `Pool2DOptions`.
    pub mod pool_2d {
        /// `padding`.
        pub const PADDING: usize = 0;
        /// `stride_w`.
        pub const STRIDE_W: usize = 1;
        /// `stride_h`.
        pub const STRIDE_H: usize = 2;
        /// `filter_width`.
        pub const FILTER_W: usize = 3;
        /// `filter_height`.
        pub const FILTER_H: usize = 4;
        /// `fused_activation_function`.
        pub const ACTIVATION: usize = 5;
    }
}

/// Which reduction a pooling operator applies.
#[derive(Clone, Copy)]
pub(crate) enum Reduce {
    Average,
    Max,
}

struct Pool {
    input: Slot,
    output: Slot,
    shapes: ([usize; 4], [usize; 4]),
    params: PoolParams,
    reduce: Reduce,
    /// Level and accumulator row of the optimized kernel; `None` runs the reference kernel.
    fast: Option<(Isa, Vec<i32>)>,
}

/// Prepares AVERAGE_POOL_2D or MAX_POOL_2D.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>, reduce: Reduce) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, 1, 1)?;
    let o = ctx.options()?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    ctx.expect_type("input", input, &[DType::I8])?;
    ctx.expect_type("output", output, &[DType::I8])?;
    let (in_shape, out_shape) = (shape4(ctx, "input", input)?, shape4(ctx, "output", output)?);
    let (in_scale, in_zp) = ctx.quant("input", input)?;
    let (out_scale, out_zp) = ctx.quant("output", output)?;
    pooling::check_pool_quantization(in_scale, in_zp, out_scale, out_zp)
        .map_err(|e| kernel_err(ctx, e))?;
    let dim = |id: usize, what: &str| -> Result<usize> {
        let v = o.get(id, 0i32)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| ctx.err(format!("{what} is {v}, must be at least 1")))
    };
    let (sh, sw) = (
        dim(field::pool_2d::STRIDE_H, "stride height")?,
        dim(field::pool_2d::STRIDE_W, "stride width")?,
    );
    let (fh, fw) = (
        dim(field::pool_2d::FILTER_H, "filter height")?,
        dim(field::pool_2d::FILTER_W, "filter width")?,
    );
    let g = compute_padding_height_width(
        sh,
        sw,
        1,
        1,
        in_shape[1],
        in_shape[2],
        fh,
        fw,
        padding(ctx, o.get(field::pool_2d::PADDING, 0i8)?)?,
    )
    .map_err(|e| kernel_err(ctx, e))?;
    if out_shape != [in_shape[0], g.out_height, g.out_width, in_shape[3]] {
        return Err(ctx.err(format!(
            "output shape {:?} does not match the computed pooling output",
            output.shape
        )));
    }
    let (act_min, act_max) = activation_range_i8(
        activation(ctx, o.get(field::pool_2d::ACTIVATION, 0i8)?)?,
        out_scale,
        out_zp,
    )
    .map_err(|e| kernel_err(ctx, e))?;
    let params = PoolParams {
        stride_height: sh,
        stride_width: sw,
        filter_height: fh,
        filter_width: fw,
        pad_height: g.padding.height,
        pad_width: g.padding.width,
        act_min,
        act_max,
    };
    params
        .check(in_shape, out_shape)
        .map_err(|e| kernel_err(ctx, e))?;
    Ok(Box::new(Pool {
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
        shapes: (in_shape, out_shape),
        params,
        reduce,
        fast: match ctx.isa() {
            Some(isa) => Some((
                isa,
                crate::memory::filled(
                    fast::pool_scratch_len(in_shape),
                    0,
                    "kernel scratch memory",
                )?,
            )),
            None => None,
        },
    }))
}

impl Kernel for Pool {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let input = io.typed::<i8>(&self.input)?;
        let (i, o) = self.shapes;
        let (p, out) = (&self.params, io.out()?);
        match (self.reduce, &mut self.fast) {
            (Reduce::Average, Some((isa, s))) => {
                fast::average_pool_i8(*isa, p, i, o, input, out, s)?
            }
            (Reduce::Max, Some((isa, s))) => fast::max_pool_i8(*isa, p, i, o, input, out, s)?,
            (Reduce::Average, None) => pooling::average_pool(p, i, o, input, out)?,
            (Reduce::Max, None) => pooling::max_pool(p, i, o, input, out)?,
        }
        Ok(())
    }
}
