//! Monotonic counters kept in files: one decimal number per (model, counter), written
//! atomically and durably, never lowered.
//!
//! Files live in one directory, named by the SHA-256 of the model id (model ids may hold any
//! character) and the counter. A missing file reads as 0. The host could delete or roll back
//! these files: on Linux the counters protect against a stale sealed blob being replayed by
//! mistake, not against the device's owner (TrustZone backends keep them in secure storage).

use std::io;
use std::path::{Path, PathBuf};

use omg_enclave::platform::Counter;

use crate::fs::{create_private_dir, read_limited, write_atomic};

/// A directory of counters.
#[derive(Debug, Clone)]
pub struct Counters {
    dir: PathBuf,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Counters {
    /// Counters in `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, model_id: &str, counter: Counter) -> PathBuf {
        let name = match counter {
            Counter::Epoch => "epoch",
            Counter::Inferences => "inferences",
        };
        let id = hex(&omg_protocol::sha256(model_id.as_bytes())[..16]);
        self.dir.join(format!("{id}.{name}"))
    }

    /// The counter's value (0 if never written).
    pub fn get(&self, model_id: &str, counter: Counter) -> io::Result<u64> {
        let path = self.path(model_id, counter);
        match read_limited(&path, 32) {
            Ok(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not a counter value", path.display()),
                    )
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }

    /// Raises the counter to at least `value`, durably; returns the value afterwards.
    pub fn raise(&self, model_id: &str, counter: Counter, value: u64) -> io::Result<u64> {
        let current = self.get(model_id, counter)?;
        if value <= current {
            return Ok(current);
        }
        create_private_dir(&self.dir)?;
        let path = self.path(model_id, counter);
        write_atomic(&path, format!("{value}\n").as_bytes(), 0o600)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(value)
    }
}
