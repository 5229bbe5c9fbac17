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

use crate::{SignalError, expect_len};

/// Largest supported `fft_length`.
pub const MAX_FFT_LENGTH: usize = 1 << 16;

/// A complex value of the twiddle tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tw {
    r: i16,
    i: i16,
}

/// Q15 rounding of a product sum: `(x + 2^14) >> 15`, truncated to 16 bits.
#[inline(always)]
fn round_q15(x: i32) -> i16 {
    (x.wrapping_add(1 << 14) >> 15) as i16
}

/// Q15 product of two 16-bit values, rounded.
#[inline(always)]
fn mul_q15(a: i16, b: i16) -> i16 {
    round_q15(i32::from(a) * i32::from(b))
}

/// `N` complex values, real and imaginary parts apart, on which the butterflies compute lane
/// by lane: with `N = 8` the compiler turns every operation into vector instructions, `N = 1`
/// is a single value. Every operation is kissfft's on each lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cpx<const N: usize> {
    r: [i16; N],
    i: [i16; N],
}

/// A wrapping 16-bit operation.
type Op = fn(i16, i16) -> i16;

/// `[f(0), ..., f(N - 1)]`.
#[inline(always)]
fn lanes<const N: usize>(f: impl FnMut(usize) -> i16) -> [i16; N] {
    core::array::from_fn(f)
}

impl<const N: usize> Cpx<N> {
    /// `t` in every lane.
    #[inline(always)]
    fn splat(t: Tw) -> Self {
        Self {
            r: [t.r; N],
            i: [t.i; N],
        }
    }

    /// Lanes `k..k + N` of the parts `re`, `im` (callers stay inside both).
    #[inline(always)]
    fn load(re: &[i16], im: &[i16], k: usize) -> Self {
        let chunk = |s: &[i16]| *s.get(k..).and_then(|s| s.first_chunk()).unwrap_or(&[0; N]);
        Self {
            r: chunk(re),
            i: chunk(im),
        }
    }

    /// Stores the lanes at `k..k + N` of `re`, `im`.
    #[inline(always)]
    fn store(self, re: &mut [i16], im: &mut [i16], k: usize) {
        re[k..k + N].copy_from_slice(&self.r);
        im[k..k + N].copy_from_slice(&self.i);
    }

    /// `(f(r, or), g(i, oi))` lane by lane: the parts of `self` combined with `(or, oi)`.
    #[inline(always)]
    fn combine(self, (or, oi): ([i16; N], [i16; N]), f: Op, g: Op) -> Self {
        Self {
            r: lanes(|l| f(self.r[l], or[l])),
            i: lanes(|l| g(self.i[l], oi[l])),
        }
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.combine((o.r, o.i), i16::wrapping_add, i16::wrapping_add)
    }

    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self.combine((o.r, o.i), i16::wrapping_sub, i16::wrapping_sub)
    }

    /// `self + j * o`: `(r - o.i, i + o.r)`.
    #[inline(always)]
    fn add_j(self, o: Self) -> Self {
        self.combine((o.i, o.r), i16::wrapping_sub, i16::wrapping_add)
    }

    /// `self - j * o`: `(r + o.i, i - o.r)`.
    #[inline(always)]
    fn sub_j(self, o: Self) -> Self {
        self.combine((o.i, o.r), i16::wrapping_add, i16::wrapping_sub)
    }

    /// `self - o / 2` (arithmetic shift), kissfft's radix-3 midpoint.
    #[inline(always)]
    fn sub_half(self, o: Self) -> Self {
        let half = (o.r.map(|v| v >> 1), o.i.map(|v| v >> 1));
        self.combine(half, i16::wrapping_sub, i16::wrapping_sub)
    }

    /// Complex product with twiddle factors (|components| <= 32767): each part is one rounded
    /// sum of two products, as kissfft's `C_MUL`.
    #[inline(always)]
    fn mul(self, tw: Self) -> Self {
        let w = |x: &[i16; N], l: usize| i32::from(x[l]);
        Self {
            r: lanes(|l| {
                round_q15((w(&self.r, l) * w(&tw.r, l)).wrapping_sub(w(&self.i, l) * w(&tw.i, l)))
            }),
            i: lanes(|l| {
                round_q15((w(&self.r, l) * w(&tw.i, l)).wrapping_add(w(&self.i, l) * w(&tw.r, l)))
            }),
        }
    }

    /// Division by a small radix, as a Q15 multiplication by `32767 / radix`.
    #[inline(always)]
    fn div(self, radix: i16) -> Self {
        self.scale(i16::MAX / radix)
    }

    /// Both parts multiplied (Q15) by a real scalar.
    #[inline(always)]
    fn scale(self, s: i16) -> Self {
        Self {
            r: lanes(|l| mul_q15(self.r[l], s)),
            i: lanes(|l| mul_q15(self.i[l], s)),
        }
    }
}

