//! Valid samples of what the `audio` and `manifest` fuzz targets read, checked here and, with
//! `OMG_WRITE_FUZZ_SEEDS=DIR`, written to `DIR/TARGET/NAME` as the targets' seed corpora
//! (`fuzz/seeds`).

use omg_cli::audio::{decode_wav, read_s16le};
use omg_cli::manifest::{Pipeline, parse};

const MANIFEST: &str = include_str!("../../../assets/pipelines/micro_speech/pipeline.toml");

fn write(target: &str, name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("OMG_WRITE_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A short WAV file of `frames` frames of a ramp in the given format.
fn wav(channels: u16, rate: u32, bits: u16, float: bool, frames: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut cur = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
    for i in 0..frames * usize::from(channels) {
        let x = ((i * 37) % 200) as f32 / 100.0 - 1.0;
        if float {
            w.write_sample(x).unwrap();
        } else {
            w.write_sample((x * ((1i64 << (bits - 1)) - 1) as f32) as i32)
                .unwrap();
        }
    }
    w.finalize().unwrap();
    cur.into_inner()
}

#[test]
fn audio_seeds() {
    for (name, bytes) in [
        ("mono_16k_s16.wav", wav(1, 16_000, 16, false, 400)),
        ("stereo_8k_u8.wav", wav(2, 8_000, 8, false, 200)),
        ("mono_44k_f32.wav", wav(1, 44_100, 32, true, 300)),
        ("stereo_48k_s24.wav", wav(2, 48_000, 24, false, 300)),
    ] {
        assert!(
            !decode_wav(&bytes[..]).unwrap().samples.is_empty(),
            "{name}"
        );
        // The target's first byte: even for WAV.
        let mut seed = vec![0u8];
        seed.extend_from_slice(&bytes);
        write("audio", name, &seed);
    }
    // Odd first byte: raw s16le through reads of varying size.
    let raw: Vec<u8> = (0..300i16).flat_map(|i| (i * 97).to_le_bytes()).collect();
    let mut n = 0;
    read_s16le(&raw[..], |b| {
        n += b.len();
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 300);
    let mut seed = vec![5u8];
    seed.extend_from_slice(&raw);
    write("audio", "raw_s16le", &seed);
}

#[test]
fn manifest_seeds() {
    let model = |name: &str| -> anyhow::Result<Vec<u8>> {
        assert_eq!(name, "micro_speech_quantized.tflite");
        Ok(
            include_bytes!("../../../assets/pipelines/micro_speech/micro_speech_quantized.tflite")
                .to_vec(),
        )
    };
    Pipeline::assemble("seed".into(), parse(MANIFEST).unwrap(), model).unwrap();
    write("manifest", "micro_speech.toml", MANIFEST.as_bytes());
    // A model front end (the classifier named as the preprocessor: parses, then the model
    // check refuses it).
    let model_frontend = MANIFEST.replace(
        "kind = \"native\"",
        "kind = \"model\"\nmodel = \"micro_speech_quantized.tflite\"",
    );
    assert!(Pipeline::assemble("seed".into(), parse(&model_frontend).unwrap(), model).is_err());
    write("manifest", "model_frontend.toml", model_frontend.as_bytes());
    // A window whose sample count once overflowed 32 bits: refused.
    let huge_window = model_frontend.replace("window_ms = 30", "window_ms = 300000");
    let e = parse(&huge_window).unwrap_err();
    assert!(format!("{e:#}").contains("at most 1000"), "{e:#}");
    write("manifest", "huge_window.toml", huge_window.as_bytes());
}
