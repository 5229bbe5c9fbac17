//! Conformance with TensorFlow Lite Micro: every reference tensor in the shared reference data
//! (`../shared/data`, produced by the real TFLM interpreter) must be reproduced byte for byte.
//!
//! These tests need that data, so they are `#[ignore]`d in a plain `cargo test`; `.ci/run` runs
//! them with `--ignored`. Set `OMG_SHARED_DATA` to use another location.

use std::path::PathBuf;

use omg_engine::{Interpreter, KernelSet};
use serde_json::Value;

fn data_dir() -> PathBuf {
    match std::env::var_os("OMG_SHARED_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

fn read(rel: &str) -> Vec<u8> {
    let p = data_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); is the shared reference data there?",
            p.display()
        )
    })
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).expect("reference JSON parses")
}

fn run_once(interp: &mut Interpreter<'_>, input: &[u8]) -> Vec<u8> {
    interp.set_input(0, input).expect("input size matches");
    interp.invoke().expect("invoke succeeds");
    interp.output(0).expect("output 0").to_vec()
}

fn i8s(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("int8 array")
        .iter()
        .map(|x| x.as_i64().expect("int") as i8 as u8)
        .collect()
}

/// First index where two byte strings differ, for readable failures.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i}: omg {} vs TFLM {}",
            got[i] as i8, want[i] as i8
        );
    }
}

/// 16-bit mono samples of a reference clip (stereo clips are not used here).
fn wav_samples(rel: &str) -> Vec<i16> {
    let mut r = hound::WavReader::open(data_dir().join(rel)).expect("wav opens");
    assert_eq!(r.spec().channels, 1);
    r.samples::<i16>().map(|s| s.expect("sample")).collect()
}

/// Runs a stateful audio preprocessor over a clip, one 30 ms frame every 20 ms, after one reset.
fn preprocess(interp: &mut Interpreter<'_>, samples: &[i16]) -> Vec<u8> {
    interp.reset();
    let mut out = Vec::new();
    let frames = if samples.len() < 480 {
        0
    } else {
        (samples.len() - 480) / 320 + 1
    };
    for f in 0..frames {
        let frame: Vec<u8> = samples[f * 320..f * 320 + 480]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        out.extend(run_once(interp, &frame));
    }
    out
}

// Every reference is checked with the reference kernels (the oracle) and with the optimized
// ones at every instruction-set level this CPU supports (`KernelSet::all_supported`): all must
// give the same bytes.

const CLIPS: [&str; 4] = ["yes_1000ms", "no_1000ms", "silence_1000ms", "noise_1000ms"];

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn micro_speech_classifier_matches_tflm() {
    for k in KernelSet::all_supported() {
        micro_speech_classifier_matches_tflm_with(k);
    }
}

