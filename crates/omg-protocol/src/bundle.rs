//! The pipeline bundle: everything the enclave needs to run a vendor's keyword-spotting
//! pipeline, as the plaintext of a model package.
//!
//! # Layout
//!
//! ```text
//! Bundle = {
//!     1: 1,                      ; bundle format version
//!     2: tstr,                   ; pipeline name (1..=128 bytes)
//!     3: uint,                   ; sample rate in Hz
//!     4: uint,                   ; front-end window in ms
//!     5: uint,                   ; front-end stride (hop) in ms
//!     6: bstr,                   ; classifier .tflite
//!     ? 7: bstr,                 ; preprocessor .tflite; absent = the native micro_speech front end
//!     8: [+ tstr],               ; labels, in classifier output order (1..=256, each 1..=64 bytes)
//!     9: [* uint],               ; indices of the labels that are keywords, ascending
//!     10: uint,                  ; classify every this many hops (>= 1)
//!     11: [uint, uint, uint, uint, uint],  ; recognizer: average window ms, detection
//!                                    ; threshold (0..=255), suppression ms, minimum count,
//!                                    ; minimum level (0..=32768)
//!     12: uint,                  ; output policy ceiling: 0 label, 1 label and score, 2 all scores
//! }
//! ```
//!
//! Canonical CBOR (shortest lengths, definite lengths, keys ascending, no other keys), at most
//! [`MAX_BUNDLE_LEN`] bytes. The bundle only ever exists inside a package's authenticated
//! encryption, so it is not signed on its own. [`Bundle::parse`] borrows the models, the name
//! and the labels from the decrypted buffer: the model plaintext is never copied out of the
//! memory it was decrypted into.
//!
//! The output policy here is the pipeline's ceiling; the licence carries the vendor's policy
//! for one device, and the enclave applies the stricter of the two.

use alloc::vec;
use alloc::vec::Vec;

use coset::cbor::value::Value;

use crate::cbor::{self, SliceReader};
use crate::error::{Format, ProtocolError, Result};
use crate::licence::OutputPolicy;
use crate::package::MAX_PACKAGE_LEN;

/// Maximum size of a bundle (the package's maximum).
pub const MAX_BUNDLE_LEN: usize = MAX_PACKAGE_LEN;
/// Bundle format version.
pub const BUNDLE_FORMAT_VERSION: u64 = 1;
/// Maximum number of labels.
pub const MAX_LABELS: usize = 256;
/// Maximum length of one label in bytes.
pub const MAX_LABEL_LEN: usize = 64;
/// Maximum length of the pipeline name in bytes.
pub const MAX_NAME_LEN: usize = 128;

const F: Format = Format::Bundle;
const KEY_NAMES: [&str; 12] = [
    "format version",
    "name",
    "sample rate",
    "window ms",
    "stride ms",
    "classifier",
    "preprocessor",
    "labels",
    "keywords",
    "classify every hops",
    "recognizer",
    "output policy",
];

/// Settings of the command recognizer (see `omg_kws::RecognizerConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecognizerSettings {
    /// Scores are averaged over this many milliseconds.
    pub average_window_ms: u32,
    /// Averaged score (0..=255) a keyword must reach.
    pub detection_threshold: u8,
    /// No further detection for this long after one.
    pub suppression_ms: u32,
    /// Minimum number of classifications in the averaging window.
    pub minimum_count: u32,
    /// Quietest audio (mean absolute sample of the loudest window) that can hold a keyword;
    /// 0 turns the level rules off.
    pub minimum_level: u16,
}

