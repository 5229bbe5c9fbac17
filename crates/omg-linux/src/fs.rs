//! File helpers: bounded reads and atomic, durable writes.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Reads a whole file, refusing one larger than `limit` bytes (before reading it).
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let len = fs::metadata(path)?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, more than the limit of {limit}"),
        ));
    }
    fs::read(path)
}

/// Writes `data` to `path` atomically and durably: a temporary file in the same directory,
/// created with permissions `mode` before any byte is written, synced, renamed over `path`, and
/// the directory synced. Readers see the old file or the new one, never a mix; after a crash
/// the file is either the old or the new version.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
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
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` (and its parents) readable only by its owner, if it does not exist.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Fails if any of `files` exists in `dir`, unless `force`: key files are never replaced by
/// mistake.
pub fn refuse_existing(dir: &Path, files: &[&str], force: bool) -> io::Result<()> {
    if force {
        return Ok(());
    }
    match files.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        Some(existing) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} already exists; keys are never replaced without --force",
                existing.display()
            ),
        )),
        None => Ok(()),
    }
}
