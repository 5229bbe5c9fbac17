//! Shared by the tests that run the real binary: `omg` with a home directory, temporary
//! directories, vendor keys and a running service that is killed (SIGKILL) when dropped.
#![allow(dead_code)] // Each test file uses its own part of this module.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("omg-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        let mut child = Command::new(OMG)
            .args(["vendor", "serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .arg("--key-dir")
            .arg(keys)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut banner = String::new();
        stderr.read_line(&mut banner).unwrap();
        // Keep draining stderr so the service never writes into a closed pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stderr.read_to_end(&mut sink);
        });
        let addr = banner
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in the startup line {banner:?}"))
            .to_string();
        Server {
            child,
            addr,
            banner,
        }
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
