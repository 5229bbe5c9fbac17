//! The summary of a run: counts, throughput, latency percentiles, CPU time; as a table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::client::{Outcome, Sample};

/// Facts about the run that the clients do not measure.
pub struct Context {
    /// Concurrent clients.
    pub concurrency: usize,
    /// Requested seconds of load.
    pub duration_s: u64,
    /// Cores of the machine (shared by the service and the load generator).
    pub cores: usize,
    /// CPU seconds the service used during the run.
    pub server_cpu_s: f64,
    /// CPU seconds the load generator used during the run.
    pub client_cpu_s: f64,
    /// Activations found in the database afterwards (`None`: it could not be read).
    pub db_activations: Option<usize>,
    /// Device keys made (and enrolled) before the run.
    pub devices_ready: usize,
    /// Device keys the clients had to make (and enrol) during the run.
    pub devices_made_during_run: u64,
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(samples: &[Sample], part: impl Fn(&Sample) -> Duration) -> Self {
        let mut micros: Vec<u128> = samples.iter().map(|s| part(s).as_micros()).collect();
        micros.sort_unstable();
        let rank = |q: f64| -> f64 {
            if micros.is_empty() {
                return 0.0;
            }
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let index = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1;
            round2(micros[index] as f64 / 1000.0)
        };
        Percentiles {
            p50: rank(0.50),
            p99: rank(0.99),
            max: rank(1.0),
        }
    }
}

/// Latencies of each part of an activation.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Latencies {
    /// The whole activation: challenge, token, activate.
    pub activation: Percentiles,
    /// The `POST /v1/challenge` round trip.
    pub challenge: Percentiles,
    /// The client's enclave key pair and token signature.
    pub token: Percentiles,
    /// The `POST /v1/activate` round trip.
    pub activate: Percentiles,
}

/// The result of a run (the `--json` object).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Concurrent clients.
    pub concurrency: usize,
    /// Requested seconds of load.
    pub duration_s: u64,
    /// Seconds from the start until the last activation finished.
    pub elapsed_s: f64,
    /// Successful activations.
    pub activations: usize,
    /// Failed activations.
    pub errors: u64,
    /// Failed activations by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Successful activations per second over the whole run.
    pub throughput_per_s: f64,
    /// Fewest activations completed in one whole second of the run.
    pub slowest_second: u64,
    /// Most activations completed in one whole second of the run.
    pub fastest_second: u64,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Latencies,
    /// Cores of the machine, shared by the service and the load generator.
    pub cores: usize,
    /// CPU seconds used by the service.
    pub server_cpu_s: f64,
    /// CPU seconds used by the load generator.
    pub client_cpu_s: f64,
    /// Activations the database holds afterwards (`null`: it could not be read).
    pub db_activations: Option<usize>,
    /// Device attestation keys made before the run.
    pub devices_ready: usize,
    /// Device attestation keys the clients made during the run (after the ready ones ran out).
    pub devices_made_during_run: u64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Summary {
    /// Summarizes `outcome`.
    pub fn new(outcome: &Outcome, context: Context) -> Self {
        let samples = &outcome.samples;
        let elapsed = outcome.elapsed.as_secs_f64();
        // Activations completed in each whole second (the last, partial second is left out).
        let whole_seconds = outcome.elapsed.as_secs().max(1) as usize;
        let mut per_second = vec![0u64; whole_seconds];
        for s in samples {
            if let Some(n) = per_second.get_mut(s.done_at.as_secs() as usize) {
                *n += 1;
            }
        }
        Summary {
            concurrency: context.concurrency,
            duration_s: context.duration_s,
            elapsed_s: round2(elapsed),
            activations: samples.len(),
            errors: outcome.errors.values().sum(),
            error_kinds: outcome.errors.clone(),
            throughput_per_s: round2(samples.len() as f64 / elapsed.max(f64::EPSILON)),
            slowest_second: per_second.iter().copied().min().unwrap_or(0),
            fastest_second: per_second.iter().copied().max().unwrap_or(0),
            latency_ms: Latencies {
                activation: Percentiles::of(samples, |s| s.total),
                challenge: Percentiles::of(samples, |s| s.challenge),
                token: Percentiles::of(samples, |s| s.token),
                activate: Percentiles::of(samples, |s| s.activate),
            },
            cores: context.cores,
            server_cpu_s: round2(context.server_cpu_s),
            client_cpu_s: round2(context.client_cpu_s),
            db_activations: context.db_activations,
            devices_ready: context.devices_ready,
            devices_made_during_run: context.devices_made_during_run,
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "omg vendor serve (SQLite) on loopback: {} clients for {} s, {} cores shared by service and clients",
            self.concurrency, self.duration_s, self.cores
        );
        let _ = writeln!(
            out,
            "activations      {} in {:.2} s, {} errors",
            self.activations, self.elapsed_s, self.errors
        );
        for (kind, n) in &self.error_kinds {
            let _ = writeln!(out, "  {n:>8}  {kind}");
        }
        let _ = writeln!(
            out,
            "throughput       {:.1} activations/s (slowest second {}, fastest {})",
            self.throughput_per_s, self.slowest_second, self.fastest_second
        );
        let _ = writeln!(out, "latency ms            p50      p99      max");
        let l = &self.latency_ms;
        for (name, p) in [
            ("activation", l.activation),
            ("  challenge", l.challenge),
            ("  token", l.token),
            ("  activate", l.activate),
        ] {
            let _ = writeln!(
                out,
                "{name:<16}{:>8.2} {:>8.2} {:>8.2}",
                p.p50, p.p99, p.max
            );
        }
        let _ = writeln!(
            out,
            "device keys      {} made before the run, {} during it (enclave keys and token \
             signatures: all during it)",
            self.devices_ready, self.devices_made_during_run
        );
        let available = self.elapsed_s * self.cores as f64;
        let _ = writeln!(
            out,
            "CPU s            service {:.1}, load generator {:.1} (of {:.1} available)",
            self.server_cpu_s, self.client_cpu_s, available
        );
        let _ = match self.db_activations {
            Some(n) => writeln!(out, "database         {n} activations recorded"),
            None => writeln!(out, "database         could not be read"),
        };
        out
    }
}
