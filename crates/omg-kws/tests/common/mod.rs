//! Helpers shared by the tests that read `../shared/data`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `$OMG_SHARED_DATA`, or `../shared/data` next to the workspace.
pub fn shared_data() -> PathBuf {
    std::env::var_os("OMG_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        })
}

/// Bytes of a file under the shared data folder.
pub fn read(rel: &str) -> Vec<u8> {
    let p = shared_data().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A 16 kHz mono 16-bit WAV file.
pub fn read_wav(path: &Path) -> Vec<i16> {
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

/// A WAV file under the shared data folder.
pub fn wav(rel: &str) -> Vec<i16> {
    read_wav(&shared_data().join(rel))
}

/// Reinterprets bytes as int8.
pub fn i8s(bytes: &[u8]) -> Vec<i8> {
    bytes.iter().map(|&b| b as i8).collect()
}

pub const PREPROCESSOR: &str = "micro_speech/models/audio_preprocessor_int8.tflite";
pub const CLASSIFIER: &str = "micro_speech/models/micro_speech_quantized.tflite";
pub const KEYWORDS: [bool; 4] = [false, false, true, true];

/// Deterministic xorshift generator for synthetic audio.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `-amp..=amp`.
    pub fn sample(&mut self, amp: i32) -> i32 {
        if amp == 0 {
            return 0;
        }
        (self.next() % (2 * amp as u64 + 1)) as i32 - amp
    }
}
