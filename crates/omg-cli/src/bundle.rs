//! A pipeline manifest as the pipeline bundle the enclave runs (the plaintext of a package).

use anyhow::{Context, Result};
use omg_protocol::bundle::{Bundle, RecognizerSettings};
use omg_protocol::licence;

use crate::manifest::{self, FrontendKind};

/// The bundle of `p`, borrowing its models.
pub fn of(p: &manifest::Pipeline) -> Result<Bundle<'_>> {
    let m = &p.manifest;
    let c = &m.classifier;
    let r = &m.recognizer;
    let bundle = Bundle {
        name: &m.name,
        sample_rate: m.sample_rate,
        window_ms: m.frontend.window_ms,
        stride_ms: m.frontend.stride_ms,
        classifier: &p.classifier,
        preprocessor: match m.frontend.kind {
            FrontendKind::Native => None,
            FrontendKind::Model => p.preprocessor.as_deref(),
        },
        labels: c.labels.iter().map(String::as_str).collect(),
        is_keyword: c.labels.iter().map(|l| c.keywords.contains(l)).collect(),
        classify_every_hops: u32::try_from(c.every_hops).context("every_hops is too large")?,
        recognizer: RecognizerSettings {
            average_window_ms: r.average_window_ms,
            detection_threshold: u8::try_from(r.detection_threshold)
                .context("detection_threshold must be 0..=255")?,
            suppression_ms: r.suppression_ms,
            minimum_count: r.minimum_count,
            minimum_level: u16::try_from(r.minimum_level)
                .context("minimum_level must be 0..=32768")?,
        },
        output_policy: match m.output.policy {
            manifest::OutputPolicy::Label => licence::OutputPolicy::LabelOnly,
            manifest::OutputPolicy::LabelAndScore => licence::OutputPolicy::LabelAndScore,
            manifest::OutputPolicy::AllScores => licence::OutputPolicy::AllScores,
        },
    };
    Ok(bundle)
}