/// kissfft's fixed-point twiddle for `phase`, with `libm`'s double-precision sine and cosine
/// (`twiddles_match_c_libm_for_all_lengths` checks every table against glibc's).
fn twiddle(phase: f64) -> Tw {
    let (s, c) = libm::sincos(phase);
    let q = |v: f64| libm::floor(0.5 + f64::from(i16::MAX) * v) as i16;
    Tw { r: q(c), i: q(s) }
}

/// One decimation stage: `blocks` butterflies of radix `radix` over `m` points each.
#[derive(Debug, Clone)]
struct Stage {
    radix: usize,
    m: usize,
    stride: usize,
    /// For radix 2 and 4, the twiddles each butterfly `k` uses (`tw[q * k * stride]` for
    /// `q = 1..radix`), gathered so the hot loop walks them in order: real parts of
    /// `q = 1` for every `k`, then of `q = 2`, ...
    gathered_r: Vec<i16>,
    /// The imaginary parts, laid out like `gathered_r`.
    gathered_i: Vec<i16>,
    /// Whether the stage runs out of place with its lanes over the sub-transforms (see
    /// [`Work`]) rather than in place with its lanes over `k`.
    stockham: bool,
    /// After the last out-of-place stage: for each position of kissfft's in-place order, the
    /// position of the out-of-place order that holds its value (empty otherwise).
    to_in_place: Vec<u32>,
}

/// The work buffers: real and imaginary parts, and a second pair for out-of-place stages.
///
/// kissfft runs every stage in place: a stage of radix `p` over blocks of `p * m` values
/// computes butterfly `k < m` of each block from the values `k + q * m`. The first stages have
/// small `m` (1, 4, ...) and so offer few lanes. Those run out of place instead, in the
/// Stockham order: with `L` the length of the sub-transforms done so far and `S = N / L` their
/// number, value `k` of sub-transform `r` (the transform of the inputs `r + S * i`) is kept at
/// `k * S + r`, and a stage's lanes run over `r`. Each butterfly still gets the same inputs and
/// twiddles as kissfft's, so every value is the same; once `m` is large enough the values are
/// moved into kissfft's order and the remaining stages run in place.
#[derive(Debug, Clone)]
struct Work {
    re: Vec<i16>,
    im: Vec<i16>,
    re2: Vec<i16>,
    im2: Vec<i16>,
}

