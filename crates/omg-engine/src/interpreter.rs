//! The interpreter: a validated model, its planned arena and its prepared operators.

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::exec::{ConstData, Memory, Slot};
use crate::model::{Model, Tensor};
use crate::ops::{self, BoxedKernel, KernelSet, OpCtx};
use crate::planner;

/// Largest tensor arena the interpreter will allocate.
pub const MAX_ARENA_BYTES: usize = 1 << 28;

/// Runs one TFLite model.
///
/// Building it parses and validates the model, plans the arena and prepares every operator; after
/// that, [`invoke`](Self::invoke) only computes.
pub struct Interpreter<'m> {
    model: Model<'m>,
    kernels: Vec<BoxedKernel<'m>>,
    consts: Vec<ConstData<'m>>,
    slots: Vec<Option<Slot>>,
    arena: Vec<u64>,
    arena_size: usize,
}

impl<'m> Interpreter<'m> {
    /// Loads `bytes` as a `.tflite` model and prepares it to run with the optimized kernels.
    pub fn new(bytes: &'m [u8]) -> Result<Self> {
        Self::with_kernels(bytes, KernelSet::Optimized)
    }

    /// Loads `bytes` as a `.tflite` model and prepares it to run with the chosen kernels.
    pub fn with_kernels(bytes: &'m [u8], kernel_set: KernelSet) -> Result<Self> {
        if let KernelSet::Level(isa) = kernel_set
            && !isa.is_supported()
        {
            return Err(Error::Unsupported(format!(
                "this CPU cannot run the {} kernels",
                isa.name()
            )));
        }
        let model = Model::parse(bytes)?;
        let plan = planner::plan(&model);
        if plan.size > MAX_ARENA_BYTES {
            return Err(Error::Unsupported(format!(
                "the model needs a {} byte arena, more than the limit of {MAX_ARENA_BYTES}",
                plan.size
            )));
        }
        let mut consts = Vec::new();
        let slots: Vec<Option<Slot>> = model
            .tensors
            .iter()
            .zip(&plan.offsets)
            .map(|(t, off)| match (t.data, off) {
                (Some(data), _) => {
                    consts.push(ConstData::new(data, t.dtype.size()));
                    Some(Slot::Const(consts.len() - 1))
                }
                (None, Some(o)) => Some(Slot::Arena(*o..*o + t.bytes())),
                (None, None) => None,
            })
            .collect();
        let mut kernels = Vec::with_capacity(model.operators.len());
        for (index, op) in model.operators.iter().enumerate() {
            let ctx = OpCtx {
                kernels: kernel_set,
                index,
                op,
                tensors: &model.tensors,
                slots: &slots,
            };
            kernels.push(ops::prepare(&ctx)?);
        }
        let arena = crate::memory::filled(plan.size.div_ceil(8), 0u64, "tensor arena")?;
        Ok(Self {
            model,
            kernels,
            consts,
            slots,
            arena,
            arena_size: plan.size,
        })
    }

    /// The validated model.
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Bytes of the tensor arena (all non-constant tensors).
    pub fn arena_bytes(&self) -> usize {
        self.arena_size
    }

    /// Number of subgraph inputs.
    pub fn input_count(&self) -> usize {
        self.model.inputs.len()
    }

    /// Number of subgraph outputs.
    pub fn output_count(&self) -> usize {
        self.model.outputs.len()
    }

    /// Description of input `i`.
    pub fn input_tensor(&self, i: usize) -> Result<&Tensor<'m>> {
        let t = self
            .model
            .inputs
            .get(i)
            .ok_or_else(|| Error::Usage(format!("the model has no input {i}")))?;
        Ok(&self.model.tensors[*t])
    }

    /// Description of output `i`.
    pub fn output_tensor(&self, i: usize) -> Result<&Tensor<'m>> {
        let t = self
            .model
            .outputs
            .get(i)
            .ok_or_else(|| Error::Usage(format!("the model has no output {i}")))?;
        Ok(&self.model.tensors[*t])
    }

    fn range(&self, tensor: usize) -> core::ops::Range<usize> {
        match &self.slots[tensor] {
            Some(Slot::Arena(r)) => r.clone(),
            // Inputs and outputs are never constants (checked at parse time).
            _ => 0..0,
        }
    }

    /// The raw little-endian bytes of input `i`, to be filled before [`invoke`](Self::invoke).
    pub fn input_mut(&mut self, i: usize) -> Result<&mut [u8]> {
        let t = *self
            .model
            .inputs
            .get(i)
            .ok_or_else(|| Error::Usage(format!("the model has no input {i}")))?;
        let r = self.range(t);
        Ok(&mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.arena)[r])
    }

    /// Copies `data` into input `i`, which must have exactly the input's size.
    pub fn set_input(&mut self, i: usize, data: &[u8]) -> Result<()> {
        let t = self.input_tensor(i)?;
        let (want, shape, dtype) = (t.bytes(), t.shape.clone(), t.dtype);
        if data.len() != want {
            return Err(Error::Usage(format!(
                "input {i} needs {want} bytes ({} {shape:?}), got {}",
                dtype.name(),
                data.len()
            )));
        }
        self.input_mut(i)?.copy_from_slice(data);
        Ok(())
    }

    /// The raw little-endian bytes of output `i` after [`invoke`](Self::invoke).
    pub fn output(&self, i: usize) -> Result<&[u8]> {
        let t = *self
            .model
            .outputs
            .get(i)
            .ok_or_else(|| Error::Usage(format!("the model has no output {i}")))?;
        let r = self.range(t);
        Ok(&bytemuck::cast_slice::<u64, u8>(&self.arena)[r])
    }

    /// Runs every operator once, in order.
    pub fn invoke(&mut self) -> Result<()> {
        let arena = bytemuck::cast_slice_mut::<u64, u8>(&mut self.arena);
        let mut mem = Memory {
            arena,
            consts: &self.consts,
        };
        for (index, k) in self.kernels.iter_mut().enumerate() {
            k.eval(&mut mem).map_err(|e| match e {
                Error::Eval(reason) => Error::Operator {
                    index,
                    op: self.model.operators[index].code.name(),
                    reason,
                },
                e => e,
            })?;
        }
        Ok(())
    }

    /// Clears the state that stateful operators keep across invocations.
    pub fn reset(&mut self) {
        for k in &mut self.kernels {
            k.reset();
        }
    }
}
