//! The enclave's self-hardening (docs/design.md, "The Linux backend"), applied by the enclave
//! process to itself before it accepts any secret.
//!
//! [`harden`] takes these steps, in this order:
//! 1. checks that the process has a single thread (seccomp filters, Landlock and `unshare`
//!    apply to the calling thread; another thread would escape them);
//! 2. `PR_SET_NO_NEW_PRIVS`: no exec can ever grant privileges again;
//! 3. `PR_SET_DUMPABLE 0`: no core dump, `/proc/PID/*` owned by root, and no `ptrace` or
//!    `/proc/PID/mem` access for processes of the same user that lack `CAP_SYS_PTRACE`;
//! 4. `RLIMIT_CORE 0`, soft and hard: no core file even if the process became dumpable;
//! 5. closes every descriptor but the kept ones (the channels, the audio source); standard
//!    streams not kept are pointed at `/dev/null` instead, so prints go nowhere and no later
//!    descriptor can take their numbers;
//! 6. optionally, new network, IPC, mount and UTS namespaces (through a new user namespace
//!    for an unprivileged process); never fatal, each outcome is reported;
//! 7. optionally, pins the process to one CPU;
//! 8. Landlock with no file-system and no network access at all, and signals and abstract
//!    Unix sockets scoped to the sandbox;
//! 9. the seccomp allow-list of [`ALLOW_LIST`], killing the process on any other system call.
//!
//! What it does not do: the kernel and the launcher stay trusted, root can still kill or
//! trace the process and read its ordinary memory (which is why secrets belong in
//! [`crate::protected`] memory), and the enclave cannot open anything once hardened: every
//! file, socket or device it needs must be open before, or be handed over by the launcher.
//!
//! For x86-64 and aarch64: the allow-list is a table per architecture (see [`ALLOW_LIST`]);
//! the crate does not build for other architectures.

mod allow_list;
mod landlock;
mod namespaces;

pub use allow_list::{ALLOW_LIST, AllowedSyscall, ArgFilter};
pub use landlock::LandlockReport;
pub use namespaces::{Namespace, NamespaceStatus};

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use rustix::fs::{Mode, OFlags};
use rustix::process::{DumpableBehavior, Resource, Rlimit};
use rustix::thread::CpuSet;

/// What [`harden`] should do beyond the steps it always takes.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// The descriptors to keep open: the host and platform channels, the audio source, and
    /// 0, 1 or 2 if the launcher connected them to something useful. Every other descriptor
    /// is closed; standard streams not listed are pointed at `/dev/null`.
    pub keep_fds: Vec<RawFd>,
    /// Try new network, IPC, mount and UTS namespaces. Default: yes.
    pub namespaces: bool,
    /// Pin the process to this CPU (a dedicated core). Default: none.
    pub cpu: Option<usize>,
    /// Install the seccomp allow-list. Default: yes. Leaving it out is only meant for tests
    /// that check the other layers (Landlock) on their own.
    pub seccomp: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            keep_fds: Vec::new(),
            namespaces: true,
            cpu: None,
            seccomp: true,
        }
    }
}

/// What [`harden`] applied. `no_new_privs`, non-dumpable and `RLIMIT_CORE 0` always are.
#[derive(Clone, Debug)]
pub struct Report {
    /// The descriptors left open, sorted.
    pub kept_fds: Vec<RawFd>,
    /// The standard streams now pointing at `/dev/null`.
    pub stdio_to_null: Vec<RawFd>,
    /// The outcome for each namespace; empty when namespaces were not asked for.
    pub namespaces: Vec<(Namespace, NamespaceStatus)>,
    /// The CPU the process is pinned to.
    pub cpu: Option<usize>,
    /// What Landlock enforces.
    pub landlock: LandlockReport,
    /// Whether the seccomp allow-list is installed.
    pub seccomp: bool,
}

impl fmt::Display for Report {
    /// One line for the enclave's log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no_new_privs, not dumpable, no core dumps; kept fds {:?}",
            self.kept_fds
        )?;
        if !self.stdio_to_null.is_empty() {
            write!(f, ", fds {:?} on /dev/null", self.stdio_to_null)?;
        }
        if !self.namespaces.is_empty() {
            f.write_str("; namespaces:")?;
            for (i, (ns, status)) in self.namespaces.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}{ns} {status}")?;
            }
        }
        if let Some(cpu) = self.cpu {
            write!(f, "; pinned to CPU {cpu}")?;
        }
        write!(f, "; {}; ", self.landlock)?;
        if self.seccomp {
            write!(f, "seccomp allow-list of {} syscalls", ALLOW_LIST.len())
        } else {
            f.write_str("NO seccomp filter")
        }
    }
}

