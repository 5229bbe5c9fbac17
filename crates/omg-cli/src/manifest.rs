//! Pipeline manifests (TOML): which models, labels, framing and recognizer settings a keyword
//! pipeline uses. `PIPELINE` arguments name a bundled pipeline (`micro_speech`), a directory
//! holding `pipeline.toml`, or a manifest file; model paths are relative to the manifest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use omg_engine::{DType, Interpreter};
use serde::Deserialize;

use crate::files::{MAX_MODEL_BYTES, read_limited};

/// A pipeline compiled into the binary.
struct Bundled {
    name: &'static str,
    manifest: &'static str,
    /// Model files by the names the manifest uses.
    files: &'static [(&'static str, &'static [u8])],
}

/// The bundled pipelines.
const BUNDLED: &[Bundled] = &[Bundled {
    name: "micro_speech",
    manifest: include_str!("../../../assets/pipelines/micro_speech/pipeline.toml"),
    files: &[(
        "micro_speech_quantized.tflite",
        include_bytes!("../../../assets/pipelines/micro_speech/micro_speech_quantized.tflite"),
    )],
}];

/// Names of the bundled pipelines.
pub fn bundled_names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|b| b.name)
}

/// A pipeline manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Pipeline name.
    pub name: String,
    /// Audio sample rate in Hz (16000).
    pub sample_rate: u32,
    /// How audio becomes features.
    pub frontend: Frontend,
    /// The keyword model.
    pub classifier: Classifier,
    /// How scores become events.
    #[serde(default)]
    pub recognizer: Recognizer,
    /// What may leave the pipeline.
    #[serde(default)]
    pub output: Output,
}

/// Which front end computes the features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrontendKind {
    /// omg's native micro_speech front end.
    Native,
    /// A preprocessor `.tflite` run by the engine.
    Model,
}

/// The `[frontend]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    /// Native or model.
    pub kind: FrontendKind,
    /// Preprocessor model (for `kind = "model"`).
    pub model: Option<String>,
    /// Analysis window in milliseconds.
    #[serde(default = "default_window_ms")]
    pub window_ms: u32,
    /// Hop between windows in milliseconds.
    #[serde(default = "default_stride_ms")]
    pub stride_ms: u32,
}

fn default_window_ms() -> u32 {
    30
}

fn default_stride_ms() -> u32 {
    20
}

/// The `[classifier]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classifier {
    /// Classifier model file.
    pub model: String,
    /// One label per output score, in order.
    pub labels: Vec<String>,
    /// Labels that produce events.
    pub keywords: Vec<String>,
    /// Feature frames per decision.
    pub frames: usize,
    /// Features per frame.
    pub channels: usize,
    /// Scale of the classifier's int8 input.
    pub input_scale: f32,
    /// Zero point of the classifier's int8 input.
    pub input_zero_point: i32,
    /// Classify every this many hops when streaming.
    #[serde(default = "one")]
    pub every_hops: usize,
}

fn one() -> usize {
    1
}

/// The `[recognizer]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recognizer {
    /// Scores are averaged over this window.
    pub average_window_ms: u32,
    /// Average score (0..=255, i.e. int8 score + 128) a keyword needs.
    pub detection_threshold: u32,
    /// No new event for this long after one.
    pub suppression_ms: u32,
    /// Fewest results in the averaging window before a decision is made.
    pub minimum_count: u32,
    /// Quietest audio (mean |sample| of the loudest frame the classifier sees) that can
    /// hold a keyword; quieter audio also ends the suppression. 0 turns this off.
    pub minimum_level: u32,
}

impl Default for Recognizer {
    /// omg-kws's defaults.
    fn default() -> Self {
        let d = omg_kws::RecognizerConfig::default();
        Self {
            average_window_ms: d.average_window_ms,
            detection_threshold: u32::from(d.detection_threshold),
            suppression_ms: d.suppression_ms,
            minimum_count: d.minimum_count as u32,
            minimum_level: u32::from(d.minimum_level),
        }
    }
}

/// What the pipeline may output, as the vendor's output policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputPolicy {
    /// Only the recognised label.
    Label,
    /// The label and its averaged score.
    #[default]
    LabelAndScore,
    /// The label and every class's raw scores.
    AllScores,
}

/// The `[output]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The output policy.
    #[serde(default)]
    pub policy: OutputPolicy,
}

/// A manifest with its model bytes, validated against each other.
pub struct Pipeline {
    /// Where it came from, for messages.
    pub origin: String,
    /// The manifest.
    pub manifest: Manifest,
    /// Classifier model bytes.
    pub classifier: Vec<u8>,
    /// Preprocessor model bytes (for a model front end).
    pub preprocessor: Option<Vec<u8>>,
}

