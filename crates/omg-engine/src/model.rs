//! The TFLite model: schema field layout, parsing and whole-model validation.
//!
//! [`Model::parse`] reads the FlatBuffer once, checks every index, shape, size and quantization
//! parameter, and keeps only what the interpreter needs. Constant tensor data stays in the caller's
//! bytes (no copy). Operator-specific checks happen later, in each operator's prepare step.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result, model_err};
use crate::flatbuf::{Table, Tables};
use crate::schema;

/// Largest number of tensors or operators a model may declare.
pub const MAX_ENTRIES: usize = 8192;
/// Largest tensor rank the engine accepts.
pub const MAX_RANK: usize = 6;
/// Largest size of any single tensor in bytes.
pub const MAX_TENSOR_BYTES: usize = 1 << 28;

/// Field ids of the TFLite schema tables (`schema.fbs`); a field's vtable slot is `4 + 2 * id`.
mod field {
    pub mod model {
        pub const VERSION: usize = 0;
        pub const OPERATOR_CODES: usize = 1;
        pub const SUBGRAPHS: usize = 2;
        pub const DESCRIPTION: usize = 3;
        pub const BUFFERS: usize = 4;
    }
    pub mod subgraph {
        pub const TENSORS: usize = 0;
        pub const INPUTS: usize = 1;
        pub const OUTPUTS: usize = 2;
        pub const OPERATORS: usize = 3;
    }
    pub mod tensor {
        pub const SHAPE: usize = 0;
        pub const TYPE: usize = 1;
        pub const BUFFER: usize = 2;
        pub const NAME: usize = 3;
        pub const QUANTIZATION: usize = 4;
        pub const IS_VARIABLE: usize = 5;
        pub const SPARSITY: usize = 6;
    }
    pub mod quant {
        pub const SCALE: usize = 2;
        pub const ZERO_POINT: usize = 3;
        pub const DETAILS_TYPE: usize = 4;
        pub const QUANTIZED_DIMENSION: usize = 6;
    }
    pub mod opcode {
        pub const DEPRECATED_BUILTIN_CODE: usize = 0;
        pub const CUSTOM_CODE: usize = 1;
        pub const VERSION: usize = 2;
        pub const BUILTIN_CODE: usize = 3;
    }
    pub mod operator {
        pub const OPCODE_INDEX: usize = 0;
        pub const INPUTS: usize = 1;
        pub const OUTPUTS: usize = 2;
        pub const BUILTIN_OPTIONS_TYPE: usize = 3;
        pub const BUILTIN_OPTIONS: usize = 4;
        pub const CUSTOM_OPTIONS: usize = 5;
        pub const LARGE_CUSTOM_OPTIONS_OFFSET: usize = 9;
        pub const INTERMEDIATES: usize = 8;
    }
    pub mod buffer {
        pub const DATA: usize = 0;
        pub const OFFSET: usize = 1;
    }
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 64-bit integer.
    U64,
    /// Boolean, one byte.
    Bool,
}

impl DType {
    /// Maps the schema's `TensorType` code.
    fn from_schema(code: i8) -> Result<Self> {
        Ok(match code {
            0 => DType::F32,
            2 => DType::I32,
            3 => DType::U8,
            4 => DType::I64,
            6 => DType::Bool,
            7 => DType::I16,
            9 => DType::I8,
            12 => DType::U64,
            15 => DType::U32,
            16 => DType::U16,
            other => return Err(Error::Unsupported(format!("tensor type code {other}"))),
        })
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::I64 | DType::U64 => 8,
        }
    }

    /// Lower-case name as in TFLite (`int8`, `float32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::U16 => "uint16",
            DType::I32 => "int32",
            DType::U32 => "uint32",
            DType::I64 => "int64",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// The range of values a zero point may take for this type.
    fn zero_point_range(self) -> (i64, i64) {
        match self {
            DType::I8 => (-128, 127),
            DType::U8 => (0, 255),
            DType::I16 => (-32768, 32767),
            _ => (i64::from(i32::MIN), i64::from(i32::MAX)),
        }
    }
}

/// Affine quantization parameters: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    /// One scale per tensor, or one per slice along `axis`.
    pub scale: Vec<f32>,
    /// Zero points, same length as `scale`.
    pub zero_point: Vec<i32>,
    /// The quantized dimension for per-channel parameters.
    pub axis: usize,
}

