//! Protected memory for the enclave's secrets: the model plaintext, keys, audio and features.
//!
//! Memory from `memfd_secret(2)` (Linux 5.14+) is removed from the kernel's direct map and
//! cannot be read by any other process, not even by root: `/proc/PID/mem` gives `EIO`,
//! `process_vm_readv(2)` gives `EFAULT` and `ptrace(PTRACE_PEEKDATA)` fails. It is never
//! swapped and never appears in a core dump. Where the kernel lacks it (or it is disabled),
//! this module falls back to an anonymous mapping locked in RAM with `mlock(2)`, excluded from
//! core dumps and wiped in a forked child: not swapped, but readable by root through
//! `/proc/PID/mem`. Every allocation reports which [`MemoryKind`] it got so the caller can warn.
//!
//! Two ways to hold secrets:
//! - [`ProtectedBuf`]: one zeroed buffer of a given length, wiped and unmapped on drop.
//! - [`SecretHeap`]: a whole heap in one protected region, for `#[global_allocator]`, so every
//!   `Vec` and `Box` of the enclave (including its temporaries) lives in protected memory.
//!
//! Both count against `RLIMIT_MEMLOCK` for a process without `CAP_IPC_LOCK` (8 MiB by default
//! on current kernels; the whole size of a region is charged when it is mapped): an enclave
//! running as an ordinary user needs its launcher to raise that limit to at least the heap
//! size plus the buffers it allocates.
//!
//! A `memfd_secret` mapping is necessarily shared (`MAP_SHARED`): a child created by `fork`
//! shares it with its parent. The enclave never forks (its seccomp filter forbids it); a
//! process that uses [`SecretHeap`] and forks must only `exec` in the child.

mod heap;

pub use heap::{DEFAULT_SECRET_HEAP_SIZE, SecretHeap};

use std::ffi::c_void;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr::NonNull;

use rustix::mm::{Advice, MapFlags, MlockFlags, ProtFlags};
use zeroize::Zeroize;

/// Which kind of memory backs a protected allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// `memfd_secret` memory: out of the kernel's direct map, unreadable by other processes
    /// (root included) and never swapped.
    Secret,
    /// The fallback: anonymous memory locked in RAM (never swapped) and excluded from core
    /// dumps, but readable through `/proc/PID/mem` by root or by a process allowed to
    /// ptrace this one. Callers should warn when they get it.
    Locked,
}

impl fmt::Display for MemoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemoryKind::Secret => "memfd_secret memory",
            MemoryKind::Locked => "mlock'ed memory (memfd_secret unavailable)",
        })
    }
}

/// Why protected memory could not be had.
#[derive(Debug)]
pub enum ProtectedMemoryError {
    /// The requested length does not fit the address space.
    TooLarge {
        /// The requested length in bytes.
        len: usize,
    },
    /// Neither `memfd_secret` memory nor locked memory could be mapped.
    Unavailable {
        /// The length in bytes that was asked for.
        len: usize,
        /// Why `memfd_secret` memory failed.
        secret: io::Error,
        /// Why the locked fallback failed.
        locked: io::Error,
    },
}

