//! `SignalRfft` (int16): real-input FFT with kissfft's 16-bit fixed-point arithmetic.
//!
//! TFLM computes this with kissfft (v1.3.0 era) compiled with `FIXED_POINT=16`:
//! a half-length complex FFT of the even/odd sample pairs, decimation in time
//! with radices 4, 2, 3 and 5, where every butterfly first divides its inputs
//! by the radix (so the output is the DFT divided by the FFT size), followed by
//! the usual split into the spectrum of the real signal. All products are
//! Q15 with round-half-up, all sums wrap to 16 bits. This module reproduces
//! that arithmetic exactly; the table construction uses the same formulas
//! (`floor(0.5 + 32767 * cos(phase))`).

use alloc::vec;
use alloc::vec::Vec;

use crate::{SignalError, expect_len, trig};

/// Largest supported `fft_length`.
pub const MAX_FFT_LENGTH: usize = 1 << 16;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cpx {
    r: i16,
    i: i16,
}

/// Q15 rounding of a product sum: `(x + 2^14) >> 15`, truncated to 16 bits.
#[inline]
fn round_q15(x: i32) -> i16 {
    (x.wrapping_add(1 << 14) >> 15) as i16
}

/// Q15 product of two 16-bit values, rounded.
#[inline]
fn mul_q15(a: i16, b: i16) -> i16 {
    round_q15(i32::from(a) * i32::from(b))
}

impl Cpx {
    #[inline]
    fn add(self, o: Self) -> Self {
        Self {
            r: self.r.wrapping_add(o.r),
            i: self.i.wrapping_add(o.i),
        }
    }

    #[inline]
    fn sub(self, o: Self) -> Self {
        Self {
            r: self.r.wrapping_sub(o.r),
            i: self.i.wrapping_sub(o.i),
        }
    }

    /// Complex product with a twiddle factor (|components| <= 32767).
    #[inline]
    fn mul(self, tw: Self) -> Self {
        let (ar, ai, br, bi) = (
            i32::from(self.r),
            i32::from(self.i),
            i32::from(tw.r),
            i32::from(tw.i),
        );
        Self {
            r: round_q15((ar * br).wrapping_sub(ai * bi)),
            i: round_q15((ar * bi).wrapping_add(ai * br)),
        }
    }

    /// Division by a small radix, as a Q15 multiplication by `32767 / radix`.
    #[inline]
    fn div(self, radix: i16) -> Self {
        let k = i16::MAX / radix;
        Self {
            r: mul_q15(self.r, k),
            i: mul_q15(self.i, k),
        }
    }

    /// Both components multiplied (Q15) by a real scalar.
    #[inline]
    fn scale(self, s: i16) -> Self {
        Self {
            r: mul_q15(self.r, s),
            i: mul_q15(self.i, s),
        }
    }
}

/// kissfft's fixed-point twiddle for `phase`.
fn twiddle(phase: f64) -> Cpx {
    let (s, c) = trig::sin_cos(phase);
    let q = |v: f64| trig::floor(0.5 + f64::from(i16::MAX) * v) as i16;
    Cpx { r: q(c), i: q(s) }
}

/// One decimation stage: `blocks` butterflies of radix `radix` over `m` points each.
#[derive(Debug, Clone)]
struct Stage {
    radix: usize,
    m: usize,
    stride: usize,
    /// For radix 2 and 4, the twiddles each butterfly `k` uses (`tw[q * k * stride]` for
    /// `q = 1..radix`), gathered contiguously so the hot loop walks them in order.
    gathered: Vec<Cpx>,
}

/// Real FFT of int16 frames, bit-exact with TFLM's `SignalRfft` for int16.
///
/// TFLM options: `fft_length` (int), `T` (int, tensor type; 7 = int16 is the
/// one implemented here).
#[derive(Debug, Clone)]
pub struct Rfft {
    fft_length: usize,
    /// Twiddles of the half-length complex FFT.
    twiddles: Vec<Cpx>,
    /// Twiddles of the real-signal split, `fft_length / 4` of them.
    split_twiddles: Vec<Cpx>,
    /// For each position of the work buffer, the complex input sample it starts from.
    leaf_source: Vec<u32>,
    /// Stages in execution order (innermost first).
    stages: Vec<Stage>,
    work: Vec<Cpx>,
}

/// kissfft's radix order: 4s first, then at most one 2, then 3s and 5s.
fn factorize(mut n: usize) -> Option<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    let mut p = 4;
    while n > 1 {
        while !n.is_multiple_of(p) {
            p = match p {
                4 => 2,
                2 => 3,
                3 => 5,
                _ => return None,
            };
        }
        n /= p;
        out.push((p, n));
    }
    Some(out)
}

