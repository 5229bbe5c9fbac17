//! A tiny TFLite model builder for tests: small valid models, and invalid ones on purpose.

#![allow(dead_code)]

use flatbuffers::{FlatBufferBuilder, WIPOffset};

/// Vtable slot of schema field `id`.
fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// A value of a builtin-options field.
#[derive(Clone)]
pub enum Opt {
    I8(i8),
    U8(u8),
    I32(i32),
    F32(f32),
    Bool(bool),
    Ints(Vec<i32>),
}

#[derive(Clone)]
pub struct TensorSpec {
    pub shape: Vec<i32>,
    /// Schema `TensorType` code (9 = int8, 2 = int32, 7 = int16, 0 = float32).
    pub ty: i8,
    pub buffer: u32,
    pub name: String,
    /// (scales, zero points, quantized dimension)
    pub quant: Option<(Vec<f32>, Vec<i64>, i32)>,
}

impl TensorSpec {
    pub fn new(shape: &[i32], ty: i8, buffer: u32) -> Self {
        Self {
            shape: shape.to_vec(),
            ty,
            buffer,
            name: String::from("t"),
            quant: None,
        }
    }

    pub fn quant(mut self, scale: f32, zp: i64) -> Self {
        self.quant = Some((vec![scale], vec![zp], 0));
        self
    }
}

#[derive(Clone)]
pub struct OpSpec {
    pub opcode_index: u32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options_type: u8,
    pub options: Vec<(u16, Opt)>,
    pub custom_options: Option<Vec<u8>>,
}

impl OpSpec {
    pub fn new(opcode_index: u32, inputs: &[i32], outputs: &[i32]) -> Self {
        Self {
            opcode_index,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            options_type: 0,
            options: vec![],
            custom_options: None,
        }
    }

    pub fn options(mut self, ty: u8, fields: &[(u16, Opt)]) -> Self {
        self.options_type = ty;
        self.options = fields.to_vec();
        self
    }
}

#[derive(Clone)]
pub struct ModelSpec {
    pub version: u32,
    /// (builtin code, custom name, version)
    pub opcodes: Vec<(i32, Option<String>, i32)>,
    pub buffers: Vec<Vec<u8>>,
    pub tensors: Vec<TensorSpec>,
    pub ops: Vec<OpSpec>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub subgraphs: usize,
}

impl ModelSpec {
    /// An empty model: schema version 3, one subgraph, the conventional empty buffer 0.
    pub fn new() -> Self {
        Self {
            version: 3,
            opcodes: vec![],
            buffers: vec![vec![]],
            tensors: vec![],
            ops: vec![],
            inputs: vec![],
            outputs: vec![],
            subgraphs: 1,
        }
    }

    /// Adds a constant buffer and returns its index.
    pub fn buffer(&mut self, data: Vec<u8>) -> u32 {
        self.buffers.push(data);
        (self.buffers.len() - 1) as u32
    }

    /// Adds a tensor and returns its index.
    pub fn tensor(&mut self, t: TensorSpec) -> i32 {
        self.tensors.push(t);
        (self.tensors.len() - 1) as i32
    }

    /// Adds a builtin operator code and returns its index.
    pub fn opcode(&mut self, code: i32, version: i32) -> u32 {
        self.opcodes.push((code, None, version));
        (self.opcodes.len() - 1) as u32
    }

