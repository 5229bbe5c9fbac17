//! The command line: one argument struct per command, each with its `run`, and the options that
//! several commands share (`--json`, `--dir`, `--backend`, the vendor service, the kernels, the
//! audio source) declared once and flattened into them.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::{backend, bench, device, identity, infer, kws, maker, platform, run, stream};
#[cfg(feature = "vendor")]
use crate::{demo, package, vendor};

/// Offline Model Guard: private, model-protecting, offline keyword spotting.
///
/// omg runs a vendor's keyword-spotting model on this device without revealing it: the vendor
/// packages the model encrypted for measured enclaves, the device proves its enclave to the
/// vendor service once (provisioning), then runs the model offline inside a sandboxed enclave
/// process that alone holds the decrypted model and hears the audio. The commands below follow
/// that workflow.
#[derive(Parser)]
#[command(
    name = "omg",
    version,
    about,
    propagate_version = true,
    after_help = AFTER_HELP,
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where to start, below the commands.
#[cfg(feature = "vendor")]
const AFTER_HELP: &str = "Example: omg demo (the whole story on the bundled model and clips), then
                    omg listen micro_speech --wav clip.wav (keyword spotting, no enclave)";
/// Where to start, below the commands (a device build has no demo: it has no vendor service).
#[cfg(not(feature = "vendor"))]
const AFTER_HELP: &str =
    "Example: omg listen micro_speech --wav clip.wav (keyword spotting, no enclave)";

/// The commands.
#[derive(Subcommand)]
pub(crate) enum Command {
    /// The whole story on the bundled defaults: vendor, device, provisioning, offline runs.
    #[cfg(feature = "vendor")]
    #[command(display_order = 1)]
    Demo(DemoArgs),
    /// Vendor tools.
    #[cfg(feature = "vendor")]
    #[command(display_order = 2, subcommand)]
    Vendor(VendorCommand),
    /// Device maker tools: a signing key, and endorsements of the devices it makes.
    #[command(display_order = 3, subcommand)]
    Maker(MakerCommand),
    /// Device (platform) tools: the identity a vendor enrols.
    #[command(display_order = 4, subcommand)]
    Device(DeviceCommand),
    /// Preparation phase: attest to the vendor service, receive the model key, seal it here.
    #[command(display_order = 5)]
    Provision(ProvisionArgs),
    /// Initialization and operation, offline: run a provisioned package on audio. A licence
    /// past its lease is refused (run `omg renew`); past its renewal time, a warning.
    #[command(display_order = 6)]
    Run(RunArgs),
    /// Renew a provisioned package's licence online: a fresh attestation and activation whose
    /// licence (and lease) replaces the sealed one. A refused renewal (e.g. a revoked device or
    /// model version) leaves the sealed licence as it was and says why.
    #[command(display_order = 7)]
    Renew(RenewArgs),
    /// Stream audio through the pipeline and report keyword events.
    #[command(display_order = 8)]
    Listen(ListenArgs),
    /// One keyword decision per clip (the first frames of each clip).
    #[command(display_order = 9)]
    Classify(ClassifyArgs),
    /// The platform side as a service for apps (the service deployment).
    #[command(display_order = 10, subcommand)]
    Platform(PlatformCommand),
    /// Print an attestation token over NONCE (hex) for a fresh enclave key.
    #[command(display_order = 11)]
    Attest(AttestArgs),
    /// Check an attestation token's signature, and optionally its measurements and nonce.
    #[command(display_order = 12)]
    VerifyToken(VerifyTokenArgs),
    /// Write the front end's features of a clip: int8 [frames][channels].
    #[command(display_order = 13)]
    Features(FeaturesArgs),
    /// Measure a model (latency per invoke, arena, model size) or a pipeline (cost per hop), on
    /// the chosen kernels.
    #[command(display_order = 14)]
    Bench(BenchArgs),
    /// Run a .tflite model once (or over a sequence) on raw little-endian tensor files.
    #[command(display_order = 15)]
    Infer(InferArgs),
}

