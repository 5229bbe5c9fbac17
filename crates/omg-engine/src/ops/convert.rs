//! Type conversions: CAST, QUANTIZE and DEQUANTIZE.

use alloc::boxed::Box;

use omg_kernels::cast::cast;
use omg_kernels::quantize::{self, RequantizeParams};

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::model::DType;
use crate::ops::{BoxedKernel, Kernel, OpCtx, kernel_err};

/// Element types CAST converts between.
const CAST_TYPES: [DType; 6] = [
    DType::I8,
    DType::I16,
    DType::I32,
    DType::U32,
    DType::U64,
    DType::F32,
];

struct Cast {
    types: (DType, DType),
    input: Slot,
    output: Slot,
}

/// Prepares CAST.
pub(crate) fn prepare_cast<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, 1, 1)?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    let from = ctx.expect_type("input", input, &CAST_TYPES)?;
    let to = ctx.expect_type("output", output, &CAST_TYPES)?;
    if input.elements() != output.elements() {
        return Err(ctx.err("input and output have different element counts"));
    }
    Ok(Box::new(Cast {
        types: (from, to),
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
    }))
}

/// `with_type!` over the element types CAST converts between.
macro_rules! with_cast_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        with_type!($dtype, $t => $body; DType::I8 => i8, DType::I16 => i16, DType::I32 => i32, DType::U32 => u32, DType::U64 => u64, _ => f32)
    };
}

/// `with_type!` over the quantized integer types.
macro_rules! with_quant_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        with_type!($dtype, $t => $body; DType::I8 => i8, DType::I16 => i16, _ => u8)
    };
}

impl Kernel for Cast {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let bytes = io.input(&self.input)?;
        with_cast_type!(self.types.0, A => with_cast_type!(self.types.1, B => {
            cast::<A, B>(crate::exec::cast(bytes)?, io.out::<B>()?)
        }));
        Ok(())
    }
}

enum Conversion {
    Quantize {
        scale: f32,
        zero_point: i32,
        to: DType,
    },
    Requantize {
        params: RequantizeParams,
        from: DType,
        to: DType,
    },
    Dequantize {
        scale: f32,
        zero_point: i32,
        from: DType,
    },
}

struct Convert {
    conversion: Conversion,
    input: Slot,
    output: Slot,
}

const QUANTIZED: [DType; 3] = [DType::I8, DType::I16, DType::U8];

/// Prepares QUANTIZE (float32 to int8/int16, or requantization between integer types).
pub(crate) fn prepare_quantize<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, 1, 1)?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    let to = ctx.expect_type("output", output, &[DType::I8, DType::I16])?;
    let (out_scale, out_zp) = ctx.quant("output", output)?;
    let conversion = match ctx.expect_type("input", input, &[DType::F32, DType::I8, DType::I16])? {
        DType::F32 => Conversion::Quantize {
            scale: out_scale,
            zero_point: out_zp,
            to,
        },
        from => {
            let (in_scale, in_zp) = ctx.quant("input", input)?;
            let params = RequantizeParams::prepare(in_scale, in_zp, out_scale, out_zp)
                .map_err(|e| kernel_err(ctx, e))?;
            Conversion::Requantize { params, from, to }
        }
    };
    convert(ctx, input.elements() == output.elements(), conversion)
}

/// Prepares DEQUANTIZE (int8/int16/uint8 to float32).
pub(crate) fn prepare_dequantize<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(1, 1, 1)?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    let from = ctx.expect_type("input", input, &QUANTIZED)?;
    ctx.expect_type("output", output, &[DType::F32])?;
    let (scale, zero_point) = ctx.quant("input", input)?;
    convert(
        ctx,
        input.elements() == output.elements(),
        Conversion::Dequantize {
            scale,
            zero_point,
            from,
        },
    )
}

fn convert<'m>(
    ctx: &OpCtx<'_, 'm>,
    same_count: bool,
    conversion: Conversion,
) -> Result<BoxedKernel<'m>> {
    if !same_count {
        return Err(ctx.err("input and output have different element counts"));
    }
    Ok(Box::new(Convert {
        conversion,
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
    }))
}

impl Kernel for Convert {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let bytes = io.input(&self.input)?;
        match &self.conversion {
            Conversion::Quantize {
                scale,
                zero_point,
                to,
            } => with_quant_type!(to, T => {
                quantize::quantize_f32::<T>(*scale, *zero_point, crate::exec::cast(bytes)?, io.out()?)
            }),
            Conversion::Requantize { params, from, to } => {
                with_quant_type!(from, A => with_quant_type!(to, B => {
                    quantize::requantize::<A, B>(params, crate::exec::cast(bytes)?, io.out()?)
                }))
            }
            Conversion::Dequantize {
                scale,
                zero_point,
                from,
            } => with_quant_type!(from, T => {
                quantize::dequantize::<T>(*scale, *zero_point, crate::exec::cast(bytes)?, io.out()?)
            }),
        }
        Ok(())
    }
}
