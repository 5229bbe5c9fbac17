//! The seccomp allow-list: every system call the hardened enclave may make, in one table.
//!
//! Anything else kills the whole process (`SECCOMP_RET_KILL_PROCESS`, seen by the parent as
//! death by `SIGSYS`). The list is what a single-threaded Rust process needs to compute in
//! memory and talk over descriptors it already holds: nothing opens a file, creates a socket,
//! starts a process or thread, executes a program, or touches another process.
//!
//! The table is per architecture: the numbers are those of the target's syscall table (x86-64
//! or aarch64, taken from `libc`), and the filter also checks the architecture. The calls are
//! the same on both except where aarch64's table lacks an old call: it has no `poll`, only
//! `ppoll` (which glibc's `poll()` uses there), so `poll` is listed on x86-64 only.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// One allowed system call.
#[derive(Clone, Copy, Debug)]
pub struct AllowedSyscall {
    /// Its name, as in `syscall(2)`.
    pub name: &'static str,
    /// Its number on the target architecture.
    pub number: i64,
    /// The condition on its arguments.
    pub args: ArgFilter,
    /// Why the enclave needs it.
    pub why: &'static str,
}

/// A condition on the arguments of an allowed system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgFilter {
    /// Any arguments.
    Any,
    /// The protection argument (the third) must not include `PROT_EXEC`: no memory becomes
    /// executable after hardening, so injected code cannot be run.
    NoExec,
    /// The target process (the first argument) must be the enclave itself.
    OwnProcess,
    /// Only the `F_GETFD` command (the second argument): reading a descriptor's flags.
    GetFdFlags,
}

macro_rules! allow {
    ($sys:ident, $args:ident, $why:literal) => {
        AllowedSyscall {
            name: strip_sys(stringify!($sys)),
            number: libc::$sys,
            args: ArgFilter::$args,
            why: $why,
        }
    };
}