/// Why [`harden`] stopped. The process is then partly hardened: it must not go on to accept
/// secrets.
#[derive(Debug)]
pub enum SandboxError {
    /// The process has more than one thread, which the filters would not cover.
    MultiThreaded {
        /// How many threads it has.
        threads: usize,
    },
    /// A descriptor to keep is not open: a launcher mistake, caught before anything is closed.
    KeptFdNotOpen {
        /// The descriptor.
        fd: RawFd,
    },
    /// A step failed.
    Step {
        /// What was being done.
        step: &'static str,
        /// The system's answer.
        source: io::Error,
    },
    /// The CPU to pin to does not exist.
    Pin {
        /// The CPU asked for.
        cpu: usize,
        /// The system's answer.
        source: io::Error,
    },
    /// Landlock refused the ruleset (a kernel without Landlock is not an error: see
    /// [`LandlockReport::Unavailable`]).
    Landlock(::landlock::RulesetError),
    /// The seccomp filter could not be built or installed.
    Seccomp(seccompiler::Error),
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SandboxError::MultiThreaded { threads } => write!(
                f,
                "the process has {threads} threads; harden it before starting any, since \
                 seccomp and Landlock would only restrict the calling one"
            ),
            SandboxError::KeptFdNotOpen { fd } => {
                write!(f, "descriptor {fd} is to be kept but is not open")
            }
            SandboxError::Step { step, source } => write!(f, "cannot {step}: {source}"),
            SandboxError::Pin { cpu, source } => write!(f, "cannot pin to CPU {cpu}: {source}"),
            SandboxError::Landlock(e) => write!(f, "cannot apply the Landlock ruleset: {e}"),
            SandboxError::Seccomp(e) => write!(f, "cannot install the seccomp filter: {e}"),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SandboxError::Step { source, .. } | SandboxError::Pin { source, .. } => Some(source),
            SandboxError::Landlock(e) => Some(e),
            SandboxError::Seccomp(e) => Some(e),
            SandboxError::MultiThreaded { .. } | SandboxError::KeptFdNotOpen { .. } => None,
        }
    }
}

fn step(step: &'static str) -> impl FnOnce(rustix::io::Errno) -> SandboxError {
    move |e| SandboxError::Step {
        step,
        source: e.into(),
    }
}

/// Hardens the calling process for good (see the [module documentation](self) for the steps).
/// Call it first thing in the enclave's `main`, before reading any secret and before starting
/// any thread; afterwards the process can only compute, allocate memory (including
/// [`crate::protected::ProtectedBuf`]) and use the descriptors it kept.
///
/// # Safety
///
/// Every descriptor not in `options.keep_fds` (other than 0, 1 and 2) is closed, whoever owns
/// it. No live object (a `File`, an `OwnedFd`, a socket, a library's own descriptor) may still
/// refer to one of them and be used or dropped afterwards: its number may be reused by a later
/// descriptor. At the start of `main` of a process that holds only what its launcher passed,
/// this holds.
pub unsafe fn harden(options: &SandboxOptions) -> Result<Report, SandboxError> {
    let threads = std::fs::read_dir("/proc/self/task")
        .map_err(|source| SandboxError::Step {
            step: "count the process's threads in /proc/self/task",
            source,
        })?
        .count();
    if threads != 1 {
        return Err(SandboxError::MultiThreaded { threads });
    }
    rustix::thread::set_no_new_privs(true).map_err(step("set no_new_privs"))?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(step("make the process non-dumpable"))?;
    let no_core = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(Resource::Core, no_core).map_err(step("set RLIMIT_CORE to 0"))?;
    // SAFETY: the caller guarantees that nothing refers to the descriptors this closes.
    let (kept_fds, stdio_to_null) = unsafe { close_fds(&options.keep_fds) }?;
    let namespaces = if options.namespaces {
        namespaces::enter()
    } else {
        Vec::new()
    };
    if let Some(cpu) = options.cpu {
        pin(cpu)?;
    }
    let landlock = landlock::restrict_self().map_err(SandboxError::Landlock)?;
    if options.seccomp {
        let program = allow_list::compile(std::process::id()).map_err(SandboxError::Seccomp)?;
        // All threads: there is one, but this costs nothing and leaves no gap if that changes.
        seccompiler::apply_filter_all_threads(&program).map_err(SandboxError::Seccomp)?;
    }
    Ok(Report {
        kept_fds,
        stdio_to_null,
        namespaces,
        cpu: options.cpu,
        landlock,
        seccomp: options.seccomp,
    })
}

