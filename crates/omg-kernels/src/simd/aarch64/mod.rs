//! ARM (aarch64) levels: [`Isa::Neon`](super::Isa::Neon) (ARMv8.0 Advanced SIMD) and
//! [`Isa::Dotprod`](super::Isa::Dotprod) (the ARMv8.2 `SDOT` instruction).
//!
//! * NEON is part of every aarch64 application profile; it is available wherever the build
//!   target enables it (every aarch64 target except the `-softfloat` ones), without detection.
//! * `SDOT` is optional (Cortex-A55/A75/A76 and later have it, Cortex-A53/A57/A72/A73 do not).
//!   The crate never reads the CPU's ID registers itself: a trusted application (under OP-TEE,
//!   say) may not be allowed to, and the read would trap. The level is available when the build
//!   enables the `dotprod` target feature (`-C target-feature=+dotprod`: an explicit choice for
//!   a known CPU, where no operating system tells the features), or, with the crate's `std`
//!   feature, when the operating system reports it (on Linux, the `HWCAP_ASIMDDP` bit of the
//!   auxiliary vector, read by `std::arch::is_aarch64_feature_detected!`).
//!
//! The dotprod level runs the whole job (loops included) with the `dotprod` target feature
//! enabled; only its dot products differ from the NEON level, whose depthwise, requantization,
//! widening and ADD kernels it shares.

mod dotprod;
mod neon;

pub(crate) use dotprod::{Dotprod, run_dotprod};
pub(crate) use neon::{Neon, run_neon};
