//! Hostile and broken models must be rejected with an error naming the problem, never a panic.

mod common;

use common::{OpSpec, TensorSpec, reshape_model};
use omg_engine::{Error, Interpreter};

fn load_err(bytes: &[u8]) -> String {
    match Interpreter::new(bytes) {
        Ok(_) => panic!("model was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_valid_model_runs() {
    let bytes = reshape_model().build();
    let mut i = Interpreter::new(&bytes).unwrap();
    i.set_input(0, &[1, 2, 3, 4, 5, 6]).unwrap();
    i.invoke().unwrap();
    assert_eq!(i.output(0).unwrap(), &[1, 2, 3, 4, 5, 6]);
    assert!(matches!(i.set_input(0, &[0; 5]), Err(Error::Usage(_))));
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = reshape_model().build();
    for n in 0..bytes.len() {
        assert!(
            Interpreter::new(&bytes[..n]).is_err(),
            "truncated to {n} of {} bytes was accepted",
            bytes.len()
        );
    }
}

#[test]
fn every_bit_flip_is_handled_without_panic() {
    let bytes = reshape_model().build();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            if let Ok(mut interp) = Interpreter::new(&b) {
                // Whatever was accepted must also run.
                for k in 0..interp.input_count() {
                    interp.input_mut(k).unwrap().fill(7);
                }
                interp.invoke().unwrap();
            }
        }
    }
}

#[test]
fn wrong_identifier_and_version() {
    let mut b = reshape_model().build();
    b[4] = b'X';
    assert!(load_err(&b).contains("TFL3"));
    let mut m = reshape_model();
    m.version = 2;
    assert!(load_err(&m.build()).contains("schema version 2"));
}

#[test]
fn operator_tensor_index_out_of_range() {
    let mut m = reshape_model();
    m.ops[0].inputs[0] = 99;
    let e = load_err(&m.build());
    assert!(
        e.contains("refers to tensor 99") && e.contains("3 tensors"),
        "{e}"
    );
}

#[test]
fn subgraph_output_out_of_range() {
    let mut m = reshape_model();
    m.outputs = vec![-7];
    assert!(load_err(&m.build()).contains("refers to tensor -7"));
}

#[test]
fn constant_data_of_the_wrong_size() {
    let mut m = reshape_model();
    m.buffers[1] = vec![1, 2, 3];
    let e = load_err(&m.build());
    assert!(
        e.contains("constant data is 3 bytes") && e.contains("needs 8"),
        "{e}"
    );
}

#[test]
fn buffer_index_out_of_range() {
    let mut m = reshape_model();
    m.tensors[1].buffer = 40;
    assert!(load_err(&m.build()).contains("buffer index 40 is out of range"));
}

#[test]
fn negative_and_huge_dimensions() {
    let mut m = reshape_model();
    m.tensors[0].shape = vec![2, -3];
    assert!(load_err(&m.build()).contains("negative dimension -3"));
    let mut m = reshape_model();
    m.tensors[0].shape = vec![1 << 30, 1 << 30, 4];
    assert!(load_err(&m.build()).contains("larger than"));
}

#[test]
fn bad_quantization_parameters() {
    for (scale, zp, want) in [
        (0.0, 0, "not a positive finite"),
        (f32::NAN, 0, "not a positive finite"),
        (0.5, 300, "outside the range of int8"),
    ] {
        let mut m = reshape_model();
        m.tensors[0] = TensorSpec::new(&[2, 3], 9, 0).quant(scale, zp);
        let e = load_err(&m.build());
        assert!(e.contains(want), "{e}");
    }
    let mut m = reshape_model();
    m.tensors[0].quant = Some((vec![0.1, 0.2], vec![0], 0));
    assert!(load_err(&m.build()).contains("2 quantization scales but 1 zero points"));
    m.tensors[0].quant = Some((vec![0.1, 0.2], vec![0, 0], 1));
    assert!(load_err(&m.build()).contains("per-channel scales do not match"));
}

#[test]
fn data_flow_errors() {
    // Reads a tensor nobody wrote.
    let mut m = reshape_model();
    let z = m.tensor(TensorSpec::new(&[2, 3], 9, 0));
    m.ops[0].inputs[0] = z;
    assert!(load_err(&m.build()).contains("reads tensor 3 before any operator writes it"));
    // Writes a subgraph input.
    let mut m = reshape_model();
    m.ops[0].outputs[0] = 0;
    assert!(load_err(&m.build()).contains("which is a subgraph input"));
    // Writes a constant.
    let mut m = reshape_model();
    m.ops[0].outputs[0] = 1;
    assert!(load_err(&m.build()).contains("which is a constant"));
    // Output never written.
    let mut m = reshape_model();
    let z = m.tensor(TensorSpec::new(&[2], 9, 0));
    m.outputs.push(z);
    assert!(load_err(&m.build()).contains("never written"));
}

#[test]
fn operator_level_checks() {
    let mut m = reshape_model();
    m.tensors[2].shape = vec![4, 2];
    assert!(load_err(&m.build()).contains("different element counts"));
    let mut m = reshape_model();
    m.ops[0].opcode_index = 5;
    assert!(load_err(&m.build()).contains("operator code 5"));
    let mut m = reshape_model();
    m.opcodes[0].2 = 9;
    assert_eq!(
        load_err(&m.build()),
        "unsupported model: operator 0 (RESHAPE) version 9 (versions 1 to 1 are supported)"
    );
    let mut m = reshape_model();
    m.opcodes[0].0 = 1000;
    assert!(load_err(&m.build()).contains("unsupported"));
    // A builtin operator the engine knows by name but does not run.
    let mut m = reshape_model();
    m.opcodes[0].0 = 34;
    assert_eq!(load_err(&m.build()), "unsupported model: operator 0 (PAD)");
    // Options of another operator's union type (Conv2DOptions on SOFTMAX).
    let mut m = reshape_model();
    m.opcodes[0].0 = 25;
    m.ops[0].inputs.truncate(1);
    m.ops[0] = m.ops[0].clone().options(1, &[]);
    assert_eq!(
        load_err(&m.build()),
        "invalid model: operator 0 (SOFTMAX): has builtin options of type 1, expected type 9"
    );
    let mut m = reshape_model();
    m.ops.push(OpSpec::new(0, &[2], &[2]));
    assert!(load_err(&m.build()).contains("writes tensor 2"));
}

#[test]
fn several_subgraphs_are_refused_clearly() {
    let mut m = reshape_model();
    m.subgraphs = 2;
    assert!(load_err(&m.build()).contains("2 subgraphs"));
}