/// Whether a child process was killed by its seccomp filter (death by `SIGSYS`), so that the
/// host can report a sandbox violation rather than an ordinary crash.
pub fn killed_by_sandbox(status: ExitStatus) -> bool {
    status.signal() == Some(libc::SIGSYS)
}

/// Points the standard streams not in `keep` at `/dev/null` and closes every other descriptor
/// not in `keep`. Returns the kept descriptors (sorted) and the redirected streams.
///
/// # Safety
/// Nothing may use or drop the descriptors this closes afterwards.
unsafe fn close_fds(keep: &[RawFd]) -> Result<(Vec<RawFd>, Vec<RawFd>), SandboxError> {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    keep.dedup();
    if let Some(&fd) = keep.iter().find(|&&fd| !is_open(fd)) {
        return Err(SandboxError::KeptFdNotOpen { fd });
    }
    let to_null: Vec<RawFd> = (0..=2).filter(|fd| !keep.contains(fd)).collect();
    if !to_null.is_empty() {
        let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(step("open /dev/null for the standard streams"))?;
        for &fd in &to_null {
            // SAFETY: dup2 onto a standard stream number: whatever it referred to is replaced
            // atomically, and std's streams keep working (on /dev/null).
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                return Err(SandboxError::Step {
                    step: "point a standard stream at /dev/null",
                    source: io::Error::last_os_error(),
                });
            }
        }
        if null.as_raw_fd() <= 2 {
            // It took the number of a closed standard stream, and now is that stream.
            let _ = null.into_raw_fd();
        }
    }
    let mut first = 3;
    for &fd in keep.iter().filter(|&&fd| fd >= 3) {
        if fd > first {
            // SAFETY: the caller guarantees that nothing uses these descriptors any more.
            unsafe { close_range(first, fd - 1) }?;
        }
        first = fd + 1;
    }
    // SAFETY: as above.
    unsafe { close_range(first, RawFd::MAX) }?;
    Ok((keep, to_null))
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the flags of a descriptor number; a number that is not open
    // (or negative) gives EBADF.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

/// Closes the descriptors `first..=last`.
///
/// # Safety
/// Nothing may use or drop those descriptors afterwards.
unsafe fn close_range(first: RawFd, last: RawFd) -> Result<(), SandboxError> {
    // SAFETY: close_range takes two numbers and flags and touches no memory; the caller
    // guarantees the descriptors are no longer in use.
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } < 0 {
        return Err(SandboxError::Step {
            step: "close the descriptors not kept",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn pin(cpu: usize) -> Result<(), SandboxError> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(SandboxError::Pin {
            cpu,
            source: io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| SandboxError::Pin {
        cpu,
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_failed() {
        let e = SandboxError::MultiThreaded { threads: 3 };
        assert!(e.to_string().contains("3 threads"));
        let e = SandboxError::Step {
            step: "set RLIMIT_CORE to 0",
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(e.to_string().starts_with("cannot set RLIMIT_CORE to 0: "));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn the_report_reads_as_one_line() {
        let report = Report {
            kept_fds: vec![3, 4],
            stdio_to_null: vec![0, 1, 2],
            namespaces: vec![
                (Namespace::User, NamespaceStatus::NotNeeded),
                (Namespace::Network, NamespaceStatus::New),
                (
                    Namespace::Uts,
                    NamespaceStatus::Unavailable { errno: libc::EPERM },
                ),
            ],
            cpu: Some(1),
            landlock: LandlockReport::Partial { abi: 7 },
            seccomp: true,
        };
        let line = report.to_string();
        assert!(!line.contains('\n'));
        for part in [
            "kept fds [3, 4]",
            "[0, 1, 2] on /dev/null",
            "network new",
            "UTS unavailable",
            "CPU 1",
            "Landlock ABI 7",
            "seccomp allow-list",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
    }

    #[test]
    fn harden_refuses_a_multithreaded_process() {
        // A second thread, alive during the call, whatever the test harness does.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || wait.recv());
        // SAFETY: with two threads, harden returns before closing any descriptor.
        let result = unsafe { harden(&SandboxOptions::default()) };
        release.send(()).unwrap();
        other.join().unwrap().unwrap();
        let err = result.unwrap_err();
        assert!(matches!(err, SandboxError::MultiThreaded { .. }), "{err}");
        assert!(!rustix::thread::no_new_privs().unwrap());
    }
}
