//! The native front end against TFLM's `audio_preprocessor_int8.tflite`:
//! derived tables against the model's constants, features against the
//! reference features, and against the model itself run by omg's interpreter
//! on long, noisy audio.

mod common;

use common::{PREPROCESSOR, Rng, i8s, read, wav};
use omg_kws::frontend::DerivedTables;
use omg_kws::{FrontendConfig, MicroFrontend, ModelFrontend};

fn constant<'m>(model: &omg_engine::Model<'m>, name: &str) -> &'m [u8] {
    let t = model
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor named {name}"));
    t.data.unwrap_or_else(|| panic!("{name} is not a constant"))
}

fn i16s(b: &[u8]) -> Vec<i16> {
    b.chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn derived_tables_equal_model_constants() {
    let bytes = read(PREPROCESSOR);
    let model = omg_engine::Model::parse(&bytes).unwrap();
    let t = DerivedTables::new(&FrontendConfig::micro_speech()).unwrap();
    let fb = &t.filter_bank;
    let c16 = |name| i16s(constant(&model, name));
    assert_eq!(t.window, c16("Const"), "Hann window");
    assert_eq!(
        fb.weights,
        c16("signal_filter_bank/Const"),
        "filter bank weights"
    );
    assert_eq!(
        fb.unweights,
        c16("signal_filter_bank/Const_1"),
        "filter bank unweights"
    );
    assert_eq!(
        fb.channel_frequency_starts,
        c16("signal_filter_bank/Const_2"),
        "channel frequency starts"
    );
    assert_eq!(
        fb.channel_weight_starts,
        c16("signal_filter_bank/Const_3"),
        "channel weight starts"
    );
    assert_eq!(
        fb.channel_widths,
        c16("signal_filter_bank/Const_4"),
        "channel widths"
    );
    assert_eq!(
        t.pcan_gain_lut.to_vec(),
        c16("signal_pcan/Const"),
        "PCAN gain LUT"
    );
    // Energy range: the graph zeroes bins [0, start) and [end, 257).
    let c32 = |name| i32s(constant(&model, name));
    assert_eq!(c32("strided_slice/stack"), [fb.start_index as i32]);
    assert_eq!(c32("strided_slice/stack_1"), [fb.end_index as i32]);
    assert_eq!(c32("zeros").len(), fb.start_index);
    assert_eq!(c32("zeros_1").len(), 257 - fb.end_index);
    // int8 conversion constants.
    assert_eq!(
        [
            c32("Const1")[0],
            c32("Cast_3")[0],
            c32("Const_1")[0],
            c32("Const_2")[0],
            c32("clip_by_value/Minimum/y")[0]
        ],
        [t.int8_mul, t.int8_add, t.int8_div, t.int8_offset, 127]
    );
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn native_features_equal_reference_features() {
    let mut fe = MicroFrontend::new(&FrontendConfig::micro_speech()).unwrap();
    let clips = [
        ("yes_1000ms", "yes_1000ms_features.bin", 49),
        ("no_1000ms", "no_1000ms_features.bin", 49),
        ("silence_1000ms", "silence_1000ms_features.bin", 49),
        ("noise_1000ms", "noise_1000ms_features.bin", 49),
        ("yes_30ms", "yes_30ms_feature.bin", 1),
        ("no_30ms", "no_30ms_feature.bin", 1),
    ];
    for (clip, reference, frames) in clips {
        let audio = wav(&format!("micro_speech/testdata/{clip}.wav"));
        let expected = i8s(&read(&format!("micro_speech/reference/{reference}")));
        assert_eq!(expected.len(), frames * 40, "{reference}");
        fe.reset();
        let mut got = vec![0i8; frames * 40];
        for (f, out) in got.chunks_exact_mut(40).enumerate() {
            fe.process(&audio[320 * f..320 * f + 480], out).unwrap();
        }
        for f in 0..frames {
            assert_eq!(
                got[40 * f..40 * f + 40],
                expected[40 * f..40 * f + 40],
                "{clip} frame {f}"
            );
        }
    }
}

/// The four 1 s clips, each repeated with synthetic noise, gain changes and
/// clipping, plus silence, full-scale square waves and pure noise.
fn long_noisy_audio() -> Vec<i16> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let clips: Vec<Vec<i16>> = ["yes", "no", "silence", "noise"]
        .iter()
        .map(|c| wav(&format!("micro_speech/testdata/{c}_1000ms.wav")))
        .collect();
    let mut audio = Vec::new();
    for round in 0..10 {
        for (k, clip) in clips.iter().enumerate() {
            let gain = [1.0, 0.25, 4.0, 16.0, 0.02, 2.5][(round + k) % 6];
            let noise = [0, 30, 300, 3000, 12000, 8][(round * 3 + k) % 6];
            for &s in clip {
                let v = f64::from(s) * gain + f64::from(rng.sample(noise));
                audio.push(v.clamp(-32768.0, 32767.0) as i16);
            }
        }
        // Digital silence, then a square wave at full scale, then DC.
        audio.extend(std::iter::repeat_n(0, 3000 + 777 * round));
        let period = 10 + 13 * round;
        audio.extend((0..8000).map(|i| {
            if (i / period) % 2 == 0 {
                i16::MAX
            } else {
                i16::MIN
            }
        }));
        audio.extend(std::iter::repeat_n(i16::MIN, 2000));
        audio.extend((0..5000).map(|_| rng.sample(32767) as i16));
    }
    audio
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn native_front_end_equals_preprocessor_model_on_long_noisy_audio() {
    let bytes = read(PREPROCESSOR);
    let mut model = ModelFrontend::new(&bytes, 320, 16000).unwrap();
    let mut native = MicroFrontend::new(&FrontendConfig::micro_speech()).unwrap();
    let audio = long_noisy_audio();
    let frames = (audio.len() - 480) / 320 + 1;
    assert!(frames > 2000, "{frames} frames");
    let (mut a, mut b) = ([0i8; 40], [0i8; 40]);
    let mut nonzero_range = (127i8, -128i8);
    for f in 0..frames {
        let w = &audio[320 * f..320 * f + 480];
        native.process(w, &mut a).unwrap();
        model.process(w, &mut b).unwrap();
        assert_eq!(a, b, "frame {f} of {frames}");
        for &v in &a {
            nonzero_range = (nonzero_range.0.min(v), nonzero_range.1.max(v));
        }
        // Reset both in the middle once: state must restart identically.
        if f == frames / 2 {
            native.reset();
            model.reset();
        }
    }
    // The stream exercises the whole int8 range, clamps included.
    assert_eq!(
        nonzero_range,
        (-128, 127),
        "feature range {nonzero_range:?}"
    );
}
