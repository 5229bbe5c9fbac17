//! The `omg` binary end to end on a small model from the fuzzing seeds (made by the engine's tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn omg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_omg"))
}

/// FULLY_CONNECTED int8 [1,2] x [[1,2],[3,4]] + [0,1] (see crates/omg-engine/tests/ops.rs).
fn fc_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/model/fully_connected.tflite")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omg-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `omg infer MODEL [EXTRA...] --input INPUT --output OUTPUT`.
fn infer(model: &Path, extra: &[&str], input: &Path, output: &Path) -> Output {
    omg()
        .arg("infer")
        .arg(model)
        .args(extra)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

#[test]
fn infer_writes_the_output_tensor() {
    let (input, output) = (tmp("in.bin"), tmp("out.bin"));
    std::fs::write(&input, [1u8, 1]).unwrap();
    let r = infer(&fc_model(), &[], &input, &output);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&output).unwrap(), [3, 8]);
}

#[test]
fn infer_sequence_concatenates_outputs() {
    let (input, output) = (tmp("seq-in.bin"), tmp("seq-out.bin"));
    std::fs::write(&input, [1u8, 1, 2, 0]).unwrap();
    let r = infer(&fc_model(), &["--sequence"], &input, &output);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(&output).unwrap(), [3, 8, 2, 7]);
}

#[test]
fn every_kernel_set_gives_the_same_bytes() {
    let input = tmp("k-in.bin");
    std::fs::write(&input, [1u8, 1]).unwrap();
    let mut sets = vec!["auto", "reference", "portable"];
    if omg_engine::Isa::Avx2.is_supported() {
        sets.push("avx2");
    }
    for set in sets {
        let output = tmp(&format!("k-out-{set}.bin"));
        let r = infer(&fc_model(), &["--kernels", set], &input, &output);
        assert!(
            r.status.success(),
            "{set}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert_eq!(std::fs::read(&output).unwrap(), [3, 8], "{set}");
    }
    let r = infer(
        &fc_model(),
        &["--kernels", "neon"],
        &input,
        &tmp("k-out-neon.bin"),
    );
    assert_eq!(r.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&r.stderr).contains("auto, reference, portable, avx2"));
}

#[test]
fn wrong_input_size_is_a_clear_error_and_writes_nothing() {
    let (input, output) = (tmp("bad-in.bin"), tmp("bad-out.bin"));
    std::fs::write(&input, [1u8, 2, 3]).unwrap();
    let r = infer(&fc_model(), &[], &input, &output);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("holds 3 bytes") && err.contains("2 bytes"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one-line reason: {err}");
    assert!(!output.exists());
}

#[test]
fn a_corrupt_model_is_refused() {
    let (model, input, output) = (tmp("corrupt.tflite"), tmp("c-in.bin"), tmp("c-out.bin"));
    let mut bytes = std::fs::read(fc_model()).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&model, bytes).unwrap();
    std::fs::write(&input, [0u8, 0]).unwrap();
    let r = infer(&model, &[], &input, &output);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot load"));
}

#[test]
fn bench_json_has_the_documented_fields() {
    let r = omg()
        .arg("bench")
        .arg(fc_model())
        .args(["--json", "--runs", "50"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    for key in ["median_us", "p99_us", "arena_bytes", "model_bytes", "runs"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["runs"], 50);
    assert!(v["arena_bytes"].as_u64().unwrap() >= 4);
}
