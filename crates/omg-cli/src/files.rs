//! File helpers: bounded reads and atomic writes.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Largest model file the CLI will read.
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

/// Reads a whole file, refusing files larger than `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let len = fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= limit,
        "{} is {len} bytes, more than the limit of {limit}",
        path.display()
    );
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, synced, then renamed.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_mode(path, data, 0o644)
}

/// Like [`write_atomic`] for secrets: the file is created readable and writable by its owner only
/// (before any byte is written), so the secret is never visible to others, not even briefly.
pub fn write_secret_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_mode(path, data, 0o600)
}

fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        // A leftover from a crashed run of the same process id would make create_new fail.
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}