/// Real FFT of int16 frames, bit-exact with TFLM's `SignalRfft` for int16.
///
/// TFLM options: `fft_length` (int), `T` (int, tensor type; 7 = int16 is the
/// one implemented here).
///
/// The complex work buffer is kept as two arrays (real and imaginary parts) and the butterflies
/// run on eight lanes at a time (`Cpx<8>`), which the compiler turns into vector instructions
/// for the target (SSE2, NEON, ...); the first stages run out of place so that they too have
/// lanes to fill. Every butterfly computes what kissfft's does, value for value.
#[derive(Debug, Clone)]
pub struct Rfft {
    fft_length: usize,
    /// Twiddles of the half-length complex FFT.
    twiddles: Vec<Tw>,
    /// Twiddles of the real-signal split, `fft_length / 4` of them: real parts.
    split_r: Vec<i16>,
    /// Imaginary parts of the split's twiddles.
    split_i: Vec<i16>,
    /// Stages in execution order (innermost first).
    stages: Vec<Stage>,
    work: Work,
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

/// Fills `leaves[out_off..]` with the input index each position of kissfft's in-place order
/// starts from, for the sub-transform of the inputs `in_off + stride * i` with the radices
/// `factors`.
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
        let twiddles: Vec<Tw> = (0..ncfft)
            .map(|i| twiddle(-2.0 * pi * i as f64 / ncfft as f64))
            .collect();
        let split_twiddles: Vec<Tw> = (0..ncfft / 2)
            .map(|i| twiddle(-pi * ((i + 1) as f64 / ncfft as f64 + 0.5)))
            .collect();

        // For each position of kissfft's in-place order, the complex input sample it starts
        // from.
        let mut leaf_source = vec![0u32; ncfft];
        fill_leaves(&mut leaf_source, 0, 0, 1, &factors);

        let mut stages = Vec::with_capacity(factors.len());
        let mut stride = 1;
        for &(radix, m) in &factors {
            let gathered: Vec<Tw> = match radix {
                2 | 4 => (1..radix)
                    .flat_map(|q| (0..m).map(move |k| q * k * stride))
                    .map(|i| twiddles_at(&twiddles, i))
                    .collect(),
                _ => Vec::new(),
            };
            stages.push(Stage {
                radix,
                m,
                stride,
                gathered_r: gathered.iter().map(|t| t.r).collect(),
                gathered_i: gathered.iter().map(|t| t.i).collect(),
                // Out of place while that gives at least as many lanes (always the first).
                stockham: stride >= m,
                to_in_place: Vec::new(),
            });
            stride *= radix;
        }
        stages.reverse();
        let out_of_place = stages.iter().take_while(|s| s.stockham).count();
        if let Some(last) = out_of_place.checked_sub(1).and_then(|i| stages.get_mut(i)) {
            // Block `b` of kissfft's order holds sub-transform `r`, the one whose first input
            // is its first leaf.
            let len = last.radix * last.m;
            let count = ncfft / len;
            last.to_in_place = (0..ncfft)
                .map(|n| {
                    let (b, k) = (n / len, n % len);
                    (k * count + leaf_source[b * len] as usize) as u32
                })
                .collect();
        }

