//! The interpreter handle's safe core: owned model bytes and the engine's interpreter over them.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::path::Path;

use omg_engine::{DType, KernelSet, Tensor};

use crate::error::Failure;

/// Element type of a tensor (TFLite's types that omg supports).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OmgType {
    /// IEEE 754 single precision.
    Float32 = 0,
    /// Signed 8-bit integer.
    Int8 = 1,
    /// Unsigned 8-bit integer.
    Uint8 = 2,
    /// Signed 16-bit integer.
    Int16 = 3,
    /// Unsigned 16-bit integer.
    Uint16 = 4,
    /// Signed 32-bit integer.
    Int32 = 5,
    /// Unsigned 32-bit integer.
    Uint32 = 6,
    /// Signed 64-bit integer.
    Int64 = 7,
    /// Unsigned 64-bit integer.
    Uint64 = 8,
    /// Boolean, one byte.
    Bool = 9,
}

impl From<DType> for OmgType {
    fn from(d: DType) -> Self {
        match d {
            DType::F32 => Self::Float32,
            DType::I8 => Self::Int8,
            DType::U8 => Self::Uint8,
            DType::I16 => Self::Int16,
            DType::U16 => Self::Uint16,
            DType::I32 => Self::Int32,
            DType::U32 => Self::Uint32,
            DType::I64 => Self::Int64,
            DType::U64 => Self::Uint64,
            DType::Bool => Self::Bool,
        }
    }
}

/// Most dimensions a tensor has (omg-engine's limit).
pub const OMG_MAX_RANK: usize = 6;

/// What one input or output tensor is, as the model declares it.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The tensor's name (may be empty).
    pub name: CString,
    /// Element type.
    pub dtype: OmgType,
    /// Dimensions (at most [`OMG_MAX_RANK`]).
    pub shape: Vec<usize>,
    /// Size in bytes.
    pub bytes: usize,
    /// Quantization: `None` if the tensor is not quantized, else the number of (scale, zero
    /// point) pairs and the first pair.
    pub quant: Option<(usize, f32, i32)>,
    /// Every scale (one per tensor, or one per slice along `quantized_dimension`; empty if the
    /// tensor is not quantized).
    pub scales: Vec<f32>,
    /// Every zero point, as many as `scales`.
    pub zero_points: Vec<i32>,
    /// The dimension per-channel parameters run along (0 if not quantized).
    pub quantized_dimension: usize,
}

impl TensorInfo {
    fn of(t: &Tensor<'_>) -> Self {
        Self {
            name: CString::new(t.name.replace('\0', "?")).unwrap_or_default(),
            dtype: t.dtype.into(),
            shape: t.shape.clone(),
            bytes: t.bytes(),
            quant: t
                .quant
                .as_ref()
                .and_then(|q| Some((q.scale.len(), *q.scale.first()?, *q.zero_point.first()?))),
            scales: t.quant.as_ref().map_or_else(Vec::new, |q| q.scale.clone()),
            zero_points: t
                .quant
                .as_ref()
                .map_or_else(Vec::new, |q| q.zero_point.clone()),
            quantized_dimension: t.quant.as_ref().map_or(0, |q| q.axis),
        }
    }
}

type Engine<'m> = omg_engine::Interpreter<'m>;

self_cell::self_cell!(
    struct Cell {
        owner: Vec<u8>,
        #[not_covariant]
        dependent: Engine,
    }
);

/// An interpreter owning its model's bytes.
pub struct Interpreter {
    cell: Cell,
    kernels: &'static str,
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
}

/// Parses a kernel choice (`None`: `auto`) into the set to load with, resolved to one level, and
/// that level's name.
pub fn kernel_set(name: Option<&str>) -> Result<(KernelSet, &'static str), Failure> {
    let set: KernelSet = name.unwrap_or("auto").parse()?;
    // Resolve `auto` now, so that the level in use can be reported.
    Ok(match set.isa() {
        None => (set, "reference"),
        Some(isa) => (KernelSet::Level(isa), isa.name()),
    })
}

impl Interpreter {
    /// Loads `bytes` as a `.tflite` model on the kernels named `kernels` (`None`: `auto`).
    pub fn new(bytes: Vec<u8>, kernels: Option<&str>) -> Result<Self, Failure> {
        let (set, name) = kernel_set(kernels)?;
        let cell = Cell::try_new(bytes, |b| Engine::with_kernels(b, set))?;
        let (inputs, outputs) = cell.with_dependent(|_, e| {
            let inputs = (0..e.input_count())
                .map(|i| e.input_tensor(i).map(TensorInfo::of))
                .collect::<omg_engine::Result<Vec<_>>>()?;
            let outputs = (0..e.output_count())
                .map(|i| e.output_tensor(i).map(TensorInfo::of))
                .collect::<omg_engine::Result<Vec<_>>>()?;
            Ok::<_, omg_engine::Error>((inputs, outputs))
        })?;
        Ok(Self {
            cell,
            kernels: name,
            inputs,
            outputs,
        })
    }

    /// Loads the `.tflite` file at `path` (at most omg's model size limit).
    pub fn open(path: &Path, kernels: Option<&str>) -> Result<Self, Failure> {
        let bytes = omg_cli::files::read_limited(path, omg_cli::files::MAX_MODEL_BYTES)?;
        Self::new(bytes, kernels)
    }

    /// The kernel level the model runs on: `reference` or a level name (`avx2`, ...).
    pub fn kernels(&self) -> &'static str {
        self.kernels
    }

    /// The model's inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    /// The model's outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    /// Input `i`'s details.
    pub fn input(&self, i: usize) -> Result<&TensorInfo, Failure> {
        self.inputs.get(i).ok_or_else(|| {
            Failure::invalid(format!(
                "input index {i} is out of range: the model has {} input(s)",
                self.inputs.len()
            ))
        })
    }

    /// Output `i`'s details.
    pub fn output(&self, i: usize) -> Result<&TensorInfo, Failure> {
        self.outputs.get(i).ok_or_else(|| {
            Failure::invalid(format!(
                "output index {i} is out of range: the model has {} output(s)",
                self.outputs.len()
            ))
        })
    }

    /// Copies `data` into input `i` (exactly its byte size).
    pub fn set_input(&mut self, i: usize, data: &[u8]) -> Result<(), Failure> {
        self.input(i)?;
        Ok(self.cell.with_dependent_mut(|_, e| e.set_input(i, data))?)
    }

    /// Runs the model once.
    pub fn invoke(&mut self) -> Result<(), Failure> {
        Ok(self.cell.with_dependent_mut(|_, e| e.invoke())?)
    }

    /// Copies output `i` into the start of `out`, which must hold at least its byte size;
    /// returns the byte size.
    pub fn read_output(&self, i: usize, out: &mut [u8]) -> Result<usize, Failure> {
        let want = self.output(i)?.bytes;
        if out.len() < want {
            return Err(Failure::invalid(format!(
                "output {i} has {want} bytes, the buffer only {}",
                out.len()
            )));
        }
        self.cell.with_dependent(|_, e| {
            out[..want].copy_from_slice(e.output(i)?);
            Ok::<_, omg_engine::Error>(())
        })?;
        Ok(want)
    }

    /// Clears the state stateful operators keep between invocations.
    pub fn reset(&mut self) {
        self.cell.with_dependent_mut(|_, e| e.reset());
    }
}
