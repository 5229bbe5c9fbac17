//! The keyword-spotting front end and streaming pipeline on arbitrary audio: the bytes are
//! 16-bit samples pushed in chunks of varying size through the native micro_speech front end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omg_kws::{FrontendConfig, MicroFrontend};

fuzz_target!(|data: &[u8]| {
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let Ok(mut fe) = MicroFrontend::new(&FrontendConfig::default()) else {
        return;
    };
    let mut out = [0i8; 40];
    let (window, hop) = (fe.window_samples(), fe.hop_samples());
    let mut start = 0;
    while start + window <= samples.len() {
        fe.process(&samples[start..start + window], &mut out)
            .expect("a whole window is accepted");
        start += hop;
    }
    // Wrong lengths are errors, not panics.
    assert!(
        fe.process(
            &samples[..samples.len().min(window.saturating_sub(1))],
            &mut out
        )
        .is_err()
    );
});
