//! x86-64 levels: run-time feature detection (CPUID and XGETBV through the `cpufeatures`
//! crate, plus CPUID for the VNNI bits it does not name; no `std` needed), the AVX2 kernels and
//! the VNNI levels built on them.

mod avx2;
mod avx512vnni;
mod avxvnni;
mod depthwise512;
mod fixed512;

use core::sync::atomic::{AtomicU8, Ordering};

pub(crate) use avx2::{Avx2, run_avx2};
pub(crate) use avx512vnni::{Avx512Vnni, run_avx512vnni};
pub(crate) use avxvnni::{AvxVnni, run_avxvnni};

cpufeatures::new!(avx2_cpuid, "avx2");
// AVX-512 F, BW and VL, with the operating system saving the 512-bit and mask state (XGETBV).
cpufeatures::new!(avx512_cpuid, "avx512f", "avx512bw", "avx512vl");

/// The VNNI bits of CPUID, read once: bit 0 AVX-VNNI (leaf 7 subleaf 1, EAX bit 4), bit 1
/// AVX512_VNNI (leaf 7 subleaf 0, ECX bit 11), bit 7 set once read.
static VNNI: AtomicU8 = AtomicU8::new(0);

/// Whether CPUID reports AVX-VNNI (`avx`) or AVX512_VNNI (`!avx`). Only the instruction-set
/// bit: the register state is checked by [`avx2_cpuid`] and [`avx512_cpuid`].
fn vnni_bit(avx: bool) -> bool {
    let mut bits = VNNI.load(Ordering::Relaxed);
    if bits == 0 {
        // Leaf 7 exists on every CPU with AVX2 (its bit is in leaf 7 too); callers check AVX2
        // first.
        let leaf0 = core::arch::x86_64::__cpuid_count(7, 0);
        let leaf1 = core::arch::x86_64::__cpuid_count(7, 1);
        bits = 0x80 | (((leaf1.eax >> 4) & 1) as u8) | ((((leaf0.ecx >> 11) & 1) as u8) << 1);
        VNNI.store(bits, Ordering::Relaxed);
    }
    bits & if avx { 1 } else { 2 } != 0
}
