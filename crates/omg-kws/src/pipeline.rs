//! Streaming keyword spotting: audio samples in, keyword events out.
//!
//! [`Pipeline`] owns a front end ([`FeatureExtractor`]: the native
//! [`MicroFrontend`] or a preprocessor model run by omg's interpreter), the
//! [`FeatureWindow`], the classifier [`Interpreter`] and the [`Recognizer`].
//! Every buffer is allocated by [`Pipeline::new`]; pushing audio allocates
//! nothing.
//!
//! Timing: frame `i` (0-based since the last reset) covers samples
//! `[hop * i, hop * i + window)`; a classification made after frame `i` is
//! stamped with the end of that window, `(hop * i + window) * 1000 / rate` ms:
//! the stream time of the last sample it has seen.
//!
//! Level: each frame's window also gets its mean absolute sample value; the
//! recognizer receives the loudest of the classifier's frames (see
//! [`Recognizer::process_with_level`]).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use omg_engine::memory::filled;
use omg_engine::{DType, Interpreter};

use crate::error::expect_len;
use crate::{Event, FeatureWindow, KwsError, MicroFrontend, Recognizer, RecognizerConfig};

/// A preprocessor model (e.g. `audio_preprocessor_int8.tflite`) used as the front end.
///
/// Input 0 must be int16 with `window_samples` elements, output 0 int8 with
/// one element per feature. Stateful operators keep their state across
/// windows until [`Self::reset`].
pub struct ModelFrontend<'m> {
    interpreter: Interpreter<'m>,
    window_samples: usize,
    hop_samples: usize,
    features: usize,
    sample_rate: u32,
}

impl<'m> ModelFrontend<'m> {
    /// Loads the preprocessor model and checks its input and output; the
    /// model does not say its hop or sample rate, so the caller does
    /// (320 and 16000 for micro_speech).
    pub fn new(model: &'m [u8], hop_samples: usize, sample_rate: u32) -> Result<Self, KwsError> {
        Self::from_interpreter(Interpreter::new(model)?, hop_samples, sample_rate)
    }

    /// Like [`Self::new`] for an interpreter built by the caller (e.g. with other kernels).
    pub fn from_interpreter(
        interpreter: Interpreter<'m>,
        hop_samples: usize,
        sample_rate: u32,
    ) -> Result<Self, KwsError> {
        let input = interpreter.input_tensor(0)?;
        if input.dtype != DType::I16 || input.elements() == 0 {
            return Err(KwsError::Model(format!(
                "preprocessor input 0 must be int16 samples, found {} {:?}",
                input.dtype.name(),
                input.shape
            )));
        }
        let window_samples = input.elements();
        let output = interpreter.output_tensor(0)?;
        if output.dtype != DType::I8 || output.elements() == 0 {
            return Err(KwsError::Model(format!(
                "preprocessor output 0 must be int8 features, found {} {:?}",
                output.dtype.name(),
                output.shape
            )));
        }
        let features = output.elements();
        if hop_samples == 0 || sample_rate == 0 {
            return Err(KwsError::Config("hop and sample rate must be positive"));
        }
        Ok(Self {
            interpreter,
            window_samples,
            hop_samples,
            features,
            sample_rate,
        })
    }

    /// Runs the model on one window.
    pub fn process(&mut self, window: &[i16], out: &mut [i8]) -> Result<(), KwsError> {
        expect_len("front-end window", self.window_samples, window.len())?;
        expect_len("front-end output", self.features, out.len())?;
        let input = self.interpreter.input_mut(0)?;
        for (bytes, &s) in input.chunks_exact_mut(2).zip(window) {
            bytes.copy_from_slice(&s.to_le_bytes());
        }
        self.interpreter.invoke()?;
        for (o, &b) in out.iter_mut().zip(self.interpreter.output(0)?) {
            *o = b as i8;
        }
        Ok(())
    }

    /// Clears the model's operator state.
    pub fn reset(&mut self) {
        self.interpreter.reset();
    }
}

