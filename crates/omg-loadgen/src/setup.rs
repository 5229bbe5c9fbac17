//! The service under load: its working directory, database, vendor key and process.

use omg_protocol::hex;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use omg_protocol::ContentKey;
use omg_protocol::rand_core::TryRng;
use omg_vendor::{OsRng, Policy, Store};

/// The model every client activates.
pub const MODEL_ID: &str = "loadgen-model";
/// Its version.
pub const MODEL_VERSION: u32 = 1;
/// Licence period of the model: ten years from now.
const LICENCE_SECS: u64 = 10 * 365 * 86_400;

/// The directory holding the database and the vendor keys; a temporary one is removed on drop.
pub struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    /// `dir` if given (it must not hold a database yet), else a new temporary directory.
    pub fn new(dir: Option<PathBuf>) -> Result<Self> {
        let (path, remove) = match dir {
            Some(dir) => (dir, false),
            None => (
                std::env::temp_dir().join(format!("omg-loadgen-{}", std::process::id())),
                true,
            ),
        };
        if path.join("vendor.sqlite").exists() {
            bail!(
                "{} already holds a database; give an empty --dir",
                path.display()
            );
        }
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WorkDir { path, remove })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What the service was prepared with.
pub struct Fixture {
    /// The SQLite database.
    pub db: PathBuf,
    /// The vendor key directory.
    pub key_dir: PathBuf,
    /// The enclave measurement the model's policy allows.
    pub measurement: [u8; 32],
    /// The file holding the service's admin token.
    pub admin_token_file: PathBuf,
    /// The admin token (clients enrol the device keys they make during the run with it).
    pub admin_token: String,
}

fn now() -> u64 {
    omg_vendor::http::system_now()
}

/// Creates the vendor key (with `omg vendor keygen`) and a database holding [`MODEL_ID`]
/// version [`MODEL_VERSION`] under a policy that allows one random measurement and
/// `u32::MAX` devices.
pub fn prepare(dir: &Path, omg: &Path) -> Result<Fixture> {
    let key_dir = dir.join("vendor-keys");
    let keygen = Command::new(omg)
        .args(["vendor", "keygen", "--dir"])
        .arg(&key_dir)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (build it with `cargo build --release -p omg-cli -p omg-enclave-image`, or give --omg)",
                omg.display()
            )
        })?;
    if !keygen.status.success() {
        bail!(
            "{} vendor keygen failed: {}",
            omg.display(),
            String::from_utf8_lossy(&keygen.stderr).trim()
        );
    }

    let mut measurement = [0u8; 32];
    OsRng::default()
        .try_fill_bytes(&mut measurement)
        .map_err(|e| match e {})?;
    let policy = Policy::from_toml(&format!(
        "allowed_measurements = [\"{}\"]\nmax_devices = {}\nnot_after = {}\n",
        hex::encode(&measurement),
        u32::MAX,
        now() + LICENCE_SECS
    ))?;
    let mut token = [0u8; 16];
    OsRng::default()
        .try_fill_bytes(&mut token)
        .map_err(|e| match e {})?;
    let admin_token = hex::encode(&token);
    let admin_token_file = dir.join("admin-token");
    std::fs::write(&admin_token_file, &admin_token)
        .with_context(|| format!("cannot write {}", admin_token_file.display()))?;
    let db = dir.join("vendor.sqlite");
    let store =
        Store::open(&db).with_context(|| format!("cannot create the database {}", db.display()))?;
    store.put_model(MODEL_ID, &policy, now())?;
    store.add_model_version(
        MODEL_ID,
        MODEL_VERSION,
        &ContentKey::generate(&mut OsRng::default()),
        now(),
    )?;
    Ok(Fixture {
        db,
        key_dir,
        measurement,
        admin_token_file,
        admin_token,
    })
}

/// Enrols the device keys made before the run (SEC1 public keys) in the database, in one
/// transaction: a fleet is enrolled long before its devices are provisioned.
pub fn enroll(fixture: &Fixture, public_keys: &[[u8; 65]]) -> Result<()> {
    let store = Store::open(&fixture.db)
        .with_context(|| format!("cannot open {}", fixture.db.display()))?;
    store.enroll_devices(public_keys, now())?;
    Ok(())
}

/// `omg vendor serve` on a free loopback port.
pub struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts the service and waits until it listens.
    pub fn start(omg: &Path, fixture: &Fixture) -> Result<Server> {
        let mut child = Command::new(omg)
            .args(["vendor", "serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&fixture.db)
            .arg("--key-dir")
            .arg(&fixture.key_dir)
            .arg("--admin-token-file")
            .arg(&fixture.admin_token_file)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} vendor serve", omg.display()))?;
        let mut stderr = BufReader::new(child.stderr.take().context("no stderr pipe")?);
        let mut banner = String::new();
        stderr.read_line(&mut banner)?;
        let addr = banner
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok());
        let Some(addr) = addr else {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the service did not start: {}{}",
                banner.trim(),
                rest.trim()
            );
        };
        // Pass on anything else the service says.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        Ok(Server { child, addr })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGKILL: every acknowledged activation is already committed) and reaps it.
    pub fn stop(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system, all threads) a process has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("unexpected format of {path}"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// How many activations the database holds.
pub fn recorded_activations(fixture: &Fixture) -> Result<usize> {
    let store = Store::open(&fixture.db)
        .with_context(|| format!("cannot reopen {}", fixture.db.display()))?;
    Ok(store.list_activations()?.len())
}
