//! `omg`: the Offline Model Guard command-line tool.
#![forbid(unsafe_code)]

mod bench;
mod files;
mod infer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Offline Model Guard: private, model-protecting, offline keyword spotting.
#[derive(Parser)]
#[command(name = "omg", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a .tflite model once (or over a sequence) on raw little-endian tensor files.
    Infer {
        /// The .tflite model.
        model: PathBuf,
        /// One file per subgraph input, in subgraph order.
        #[arg(long = "input", required = true, num_args = 1..)]
        inputs: Vec<PathBuf>,
        /// One file per subgraph output, in subgraph order (written atomically).
        #[arg(long = "output", required = true, num_args = 1..)]
        outputs: Vec<PathBuf>,
        /// Inputs hold K consecutive tensors: reset once, invoke K times, concatenate the outputs.
        #[arg(long)]
        sequence: bool,
        /// Run TFLM's reference kernels instead of the optimized ones (same bytes, slower).
        #[arg(long)]
        reference: bool,
    },
    /// Measure a model's latency per invoke, arena and model size.
    Bench {
        /// The .tflite model.
        model: PathBuf,
        /// Number of timed invokes (default: as many as fit in about two seconds, at least 100).
        #[arg(long)]
        runs: Option<usize>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Run TFLM's reference kernels instead of the optimized ones.
        #[arg(long)]
        reference: bool,
    },
}

fn kernel_set(reference: bool) -> omg_engine::KernelSet {
    if reference {
        omg_engine::KernelSet::Reference
    } else {
        omg_engine::KernelSet::Optimized
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Infer {
            model,
            inputs,
            outputs,
            sequence,
            reference,
        } => infer::run(&model, &inputs, &outputs, sequence, kernel_set(reference)),
        Command::Bench {
            model,
            runs,
            json,
            reference,
        } => bench::run(&model, runs, json, kernel_set(reference)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omg: {e:#}");
            ExitCode::FAILURE
        }
    }
}
