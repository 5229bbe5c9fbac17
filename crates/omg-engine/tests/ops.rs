//! Each operator on a tiny model with hand-computed expected outputs (no shared data needed).
//! With `OMG_WRITE_FUZZ_SEEDS=DIR`, the models are also written there as fuzzing seeds.

mod common;

use common::{ModelSpec, OpSpec, Opt, TensorSpec};
use omg_engine::Interpreter;

const F32: i8 = 0;
const I32: i8 = 2;
const I8: i8 = 9;

fn le<T: Copy, const N: usize>(v: [T; N], f: fn(T) -> Vec<u8>) -> Vec<u8> {
    v.iter().flat_map(|x| f(*x)).collect()
}

fn i32s<const N: usize>(v: [i32; N]) -> Vec<u8> {
    le(v, |x| x.to_le_bytes().to_vec())
}

fn i8s<const N: usize>(v: [i8; N]) -> Vec<u8> {
    le(v, |x| vec![x as u8])
}

fn f32s<const N: usize>(v: [f32; N]) -> Vec<u8> {
    le(v, |x| x.to_le_bytes().to_vec())
}

/// Builds, optionally saves as a fuzz seed, runs once and returns output 0.
fn run(name: &str, m: &ModelSpec, inputs: &[Vec<u8>]) -> Vec<u8> {
    let bytes = m.build();
    if let Some(dir) = std::env::var_os("OMG_WRITE_FUZZ_SEEDS") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.tflite")),
            &bytes,
        )
        .unwrap();
    }
    let mut i = Interpreter::new(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (k, d) in inputs.iter().enumerate() {
        i.set_input(k, d).unwrap();
    }
    i.invoke().unwrap();
    i.output(0).unwrap().to_vec()
}

/// A model with one operator `code` over the given tensors (input list first, then outputs).
fn single(
    code: i32,
    version: i32,
    tensors: Vec<TensorSpec>,
    consts: &[(usize, Vec<u8>)],
    n_in: usize,
    op: impl FnOnce(OpSpec) -> OpSpec,
) -> ModelSpec {
    let mut m = ModelSpec::new();
    let c = m.opcode(code, version);
    let n = tensors.len();
    for (k, mut t) in tensors.into_iter().enumerate() {
        if let Some((_, d)) = consts.iter().find(|(i, _)| *i == k) {
            t.buffer = m.buffer(d.clone());
        }
        m.tensor(t);
    }
    let inputs: Vec<i32> = (0..n_in as i32).collect();
    let outputs: Vec<i32> = (n_in as i32..n as i32).collect();
    m.inputs = inputs
        .iter()
        .copied()
        .filter(|&k| !consts.iter().any(|(i, _)| *i == k as usize))
        .collect();
    m.outputs = outputs.clone();
    m.ops.push(op(OpSpec::new(c, &inputs, &outputs)));
    m
}

fn q8(shape: &[i32], scale: f32, zp: i64) -> TensorSpec {
    TensorSpec::new(shape, I8, 0).quant(scale, zp)
}

#[test]
fn fully_connected_with_bias() {
    let t = vec![
        q8(&[1, 2], 1.0, 0),
        q8(&[2, 2], 1.0, 0),
        TensorSpec::new(&[2], I32, 0).quant(1.0, 0),
        q8(&[1, 2], 1.0, 0),
    ];
    let m = single(
        9,
        1,
        t,
        &[(1, i8s([1, 2, 3, 4])), (2, i32s([0, 1]))],
        3,
        |o| o.options(8, &[]),
    );
    assert_eq!(run("fully_connected", &m, &[i8s([1, 1])]), i8s([3, 8]));
}