        Ok(Self {
            fft_length: n,
            twiddles,
            split_r: split_twiddles.iter().map(|t| t.r).collect(),
            split_i: split_twiddles.iter().map(|t| t.i).collect(),
            stages,
            work: Work {
                re: vec![0; ncfft],
                im: vec![0; ncfft],
                re2: vec![0; ncfft],
                im2: vec![0; ncfft],
            },
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
        let w = &mut self.work;
        let (re, im) = (w.re.iter_mut(), w.im.iter_mut());
        // The first stage always runs out of place (see `Work`): its input is the samples in
        // order, zero-padded.
        let pairs = input.chunks_exact(2);
        let (odd, full) = (pairs.remainder().first().copied(), pairs.len());
        for ((r, i), pair) in re.zip(im).zip(pairs) {
            (*r, *i) = (pair[0], pair[1]);
        }
        w.re[full..].fill(0);
        w.im[full..].fill(0);
        if let (Some(x), Some(r)) = (odd, w.re.get_mut(full)) {
            *r = x;
        }
        let tw = &self.twiddles[..];
        for stage in &self.stages {
            let (tr, ti) = (&stage.gathered_r[..], &stage.gathered_i[..]);
            let (m, stride) = (stage.m, stage.stride);
            match stage.radix {
                2 => w.run(&Radix2 { tr, ti }, stage),
                3 => w.run(&Radix3::new(tw, m, stride), stage),
                4 => w.run(&Radix4 { tr, ti, m }, stage),
                _ => w.run(&Radix5::new(tw, m, stride), stage),
            }
        }
        self.split(output);
        Ok(())
    }

    /// The complex value at `k` of the work buffer.
    fn at(&self, k: usize) -> Cpx<1> {
        Cpx::load(&self.work.re, &self.work.im, k)
    }

    /// Turns the half-length complex FFT in the work buffer into the real-signal spectrum.
    fn split(&self, output: &mut [i16]) {
        let ncfft = self.work.re.len();
        let dc = self.at(0).div(2);
        let ([r], [i]) = (dc.r, dc.i);
        output[..2].copy_from_slice(&[r.wrapping_add(i), 0]);
        output[2 * ncfft..2 * ncfft + 2].copy_from_slice(&[r.wrapping_sub(i), 0]);
        let mut k = 1;
        while k + 8 <= ncfft / 2 + 1 {
            self.split_lanes::<8>(k, output);
            k += 8;
        }
        while k <= ncfft / 2 {
            self.split_lanes::<1>(k, output);
            k += 1;
        }
    }

    /// Bins `k..k + N` and `ncfft - k - N + 1..=ncfft - k` of the spectrum (bin `ncfft - k - l`
    /// written after bin `k + l`, as kissfft does: they are the same bin in the middle).
    #[inline(always)]
    fn split_lanes<const N: usize>(&self, k: usize, output: &mut [i16]) {
        let (re, im) = (&self.work.re[..], &self.work.im[..]);
        let ncfft = re.len();
        let fpk = Cpx::<N>::load(re, im, k).div(2);
        // Bins ncfft - k - l, in that order.
        let mut mirror = Cpx::<N>::load(re, im, ncfft + 1 - k - N);
        mirror.r.reverse();
        mirror.i.reverse();
        let fpnk = Cpx {
            r: mirror.r,
            i: mirror.i.map(i16::wrapping_neg),
        }
        .div(2);
        let (f1k, f2k) = (fpk.add(fpnk), fpk.sub(fpnk));
        let tw = f2k.mul(Cpx::load(&self.split_r, &self.split_i, k - 1));
        let half = |a: i16, b: i32| ((i32::from(a) + b) >> 1) as i16;
        let low: [[i16; 2]; N] = core::array::from_fn(|l| {
            let (f1r, f1i, twr, twi) = (f1k.r[l], f1k.i[l], tw.r[l], tw.i[l]);
            [half(f1r, i32::from(twr)), half(f1i, i32::from(twi))]
        });
        // Lane `l` goes to bin `ncfft - k - l`: these bins in increasing order are the lanes
        // reversed. They are written second (the middle bin is in both).
        let high: [[i16; 2]; N] = core::array::from_fn(|j| {
            let l = N - 1 - j;
            let (f1r, f1i, twr, twi) = (f1k.r[l], f1k.i[l], tw.r[l], tw.i[l]);
            [half(f1r, -i32::from(twr)), half(twi, -i32::from(f1i))]
        });
        output[2 * k..2 * (k + N)].copy_from_slice(low.as_flattened());
        output[2 * (ncfft + 1 - k - N)..2 * (ncfft + 1 - k)].copy_from_slice(high.as_flattened());
    }
}

/// Twiddle `i` of the table (every index used is below its length by construction).
fn twiddles_at(tw: &[Tw], i: usize) -> Tw {
    tw.get(i).copied().unwrap_or_default()
}

/// `R` consecutive pieces of `m` values of `s` (`s` holds `R * m` of them).
fn pieces<T, const R: usize>(s: &mut [T], m: usize) -> [&mut [T]; R] {
    let mut rest = s;
    core::array::from_fn(|_| {
        let (head, tail) = core::mem::take(&mut rest).split_at_mut(m);
        rest = tail;
        head
    })
}

/// A radix-`R` butterfly of kissfft: for output index `k` of a block of `R * m` values, it
/// combines the values `k + q * m` (`q < R`) with twiddles that depend on `q` and `k`.
trait Butterfly<const R: usize> {
    /// The twiddle of input `q` of butterfly `k` (`q = 0`: not used).
    fn twiddle(&self, q: usize, k: usize) -> Tw;
    /// The twiddles of lanes `k..k + N` (entry `q` for input `q`; entry 0 is not used), lane by
    /// lane from [`Butterfly::twiddle`] unless a radix has them contiguous.
    #[inline(always)]
    fn twiddles<const N: usize>(&self, k: usize) -> [Cpx<N>; R] {
        core::array::from_fn(|q| Cpx {
            r: lanes(|l| self.twiddle(q, k + l).r),
            i: lanes(|l| self.twiddle(q, k + l).i),
        })
    }
    /// The butterfly on `N` lanes.
    fn apply<const N: usize>(&self, x: [Cpx<N>; R], tw: [Cpx<N>; R]) -> [Cpx<N>; R];
}

impl Work {
    /// Runs `stage` with butterfly `b`.
    fn run<const R: usize, B: Butterfly<R>>(&mut self, b: &B, stage: &Stage) {
        let (m, span) = (stage.m, stage.radix * stage.m);
        if !stage.stockham {
            let blocks = self
                .re
                .chunks_exact_mut(span)
                .zip(self.im.chunks_exact_mut(span));
            for (re, im) in blocks {
                run_block(b, re, im, m);
            }
            return;
        }
        let (src, dst) = (
            (&self.re[..], &self.im[..]),
            (&mut self.re2[..], &mut self.im2[..]),
        );
        for k in 0..m {
            stockham_row(b, k, (m, stage.stride), src, (&mut *dst.0, &mut *dst.1));
        }
        self.swap();
        if !stage.to_in_place.is_empty() {
            let moves = self.re2.iter_mut().zip(self.im2.iter_mut());
            for ((r, i), &from) in moves.zip(&stage.to_in_place) {
                (*r, *i) = (self.re[from as usize], self.im[from as usize]);
            }
            self.swap();
        }
    }