fn fill_leaves(
    leaves: &mut [u32],
    out_off: usize,
    in_off: usize,
    stride: usize,
    factors: &[(usize, usize)],
) {
    let Some(&(p, m)) = factors.first() else {
        return;
    };
    for q in 0..p {
        if m == 1 {
            leaves[out_off + q] = (in_off + q * stride) as u32;
        } else {
            fill_leaves(
                leaves,
                out_off + q * m,
                in_off + q * stride,
                stride * p,
                &factors[1..],
            );
        }
    }
}

impl Rfft {
    /// Prepares an FFT of `fft_length` real samples.
    ///
    /// `fft_length` must be even, at least 4, at most [`MAX_FFT_LENGTH`], and
    /// `fft_length / 2` must have no prime factor other than 2, 3 and 5
    /// (TFLM's build of kissfft cannot run other radices).
    pub fn new(fft_length: i32) -> Result<Self, SignalError> {
        let err = |reason| SignalError::FftLength {
            value: fft_length,
            reason,
        };
        let n = usize::try_from(fft_length).map_err(|_| err("must be positive"))?;
        if n < 4 {
            return Err(err("must be at least 4"));
        }
        if n > MAX_FFT_LENGTH {
            return Err(err("must be at most 65536"));
        }
        if !n.is_multiple_of(2) {
            return Err(err("must be even"));
        }
        let ncfft = n / 2;
        let factors = factorize(ncfft)
            .ok_or_else(|| err("fft_length / 2 must have only the prime factors 2, 3 and 5"))?;

        let pi = core::f64::consts::PI;
        let twiddles: Vec<Cpx> = (0..ncfft)
            .map(|i| twiddle(-2.0 * pi * i as f64 / ncfft as f64))
            .collect();
        let split_twiddles = (0..ncfft / 2)
            .map(|i| twiddle(-pi * ((i + 1) as f64 / ncfft as f64 + 0.5)))
            .collect();

        let mut leaf_source = vec![0u32; ncfft];
        fill_leaves(&mut leaf_source, 0, 0, 1, &factors);

        let mut stages = Vec::with_capacity(factors.len());
        let mut stride = 1;
        for &(radix, m) in &factors {
            let gathered = match radix {
                2 | 4 => (0..m)
                    .flat_map(|k| (1..radix).map(move |q| q * k * stride))
                    .map(|i| twiddles_at(&twiddles, i))
                    .collect(),
                _ => Vec::new(),
            };
            stages.push(Stage {
                radix,
                m,
                stride,
                gathered,
            });
            stride *= radix;
        }
        stages.reverse();

        Ok(Self {
            fft_length: n,
            twiddles,
            split_twiddles,
            leaf_source,
            stages,
            work: vec![Cpx::default(); ncfft],
        })
    }

    /// The FFT length (number of real input samples after zero padding).
    #[must_use]
    pub fn fft_length(&self) -> usize {
        self.fft_length
    }

    /// Number of int16 values `apply` writes: `fft_length + 2` (interleaved
    /// real/imaginary parts of bins `0..=fft_length / 2`).
    #[must_use]
    pub fn output_len(&self) -> usize {
        self.fft_length + 2
    }

    /// Checks the buffer lengths `apply` accepts: at most `fft_length` input
    /// samples, exactly `output_len()` output values.
    pub fn check_lengths(&self, input_len: usize, output_len: usize) -> Result<(), SignalError> {
        if input_len > self.fft_length {
            return Err(SignalError::Length {
                what: "rfft input (at most fft_length)",
                expected: self.fft_length,
                actual: input_len,
            });
        }
        expect_len("rfft output", self.output_len(), output_len)
    }

    /// Transforms one frame. `input` (at most `fft_length` samples) is
    /// zero-padded to `fft_length`; `output` receives `fft_length / 2 + 1`
    /// complex bins as `[re0, im0, re1, im1, ...]`, scaled by `1 / fft_length`.
    ///
    /// A model tensor holding several frames (TFLM loops over the outer
    /// dimensions) is handled by calling this once per frame.
    pub fn apply(&mut self, input: &[i16], output: &mut [i16]) -> Result<(), SignalError> {
        self.check_lengths(input.len(), output.len())?;
        let sample = |j: usize| input.get(j).copied().unwrap_or(0);
        for (slot, &src) in self.work.iter_mut().zip(&self.leaf_source) {
            let j = 2 * src as usize;
            *slot = Cpx {
                r: sample(j),
                i: sample(j + 1),
            };
        }
        for stage in &self.stages {
            let span = stage.radix * stage.m;
            for block in self.work.chunks_exact_mut(span) {
                match stage.radix {
                    2 => butterfly2(block, &stage.gathered, stage.m),
                    3 => butterfly3(block, &self.twiddles, stage.m, stage.stride),
                    4 => butterfly4(block, &stage.gathered, stage.m),
                    _ => butterfly5(block, &self.twiddles, stage.m, stage.stride),
                }
            }
        }
        self.split(output);
        Ok(())
    }