#[test]
fn conv_1x1_halves() {
    let t = vec![
        q8(&[1, 1, 2, 1], 1.0, 0),
        q8(&[1, 1, 1, 1], 0.5, 0),
        q8(&[1, 1, 2, 1], 1.0, 0),
    ];
    let opts = [(1, Opt::I32(1)), (2, Opt::I32(1)), (0, Opt::I8(1))];
    let m = single(3, 1, t, &[(1, i8s([2]))], 2, |o| o.options(1, &opts));
    assert_eq!(run("conv", &m, &[i8s([2, -3])]), i8s([2, -3]));
}

#[test]
fn conv_relu_clamps_negative_outputs() {
    let t = vec![
        q8(&[1, 1, 2, 1], 1.0, 0),
        q8(&[1, 1, 1, 1], 1.0, 0),
        q8(&[1, 1, 2, 1], 1.0, 0),
    ];
    let opts = [
        (1, Opt::I32(1)),
        (2, Opt::I32(1)),
        (0, Opt::I8(1)),
        (3, Opt::I8(1)),
    ];
    let m = single(3, 1, t, &[(1, i8s([3]))], 2, |o| o.options(1, &opts));
    assert_eq!(run("conv_relu", &m, &[i8s([50, -3])]), i8s([127, 0]));
}

#[test]
fn depthwise_with_depth_multiplier_two() {
    let t = vec![
        q8(&[1, 1, 1, 1], 1.0, 0),
        q8(&[1, 1, 1, 2], 1.0, 0),
        q8(&[1, 1, 1, 2], 1.0, 0),
    ];
    let opts = [
        (1, Opt::I32(1)),
        (2, Opt::I32(1)),
        (3, Opt::I32(2)),
        (0, Opt::I8(1)),
    ];
    let m = single(4, 1, t, &[(1, i8s([1, -1]))], 2, |o| o.options(2, &opts));
    assert_eq!(run("depthwise", &m, &[i8s([5])]), i8s([5, -5]));
}

#[test]
fn pooling_rounds_the_average() {
    let opts = [
        (0, Opt::I8(1)),
        (1, Opt::I32(2)),
        (2, Opt::I32(2)),
        (3, Opt::I32(2)),
        (4, Opt::I32(2)),
    ];
    for (code, name, want) in [(1, "avg_pool", 3i8), (17, "max_pool", 5)] {
        let t = vec![q8(&[1, 2, 2, 1], 1.0, 0), q8(&[1, 1, 1, 1], 1.0, 0)];
        let m = single(code, 1, t, &[], 1, |o| o.options(5, &opts));
        assert_eq!(run(name, &m, &[i8s([1, 2, 3, 5])]), i8s([want]), "{name}");
    }
}

#[test]
fn softmax_of_equal_logits_is_uniform() {
    let t = vec![q8(&[1, 4], 0.1, 0), q8(&[1, 4], 1.0 / 256.0, -128)];
    let m = single(25, 1, t, &[], 1, |o| o.options(9, &[(0, Opt::F32(1.0))]));
    // 0.25 each: 0.25 * 256 - 128 = -64.
    assert_eq!(
        run("softmax", &m, &[i8s([7, 7, 7, 7])]),
        i8s([-64, -64, -64, -64])
    );
}

#[test]
fn quantized_add_with_broadcast() {
    let t = vec![q8(&[1, 2], 1.0, 0), q8(&[1], 1.0, 0), q8(&[1, 2], 1.0, 0)];
    let m = single(0, 1, t, &[], 2, |o| o.options(11, &[]));
    assert_eq!(run("add_i8", &m, &[i8s([1, -2]), i8s([3])]), i8s([4, 1]));
}

