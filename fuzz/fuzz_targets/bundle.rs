//! The pipeline bundle (zero-copy canonical CBOR) on arbitrary bytes, then the enclave's
//! pipeline builder on whatever parses: models validated and prepared, front end configured,
//! and, when the pipeline builds, a little audio (derived from the input) pushed through it.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use omg_protocol::bundle::Bundle;

/// Models whose arena is larger than this are parsed but not run.
const MAX_RUN_ARENA: usize = 1 << 20;
/// Most samples pushed through a pipeline that builds.
const MAX_SAMPLES: usize = 24_000;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    let small =
        |m: &[u8]| omg_engine::Interpreter::new(m).is_ok_and(|i| i.arena_bytes() <= MAX_RUN_ARENA);
    if !small(bundle.classifier) || !bundle.preprocessor.is_none_or(small) {
        return;
    }
    let Ok(mut pipeline) = omg_enclave::pipeline::build(&bundle) else {
        return;
    };
    let fe = pipeline.frontend_mut();
    let (window, hop) = (fe.window_samples(), fe.hop_samples());
    let want = hop
        .saturating_mul(pipeline.frames().saturating_add(2))
        .saturating_add(window);
    let n = want.min(MAX_SAMPLES);
    let samples: Vec<i16> = (0..n)
        .map(|i| i16::from_le_bytes([data[(2 * i) % data.len()], data[(2 * i + 1) % data.len()]]))
        .collect();
    let labels = bundle.labels.len();
    for chunk in samples.chunks(hop.clamp(1, 4000)) {
        pipeline
            .push_samples(chunk, |e| {
                assert!(e.label_index < labels, "event for no label")
            })
            .ok();
    }
});
