//! Keyword-spotting commands: `omg features`, `omg classify`, `omg listen` and `omg bench PIPELINE`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use omg_engine::Interpreter;
use omg_kws::{
    Event, FeatureExtractor, FrontendConfig, MicroFrontend, ModelFrontend, Pipeline,
    PipelineConfig, Recognizer, RecognizerConfig,
};
use serde::Serialize;

use crate::audio::{self, RATE};
use crate::files::write_atomic;
use crate::manifest::{self, FrontendKind, OutputPolicy};

/// Where `omg listen` reads audio from.
pub enum Source {
    /// A WAV file (any common format; converted).
    Wav(PathBuf),
    /// Raw s16le 16 kHz mono on standard input.
    Stdin,
    /// The default ALSA capture device.
    Mic,
}

/// Builds the front end a manifest asks for.
fn frontend<'m>(p: &'m manifest::Pipeline) -> Result<FeatureExtractor<'m>> {
    Ok(match (p.manifest.frontend.kind, &p.preprocessor) {
        (FrontendKind::Native, _) => {
            FeatureExtractor::Native(MicroFrontend::new(&FrontendConfig::default())?)
        }
        (FrontendKind::Model, Some(model)) => FeatureExtractor::Model(ModelFrontend::new(
            model,
            p.hop_samples(),
            p.manifest.sample_rate,
        )?),
        (FrontendKind::Model, None) => bail!("{}: no preprocessor model", p.origin),
    })
}

fn recognizer_config(p: &manifest::Pipeline) -> RecognizerConfig {
    let r = &p.manifest.recognizer;
    RecognizerConfig {
        average_window_ms: r.average_window_ms,
        // The manifest parser bounds the threshold to 0..=255.
        detection_threshold: r.detection_threshold.min(255) as u8,
        suppression_ms: r.suppression_ms,
        minimum_count: r.minimum_count as usize,
        ..RecognizerConfig::default()
    }
}

fn is_keyword(p: &manifest::Pipeline) -> Vec<bool> {
    let c = &p.manifest.classifier;
    c.labels.iter().map(|l| c.keywords.contains(l)).collect()
}

/// The whole streaming pipeline of a manifest.
fn pipeline<'m>(p: &'m manifest::Pipeline) -> Result<Pipeline<'m>> {
    let config = PipelineConfig {
        classify_every_hops: p.manifest.classifier.every_hops,
        recognizer: recognizer_config(p),
    };
    Ok(Pipeline::new(
        frontend(p)?,
        &p.classifier,
        &is_keyword(p),
        &config,
    )?)
}

/// `omg features PIPELINE WAV -o OUT`: int8 [frames][channels], frame i from samples
/// `[hop * i, hop * i + window)` while a whole window fits (as TFLM frames a clip).
pub fn features(spec: &str, wav: &Path, out: &Path) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let clip = audio::read_wav(wav)?;
    let mut fe = frontend(&p)?;
    let (window, hop, channels) = (fe.window_samples(), fe.hop_samples(), fe.feature_count());
    let frames = if clip.samples.len() < window {
        0
    } else {
        (clip.samples.len() - window) / hop + 1
    };
    let mut data = vec![0i8; frames * channels];
    for (i, frame) in data.chunks_exact_mut(channels).enumerate() {
        fe.process(&clip.samples[i * hop..i * hop + window], frame)?;
    }
    write_atomic(out, &data.iter().map(|&v| v as u8).collect::<Vec<_>>())?;
    eprintln!(
        "omg: {} frames x {channels} channels -> {}",
        frames,
        out.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Decision<'a> {
    file: String,
    label: &'a str,
    scores: Vec<i8>,
}