    /// Makes the second pair of buffers the first.
    fn swap(&mut self) {
        core::mem::swap(&mut self.re, &mut self.re2);
        core::mem::swap(&mut self.im, &mut self.im2);
    }
}

/// Butterfly `k` of an out-of-place stage (`m` its number, `count` the number of new
/// sub-transforms) for every new sub-transform `r`, eight lanes at a time, then one: inputs at
/// `(k * R + q) * count + r` of `src`, outputs at `(k + q * m) * count + r` of `dst`.
#[inline(always)]
fn stockham_row<const R: usize, B: Butterfly<R>>(
    b: &B,
    k: usize,
    (m, count): (usize, usize),
    (sr, si): (&[i16], &[i16]),
    (dr, di): (&mut [i16], &mut [i16]),
) {
    let tw: [Tw; R] = core::array::from_fn(|q| b.twiddle(q, k));
    #[inline(always)]
    fn lanes_at<const R: usize, const N: usize, B: Butterfly<R>>(
        b: &B,
        tw: [Tw; R],
        (k, m, count, r): (usize, usize, usize, usize),
        (sr, si): (&[i16], &[i16]),
        (dr, di): (&mut [i16], &mut [i16]),
    ) {
        let x = core::array::from_fn(|q| Cpx::<N>::load(sr, si, (k * R + q) * count + r));
        let y = b.apply(x, tw.map(Cpx::splat));
        for (q, y) in y.into_iter().enumerate() {
            y.store(dr, di, (k + q * m) * count + r);
        }
    }
    let mut r = 0;
    while r + 8 <= count {
        lanes_at::<R, 8, B>(b, tw, (k, m, count, r), (sr, si), (dr, di));
        r += 8;
    }
    while r < count {
        lanes_at::<R, 1, B>(b, tw, (k, m, count, r), (sr, si), (dr, di));
        r += 1;
    }
}

/// Runs butterfly `b` over a block of `R * m` values, eight lanes at a time, then one.
#[inline(always)]
fn run_block<const R: usize, B: Butterfly<R>>(b: &B, re: &mut [i16], im: &mut [i16], m: usize) {
    let mut re: [&mut [i16]; R] = pieces(re, m);
    let mut im: [&mut [i16]; R] = pieces(im, m);
    let mut k = 0;
    while k + 8 <= m {
        step::<R, 8, B>(b, &mut re, &mut im, k);
        k += 8;
    }
    while k < m {
        step::<R, 1, B>(b, &mut re, &mut im, k);
        k += 1;
    }
}

/// Butterflies `k..k + N` of a block.
#[inline(always)]
fn step<const R: usize, const N: usize, B: Butterfly<R>>(
    b: &B,
    re: &mut [&mut [i16]; R],
    im: &mut [&mut [i16]; R],
    k: usize,
) {
    let x = core::array::from_fn(|q| Cpx::<N>::load(re[q], im[q], k));
    let y = b.apply(x, b.twiddles(k));
    for (q, y) in y.into_iter().enumerate() {
        y.store(re[q], im[q], k);
    }
}

/// Radix 2; `tr`, `ti` hold one twiddle per `k`.
struct Radix2<'a> {
    tr: &'a [i16],
    ti: &'a [i16],
}