impl Command {
    /// Runs the command.
    pub(crate) fn run(self) -> Result<()> {
        match self {
            #[cfg(feature = "vendor")]
            Command::Demo(args) => args.run(),
            #[cfg(feature = "vendor")]
            Command::Vendor(command) => command.run(),
            Command::Maker(command) => command.run(),
            Command::Device(command) => command.run(),
            Command::Provision(args) => args.run(),
            Command::Run(args) => args.run(),
            Command::Renew(args) => args.run(),
            Command::Listen(args) => args.run(),
            Command::Classify(args) => args.run(),
            Command::Platform(command) => command.run(),
            Command::Attest(args) => args.run(),
            Command::VerifyToken(args) => args.run(),
            Command::Features(args) => args.run(),
            Command::Bench(args) => args.run(),
            Command::Infer(args) => args.run(),
        }
    }
}

/// `--json`, the same for every command that has it.
#[derive(Args, Clone, Copy)]
pub(crate) struct Json {
    /// Print JSON instead of text: one object per result, one per line, with stable field
    /// names.
    #[arg(long)]
    pub json: bool,
}

/// `--dir`: the device directory.
#[derive(Args)]
pub(crate) struct DeviceDir {
    /// Device directory (default: $OMG_HOME/device or ~/.local/share/omg/device).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `--backend`: where the enclave runs.
#[derive(Args, Clone, Copy)]
pub(crate) struct BackendArg {
    /// Where the enclave runs: `optee` (the trusted application in TrustZone's secure world)
    /// or `linux` (the enclave process). Default: optee when this build has it and /dev/tee0
    /// exists, else linux.
    #[arg(long, value_enum)]
    pub backend: Option<backend::Backend>,
}

impl BackendArg {
    /// The chosen backend, or the default one.
    fn choose(self) -> backend::Backend {
        backend::Backend::choose(self.backend)
    }
}

/// The vendor service a device talks to.
#[derive(Args)]
pub(crate) struct ServerArgs {
    /// The vendor service (http:// or https:// URL).
    #[arg(long)]
    pub server: String,
    /// Trust this PEM certificate (e.g. the service's self-signed one) for https://.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
}

/// `--dir` and `--force` of the key and identity generators.
#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Directory for the key files (default: $OMG_HOME/NAME or ~/.local/share/omg/NAME, NAME
    /// being vendor, maker or device).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Replace existing key files (what the old keys signed or sealed is then unusable).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub out: Json,
}

/// The whole story on the bundled defaults.
#[cfg(feature = "vendor")]
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's files in this (new) directory instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[cfg(feature = "vendor")]
impl DemoArgs {
    fn run(self) -> Result<()> {
        demo::run(self.dir)
    }
}

/// `omg vendor`'s commands.
#[cfg(feature = "vendor")]
#[derive(Subcommand)]
pub(crate) enum VendorCommand {
    /// Run the provisioning and licensing service (HTTP, loopback by default).
    Serve(ServeArgs),
    /// Encrypt and sign a pipeline as a model package, and register it (policy, content key)
    /// in the service database.
    Package(PackageArgs),
    /// Enrol devices: the service gives keys only to devices enrolled or endorsed by a trusted
    /// maker (also `POST /v1/devices/enroll`).
    Enroll(EnrollArgs),
    /// Trust device makers: devices they endorse get keys without enrolment (also
    /// `POST /v1/makers/trust`).
    TrustMaker(TrustMakerArgs),
    /// Create the vendor's signing key (vendor.key, owner-only) and its public key (vendor.pub).
    Keygen(KeygenArgs),
}

#[cfg(feature = "vendor")]
impl VendorCommand {
    fn run(self) -> Result<()> {
        match self {
            VendorCommand::Serve(args) => args.run(),
            VendorCommand::Package(args) => args.run(),
            VendorCommand::Enroll(args) => {
                vendor::enroll(&args.db, &args.device_pub, args.out.json)
            }
            VendorCommand::TrustMaker(args) => {
                vendor::trust_makers(&args.db, &args.maker_pub, args.out.json)
            }
            VendorCommand::Keygen(args) => {
                identity::vendor_keygen(args.dir, args.force, args.out.json)
            }
        }
    }
}