/// The front end of a [`Pipeline`]: native or model-based, the caller chooses.
// One per pipeline, built once: the size difference of the variants costs nothing,
// and keeping `MicroFrontend` unboxed keeps the constructor a plain value.
#[allow(clippy::large_enum_variant)]
pub enum FeatureExtractor<'m> {
    /// The native micro_speech front end.
    Native(MicroFrontend),
    /// A preprocessor model run by omg's interpreter.
    Model(ModelFrontend<'m>),
}

impl FeatureExtractor<'_> {
    /// Features per frame.
    #[must_use]
    pub fn feature_count(&self) -> usize {
        match self {
            Self::Native(f) => f.feature_count(),
            Self::Model(m) => m.features,
        }
    }

    /// Samples per window.
    #[must_use]
    pub fn window_samples(&self) -> usize {
        match self {
            Self::Native(f) => f.window_samples(),
            Self::Model(m) => m.window_samples,
        }
    }

    /// Samples per hop.
    #[must_use]
    pub fn hop_samples(&self) -> usize {
        match self {
            Self::Native(f) => f.hop_samples(),
            Self::Model(m) => m.hop_samples,
        }
    }

    /// Sample rate in Hz.
    #[must_use]
    pub fn sample_rate(&self) -> u32 {
        match self {
            Self::Native(f) => f.sample_rate(),
            Self::Model(m) => m.sample_rate,
        }
    }

    /// Computes the feature frame of one window, updating the front end's state.
    pub fn process(&mut self, window: &[i16], out: &mut [i8]) -> Result<(), KwsError> {
        match self {
            Self::Native(f) => f.process(window, out),
            Self::Model(m) => m.process(window, out),
        }
    }

    /// Clears the front end's state.
    pub fn reset(&mut self) {
        match self {
            Self::Native(f) => f.reset(),
            Self::Model(m) => m.reset(),
        }
    }

    /// A clip's features: int8 `[frames][feature_count()]`, frame `i` from samples
    /// `[hop * i, hop * i + window)` while a whole window fits (as TFLM frames a clip; none if
    /// the clip is shorter than a window), from the front end's current state (a fresh or reset
    /// one gives TFLM's features).
    pub fn clip_features(&mut self, samples: &[i16]) -> Result<Vec<i8>, KwsError> {
        let (window, hop, channels) = (
            self.window_samples(),
            self.hop_samples(),
            self.feature_count(),
        );
        let frames = if samples.len() < window {
            0
        } else {
            (samples.len() - window) / hop + 1
        };
        let mut data = vec![0i8; frames * channels];
        for (i, frame) in data.chunks_exact_mut(channels).enumerate() {
            self.process(&samples[i * hop..i * hop + window], frame)?;
        }
        Ok(data)
    }
}

/// Pipeline settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Run the classifier every this many hops once the window is full (1 = every hop).
    pub classify_every_hops: usize,
    /// Recognizer settings.
    pub recognizer: RecognizerConfig,
}

impl Default for PipelineConfig {
    /// Classify every hop (20 ms for micro_speech) with the default recognizer.
    fn default() -> Self {
        Self {
            classify_every_hops: 1,
            recognizer: RecognizerConfig::default(),
        }
    }
}

/// Streaming keyword spotting (see the module docs).
pub struct Pipeline<'m> {
    frontend: FeatureExtractor<'m>,
    window: FeatureWindow,
    classifier: Interpreter<'m>,
    recognizer: Recognizer,
    classify_every_hops: usize,
    /// Audio of the window being assembled (`window_samples`).
    audio: Vec<i16>,
    filled: usize,
    /// Samples to drop before the next window (hop longer than the window).
    skip: usize,
    feature: Vec<i8>,
    scores: Vec<i8>,
    /// Mean |sample| of the window of each frame in the feature window (a ring
    /// indexed by frame number).
    levels: Vec<u16>,
    /// Frames computed since the last reset.
    frames: u64,
    until_classify: usize,
    /// Classifier runs since construction (never reset: it meters use).
    classifications: u64,
}

