//! ARM (aarch64) levels: [`Isa::Neon`](super::Isa::Neon) (ARMv8.0 Advanced SIMD).
//!
//! NEON is part of every aarch64 application profile; it is available wherever the build
//! target enables it (every aarch64 target except the `-softfloat` ones), without detection.

mod neon;

pub(crate) use neon::{Neon, run_neon};