impl fmt::Display for ProtectedMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtectedMemoryError::TooLarge { len } => {
                write!(
                    f,
                    "{len} bytes of protected memory cannot be mapped: too large"
                )
            }
            ProtectedMemoryError::Unavailable {
                len,
                secret,
                locked,
            } => {
                write!(
                    f,
                    "no protected memory for {len} bytes: memfd_secret failed ({secret}) and the \
                     mlock'ed fallback failed ({locked})"
                )?;
                let limit_hit = |e: &io::Error| {
                    matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::ENOMEM | libc::EPERM)
                    )
                };
                if limit_hit(secret) || limit_hit(locked) {
                    write!(
                        f,
                        "; both kinds count against RLIMIT_MEMLOCK, which the launcher must raise \
                         for an enclave that does not run as root"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ProtectedMemoryError {}

/// A zeroed byte buffer in protected memory ([`MemoryKind::Secret`] where the kernel allows,
/// [`MemoryKind::Locked`] otherwise), wiped and unmapped when dropped.
///
/// It dereferences to `[u8]` of exactly the requested length. Decrypt straight into it: a
/// plaintext copy that ever passes through ordinary memory (a read buffer, a temporary `Vec`)
/// can be found there by root, whatever happens to this buffer.
pub struct ProtectedBuf {
    region: Region,
    len: usize,
}

// SAFETY: `ProtectedBuf` owns its mapping exclusively, like a `Box<[u8]>`: moving it to another
// thread moves that ownership, and shared references only give `&[u8]`.
unsafe impl Send for ProtectedBuf {}
// SAFETY: as above; `&ProtectedBuf` only allows reads.
unsafe impl Sync for ProtectedBuf {}

impl ProtectedBuf {
    /// Maps `len` zeroed bytes of protected memory.
    ///
    /// Works after [`crate::sandbox::harden`]: the syscalls it needs are on the allow-list.
    pub fn new(len: usize) -> Result<Self, ProtectedMemoryError> {
        let region = Region::map(len, Populate::Now)?;
        Ok(ProtectedBuf { region, len })
    }

    /// Which kind of memory this buffer got.
    pub fn kind(&self) -> MemoryKind {
        self.region.kind
    }
}

impl Deref for ProtectedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the region maps at least `len` readable bytes, zero-filled by the kernel and
        // so initialised, that live as long as `self`; `&self` forbids concurrent mutation.
        unsafe { std::slice::from_raw_parts(self.region.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for ProtectedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.region.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for ProtectedBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for ProtectedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for ProtectedBuf {
    /// Shows the length and the kind of memory, never the contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedBuf")
            .field("len", &self.len)
            .field("kind", &self.region.kind)
            .finish_non_exhaustive()
    }
}

impl Drop for ProtectedBuf {
    fn drop(&mut self) {
        let bytes: &mut [u8] = self;
        bytes.zeroize();
        // SAFETY: the region was mapped by `Region::map`, is owned by this buffer alone, and no
        // reference into it outlives `self`.
        unsafe { self.region.unmap() };
    }
}

/// Whether the pages of a new region are made resident at once or on first touch.
#[derive(Clone, Copy)]
enum Populate {
    /// A buffer the caller is about to fill: lock (and so populate) every page now.
    Now,
    /// A heap, mostly untouched: lock each page when it is first touched.
    OnFault,
}

/// A page-aligned mapping of protected memory. It has no `Drop`: owners unmap it.
#[derive(Debug)]
struct Region {
    ptr: NonNull<u8>,
    len: usize,
    kind: MemoryKind,
}

impl Region {
    /// Maps at least `len` bytes (a whole number of pages, at least one) of zeroed protected
    /// memory. Never allocates on the heap, so a global allocator may call it.
    fn map(len: usize, populate: Populate) -> Result<Region, ProtectedMemoryError> {
        let page = page_size();
        let map_len = len
            .max(1)
            .checked_next_multiple_of(page)
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or(ProtectedMemoryError::TooLarge { len })?;
        match map_secret(map_len) {
            Ok(ptr) => Ok(Region {
                ptr,
                len: map_len,
                kind: MemoryKind::Secret,
            }),
            Err(secret) => match map_locked(map_len, populate) {
                Ok(ptr) => Ok(Region {
                    ptr,
                    len: map_len,
                    kind: MemoryKind::Locked,
                }),
                Err(locked) => Err(ProtectedMemoryError::Unavailable {
                    len,
                    secret,
                    locked,
                }),
            },
        }
    }

    /// Whether `ptr` points into this region.
    fn contains(&self, ptr: *const u8) -> bool {
        let start = self.ptr.as_ptr() as usize;
        (start..start + self.len).contains(&(ptr as usize))
    }

    /// Unmaps the region.
    ///
    /// # Safety
    /// No reference into the region may be used afterwards.
    unsafe fn unmap(&self) {
        // SAFETY: the range is exactly one mapping created by `map`, and the caller guarantees
        // nothing refers to it any more. A failure would leave the mapping in place, which is
        // safe (the memory stays wiped by the caller).
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The page size, from the C library's copy of the auxiliary vector. (rustix's `page_size`
/// may fetch that vector with `prctl`, which the hardened enclave may not call.)
fn page_size() -> usize {
    // SAFETY: sysconf only reads a value the C library keeps.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// `memfd_secret(2)`, which no wrapper crate offers.
fn memfd_secret() -> io::Result<OwnedFd> {
    // SAFETY: memfd_secret takes one flags argument and passes no memory; it returns a new
    // descriptor or -1 with errno set.
    let ret = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel has just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Maps `len` (page-aligned) bytes of `memfd_secret` memory. The descriptor is closed at once:
/// the mapping keeps the memory alive, and no descriptor is left that could be passed on.
fn map_secret(len: usize) -> io::Result<NonNull<u8>> {
    let fd = memfd_secret()?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    // SAFETY: a new mapping at an address of the kernel's choosing (null hint, no MAP_FIXED)
    // cannot alias any existing memory.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            &fd,
            0,
        )
    }?;
    non_null(ptr)
}

/// The fallback: `len` (page-aligned) bytes of anonymous memory, locked in RAM, left out of
/// core dumps and wiped in a forked child.
fn map_locked(len: usize, populate: Populate) -> io::Result<NonNull<u8>> {
    // SAFETY: a new private mapping at an address of the kernel's choosing cannot alias any
    // existing memory.
    let ptr = unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }?;
    // SAFETY: `ptr..ptr + len` is the mapping just created, which nothing else uses yet.
    let locked = unsafe {
        match populate {
            Populate::Now => rustix::mm::mlock(ptr, len),
            Populate::OnFault => rustix::mm::mlock_with(ptr, len, MlockFlags::ONFAULT),
        }
        .and_then(|()| rustix::mm::madvise(ptr, len, Advice::LinuxDontDump))
        .and_then(|()| rustix::mm::madvise(ptr, len, Advice::LinuxWipeOnFork))
    };
    if let Err(e) = locked {
        // SAFETY: the mapping just created, never handed out.
        let _ = unsafe { rustix::mm::munmap(ptr, len) };
        return Err(e.into());
    }
    non_null(ptr)
}

fn non_null(ptr: *mut c_void) -> io::Result<NonNull<u8>> {
    NonNull::new(ptr.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_is_zeroed_writable_and_of_the_requested_length() {
        for len in [0, 1, 4095, 4096, 4097, 100_000] {
            let mut buf = ProtectedBuf::new(len).unwrap();
            assert_eq!(buf.len(), len);
            assert!(buf.iter().all(|&b| b == 0));
            buf.as_mut().fill(0x5a);
            assert!(buf.as_ref().iter().all(|&b| b == 0x5a));
        }
    }

    #[test]
    fn secret_memory_is_used_where_the_kernel_has_it() {
        // The test machines run Linux 6.x with secretmem enabled and as root (no
        // RLIMIT_MEMLOCK): anything but Secret there would be a regression.
        assert_eq!(ProtectedBuf::new(64).unwrap().kind(), MemoryKind::Secret);
    }

    #[test]
    fn debug_output_never_shows_the_contents() {
        let mut buf = ProtectedBuf::new(8).unwrap();
        buf.copy_from_slice(b"SECRET!!");
        let shown = format!("{buf:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("len: 8"), "{shown}");
    }

    #[test]
    fn absurd_lengths_are_refused_with_an_explanation() {
        let err = ProtectedBuf::new(usize::MAX).unwrap_err();
        assert!(matches!(err, ProtectedMemoryError::TooLarge { .. }));
        assert!(err.to_string().contains("too large"));
    }
}
