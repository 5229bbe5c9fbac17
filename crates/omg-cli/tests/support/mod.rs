//! Shared by the tests that run the real binary: `omg` with a home directory, temporary
//! directories, vendor keys and a running service that is killed (SIGKILL) when dropped.
#![allow(dead_code)] // Each test file uses its own part of this module.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The omg binary under test.
pub const OMG: &str = env!("CARGO_BIN_EXE_omg");

/// Runs `omg ARGS` with `OMG_HOME=home`.
pub fn omg(home: &Path, args: &[&str]) -> Output {
    Command::new(OMG)
        .env("OMG_HOME", home)
        .args(args)
        .output()
        .unwrap()
}

/// Asserts that `out` succeeded (showing its output otherwise) and returns its stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary directory (from `tempfile`, named after `tag`), removed on drop.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("omg-{tag}-"))
            .tempdir()
            .unwrap();
        TempDir(dir.path().to_path_buf(), dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

/// Runs `omg vendor keygen --dir DIR` and returns DIR.
pub fn vendor_keygen(dir: &TempDir) -> PathBuf {
    let keys = dir.path("keys");
    let out = Command::new(OMG)
        .args(["vendor", "keygen", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    keys
}

/// Runs `omg vendor package PIPELINE --policy POLICY --db DB --key-dir KEYS -o OUT EXTRA...`
/// (`extra`: e.g. `--model-id`, `--json`).
pub fn vendor_package(
    home: &Path,
    pipeline: &str,
    policy: &Path,
    db: &Path,
    keys: &Path,
    out: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "vendor",
        "package",
        pipeline,
        "--policy",
        policy.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--key-dir",
        keys.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    omg(home, &args)
}

/// Enrols the device of `home` (its `device/attestation.pub`) in the service database `db`
/// with `omg vendor enroll`; returns the device's UEID (hex).
pub fn enroll(home: &Path, db: &Path) -> String {
    let out = ok(omg(
        home,
        &[
            "vendor",
            "enroll",
            "--db",
            db.to_str().unwrap(),
            home.join("device/attestation.pub").to_str().unwrap(),
            "--json",
        ],
    ));
    let enrolled: serde_json::Value = serde_json::from_str(&out).unwrap();
    enrolled["ueid"].as_str().unwrap().to_owned()
}

/// Spawns `command` (a service) with standard error piped and waits for its first line, the
/// startup line; returns the process, the rest of its standard error and that line.
pub fn spawn_service(
    mut command: Command,
) -> (Child, BufReader<std::process::ChildStderr>, String) {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    (child, stderr, banner)
}

/// A running `omg vendor serve`; SIGKILLed on drop.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// The startup line it printed.
    pub banner: String,
}

impl Server {
    /// Starts `omg vendor serve --listen 127.0.0.1:0 --db DB --key-dir KEYS EXTRA...` and
    /// waits for its startup line.
    pub fn start(db: &Path, keys: &Path, extra: &[&str]) -> Server {
        let (server, mut stderr) = Server::start_logged(db, keys, extra);
        // Keep draining stderr so the service never writes into a closed pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stderr.read_to_end(&mut sink);
        });
        server
    }

    /// [`Server::start`], handing over the rest of the service's standard error (its log)
    /// instead of draining it.
    pub fn start_logged(
        db: &Path,
        keys: &Path,
        extra: &[&str],
    ) -> (Server, BufReader<std::process::ChildStderr>) {
        let mut serve = Command::new(OMG);
        serve
            .args(["vendor", "serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .arg("--key-dir")
            .arg(keys)
            .args(extra);
        let (child, stderr, banner) = spawn_service(serve);
        let addr = banner
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in the startup line {banner:?}"))
            .to_string();
        let server = Server {
            child,
            addr,
            banner,
        };
        (server, stderr)
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap the process.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of a bundled demo clip.
pub fn clip(name: &str) -> String {
    format!(
        "{}/../../assets/clips/{name}.wav",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A bundled demo clip's samples as raw s16le bytes.
pub fn clip_pcm(name: &str) -> Vec<u8> {
    hound::WavReader::open(clip(name))
        .unwrap()
        .samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect()
}

/// The child processes of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

/// A provisioned device: its files live in `dir`.
pub struct Device {
    /// Everything: vendor keys and database, the package, the device's home.
    pub dir: TempDir,
    /// `OMG_HOME` of the device (its identity is in `home/device`).
    pub home: PathBuf,
    /// The package, provisioned on the device.
    pub package: PathBuf,
}

/// In `dir`: a vendor key, a device, `pipeline` packaged for this device's enclave (all
/// scores, every input source), the device enrolled, and provisioned through a real vendor
/// service.
pub fn provisioned(dir: TempDir, pipeline: &str) -> Device {
    provisioned_with(dir, pipeline, "")
}

/// [`provisioned`] with `extra` lines in the vendor's policy (e.g. an inference quota).
pub fn provisioned_with(dir: TempDir, pipeline: &str, extra: &str) -> Device {
    let home = dir.path("home");
    let keys = vendor_keygen(&dir);
    let info: serde_json::Value =
        serde_json::from_str(&ok(omg(&home, &["device", "init", "--json"]))).unwrap();
    let measurement = info["enclave_measurement"].as_str().unwrap();
    // All scores, unless `extra` sets the output policy.
    let output_policy = if extra.contains("output_policy") {
        ""
    } else {
        "output_policy = \"all_scores\"\n"
    };
    let policy = dir.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allowed_measurements = [\"{measurement}\"]\nmax_devices = 5\nnot_after = 4102444800\n\
             {output_policy}{extra}"
        ),
    )
    .unwrap();
    let db = dir.path("vendor.sqlite");
    let package = dir.path("ms.omgpkg");
    ok(vendor_package(
        &home,
        pipeline,
        &policy,
        &db,
        &keys,
        &package,
        &[],
    ));
    enroll(&home, &db);
    let server = Server::start(&db, &keys, &[]);
    ok(omg(
        &home,
        &[
            "provision",
            package.to_str().unwrap(),
            "--server",
            &format!("http://{}", server.addr),
            "--vendor-key",
            keys.join("vendor.pub").to_str().unwrap(),
        ],
    ));
    server.kill();
    Device { dir, home, package }
}

/// A streaming `omg run` or `omg listen` (`--stdin --json`) with its standard input still open.
pub struct Streaming {
    /// The process.
    pub child: std::process::Child,
    /// Its standard input: dropping it ends the stream.
    pub stdin: std::process::ChildStdin,
    /// Its standard output, after the first event.
    pub stdout: BufReader<std::process::ChildStdout>,
}

/// Starts `command` with piped standard streams, feeds it the clip `name` and a second of
/// silence (which pushes the keyword through the classifier's window) and returns once its
/// first event arrived, asserting that it is `label`.
pub fn streaming(mut command: Command, name: &str, label: &str) -> Streaming {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(&clip_pcm(name)).unwrap();
    stdin.write_all(&vec![0u8; 32_000]).unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let event: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not an event: {line:?}"));
    assert_eq!(event["label"], label, "{line}");
    Streaming {
        child,
        stdin,
        stdout,
    }
}

/// How a run ended: the classifications it made, and whether the quota stopped it.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    /// Classifications made in the session.
    pub classifications: u64,
    /// Refused with the quota message.
    pub refused: bool,
}

/// Reads how a run ended from its standard error: finished (`omg: N classification(s)`) or
/// stopped by the quota (`inference quota exhausted ... (after N classification(s) ...)`).
/// Anything else (an I/O error) fails the test.
pub fn ended(out: &Output) -> Ended {
    let err = String::from_utf8_lossy(&out.stderr);
    let number_before = |marker: &str| -> Option<u64> {
        let at = err.find(marker)?;
        err[..at].split_whitespace().last()?.parse().ok()
    };
    if out.status.success() {
        let n = number_before(" classification(s)\n").unwrap_or_else(|| panic!("{err}"));
        return Ended {
            classifications: n,
            refused: false,
        };
    }
    assert!(err.contains("inference quota exhausted"), "{err}");
    let n = number_before(" classification(s) in this session").unwrap_or(0);
    Ended {
        classifications: n,
        refused: true,
    }
}

/// A WAV of `seconds` of silence (16 kHz mono).
pub fn silence(dir: &TempDir, seconds: u32) -> PathBuf {
    let path = dir.path(&format!("silence-{seconds}s.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for _ in 0..16_000 * seconds {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    path
}
