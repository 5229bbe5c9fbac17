//! Turning a stream of classifier scores into keyword events.
//!
//! [`Recognizer`] follows TFLM micro_speech's `RecognizeCommands`
//! (`recognize_commands.cc`): it keeps
//! the results of the last `average_window_ms`, averages each label's score
//! on the 0..=255 scale (`score + 128`, integer mean truncated), needs at
//! least `minimum_count` results spanning a quarter of the window before it
//! decides anything, and reports the top label when its average exceeds
//! `detection_threshold`. Differences, chosen so that one spoken keyword gives
//! exactly one event:
//!
//! * Only keyword labels are reported; non-keyword labels (silence, unknown)
//!   can still be the top label and then re-arm the detector.
//! * An event needs a rising edge: the label must not already have been the
//!   top label above threshold at the previous decision. TFLM re-reports a
//!   label that stays on top for longer than the suppression time; a word
//!   stays visible in a 1 s classifier window for about 1.5 s, so with TFLM's
//!   rule a slow word could give two events.
//! * After an event no keyword at all is reported for `suppression_ms` (TFLM
//!   suppresses only the same label, although its comment says "another
//!   label"): a word leaving the classifier window is often read as a
//!   different keyword, and a score that dips under the threshold and comes
//!   back must not give a second event either.
//! * Audio level (optional, [`Recognizer::process_with_level`]): a result
//!   whose classifier input was quieter than `minimum_level` never counts as
//!   above threshold. A gain-normalising front end (micro_speech's noise
//!   reduction and PCAN) turns near-silence, such as a faint hiss after digital
//!   zeros, into features as strong as speech, and the classifier then reads
//!   confident keywords in it. Such a quiet result also ends the suppression
//!   early: the word that caused the last event has left the classifier's
//!   window, so the next keyword can follow closely.
//! * Results are stored in a ring of `max_results` entries allocated at
//!   construction (the oldest are dropped first); times are `u64` ms.

use alloc::vec;
use alloc::vec::Vec;

use crate::KwsError;
use crate::error::expect_len;

/// Recognizer settings; see [`RecognizerConfig::default`] for the chosen values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecognizerConfig {
    /// Results older than this (relative to the newest) are not averaged.
    pub average_window_ms: u32,
    /// An average (0..=255 scale, i.e. int8 score + 128) must exceed this to count.
    pub detection_threshold: u8,
    /// After an event, no keyword is reported for this long (or until a
    /// result quieter than `minimum_level`).
    pub suppression_ms: u32,
    /// At least this many results must be in the window before any decision.
    pub minimum_count: usize,
    /// Quietest classifier input that can hold a keyword: the mean absolute
    /// sample value of the loudest front-end window among the classifier's
    /// frames (see [`Recognizer::process_with_level`]); 0 turns the level
    /// rules off.
    pub minimum_level: u16,
    /// Capacity of the result ring (allocated once). Should cover the results
    /// of one averaging window (3 for 40 ms at one result per 20 ms hop);
    /// beyond it the oldest results are dropped, shortening the window.
    pub max_results: usize,
}

impl Default for RecognizerConfig {
    /// 40 ms averaging (the last 3 results at one per 20 ms hop), threshold
    /// 215 (an average probability above 0.84), 1500 ms suppression, at
    /// least 3 results, minimum level 100 (roughly -50 dBFS), room for 64
    /// results.
    ///
    /// Chosen for micro_speech classified on every 20 ms hop, from its
    /// per-hop scores on streams of the 28 yes/no/silence/noise clips of the
    /// shared data with gaps of digital silence or faint noise. A keyword is
    /// often read with confidence (above 230) for only a few hundred ms, for
    /// some words only from 0.7-1.0 s after the onset (once the word sits
    /// early in the 1 s classifier input); the confusions that must not
    /// become events (such as the start of a "yes" read as "no") stay near
    /// 200 for similar durations. A short average with a high threshold
    /// tells them apart and reacts in time; a longer average needs a lower
    /// threshold and comes too late for the slow words (with 300 ms and 150,
    /// 2 of the 26 keywords came 1.03 s after their onset).
    /// On the 1.5 s-gap stream every threshold from 201 to 219 reports each
    /// keyword exactly once within 1 s and nothing else. The suppression
    /// covers the tail of a word leaving the classifier's input, read as the
    /// other keyword about 0.7-1.3 s after the event; the level rules end it
    /// early once the word is out of the input, and keep the keywords that
    /// the model hallucinates in near-silence out.
    fn default() -> Self {
        Self {
            average_window_ms: 40,
            detection_threshold: 215,
            suppression_ms: 1500,
            minimum_count: 3,
            minimum_level: 100,
            max_results: 64,
        }
    }
}