impl Quantization {
    /// True when there is one scale for the whole tensor.
    pub fn is_per_tensor(&self) -> bool {
        self.scale.len() == 1
    }
}

/// A tensor of the model.
#[derive(Debug, Clone)]
pub struct Tensor<'m> {
    /// Name from the model (may be empty).
    pub name: &'m str,
    /// Element type.
    pub dtype: DType,
    /// Dimensions (a scalar has none).
    pub shape: Vec<usize>,
    /// Constant data, read in place from the model bytes.
    pub data: Option<&'m [u8]>,
    /// Quantization parameters, if any.
    pub quant: Option<Quantization>,
}

impl Tensor<'_> {
    /// Number of elements (1 for a scalar).
    pub fn elements(&self) -> usize {
        // Bounded at parse time, cannot overflow.
        self.shape.iter().product()
    }

    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.elements() * self.dtype.size()
    }

    /// True for tensors whose data is in the model.
    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }
}

/// What an operator computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode<'m> {
    /// A builtin operator (schema `BuiltinOperator` code).
    Builtin(i32),
    /// A custom operator, by name.
    Custom(&'m str),
}

/// One operator of the subgraph, in execution order.
#[derive(Clone)]
pub struct Operator<'m> {
    /// The operator kind.
    pub code: OpCode<'m>,
    /// The operator version recorded by the converter.
    pub version: i32,
    /// Input tensor indices; `None` marks an omitted optional input.
    pub inputs: Vec<Option<usize>>,
    /// Output tensor indices.
    pub outputs: Vec<usize>,
    /// The schema's `BuiltinOptions` union type.
    pub options_type: u8,
    pub(crate) options: Option<Table<'m>>,
    /// Custom options bytes (FlexBuffers for TFLM's Signal operators).
    pub custom_options: &'m [u8],
}

/// A validated single-subgraph TFLite model borrowing its bytes.
pub struct Model<'m> {
    /// The model's bytes.
    pub bytes: &'m [u8],
    /// Description string from the converter.
    pub description: &'m str,
    /// All tensors of the subgraph.
    pub tensors: Vec<Tensor<'m>>,
    /// Operators in execution order.
    pub operators: Vec<Operator<'m>>,
    /// Subgraph input tensor indices.
    pub inputs: Vec<usize>,
    /// Subgraph output tensor indices.
    pub outputs: Vec<usize>,
}

/// Reads an index vector, checking each entry against `count`; `-1` is allowed only if `optional`.
fn indices(t: &Table<'_>, id: usize, count: usize, what: &str) -> Result<Vec<Option<usize>>> {
    let Some(v) = t.vector::<i32>(id)? else {
        return Ok(Vec::new());
    };
    if v.len() > MAX_ENTRIES {
        return Err(model_err!("{what} lists {} tensors", v.len()));
    }
    v.iter()
        .map(|i| match i {
            -1 => Ok(None),
            i if i >= 0 && (i as usize) < count => Ok(Some(i as usize)),
            i => Err(model_err!(
                "{what} refers to tensor {i}, but the model has {count} tensors"
            )),
        })
        .collect()
}

fn required(v: Vec<Option<usize>>, what: &str) -> Result<Vec<usize>> {
    v.into_iter()
        .map(|i| i.ok_or_else(|| model_err!("{what} has an omitted (-1) tensor")))
        .collect()
}

fn table_count(t: Option<Tables<'_>>, what: &str) -> Result<usize> {
    let n = t.map_or(0, |t| t.len());
    if n > MAX_ENTRIES {
        return Err(model_err!("{n} {what} (at most {MAX_ENTRIES} supported)"));
    }
    Ok(n)
}

/// Human-readable name of a builtin operator code.
pub fn builtin_name(code: i32) -> String {
    match crate::ops::builtin_name(code) {
        Some(name) => String::from(name),
        None => format!("builtin operator {code}"),
    }
}

impl OpCode<'_> {
    /// The operator's name for messages.
    pub fn name(&self) -> String {
        match self {
            OpCode::Builtin(c) => builtin_name(*c),
            OpCode::Custom(s) => String::from(*s),
        }
    }
}