    /// Turns the half-length complex FFT in `work` into the real-signal spectrum.
    fn split(&self, output: &mut [i16]) {
        let ncfft = self.work.len();
        let mut put = |k: usize, v: Cpx| {
            output[2 * k] = v.r;
            output[2 * k + 1] = v.i;
        };
        let dc = self.work[0].div(2);
        put(
            0,
            Cpx {
                r: dc.r.wrapping_add(dc.i),
                i: 0,
            },
        );
        put(
            ncfft,
            Cpx {
                r: dc.r.wrapping_sub(dc.i),
                i: 0,
            },
        );
        let half = |a: i16, b: i32| ((i32::from(a) + b) >> 1) as i16;
        for k in 1..=ncfft / 2 {
            let fpk = self.work[k].div(2);
            let mirror = self.work[ncfft - k];
            let fpnk = Cpx {
                r: mirror.r,
                i: mirror.i.wrapping_neg(),
            }
            .div(2);
            let f1k = fpk.add(fpnk);
            let f2k = fpk.sub(fpnk);
            let tw = f2k.mul(self.split_twiddles[k - 1]);
            put(
                k,
                Cpx {
                    r: half(f1k.r, i32::from(tw.r)),
                    i: half(f1k.i, i32::from(tw.i)),
                },
            );
            put(
                ncfft - k,
                Cpx {
                    r: half(f1k.r, -i32::from(tw.r)),
                    i: half(tw.i, -i32::from(f1k.i)),
                },
            );
        }
    }
}

/// Twiddle `i` of the table (every index used is below its length by construction).
fn twiddles_at(tw: &[Cpx], i: usize) -> Cpx {
    tw.get(i).copied().unwrap_or_default()
}

/// Radix-2 butterflies; `tw` holds one twiddle per `k`.
fn butterfly2(f: &mut [Cpx], tw: &[Cpx], m: usize) {
    let (f0, f1) = f.split_at_mut(m);
    for ((a, b), &t) in f0.iter_mut().zip(f1.iter_mut()).zip(tw) {
        let x = a.div(2);
        let t = b.div(2).mul(t);
        *b = x.sub(t);
        *a = x.add(t);
    }
}

fn butterfly3(f: &mut [Cpx], tw: &[Cpx], m: usize, stride: usize) {
    let epi3 = tw[stride * m];
    for k in 0..m {
        let a = f[k].div(3);
        let s1 = f[k + m].div(3).mul(tw[k * stride]);
        let s2 = f[k + 2 * m].div(3).mul(tw[2 * k * stride]);
        let s3 = s1.add(s2);
        let s0 = s1.sub(s2).scale(epi3.i);
        let mid = Cpx {
            r: (i32::from(a.r) - (i32::from(s3.r) >> 1)) as i16,
            i: (i32::from(a.i) - (i32::from(s3.i) >> 1)) as i16,
        };
        f[k] = a.add(s3);
        f[k + 2 * m] = Cpx {
            r: mid.r.wrapping_add(s0.i),
            i: mid.i.wrapping_sub(s0.r),
        };
        f[k + m] = Cpx {
            r: mid.r.wrapping_sub(s0.i),
            i: mid.i.wrapping_add(s0.r),
        };
    }
}

/// Radix-4 butterflies; `tw` holds three twiddles per `k`.
fn butterfly4(f: &mut [Cpx], tw: &[Cpx], m: usize) {
    let (f0, rest) = f.split_at_mut(m);
    let (f1, rest) = rest.split_at_mut(m);
    let (f2, f3) = rest.split_at_mut(m);
    let quarters = f0
        .iter_mut()
        .zip(f1.iter_mut())
        .zip(f2.iter_mut())
        .zip(f3.iter_mut());
    for ((((x0, x1), x2), x3), t) in quarters.zip(tw.chunks_exact(3)) {
        let a = x0.div(4);
        let s0 = x1.div(4).mul(t[0]);
        let s1 = x2.div(4).mul(t[1]);
        let s2 = x3.div(4).mul(t[2]);
        let s5 = a.sub(s1);
        let a = a.add(s1);
        let s3 = s0.add(s2);
        let s4 = s0.sub(s2);
        *x2 = a.sub(s3);
        *x0 = a.add(s3);
        *x1 = Cpx {
            r: s5.r.wrapping_add(s4.i),
            i: s5.i.wrapping_sub(s4.r),
        };
        *x3 = Cpx {
            r: s5.r.wrapping_sub(s4.i),
            i: s5.i.wrapping_add(s4.r),
        };
    }
}