impl Pipeline {
    /// Loads `spec`: a bundled pipeline name, a directory with `pipeline.toml`, or a manifest file.
    pub fn load(spec: &str) -> Result<Self> {
        if let Some(b) = BUNDLED.iter().find(|b| b.name == spec) {
            let name = b.name;
            let manifest = parse(b.manifest).with_context(|| format!("bundled pipeline {name}"))?;
            let file = |f: &str| -> Result<Vec<u8>> {
                b.files
                    .iter()
                    .find(|(n, _)| *n == f)
                    .map(|(_, b)| b.to_vec())
                    .with_context(|| format!("bundled pipeline {name} has no file {f}"))
            };
            return Self::assemble(format!("bundled pipeline {name}"), manifest, file);
        }
        let path = PathBuf::from(spec);
        let manifest_path = if path.is_dir() {
            path.join("pipeline.toml")
        } else {
            path
        };
        if !manifest_path.exists() {
            let names: Vec<_> = bundled_names().collect();
            bail!(
                "no pipeline {spec}: not a bundled pipeline ({}), a directory with pipeline.toml, or a manifest file",
                names.join(", ")
            );
        }
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let manifest = parse(&text).with_context(|| format!("{}", manifest_path.display()))?;
        let dir = manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self::assemble(manifest_path.display().to_string(), manifest, |f| {
            read_limited(&dir.join(f), MAX_MODEL_BYTES)
        })
    }

    /// Builds a pipeline from a parsed `manifest` and the model files `file` returns by the
    /// names the manifest uses, checking the models against the manifest; `origin` names the
    /// pipeline in messages.
    pub fn assemble(
        origin: String,
        manifest: Manifest,
        file: impl Fn(&str) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let classifier = file(&manifest.classifier.model)?;
        let preprocessor = match (manifest.frontend.kind, &manifest.frontend.model) {
            (FrontendKind::Model, Some(m)) => Some(file(m)?),
            (FrontendKind::Model, None) => {
                bail!("{origin}: a model front end needs frontend.model")
            }
            (FrontendKind::Native, _) => None,
        };
        let p = Self {
            origin,
            manifest,
            classifier,
            preprocessor,
        };
        p.check_models().with_context(|| p.origin.clone())?;
        Ok(p)
    }

    /// Checks the models' tensors against the manifest.
    fn check_models(&self) -> Result<()> {
        let c = &self.manifest.classifier;
        let interp = Interpreter::new(&self.classifier).context("classifier model")?;
        let input = interp.input_tensor(0)?;
        ensure!(
            interp.input_count() == 1 && interp.output_count() == 1,
            "the classifier must have one input and one output"
        );
        ensure!(
            input.dtype == DType::I8,
            "the classifier input is {}, expected int8",
            input.dtype.name()
        );
        ensure!(
            input.elements() == c.frames * c.channels,
            "the classifier takes {} values, but frames x channels is {}",
            input.elements(),
            c.frames * c.channels
        );
        let q = input
            .quant
            .as_ref()
            .context("the classifier input is not quantized")?;
        ensure!(
            q.zero_point[0] == c.input_zero_point
                && (q.scale[0] - c.input_scale).abs() <= 1e-6 * c.input_scale.abs(),
            "the classifier input is quantized with scale {} and zero point {}, the manifest says {} and {}",
            q.scale[0],
            q.zero_point[0],
            c.input_scale,
            c.input_zero_point
        );
        let output = interp.output_tensor(0)?;
        ensure!(
            output.dtype == DType::I8,
            "the classifier output is {}, expected int8",
            output.dtype.name()
        );
        ensure!(
            output.elements() == c.labels.len(),
            "the classifier gives {} scores for {} labels",
            output.elements(),
            c.labels.len()
        );
        if let Some(pre) = &self.preprocessor {
            let interp = Interpreter::new(pre).context("preprocessor model")?;
            let (i, o) = (interp.input_tensor(0)?, interp.output_tensor(0)?);
            ensure!(
                i.dtype == DType::I16 && i.elements() == self.window_samples(),
                "the preprocessor must take {} int16 samples",
                self.window_samples()
            );
            ensure!(
                o.dtype == DType::I8 && o.elements() == c.channels,
                "the preprocessor must give {} int8 features",
                c.channels
            );
        }
        Ok(())
    }

    /// Samples per analysis window.
    pub fn window_samples(&self) -> usize {
        samples(self.manifest.sample_rate, self.manifest.frontend.window_ms)
    }

    /// Samples per hop.
    pub fn hop_samples(&self) -> usize {
        samples(self.manifest.sample_rate, self.manifest.frontend.stride_ms)
    }
}

/// Samples in `ms` milliseconds at `rate` Hz (in 64 bits: the product overflows 32).
fn samples(rate: u32, ms: u32) -> usize {
    usize::try_from(u64::from(rate) * u64::from(ms) / 1000).unwrap_or(usize::MAX)
}

/// Longest front-end window a manifest may ask for, in ms.
const MAX_WINDOW_MS: u32 = 1000;