impl<'m> Model<'m> {
    /// Parses and validates a `.tflite` FlatBuffer.
    pub fn parse(bytes: &'m [u8]) -> Result<Self> {
        if bytes.get(4..8) != Some(b"TFL3") {
            return Err(Error::Format(
                "missing the TFL3 file identifier; not a TFLite model",
            ));
        }
        let root = Table::root(bytes)?;
        let version = root.scalar::<u32>(field::model::VERSION, 0)?;
        if version != 3 {
            return Err(Error::Unsupported(format!(
                "schema version {version} (only version 3 is supported)"
            )));
        }
        let description = root.string(field::model::DESCRIPTION)?.unwrap_or("");
        let buffers = root.tables(field::model::BUFFERS)?;
        let n_buffers = table_count(buffers, "buffers")?;
        // Every buffer table is checked, referenced or not: a truncated or corrupt file is an error
        // wherever the damage is.
        if let Some(b) = buffers {
            for i in 0..n_buffers {
                b.get(i)?.bytes(field::buffer::DATA)?;
            }
        }
        let opcodes = root.tables(field::model::OPERATOR_CODES)?;
        let n_opcodes = table_count(opcodes, "operator codes")?;
        if let Some(o) = opcodes {
            for i in 0..n_opcodes {
                let oc = o.get(i)?;
                oc.scalar::<i32>(field::opcode::BUILTIN_CODE, 0)?;
                oc.string(field::opcode::CUSTOM_CODE)?;
            }
        }
        let subgraphs = root
            .tables(field::model::SUBGRAPHS)?
            .ok_or_else(|| model_err!("no subgraph"))?;
        match subgraphs.len() {
            1 => {}
            0 => return Err(model_err!("no subgraph")),
            n => {
                return Err(Error::Unsupported(format!(
                    "{n} subgraphs (only single-subgraph models are supported)"
                )));
            }
        }
        let sg = subgraphs.get(0)?;

        let tensor_tables = sg.tables(field::subgraph::TENSORS)?;
        let n_tensors = table_count(tensor_tables, "tensors")?;
        let mut tensors = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let t = tensor_tables
                .map(|t| t.get(i))
                .transpose()?
                .ok_or(Error::Format("tensor missing"))?;
            tensors.push(parse_tensor(&t, i, buffers, n_buffers)?);
        }

        let inputs = required(
            indices(
                &sg,
                field::subgraph::INPUTS,
                n_tensors,
                "the subgraph's input list",
            )?,
            "the subgraph's input list",
        )?;
        let outputs = required(
            indices(
                &sg,
                field::subgraph::OUTPUTS,
                n_tensors,
                "the subgraph's output list",
            )?,
            "the subgraph's output list",
        )?;

        let op_tables = sg.tables(field::subgraph::OPERATORS)?;
        let n_ops = table_count(op_tables, "operators")?;
        let mut operators = Vec::with_capacity(n_ops);
        for i in 0..n_ops {
            let t = op_tables
                .map(|t| t.get(i))
                .transpose()?
                .ok_or(Error::Format("operator missing"))?;
            operators.push(parse_operator(&t, i, opcodes, n_opcodes, n_tensors)?);
        }

        let model = Model {
            bytes,
            description,
            tensors,
            operators,
            inputs,
            outputs,
        };
        model.check_graph()?;
        Ok(model)
    }

    /// Checks the data flow: every tensor is written at most once, before it is read, and never
    /// when it is constant or a subgraph input; subgraph inputs and outputs are not constants.
    fn check_graph(&self) -> Result<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Unwritten,
            Available,
        }
        let mut state: Vec<State> = self
            .tensors
            .iter()
            .map(|t| {
                if t.is_constant() {
                    State::Available
                } else {
                    State::Unwritten
                }
            })
            .collect();
        if self.inputs.is_empty() {
            return Err(model_err!("the subgraph has no inputs"));
        }
        if self.outputs.is_empty() {
            return Err(model_err!("the subgraph has no outputs"));
        }
        for (k, &i) in self.inputs.iter().enumerate() {
            if self.tensors[i].is_constant() {
                return Err(model_err!("subgraph input {k} (tensor {i}) is a constant"));
            }
            if state[i] == State::Available {
                return Err(model_err!("tensor {i} is listed twice as a subgraph input"));
            }
            state[i] = State::Available;
        }
        for (n, op) in self.operators.iter().enumerate() {
            let op_err = |reason: String| Error::Operator {
                index: n,
                op: op.code.name(),
                reason,
            };
            for &i in op.inputs.iter().flatten() {
                if state[i] != State::Available {
                    return Err(op_err(format!(
                        "reads tensor {i} before any operator writes it"
                    )));
                }
            }
            for &o in &op.outputs {
                if state[o] != State::Unwritten {
                    let why = if self.tensors[o].is_constant() {
                        "a constant"
                    } else if self.inputs.contains(&o) {
                        "a subgraph input"
                    } else {
                        "already written by an earlier operator (or twice by this one)"
                    };
                    return Err(op_err(format!("writes tensor {o}, which is {why}")));
                }
                state[o] = State::Available;
            }
        }
        for (k, &o) in self.outputs.iter().enumerate() {
            if self.tensors[o].is_constant() {
                return Err(model_err!("subgraph output {k} (tensor {o}) is a constant"));
            }
            if state[o] != State::Available {
                return Err(model_err!(
                    "subgraph output {k} (tensor {o}) is never written"
                ));
            }
        }
        Ok(())
    }
}