fn butterfly5(f: &mut [Cpx], tw: &[Cpx], m: usize, stride: usize) {
    let ya = tw[stride * m];
    let yb = tw[2 * stride * m];
    // Sum of 16-bit values in int, stored back to 16 bits.
    let sum3 = |a: i16, b: i16, c: i16| (i32::from(a) + i32::from(b) + i32::from(c)) as i16;
    for u in 0..m {
        let s0 = f[u].div(5);
        let s1 = f[u + m].div(5).mul(tw[u * stride]);
        let s2 = f[u + 2 * m].div(5).mul(tw[2 * u * stride]);
        let s3 = f[u + 3 * m].div(5).mul(tw[3 * u * stride]);
        let s4 = f[u + 4 * m].div(5).mul(tw[4 * u * stride]);
        let s7 = s1.add(s4);
        let s10 = s1.sub(s4);
        let s8 = s2.add(s3);
        let s9 = s2.sub(s3);

        f[u] = Cpx {
            r: sum3(s0.r, s7.r, s8.r),
            i: sum3(s0.i, s7.i, s8.i),
        };

        let s5 = Cpx {
            r: sum3(s0.r, mul_q15(s7.r, ya.r), mul_q15(s8.r, yb.r)),
            i: sum3(s0.i, mul_q15(s7.i, ya.r), mul_q15(s8.i, yb.r)),
        };
        let s6 = Cpx {
            r: sum3(0, mul_q15(s10.i, ya.i), mul_q15(s9.i, yb.i)),
            i: (-i32::from(mul_q15(s10.r, ya.i)) - i32::from(mul_q15(s9.r, yb.i))) as i16,
        };
        f[u + m] = s5.sub(s6);
        f[u + 4 * m] = s5.add(s6);

        let s11 = Cpx {
            r: sum3(s0.r, mul_q15(s7.r, yb.r), mul_q15(s8.r, ya.r)),
            i: sum3(s0.i, mul_q15(s7.i, yb.r), mul_q15(s8.i, ya.r)),
        };
        let s12 = Cpx {
            r: (-i32::from(mul_q15(s10.i, yb.i)) + i32::from(mul_q15(s9.i, ya.i))) as i16,
            i: (i32::from(mul_q15(s10.r, yb.i)) - i32::from(mul_q15(s9.r, ya.i))) as i16,
        };
        f[u + 2 * m] = s11.add(s12);
        f[u + 3 * m] = s11.sub(s12);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_order_matches_kissfft() {
        assert_eq!(factorize(256).unwrap(), [(4, 64), (4, 16), (4, 4), (4, 1)]);
        assert_eq!(factorize(32).unwrap(), [(4, 8), (4, 2), (2, 1)]);
        assert_eq!(factorize(240).unwrap(), [(4, 60), (4, 15), (3, 5), (5, 1)]);
        assert_eq!(factorize(250).unwrap(), [(2, 125), (5, 25), (5, 5), (5, 1)]);
        assert!(factorize(14).is_none());
    }

    #[test]
    fn rejects_unsupported_lengths() {
        for bad in [-512, 0, 1, 2, 7, 14, 28, 1 << 17] {
            assert!(Rfft::new(bad).is_err(), "{bad}");
        }
        for good in [4, 6, 10, 512, 480, 486, 500, 1 << 16] {
            assert!(Rfft::new(good).is_ok(), "{good}");
        }
    }

    /// FNV-1a over the 16-bit twiddles of every accepted length, in order.
    /// The expected value was computed with CPython's `math.cos`/`math.sin`
    /// (glibc) using kissfft's formulas, for all 239 lengths up to 65536.
    #[test]
    fn twiddles_match_c_libm_for_all_lengths() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |v: i16| {
            for b in v.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        let mut count = 0;
        for n in (4..=MAX_FFT_LENGTH as i32).step_by(2) {
            let Ok(fft) = Rfft::new(n) else { continue };
            count += 1;
            for t in fft.twiddles.iter().chain(&fft.split_twiddles) {
                feed(t.r);
                feed(t.i);
            }
        }
        assert_eq!(count, 239);
        assert_eq!(h, 0xeeda_19a4_ee91_0e04);
    }

    #[test]
    fn dc_and_lengths() {
        let mut fft = Rfft::new(8).unwrap();
        let mut out = [0i16; 10];
        fft.apply(&[8000; 8], &mut out).unwrap();
        // DC = mean (the transform is scaled by 1/N), other bins vanish.
        assert_eq!(out[0], 8000);
        assert!(out[2..].iter().all(|&v| v.abs() <= 2));
        assert!(fft.apply(&[0; 9], &mut out).is_err());
        assert!(fft.apply(&[0; 8], &mut [0; 9]).is_err());
    }
}
