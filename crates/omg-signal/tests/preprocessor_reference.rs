//! End-to-end check of the micro_speech audio preprocessor: the stages of
//! `audio_preprocessor_int8.tflite` composed the way the model composes them,
//! against the int8 reference features shipped in the shared data.
//!
//! The window weights are derived here (Hann, Q12, as TFLM's
//! `window_op.hann_window_weights`) and checked byte for byte against the
//! model's constant. TODO: the filter-bank tables and the PCAN gain LUT are
//! read from the model file with a minimal flatbuffer reader; deriving them
//! (float32 mel math with `log1p`, `pow` for the PCAN gains) is left for the
//! native front end. The operator options are those of the model (see
//! `tools/tflm_dump_tensors.py` output); the int8 quantization constants are
//! read from the model and asserted.
//!
//! Data: `../shared/data` relative to the workspace root, or `$OMG_SHARED_DATA`.

use std::path::PathBuf;

use omg_signal::{
    Energy, FilterBank, FilterBankLog, Pcan, Rfft, SpectralSubtraction, Window, fft_auto_scale,
    filter_bank_square_root,
};

mod common;

fn shared_data() -> PathBuf {
    std::env::var_os("OMG_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        })
}

/// The model's constant tensors, looked up by name through omg's own model parser.
struct Model<'m>(omg_engine::Model<'m>);

impl Model<'_> {
    /// Raw bytes of the constant tensor named `name`.
    fn constant(&self, name: &str) -> &[u8] {
        let t = self
            .0
            .tensors
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor named {name}"));
        t.data.unwrap_or_else(|| panic!("{name} is not a constant"))
    }

    fn i16s(&self, name: &str) -> Vec<i16> {
        self.constant(name)
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    fn i32_scalar(&self, name: &str) -> i32 {
        i32::from_le_bytes(self.constant(name).try_into().unwrap())
    }
}

/// Hann window in Q`shift`: round_half_even((0.5 - 0.5 cos(2 pi (i + 0.5) / n)) * 2^shift).
fn hann_q(n: usize, shift: u32) -> Vec<i16> {
    let arg = std::f64::consts::PI * 2.0 / n as f64;
    (0..n)
        .map(|i| {
            ((0.5 - 0.5 * (arg * (i as f64 + 0.5)).cos()) * f64::from(1u32 << shift))
                .round_ties_even() as i16
        })
        .collect()
}

fn read_wav_mono16(path: &std::path::Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 16000, 16),
        "{}",
        path.display()
    );
    r.samples::<i16>().map(|s| s.unwrap()).collect()
}

/// The preprocessor graph, stage by stage, with its state.
struct Preprocessor {
    window: Window,
    fft: Rfft,
    energy: Energy,
    bank: FilterBank,
    subtraction: SpectralSubtraction,
    pcan: Pcan,
    log: FilterBankLog,
    quant: [i32; 5],
}

impl Preprocessor {
    fn new(model: &Model<'_>) -> Self {
        let window_weights = model.i16s("Const");
        assert_eq!(
            window_weights,
            hann_q(480, 12),
            "derived Hann window differs from the model's"
        );
        let (w, u) = (
            model.i16s("signal_filter_bank/Const"),
            model.i16s("signal_filter_bank/Const_1"),
        );
        let starts = model.i16s("signal_filter_bank/Const_2");
        let weight_starts = model.i16s("signal_filter_bank/Const_3");
        let widths = model.i16s("signal_filter_bank/Const_4");
        let bank = common::micro_speech_bank(&w, &u, &starts, &weight_starts, &widths);
        let quant = [
            model.i32_scalar("Const1"),
            model.i32_scalar("Cast_3"),
            model.i32_scalar("Const_1"),
            model.i32_scalar("Const_2"),
            model.i32_scalar("clip_by_value/Minimum/y"),
        ];
        assert_eq!(
            quant,
            [256, 333, 666, -128, 127],
            "int8 quantization constants"
        );
        Self {
            window: Window::new(&window_weights, 12).unwrap(),
            fft: Rfft::new(512).unwrap(),
            energy: Energy::new(5, 241).unwrap(),
            bank,
            subtraction: SpectralSubtraction::new(&common::micro_speech_subtraction(40)).unwrap(),
            pcan: Pcan::new(&model.i16s("signal_pcan/Const"), 6).unwrap(),
            log: FilterBankLog::new(64, 3).unwrap(),
            quant,
        }
    }

    /// One 480-sample frame to 40 int8 features.
    fn frame(&mut self, samples: &[i16]) -> [i8; 40] {
        let mut windowed = [0i16; 480];
        self.window.apply(samples, &mut windowed).unwrap();
        let mut scaled = [0i16; 480];
        let shift = fft_auto_scale(&windowed, &mut scaled).unwrap();
        let mut spectrum = [0i16; 514];
        self.fft.apply(&scaled, &mut spectrum).unwrap();
        // Bins outside [5, 241) are zeroed by STRIDED_SLICE + CONCATENATION.
        let mut energies = [0u32; 257];
        self.energy.apply(&spectrum, &mut energies).unwrap();
        let mut channels = [0u64; 40];
        self.bank.apply(&energies, &mut channels).unwrap();
        let mut roots = [0u32; 40];
        filter_bank_square_root(&channels, shift, &mut roots).unwrap();
        let mut cleaned = [0u32; 40];
        self.subtraction.process(&roots, &mut cleaned).unwrap();
        let mut gained = [0u32; 40];
        self.pcan
            .apply(&cleaned, self.subtraction.noise_estimate(), &mut gained)
            .unwrap();
        let mut logs = [0i16; 40];
        self.log.apply(&gained, &mut logs).unwrap();
        let [mul, add, div, offset, max] = self.quant;
        logs.map(|v| ((i32::from(v) * mul + add) / div + offset).clamp(offset, max) as i8)
    }
}

#[test]
#[ignore = "needs ../shared/data (run by .ci/run)"]
fn micro_speech_features_match_reference() {
    let data = shared_data().join("micro_speech");
    let bytes = std::fs::read(data.join("models/audio_preprocessor_int8.tflite"))
        .expect("model in shared data");
    let mut pre = Preprocessor::new(&Model(
        omg_engine::Model::parse(&bytes).expect("model parses"),
    ));
    let clips = [
        ("yes_1000ms", "yes_1000ms_features.bin", 49),
        ("no_1000ms", "no_1000ms_features.bin", 49),
        ("silence_1000ms", "silence_1000ms_features.bin", 49),
        ("noise_1000ms", "noise_1000ms_features.bin", 49),
        ("yes_30ms", "yes_30ms_feature.bin", 1),
        ("no_30ms", "no_30ms_feature.bin", 1),
    ];
    for (clip, reference, frames) in clips {
        let audio = read_wav_mono16(&data.join(format!("testdata/{clip}.wav")));
        let expected = std::fs::read(data.join(format!("reference/{reference}"))).unwrap();
        assert_eq!(expected.len(), frames * 40, "{reference}");
        pre.subtraction.reset();
        for f in 0..frames {
            let got = pre.frame(&audio[320 * f..320 * f + 480]);
            let want: Vec<i8> = expected[40 * f..40 * f + 40]
                .iter()
                .map(|&b| b as i8)
                .collect();
            assert_eq!(got.as_slice(), want.as_slice(), "{clip} frame {f}");
        }
    }
}