/// `omg vendor serve`.
#[cfg(feature = "vendor")]
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The service database: a SQLite file (created and migrated if needed) or a
    /// postgres:// URL.
    #[arg(long)]
    pub db: PathBuf,
    /// Directory holding vendor.key (from `omg vendor keygen`).
    #[arg(long)]
    pub key_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8650")]
    pub listen: std::net::SocketAddr,
    /// File holding the bearer token that enables the admin endpoints and the web console
    /// (off without it).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (server certificate first).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Requests per second one client address may make in the long run (429 beyond);
    /// 0 turns the limit off.
    #[arg(long, default_value_t = omg_vendor::http::DEFAULT_RATE_LIMIT.per_second)]
    pub rate_limit: u32,
    /// Requests one client address may make at once after a pause.
    #[arg(long, default_value_t = omg_vendor::http::DEFAULT_RATE_LIMIT.burst)]
    pub rate_burst: u32,
    /// The request log on standard error: one text line per request, or one JSON object
    /// per line (fields method, route, status, ms; never a header or a body).
    #[arg(long, value_enum, default_value_t = vendor::LogFormat::Text)]
    pub log_format: vendor::LogFormat,
}

#[cfg(feature = "vendor")]
impl ServeArgs {
    fn run(self) -> Result<()> {
        vendor::serve(
            &self.db,
            &self.key_dir,
            self.listen,
            self.admin_token_file,
            vendor::Tls {
                cert: self.tls_cert,
                key: self.tls_key,
            },
            vendor::rate_limit(self.rate_limit, self.rate_burst),
            self.log_format,
        )
    }
}

/// `omg vendor package`.
#[cfg(feature = "vendor")]
#[derive(Args)]
pub(crate) struct PackageArgs {
    /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
    pub pipeline: String,
    /// The licensing policy (TOML).
    #[arg(long)]
    pub policy: PathBuf,
    /// The service database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    pub db: String,
    /// Directory holding vendor.key (default: $OMG_HOME/vendor or ~/.local/share/omg/vendor).
    #[arg(long)]
    pub key_dir: Option<PathBuf>,
    /// Model id (default: the pipeline's name).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Model version.
    #[arg(long, default_value_t = 1)]
    pub model_version: u32,
    /// The package file to write (atomically).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    #[command(flatten)]
    pub out: Json,
}

#[cfg(feature = "vendor")]
impl PackageArgs {
    fn run(self) -> Result<()> {
        let key_dir = identity::key_dir(self.key_dir, "vendor")?;
        package::run(
            &package::Options {
                pipeline: &self.pipeline,
                policy: &self.policy,
                key_dir: &key_dir,
                db: &self.db,
                model_id: self.model_id,
                version: self.model_version,
                output: &self.output,
            },
            self.out.json,
        )
    }
}

/// `omg vendor enroll`.
#[cfg(feature = "vendor")]
#[derive(Args)]
pub(crate) struct EnrollArgs {
    /// The service database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    pub db: PathBuf,
    /// Each device's attestation public key: a file as `omg device init` writes it
    /// (attestation.pub, SEC1), an OP-TEE device's attestation PTA key (RSA, DER
    /// SubjectPublicKeyInfo, raw or hex), or the key itself in hex (as `omg device info`
    /// prints it).
    #[arg(required = true)]
    pub device_pub: Vec<String>,
    #[command(flatten)]
    pub out: Json,
}

/// `omg vendor trust-maker`.
#[cfg(feature = "vendor")]
#[derive(Args)]
pub(crate) struct TrustMakerArgs {
    /// The service database: a SQLite file or a postgres:// URL.
    #[arg(long)]
    pub db: PathBuf,
    /// Each maker's public key: maker.pub (from `omg maker keygen`) or the key in hex.
    #[arg(required = true)]
    pub maker_pub: Vec<String>,
    #[command(flatten)]
    pub out: Json,
}

/// `omg maker`'s commands.
#[derive(Subcommand)]
pub(crate) enum MakerCommand {
    /// Create the maker's signing key (maker.key, owner-only) and its public key (maker.pub).
    Keygen(KeygenArgs),
    /// Endorse a device's attestation key (written beside the device identity by default).
    Endorse(EndorseArgs),
}

