//! `omg`: the Offline Model Guard command-line tool.
#![forbid(unsafe_code)]

mod bench;
#[cfg(feature = "vendor")]
mod demo;
mod infer;
mod keyargs;
mod kws;
mod maker;
#[cfg(feature = "vendor")]
mod package;
mod platform;
mod signals;
#[cfg(feature = "vendor")]
mod vendor;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use omg_cli::{
    audio, backend, bundle, clock, device, enclave, files, identity, manifest, run, stream,
};

/// Offline Model Guard: private, model-protecting, offline keyword spotting.
///
/// omg runs a vendor's keyword-spotting model on this device without revealing it: the vendor
/// packages the model encrypted for measured enclaves, the device proves its enclave to the
/// vendor service once (provisioning), then runs the model offline inside a sandboxed enclave
/// process that alone holds the decrypted model and hears the audio. The commands below follow
/// that workflow: try it all at once with `omg demo`.
#[derive(Parser)]
#[command(
    name = "omg",
    version,
    about,
    propagate_version = true,
    after_help = "Example: omg demo (the whole story on the bundled model and clips), then
                    omg listen micro_speech --wav clip.wav (keyword spotting, no enclave)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a .tflite model once (or over a sequence) on raw little-endian tensor files.
    #[command(display_order = 15)]
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
        #[command(flatten)]
        kernels: KernelArgs,
    },
    /// Measure a model (latency per invoke, arena, model size) or a pipeline (cost per hop), on
    /// the chosen kernels.
    #[command(display_order = 14)]
    Bench {
        /// A .tflite model, or a PIPELINE (bundled name, directory or manifest).
        target: String,
        /// Number of timed invokes (default: as many as fit in about two seconds, at least 100).
        #[arg(long)]
        runs: Option<usize>,
        /// Untimed invokes of a .tflite model before the timed ones (default: at least 10, as
        /// many as fit in 0.2 s, at most 1000). A pipeline has no warm-up: refused there.
        #[arg(long)]
        warmup: Option<usize>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        kernels: KernelArgs,
    },
    /// Vendor tools.
    #[cfg(feature = "vendor")]
    #[command(display_order = 2)]
    Vendor {
        #[command(subcommand)]
        command: VendorCommand,
    },
    /// Device maker tools: a signing key, and endorsements of the devices it makes.
    #[command(display_order = 3)]
    Maker {
        #[command(subcommand)]
        command: MakerCommand,
    },
    /// Device (platform) tools for the Linux backend.
    #[command(display_order = 4)]
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// The platform side as a service for apps (the service deployment).
    #[command(display_order = 10)]
    Platform {
        #[command(subcommand)]
        command: PlatformCommand,
    },
    /// Write the front end's features of a clip: int8 [frames][channels].
    #[command(display_order = 13)]
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
    #[command(display_order = 9)]
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
    /// The whole story on the bundled defaults: vendor, device, provisioning, offline runs.
    #[cfg(feature = "vendor")]
    #[command(display_order = 1)]
    Demo {
        /// Keep the demo's files in this (new) directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Preparation phase: attest to the vendor service, receive the model key, seal it here.
    #[command(display_order = 5)]
    Provision {
        /// The model package (.omgpkg).
        package: PathBuf,
        /// The vendor service (http:// or https:// URL).
        #[arg(long)]
        server: String,
        /// The vendor's public key (vendor.pub) the package must be signed with.
        #[arg(long)]
        vendor_key: PathBuf,
        /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Trust this PEM certificate (e.g. the service's self-signed one) for https://.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Where the enclave runs: `optee` (the trusted application in TrustZone's secure
        /// world) or `linux` (the enclave process). Default: optee when this build has it and
        /// /dev/tee0 exists, else linux.
        #[arg(long, value_enum)]
        backend: Option<backend::Backend>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Renew a provisioned package's licence online: a fresh attestation and activation whose
    /// licence (and lease) replaces the sealed one. A refused renewal (e.g. a revoked device or
    /// model version) leaves the sealed licence as it was and says why.
    #[command(display_order = 7)]
    Renew {
        /// The model package (.omgpkg), provisioned on this device.
        package: PathBuf,
        /// The vendor service (http:// or https:// URL).
        #[arg(long)]
        server: String,
        /// The vendor's public key (default: the one the package was provisioned with).
        #[arg(long)]
        vendor_key: Option<PathBuf>,
        /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Trust this PEM certificate (e.g. the service's self-signed one) for https://.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Where the enclave runs: `optee` (the trusted application in TrustZone's secure
        /// world) or `linux` (the enclave process). Default: optee when this build has it and
        /// /dev/tee0 exists, else linux.
        #[arg(long, value_enum)]
        backend: Option<backend::Backend>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Initialization and operation, offline: run a provisioned package on audio. A licence
    /// past its lease is refused (run `omg renew`); past its renewal time, a warning.
    #[command(display_order = 6)]
    Run {
        /// The model package (.omgpkg), provisioned on this device.
        package: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
        /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long, conflicts_with = "socket")]
        dir: Option<PathBuf>,
        /// Run through the platform service listening on this socket instead of launching the
        /// enclave here (the service deployment; also from $OMG_PLATFORM_SOCKET).
        #[arg(long, env = omg_linux::service::SOCKET_ENV)]
        socket: Option<PathBuf>,
        /// Where the enclave runs: `optee` (the trusted application in TrustZone's secure
        /// world) or `linux` (the enclave process). Default: optee when this build has it and
        /// /dev/tee0 exists, else linux.
        #[arg(long, value_enum, conflicts_with = "socket")]
        backend: Option<backend::Backend>,
        /// One JSON object per event (label, time_ms, and score / scores if the policy allows).
        #[arg(long)]
        json: bool,
    },
    /// Print an attestation token over NONCE (hex) for a fresh enclave key.
    #[command(display_order = 11)]
    Attest {
        /// The verifier's nonce, hex (32, 48 or 64 bytes).
        #[arg(long)]
        nonce: String,
        /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Write the raw token here (atomically) instead of printing it as hex.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        /// Print one JSON object (token and enclave public key, hex).
        #[arg(long)]
        json: bool,
    },
    /// Check an attestation token's signature, and optionally its measurements and nonce.
    #[command(display_order = 12)]
    VerifyToken {
        /// The token: raw bytes or hex.
        token: PathBuf,
        /// The device's public attestation key (attestation.pub, SEC1).
        #[arg(long)]
        device_key: PathBuf,
        /// An allowed enclave measurement (hex SHA-256); repeat for several.
        #[arg(long = "measurement")]
        measurements: Vec<String>,
        /// The expected nonce (hex).
        #[arg(long)]
        nonce: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Stream audio through the pipeline and report keyword events.
    #[command(display_order = 8)]
    Listen {
        /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
        pipeline: String,
        #[command(flatten)]
        source: SourceArgs,
        /// One JSON object per event (label, time_ms, score).
        #[arg(long)]
        json: bool,
    },
}

#[cfg(feature = "vendor")]
#[derive(Subcommand)]
enum VendorCommand {
    /// Run the provisioning and licensing service (HTTP, loopback by default).
    Serve {
        /// The service database: a SQLite file (created and migrated if needed) or a
        /// postgres:// URL.
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
        /// Serve HTTPS with this PEM certificate chain (server certificate first).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Requests per second one client address may make in the long run (429 beyond);
        /// 0 turns the limit off.
        #[arg(long, default_value_t = omg_vendor::http::DEFAULT_RATE_LIMIT.per_second)]
        rate_limit: u32,
        /// Requests one client address may make at once after a pause.
        #[arg(long, default_value_t = omg_vendor::http::DEFAULT_RATE_LIMIT.burst)]
        rate_burst: u32,
        /// The request log on standard error: one text line per request, or one JSON object
        /// per line (fields method, route, status, ms; never a header or a body).
        #[arg(long, value_enum, default_value_t = vendor::LogFormat::Text)]
        log_format: vendor::LogFormat,
    },
    /// Encrypt and sign a pipeline as a model package, and register it (policy, content key)
    /// in the service database.
    Package {
        /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
        pipeline: String,
        /// The licensing policy (TOML).
        #[arg(long)]
        policy: PathBuf,
        /// The service database: a SQLite file or a postgres:// URL.
        #[arg(long)]
        db: String,
        /// Directory holding vendor.key (default: $OMG_HOME/vendor or ~/.local/share/omg/vendor).
        #[arg(long)]
        key_dir: Option<PathBuf>,
        /// Model id (default: the pipeline's name).
        #[arg(long)]
        model_id: Option<String>,
        /// Model version.
        #[arg(long, default_value_t = 1)]
        model_version: u32,
        /// The package file to write (atomically).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Enrol devices: the service gives keys only to devices enrolled or endorsed by a trusted
    /// maker (also `POST /v1/devices/enroll`).
    Enroll {
        /// The service database: a SQLite file or a postgres:// URL.
        #[arg(long)]
        db: PathBuf,
        /// Each device's attestation public key: a file as `omg device init` writes it
        /// (attestation.pub, SEC1), an OP-TEE device's attestation PTA key (RSA, DER
        /// SubjectPublicKeyInfo, raw or hex), or the key itself in hex (as `omg device info`
        /// prints it).
        #[arg(required = true)]
        device_pub: Vec<String>,
        /// Print one JSON object per device.
        #[arg(long)]
        json: bool,
    },
    /// Trust device makers: devices they endorse get keys without enrolment (also
    /// `POST /v1/makers/trust`).
    TrustMaker {
        /// The service database: a SQLite file or a postgres:// URL.
        #[arg(long)]
        db: PathBuf,
        /// Each maker's public key: maker.pub (from `omg maker keygen`) or the key in hex.
        #[arg(required = true)]
        maker_pub: Vec<String>,
        /// Print one JSON object per maker.
        #[arg(long)]
        json: bool,
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
enum MakerCommand {
    /// Create the maker's signing key (maker.key, owner-only) and its public key (maker.pub).
    Keygen {
        /// Directory for the key files (default: $OMG_HOME/maker or ~/.local/share/omg/maker).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Endorse a device's attestation key (written beside the device identity by default).
    Endorse {
        /// The device's attestation public key: attestation.pub or the key in hex.
        device_pub: String,
        /// The maker's signing key (maker.key).
        #[arg(long)]
        key: PathBuf,
        /// Last second the endorsement is valid (seconds since the Unix epoch; default: no end).
        #[arg(long)]
        not_after: Option<u64>,
        /// Write the endorsement to this file (atomically).
        #[arg(short = 'o', long = "output", conflicts_with = "device_dir")]
        output: Option<PathBuf>,
        /// Write it as endorsement.cose in this device directory (default: $OMG_HOME/device or
        /// ~/.local/share/omg/device), where `omg provision` finds it.
        #[arg(long)]
        device_dir: Option<PathBuf>,
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
    /// Print the identity's public parts and the enclave measurement (for vendor policies).
    Info {
        /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PlatformCommand {
    /// Serve apps on a Unix socket: run as the platform's own user, the only one that can read
    /// the device directory; launches one enclave per session and sends apps only events.
    Serve {
        /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The socket to listen on.
        #[arg(long, default_value = omg_linux::service::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// The socket's permission bits, octal: who may connect (0666: every local user; the
        /// licence still decides what runs).
        #[arg(long, default_value = "0666", value_parser = octal_mode)]
        socket_mode: u32,
        /// Most sessions (enclaves) at once; more are refused as busy.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        max_sessions: u16,
        /// Most sessions at once for one user (uid); more are refused.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
        max_sessions_per_uid: u16,
        /// Seconds an app's audio stream may send nothing before its session is ended.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..))]
        idle_timeout: u16,
    },
}

fn octal_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal permission mode (e.g. 0660)"))
}

/// Which kernels run a model. All compute the same bytes; they differ in speed.
#[derive(clap::Args)]
struct KernelArgs {
    /// `auto` (the optimized kernels at the fastest level this CPU supports), `reference`
    /// (TFLM's reference loops) or an optimized level: `portable`, `avx2`, `avxvnni`,
    /// `avx512vnni` (x86-64), `neon`, `dotprod` (aarch64); a level this CPU cannot run is
    /// refused when the model loads.
    #[arg(long, default_value = "auto", value_parser = parse_kernels)]
    kernels: omg_engine::KernelSet,
    /// Short for `--kernels reference`.
    #[arg(long, conflicts_with = "kernels")]
    reference: bool,
}

impl KernelArgs {
    fn set(&self) -> omg_engine::KernelSet {
        if self.reference {
            omg_engine::KernelSet::Reference
        } else {
            self.kernels
        }
    }
}

fn parse_kernels(s: &str) -> Result<omg_engine::KernelSet, String> {
    s.parse().map_err(|e: omg_engine::Error| e.to_string())
}

/// The audio source of `listen` / `run`, or the usage error's exit code.
/// Where the audio comes from: exactly one of the three.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct SourceArgs {
    /// Read a WAV file.
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Read raw signed 16-bit little-endian 16 kHz mono samples from standard input.
    #[arg(long)]
    stdin: bool,
    /// Capture from the default microphone (ALSA). Only in a build with microphone support (the
    /// `mic` feature): elsewhere it is neither in the help nor in the usage line, and is
    /// refused with that reason (see [`parse`]).
    #[cfg(feature = "mic")]
    #[arg(long)]
    mic: bool,
}

impl SourceArgs {
    fn source(self) -> stream::Source {
        match (self.wav, self.stdin) {
            (Some(w), _) => stream::Source::Wav(w),
            (None, true) => stream::Source::Stdin,
            // clap lets exactly one through.
            (None, false) => stream::Source::Mic,
        }
    }
}

/// The command line, or exits with clap's usage error; `--mic` in a build without microphone
/// support (where the flag does not exist) gets that reason instead of "unexpected argument".
fn parse() -> Cli {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    Cli::try_parse().unwrap_or_else(|e| {
        let mic = e.kind() == ErrorKind::UnknownArgument
            && matches!(e.get(ContextKind::InvalidArg),
                Some(ContextValue::String(arg)) if arg == "--mic");
        if let (true, Err(why)) = (mic, stream::mic_supported()) {
            eprintln!("omg: {why:#}");
            std::process::exit(2);
        }
        e.exit()
    })
}

/// True when standard output is a pipe (or socket) whose reader has gone, as after
/// `omg … | head -1`.
fn stdout_is_broken() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    poll(&mut fds, Some(&Timespec::default())).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

/// True when `e` comes from writing to a standard output whose reader has gone.
fn is_broken_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) && stdout_is_broken()
}

/// Runs `omg`. A reader that stops reading its output early (`omg demo | head -1`) ends it
/// quietly with exit status 0, whether the write failed as an error or as a panic of
/// `println!` (whose unwinding still removes temporary files, e.g. `omg demo`'s keys).
fn main() -> ExitCode {
    let cli = parse();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !stdout_is_broken() {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| command(cli))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if is_broken_stdout(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("omg: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) if stdout_is_broken() => ExitCode::SUCCESS,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Runs one command.
fn command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Infer {
            model,
            inputs,
            outputs,
            sequence,
            kernels,
        } => infer::run(&model, &inputs, &outputs, sequence, kernels.set()),
        Command::Bench {
            target,
            runs,
            warmup,
            json,
            kernels,
        } => {
            if target.ends_with(".tflite")
                || Path::new(&target).is_file() && !target.ends_with(".toml")
            {
                bench::run(Path::new(&target), runs, warmup, json, kernels.set())
            } else if warmup.is_some() {
                anyhow::bail!(
                    "--warmup applies to a .tflite model; a pipeline's bench ({target}) has no warm-up"
                )
            } else {
                kws::bench(&target, runs, json, kernels.set())
            }
        }
        Command::Maker {
            command: MakerCommand::Keygen { dir, force, json },
        } => identity::maker_keygen(dir, force, json),
        Command::Maker {
            command:
                MakerCommand::Endorse {
                    device_pub,
                    key,
                    not_after,
                    output,
                    device_dir,
                    json,
                },
        } => maker::endorse(
            &device_pub,
            &key,
            not_after,
            match output {
                Some(file) => maker::Output::File(file),
                None => maker::Output::DeviceDir(device_dir),
            },
            json,
        ),
        Command::Device {
            command: DeviceCommand::Init { dir, force, json },
        } => device::init(dir, force, json),
        Command::Device {
            command: DeviceCommand::Info { dir, json },
        } => device::info(dir, json),
        Command::Platform {
            command:
                PlatformCommand::Serve {
                    dir,
                    socket,
                    socket_mode,
                    max_sessions,
                    max_sessions_per_uid,
                    idle_timeout,
                },
        } => device::device_dir(dir).and_then(|dir| {
            platform::serve(platform::Settings {
                dir,
                socket,
                socket_mode,
                max_sessions: usize::from(max_sessions),
                max_sessions_per_uid: usize::from(max_sessions_per_uid),
                idle_timeout: std::time::Duration::from_secs(u64::from(idle_timeout)),
            })
        }),
        #[cfg(feature = "vendor")]
        Command::Vendor { command } => vendor_command(command),
        #[cfg(feature = "vendor")]
        Command::Demo { dir } => demo::run(dir),
        Command::Provision {
            package,
            server,
            vendor_key,
            dir,
            ca_cert,
            backend,
            json,
        } => device::provision(
            &package,
            &server,
            &vendor_key,
            dir,
            ca_cert.as_deref(),
            backend::Backend::choose(backend),
            json,
        ),
        Command::Renew {
            package,
            server,
            vendor_key,
            dir,
            ca_cert,
            backend,
            json,
        } => device::renew(
            &package,
            &server,
            vendor_key.as_deref(),
            dir,
            ca_cert.as_deref(),
            backend::Backend::choose(backend),
            json,
        ),
        Command::Run {
            package,
            source,
            dir,
            socket,
            backend,
            json,
        } => run::run(
            &package,
            source.source(),
            dir,
            socket,
            backend::Backend::choose(backend),
            json,
        ),
        Command::Attest {
            nonce,
            dir,
            output,
            json,
        } => device::attest(dir, &nonce, output.as_deref(), json),
        Command::VerifyToken {
            token,
            device_key,
            measurements,
            nonce,
            json,
        } => device::verify_token(&token, &device_key, &measurements, nonce.as_deref(), json),
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
            source,
            json,
        } => kws::listen(&pipeline, source.source(), json),
    }
}

/// Runs `omg vendor COMMAND`.
#[cfg(feature = "vendor")]
fn vendor_command(command: VendorCommand) -> anyhow::Result<()> {
    match command {
        VendorCommand::Keygen { dir, force, json } => identity::vendor_keygen(dir, force, json),
        VendorCommand::Serve {
            db,
            key_dir,
            listen,
            admin_token_file,
            tls_cert,
            tls_key,
            rate_limit,
            rate_burst,
            log_format,
        } => vendor::serve(
            &db,
            &key_dir,
            listen,
            admin_token_file,
            vendor::Tls {
                cert: tls_cert,
                key: tls_key,
            },
            vendor::rate_limit(rate_limit, rate_burst),
            log_format,
        ),
        VendorCommand::Enroll {
            db,
            device_pub,
            json,
        } => vendor::enroll(&db, &device_pub, json),
        VendorCommand::TrustMaker {
            db,
            maker_pub,
            json,
        } => vendor::trust_makers(&db, &maker_pub, json),
        VendorCommand::Package {
            pipeline,
            policy,
            db,
            key_dir,
            model_id,
            model_version,
            output,
            json,
        } => identity::key_dir(key_dir, "vendor").and_then(|key_dir| {
            package::run(
                &package::Options {
                    pipeline: &pipeline,
                    policy: &policy,
                    key_dir: &key_dir,
                    db: &db,
                    model_id,
                    version: model_version,
                    output: &output,
                },
                json,
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
