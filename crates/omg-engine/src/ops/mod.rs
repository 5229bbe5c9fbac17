//! The operators: each one's prepare step (checks, precomputation) and its kernel. `registry`
//! holds one entry per builtin operator (code, name, versions, options type, prepare step).
//!
//! Prepare runs once when the interpreter is built. It validates the operator's tensors and options
//! against what the kernel supports and returns a [`Kernel`] holding everything Eval needs, so that
//! Eval neither validates nor allocates.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::exec::{Memory, Slot};
use crate::flatbuf::{Scalar, Table};
use crate::memory::filled;
use crate::model::{DType, Operator, Tensor};
use crate::schema::options;
use omg_kernels::KernelError;
use omg_kernels::QuantizedMultiplier;
use omg_kernels::fast::{Isa, Scratch, ScratchLen, WeightPlan};
use omg_kernels::quant::{Activation, Padding};

/// Runs `$body` with the type alias `$t` bound by the first arm whose pattern matches `$value`;
/// the arms map a [`DType`] (or an element width) to the Rust type a generic kernel runs on.
macro_rules! with_type {
    ($value:expr, $t:ident => $body:expr; $($pat:pat => $ty:ty),+ $(,)?) => {
        match $value {
            $($pat => {
                type $t = $ty;
                $body
            })+
        }
    };
}

mod conv;
mod convert;
mod elementwise;
mod fully_connected;
mod pooling;
mod registry;
mod reshape;
mod signal;
mod slicing;
mod softmax;

pub(crate) use registry::{builtin_name, prepare};

/// A prepared operator, ready to run.
pub(crate) trait Kernel {
    /// Computes the operator's outputs from its inputs.
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()>;
    /// Clears any state kept across invocations.
    fn reset(&mut self) {}
}

/// A boxed prepared operator borrowing constants from the model bytes; `Send`, so that an
/// interpreter can move to another thread (the Python module's objects, the C API's handles).
pub(crate) type BoxedKernel<'m> = Box<dyn Kernel + Send + 'm>;

/// Which implementation of the kernels an interpreter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelSet {
    /// TFLM's reference loops, kept simple as the oracle for the optimized ones.
    Reference,
    /// Faster kernels computing the same bytes, at the fastest instruction-set level this CPU
    /// supports (the default).
    #[default]
    Optimized,
    /// The optimized kernels at one instruction-set level (for tests and benchmarks that
    /// compare levels); loading fails if this CPU cannot run it.
    Level(Isa),
}

impl KernelSet {
    /// The instruction-set level of the optimized kernels this set runs (for
    /// [`KernelSet::Optimized`], the fastest this CPU supports), or `None` for the reference
    /// kernels.
    pub fn isa(self) -> Option<Isa> {
        match self {
            KernelSet::Reference => None,
            KernelSet::Optimized => Some(Isa::detect()),
            KernelSet::Level(isa) => Some(isa),
        }
    }

    /// The reference kernels and the optimized ones at every level this CPU supports, the
    /// oracle first.
    pub fn all_supported() -> impl Iterator<Item = KernelSet> {
        core::iter::once(KernelSet::Reference).chain(Isa::supported().map(KernelSet::Level))
    }
}

impl core::str::FromStr for KernelSet {
    type Err = Error;

    /// Parses a kernel choice as the command line and the C API name it: `auto` (the
    /// optimized kernels at the fastest level this CPU supports), `reference`, or one level
    /// (`portable`, `avx2`, `avxvnni`, `avx512vnni`, `neon`, `dotprod`; whether this CPU runs
    /// it is checked when a model loads).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(KernelSet::Optimized),
            "reference" => Ok(KernelSet::Reference),
            _ => Isa::from_name(s).map(KernelSet::Level).ok_or_else(|| {
                let levels = Isa::ALL.map(Isa::name).join(", ");
                Error::Usage(format!("{s:?} is not one of auto, reference, {levels}"))
            }),
        }
    }
}

impl core::fmt::Display for KernelSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.isa() {
            None => f.write_str("reference"),
            Some(isa) => write!(f, "optimized ({})", isa.name()),
        }
    }
}

/// Everything prepare may look at for one operator.
pub(crate) struct OpCtx<'a, 'm> {
    /// Which kernels to prepare.
    pub kernels: KernelSet,
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
}

impl<'a, 'm> OpCtx<'a, 'm> {
    /// The instruction-set level of the optimized kernels (the fastest this CPU supports), or
    /// `None` when the reference kernels run.
    pub(crate) fn isa(&self) -> Option<Isa> {
        self.kernels.isa()
    }

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