impl MakerCommand {
    fn run(self) -> Result<()> {
        match self {
            MakerCommand::Keygen(args) => {
                identity::maker_keygen(args.dir, args.force, args.out.json)
            }
            MakerCommand::Endorse(args) => args.run(),
        }
    }
}

/// `omg maker endorse`.
#[derive(Args)]
pub(crate) struct EndorseArgs {
    /// The device's attestation public key: attestation.pub or the key in hex.
    pub device_pub: String,
    /// The maker's signing key (maker.key).
    #[arg(long)]
    pub key: PathBuf,
    /// Last second the endorsement is valid (seconds since the Unix epoch; default: no end).
    #[arg(long)]
    pub not_after: Option<u64>,
    /// Write the endorsement to this file (atomically).
    #[arg(short = 'o', long = "output", conflicts_with = "device_dir")]
    pub output: Option<PathBuf>,
    /// Write it as endorsement.cose in this device directory (default: $OMG_HOME/device or
    /// ~/.local/share/omg/device), where `omg provision` finds it.
    #[arg(long)]
    pub device_dir: Option<PathBuf>,
    #[command(flatten)]
    pub out: Json,
}

impl EndorseArgs {
    fn run(self) -> Result<()> {
        let output = match self.output {
            Some(file) => maker::Output::File(file),
            None => maker::Output::DeviceDir(self.device_dir),
        };
        maker::endorse(
            &self.device_pub,
            &self.key,
            self.not_after,
            output,
            self.out.json,
        )
    }
}

/// `omg device`'s commands.
#[derive(Subcommand)]
pub(crate) enum DeviceCommand {
    /// Create the Linux backend's platform identity: attestation key and hardware-unique key
    /// (owner-only files).
    Init(KeygenArgs),
    /// Print the identity's public parts and the enclave measurement (for vendor policies).
    Info(InfoArgs),
}

impl DeviceCommand {
    fn run(self) -> Result<()> {
        match self {
            DeviceCommand::Init(args) => device::init(args.dir, args.force, args.out.json),
            DeviceCommand::Info(args) => device::info(args.device.dir, args.backend, args.out.json),
        }
    }
}

/// `omg device info`.
#[derive(Args)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    pub device: DeviceDir,
    /// Whose identity: `optee` (the attestation PTA's key and the TA's memory hash) or
    /// `linux` (the device directory's key and the enclave image's measurement). Default:
    /// optee when this build has it and /dev/tee0 exists, else linux.
    #[arg(long, value_enum)]
    pub backend: Option<backend::Backend>,
    #[command(flatten)]
    pub out: Json,
}

/// `omg platform`'s commands.
#[derive(Subcommand)]
pub(crate) enum PlatformCommand {
    /// Serve apps on a Unix socket: run as the platform's own user, the only one that can read
    /// the device directory; launches one enclave per session and sends apps only events.
    Serve(PlatformServeArgs),
}

impl PlatformCommand {
    fn run(self) -> Result<()> {
        match self {
            PlatformCommand::Serve(args) => args.run(),
        }
    }
}

/// `omg platform serve`.
#[derive(Args)]
pub(crate) struct PlatformServeArgs {
    #[command(flatten)]
    pub device: DeviceDir,
    /// The socket to listen on.
    #[arg(long, default_value = omg_linux::service::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The socket's permission bits, octal: who may connect (0666: every local user; the
    /// licence still decides what runs).
    #[arg(long, default_value = "0666", value_parser = octal_mode)]
    pub socket_mode: u32,
    /// Most sessions (enclaves) at once; more are refused as busy.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_sessions: u16,
    /// Most sessions at once for one user (uid); more are refused.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_sessions_per_uid: u16,
    /// Seconds an app's audio stream may send nothing before its session is ended.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..))]
    pub idle_timeout: u16,
}