impl<'m> Pipeline<'m> {
    /// Builds a pipeline around `frontend` and the classifier model
    /// `classifier` (int8 input of `frames x features` values, frame-major;
    /// int8 output of one score per label). `is_keyword[i]` says whether
    /// label `i` is reported (see [`crate::recognizer::is_keyword_label`]).
    pub fn new(
        frontend: FeatureExtractor<'m>,
        classifier: &'m [u8],
        is_keyword: &[bool],
        config: &PipelineConfig,
    ) -> Result<Self, KwsError> {
        Self::with_classifier(frontend, Interpreter::new(classifier)?, is_keyword, config)
    }

    /// Like [`Self::new`] with an interpreter built by the caller.
    pub fn with_classifier(
        frontend: FeatureExtractor<'m>,
        classifier: Interpreter<'m>,
        is_keyword: &[bool],
        config: &PipelineConfig,
    ) -> Result<Self, KwsError> {
        let features = frontend.feature_count();
        let input = classifier.input_tensor(0)?;
        if input.dtype != DType::I8
            || input.elements() == 0
            || !input.elements().is_multiple_of(features)
        {
            return Err(KwsError::Model(format!(
                "classifier input 0 must be int8 with a multiple of {features} elements, \
                 found {} {:?}",
                input.dtype.name(),
                input.shape
            )));
        }
        let frames = input.elements() / features;
        let output = classifier.output_tensor(0)?;
        if output.dtype != DType::I8 || output.elements() != is_keyword.len() {
            return Err(KwsError::Model(format!(
                "classifier output 0 must be int8 with one score per label ({}), found {} {:?}",
                is_keyword.len(),
                output.dtype.name(),
                output.shape
            )));
        }
        if config.classify_every_hops == 0 {
            return Err(KwsError::Config("classify_every_hops must be at least 1"));
        }
        let window_samples = frontend.window_samples();
        if window_samples == 0 || frontend.hop_samples() == 0 || frontend.sample_rate() == 0 {
            return Err(KwsError::Config(
                "front end window, hop and rate must be positive",
            ));
        }
        // The averaging window must be able to hold `minimum_count` results,
        // or nothing is ever recognised.
        let r = &config.recognizer;
        let span = (r.minimum_count.saturating_sub(1) as u128)
            .saturating_mul(config.classify_every_hops as u128)
            .saturating_mul(frontend.hop_samples() as u128)
            .saturating_mul(1000);
        if span > u128::from(r.average_window_ms) * u128::from(frontend.sample_rate()) {
            return Err(KwsError::Config(
                "recognizer average_window_ms is too short for minimum_count results \
                 at this classification rate",
            ));
        }
        Ok(Self {
            window: FeatureWindow::new(frames, features)?,
            recognizer: Recognizer::new(&config.recognizer, is_keyword)?,
            classify_every_hops: config.classify_every_hops,
            audio: filled(window_samples, 0, "audio window")?,
            filled: 0,
            skip: 0,
            feature: filled(features, 0, "feature buffer")?,
            scores: vec![0; is_keyword.len()],
            levels: filled(frames, 0, "level buffer")?,
            frames: 0,
            until_classify: 0,
            classifications: 0,
            frontend,
            classifier,
        })
    }

