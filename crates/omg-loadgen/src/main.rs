//! # omg-loadgen: a load generator for the vendor service
//!
//! Prepares a database with one model (a permissive policy: one allowed measurement, no
//! practical device limit), a vendor key and device keys enrolled in the database, starts `omg vendor serve` on loopback as a child
//! process, and runs `--concurrency` clients for `--duration` seconds. Each client repeats the
//! real preparation phase of a new device on its own keep-alive connection:
//!
//! 1. `POST /v1/challenge`;
//! 2. a fresh device attestation key (one enrolled before the run; once those are used up, a
//!    new one, enrolled through the admin API) and enclave HPKE key pair, and an attestation
//!    token over the challenge's nonce, the allowed measurement and the enclave key hash;
//! 3. `POST /v1/activate`, expecting a key release and a licence.
//!
//! It reports the activations and errors, throughput (overall and per one-second window) and
//! p50 / p99 / max latency, the CPU time of the service and of the load generator (they share the
//! machine's cores), and how many activations the database recorded.
//!
//! ```text
//! cargo build --release -p omg-cli -p omg-enclave-image -p omg-loadgen
//! target/release/omg-loadgen --omg target/release/omg --concurrency 16 --duration 60 [--json]
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod report;
mod setup;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

/// Drive `omg vendor serve` on loopback with concurrent attested activations.
#[derive(Parser)]
#[command(name = "omg-loadgen", version, about)]
struct Args {
    /// The omg binary to run as the service.
    #[arg(long, default_value = "target/release/omg")]
    omg: PathBuf,
    /// Concurrent clients, each running one activation at a time on a keep-alive connection.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Seconds of load (activations under way at the end are completed and counted).
    #[arg(long, short = 'd', default_value_t = 60)]
    duration: u64,
    /// Device attestation keys to make and enrol before the run (default: 800 per second of
    /// `--duration`); a device has its identity, enrolled, before it is provisioned. Clients
    /// make and enrol fresh ones in the timed loop once these are used up; 0 makes every one
    /// there.
    #[arg(long)]
    devices: Option<usize>,
    /// Worker threads of the load generator's runtime (default: one per core).
    #[arg(long)]
    client_threads: Option<usize>,
    /// Empty directory for the database and the vendor keys (default: a temporary directory,
    /// removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

fn run(args: &Args) -> Result<()> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(args.duration >= 1, "--duration must be at least 1 second");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = setup::WorkDir::new(args.dir.clone())?;
    let fixture = setup::prepare(work.path(), &args.omg)?;
    let devices = args.devices.unwrap_or_else(|| {
        usize::try_from(args.duration.saturating_mul(800)).unwrap_or(usize::MAX)
    });
    let keys = Arc::new(client::DeviceKeys::generate(devices, cores));
    setup::enroll(&fixture, &keys.public_keys())?;
    let server = setup::Server::start(&args.omg, &fixture)?;

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.client_threads {
        anyhow::ensure!(threads >= 1, "--client-threads must be at least 1");
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .build()
        .context("cannot start the load generator's runtime")?;

    let server_cpu_before = setup::cpu_seconds(server.pid())?;
    let client_cpu_before = setup::cpu_seconds(std::process::id())?;
    let target = client::Target::new(server.addr(), &fixture);
    let outcome = runtime.block_on(client::run(
        target,
        Arc::clone(&keys),
        args.concurrency,
        Duration::from_secs(args.duration),
    ));
    let server_cpu = setup::cpu_seconds(server.pid())? - server_cpu_before;
    let client_cpu = setup::cpu_seconds(std::process::id())? - client_cpu_before;
    server.stop()?;
    let recorded = setup::recorded_activations(&fixture);

    let summary = report::Summary::new(
        &outcome,
        report::Context {
            concurrency: args.concurrency,
            duration_s: args.duration,
            cores,
            server_cpu_s: server_cpu,
            client_cpu_s: client_cpu,
            db_activations: recorded.as_ref().ok().copied(),
            devices_ready: devices,
            devices_made_during_run: keys.made_during_run(),
        },
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.table());
    }
    let recorded = recorded?;
    anyhow::ensure!(
        recorded == summary.activations,
        "the database holds {recorded} activations but {} were acknowledged",
        summary.activations
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omg-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