impl PlatformServeArgs {
    fn run(self) -> Result<()> {
        platform::serve(platform::Settings {
            dir: device::device_dir(self.device.dir)?,
            socket: self.socket,
            socket_mode: self.socket_mode,
            max_sessions: usize::from(self.max_sessions),
            max_sessions_per_uid: usize::from(self.max_sessions_per_uid),
            idle_timeout: std::time::Duration::from_secs(u64::from(self.idle_timeout)),
        })
    }
}

fn octal_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal permission mode (e.g. 0660)"))
}

/// `omg provision`.
#[derive(Args)]
pub(crate) struct ProvisionArgs {
    /// The model package (.omgpkg).
    pub package: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// The vendor's public key (vendor.pub) the package must be signed with.
    #[arg(long)]
    pub vendor_key: PathBuf,
    #[command(flatten)]
    pub device: DeviceDir,
    #[command(flatten)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub out: Json,
}

impl ProvisionArgs {
    fn run(self) -> Result<()> {
        device::provision(
            &self.package,
            &self.server.server,
            &self.vendor_key,
            self.device.dir,
            self.server.ca_cert.as_deref(),
            self.backend.choose(),
            self.out.json,
        )
    }
}

/// `omg renew`.
#[derive(Args)]
pub(crate) struct RenewArgs {
    /// The model package (.omgpkg), provisioned on this device.
    pub package: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// The vendor's public key (default: the one the package was provisioned with).
    #[arg(long)]
    pub vendor_key: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceDir,
    #[command(flatten)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub out: Json,
}

impl RenewArgs {
    fn run(self) -> Result<()> {
        device::renew(
            &self.package,
            &self.server.server,
            self.vendor_key.as_deref(),
            self.device.dir,
            self.server.ca_cert.as_deref(),
            self.backend.choose(),
            self.out.json,
        )
    }
}

/// `omg run`.
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The model package (.omgpkg), provisioned on this device.
    pub package: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub device: DeviceDir,
    /// Run through the platform service listening on this socket instead of launching the
    /// enclave here (the service deployment; also from $OMG_PLATFORM_SOCKET).
    #[arg(long, env = omg_linux::service::SOCKET_ENV, conflicts_with_all = ["dir", "backend"])]
    pub socket: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub out: Json,
}

impl RunArgs {
    fn run(self) -> Result<()> {
        run::run(
            &self.package,
            self.source.source(),
            self.device.dir,
            self.socket,
            self.backend.choose(),
            self.out.json,
        )
    }
}

/// `omg attest`.
#[derive(Args)]
pub(crate) struct AttestArgs {
    /// The verifier's nonce, hex (32, 48 or 64 bytes).
    #[arg(long)]
    pub nonce: String,
    #[command(flatten)]
    pub device: DeviceDir,
    /// Write the raw token here (atomically) instead of printing it as hex.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub out: Json,
}

impl AttestArgs {
    fn run(self) -> Result<()> {
        device::attest(
            self.device.dir,
            &self.nonce,
            self.output.as_deref(),
            self.out.json,
        )
    }
}

/// `omg verify-token`.
#[derive(Args)]
pub(crate) struct VerifyTokenArgs {
    /// The token: raw bytes or hex.
    pub token: PathBuf,
    /// The device's public attestation key (attestation.pub, SEC1).
    #[arg(long)]
    pub device_key: PathBuf,
    /// An allowed enclave measurement (hex SHA-256); repeat for several.
    #[arg(long = "measurement")]
    pub measurements: Vec<String>,
    /// The expected nonce (hex).
    #[arg(long)]
    pub nonce: Option<String>,
    #[command(flatten)]
    pub out: Json,
}

impl VerifyTokenArgs {
    fn run(self) -> Result<()> {
        device::verify_token(
            &self.token,
            &self.device_key,
            &self.measurements,
            self.nonce.as_deref(),
            self.out.json,
        )
    }
}

/// `omg listen`.
#[derive(Args)]
pub(crate) struct ListenArgs {
    /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
    pub pipeline: String,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub out: Json,
}

impl ListenArgs {
    fn run(self) -> Result<()> {
        kws::listen(&self.pipeline, self.source.source(), self.out.json)
    }
}

