//! ARM (aarch64) levels. NEON kernels are not written yet: the portable kernels run, and LLVM
//! auto-vectorizes them with NEON, which every aarch64 CPU has. A NEON level implements
//! [`super::Kernels`] here, gets an [`Isa`] variant and is returned by [`best`].

use super::Isa;

/// The fastest level available on this aarch64 CPU.
pub(super) fn best() -> Isa {
    Isa::Portable
}
