//! The operator registry: each operator's prepare step (checks, precomputation) and its kernel.
//!
//! Prepare runs once when the interpreter is built. It validates the operator's tensors and options
//! against what the kernel supports and returns a [`Kernel`] holding everything Eval needs, so that
//! Eval neither validates nor allocates.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::exec::{Memory, Slot};
use crate::flatbuf::{Scalar, Table};
use crate::model::{DType, OpCode, Operator, Tensor};

mod reshape;

/// A prepared operator, ready to run.
pub(crate) trait Kernel {
    /// Computes the operator's outputs from its inputs.
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()>;
    /// Clears any state kept across invocations.
    fn reset(&mut self) {}
}

/// A boxed prepared operator borrowing constants from the model bytes.
pub(crate) type BoxedKernel<'m> = Box<dyn Kernel + 'm>;

/// Everything prepare may look at for one operator.
pub(crate) struct OpCtx<'a, 'm> {
    /// Position of the operator in execution order.
    pub index: usize,
    /// The operator.
    pub op: &'a Operator<'m>,
    /// All tensors of the model.
    pub tensors: &'a [Tensor<'m>],
    /// Where each tensor lives at run time (`None` for tensors without storage).
    pub slots: &'a [Option<Slot>],
}

/// Builtin options of one operator, with schema defaults for absent fields.
pub(crate) struct Options<'m>(Option<Table<'m>>);

impl Options<'_> {
    /// A scalar field by schema field id.
    pub(crate) fn get<T: Scalar>(&self, id: usize, default: T) -> Result<T> {
        self.0
            .as_ref()
            .map_or(Ok(default), |t| t.scalar(id, default))
    }

    /// A boolean field by schema field id.
    pub(crate) fn flag(&self, id: usize) -> Result<bool> {
        self.0.as_ref().map_or(Ok(false), |t| t.boolean(id, false))
    }

    /// A vector of `i32` by schema field id.
    pub(crate) fn ints(&self, id: usize) -> Result<Option<Vec<i32>>> {
        match &self.0 {
            None => Ok(None),
            Some(t) => Ok(t.vector::<i32>(id)?.map(|v| v.iter().collect())),
        }
    }
}

impl<'a, 'm> OpCtx<'a, 'm> {
    /// An error about this operator.
    pub(crate) fn err(&self, reason: impl Into<String>) -> Error {
        Error::Operator {
            index: self.index,
            op: self.op.code.name(),
            reason: reason.into(),
        }
    }

    /// Checks the number of inputs (`min..=max`) and outputs.
    pub(crate) fn expect_arity(&self, min_in: usize, max_in: usize, outs: usize) -> Result<()> {
        let n = self.op.inputs.len();
        if n < min_in || n > max_in {
            let want = if min_in == max_in {
                format!("{min_in}")
            } else {
                format!("{min_in} to {max_in}")
            };
            return Err(self.err(format!("has {n} inputs, expected {want}")));
        }
        if self.op.outputs.len() != outs {
            return Err(self.err(format!(
                "has {} outputs, expected {outs}",
                self.op.outputs.len()
            )));
        }
        Ok(())
    }

    /// Input `k`, which must be present.
    pub(crate) fn input(&self, k: usize) -> Result<&'a Tensor<'m>> {
        self.opt_input(k)
            .ok_or_else(|| self.err(format!("input {k} is missing")))
    }

    /// Input `k`, or `None` when omitted.
    pub(crate) fn opt_input(&self, k: usize) -> Option<&'a Tensor<'m>> {
        self.op
            .inputs
            .get(k)
            .copied()
            .flatten()
            .map(|i| &self.tensors[i])
    }

    /// Output `k`.
    pub(crate) fn output(&self, k: usize) -> Result<&'a Tensor<'m>> {
        self.op
            .outputs
            .get(k)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| self.err(format!("output {k} is missing")))
    }

    /// Where input `k` lives at run time.
    pub(crate) fn input_slot(&self, k: usize) -> Result<Slot> {
        let i = self
            .op
            .inputs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| self.err(format!("input {k} is missing")))?;
        self.slots[i]
            .clone()
            .ok_or_else(|| self.err(format!("input {k} has no storage")))
    }

    /// Where output `k` lives at run time (always the arena).
    pub(crate) fn output_slot(&self, k: usize) -> Result<Slot> {
        let i = *self
            .op
            .outputs
            .get(k)
            .ok_or_else(|| self.err(format!("output {k} is missing")))?;
        match &self.slots[i] {
            Some(s @ Slot::Arena(_)) => Ok(s.clone()),
            _ => Err(self.err(format!("output {k} has no arena storage"))),
        }
    }

    /// Checks that tensor `t` (named `what` in messages) has one of `types`.
    pub(crate) fn expect_type(&self, what: &str, t: &Tensor<'_>, types: &[DType]) -> Result<DType> {
        if types.contains(&t.dtype) {
            return Ok(t.dtype);
        }
        let want: Vec<&str> = types.iter().map(|d| d.name()).collect();
        Err(self.err(format!(
            "{what} has type {}, expected {}",
            t.dtype.name(),
            want.join(" or ")
        )))
    }

    /// The builtin options, which must be of schema union type `ty` (or absent).
    pub(crate) fn options(&self, ty: u8) -> Result<Options<'m>> {
        match (self.op.options_type, self.op.options) {
            (t, opts) if t == ty => Ok(Options(opts)),
            (0, None) => Ok(Options(None)),
            (t, _) => Err(self.err(format!(
                "has builtin options of type {t}, expected type {ty}"
            ))),
        }
    }

    /// Per-tensor quantization `(scale, zero_point)` of `t`, required.
    pub(crate) fn quant(&self, what: &str, t: &Tensor<'_>) -> Result<(f32, i32)> {
        match &t.quant {
            Some(q) if q.is_per_tensor() => Ok((q.scale[0], q.zero_point[0])),
            Some(_) => Err(self.err(format!("{what} must be quantized per tensor"))),
            None => Err(self.err(format!("{what} is not quantized"))),
        }
    }

    /// The constant data of input `k` decoded as `T` (copied; for small parameter tensors).
    pub(crate) fn const_values<T: Scalar>(&self, what: &str, k: usize) -> Result<Vec<T>> {
        let t = self.input(k)?;
        let data = t
            .data
            .ok_or_else(|| self.err(format!("{what} must be a constant")))?;
        if t.dtype.size() != T::SIZE {
            return Err(self.err(format!("{what} has type {}", t.dtype.name())));
        }
        Ok(data.chunks_exact(T::SIZE).map(T::decode).collect())
    }
}

/// Highest version of each builtin operator the kernels implement.
fn max_version(code: i32) -> Option<i32> {
    Some(match code {
        22 => 1, // RESHAPE
        _ => return None,
    })
}

/// Prepares one operator.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    match ctx.op.code {
        OpCode::Builtin(code) => {
            let max = max_version(code).ok_or_else(|| {
                Error::Unsupported(format!("operator {} ({})", ctx.index, ctx.op.code.name()))
            })?;
            if ctx.op.version < 1 || ctx.op.version > max {
                return Err(Error::Unsupported(format!(
                    "operator {} ({}) version {} (versions 1 to {max} are supported)",
                    ctx.index,
                    ctx.op.code.name(),
                    ctx.op.version
                )));
            }
            match code {
                22 => reshape::prepare(ctx),
                _ => unreachable_op(ctx),
            }
        }
        OpCode::Custom(_) => unreachable_op(ctx),
    }
}

fn unreachable_op<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    Err(Error::Unsupported(format!(
        "operator {} ({})",
        ctx.index,
        ctx.op.code.name()
    )))
}
