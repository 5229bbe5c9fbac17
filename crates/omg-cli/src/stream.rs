//! Streaming audio from a source into a sink, and printing keyword events: shared by
//! `omg listen` (in the open) and `omg run` (through the enclave).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::audio::{self, RATE};

/// Where audio comes from.
pub enum Source {
    /// A WAV file (any common format; converted).
    Wav(PathBuf),
    /// Raw s16le 16 kHz mono on standard input.
    Stdin,
    /// The default ALSA capture device.
    Mic,
}

impl Source {
    /// The licence's name for this source.
    pub fn input_source(&self) -> omg_protocol::licence::InputSource {
        use omg_protocol::licence::InputSource;
        match self {
            Source::Wav(_) => InputSource::File,
            Source::Stdin => InputSource::Stdin,
            Source::Mic => InputSource::Mic,
        }
    }
}

/// Feeds the whole source to `feed` as it is read, in blocks of at most 100 ms, then one second of silence so
/// that a keyword at the very end reaches the classifier's window and the recognizer's
/// average. Returns the number of samples the source held (without the silence).
pub fn feed_source(source: &Source, mut feed: impl FnMut(&[i16]) -> Result<()>) -> Result<u64> {
    let mut seen = 0u64;
    let mut counted = |block: &[i16]| -> Result<()> {
        seen += block.len() as u64;
        feed(block)
    };
    match source {
        Source::Wav(path) => {
            let wav = audio::open_wav(path)?;
            let (rate, channels) = (wav.source_rate(), wav.source_channels());
            if rate != RATE || channels != 1 {
                eprintln!(
                    "omg: {} converted from {rate} Hz, {channels} ch to 16 kHz mono",
                    path.display()
                );
            }
            wav.stream(&mut counted)
                .with_context(|| format!("{}", path.display()))?
        }
        Source::Stdin => audio::read_s16le(std::io::stdin().lock(), &mut counted)?,
        Source::Mic => mic(&mut counted)?,
    }
    feed(&vec![0i16; RATE as usize])?;
    Ok(seen)
}

/// Captures from the default microphone until stopped, feeding each block.
#[cfg(feature = "mic")]
pub fn mic(feed: &mut impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
    crate::mic::capture(|block| feed(block).map(|()| true))
}

/// Without microphone support: a clear error.
#[cfg(not(feature = "mic"))]
pub fn mic(_feed: &mut impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
    mic_supported()
}

/// Whether this build can capture from the microphone: checked before an enclave is launched
/// for a microphone session, so that no "ready" line precedes the refusal.
pub fn mic_supported() -> Result<()> {
    if cfg!(feature = "mic") {
        Ok(())
    } else {
        anyhow::bail!("this omg was built without microphone support (build with --features mic)")
    }
}

/// One keyword event as printed (`--json`: one object per line with these field names).
#[derive(Serialize)]
pub struct EventLine<'a> {
    /// The keyword.
    pub label: &'a str,
    /// Stream time of the detection in ms.
    pub time_ms: u64,
    /// The averaged score, where the output policy allows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// The classifier's int8 scores, where the output policy allows them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<&'a [i8]>,
}

/// Prints events as they come (a live line each, or JSON lines) and a summary at the end.
pub struct EventPrinter {
    json: bool,
    counts: Vec<(String, usize)>,
}

impl EventPrinter {
    /// A printer; `json` selects JSON lines.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            counts: Vec::new(),
        }
    }

    /// Prints one event and flushes.
    pub fn event(&mut self, e: &EventLine<'_>) -> Result<()> {
        match self.counts.iter_mut().find(|(l, _)| l == e.label) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((e.label.to_string(), 1)),
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        if self.json {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        } else {
            let score = e
                .score
                .map(|s| format!("  (score {s})"))
                .unwrap_or_default();
            writeln!(
                out,
                "{:>9.2} s  {}{score}",
                e.time_ms as f64 / 1000.0,
                e.label
            )?;
        }
        out.flush()?;
        Ok(())
    }

    /// The summary line (on stderr, and only for people: not with `--json`), with the
    /// pipeline's time per 20 ms hop when `busy` (the time spent in it) is known.
    pub fn summary(&self, samples: u64, busy: Option<std::time::Duration>) {
        if self.json {
            return;
        }
        if let Some(busy) = busy {
            let hops = (samples / (u64::from(RATE) / 50)).max(1);
            eprintln!(
                "omg: pipeline {:.1} µs per 20 ms hop ({hops} hops)",
                busy.as_secs_f64() * 1e6 / hops as f64
            );
        }
        let seconds = samples as f64 / f64::from(RATE);
        let total: usize = self.counts.iter().map(|(_, n)| n).sum();
        let found: Vec<String> = self
            .counts
            .iter()
            .map(|(l, n)| format!("{l}: {n}"))
            .collect();
        eprintln!(
            "omg: {total} keyword(s) in {seconds:.1} s of audio{}",
            if found.is_empty() {
                String::new()
            } else {
                format!(" ({})", found.join(", "))
            }
        );
    }
}
