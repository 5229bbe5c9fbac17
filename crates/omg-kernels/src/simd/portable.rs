//! The portable inner kernels: plain Rust that LLVM auto-vectorizes for the compilation target
//! (SSE2 on x86-64, NEON on aarch64). They define what every other level must compute.

use super::{BIAS, Channels, Kernels, NoPanels, depthwise_shape};
use crate::elementwise::AddParams;
use crate::quant::OutputStage;

/// The portable level (always available).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Kernels for Portable {
    #[inline(always)]
    fn dot<const MR: usize, const NR: usize>(
        self,
        patches: [&[i16]; MR],
        rows: [&[i8]; NR],
    ) -> [[i32; NR]; MR] {
        let len = patches
            .iter()
            .map(|p| p.len())
            .chain(rows.iter().map(|r| r.len()))
            .min()
            .unwrap_or(0)
            / 16
            * 16;
        let mut out = [[0i32; NR]; MR];
        for (o, p) in out.iter_mut().zip(patches) {
            for (o, r) in o.iter_mut().zip(rows) {
                // Sums of widened 16-bit products: on x86-64 LLVM turns this into PMADDWD
                // (multiply-adds of pairs).
                *o = p[..len].iter().zip(&r[..len]).fold(0i32, |acc, (&x, &w)| {
                    acc.wrapping_add(i32::from(x) * i32::from(w))
                });
            }
        }
        out
    }

    type Panels = NoPanels;

    fn panels(self) -> Option<NoPanels> {
        None
    }

    #[inline(always)]
    fn widen(self, dst: &mut [i16], src: &[i8]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = i16::from(s);
        }
    }

    #[inline(always)]
    fn requantize(self, acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]) {
        let clamp = ch.clamp;
        let stage = OutputStage::new(clamp.zero_point, clamp.min, clamp.max);
        for (c, (o, &a)) in out.iter_mut().zip(acc).take(ch.len()).enumerate() {
            let a = a.wrapping_add(ch.value(BIAS, c)).wrapping_add(offset);
            *o = stage.requantize(a, ch.quantized_multiplier(c));
        }
    }

    #[inline(always)]
    fn depthwise(
        self,
        base: &[i8],
        taps: &[usize],
        step: usize,
        weights: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
    ) {
        let Some((c, _)) = depthwise_shape((base, taps), step, weights, &ch, out) else {
            return;
        };
        // Channels in blocks of up to 32 accumulators, iterators over exact lengths so that
        // the channel loop vectorizes.
        for (j, out) in out.chunks_exact_mut(c).enumerate() {
            for (cb, out) in out.chunks_mut(32).enumerate() {
                let (c0, len) = (32 * cb, out.len());
                let mut acc = [0i32; 32];
                for (t, w) in taps.chunks_exact(2).zip(weights.chunks_exact(2 * c)) {
                    let x0 = &base[t[0] + j * step + c0..][..len];
                    let x1 = &base[t[1] + j * step + c0..][..len];
                    let w = w[2 * c0..2 * (c0 + len)].as_chunks::<2>().0;
                    for (((a, &x0), &x1), w) in acc.iter_mut().zip(x0).zip(x1).zip(w) {
                        let s = i32::from(x0) * i32::from(w[0]) + i32::from(x1) * i32::from(w[1]);
                        *a = a.wrapping_add(s);
                    }
                }
                if let Some(ch) = ch.get(c0..c0 + len) {
                    self.requantize(&acc[..len], 0, ch, out);
                }
            }
        }
    }

    #[inline(always)]
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = p.apply(i32::from(x), i32::from(y)) as i8;
        }
    }
}
