//! ADD, SUB, MUL, DIV, MINIMUM and MAXIMUM with broadcasting: quantized int8 (ADD, MUL), int32
//! and float32.

use alloc::boxed::Box;
use alloc::format;

use omg_kernels::elementwise::{self as ew, AddParams, BinaryOp, MulParams, TensorQuant};
use omg_kernels::fast::{self, Isa};
use omg_kernels::quant::{activation_range_f32, activation_range_i8, activation_range_i32};
use omg_kernels::shape::Broadcast;

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::model::DType;
use crate::ops::{BoxedKernel, Kernel, OpCtx, activation, kernel_err};

/// Schema field ids of the options tables these operators read.
mod field {
    /// `AddOptions`, `SubOptions`, `MulOptions` and `DivOptions`, which begin alike
    /// (`MaximumMinimumOptions` has no fields).
    pub mod arithmetic {
        /// `fused_activation_function`.
        pub const ACTIVATION: usize = 0;
    }
}

enum Math {
    AddI8(AddParams),
    MulI8(MulParams),
    I32 { min: i32, max: i32 },
    F32 { min: f32, max: f32 },
}

struct Binary {
    op: BinaryOp,
    inputs: [Slot; 2],
    output: Slot,
    broadcast: Broadcast,
    math: Math,
    /// Level of the optimized same-shape int8 ADD; `None` runs the reference kernel.
    fast_add: Option<Isa>,
}

/// Prepares a binary elementwise operator.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>, op: BinaryOp) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(2, 2, 1)?;
    let opts = ctx.options()?;
    let act = match op {
        BinaryOp::Minimum | BinaryOp::Maximum => activation(ctx, 0)?,
        _ => activation(ctx, opts.get(field::arithmetic::ACTIVATION, 0i8)?)?,
    };
    let (a, b, out) = (ctx.input(0)?, ctx.input(1)?, ctx.output(0)?);
    if a.dtype != out.dtype || b.dtype != out.dtype {
        return Err(ctx.err(format!(
            "input types {} and {} differ from output type {}",
            a.dtype.name(),
            b.dtype.name(),
            out.dtype.name()
        )));
    }
    let broadcast = Broadcast::new(&a.shape, &b.shape).map_err(|e| kernel_err(ctx, e))?;
    broadcast
        .check_output(&out.shape)
        .map_err(|e| kernel_err(ctx, e))?;
    let math = match (out.dtype, op) {
        (DType::I8, BinaryOp::Add | BinaryOp::Mul) => {
            let q = |what: &str, t| {
                ctx.quant(what, t)
                    .map(|(scale, zero_point)| TensorQuant { scale, zero_point })
            };
            let (qa, qb, qo) = (q("input 1", a)?, q("input 2", b)?, q("output", out)?);
            let (min, max) = activation_range_i8(act, qo.scale, qo.zero_point)
                .map_err(|e| kernel_err(ctx, e))?;
            if op == BinaryOp::Add {
                Math::AddI8(
                    AddParams::prepare(qa, qb, qo, false, min, max)
                        .map_err(|e| kernel_err(ctx, e))?,
                )
            } else {
                Math::MulI8(
                    MulParams::prepare(qa, qb, qo, min, max).map_err(|e| kernel_err(ctx, e))?,
                )
            }
        }
        (DType::I32, _) => {
            // TFLM's int32 ADD and SUB ignore the fused activation.
            let (min, max) = match op {
                BinaryOp::Add | BinaryOp::Sub => (i32::MIN, i32::MAX),
                _ => activation_range_i32(act),
            };
            Math::I32 { min, max }
        }
        (DType::F32, _) => {
            let (min, max) = activation_range_f32(act);
            Math::F32 { min, max }
        }
        (t, _) => return Err(ctx.err(format!("type {} is not supported", t.name()))),
    };
    Ok(Box::new(Binary {
        op,
        inputs: [ctx.input_slot(0)?, ctx.input_slot(1)?],
        output: ctx.output_slot(0)?,
        fast_add: ctx
            .isa()
            .filter(|_| broadcast.same_shape && matches!(math, Math::AddI8(_))),
        broadcast,
        math,
    }))
}

impl Kernel for Binary {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let [a, b] = &self.inputs;
        let bc = &self.broadcast;
        match &self.math {
            Math::AddI8(p) => match self.fast_add {
                Some(isa) => fast::add_i8(isa, p, io.typed(a)?, io.typed(b)?, io.out()?)?,
                None => ew::add_quantized::<i8>(p, bc, io.typed(a)?, io.typed(b)?, io.out()?)?,
            },
            Math::MulI8(p) => {
                ew::mul_quantized::<i8>(p, bc, io.typed(a)?, io.typed(b)?, io.out()?)?
            }
            Math::I32 { min, max } => ew::binary_i32(
                self.op,
                *min,
                *max,
                bc,
                io.typed(a)?,
                io.typed(b)?,
                io.out()?,
            )?,
            Math::F32 { min, max } => ew::binary_f32(
                self.op,
                *min,
                *max,
                bc,
                io.typed(a)?,
                io.typed(b)?,
                io.out()?,
            )?,
        }
        Ok(())
    }
}