/// A recognised keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Index of the label in the classifier's output.
    pub label_index: usize,
    /// Time of the result that triggered the event, in ms.
    pub time_ms: u64,
    /// The label's average score on the 0..=255 scale (`int8 + 128`).
    pub score: u8,
}

/// True for labels that name a keyword, false for the conventional
/// non-keyword labels `silence`, `unknown`, `_silence_`, `_unknown_`,
/// `background` and `_background_noise_` (ASCII case-insensitive).
#[must_use]
pub fn is_keyword_label(label: &str) -> bool {
    const NON_KEYWORDS: [&str; 6] = [
        "silence",
        "unknown",
        "_silence_",
        "_unknown_",
        "background",
        "_background_noise_",
    ];
    !NON_KEYWORDS.iter().any(|n| n.eq_ignore_ascii_case(label))
}

/// The command recognizer (see the module docs).
#[derive(Debug, Clone)]
pub struct Recognizer {
    config: RecognizerConfig,
    is_keyword: Vec<bool>,
    /// Ring of (time, scores + 128).
    times: Vec<u64>,
    scores: Vec<u8>,
    head: usize,
    len: usize,
    sums: Vec<u32>,
    latest_ms: Option<u64>,
    /// The top label above threshold at the previous decision.
    active: Option<usize>,
    /// Time of the last event.
    last_event_ms: Option<u64>,
    /// A result quieter than `minimum_level` came after the last event.
    quiet_since_event: bool,
}

