//! x86-64 levels: run-time feature detection (CPUID and XGETBV through the `cpufeatures`
//! crate, no `std` needed) and the AVX2 kernels.

mod avx2;

pub(crate) use avx2::{Avx2, run_avx2};

cpufeatures::new!(avx2_cpuid, "avx2");
