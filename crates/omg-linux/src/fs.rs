//! File helpers: bounded reads and atomic, durable writes.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Reads a whole file, refusing one larger than `limit` bytes (it reads at most `limit + 1`).
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    // Reads at most one byte past the limit: a file that grows after its size was taken, or a
    // pipe or device whose size says nothing, cannot make this allocate more than `limit + 1`.
    // The size it has now (within the limit) is reserved first, so that a regular file is read
    // into one exact allocation, not a doubling buffer (which would hold up to three times a
    // large enclave image at its peak).
    let file = fs::File::open(path)?;
    let size = file.metadata()?.len().min(limit);
    let mut data = Vec::new();
    data.try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))
        .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "cannot allocate for the file"))?;
    file.take(limit.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the limit of {limit} bytes"),
        ));
    }
    Ok(data)
}

/// Distinguishes the temporary files of one process's concurrent writers.
static TMP_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` atomically and durably: a temporary file in the same directory,
/// created with permissions `mode` before any byte is written, synced, renamed over `path`, and
/// the directory synced. Readers see the old file or the new one, never a mix; after a crash
/// the file is either the old or the new version. The temporary name holds the process id and
/// a per-process sequence number, so concurrent writers (processes or threads) never share
/// one; concurrent writers of the same `path` must still agree on an order (a lock) if the
/// last one is not simply to win.
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
        ".{}.tmp{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        TMP_SEQUENCE.fetch_add(1, Ordering::Relaxed)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads of one process writing the same file at once (as the platform service's
    /// sessions do) never trip over each other's temporary file: every write succeeds and the
    /// file ends as one of the versions, whole.
    #[test]
    fn concurrent_writers_of_one_path_never_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, &[t; 64], 0o600).unwrap();
                    }
                });
            }
        });
        let last = fs::read(&path).unwrap();
        assert!(last.len() == 64 && last.iter().all(|&b| b == last[0]));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
