//! `omg bench MODEL`: latency per invoke, arena and model size.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use omg_engine::{Interpreter, KernelSet};
use serde::Serialize;

use crate::files::{MAX_MODEL_BYTES, read_limited};

/// Serializes a measurement rounded to `DECIMALS` decimal places (timings are not precise to
/// the femtosecond their binary form would print).
pub fn rounded<const DECIMALS: i32, S: serde::Serializer>(
    x: &f64,
    s: S,
) -> Result<S::Ok, S::Error> {
    let scale = 10f64.powi(DECIMALS);
    s.serialize_f64((x * scale).round() / scale)
}

/// Latency figures of one model.
#[derive(Serialize)]
struct Report {
    model: String,
    /// Which kernels ran (`reference`, `optimized (avx2)`, ...).
    kernels: String,
    /// Untimed invokes before the timed ones.
    warmup_runs: usize,
    runs: usize,
    #[serde(serialize_with = "rounded::<2, _>")]
    median_us: f64,
    #[serde(serialize_with = "rounded::<2, _>")]
    p99_us: f64,
    #[serde(serialize_with = "rounded::<2, _>")]
    mean_us: f64,
    #[serde(serialize_with = "rounded::<2, _>")]
    min_us: f64,
    arena_bytes: usize,
    model_bytes: usize,
    #[serde(serialize_with = "rounded::<2, _>")]
    load_us: f64,
    /// Invokes per second at the mean latency.
    #[serde(serialize_with = "rounded::<2, _>")]
    throughput_per_s: f64,
    /// Peak resident memory of the whole process (Linux `VmHWM`), if known.
    peak_rss_kib: Option<u64>,
}

/// The process's peak resident set size from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Deterministic filler so kernels see varied data (xorshift).
fn fill(buf: &mut [u8], seed: &mut u64) {
    for b in buf {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *b = (*seed >> 24) as u8;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e6
}

/// Loads `model` with `kernels`, invokes it `warmup` times untimed (default: at least 10, as many
/// as fit in 0.2 s, at most 1000), then `runs` times timed (default: as many as fit in about two
/// seconds, 100 to 200 000), and prints the figures (JSON with `json`).
pub fn run(
    model: &Path,
    runs: Option<usize>,
    warmup: Option<usize>,
    json: bool,
    kernels: KernelSet,
) -> Result<()> {
    anyhow::ensure!(runs != Some(0), "--runs must be at least 1");
    let bytes = read_limited(model, MAX_MODEL_BYTES)?;
    let start = Instant::now();
    let mut interp = Interpreter::with_kernels(&bytes, kernels)
        .with_context(|| format!("cannot load {}", model.display()))?;
    let load = start.elapsed();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..interp.input_count() {
        fill(interp.input_mut(i)?, &mut seed);
    }
    // Warm up, and estimate how many runs fit in the time budget.
    let warm = Instant::now();
    let mut warm_runs = 0usize;
    let warm_more = |n: usize, elapsed: Duration| match warmup {
        Some(w) => n < w,
        None => n < 10 || (elapsed < Duration::from_millis(200) && n < 1000),
    };
    while warm_more(warm_runs, warm.elapsed()) {
        interp.invoke()?;
        warm_runs += 1;
    }
    let runs = runs.unwrap_or_else(|| {
        // With no warm-up to time (`--warmup 0`), the least number of runs.
        let per = warm.elapsed().as_nanos() / (warm_runs as u128).max(1);
        let fit = Duration::from_secs(2).as_nanos() / per.max(1);
        if warm_runs == 0 {
            100
        } else {
            fit.clamp(100, 200_000) as usize
        }
    });
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        interp.invoke()?;
        times.push(t.elapsed());
    }
    times.sort_unstable();
    let total: Duration = times.iter().sum();
    let report = Report {
        model: model.display().to_string(),
        kernels: kernels.to_string(),
        warmup_runs: warm_runs,
        runs,
        median_us: percentile(&times, 0.5),
        p99_us: percentile(&times, 0.99),
        mean_us: total.as_secs_f64() * 1e6 / runs as f64,
        min_us: times[0].as_secs_f64() * 1e6,
        arena_bytes: interp.arena_bytes(),
        model_bytes: bytes.len(),
        load_us: load.as_secs_f64() * 1e6,
        throughput_per_s: runs as f64 / total.as_secs_f64(),
        peak_rss_kib: peak_rss_kib(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("model        {}", report.model);
        println!("kernels      {}", report.kernels);
        println!("warm-up      {} runs", report.warmup_runs);
        println!("runs         {}", report.runs);
        println!("median       {:.2} µs", report.median_us);
        println!("p99          {:.2} µs", report.p99_us);
        println!(
            "mean         {:.2} µs (min {:.2})",
            report.mean_us, report.min_us
        );
        println!("arena        {} bytes", report.arena_bytes);
        println!("model        {} bytes", report.model_bytes);
        println!("load+prepare {:.1} µs", report.load_us);
        println!("throughput   {:.0} invokes/s", report.throughput_per_s);
        if let Some(kib) = report.peak_rss_kib {
            println!("peak RSS     {kib} KiB (whole process)");
        }
    }
    Ok(())
}
