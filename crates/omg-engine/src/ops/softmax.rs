//! SOFTMAX with int8 input and int8 or int16 output.

use alloc::boxed::Box;

use omg_kernels::softmax::{self, SoftmaxOutput, SoftmaxParams};

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::model::DType;
use crate::ops::{BoxedKernel, Kernel, OpCtx, kernel_err};

/// Schema field ids of the options table SOFTMAX reads.
mod field {
    /// `SoftmaxOptions`.
    pub mod softmax {
        /// `beta`.
        pub const BETA: usize = 0;
    }
}

struct Softmax {
    input: Slot,
    output: Slot,
    depth: usize,
    params: SoftmaxParams,
}

/// Prepares SOFTMAX.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, 1, 1)?;
    let beta = ctx.options()?.get(field::softmax::BETA, 0f32)?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    ctx.expect_type("input", input, &[DType::I8])?;
    let out_type = match ctx.expect_type("output", output, &[DType::I8, DType::I16])? {
        DType::I8 => SoftmaxOutput::Int8,
        _ => SoftmaxOutput::Int16,
    };
    if input.shape != output.shape {
        return Err(ctx.err("input and output shapes differ"));
    }
    let depth = *input
        .shape
        .last()
        .ok_or_else(|| ctx.err("input is a scalar"))?;
    if depth == 0 {
        return Err(ctx.err("last dimension is 0"));
    }
    let (in_scale, _) = ctx.quant("input", input)?;
    let (out_scale, out_zp) = ctx.quant("output", output)?;
    if !beta.is_finite() || beta <= 0.0 {
        return Err(ctx.err(alloc::format!(
            "beta {beta} is not a positive finite number"
        )));
    }
    let params = SoftmaxParams::prepare(beta, in_scale, out_type, out_scale, out_zp)
        .map_err(|e| kernel_err(ctx, e))?;
    Ok(Box::new(Softmax {
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
        depth,
        params,
    }))
}

impl Kernel for Softmax {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let input = io.typed::<i8>(&self.input)?;
        match self.params.output {
            SoftmaxOutput::Int8 => {
                softmax::softmax_i8(&self.params, self.depth, input, io.out::<i8>()?)?
            }
            SoftmaxOutput::Int16 => {
                softmax::softmax_i8(&self.params, self.depth, input, io.out::<i16>()?)?
            }
        }
        Ok(())
    }
}