impl Recognizer {
    /// A recognizer for a classifier with `is_keyword.len()` labels; label
    /// `i` can be reported only if `is_keyword[i]`.
    pub fn new(config: &RecognizerConfig, is_keyword: &[bool]) -> Result<Self, KwsError> {
        let classes = is_keyword.len();
        if classes == 0 || classes > 4096 {
            return Err(KwsError::Config("recognizer needs 1..=4096 labels"));
        }
        if config.max_results == 0 || config.max_results > 4096 {
            return Err(KwsError::Config(
                "recognizer max_results must be in 1..=4096",
            ));
        }
        if config.minimum_count > config.max_results {
            return Err(KwsError::Config(
                "recognizer minimum_count exceeds max_results",
            ));
        }
        Ok(Self {
            config: *config,
            is_keyword: is_keyword.to_vec(),
            times: vec![0; config.max_results],
            scores: vec![0; config.max_results * classes],
            head: 0,
            len: 0,
            sums: vec![0; classes],
            latest_ms: None,
            active: None,
            last_event_ms: None,
            quiet_since_event: false,
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &RecognizerConfig {
        &self.config
    }

    /// Number of labels.
    #[must_use]
    pub fn label_count(&self) -> usize {
        self.is_keyword.len()
    }

    /// Forgets every result and the last event.
    pub fn reset(&mut self) {
        self.times.fill(0);
        self.scores.fill(0);
        self.sums.fill(0);
        self.head = 0;
        self.len = 0;
        self.latest_ms = None;
        self.active = None;
        self.last_event_ms = None;
        self.quiet_since_event = false;
    }

    fn slot(&self, i: usize) -> usize {
        (self.head + i) % self.config.max_results
    }

    /// Adds the scores of one classification at `time_ms` (not earlier than
    /// the previous one) and returns an event if a keyword is newly recognised.
    /// The audio level is not known here: the level rules do not apply.
    pub fn process(&mut self, time_ms: u64, scores: &[i8]) -> Result<Option<Event>, KwsError> {
        self.process_with_level(time_ms, scores, u16::MAX)
    }

    /// Like [`Self::process`] for a classification whose input audio had
    /// `level`: the mean absolute sample value of the loudest front-end window
    /// among the classifier's frames ([`crate::Pipeline`] measures it). Below
    /// `minimum_level` the result cannot be above threshold, and it ends the
    /// suppression of the last event.
    pub fn process_with_level(
        &mut self,
        time_ms: u64,
        scores: &[i8],
        level: u16,
    ) -> Result<Option<Event>, KwsError> {
        let classes = self.is_keyword.len();
        expect_len("recognizer scores", classes, scores.len())?;
        if let Some(previous_ms) = self.latest_ms
            && time_ms < previous_ms
        {
            return Err(KwsError::TimeOrder {
                time_ms,
                previous_ms,
            });
        }
        self.latest_ms = Some(time_ms);
        let audible = level >= self.config.minimum_level;
        if !audible {
            self.quiet_since_event = true;
        }

        // Append, dropping the oldest when the ring is full.
        let cap = self.config.max_results;
        if self.len == cap {
            self.head = self.slot(1);
            self.len -= 1;
        }
        let s = self.slot(self.len);
        self.times[s] = time_ms;
        for (dst, &v) in self.scores[s * classes..(s + 1) * classes]
            .iter_mut()
            .zip(scores)
        {
            *dst = (i16::from(v) + 128) as u8;
        }
        self.len += 1;

        // Prune results older than the averaging window.
        let limit = time_ms.saturating_sub(u64::from(self.config.average_window_ms));
        while self.len > 0 && self.times[self.head] < limit {
            self.head = self.slot(1);
            self.len -= 1;
        }
        // len >= 1: the newest result is never pruned.
        let earliest = self.times[self.head];
        if self.len < self.config.minimum_count
            || time_ms - earliest < u64::from(self.config.average_window_ms / 4)
        {
            return Ok(None);
        }

        self.sums.fill(0);
        for i in 0..self.len {
            let s = self.slot(i);
            for (sum, &v) in self.sums.iter_mut().zip(&self.scores[s * classes..]) {
                *sum += u32::from(v);
            }
        }
        // Top label: the first with the highest average (TFLM's strict `>` from 0).
        let mut top = 0;
        let mut top_score = 0u32;
        for (i, &sum) in self.sums.iter().enumerate() {
            let avg = sum / self.len as u32;
            if avg > top_score {
                top_score = avg;
                top = i;
            }
        }
        let above = audible && top_score > u32::from(self.config.detection_threshold);
        let rising = above && self.active != Some(top);
        self.active = above.then_some(top);
        if !rising || !self.is_keyword.get(top).copied().unwrap_or(false) {
            return Ok(None);
        }
        if let Some(at) = self.last_event_ms
            && !self.quiet_since_event
            && time_ms - at <= u64::from(self.config.suppression_ms)
        {
            return Ok(None);
        }
        self.last_event_ms = Some(time_ms);
        self.quiet_since_event = false;
        Ok(Some(Event {
            label_index: top,
            time_ms,
            // An average of values <= 255 is <= 255.
            score: top_score.min(255) as u8,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const KW: [bool; 4] = [false, false, true, true]; // silence, unknown, yes, no

    /// int8 scores with `label` at `p` (0..=255) and the rest shared.
    fn scores(label: usize, p: i16) -> [i8; 4] {
        let rest = (255 - p) / 3;
        let mut s = [(rest - 128) as i8; 4];
        s[label] = (p - 128) as i8;
        s
    }

    fn run(r: &mut Recognizer, seq: &[(u64, [i8; 4])]) -> Vec<Event> {
        seq.iter()
            .filter_map(|(t, s)| r.process(*t, s).unwrap())
            .collect()
    }

    /// `n` results every 20 ms starting at `t0`.
    fn stretch(t0: u64, n: u64, s: [i8; 4]) -> Vec<(u64, [i8; 4])> {
        (0..n).map(|i| (t0 + 20 * i, s)).collect()
    }

    #[test]
    fn single_detection() {
        let mut r = Recognizer::new(&RecognizerConfig::default(), &KW).unwrap();
        let mut seq = stretch(0, 50, scores(0, 250));
        seq.extend(stretch(1000, 60, scores(2, 255)));
        seq.extend(stretch(2200, 100, scores(0, 250)));
        let events = run(&mut r, &seq);
        assert_eq!(events.len(), 1, "{events:?}");
        let e = events[0];
        assert_eq!(e.label_index, 2);
        // The 40 ms window holds 3 results: at 1020 ms "yes" averages
        // (1 + 255 + 255) / 3 = 170, at 1040 ms 255.
        assert_eq!((e.time_ms, e.score), (1040, 255), "{e:?}");

        // TFLM's 1000 ms / 200 need 3/4 of the window to hold "yes".
        let tflm = RecognizerConfig {
            average_window_ms: 1000,
            detection_threshold: 200,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&tflm, &KW).unwrap();
        let events = run(&mut r, &seq);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!((1700..=1800).contains(&events[0].time_ms), "{events:?}");
    }

    #[test]
    fn long_keyword_gives_one_event() {
        // TFLM would report again after 1500 ms; the rising-edge rule does not.
        let mut r = Recognizer::new(&RecognizerConfig::default(), &KW).unwrap();
        let events = run(&mut r, &stretch(0, 300, scores(3, 255)));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].label_index, 3);
    }

    #[test]
    fn suppression_of_a_flickering_label() {
        // A short averaging window so that the top label can change quickly.
        let cfg = RecognizerConfig {
            average_window_ms: 100,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let mut seq = stretch(0, 20, scores(2, 255)); // yes: event
        seq.extend(stretch(400, 10, scores(1, 255))); // unknown takes over
        seq.extend(stretch(600, 20, scores(2, 255))); // yes again within 1500 ms: suppressed
        seq.extend(stretch(1000, 30, scores(1, 255)));
        seq.extend(stretch(1600, 20, scores(2, 255))); // yes again after 1500 ms: reported
        let events = run(&mut r, &seq);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].label_index, 2);
        assert!(events[0].time_ms < 100, "{events:?}");
        assert!(events[1].time_ms > events[0].time_ms + 1500, "{events:?}");

        // A different keyword is suppressed too, until the suppression time is over.
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let mut seq = stretch(0, 20, scores(2, 255));
        seq.extend(stretch(400, 20, scores(3, 255)));
        seq.extend(stretch(800, 20, scores(0, 255)));
        seq.extend(stretch(1600, 20, scores(3, 255)));
        let events = run(&mut r, &seq);
        assert_eq!(
            events.iter().map(|e| e.label_index).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(events[1].time_ms >= 1600, "{events:?}");
    }

    #[test]
    fn below_threshold_is_silent() {
        let cfg = RecognizerConfig {
            detection_threshold: 200,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        // 200 is not above the threshold 200.
        assert!(run(&mut r, &stretch(0, 200, scores(2, 200))).is_empty());
        let cfg = RecognizerConfig {
            detection_threshold: 199,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        assert_eq!(run(&mut r, &stretch(0, 200, scores(2, 200))).len(), 1);
    }

    #[test]
    fn minimum_count_and_span() {
        let cfg = RecognizerConfig {
            minimum_count: 5,
            average_window_ms: 1000,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        // One result every 300 ms: 4 results in a 1000 ms window, never 5.
        let seq: Vec<_> = (0..20).map(|i| (300 * i, scores(2, 255))).collect();
        assert!(run(&mut r, &seq).is_empty());
        // Every 200 ms gives 6 results per window: detected.
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let seq: Vec<_> = (0..20).map(|i| (200 * i, scores(2, 255))).collect();
        let events = run(&mut r, &seq);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].time_ms, 800);
        // Results spanning less than a quarter window are not enough.
        let cfg = RecognizerConfig {
            average_window_ms: 1000,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let events = run(&mut r, &stretch(0, 12, scores(2, 255)));
        assert!(events.is_empty(), "{events:?}");
        assert!(r.process(250, &scores(2, 255)).unwrap().is_some());
    }

    #[test]
    fn non_keywords_are_never_reported() {
        let mut r = Recognizer::new(&RecognizerConfig::default(), &KW).unwrap();
        let mut seq = stretch(0, 100, scores(0, 255));
        seq.extend(stretch(2000, 100, scores(1, 255)));
        seq.extend(stretch(4000, 100, scores(0, 255)));
        assert!(run(&mut r, &seq).is_empty());
    }

    #[test]
    fn errors_and_reset() {
        assert!(Recognizer::new(&RecognizerConfig::default(), &[]).is_err());
        let cfg = RecognizerConfig {
            max_results: 0,
            ..RecognizerConfig::default()
        };
        assert!(Recognizer::new(&cfg, &KW).is_err());
        let mut r = Recognizer::new(&RecognizerConfig::default(), &KW).unwrap();
        assert!(r.process(0, &[0; 3]).is_err());
        r.process(100, &[0; 4]).unwrap();
        assert!(matches!(
            r.process(99, &[0; 4]),
            Err(KwsError::TimeOrder { .. })
        ));
        r.reset();
        r.process(0, &[0; 4]).unwrap();
        // Extreme times and scores do not panic.
        r.process(u64::MAX, &[-128, 127, 127, -128]).unwrap();
        r.process(u64::MAX, &[127; 4]).unwrap();
    }

    #[test]
    fn ring_overflow_drops_oldest() {
        let cfg = RecognizerConfig {
            average_window_ms: 500,
            max_results: 4,
            minimum_count: 3,
            ..RecognizerConfig::default()
        };
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let seq: Vec<_> = (0..100).map(|i| (100 * i, scores(2, 255))).collect();
        let events = run(&mut r, &seq);
        assert_eq!(events.len(), 1);
    }

    /// `stretch` with an audio level per result.
    fn leveled(seq: &[(u64, [i8; 4])], level: u16) -> Vec<(u64, [i8; 4], u16)> {
        seq.iter().map(|&(t, s)| (t, s, level)).collect()
    }

    fn run_leveled(r: &mut Recognizer, seq: &[(u64, [i8; 4], u16)]) -> Vec<Event> {
        seq.iter()
            .filter_map(|(t, s, l)| r.process_with_level(*t, s, *l).unwrap())
            .collect()
    }

    #[test]
    fn quiet_audio_gives_no_keyword() {
        let cfg = RecognizerConfig::default();
        let quiet = cfg.minimum_level - 1;
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        // A confident "yes" in audio below the minimum level: nothing.
        let mut seq = leveled(&stretch(0, 100, scores(2, 255)), quiet);
        // The level rises while "yes" stays on top: that is the rising edge.
        seq.extend(leveled(
            &stretch(2000, 10, scores(2, 255)),
            cfg.minimum_level,
        ));
        let events = run_leveled(&mut r, &seq);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].label_index, events[0].time_ms), (2, 2000));

        // Level 0 with the level rules off, and `process` (level unknown): reported.
        let off = RecognizerConfig {
            minimum_level: 0,
            ..cfg
        };
        let mut r = Recognizer::new(&off, &KW).unwrap();
        let events = run_leveled(&mut r, &leveled(&stretch(0, 10, scores(2, 255)), 0));
        assert_eq!(events.len(), 1, "{events:?}");
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        assert_eq!(run(&mut r, &stretch(0, 10, scores(2, 255))).len(), 1);
    }

    #[test]
    fn quiet_audio_ends_the_suppression() {
        let cfg = RecognizerConfig::default();
        let loud = 1000;
        // yes, then no 1 s later: suppressed while the audio stays loud...
        let mut seq = leveled(&stretch(0, 20, scores(2, 255)), loud);
        seq.extend(leveled(&stretch(400, 20, scores(0, 255)), loud));
        seq.extend(leveled(&stretch(1000, 20, scores(3, 255)), loud));
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let events = run_leveled(&mut r, &seq);
        assert_eq!(events.len(), 1, "{events:?}");
        // ...and reported after a quiet result: the first word has left the window.
        seq[25].2 = cfg.minimum_level - 1;
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        let events = run_leveled(&mut r, &seq);
        assert_eq!(
            events
                .iter()
                .map(|e| (e.label_index, e.time_ms))
                .collect::<Vec<_>>(),
            [(2, 40), (3, 1040)]
        );
        // A quiet result before the event does not shorten its suppression.
        seq[25].2 = loud;
        seq[0].2 = cfg.minimum_level - 1;
        let mut r = Recognizer::new(&cfg, &KW).unwrap();
        assert_eq!(run_leveled(&mut r, &seq).len(), 1);
    }

    #[test]
    fn label_names() {
        assert!(!is_keyword_label("silence"));
        assert!(!is_keyword_label("_UNKNOWN_"));
        assert!(is_keyword_label("yes"));
    }
}
