//! Landlock with no access at all: no file system, no TCP, no signals or abstract Unix sockets
//! outside the sandbox.

use std::fmt;

use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, Ruleset, RulesetAttr, RulesetError,
    RulesetStatus, Scope,
};

/// The newest Landlock ABI this build knows. In the default best-effort mode, the kernel
/// enforces all of it that it supports.
const NEWEST_ABI: ABI = ABI::V10;

/// What Landlock enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockReport {
    /// The kernel enforces everything requested.
    Full {
        /// The kernel's Landlock ABI version.
        abi: i32,
    },
    /// The kernel enforces every restriction its ABI knows; newer ones (for example UDP
    /// restrictions of ABI 10 on an older kernel) do not exist there.
    Partial {
        /// The kernel's Landlock ABI version.
        abi: i32,
    },
    /// The kernel has no Landlock, or it is disabled at boot: seccomp alone keeps the
    /// enclave from opening files.
    Unavailable,
}

impl fmt::Display for LandlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandlockReport::Full { abi } => write!(f, "Landlock ABI {abi}, fully enforced"),
            LandlockReport::Partial { abi } => {
                write!(
                    f,
                    "Landlock ABI {abi}, everything this kernel supports enforced"
                )
            }
            LandlockReport::Unavailable => f.write_str("Landlock unavailable"),
        }
    }
}

/// Restricts the calling thread: every file-system access right and every network right is
/// handled and no rule grants any, and signals and abstract Unix sockets are scoped to the
/// sandbox. Already open descriptors keep working.
pub(super) fn restrict_self() -> Result<LandlockReport, RulesetError> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(NEWEST_ABI))?
        .handle_access(AccessNet::from_all(NEWEST_ABI))?
        .scope(Scope::from_all(NEWEST_ABI))?
        .create()?
        .restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.unwrap_or(effective_abi as i32),
        _ => return Ok(LandlockReport::Unavailable),
    };
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockReport::Full { abi },
        RulesetStatus::PartiallyEnforced => LandlockReport::Partial { abi },
        RulesetStatus::NotEnforced => LandlockReport::Unavailable,
    })
}
