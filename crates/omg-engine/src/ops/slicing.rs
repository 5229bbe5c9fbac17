//! Data movement: STRIDED_SLICE and CONCATENATION (any element type).

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use omg_kernels::shape::{ConcatInput, MAX_CONCAT_INPUTS, concatenation, concatenation_check};
use omg_kernels::strided_slice::{StridedSliceParams, StridedSlicePlan};

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::ops::{BoxedKernel, Kernel, OpCtx, activation, kernel_err};
use omg_kernels::quant::Activation;

/// Schema field ids of the options tables these operators read.
mod field {
    /// `StridedSliceOptions`.
    pub mod strided_slice {
        /// `begin_mask`.
        pub const BEGIN_MASK: usize = 0;
        /// `end_mask`.
        pub const END_MASK: usize = 1;
        /// `ellipsis_mask`.
        pub const ELLIPSIS_MASK: usize = 2;
        /// `new_axis_mask`.
        pub const NEW_AXIS_MASK: usize = 3;
        /// `shrink_axis_mask`.
        pub const SHRINK_AXIS_MASK: usize = 4;
        /// `offset`.
        pub const OFFSET: usize = 5;
    }

    /// `ConcatenationOptions`.
    pub mod concatenation {
        /// `axis`.
        pub const AXIS: usize = 0;
        /// `fused_activation_function`.
        pub const ACTIVATION: usize = 1;
    }
}

/// `with_type!` over unsigned types by element width: data movement does not care what the
/// bits mean.
macro_rules! with_width {
    ($size:expr, $t:ident => $body:expr) => {
        with_type!($size, $t => $body; 1 => u8, 2 => u16, 4 => u32, _ => u64)
    };
}

struct StridedSlice {
    plan: StridedSlicePlan,
    width: usize,
    input: Slot,
    output: Slot,
}

/// Prepares STRIDED_SLICE (begin, end and strides must be constants).
pub(crate) fn prepare_strided_slice<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(4, 4, 1)?;
    let o = ctx.options()?;
    if o.flag(field::strided_slice::OFFSET)? {
        return Err(ctx.err("the offset form of STRIDED_SLICE is not supported"));
    }
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    if input.dtype != output.dtype {
        return Err(ctx.err("input and output types differ"));
    }
    let begin = ctx.const_values::<i32>("begin", 1)?;
    let end = ctx.const_values::<i32>("end", 2)?;
    let strides = ctx.const_values::<i32>("strides", 3)?;
    let params = StridedSliceParams {
        begin: &begin,
        end: &end,
        strides: &strides,
        begin_mask: o.get(field::strided_slice::BEGIN_MASK, 0i32)?,
        end_mask: o.get(field::strided_slice::END_MASK, 0i32)?,
        shrink_axis_mask: o.get(field::strided_slice::SHRINK_AXIS_MASK, 0i32)?,
        ellipsis_mask: o.get(field::strided_slice::ELLIPSIS_MASK, 0i32)?,
        new_axis_mask: o.get(field::strided_slice::NEW_AXIS_MASK, 0i32)?,
    };
    let plan = StridedSlicePlan::new(&input.shape, &params).map_err(|e| kernel_err(ctx, e))?;
    if plan.ignored_masks {
        return Err(ctx.err("ellipsis and new-axis masks are not supported"));
    }
    if plan.output_len() != output.elements() {
        return Err(ctx.err(format!(
            "output shape {:?} does not match the slice {:?}",
            output.shape,
            plan.output_shape()
        )));
    }
    Ok(Box::new(StridedSlice {
        plan,
        width: input.dtype.size(),
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
    }))
}

impl Kernel for StridedSlice {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let bytes = io.input(&self.input)?;
        with_width!(self.width, T => self.plan.eval::<T>(crate::exec::cast(bytes)?, io.out()?)?);
        Ok(())
    }
}

struct Concatenation {
    inputs: Vec<(Slot, Vec<usize>)>,
    output: Slot,
    output_shape: Vec<usize>,
    axis: usize,
    width: usize,
}

/// Prepares CONCATENATION.
pub(crate) fn prepare_concatenation<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, MAX_CONCAT_INPUTS, 1)?;
    let o = ctx.options()?;
    if activation(ctx, o.get(field::concatenation::ACTIVATION, 0i8)?)? != Activation::None {
        return Err(ctx.err("a fused activation is not supported"));
    }
    let output = ctx.output(0)?;
    let mut inputs = Vec::with_capacity(ctx.op.inputs.len());
    for k in 0..ctx.op.inputs.len() {
        let t = ctx.input(k)?;
        if t.dtype != output.dtype {
            return Err(ctx.err(format!(
                "input {k} has type {}, output has {}",
                t.dtype.name(),
                output.dtype.name()
            )));
        }
        if t.quant != output.quant {
            return Err(ctx.err(format!(
                "input {k} is quantized differently from the output"
            )));
        }
        inputs.push((ctx.input_slot(k)?, t.shape.clone()));
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|(_, s)| s.as_slice()).collect();
    let axis = concatenation_check(
        &shapes,
        o.get(field::concatenation::AXIS, 0i32)?,
        &output.shape,
    )
    .map_err(|e| kernel_err(ctx, e))?;
    Ok(Box::new(Concatenation {
        inputs,
        output: ctx.output_slot(0)?,
        output_shape: output.shape.clone(),
        axis,
        width: output.dtype.size(),
    }))
}

impl Kernel for Concatenation {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        with_width!(self.width, T => {
            let mut parts = [ConcatInput::<T> { shape: &[], data: &[] }; MAX_CONCAT_INPUTS];
            for (part, (slot, shape)) in parts.iter_mut().zip(&self.inputs) {
                *part = ConcatInput { shape, data: io.typed(slot)? };
            }
            concatenation(&parts[..self.inputs.len()], self.axis, &self.output_shape, io.out()?)?;
        });
        Ok(())
    }
}
