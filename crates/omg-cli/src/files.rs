//! File helpers: bounded reads and atomic writes.

use std::path::Path;

use anyhow::{Context, Result};

/// Largest model file the CLI will read.
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

/// Reads a whole file, refusing files larger than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    omg_linux::fs::read_limited(path, limit)
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `data` to `path` atomically and durably (see [`omg_linux::fs::write_atomic`]).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    omg_linux::fs::write_atomic(path, data, 0o644)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Like [`write_atomic`] for secrets: the file is created readable and writable by its owner only
/// (before any byte is written), so the secret is never visible to others, not even briefly.
pub fn write_secret_atomic(path: &Path, data: &[u8]) -> Result<()> {
    omg_linux::fs::write_atomic(path, data, 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}
