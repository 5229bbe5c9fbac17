//! The `avx512vnni` level: 512-bit `VPDPBUSD` (AVX-512 VNNI, four `u8 * i8` products per
//! 32-bit lane) for the convolution panel kernel (one panel of 8 output channels per
//! register, two quads of patch values per step: its panels hold octets); 256-bit EVEX
//! `VPDPBUSD` for FULLY_CONNECTED (the `avxvnni` kernel); the 256-bit EVEX form of `VPDPWSSD`
//! for the other dot products and the depthwise kernel; 16-lane requantization (the panel
//! kernel's, two pixels per register) and ADD (see `fixed512`); the AVX2 level's widening and
//! other requantization.
//!
//! Exactness: as for the `avxvnni` level (see its module): `VPDPWSSD` sums pairs of int8
//! products exactly then wraps like `vpaddd`; the quad panel kernel multiplies `x + 128` from
//! an accumulator started at `-128 * sum w`, which leaves `sum x w` modulo 2^32; the panel
//! kernel's second lane per channel starts at zero, and the two lanes' sum (wrapping) is that
//! channel's.

use core::arch::x86_64::*;

use super::avx2::{Avx2, Mac256};
use super::avxvnni::VnniLevel;
use super::depthwise512::depthwise;
use super::fixed512::{Narrow, add_i8, fields_16, requantize16};
use crate::elementwise::AddParams;
use crate::simd::{Channels, Job, PanelKernels, PatchRuns, gemm_shape};

/// Proof that the CPU supports AVX2, AVX-512 F/BW/VL and AVX-512 VNNI (with the operating
/// system saving the 512-bit state): only [`Avx512Vnni::detect`] creates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512Vnni(Avx2);

impl Avx512Vnni {
    /// The token, if this CPU (and its operating system) supports the level.
    pub(crate) fn detect() -> Option<Self> {
        let avx2 = Avx2::detect()?;
        (super::avx512_cpuid::get() && super::vnni_bit(false)).then_some(Avx512Vnni(avx2))
    }
}