fn parse_tensor<'m>(
    t: &Table<'m>,
    i: usize,
    buffers: Option<Tables<'m>>,
    n_buffers: usize,
) -> Result<Tensor<'m>> {
    let name = t.string(field::tensor::NAME)?.unwrap_or("");
    let err = |what: String| model_err!("tensor {i} ({name}): {what}");
    let dtype = DType::from_schema(t.scalar::<i8>(field::tensor::TYPE, 0)?)
        .map_err(|e| Error::Unsupported(format!("tensor {i} ({name}): {e}")))?;
    let mut shape = Vec::new();
    if let Some(v) = t.vector::<i32>(field::tensor::SHAPE)? {
        if v.len() > MAX_RANK {
            return Err(Error::Unsupported(format!(
                "tensor {i} ({name}) has rank {} (at most {MAX_RANK})",
                v.len()
            )));
        }
        for d in v.iter() {
            let d = usize::try_from(d).map_err(|_| err(format!("negative dimension {d}")))?;
            shape.push(d);
        }
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .filter(|&b| b <= MAX_TENSOR_BYTES)
        .ok_or_else(|| {
            err(format!(
                "shape {shape:?} is larger than {MAX_TENSOR_BYTES} bytes"
            ))
        })?;
    if t.boolean(field::tensor::IS_VARIABLE, false)? {
        return Err(Error::Unsupported(format!(
            "tensor {i} ({name}) is a variable tensor"
        )));
    }
    if t.table(field::tensor::SPARSITY)?.is_some() {
        return Err(Error::Unsupported(format!("tensor {i} ({name}) is sparse")));
    }
    let buffer = t.scalar::<u32>(field::tensor::BUFFER, 0)? as usize;
    if buffer >= n_buffers.max(1) {
        return Err(err(format!(
            "buffer index {buffer} is out of range ({n_buffers} buffers)"
        )));
    }
    let data = match buffers {
        Some(b) if buffer != 0 => {
            let bt = b.get(buffer)?;
            if bt.scalar::<u64>(field::buffer::OFFSET, 0)? > 1 {
                return Err(Error::Unsupported(format!(
                    "tensor {i} ({name}) keeps its data outside the FlatBuffer"
                )));
            }
            match bt.bytes(field::buffer::DATA)? {
                Some(d) if !d.is_empty() => {
                    if d.len() != bytes {
                        return Err(err(format!(
                            "constant data is {} bytes, but shape {shape:?} of {} needs {bytes}",
                            d.len(),
                            dtype.name()
                        )));
                    }
                    Some(d)
                }
                _ => None,
            }
        }
        _ => None,
    };
    let quant = match t.table(field::tensor::QUANTIZATION)? {
        None => None,
        Some(q) => parse_quant(&q, dtype, &shape).map_err(err)?,
    };
    Ok(Tensor {
        name,
        dtype,
        shape,
        data,
        quant,
    })
}