/// Parses and checks a manifest on its own (models are checked in [`Pipeline::load`]).
pub fn parse(text: &str) -> Result<Manifest> {
    let m: Manifest = toml::from_str(text).map_err(|e| anyhow::anyhow!("invalid manifest: {e}"))?;
    ensure!(
        m.sample_rate == 16_000,
        "sample_rate {} is not supported (16000)",
        m.sample_rate
    );
    let f = &m.frontend;
    ensure!(
        f.window_ms > 0 && f.stride_ms > 0 && f.stride_ms <= f.window_ms,
        "frontend window_ms and stride_ms must be positive, stride <= window"
    );
    ensure!(
        f.window_ms <= MAX_WINDOW_MS,
        "frontend window_ms must be at most {MAX_WINDOW_MS}"
    );
    if f.kind == FrontendKind::Native {
        ensure!(
            f.window_ms == 30 && f.stride_ms == 20 && m.classifier.channels == 40,
            "the native front end computes 40 channels from 30 ms windows every 20 ms"
        );
    }
    let c = &m.classifier;
    ensure!(!c.labels.is_empty(), "classifier.labels is empty");
    for (i, l) in c.labels.iter().enumerate() {
        ensure!(!c.labels[..i].contains(l), "label {l} is listed twice");
    }
    for k in &c.keywords {
        ensure!(c.labels.contains(k), "keyword {k} is not one of the labels");
    }
    ensure!(
        (1..=1000).contains(&c.frames) && (1..=1000).contains(&c.channels),
        "classifier frames and channels must be 1 to 1000"
    );
    ensure!(
        c.every_hops >= 1,
        "classifier.every_hops must be at least 1"
    );
    ensure!(
        c.input_scale.is_finite() && c.input_scale > 0.0,
        "classifier.input_scale must be positive"
    );
    ensure!(
        m.recognizer.detection_threshold <= 255,
        "recognizer.detection_threshold is on a 0..=255 scale"
    );
    ensure!(
        m.recognizer.average_window_ms > 0,
        "recognizer.average_window_ms must be positive"
    );
    ensure!(
        m.recognizer.minimum_level <= 32768,
        "recognizer.minimum_level is a mean sample magnitude, 0..=32768"
    );
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_pipeline_loads() {
        let p = Pipeline::load("micro_speech").unwrap();
        assert_eq!(
            p.manifest.classifier.labels,
            ["silence", "unknown", "yes", "no"]
        );
        assert_eq!((p.window_samples(), p.hop_samples()), (480, 320));
        assert!(p.preprocessor.is_none());
    }

    #[test]
    fn manifest_mistakes_are_explained() {
        let good = BUNDLED[0].manifest;
        for (from, to, want) in [
            (
                "keywords = [\"yes\", \"no\"]",
                "keywords = [\"maybe\"]",
                "keyword maybe is not one of the labels",
            ),
            (
                "sample_rate = 16000",
                "sample_rate = 8000",
                "sample_rate 8000",
            ),
            ("frames = 49", "frames = 0", "frames and channels"),
            ("kind = \"native\"", "kind = \"magic\"", "unknown variant"),
            (
                "every_hops = 1",
                "every_hops = 1\nbogus = 3",
                "unknown field",
            ),
            (
                "minimum_level = 100",
                "minimum_level = 40000",
                "recognizer.minimum_level",
            ),
            // 16000 * 300000 overflowed u32 in window_samples (a panic in debug builds).
            (
                "kind = \"native\"\nwindow_ms = 30",
                "kind = \"model\"\nwindow_ms = 300000",
                "window_ms must be at most 1000",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let e = parse(&good.replace(from, to)).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{from} -> {e:#}");
        }
    }

    #[test]
    fn sample_counts_do_not_overflow() {
        assert_eq!(samples(16_000, 30), 480);
        assert_eq!(samples(u32::MAX, u32::MAX), 18_446_744_065_119_617);
    }

    #[test]
    fn models_are_checked_against_the_manifest() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        std::fs::write(dir.join("m.tflite"), BUNDLED[0].files[0].1).unwrap();
        let manifest = BUNDLED[0]
            .manifest
            .replace("micro_speech_quantized.tflite", "m.tflite");
        std::fs::write(
            dir.join("pipeline.toml"),
            manifest.replace("frames = 49", "frames = 48"),
        )
        .unwrap();
        let e = Pipeline::load(dir.to_str().unwrap()).err().unwrap();
        assert!(
            format!("{e:#}").contains("frames x channels is 1920"),
            "{e:#}"
        );
        std::fs::write(
            dir.join("pipeline.toml"),
            manifest.replace(
                "labels = [\"silence\", \"unknown\", \"yes\", \"no\"]",
                "labels = [\"silence\", \"unknown\", \"yes\", \"no\", \"maybe\"]",
            ),
        )
        .unwrap();
        let e = Pipeline::load(dir.to_str().unwrap()).err().unwrap();
        assert!(format!("{e:#}").contains("4 scores for 5 labels"), "{e:#}");
        std::fs::write(dir.join("pipeline.toml"), &manifest).unwrap();
        assert!(Pipeline::load(dir.to_str().unwrap()).is_ok());
        assert!(
            format!("{:#}", Pipeline::load("no-such-pipeline").err().unwrap())
                .contains("micro_speech")
        );
    }
}