/// `omg classify PIPELINE WAV...`: one decision per clip over its first frames.
pub fn classify(spec: &str, wavs: &[PathBuf], json: bool) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let mut pipe = pipeline(&p)?;
    let labels = &p.manifest.classifier.labels;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for wav in wavs {
        let clip = audio::read_wav(wav)?;
        let scores = pipe.classify_clip(&clip.samples)?.to_vec();
        // The first of equal maxima, like numpy's argmax.
        let best = scores
            .iter()
            .enumerate()
            .fold(0, |b, (i, &s)| if s > scores[b] { i } else { b });
        let d = Decision {
            file: wav.display().to_string(),
            label: &labels[best],
            scores,
        };
        if json {
            writeln!(out, "{}", serde_json::to_string(&d)?)?;
        } else {
            let parts: Vec<String> = labels
                .iter()
                .zip(&d.scores)
                .map(|(l, s)| format!("{l} {s}"))
                .collect();
            let note = if clip.converted() {
                format!(
                    " (converted from {} Hz, {} ch)",
                    clip.source_rate, clip.source_channels
                )
            } else {
                String::new()
            };
            writeln!(out, "{}: {}  [{}]{note}", d.file, d.label, parts.join(", "))?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct EventLine<'a> {
    label: &'a str,
    time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<u8>,
}

/// `omg listen PIPELINE SOURCE`: streaming keyword events.
pub fn listen(spec: &str, source: Source, json: bool) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let mut pipe = pipeline(&p)?;
    let labels = &p.manifest.classifier.labels;
    let show_score = p.manifest.output.policy != OutputPolicy::Label;
    let mut counts = vec![0usize; labels.len()];
    let mut samples_seen = 0u64;
    let stdout = std::io::stdout();
    let mut emit = |e: Event| -> Result<()> {
        counts[e.label_index] += 1;
        let line = EventLine {
            label: &labels[e.label_index],
            time_ms: e.time_ms,
            score: show_score.then_some(e.score),
        };
        let mut out = stdout.lock();
        if json {
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else {
            let score = line
                .score
                .map(|s| format!("  (score {s})"))
                .unwrap_or_default();
            writeln!(
                out,
                "{:>9.2} s  {}{score}",
                e.time_ms as f64 / 1000.0,
                line.label
            )?;
        }
        out.flush()?;
        Ok(())
    };
    let mut feed = |block: &[i16]| -> Result<()> {
        samples_seen += block.len() as u64;
        let mut events = Vec::new();
        pipe.push_samples(block, |e| events.push(e))?;
        events.into_iter().try_for_each(&mut emit)
    };
    match source {
        Source::Wav(path) => {
            let clip = audio::read_wav(&path)?;
            for block in clip.samples.chunks(RATE as usize / 10) {
                feed(block)?;
            }
        }
        Source::Stdin => audio::read_s16le(std::io::stdin().lock(), &mut feed)?,
        Source::Mic => mic(&mut feed)?,
    }
    // At the end of the input, a second of silence lets a keyword at the very end reach the
    // classifier's window and the recognizer's average.
    feed(&vec![0i16; RATE as usize])?;
    samples_seen -= u64::from(RATE);
    if !json {
        let seconds = samples_seen as f64 / f64::from(RATE);
        let found: Vec<String> = labels
            .iter()
            .zip(&counts)
            .filter(|(_, n)| **n > 0)
            .map(|(l, n)| format!("{l}: {n}"))
            .collect();
        let total: usize = counts.iter().sum();
        eprintln!(
            "omg: {total} keyword(s) in {seconds:.1} s of audio{}",
            if found.is_empty() {
                String::new()
            } else {
                format!(" ({})", found.join(", "))
            }
        );
    }
    Ok(())
}

#[cfg(feature = "mic")]
fn mic(feed: &mut impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
    crate::mic::capture(|block| feed(block).map(|()| true))
}

#[cfg(not(feature = "mic"))]
fn mic(_feed: &mut impl FnMut(&[i16]) -> Result<()>) -> Result<()> {
    bail!("this omg was built without microphone support (build with --features mic)")
}

#[derive(Serialize)]
struct HopReport {
    pipeline: String,
    hops: usize,
    frontend_us: f64,
    classifier_us: f64,
    recognizer_us: f64,
    total_us: f64,
    hop_ms: f64,
    real_time_factor: f64,
    classifier_arena_bytes: usize,
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// `omg bench PIPELINE`: the cost of one hop, stage by stage, and the real-time factor.
pub fn bench(spec: &str, hops: Option<usize>, json: bool) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let hops = hops.unwrap_or(3000).max(100);
    // Deterministic noise-like audio keeps every stage busy (xorshift).
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let audio: Vec<i16> = (0..(hops + 50) * p.hop_samples() + p.window_samples())
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as i16) >> 3
        })
        .collect();
    let (window, hop) = (p.window_samples(), p.hop_samples());

    let mut fe = frontend(&p)?;
    let mut feature = vec![0i8; fe.feature_count()];
    let frontend_times: Vec<Duration> = (0..hops)
        .map(|i| {
            let t = Instant::now();
            let r = fe.process(&audio[i * hop..i * hop + window], &mut feature);
            (t.elapsed(), r)
        })
        .map(|(d, r)| r.map(|()| d))
        .collect::<Result<_, _>>()?;

    let mut classifier = Interpreter::new(&p.classifier)?;
    let classifier_times: Vec<Duration> = (0..hops / 4 + 25)
        .map(|i| {
            classifier.input_mut(0).map(|b| {
                b.iter_mut()
                    .enumerate()
                    .for_each(|(j, v)| *v = (j + i) as u8)
            })?;
            let t = Instant::now();
            classifier.invoke()?;
            Ok(t.elapsed())
        })
        .collect::<Result<_, omg_engine::Error>>()?;

    let mut recognizer = Recognizer::new(&recognizer_config(&p), &is_keyword(&p))?;
    let mut scores = vec![0i8; p.manifest.classifier.labels.len()];
    let recognizer_times: Vec<Duration> = (0..hops)
        .map(|i| {
            scores
                .iter_mut()
                .enumerate()
                .for_each(|(j, s)| *s = ((i * 7 + j * 31) % 256) as u8 as i8);
            let t = Instant::now();
            let r = recognizer.process((i * 20) as u64, &scores);
            (t.elapsed(), r)
        })
        .map(|(d, r)| r.map(|_| d))
        .collect::<Result<_, _>>()?;

    let mut pipe = pipeline(&p)?;
    pipe.push_samples(&audio[..50 * hop], |_| {})?;
    let total_times: Vec<Duration> = (0..hops)
        .map(|i| {
            let block = &audio[(50 + i) * hop..(51 + i) * hop];
            let t = Instant::now();
            let r = pipe.push_samples(block, |_| {});
            (t.elapsed(), r)
        })
        .map(|(d, r)| r.map(|()| d))
        .collect::<Result<_, _>>()?;

    let hop_ms = hop as f64 * 1000.0 / f64::from(p.manifest.sample_rate);
    let total_us = median(total_times);
    let r = HopReport {
        pipeline: format!("{} ({})", p.manifest.name, p.origin),
        hops,
        frontend_us: median(frontend_times),
        classifier_us: median(classifier_times),
        recognizer_us: median(recognizer_times),
        total_us,
        hop_ms,
        real_time_factor: total_us / (hop_ms * 1000.0),
        classifier_arena_bytes: classifier.arena_bytes(),
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("pipeline      {}", r.pipeline);
        println!("hops          {} of {} ms", r.hops, r.hop_ms);
        println!("front end     {:8.2} µs/hop", r.frontend_us);
        println!(
            "classifier    {:8.2} µs/invoke (every {} hop(s))",
            r.classifier_us, p.manifest.classifier.every_hops
        );
        println!("recognizer    {:8.2} µs/hop", r.recognizer_us);
        println!(
            "whole hop     {:8.2} µs (median, through the streaming pipeline)",
            r.total_us
        );
        println!("real time     {:.3} % of a hop", r.real_time_factor * 100.0);
    }
    Ok(())
}