fn micro_speech_classifier_matches_tflm_with(k: KernelSet) {
    let model = read("micro_speech/models/micro_speech_quantized.tflite");
    let mut interp = Interpreter::with_kernels(&model, k).unwrap();
    let out = run_once(
        &mut interp,
        &read("micro_speech/reference/micro_speech_random_input.bin"),
    );
    assert_same(
        "random input",
        &out,
        &read("micro_speech/reference/micro_speech_random_output_tflm.bin"),
    );
    for clip in CLIPS {
        let features = read(&format!("micro_speech/reference/{clip}_features.bin"));
        let out = run_once(&mut interp, &features);
        assert_same(
            clip,
            &out,
            &read(&format!("micro_speech/reference/{clip}_scores.bin")),
        );
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn int8_preprocessor_matches_tflm_frame_by_frame() {
    for k in KernelSet::all_supported() {
        int8_preprocessor_matches_tflm_frame_by_frame_with(k);
    }
}

fn int8_preprocessor_matches_tflm_frame_by_frame_with(k: KernelSet) {
    let model = read("micro_speech/models/audio_preprocessor_int8.tflite");
    let mut interp = Interpreter::with_kernels(&model, k).unwrap();
    for clip in CLIPS {
        let features = preprocess(
            &mut interp,
            &wav_samples(&format!("micro_speech/testdata/{clip}.wav")),
        );
        assert_same(
            clip,
            &features,
            &read(&format!("micro_speech/reference/{clip}_features.bin")),
        );
    }
    for clip in ["yes_30ms", "no_30ms"] {
        let feature = preprocess(
            &mut interp,
            &wav_samples(&format!("micro_speech/testdata/{clip}.wav")),
        );
        assert_same(
            clip,
            &feature,
            &read(&format!("micro_speech/reference/{clip}_feature.bin")),
        );
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn float_preprocessor_path_gives_tflm_scores() {
    for k in KernelSet::all_supported() {
        float_preprocessor_path_gives_tflm_scores_with(k);
    }
}

fn float_preprocessor_path_gives_tflm_scores_with(k: KernelSet) {
    let reference = json("micro_speech/reference/micro_speech_reference.json");
    let pre = read("micro_speech/models/audio_preprocessor_float.tflite");
    let kws = read("micro_speech/models/micro_speech_quantized.tflite");
    let mut pre = Interpreter::with_kernels(&pre, k).unwrap();
    let mut kws = Interpreter::with_kernels(&kws, k).unwrap();
    for clip in CLIPS {
        let raw = preprocess(
            &mut pre,
            &wav_samples(&format!("micro_speech/testdata/{clip}.wav")),
        );
        // Quantized as TFLM's evaluate.py does: truncation of x / scale - 128.
        let features: Vec<u8> = raw
            .chunks_exact(4)
            .map(|c| {
                ((f32::from_le_bytes(c.try_into().unwrap()) / 0.101_715_68 - 128.0) as i8) as u8
            })
            .collect();
        let int8 = read(&format!("micro_speech/reference/{clip}_features.bin"));
        let max_diff = features
            .iter()
            .zip(&int8)
            .map(|(a, b)| (*a as i8 as i32 - *b as i8 as i32).abs())
            .max();
        assert!(
            max_diff <= Some(1),
            "{clip}: float path differs from the int8 path by {max_diff:?}"
        );
        let scores = run_once(&mut kws, &features);
        let want = i8s(&reference["clips"][clip]["float_preprocessor_path"]["scores_int8"]);
        assert_same(clip, &scores, &want);
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn mlperf_tiny_random_inputs_match_tflm() {
    for k in KernelSet::all_supported() {
        mlperf_tiny_random_inputs_match_tflm_with(k);
    }
}

fn mlperf_tiny_random_inputs_match_tflm_with(k: KernelSet) {
    let reference = json("mlperf_tiny/reference/mlperf_tiny_reference.json");
    let models = reference["models"].as_object().unwrap();
    assert_eq!(models.len(), 6);
    for (name, m) in models {
        let model = read(m["model_file"].as_str().unwrap());
        let mut interp =
            Interpreter::with_kernels(&model, k).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = &m["random_test"];
        let out = run_once(&mut interp, &read(t["input_file"].as_str().unwrap()));
        assert_same(name, &out, &read(t["output_file_tflm"].as_str().unwrap()));
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn kws_real_audio_features_match_tflm() {
    for k in KernelSet::all_supported() {
        kws_real_audio_features_match_tflm_with(k);
    }
}

fn kws_real_audio_features_match_tflm_with(k: KernelSet) {
    let reference = json("mlperf_tiny/reference/mlperf_tiny_reference.json");
    let m = &reference["models"]["kws_ref_model"];
    let model = read(m["model_file"].as_str().unwrap());
    let mut interp = Interpreter::with_kernels(&model, k).unwrap();
    let clips = m["real_audio_test"]["clips"].as_object().unwrap();
    assert_eq!(clips.len(), 5);
    for (clip, c) in clips {
        let out = run_once(&mut interp, &read(c["mfcc_int8_file"].as_str().unwrap()));
        assert_same(clip, &out, &i8s(&c["output_int8_tflm"]));
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn anomaly_detection_196_real_windows_match_tflm() {
    for k in KernelSet::all_supported() {
        anomaly_detection_196_real_windows_match_tflm_with(k);
    }
}

fn anomaly_detection_196_real_windows_match_tflm_with(k: KernelSet) {
    let model = read("mlperf_tiny/models/ad01_int8.tflite");
    let mut interp = Interpreter::with_kernels(&model, k).unwrap();
    let inputs = read("mlperf_tiny/reference/ad01_real_inputs_q.bin");
    let outputs = read("mlperf_tiny/reference/ad01_real_outputs_tflm.bin");
    assert_eq!(inputs.len(), 196 * 640);
    for (w, (i, o)) in inputs
        .chunks_exact(640)
        .zip(outputs.chunks_exact(640))
        .enumerate()
    {
        assert_same(&format!("window {w}"), &run_once(&mut interp, i), o);
    }
}