/// A keyword-spotting pipeline, borrowing its models and strings from the bundle bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// Pipeline name.
    pub name: &'a str,
    /// Audio sample rate in Hz.
    pub sample_rate: u32,
    /// Front-end window in ms.
    pub window_ms: u32,
    /// Front-end stride in ms.
    pub stride_ms: u32,
    /// The classifier model (.tflite).
    pub classifier: &'a [u8],
    /// The preprocessor model (.tflite), or `None` for the native micro_speech front end.
    pub preprocessor: Option<&'a [u8]>,
    /// Labels in classifier output order.
    pub labels: Vec<&'a str>,
    /// `is_keyword[i]`: label `i` produces events (silence and unknown do not).
    pub is_keyword: Vec<bool>,
    /// Classify every this many hops.
    pub classify_every_hops: u32,
    /// Recognizer settings.
    pub recognizer: RecognizerSettings,
    /// The most the pipeline may reveal per decision.
    pub output_policy: OutputPolicy,
}

fn invalid(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidField {
        format: F,
        field,
        reason,
    }
}

impl<'a> Bundle<'a> {
    fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(invalid("name", "must be 1..=128 bytes"));
        }
        if self.sample_rate == 0 || self.window_ms == 0 || self.stride_ms == 0 {
            return Err(invalid(
                "framing",
                "sample rate, window and stride must be positive",
            ));
        }
        if self.classifier.is_empty() {
            return Err(invalid("classifier", "empty model"));
        }
        if self.preprocessor.is_some_and(<[u8]>::is_empty) {
            return Err(invalid("preprocessor", "empty model"));
        }
        if self.labels.is_empty() || self.labels.len() > MAX_LABELS {
            return Err(invalid("labels", "must hold 1..=256 labels"));
        }
        if self
            .labels
            .iter()
            .any(|l| l.is_empty() || l.len() > MAX_LABEL_LEN)
        {
            return Err(invalid("labels", "each label must be 1..=64 bytes"));
        }
        if self.is_keyword.len() != self.labels.len() {
            return Err(invalid("keywords", "one flag per label"));
        }
        if self.classify_every_hops == 0 {
            return Err(invalid("classify every hops", "must be at least 1"));
        }
        Ok(())
    }

    /// Encodes the bundle (canonical CBOR). Fails on an invalid bundle.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let r = &self.recognizer;
        let mut m = vec![
            (1, cbor::u(BUNDLE_FORMAT_VERSION)),
            (2, Value::Text(self.name.into())),
            (3, cbor::u(self.sample_rate.into())),
            (4, cbor::u(self.window_ms.into())),
            (5, cbor::u(self.stride_ms.into())),
            (6, Value::Bytes(self.classifier.to_vec())),
        ];
        if let Some(p) = self.preprocessor {
            m.push((7, Value::Bytes(p.to_vec())));
        }
        m.push((
            8,
            Value::Array(
                self.labels
                    .iter()
                    .map(|l| Value::Text((*l).into()))
                    .collect(),
            ),
        ));
        m.push((
            9,
            Value::Array(
                (0..self.labels.len())
                    .filter(|&i| self.is_keyword[i])
                    .map(|i| cbor::u(i as u64))
                    .collect(),
            ),
        ));
        m.push((10, cbor::u(self.classify_every_hops.into())));
        m.push((
            11,
            Value::Array(vec![
                cbor::u(r.average_window_ms.into()),
                cbor::u(r.detection_threshold.into()),
                cbor::u(r.suppression_ms.into()),
                cbor::u(r.minimum_count.into()),
                cbor::u(r.minimum_level.into()),
            ]),
        ));
        m.push((12, cbor::u(self.output_policy as u64)));
        let out = cbor::encode(&cbor::int_map(m), F)?;
        cbor::check_size(&out, MAX_BUNDLE_LEN, F)?;
        Ok(out)
    }

    /// Parses a bundle without copying its models, name or labels.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        cbor::check_size(bytes, MAX_BUNDLE_LEN, F)?;
        let mut r = SliceReader::new(bytes, F);
        let entries = r.map("bundle must be a CBOR map")?;
        let mut bundle = Bundle {
            name: "",
            sample_rate: 0,
            window_ms: 0,
            stride_ms: 0,
            classifier: &[],
            preprocessor: None,
            labels: Vec::new(),
            is_keyword: Vec::new(),
            classify_every_hops: 0,
            recognizer: RecognizerSettings {
                average_window_ms: 0,
                detection_threshold: 0,
                suppression_ms: 0,
                minimum_count: 0,
                minimum_level: 0,
            },
            output_policy: OutputPolicy::LabelOnly,
        };
        let mut keyword_indices = Vec::new();
        let mut seen = 0u16;
        let mut last = 0u64;
        for _ in 0..entries {
            let key = r.uint("map key")?;
            let Some(name) = usize::try_from(key)
                .ok()
                .and_then(|k| KEY_NAMES.get(k.wrapping_sub(1)))
            else {
                return Err(ProtocolError::UnknownField {
                    format: F,
                    key: i64::try_from(key).unwrap_or(i64::MAX),
                });
            };
            if key <= last {
                return Err(if seen & (1 << key) != 0 {
                    ProtocolError::DuplicateField {
                        format: F,
                        field: name,
                    }
                } else {
                    ProtocolError::Malformed {
                        format: F,
                        what: "map keys must be in ascending order",
                    }
                });
            }
            seen |= 1 << key;
            last = key;
            match key {
                1 => {
                    let version = r.uint(name)?;
                    if version != BUNDLE_FORMAT_VERSION {
                        return Err(ProtocolError::UnsupportedVersion { format: F, version });
                    }
                }
                2 => bundle.name = r.text(name, MAX_NAME_LEN)?,
                3 => bundle.sample_rate = r.uint32(name)?,
                4 => bundle.window_ms = r.uint32(name)?,
                5 => bundle.stride_ms = r.uint32(name)?,
                6 => bundle.classifier = r.bytes(name, MAX_BUNDLE_LEN)?,
                7 => bundle.preprocessor = Some(r.bytes(name, MAX_BUNDLE_LEN)?),
                8 => {
                    let n = r.array(name, 1, MAX_LABELS)?;
                    for _ in 0..n {
                        bundle.labels.push(r.text(name, MAX_LABEL_LEN)?);
                    }
                }
                9 => {
                    let n = r.array(name, 0, MAX_LABELS)?;
                    for _ in 0..n {
                        keyword_indices.push(r.uint(name)?);
                    }
                }
                10 => bundle.classify_every_hops = r.uint32(name)?,
                11 => {
                    if r.array(name, 5, 5)? != 5 {
                        return Err(invalid(name, "must hold 5 settings"));
                    }
                    bundle.recognizer = RecognizerSettings {
                        average_window_ms: r.uint32(name)?,
                        detection_threshold: u8::try_from(r.uint(name)?)
                            .map_err(|_| invalid(name, "threshold must be 0..=255"))?,
                        suppression_ms: r.uint32(name)?,
                        minimum_count: r.uint32(name)?,
                        minimum_level: u16::try_from(r.uint(name)?)
                            .ok()
                            .filter(|&l| l <= 32768)
                            .ok_or(invalid(name, "minimum level must be 0..=32768"))?,
                    };
                }
                _ => {
                    bundle.output_policy = OutputPolicy::from_u64(r.uint(name)?)
                        .ok_or(invalid(name, "must be 0, 1 or 2"))?;
                }
            }
        }
        r.finish()?;
        for (bit, field) in [(1, "format version"), (2, "name"), (3, "sample rate")]
            .into_iter()
            .chain([(4, "window ms"), (5, "stride ms"), (6, "classifier")])
            .chain([(8, "labels"), (9, "keywords"), (10, "classify every hops")])
            .chain([(11, "recognizer"), (12, "output policy")])
        {
            if seen & (1 << bit) == 0 {
                return Err(ProtocolError::MissingField { format: F, field });
            }
        }
        bundle.is_keyword = vec![false; bundle.labels.len()];
        let mut previous = None;
        for i in keyword_indices {
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| bundle.is_keyword.get_mut(i))
                .ok_or(invalid("keywords", "index out of range"))?;
            if previous.is_some_and(|p| p >= i) {
                return Err(invalid("keywords", "indices must be ascending"));
            }
            previous = Some(i);
            *slot = true;
        }
        bundle.validate()?;
        Ok(bundle)
    }
}
