//! Test-only helpers shared by omg's test suites. Only ever a dev-dependency: nothing here is
//! fit for shipped code.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod optee;

use alloc::vec;
use core::convert::Infallible;

use omg_protocol::bundle::{Bundle, RecognizerSettings};
use omg_protocol::licence::OutputPolicy;
use rand_core::{TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// A deterministic RNG for reproducible tests: SHA-256(SHA-256(seed) || counter) blocks.
///
/// It implements the `CryptoRng` traits only so that tests can drive code that requires them;
/// its output is predictable from the seed and must never generate real keys.
pub struct DeterministicRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    pos: usize,
}

impl DeterministicRng {
    /// A generator for `seed`; equal seeds give equal streams.
    pub fn new(seed: u64) -> Self {
        Self {
            seed: Sha256::digest(seed.to_le_bytes()).into(),
            counter: 0,
            block: [0; 32],
            pos: 32,
        }
    }
}

impl TryRng for DeterministicRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for d in dst {
            if self.pos == 32 {
                let mut h = Sha256::new();
                h.update(self.seed);
                h.update(self.counter.to_le_bytes());
                self.block = h.finalize().into();
                self.counter += 1;
                self.pos = 0;
            }
            *d = self.block[self.pos];
            self.pos += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for DeterministicRng {}

/// The labels of the micro_speech classifier, in output order.
pub const MICRO_SPEECH_LABELS: [&str; 4] = ["silence", "unknown", "yes", "no"];

/// A micro_speech pipeline bundle as the example pipeline ships it (30 ms windows every 20 ms,
/// the recognizer settings of TFLM's example) around `classifier` and an optional
/// model front end, with output policy `policy`.
pub fn micro_speech_bundle<'a>(
    classifier: &'a [u8],
    preprocessor: Option<&'a [u8]>,
    policy: OutputPolicy,
) -> Bundle<'a> {
    Bundle {
        name: "micro_speech",
        sample_rate: 16_000,
        window_ms: 30,
        stride_ms: 20,
        classifier,
        preprocessor,
        labels: MICRO_SPEECH_LABELS.to_vec(),
        is_keyword: vec![false, false, true, true],
        classify_every_hops: 1,
        recognizer: RecognizerSettings {
            average_window_ms: 40,
            detection_threshold: 215,
            suppression_ms: 1500,
            minimum_count: 3,
            minimum_level: 100,
        },
        output_policy: policy,
    }
}