impl Butterfly<2> for Radix2<'_> {
    fn twiddle(&self, _: usize, k: usize) -> Tw {
        Tw {
            r: self.tr[k],
            i: self.ti[k],
        }
    }

    #[inline(always)]
    fn twiddles<const N: usize>(&self, k: usize) -> [Cpx<N>; 2] {
        let t = Cpx::load(self.tr, self.ti, k);
        [t, t]
    }

    #[inline(always)]
    fn apply<const N: usize>(&self, [a, b]: [Cpx<N>; 2], [_, t]: [Cpx<N>; 2]) -> [Cpx<N>; 2] {
        let x = a.div(2);
        let t = b.div(2).mul(t);
        [x.add(t), x.sub(t)]
    }
}

/// Radix 3, twiddles read from the table with `stride`.
struct Radix3<'a> {
    tw: &'a [Tw],
    stride: usize,
    epi3: i16,
}

impl<'a> Radix3<'a> {
    fn new(tw: &'a [Tw], m: usize, stride: usize) -> Self {
        Self {
            tw,
            stride,
            epi3: twiddles_at(tw, stride * m).i,
        }
    }
}

impl Butterfly<3> for Radix3<'_> {
    #[inline(always)]
    fn twiddle(&self, q: usize, k: usize) -> Tw {
        twiddles_at(self.tw, q * k * self.stride)
    }

    #[inline(always)]
    fn apply<const N: usize>(&self, x: [Cpx<N>; 3], [_, t1, t2]: [Cpx<N>; 3]) -> [Cpx<N>; 3] {
        let a = x[0].div(3);
        let s1 = x[1].div(3).mul(t1);
        let s2 = x[2].div(3).mul(t2);
        let s3 = s1.add(s2);
        let s0 = s1.sub(s2).scale(self.epi3);
        let mid = a.sub_half(s3);
        [a.add(s3), mid.add_j(s0), mid.sub_j(s0)]
    }
}

/// Radix 4; `tr`, `ti` hold the twiddles of `q = 1, 2, 3` for every `k`, `m` apart.
struct Radix4<'a> {
    tr: &'a [i16],
    ti: &'a [i16],
    m: usize,
}