/// `"SYS_read"` → `"read"`, at compile time.
const fn strip_sys(constant: &'static str) -> &'static str {
    let (_, name) = constant.as_bytes().split_at(4);
    match std::str::from_utf8(name) {
        Ok(name) => name,
        Err(_) => panic!("syscall constant names are ASCII"),
    }
}

/// The allow-list. Adding an entry widens what a compromised enclave can do: each needs a
/// reason the enclave cannot work without.
pub const ALLOW_LIST: &[AllowedSyscall] = &[
    // Talking over the channels and reading the audio descriptor.
    allow!(SYS_read, Any, "read from the channels and the audio source"),
    allow!(
        SYS_write,
        Any,
        "write to the channels (and stderr, when the launcher keeps it)"
    ),
    allow!(SYS_readv, Any, "vectored reads of the same descriptors"),
    allow!(SYS_writev, Any, "vectored writes of the same descriptors"),
    allow!(
        SYS_recvfrom,
        Any,
        "std's socket reads (`recv`) on the socketpairs"
    ),
    allow!(
        SYS_sendto,
        Any,
        "std's socket writes (`send`) on the socketpairs"
    ),
    allow!(
        SYS_recvmsg,
        Any,
        "messages with ancillary data, e.g. a descriptor handed over"
    ),
    allow!(
        SYS_sendmsg,
        Any,
        "messages with ancillary data on the socketpairs"
    ),
    #[cfg(target_arch = "x86_64")]
    allow!(SYS_poll, Any, "waiting for the host or platform channel"),
    allow!(SYS_ppoll, Any, "waiting with a timeout or signal mask"),
    allow!(
        SYS_close,
        Any,
        "dropping descriptors (ProtectedBuf closes its memfd at once)"
    ),
    allow!(
        SYS_fcntl,
        GetFdFlags,
        "std checks a descriptor is open before closing it (debug)"
    ),
    // Memory: the global allocator, glibc's malloc, std, and protected buffers.
    allow!(SYS_brk, Any, "glibc's malloc grows its main arena"),
    allow!(
        SYS_mmap,
        NoExec,
        "allocators and ProtectedBuf map memory; never executable"
    ),
    allow!(SYS_munmap, Any, "allocators and ProtectedBuf return memory"),
    allow!(SYS_mremap, Any, "glibc's realloc of large blocks"),
    allow!(
        SYS_mprotect,
        NoExec,
        "glibc's malloc adjusts heap protections; never executable"
    ),
    allow!(
        SYS_madvise,
        Any,
        "allocators release pages; the locked fallback sets DONTDUMP"
    ),
    allow!(
        SYS_memfd_secret,
        Any,
        "ProtectedBuf after hardening: an fd with no path, closed at once"
    ),
    allow!(
        SYS_ftruncate,
        Any,
        "sizing that memfd_secret fd before mapping it"
    ),
    allow!(
        SYS_mlock,
        Any,
        "ProtectedBuf's locked fallback where memfd_secret is missing"
    ),
    allow!(
        SYS_mlock2,
        Any,
        "SecretHeap's locked fallback (lock on fault)"
    ),
    // Synchronisation, time, randomness.
    allow!(
        SYS_futex,
        Any,
        "std's Mutex, Once and RwLock, glibc's internal locks"
    ),
    allow!(SYS_sched_yield, Any, "yielding in spin loops"),
    allow!(
        SYS_clock_gettime,
        Any,
        "Instant and SystemTime when the vDSO is unavailable"
    ),
    allow!(
        SYS_clock_nanosleep,
        Any,
        "thread::sleep (glibc's nanosleep)"
    ),
    allow!(SYS_getrandom, Any, "HashMap keys and key generation"),
    // Signals, so that a crash looks like a crash and not like a sandbox kill.
    allow!(SYS_rt_sigreturn, Any, "returning from a signal handler"),
    allow!(
        SYS_rt_sigprocmask,
        Any,
        "glibc's abort() and signal handling block signals"
    ),
    allow!(
        SYS_rt_sigaction,
        Any,
        "std's SIGSEGV handler restores the default to re-fault"
    ),
    allow!(
        SYS_sigaltstack,
        Any,
        "std's stack-overflow handler frees its stack at exit"
    ),
    allow!(
        SYS_restart_syscall,
        Any,
        "the kernel resumes an interrupted poll or sleep"
    ),
    allow!(
        SYS_getpid,
        Any,
        "glibc's abort() addresses SIGABRT to this process"
    ),
    allow!(
        SYS_gettid,
        Any,
        "glibc's abort() addresses SIGABRT to this thread"
    ),
    allow!(
        SYS_tgkill,
        OwnProcess,
        "abort() raises SIGABRT, to itself only"
    ),
    // Leaving.
    allow!(SYS_exit, Any, "the thread ends"),
    allow!(SYS_exit_group, Any, "the process ends"),
];

/// The architecture whose syscall table [`ALLOW_LIST`] uses: the filter kills a process that
/// makes a call under any other (e.g. a 32-bit call on a 64-bit kernel).
#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the enclave's seccomp allow-list exists for x86-64 and aarch64 only");

/// Compiles [`ALLOW_LIST`] into a BPF program for the process `pid` (the target of the
/// [`ArgFilter::OwnProcess`] rules), killing the process on anything else.
pub(super) fn compile(pid: u32) -> Result<BpfProgram, seccompiler::Error> {
    let mut rules = BTreeMap::new();
    for syscall in ALLOW_LIST {
        let conditions = match syscall.args {
            ArgFilter::Any => Vec::new(),
            ArgFilter::NoExec => vec![SeccompRule::new(vec![SeccompCondition::new(
                2,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
                0,
            )?])?],
            ArgFilter::OwnProcess => vec![SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(pid),
            )?])?],
            ArgFilter::GetFdFlags => vec![SeccompRule::new(vec![SeccompCondition::new(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                libc::F_GETFD as u64,
            )?])?],
        };
        rules.insert(syscall.number, conditions);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        ARCH,
    )?;
    Ok(filter.try_into()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_is_listed_once_with_a_reason() {
        let mut numbers: Vec<i64> = ALLOW_LIST.iter().map(|s| s.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ALLOW_LIST.len(), "a syscall is listed twice");
        assert!(ALLOW_LIST.iter().all(|s| !s.why.is_empty()));
        assert_eq!(ALLOW_LIST[0].name, "read");
        assert_eq!(ALLOW_LIST[0].number, libc::SYS_read);
    }

    #[test]
    fn nothing_that_reaches_outside_the_process_is_allowed() {
        let forbidden = [
            // aarch64's table has only the *at variants of the old path calls, and no fork.
            #[cfg(target_arch = "x86_64")]
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_openat2,
            #[cfg(target_arch = "x86_64")]
            libc::SYS_creat,
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_accept4,
            libc::SYS_execve,
            libc::SYS_execveat,
            #[cfg(target_arch = "x86_64")]
            libc::SYS_fork,
            #[cfg(target_arch = "x86_64")]
            libc::SYS_vfork,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_kill,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_mount,
            libc::SYS_prctl,
            libc::SYS_seccomp,
            libc::SYS_bpf,
            libc::SYS_ioctl,
            libc::SYS_io_uring_setup,
            libc::SYS_userfaultfd,
            libc::SYS_perf_event_open,
            libc::SYS_pkey_mprotect,
        ];
        for nr in forbidden {
            assert!(
                ALLOW_LIST.iter().all(|s| s.number != nr),
                "syscall {nr} must not be allowed"
            );
        }
    }

    #[test]
    fn the_filter_compiles() {
        let program = compile(std::process::id()).unwrap();
        assert!(!program.is_empty());
    }
}
