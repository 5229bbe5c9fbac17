//! Pipeline manifests (TOML) on arbitrary text: `omg_cli::manifest::parse` and its checks, then,
//! for manifests that pass, the check against the models they name (`Pipeline::assemble`),
//! with the repository's micro_speech classifier as the only file there is.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use omg_cli::manifest::{Pipeline, parse};

const MODEL_NAME: &str = "micro_speech_quantized.tflite";
const MODEL: &[u8] =
    include_bytes!("../../assets/pipelines/micro_speech/micro_speech_quantized.tflite");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = parse(text) else { return };
    let files = |name: &str| {
        if name == MODEL_NAME {
            Ok(MODEL.to_vec())
        } else {
            anyhow::bail!("no file {name}")
        }
    };
    if let Ok(p) = Pipeline::assemble("fuzz".into(), manifest, files) {
        assert!(p.window_samples() >= p.hop_samples());
    }
});