#[test]
fn int32_arithmetic_truncates_and_clips() {
    // div by 2 (truncating toward zero), then min 10, then max -1: three operators in a chain.
    let mut m = ModelSpec::new();
    let (div, min, max) = (m.opcode(42, 1), m.opcode(57, 1), m.opcode(55, 1));
    let x = m.tensor(TensorSpec::new(&[3], I32, 0));
    let two = m.buffer(i32s([2]));
    let ten = m.buffer(i32s([10]));
    let neg = m.buffer(i32s([-1]));
    let c2 = m.tensor(TensorSpec::new(&[], I32, two));
    let c10 = m.tensor(TensorSpec::new(&[], I32, ten));
    let cm1 = m.tensor(TensorSpec::new(&[], I32, neg));
    let (a, b, y) = (
        m.tensor(TensorSpec::new(&[3], I32, 0)),
        m.tensor(TensorSpec::new(&[3], I32, 0)),
        m.tensor(TensorSpec::new(&[3], I32, 0)),
    );
    m.ops
        .push(OpSpec::new(div, &[x, c2], &[a]).options(29, &[]));
    m.ops.push(OpSpec::new(min, &[a, c10], &[b]));
    m.ops.push(OpSpec::new(max, &[b, cm1], &[y]));
    m.inputs = vec![x];
    m.outputs = vec![y];
    assert_eq!(
        run("int32_chain", &m, &[i32s([7, -7, 100])]),
        i32s([3, -1, 10])
    );
}

#[test]
fn cast_int32_to_int8_wraps_like_c() {
    let t = vec![TensorSpec::new(&[2], I32, 0), TensorSpec::new(&[2], I8, 0)];
    let m = single(53, 1, t, &[], 1, |o| o);
    assert_eq!(run("cast", &m, &[i32s([5, 300])]), i8s([5, 44]));
}

#[test]
fn strided_slice_every_second_element() {
    let t = vec![
        TensorSpec::new(&[4], I32, 0),
        TensorSpec::new(&[1], I32, 0),
        TensorSpec::new(&[1], I32, 0),
        TensorSpec::new(&[1], I32, 0),
        TensorSpec::new(&[2], I32, 0),
    ];
    let m = single(
        45,
        1,
        t,
        &[(1, i32s([0])), (2, i32s([4])), (3, i32s([2]))],
        4,
        |o| o.options(32, &[]),
    );
    assert_eq!(
        run("strided_slice", &m, &[i32s([10, 11, 12, 13])]),
        i32s([10, 12])
    );
}

#[test]
fn concatenation_of_constant_and_input() {
    let t = vec![
        TensorSpec::new(&[2], I32, 0),
        TensorSpec::new(&[1], I32, 0),
        TensorSpec::new(&[3], I32, 0),
    ];
    let m = single(2, 1, t, &[(0, i32s([1, 2]))], 2, |o| {
        o.options(10, &[(0, Opt::I32(0))])
    });
    assert_eq!(run("concatenation", &m, &[i32s([3])]), i32s([1, 2, 3]));
}

#[test]
fn quantize_and_dequantize() {
    let t = vec![TensorSpec::new(&[3], F32, 0), q8(&[3], 0.5, 1)];
    let m = single(114, 1, t, &[], 1, |o| o);
    // round(x / 0.5) + 1, saturated.
    assert_eq!(
        run("quantize", &m, &[f32s([0.5, -1.0, 1000.0])]),
        i8s([2, -1, 127])
    );
    let t = vec![q8(&[2], 0.5, 1), TensorSpec::new(&[2], F32, 0)];
    let m = single(6, 1, t, &[], 1, |o| o);
    assert_eq!(run("dequantize", &m, &[i8s([3, -1])]), f32s([1.0, -1.0]));
}

#[test]
fn stateless_models_give_the_same_output_twice() {
    let t = vec![q8(&[1, 2], 1.0, 0), q8(&[1], 1.0, 0), q8(&[1, 2], 1.0, 0)];
    let bytes = single(0, 1, t, &[], 2, |o| o.options(11, &[])).build();
    let mut i = Interpreter::new(&bytes).unwrap();
    i.set_input(0, &i8s([9, 9])).unwrap();
    i.set_input(1, &i8s([1])).unwrap();
    i.invoke().unwrap();
    let first = i.output(0).unwrap().to_vec();
    i.invoke().unwrap();
    assert_eq!(first, i.output(0).unwrap());
}