/// `omg classify`.
#[derive(Args)]
pub(crate) struct ClassifyArgs {
    /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
    pub pipeline: String,
    /// Audio clips (WAV, any common format).
    #[arg(required = true)]
    pub wavs: Vec<PathBuf>,
    #[command(flatten)]
    pub out: Json,
}

impl ClassifyArgs {
    fn run(self) -> Result<()> {
        kws::classify(&self.pipeline, &self.wavs, self.out.json)
    }
}

/// `omg features`.
#[derive(Args)]
pub(crate) struct FeaturesArgs {
    /// Bundled pipeline name (e.g. micro_speech), directory, or manifest file.
    pub pipeline: String,
    /// The audio clip (WAV, any common format).
    pub wav: PathBuf,
    /// Output file (written atomically).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

impl FeaturesArgs {
    fn run(self) -> Result<()> {
        kws::features(&self.pipeline, &self.wav, &self.output)
    }
}

/// `omg bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    /// A .tflite model, or a PIPELINE (bundled name, directory or manifest).
    pub target: String,
    /// Number of timed invokes (default: as many as fit in about two seconds, at least 100).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Untimed invokes of a .tflite model before the timed ones (default: at least 10, as
    /// many as fit in 0.2 s, at most 1000). A pipeline has no warm-up: refused there.
    #[arg(long)]
    pub warmup: Option<usize>,
    #[command(flatten)]
    pub out: Json,
    #[command(flatten)]
    pub kernels: KernelArgs,
}

impl BenchArgs {
    fn run(self) -> Result<()> {
        let target = &self.target;
        if target.ends_with(".tflite") || Path::new(target).is_file() && !target.ends_with(".toml")
        {
            bench::run(
                Path::new(target),
                self.runs,
                self.warmup,
                self.out.json,
                self.kernels.set(),
            )
        } else if self.warmup.is_some() {
            anyhow::bail!(
                "--warmup applies to a .tflite model; a pipeline's bench ({target}) has no warm-up"
            )
        } else {
            kws::bench(target, self.runs, self.out.json, self.kernels.set())
        }
    }
}

/// `omg infer`.
#[derive(Args)]
pub(crate) struct InferArgs {
    /// The .tflite model.
    pub model: PathBuf,
    /// One file per subgraph input, in subgraph order.
    #[arg(long = "input", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// One file per subgraph output, in subgraph order (written atomically).
    #[arg(long = "output", required = true, num_args = 1..)]
    pub outputs: Vec<PathBuf>,
    /// Inputs hold K consecutive tensors: reset once, invoke K times, concatenate the outputs.
    #[arg(long)]
    pub sequence: bool,
    #[command(flatten)]
    pub kernels: KernelArgs,
}

impl InferArgs {
    fn run(self) -> Result<()> {
        infer::run(
            &self.model,
            &self.inputs,
            &self.outputs,
            self.sequence,
            self.kernels.set(),
        )
    }
}

/// Which kernels run a model. All compute the same bytes; they differ in speed.
#[derive(Args)]
pub(crate) struct KernelArgs {
    /// `auto` (the optimized kernels at the fastest level this CPU supports), `reference`
    /// (TFLM's reference loops) or an optimized level: `portable`, `avx2`, `avxvnni`,
    /// `avx512vnni` (x86-64), `neon`, `dotprod` (aarch64); a level this CPU cannot run is
    /// refused when the model loads.
    #[arg(long, default_value = "auto", value_parser = parse_kernels)]
    pub kernels: omg_engine::KernelSet,
    /// Short for `--kernels reference`.
    #[arg(long, conflicts_with = "kernels")]
    pub reference: bool,
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

/// Where the audio of `listen` and `run` comes from: exactly one of the three.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SourceArgs {
    /// Read a WAV file.
    #[arg(long)]
    pub wav: Option<PathBuf>,
    /// Read raw signed 16-bit little-endian 16 kHz mono samples from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Capture from the default microphone (ALSA). Only in a build with microphone support (the
    /// `mic` feature): elsewhere it is neither in the help nor in the usage line, and is
    /// refused with that reason (see `parse` in main.rs).
    #[cfg(feature = "mic")]
    #[arg(long)]
    pub mic: bool,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