    /// The front end (e.g. to compute features without classifying).
    pub fn frontend_mut(&mut self) -> &mut FeatureExtractor<'m> {
        &mut self.frontend
    }

    /// The feature window.
    #[must_use]
    pub fn window(&self) -> &FeatureWindow {
        &self.window
    }

    /// Number of frames the classifier sees (49 for micro_speech).
    #[must_use]
    pub fn frames(&self) -> usize {
        self.window.frames()
    }

    /// Classifier runs since the pipeline was built (not cleared by [`Self::reset`]).
    #[must_use]
    pub fn classifications(&self) -> u64 {
        self.classifications
    }

    /// Scores of the latest classification.
    #[must_use]
    pub fn scores(&self) -> &[i8] {
        &self.scores
    }

    /// Clears audio, front-end state, features, scores and recognizer.
    pub fn reset(&mut self) {
        self.reset_stream();
        self.scores.fill(0);
    }

    fn reset_stream(&mut self) {
        self.frontend.reset();
        self.window.clear();
        self.recognizer.reset();
        self.audio.fill(0);
        self.feature.fill(0);
        self.levels.fill(0);
        self.filled = 0;
        self.skip = 0;
        self.frames = 0;
        self.until_classify = 0;
    }

    /// Runs the classifier on the current window into `self.scores`.
    fn classify(&mut self) -> Result<(), KwsError> {
        self.classifications += 1;
        self.window.write_to_bytes(self.classifier.input_mut(0)?)?;
        self.classifier.invoke()?;
        for (s, &b) in self.scores.iter_mut().zip(self.classifier.output(0)?) {
            *s = b as i8;
        }
        Ok(())
    }

    /// End time in ms of the newest frame.
    fn frame_end_ms(&self) -> u64 {
        let hop = self.frontend.hop_samples() as u128;
        let end = u128::from(self.frames.saturating_sub(1)) * hop + self.audio.len() as u128;
        let ms = end * 1000 / u128::from(self.frontend.sample_rate());
        u64::try_from(ms).unwrap_or(u64::MAX)
    }

    /// Processes the full window in `self.audio`.
    fn on_window(&mut self, on_event: &mut impl FnMut(Event)) -> Result<(), KwsError> {
        self.frontend.process(&self.audio, &mut self.feature)?;
        self.window.push(&self.feature)?;
        let sum: u64 = self
            .audio
            .iter()
            .map(|&s| u64::from(s.unsigned_abs()))
            .sum();
        // A mean of values <= 32768 fits in u16.
        let level = u16::try_from(sum / self.audio.len() as u64).unwrap_or(u16::MAX);
        let slot = (self.frames % self.levels.len() as u64) as usize;
        self.levels[slot] = level;
        self.frames += 1;
        if !self.window.is_full() {
            return Ok(());
        }
        if self.until_classify > 0 {
            self.until_classify -= 1;
            return Ok(());
        }
        self.until_classify = self.classify_every_hops - 1;
        self.classify()?;
        let level = self.levels.iter().copied().max().unwrap_or(0);
        if let Some(event) =
            self.recognizer
                .process_with_level(self.frame_end_ms(), &self.scores, level)?
        {
            on_event(event);
        }
        Ok(())
    }

    /// Buffers `samples` and runs the front end once per hop as soon as a
    /// full window is available; once the feature window is full, classifies
    /// (every `classify_every_hops` hops) and calls `on_event` for each
    /// keyword the recognizer reports. Audio may arrive in chunks of any size.
    pub fn push_samples(
        &mut self,
        samples: &[i16],
        mut on_event: impl FnMut(Event),
    ) -> Result<(), KwsError> {
        let window = self.audio.len();
        let hop = self.frontend.hop_samples();
        let mut rest = samples;
        while !rest.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(rest.len());
                rest = &rest[n..];
                self.skip -= n;
                continue;
            }
            let n = (window - self.filled).min(rest.len());
            self.audio[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            rest = &rest[n..];
            if self.filled == window {
                self.on_window(&mut on_event)?;
                if hop < window {
                    self.audio.copy_within(hop.., 0);
                    self.filled = window - hop;
                } else {
                    self.filled = 0;
                    self.skip = hop - window;
                }
            }
        }
        Ok(())
    }

    /// One decision for a clip: resets, computes the first `frames()` frames
    /// (frame `i` from samples `[hop * i, hop * i + window)`, zero-padded past
    /// the end of the clip), classifies once and returns the int8 scores.
    /// The streaming state is reset again afterwards.
    pub fn classify_clip(&mut self, samples: &[i16]) -> Result<&[i8], KwsError> {
        self.reset();
        let hop = self.frontend.hop_samples();
        for i in 0..self.window.frames() {
            let start = i.saturating_mul(hop);
            let available = samples.get(start..).unwrap_or(&[]);
            let n = available.len().min(self.audio.len());
            self.audio[..n].copy_from_slice(&available[..n]);
            self.audio[n..].fill(0);
            let result = self
                .frontend
                .process(&self.audio, &mut self.feature)
                .and_then(|()| self.window.push(&self.feature));
            if let Err(e) = result {
                self.reset();
                return Err(e);
            }
        }
        let result = self.classify();
        self.reset_stream();
        result?;
        Ok(&self.scores)
    }
}