impl Butterfly<4> for Radix4<'_> {
    fn twiddle(&self, q: usize, k: usize) -> Tw {
        let at = q.saturating_sub(1) * self.m + k;
        Tw {
            r: self.tr[at],
            i: self.ti[at],
        }
    }

    #[inline(always)]
    fn twiddles<const N: usize>(&self, k: usize) -> [Cpx<N>; 4] {
        let t = |q: usize| Cpx::load(self.tr, self.ti, (q - 1) * self.m + k);
        [t(1), t(1), t(2), t(3)]
    }

    #[inline(always)]
    fn apply<const N: usize>(&self, x: [Cpx<N>; 4], [_, t1, t2, t3]: [Cpx<N>; 4]) -> [Cpx<N>; 4] {
        let a = x[0].div(4);
        let s0 = x[1].div(4).mul(t1);
        let s1 = x[2].div(4).mul(t2);
        let s2 = x[3].div(4).mul(t3);
        let s5 = a.sub(s1);
        let a = a.add(s1);
        let s3 = s0.add(s2);
        let s4 = s0.sub(s2);
        [a.add(s3), s5.sub_j(s4), a.sub(s3), s5.add_j(s4)]
    }
}

/// Radix 5, twiddles read from the table with `stride`.
struct Radix5<'a> {
    tw: &'a [Tw],
    stride: usize,
    ya: Tw,
    yb: Tw,
}

impl<'a> Radix5<'a> {
    fn new(tw: &'a [Tw], m: usize, stride: usize) -> Self {
        Self {
            tw,
            stride,
            ya: twiddles_at(tw, stride * m),
            yb: twiddles_at(tw, 2 * stride * m),
        }
    }
}

impl Butterfly<5> for Radix5<'_> {
    #[inline(always)]
    fn twiddle(&self, q: usize, k: usize) -> Tw {
        twiddles_at(self.tw, q * k * self.stride)
    }

    #[inline(always)]
    fn apply<const N: usize>(&self, x: [Cpx<N>; 5], t: [Cpx<N>; 5]) -> [Cpx<N>; 5] {
        let (ya, yb) = (self.ya, self.yb);
        let s0 = x[0].div(5);
        let s1 = x[1].div(5).mul(t[1]);
        let s2 = x[2].div(5).mul(t[2]);
        let s3 = x[3].div(5).mul(t[3]);
        let s4 = x[4].div(5).mul(t[4]);
        let s7 = s1.add(s4);
        let s10 = s1.sub(s4);
        let s8 = s2.add(s3);
        let s9 = s2.sub(s3);
        let s5 = s0.add(s7.scale(ya.r)).add(s8.scale(yb.r));
        // kissfft's scratch[6] is -j * u.
        let u = s10.scale(ya.i).add(s9.scale(yb.i));
        let s11 = s0.add(s7.scale(yb.r)).add(s8.scale(ya.r));
        // kissfft's scratch[12] is j * w.
        let w = s10.scale(yb.i).sub(s9.scale(ya.i));
        [
            s0.add(s7).add(s8),
            s5.add_j(u),
            s11.add_j(w),
            s11.sub_j(w),
            s5.sub_j(u),
        ]
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
            for t in &fft.twiddles {
                feed(t.r);
                feed(t.i);
            }
            for (&r, &i) in fft.split_r.iter().zip(&fft.split_i) {
                feed(r);
                feed(i);
            }
        }
        assert_eq!(count, 239);
        assert_eq!(h, 0xeeda_19a4_ee91_0e04);
    }

    #[test]
    fn short_inputs_are_zero_padded() {
        for n in [8, 20, 240, 486, 512] {
            let mut fft = Rfft::new(n).unwrap();
            let len = n as usize;
            let frame: Vec<i16> = (0..len).map(|j| (j as i16).wrapping_mul(2477)).collect();
            for short in [0, 1, len / 2 - 1, len / 2, len - 1] {
                let mut padded = frame[..short].to_vec();
                padded.resize(len, 0);
                let (mut a, mut b) = (vec![0; len + 2], vec![0; len + 2]);
                fft.apply(&frame[..short], &mut a).unwrap();
                fft.apply(&padded, &mut b).unwrap();
                assert_eq!(a, b, "fft_length {n}, {short} samples");
            }
        }
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
