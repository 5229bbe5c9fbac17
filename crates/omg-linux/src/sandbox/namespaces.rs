//! New namespaces, where the kernel and the process's privileges allow.

use std::fmt;
use std::io;

use rustix::thread::UnshareFlags;

/// A namespace the enclave leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// A new user namespace: only made when the process lacks the privilege to make the others
    /// directly, as it then owns the new one and may make them inside it.
    User,
    /// An empty network namespace (a loopback interface that is down): no network at all,
    /// even if the seccomp filter were bypassed.
    Network,
    /// Its own System V IPC objects and POSIX message queues.
    Ipc,
    /// A private copy of the mount table.
    Mount,
    /// Its own host and domain names.
    Uts,
}

impl Namespace {
    fn flag(self) -> UnshareFlags {
        match self {
            Namespace::User => UnshareFlags::NEWUSER,
            Namespace::Network => UnshareFlags::NEWNET,
            Namespace::Ipc => UnshareFlags::NEWIPC,
            Namespace::Mount => UnshareFlags::NEWNS,
            Namespace::Uts => UnshareFlags::NEWUTS,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Namespace::User => "user",
            Namespace::Network => "network",
            Namespace::Ipc => "IPC",
            Namespace::Mount => "mount",
            Namespace::Uts => "UTS",
        })
    }
}

/// What became of one namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceStatus {
    /// The process is in a new namespace of this type.
    New,
    /// Not needed (only for [`Namespace::User`]: the process could make the others directly).
    NotNeeded,
    /// The kernel refused; the enclave runs on in the namespace it had.
    Unavailable {
        /// The error number `unshare(2)` gave.
        errno: i32,
    },
}

impl fmt::Display for NamespaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamespaceStatus::New => f.write_str("new"),
            NamespaceStatus::NotNeeded => f.write_str("not needed"),
            NamespaceStatus::Unavailable { errno } => {
                write!(f, "unavailable ({})", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

const WANTED: [Namespace; 4] = [
    Namespace::Network,
    Namespace::Ipc,
    Namespace::Mount,
    Namespace::Uts,
];

/// Moves the calling (single) thread into a new namespace of each wanted type, through a new
/// user namespace when the process lacks the privilege. Never fails: each outcome is reported.
pub(super) fn enter() -> Vec<(Namespace, NamespaceStatus)> {
    let mut outcome: Vec<(Namespace, NamespaceStatus)> =
        WANTED.iter().map(|&ns| (ns, unshare(ns))).collect();
    let refused = |outcome: &[(Namespace, NamespaceStatus)]| {
        outcome
            .iter()
            .any(|(_, status)| *status == NamespaceStatus::Unavailable { errno: libc::EPERM })
    };
    let user = if refused(&outcome) {
        let user = unshare(Namespace::User);
        if user == NamespaceStatus::New {
            for (ns, status) in &mut outcome {
                if *status != NamespaceStatus::New {
                    *status = unshare(*ns);
                }
            }
        }
        user
    } else {
        NamespaceStatus::NotNeeded
    };
    outcome.insert(0, (Namespace::User, user));
    outcome
}

fn unshare(ns: Namespace) -> NamespaceStatus {
    // SAFETY: none of the flags used here is CLONE_FILES, the one that could leave other
    // threads with descriptors this thread no longer shares; and `harden` has checked that
    // the process has a single thread.
    match unsafe { rustix::thread::unshare_unsafe(ns.flag()) } {
        Ok(()) => NamespaceStatus::New,
        Err(e) => NamespaceStatus::Unavailable {
            errno: e.raw_os_error(),
        },
    }
}
