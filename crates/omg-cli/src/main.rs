//! `omg`: the Offline Model Guard command-line tool.
#![forbid(unsafe_code)]

mod audio;
mod bench;
mod files;
mod identity;
mod infer;
mod kws;
mod manifest;
#[cfg(feature = "mic")]
mod mic;
mod vendor;

use std::path::{Path, PathBuf};
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
    /// Measure a model (latency per invoke, arena, model size) or a pipeline (cost per hop).
    Bench {
        /// A .tflite model, or a PIPELINE (bundled name, directory or manifest).
        target: String,
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
    /// Vendor tools.
    Vendor {
        #[command(subcommand)]
        command: VendorCommand,
    },
    /// Device (platform) tools for the Linux backend.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Write the front end's features of a clip: int8 [frames][channels].
    Features {
        /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
        pipeline: String,
        /// The audio clip (WAV, any common format).
        wav: PathBuf,
        /// Output file (written atomically).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// One keyword decision per clip (the first frames of each clip).
    Classify {
        /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
        pipeline: String,
        /// Audio clips (WAV, any common format).
        #[arg(required = true)]
        wavs: Vec<PathBuf>,
        /// One JSON object per clip (file, label, scores).
        #[arg(long)]
        json: bool,
    },
    /// Stream audio through the pipeline and report keyword events.
    Listen {
        /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
        pipeline: String,
        /// Read a WAV file.
        #[arg(long, group = "source")]
        wav: Option<PathBuf>,
        /// Read raw signed 16-bit little-endian 16 kHz mono samples from standard input.
        #[arg(long, group = "source")]
        stdin: bool,
        /// Capture from the default microphone (ALSA).
        #[arg(long, group = "source")]
        mic: bool,
        /// One JSON object per event (label, time_ms, score).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum VendorCommand {
    /// Run the provisioning and licensing service (HTTP, loopback by default).
    Serve {
        /// SQLite database file (created and migrated if needed).
        #[arg(long)]
        db: PathBuf,
        /// Directory holding vendor.key (from `omg vendor keygen`).
        #[arg(long)]
        key_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8650")]
        listen: std::net::SocketAddr,
        /// File holding the bearer token that enables the admin endpoints (off without it).
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
    },
    /// Create the vendor's signing key (vendor.key, owner-only) and its public key (vendor.pub).
    Keygen {
        /// Directory for the key files (default: $OMG_HOME/vendor or ~/.local/share/omg/vendor).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Create the platform identity: attestation key and hardware-unique key (owner-only files).
    Init {
        /// Directory for the identity (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace an existing identity (sealed data of the old one becomes unreadable).
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
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
            target,
            runs,
            json,
            reference,
        } => {
            if target.ends_with(".tflite")
                || Path::new(&target).is_file() && !target.ends_with(".toml")
            {
                bench::run(Path::new(&target), runs, json, kernel_set(reference))
            } else {
                kws::bench(&target, runs, json)
            }
        }
        Command::Vendor {
            command: VendorCommand::Keygen { dir, force, json },
        } => identity::vendor_keygen(dir, force, json),
        Command::Vendor {
            command:
                VendorCommand::Serve {
                    db,
                    key_dir,
                    listen,
                    admin_token_file,
                },
        } => vendor::serve(&db, &key_dir, listen, admin_token_file),
        Command::Device {
            command: DeviceCommand::Init { dir, force, json },
        } => identity::device_init(dir, force, json),
        Command::Features {
            pipeline,
            wav,
            output,
        } => kws::features(&pipeline, &wav, &output),
        Command::Classify {
            pipeline,
            wavs,
            json,
        } => kws::classify(&pipeline, &wavs, json),
        Command::Listen {
            pipeline,
            wav,
            stdin,
            mic,
            json,
        } => {
            let source = match (wav, stdin, mic) {
                (Some(w), _, _) => kws::Source::Wav(w),
                (None, true, _) => kws::Source::Stdin,
                (None, false, true) => kws::Source::Mic,
                _ => {
                    eprintln!("omg: listen needs one of --wav FILE, --stdin or --mic");
                    return ExitCode::from(2);
                }
            };
            kws::listen(&pipeline, source, json)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omg: {e:#}");
            ExitCode::FAILURE
        }
    }
}