fn parse_quant(
    q: &Table<'_>,
    dtype: DType,
    shape: &[usize],
) -> core::result::Result<Option<Quantization>, String> {
    let fail = |e: Error| format!("{e}");
    if q.scalar::<u8>(field::quant::DETAILS_TYPE, 0)
        .map_err(fail)?
        != 0
    {
        return Err(String::from(
            "custom quantization details are not supported",
        ));
    }
    let scale: Vec<f32> = q
        .vector::<f32>(field::quant::SCALE)
        .map_err(fail)?
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let zp: Vec<i64> = q
        .vector::<i64>(field::quant::ZERO_POINT)
        .map_err(fail)?
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    if scale.is_empty() {
        // Min/max-only or empty parameters: the tensor is not quantized.
        return Ok(None);
    }
    if scale.len() > MAX_ENTRIES {
        return Err(format!("{} quantization scales", scale.len()));
    }
    if zp.len() != scale.len() {
        return Err(format!(
            "{} quantization scales but {} zero points",
            scale.len(),
            zp.len()
        ));
    }
    if let Some(s) = scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(format!(
            "quantization scale {s} is not a positive finite number"
        ));
    }
    let (lo, hi) = dtype.zero_point_range();
    if let Some(z) = zp.iter().find(|&&z| z < lo || z > hi) {
        return Err(format!(
            "zero point {z} is outside the range of {}",
            dtype.name()
        ));
    }
    let axis = q
        .scalar::<i32>(field::quant::QUANTIZED_DIMENSION, 0)
        .map_err(fail)?;
    let axis = usize::try_from(axis).map_err(|_| format!("negative quantized dimension {axis}"))?;
    if scale.len() > 1 && shape.get(axis) != Some(&scale.len()) {
        return Err(format!(
            "{} per-channel scales do not match dimension {axis} of shape {shape:?}",
            scale.len()
        ));
    }
    // Zero points were range-checked above, so the narrowing is exact.
    Ok(Some(Quantization {
        scale,
        zero_point: zp.iter().map(|&z| z as i32).collect(),
        axis,
    }))
}

fn parse_operator<'m>(
    t: &Table<'m>,
    n: usize,
    opcodes: Option<Tables<'m>>,
    n_opcodes: usize,
    n_tensors: usize,
) -> Result<Operator<'m>> {
    let idx = t.scalar::<u32>(field::operator::OPCODE_INDEX, 0)? as usize;
    let oc = match opcodes {
        Some(o) if idx < n_opcodes => o.get(idx)?,
        _ => {
            return Err(model_err!(
                "operator {n} uses operator code {idx}, but the model has {n_opcodes}"
            ));
        }
    };
    let deprecated = i32::from(oc.scalar::<i8>(field::opcode::DEPRECATED_BUILTIN_CODE, 0)?);
    let builtin = oc.scalar::<i32>(field::opcode::BUILTIN_CODE, 0)?;
    let code_num = deprecated.max(builtin);
    let code = if code_num == schema::CUSTOM {
        OpCode::Custom(
            oc.string(field::opcode::CUSTOM_CODE)?
                .ok_or_else(|| model_err!("operator {n} is CUSTOM without a name"))?,
        )
    } else {
        OpCode::Builtin(code_num)
    };
    let version = oc.scalar::<i32>(field::opcode::VERSION, 1)?;
    let what = |s: &str| format!("operator {n} ({}) {s}", code.name());
    let inputs = indices(t, field::operator::INPUTS, n_tensors, &what("input list"))?;
    let outputs = required(
        indices(t, field::operator::OUTPUTS, n_tensors, &what("output list"))?,
        &what("output list"),
    )?;
    if t.vector::<i32>(field::operator::INTERMEDIATES)?
        .is_some_and(|v| v.len() > 0)
    {
        return Err(Error::Unsupported(what("has intermediate tensors")));
    }
    if t.scalar::<u64>(field::operator::LARGE_CUSTOM_OPTIONS_OFFSET, 0)? != 0 {
        return Err(Error::Unsupported(what(
            "keeps its custom options outside the FlatBuffer",
        )));
    }
    Ok(Operator {
        code,
        version,
        inputs,
        outputs,
        options_type: t.scalar::<u8>(field::operator::BUILTIN_OPTIONS_TYPE, 0)?,
        options: t.table(field::operator::BUILTIN_OPTIONS)?,
        custom_options: t.bytes(field::operator::CUSTOM_OPTIONS)?.unwrap_or(&[]),
    })
}