    /// The builtin options, which must be of the `BuiltinOptions` union type the operator's
    /// registry entry names (or absent).
    pub(crate) fn options(&self) -> Result<Options<'m>> {
        let ty = registry::registration(self.op.code).map_or(options::NONE, |r| r.options);
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

/// An operator error from a kernel's parameter check.
pub(crate) fn kernel_err(ctx: &OpCtx<'_, '_>, e: KernelError) -> Error {
    ctx.err(format!("{e}"))
}

/// Scratch memory owned by an optimized kernel, sized at prepare time.
pub(crate) struct ScratchBuffers {
    i8: Vec<i8>,
    i16: Vec<i16>,
    i32: Vec<i32>,
    usize: Vec<usize>,
}

impl ScratchBuffers {
    /// Buffers of `len` elements.
    pub(crate) fn new(len: ScratchLen) -> Result<Self> {
        const WHAT: &str = "kernel scratch memory";
        Ok(ScratchBuffers {
            i8: filled(len.i8, 0, WHAT)?,
            i16: filled(len.i16, 0, WHAT)?,
            i32: filled(len.i32, 0, WHAT)?,
            usize: filled(len.usize, 0, WHAT)?,
        })
    }

    /// The buffers, for one eval call.
    pub(crate) fn get(&mut self) -> Scratch<'_> {
        Scratch {
            i8: &mut self.i8,
            i16: &mut self.i16,
            i32: &mut self.i32,
            usize: &mut self.usize,
        }
    }
}

/// What an optimized weight kernel (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) keeps from
/// prepare: its plan, the instruction-set level, the weights in the plan's layout (the model's
/// own bytes when no repacking is needed), the per-channel data and the scratch memory.
pub(crate) struct Prepared<'m, P> {
    plan: P,
    isa: Isa,
    weights: Cow<'m, [i8]>,
    channels: Vec<i32>,
    scratch: ScratchBuffers,
}

impl<'m, P: WeightPlan> Prepared<'m, P> {
    /// Lays out `filter` for `plan` (borrowing it when the plan uses it as is) and computes
    /// the per-channel data from `bias` and the output `multipliers` (one per channel or one).
    pub(crate) fn new(
        ctx: &OpCtx<'_, 'm>,
        plan: P,
        isa: Isa,
        filter: &'m [i8],
        bias: Option<&[i32]>,
        multipliers: &[QuantizedMultiplier],
    ) -> Result<Self> {
        let weights = match plan.packed_len(isa) {
            0 => Cow::Borrowed(filter),
            len => {
                let mut packed = filled(len, 0, "repacked weights")?;
                plan.pack(isa, filter, &mut packed)
                    .map_err(|e| kernel_err(ctx, e))?;
                Cow::Owned(packed)
            }
        };
        let mut channels = filled(plan.channels_len(), 0, "per-channel parameters")?;
        plan.prepare_channels(filter, bias, multipliers, &mut channels)
            .map_err(|e| kernel_err(ctx, e))?;
        let scratch = ScratchBuffers::new(plan.scratch_len(isa))?;
        Ok(Prepared {
            plan,
            isa,
            weights,
            channels,
            scratch,
        })
    }

    /// Runs the layer on `input` into `output`.
    pub(crate) fn eval(&mut self, input: &[i8], output: &mut [i8]) -> Result<()> {
        let Prepared {
            plan,
            isa,
            weights,
            channels,
            scratch,
        } = self;
        plan.eval(*isa, input, weights, channels, output, scratch.get())?;
        Ok(())
    }
}

/// The fused activation of an operator.
pub(crate) fn activation(ctx: &OpCtx<'_, '_>, code: i8) -> Result<Activation> {
    Activation::from_tflite(i32::from(code)).map_err(|e| kernel_err(ctx, e))
}

/// The padding scheme of a window operator.
pub(crate) fn padding(ctx: &OpCtx<'_, '_>, code: i8) -> Result<Padding> {
    match code {
        0 => Ok(Padding::Same),
        1 => Ok(Padding::Valid),
        other => Err(ctx.err(format!("unknown padding scheme {other}"))),
    }
}

/// The shape of a rank-4 (NHWC) tensor.
pub(crate) fn shape4(ctx: &OpCtx<'_, '_>, what: &str, t: &Tensor<'_>) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(t.shape.as_slice()).map_err(|_| {
        ctx.err(format!(
            "{what} has shape {:?}, expected 4 dimensions",
            t.shape
        ))
    })
}

/// Constant int8 weights of input `k`, read in place from the model bytes.
pub(crate) fn weights_i8<'m>(ctx: &OpCtx<'_, 'm>, k: usize) -> Result<&'m [i8]> {
    let t = ctx.input(k)?;
    match t.data {
        Some(d) if t.dtype == DType::I8 => Ok(bytemuck::cast_slice(d)),
        _ => Err(ctx.err(format!("input {k} must be constant int8 weights"))),
    }
}