    pub fn build(&self) -> Vec<u8> {
        let mut b = FlatBufferBuilder::new();
        let mut buffers = Vec::new();
        for data in &self.buffers {
            let d = (!data.is_empty()).then(|| {
                b.start_vector::<u8>(data.len());
                for x in data.iter().rev() {
                    b.push(*x);
                }
                b.end_vector::<u8>(data.len())
            });
            let t = b.start_table();
            if let Some(d) = d {
                b.push_slot_always(slot(0), d);
            }
            buffers.push(b.end_table(t));
        }
        let mut tensors = Vec::new();
        for t in &self.tensors {
            let shape = b.create_vector(&t.shape);
            let name = b.create_string(&t.name);
            let quant = t.quant.as_ref().map(|(s, z, d)| {
                let s = b.create_vector(s);
                let z = b.create_vector(z);
                let q = b.start_table();
                b.push_slot_always(slot(2), s);
                b.push_slot_always(slot(3), z);
                b.push_slot(slot(6), *d, 0);
                b.end_table(q)
            });
            let tt = b.start_table();
            b.push_slot_always(slot(0), shape);
            b.push_slot(slot(1), t.ty, -1);
            b.push_slot(slot(2), t.buffer, u32::MAX);
            b.push_slot_always(slot(3), name);
            if let Some(q) = quant {
                b.push_slot_always(slot(4), q);
            }
            tensors.push(b.end_table(tt));
        }
        let mut ops = Vec::new();
        for op in &self.ops {
            let inputs = b.create_vector(&op.inputs);
            let outputs = b.create_vector(&op.outputs);
            let custom = op.custom_options.as_ref().map(|c| b.create_vector(c));
            let vecs: Vec<_> = op
                .options
                .iter()
                .map(|(_, v)| {
                    if let Opt::Ints(v) = v {
                        Some(b.create_vector(v))
                    } else {
                        None
                    }
                })
                .collect();
            let options = (op.options_type != 0).then(|| {
                let t = b.start_table();
                for ((id, v), vec) in op.options.iter().zip(&vecs) {
                    match v {
                        Opt::I8(x) => b.push_slot_always(slot(*id), *x),
                        Opt::U8(x) => b.push_slot_always(slot(*id), *x),
                        Opt::I32(x) => b.push_slot_always(slot(*id), *x),
                        Opt::F32(x) => b.push_slot_always(slot(*id), *x),
                        Opt::Bool(x) => b.push_slot_always(slot(*id), *x),
                        Opt::Ints(_) => b.push_slot_always(slot(*id), vec.unwrap()),
                    }
                }
                b.end_table(t)
            });
            let t = b.start_table();
            b.push_slot(slot(0), op.opcode_index, u32::MAX);
            b.push_slot_always(slot(1), inputs);
            b.push_slot_always(slot(2), outputs);
            b.push_slot(slot(3), op.options_type, 0);
            if let Some(o) = options {
                b.push_slot_always(slot(4), o);
            }
            if let Some(c) = custom {
                b.push_slot_always(slot(5), c);
            }
            ops.push(b.end_table(t));
        }
        let tensors = b.create_vector(&tensors);
        let ops = b.create_vector(&ops);
        let inputs = b.create_vector(&self.inputs);
        let outputs = b.create_vector(&self.outputs);
        let sg = b.start_table();
        b.push_slot_always(slot(0), tensors);
        b.push_slot_always(slot(1), inputs);
        b.push_slot_always(slot(2), outputs);
        b.push_slot_always(slot(3), ops);
        let sg = b.end_table(sg);
        let sgs: Vec<WIPOffset<_>> = vec![sg; self.subgraphs];
        let sgs = b.create_vector(&sgs);
        let mut codes = Vec::new();
        for (code, custom, version) in &self.opcodes {
            let name = custom.as_ref().map(|c| b.create_string(c));
            let t = b.start_table();
            b.push_slot(slot(0), (*code).min(127) as i8, -1);
            if let Some(n) = name {
                b.push_slot_always(slot(1), n);
            }
            b.push_slot(slot(2), *version, 0);
            b.push_slot(slot(3), *code, -1);
            codes.push(b.end_table(t));
        }
        let codes = b.create_vector(&codes);
        let buffers = b.create_vector(&buffers);
        let m = b.start_table();
        b.push_slot(slot(0), self.version, u32::MAX);
        b.push_slot_always(slot(1), codes);
        b.push_slot_always(slot(2), sgs);
        b.push_slot_always(slot(4), buffers);
        let m = b.end_table(m);
        b.finish(m, Some("TFL3"));
        b.finished_data().to_vec()
    }
}

/// RESHAPE of an int8 [2,3] input to [3,2] (a valid model with one operator).
pub fn reshape_model() -> ModelSpec {
    let mut m = ModelSpec::new();
    let code = m.opcode(22, 1);
    let shape_buf = m.buffer([3i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect());
    let x = m.tensor(TensorSpec::new(&[2, 3], 9, 0));
    let s = m.tensor(TensorSpec::new(&[2], 2, shape_buf));
    let y = m.tensor(TensorSpec::new(&[3, 2], 9, 0));
    m.ops.push(OpSpec::new(code, &[x, s], &[y]));
    m.inputs = vec![x];
    m.outputs = vec![y];
    m
}
