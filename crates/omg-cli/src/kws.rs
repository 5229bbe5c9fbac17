//! Keyword-spotting commands: `omg features`, `omg classify`, `omg listen` and `omg bench PIPELINE`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use omg_engine::{Interpreter, KernelSet};
use omg_kws::{FeatureExtractor, Pipeline, Recognizer};
use serde::Serialize;

use crate::audio;
use crate::bundle;
use crate::files::write_atomic;
use crate::manifest::{self, OutputPolicy};
use crate::stream::{EventLine, EventPrinter, Source, feed_source};

/// The front end a manifest asks for (as the enclave builds it from the same bundle), a
/// preprocessor model running on `kernels`.
fn frontend<'m>(p: &'m manifest::Pipeline, kernels: KernelSet) -> Result<FeatureExtractor<'m>> {
    Ok(omg_enclave::pipeline::frontend_with_kernels(
        &bundle::of(p)?,
        kernels,
    )?)
}

/// The whole streaming pipeline of a manifest (as the enclave builds it from the same bundle),
/// its models running on `kernels`.
fn pipeline<'m>(p: &'m manifest::Pipeline, kernels: KernelSet) -> Result<Pipeline<'m>> {
    Ok(omg_enclave::pipeline::build_with_kernels(
        &bundle::of(p)?,
        kernels,
    )?)
}

/// `omg features PIPELINE WAV -o OUT`: int8 [frames][channels], frame i from samples
/// `[hop * i, hop * i + window)` while a whole window fits (as TFLM frames a clip).
pub fn features(spec: &str, wav: &Path, out: &Path) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let clip = audio::read_wav(wav)?;
    let mut fe = frontend(&p, KernelSet::Optimized)?;
    let channels = fe.feature_count();
    let data = fe.clip_features(&clip.samples)?;
    let frames = data.len() / channels;
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

/// One clip's decision: its scores and the clip (for the conversion note).
fn classify_one(pipe: &mut Pipeline<'_>, wav: &Path) -> Result<(Vec<i8>, audio::Clip)> {
    let clip = audio::read_wav(wav)?;
    if clip.samples.is_empty() {
        bail!("{} holds no audio samples", wav.display());
    }
    let scores = pipe.classify_clip(&clip.samples)?.to_vec();
    Ok((scores, clip))
}

/// `omg classify PIPELINE WAV...`: one decision per clip over its first frames. A clip that
/// cannot be classified (unreadable, not a WAV, no samples) is reported on stderr and the
/// others still are; the command then fails at the end.
pub fn classify(spec: &str, wavs: &[PathBuf], json: bool) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let mut pipe = pipeline(&p, KernelSet::Optimized)?;
    let labels = &p.manifest.classifier.labels;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0usize;
    for wav in wavs {
        let (scores, clip) = match classify_one(&mut pipe, wav) {
            Ok(decision) => decision,
            Err(e) => {
                // Flush first so stdout and stderr stay in file order on a terminal.
                out.flush()?;
                eprintln!("omg: {e:#}");
                failed += 1;
                continue;
            }
        };
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
    if failed > 0 {
        bail!(
            "{failed} of {} clip(s) could not be classified (see above)",
            wavs.len()
        );
    }
    Ok(())
}

/// `omg listen PIPELINE SOURCE`: streaming keyword events, in the open (no enclave).
pub fn listen(spec: &str, source: Source, json: bool) -> Result<()> {
    let p = manifest::Pipeline::load(spec)?;
    let mut pipe = pipeline(&p, KernelSet::Optimized)?;
    let labels = &p.manifest.classifier.labels;
    let show_score = p.manifest.output.policy != OutputPolicy::Label;
    let mut printer = EventPrinter::new(json);
    let mut busy = Duration::ZERO;
    let samples = feed_source(&source, |block| {
        let mut events = Vec::new();
        let t = Instant::now();
        pipe.push_samples(block, |e| events.push(e))?;
        busy += t.elapsed();
        events.iter().try_for_each(|e| {
            printer.event(&EventLine {
                label: &labels[e.label_index],
                time_ms: e.time_ms,
                score: show_score.then_some(e.score),
                scores: None,
            })
        })
    })?;
    printer.summary(samples, Some(busy));
    Ok(())
}

#[derive(Serialize)]
struct HopReport {
    pipeline: String,
    /// Which kernels ran the preprocessor and classifier models (`reference`,
    /// `optimized (avx2)`, ...).
    kernels: String,
    hops: usize,
    #[serde(serialize_with = "crate::bench::rounded::<2, _>")]
    frontend_us: f64,
    #[serde(serialize_with = "crate::bench::rounded::<2, _>")]
    classifier_us: f64,
    #[serde(serialize_with = "crate::bench::rounded::<2, _>")]
    recognizer_us: f64,
    #[serde(serialize_with = "crate::bench::rounded::<2, _>")]
    total_us: f64,
    #[serde(serialize_with = "crate::bench::rounded::<2, _>")]
    hop_ms: f64,
    /// Rounded to 6 decimal places (a hop takes about a thousandth of its duration).
    #[serde(serialize_with = "crate::bench::rounded::<6, _>")]
    real_time_factor: f64,
    classifier_arena_bytes: usize,
    /// The classifier's scores after the last hop of the streaming run: the same for every
    /// kernel set.
    scores: Vec<i8>,
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// `omg bench PIPELINE`: the cost of one hop, stage by stage, and the real-time factor, with
/// the preprocessor and classifier models running on `kernels`.
pub fn bench(spec: &str, hops: Option<usize>, json: bool, kernels: KernelSet) -> Result<()> {
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

    let mut fe = frontend(&p, kernels)?;
    let mut feature = vec![0i8; fe.feature_count()];
    let frontend_times: Vec<Duration> = (0..hops)
        .map(|i| {
            let t = Instant::now();
            let r = fe.process(&audio[i * hop..i * hop + window], &mut feature);
            (t.elapsed(), r)
        })
        .map(|(d, r)| r.map(|()| d))
        .collect::<Result<_, _>>()?;

    let mut classifier = Interpreter::with_kernels(&p.classifier, kernels)?;
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

    let bundle = bundle::of(&p)?;
    let mut recognizer = Recognizer::new(
        &omg_enclave::pipeline::config(&bundle).recognizer,
        &bundle.is_keyword,
    )?;
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

    let mut pipe = pipeline(&p, kernels)?;
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
        kernels: kernels.to_string(),
        hops,
        frontend_us: median(frontend_times),
        classifier_us: median(classifier_times),
        recognizer_us: median(recognizer_times),
        total_us,
        hop_ms,
        real_time_factor: total_us / (hop_ms * 1000.0),
        classifier_arena_bytes: classifier.arena_bytes(),
        scores: pipe.scores().to_vec(),
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("pipeline      {}", r.pipeline);
        println!("kernels       {}", r.kernels);
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
        println!("last scores   {:?}", r.scores);
    }
    Ok(())
}