/// Runs `job` with the AVX-512 VNNI kernels, its loops compiled with the level's features.
#[inline]
pub(crate) fn run_avx512vnni<J: Job>(token: Avx512Vnni, job: J) -> J::Output {
    // SAFETY: `token` exists, so the CPU supports every feature `run` enables.
    unsafe { run(token, job) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
fn run<J: Job>(token: Avx512Vnni, job: J) -> J::Output {
    job.run(token)
}

impl Mac256 for Avx512Vnni {
    #[inline(always)]
    fn avx2(self) -> Avx2 {
        self.0
    }

    /// `vpdpwssd` (EVEX, 256-bit).
    #[inline(always)]
    fn mac(self, acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI and VL are available (token); register operation only.
        unsafe { _mm256_dpwssd_epi32(acc, a, b) }
    }
}

impl VnniLevel for Avx512Vnni {
    /// `vpdpbusd` (EVEX, 256-bit).
    #[inline(always)]
    fn dpbusd(self, acc: __m256i, u: __m256i, w: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI and VL are available (token); register operation only.
        unsafe { _mm256_dpbusd_epi32(acc, u, w) }
    }

    /// 16 lanes at a time.
    #[inline(always)]
    fn add(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        add_i8(self, p, a, b, out);
    }

    /// 16 channels per register (see `depthwise512`).
    #[inline(always)]
    fn depthwise_row(
        self,
        (base, taps): (&[i8], &[usize]),
        step: usize,
        weights: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
    ) {
        depthwise(self, (base, taps), step, weights, ch, out);
    }
}

impl PanelKernels for Avx512Vnni {
    type Patch = i8;
    const GROUP: usize = 8;
    const HEADER: usize = 32;
    /// 20 accumulators (5 pixels times 4 panels), 4 weight registers and a broadcast: 25 of
    /// the 32 vector registers. 4 pixels times 5 panels measured slower (large ResNet 443 ->
    /// 431 us, VWW 213 -> 205, KWS 55 -> 53 with 5 x 4), 5 times 5 (25 accumulators) far
    /// slower.
    const MAX_NB: usize = 4;
    const MR: usize = 5;

    /// One panel (8 channels) per 512-bit accumulator, two quads at a time: for each octet of
    /// patch values, the panel's 64 weight bytes (channel `c`'s 8 bytes in lanes `2c`, `2c +
    /// 1`) times the octet broadcast as a 64-bit value; lane `2c` sums the even quads of
    /// channel `c`, lane `2c + 1` the odd ones, added at the end.
    #[inline(always)]
    fn gemm<const MR: usize, const NB: usize>(
        self,
        patches: PatchRuns<'_, i8>,
        panels: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
        stride: usize,
    ) {
        let Some(n) = gemm_shape::<Self, _>((MR, NB), &patches, panels.len(), &ch, (&*out, stride))
        else {
            return;
        };
        let (len, octets) = (patches.len(), patches.run / 8);
        let panel_len = 8 * len + Self::HEADER;
        let mut all: [&[[i8; 64]]; NB] = [&[]; NB];
        // SAFETY: AVX-512 F is available (token); register operation only.
        let mut init = unsafe { [_mm512_setzero_si512(); NB] };
        for ((w, init), nb) in all.iter_mut().zip(&mut init).zip(0..) {
            let (head, body) = panels[nb * panel_len..(nb + 1) * panel_len].split_at(32);
            *w = &body.as_chunks::<64>().0[..len / 8];
            // The header's corrections in the even lanes (the odd ones start at zero).
            // SAFETY: AVX2 and AVX-512 F are available (token); `head` is 32 readable bytes.
            *init = unsafe { _mm512_cvtepu32_epi64(_mm256_loadu_si256(head.as_ptr().cast())) };
        }
        let mut acc = [init; MR];
        let data = patches.data.as_ptr();
        // SAFETY (of every `octet` call below): AVX-512 F and VNNI are available (token); `j <
        // len / 8`, and every slice of `all` holds exactly `len / 8` elements; `off` is `r *
        // step + 8 i` for a run `r < runs` and an octet `i < octets` of it, so `starts[m] +
        // off + 8 <= starts[m] + (runs - 1) step + run <= data.len()` for `m < MR`
        // (`gemm_shape`).
        let mut x = [data; MR];
        for (x, &start) in x.iter_mut().zip(patches.starts) {
            // SAFETY: `start <= data.len()` (`gemm_shape`).
            *x = unsafe { data.add(start) };
        }
        if patches.runs == 1 {
            for j in 0..octets {
                // SAFETY: see above (`off = 8 j`, one run).
                unsafe { octet(&mut acc, &all, j, x, 8 * j) };
            }
        } else {
            // One loop over all octets (nested loops over runs and octets cost register moves
            // of the accumulators in every step): `off` walks each patch's runs, jumping the
            // gap from one run's end to the next run.
            let gap = patches.step.wrapping_sub(patches.run);
            let (mut off, mut left) = (0usize, octets);
            for j in 0..len / 8 {
                // SAFETY: see above.
                unsafe { octet(&mut acc, &all, j, x, off) };
                off = off.wrapping_add(8);
                left -= 1;
                if left == 0 {
                    (off, left) = (off.wrapping_add(gap), octets);
                }
            }
        }
        // Two panels (16 channels) at a time, pixel by pixel: each channel's two lanes added
        // (wrapping) as the even lanes of both panels plus their odd lanes, requantized with
        // the channel data loaded once per two panels, stored with one masked store.
        let (flags, narrow) = ((ch.saturating, ch.shifts_left), Narrow::new(self, ch.clamp));
        // SAFETY: AVX-512 F is available (token); register operations only.
        let (even, odd, zero) = unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            (
                even,
                _mm512_add_epi32(even, _mm512_set1_epi32(1)),
                _mm512_setzero_si512(),
            )
        };
        for nb in (0..NB).step_by(2) {
            let c = 8 * nb;
            let Some(lo) = ch.block(c) else {
                break;
            };
            // Without a second panel, the upper lanes are not stored.
            let fields = fields_16(self, [lo, ch.block(c + 8).unwrap_or(lo)]);
            let k = (n - c).min(16);
            let mask = ((1u32 << k) - 1) as __mmask16;
            for (m, a) in acc.iter().enumerate() {
                let (a0, a1) = (a[nb], a.get(nb + 1).copied().unwrap_or(zero));
                // SAFETY: AVX-512 F is available (token); register operations only.
                let sum = unsafe {
                    _mm512_add_epi32(
                        _mm512_permutex2var_epi32(a0, even, a1),
                        _mm512_permutex2var_epi32(a0, odd, a1),
                    )
                };
                let bytes = requantize16(self, sum, &fields, flags, &narrow);
                let o = &mut out[m * stride + c..][..k];
                // SAFETY: AVX-512 BW and VL are available (token); the mask selects the `k`
                // bytes of `o`, and a masked store writes nothing else.
                unsafe { _mm_mask_storeu_epi8(o.as_mut_ptr().cast(), mask, bytes) };
            }
        }
    }
}

/// One step of the `avx512vnni` panel kernel: octet `j` of the weights of every panel of
/// `all` times the octet at `x[m] + off` of every patch `m`, into `acc`.
///
/// # Safety
/// AVX-512 F and VNNI must be available; `j` must be inside every slice of `all`, and the 8
/// bytes at `x[m] + off` readable for every `m`.
#[inline(always)]
unsafe fn octet<const MR: usize, const NB: usize>(
    acc: &mut [[__m512i; NB]; MR],
    all: &[&[[i8; 64]]; NB],
    j: usize,
    x: [*const i8; MR],
    off: usize,
) {
    // SAFETY: as the caller promises.
    unsafe {
        let mut wv = [_mm512_setzero_si512(); NB];
        for (v, w) in wv.iter_mut().zip(all) {
            *v = _mm512_loadu_si512(w.get_unchecked(j).as_ptr().cast());
        }
        for (a, x) in acc.iter_mut().zip(x) {
            // The octet as one 64-bit lane, broadcast.
            let b = _mm512_set1_epi64(x.add(off).cast::<i64>().read_unaligned());
            for (a, &w) in a.iter_mut().zip(&wv) {
                *a = _mm512_dpbusd_epi32(*a, b, w);
            }
        }
    }
}
