//! The keyword pipeline handle's safe core: a manifest with its models and the streaming
//! pipeline built from them, as `omg listen` builds it.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::CString;

use omg_cli::manifest;

use crate::error::Failure;
use crate::interpreter::kernel_set;

/// Most events kept for `omg_pipeline_poll` when no callback is set; past it the oldest are
/// dropped (and counted).
pub const OMG_MAX_QUEUED_EVENTS: usize = 256;

/// A recognised keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Index of the label in the pipeline's labels.
    pub label_index: usize,
    /// End of the audio that triggered it, in ms since the stream started (or the last reset).
    pub time_ms: u64,
    /// The label's averaged score, 0..=255.
    pub score: u8,
}

type Streaming<'m> = omg_kws::Pipeline<'m>;

self_cell::self_cell!(
    struct Cell {
        owner: manifest::Pipeline,
        #[not_covariant]
        dependent: Streaming,
    }
);

/// A keyword pipeline owning its manifest and models.
pub struct Pipeline {
    cell: Cell,
    kernels: &'static str,
    labels: Vec<CString>,
    sample_rate: u32,
    queue: VecDeque<Event>,
    dropped: u64,
}

impl Pipeline {
    /// Loads `spec`: a bundled pipeline name (`micro_speech`), a directory holding
    /// `pipeline.toml`, or a manifest file; its models run on the kernels named `kernels`
    /// (`None`: `auto`).
    pub fn open(spec: &str, kernels: Option<&str>) -> Result<Self, Failure> {
        let (set, name) = kernel_set(kernels)?;
        let p = manifest::Pipeline::load(spec)?;
        let labels = p
            .manifest
            .classifier
            .labels
            .iter()
            .map(|l| CString::new(l.replace('\0', "?")).unwrap_or_default())
            .collect();
        let sample_rate = p.manifest.sample_rate;
        let cell = Cell::try_new(p, |p| -> Result<_, Failure> {
            let bundle = omg_cli::bundle::of(p)?;
            omg_enclave::pipeline::build_with_kernels(&bundle, set)
                .map_err(|e| Failure::new(crate::error::OmgStatus::Pipeline, e.to_string()))
        })?;
        Ok(Self {
            cell,
            kernels: name,
            labels,
            sample_rate,
            queue: VecDeque::new(),
            dropped: 0,
        })
    }

    /// The kernel level the models run on.
    pub fn kernels(&self) -> &'static str {
        self.kernels
    }

    /// The classifier's labels, in score order.
    pub fn labels(&self) -> &[CString] {
        &self.labels
    }

    /// The sample rate the pipeline takes, in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Streams `samples` through the pipeline; returns the events they complete, in order.
    pub fn feed(&mut self, samples: &[i16]) -> Result<Vec<Event>, Failure> {
        let mut events = Vec::new();
        self.cell.with_dependent_mut(|_, p| {
            p.push_samples(samples, |e| {
                events.push(Event {
                    label_index: e.label_index,
                    time_ms: e.time_ms,
                    score: e.score,
                })
            })
        })?;
        Ok(events)
    }

    /// Queues `events` for [`Self::poll`], dropping the oldest past [`OMG_MAX_QUEUED_EVENTS`].
    pub fn enqueue(&mut self, events: Vec<Event>) {
        for e in events {
            if self.queue.len() == OMG_MAX_QUEUED_EVENTS {
                self.queue.pop_front();
                self.dropped += 1;
            }
            self.queue.push_back(e);
        }
    }

    /// The oldest queued event.
    pub fn poll(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    /// Events dropped from a full queue since the pipeline was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// One decision for a whole clip (its first frames, as `omg classify`): the int8 score of
    /// each label, written into `scores` (exactly one per label).
    pub fn classify_clip(&mut self, samples: &[i16], scores: &mut [i8]) -> Result<(), Failure> {
        if scores.len() != self.labels.len() {
            return Err(Failure::invalid(format!(
                "the scores buffer holds {} values, the pipeline has {} labels",
                scores.len(),
                self.labels.len()
            )));
        }
        if samples.is_empty() {
            return Err(Failure::invalid("the clip holds no samples"));
        }
        self.cell.with_dependent_mut(|_, p| {
            scores.copy_from_slice(p.classify_clip(samples)?);
            Ok::<_, omg_kws::KwsError>(())
        })?;
        Ok(())
    }

    /// A clip's features as `omg features` computes them: int8 `[frames][channels]` (see
    /// `omg_kws::FeatureExtractor::clip_features`) and the channel count. Like
    /// [`Self::classify_clip`], it resets the stream before and after (the event queue stays).
    pub fn features(&mut self, samples: &[i16]) -> Result<(Vec<i8>, usize), Failure> {
        self.cell.with_dependent_mut(|_, p| {
            p.reset();
            let fe = p.frontend_mut();
            let channels = fe.feature_count();
            let result = fe.clip_features(samples);
            p.reset();
            Ok((result?, channels))
        })
    }

    /// Clears the stream (audio, features, scores, recognizer) and the event queue.
    pub fn reset(&mut self) {
        self.cell.with_dependent_mut(|_, p| p.reset());
        self.queue.clear();
    }
}

/// Decodes a WAV file's bytes (any common rate, channel count and sample format) to 16 kHz mono
/// 16-bit samples, as `omg classify` reads its clips (downmixed, resampled with rubato).
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>, Failure> {
    Ok(omg_cli::audio::decode_wav(std::io::Cursor::new(bytes))?.samples)
}

/// Like [`decode_wav`], reading the file at `path`.
pub fn read_wav(path: &std::path::Path) -> Result<Vec<i16>, Failure> {
    Ok(omg_cli::audio::read_wav(path)?.samples)
}
