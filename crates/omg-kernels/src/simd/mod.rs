//! Instruction-set levels of the optimized kernels and the small inner kernels each level
//! implements.
//!
//! The loops of [`crate::fast`] (patch gathering, blocking, tails) are written once, generic over
//! [`Kernels`]; each level supplies the inner kernels: the convolution block (patches times
//! packed panels, requantized), int8 dot products of weight rows, the requantization of a row of
//! accumulators, a depthwise output row, widening and the quantized ADD. [`dispatch`] runs a
//! [`Job`] with the kernels of the requested level, the whole job (loops included) compiled
//! with the level's target features, so the generic loops get the same vector code generation
//! as the kernels they call.
//!
//! The levels ([`Isa`]):
//!
//! * `portable`: plain Rust, auto-vectorized for the compilation target; everywhere.
//! * `avx2` (x86-64): 256-bit integer vectors and a panel kernel for convolutions (4 pixels
//!   times 16 channels per call); detected at run time with CPUID, without `std`.
//! * `avxvnni` (x86-64): a convolution panel kernel (5 pixels times 16 channels per call) on
//!   the VEX-encoded `VPDPBUSD` of AVX-VNNI (four `u8 * i8` products per lane: the patches hold `x + 128`, the panels quads of
//!   weights after a header of `-128 * sum w` per channel, which the accumulators start
//!   from) and FULLY_CONNECTED rows on it too (rows padded to 32 values, the input flipped
//!   likewise, each row's `-128 * sum w` added to its sum); elsewhere `avx2` whose multiply-accumulates are the VEX-encoded `VPDPWSSD` (one
//!   instruction for `vpmaddwd` + `vpaddd`, same sums); detected with CPUID.
//! * `avx512vnni` (x86-64): 512-bit `VPDPBUSD` (AVX-512 VNNI, with AVX-512 F/BW/VL) in the
//!   convolution panel kernel (one panel of 8 channels per register, two quads of patch values
//!   per step: its panels hold octets; 5 pixels times up to 32 channels per call), 256-bit EVEX `VPDPBUSD` for FULLY_CONNECTED (the
//!   `avxvnni` layout), 16-channel depthwise rows on 512-bit `VPDPWSSD`, requantization and ADD
//!   16 lanes at a time, the 256-bit EVEX `VPDPWSSD` elsewhere; detected with CPUID and XGETBV
//!   (the operating system saves the 512-bit state).
//! * `neon` (aarch64): ARMv8.0 Advanced SIMD, present on every aarch64 CPU (available wherever
//!   the build target enables it); convolutions on weight rows.
//! * `dotprod` (aarch64): `neon` whose dot products use `SDOT` (ARMv8.2, optional). The crate
//!   never reads ID registers (that may trap, e.g. in a trusted application): the level is
//!   available when the build enables the `dotprod` target feature, or, with the crate's `std`
//!   feature, when the operating system reports it (Linux: `HWCAP_ASIMDDP`). Where no operating
//!   system reports features, building with `-C target-feature=+dotprod` is the explicit choice.
//!
//! A level the CPU cannot run is refused ([`dispatch`] returns an error), never replaced: the
//! weights were laid out for it.
//!
//! All `unsafe` code of the crate lives in the per-architecture submodules. New levels (SVE,
//! i8mm, ...) implement [`Kernels`] there and get an [`Isa`] variant; the portable
//! kernels define what they must compute.

mod portable;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
mod aarch64;

use crate::elementwise::AddParams;
use crate::quant::QuantizedMultiplier;
use crate::{KernelError, Result};

pub(crate) use portable::Portable;

/// An instruction-set level of the optimized kernels. Every level computes exactly the same
/// bytes as the reference kernels; they differ only in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust (auto-vectorized for the compilation target); runs everywhere.
    Portable,
    /// x86-64 AVX2 (256-bit integer vectors), detected at run time.
    Avx2,
    /// x86-64 AVX2 with AVX-VNNI (256-bit `VPDPBUSD` and `VPDPWSSD`, VEX), detected at run
    /// time.
    AvxVnni,
    /// x86-64 AVX-512 VNNI (512-bit `VPDPBUSD`, with AVX-512 F/BW/VL), detected at run time.
    Avx512Vnni,
    /// aarch64 NEON (ARMv8.0 Advanced SIMD, 128-bit vectors), on every aarch64 CPU.
    Neon,
    /// aarch64 NEON with the ARMv8.2 dot-product instruction `SDOT`: reported by the operating
    /// system (with the `std` feature) or enabled at build time (see the crate's `std` feature).
    Dotprod,
}

impl Isa {
    /// Every level, in increasing order of preference: [`Isa::detect`] picks the last one the
    /// CPU supports. On the AVX-512 CPU the x86-64 levels were measured on (which also has
    /// AVX-VNNI), `avx512vnni` was the fastest on every network (0.61 of `avxvnni`'s time on
    /// the large ResNet, tied on the autoencoder) and `avxvnni` beat `avx2` on all of them; so
    /// `auto` picks `avx512vnni`, then `avxvnni`, then `avx2`.
    pub const ALL: [Isa; 6] = [
        Isa::Portable,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::Dotprod,
    ];

    /// The level's lower-case name (`portable`, `avx2`, `avxvnni`, `avx512vnni`, `neon`,
    /// `dotprod`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::Dotprod => "dotprod",
        }
    }

    /// The level named `name` (as [`Isa::name`] gives it).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Whether this CPU (and build target) can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::Avx2::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => x86::AvxVnni::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => x86::Avx512Vnni::detect().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => false,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => aarch64::Neon::detect().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Dotprod => aarch64::Dotprod::detect().is_some(),
            #[cfg(not(target_arch = "aarch64"))]
            Isa::Neon | Isa::Dotprod => false,
        }
    }

    /// The preferred level this CPU supports (the last of [`Isa::ALL`] it runs; detected once,
    /// then cached; works without `std`).
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|isa| isa.is_supported())
            .unwrap_or(Isa::Portable)
    }

    /// Whether the level runs convolutions on weights packed in panels of 8 output channels
    /// (otherwise on weight rows). The x86-64 levels share that layout.
    pub fn panels(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni)
    }

    /// Whether the level's panels hold quads of weights for `VPDPBUSD` (after a header per
    /// panel; see [`PanelKernels`]) rather than pairs.
    pub(crate) fn quads(self) -> bool {
        matches!(self, Isa::AvxVnni | Isa::Avx512Vnni)
    }

    /// The supported levels, in the order of [`Isa::ALL`] (for tests and benchmarks that compare
    /// them).
    pub fn supported() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported())
    }
}

/// The requantization data of 8 consecutive output channels, one array per field (see the
/// `BIAS`..`THRESHOLD` indices).
pub(crate) type Block = [[i32; 8]; FIELDS];

/// Field of a [`Block`]: bias, with the constant terms of the zero points folded in.
pub(crate) const BIAS: usize = 0;
/// Field of a [`Block`]: Q0.31 multipliers.
pub(crate) const MULTIPLIER: usize = 1;
/// Field of a [`Block`]: left shifts (`0..=31`).
pub(crate) const LEFT: usize = 2;
/// Field of a [`Block`]: right shifts (`0..=31`).
pub(crate) const RIGHT: usize = 3;
/// Field of a [`Block`]: `(1 << right) - 1` (wrapping).
pub(crate) const MASK: usize = 4;
/// Field of a [`Block`]: `mask >> 1`.
pub(crate) const HALF: usize = 5;
/// Field of a [`Block`]: the multipliers of the odd channels `2i + 1` in lanes `2i` (the low
/// halves of 64-bit lanes, as `VPMULDQ` reads them; the odd lanes are zero).
pub(crate) const ODD_MULTIPLIER: usize = 6;
/// Fields of a [`Block`] (even channels, odd channels): as a 64-bit value in lanes `2i, 2i +
/// 1` for channel `2i` (even) or `2i + 1` (odd), the rounding constant of the one-step
/// requantization: `2^30 + 2^(30 + right)`, or `2^30` without a right shift (see
/// [`one_step`]).
pub(crate) const ROUND: [usize; 2] = [7, 8];
/// Fields of a [`Block`] (even, odd channels; 64-bit values as in [`ROUND`]): `31 + right`.
pub(crate) const SHIFT: [usize; 2] = [9, 10];
/// Fields of a [`Block`] (even, odd channels; 64-bit values as in [`ROUND`]): the product
/// below which the doubling high multiply is negative, `-2^30`, or `i64::MIN` without a right
/// shift (where the sign does not matter).
pub(crate) const THRESHOLD: [usize; 2] = [11, 12];
/// Fields per [`Block`].
pub(crate) const FIELDS: usize = 13;

/// The constants of TFLM's double-rounding requantization as one rounding of a 64-bit product,
/// `(ROUND, SHIFT, THRESHOLD)` for a right shift of `right` (`0..=31`).
///
/// With `P = x * M` (64-bit), `h = floor((P + 2^30) / 2^31)` is the doubling high multiply
/// (but for `x == M == i32::MIN`) and, for `right = s > 0`, `RoundingDivideByPOT(h, s) =
/// floor((h + 2^(s - 1) - [h < 0]) / 2^s)`. Nested floors of integer divisions fold (`floor((
/// floor(A / m) + c) / n) = floor((A + c m) / (m n))`), so the result is `floor((P + 2^30 +
/// 2^(30 + s) - [P < -2^30] 2^31) / 2^(31 + s))`: one add, one conditional subtract and one
/// arithmetic shift of the product. `|P| <= 2^62` and the constants stay below `2^62`, so
/// nothing overflows.
pub(crate) fn one_step(right: i32) -> (i64, i64, i64) {
    let s = i64::from(right.clamp(0, 31));
    if s == 0 {
        (1 << 30, 31, i64::MIN)
    } else {
        ((1 << 30) + (1 << (30 + s)), 31 + s, -(1 << 30))
    }
}

/// Per-output-channel requantization data of a row of accumulators: the accumulator of
/// channel `c` becomes `clamp(MultiplyByQuantizedMultiplier(acc + bias[c] + offset) +
/// zero_point)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channels<'a> {
    /// The data in blocks of 8 channels (lanes past `len` are zero).
    pub blocks: &'a [Block],
    /// Number of channels (at most `8 * blocks.len()`).
    pub len: usize,
    /// Whether some multiplier is `i32::MIN` (the doubling high multiply may saturate).
    #[cfg_attr(
        not(target_arch = "x86_64"),
        expect(
            dead_code,
            reason = "x86-64 patches the saturating case; aarch64's SQRDMULH saturates itself"
        )
    )]
    pub saturating: bool,
    /// Whether some left shift is not 0.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        expect(dead_code, reason = "read by the x86-64 and aarch64 kernels only")
    )]
    pub shifts_left: bool,
    /// Output zero point and activation clamp.
    pub clamp: Clamp,
}

/// Checks the operands of [`PanelKernels::gemm`] for a panel kernel `P`: `Some(n)`, the number
/// of channels, when the runs of the patches are a multiple of [`PanelKernels::GROUP`] long
/// and lie inside their data, and every other operand is long enough (`panels` the length of
/// the panels).
#[inline(always)]
#[cfg(target_arch = "x86_64")]
pub(crate) fn gemm_shape<P: PanelKernels, T>(
    (mr, nb): (usize, usize),
    patches: &PatchRuns<'_, T>,
    panels: usize,
    ch: &Channels<'_>,
    (out, stride): (&[i8], usize),
) -> Option<usize> {
    let n = ch.len().min(8 * nb);
    let ok = patches.run.is_multiple_of(P::GROUP)
        && patches.fits(mr)
        && panels >= nb.checked_mul(panel_len::<P>(patches.len())?)?
        && (mr == 0 || out.len() >= (mr - 1).checked_mul(stride)?.checked_add(n)?);
    ok.then_some(n)
}

/// FULLY_CONNECTED weight rows in the quad layout (see [`Kernels::quad_rows`]) are padded to a
/// multiple of this many values (one 256-bit vector).
pub(crate) const QUAD_ROW_ALIGN: usize = 32;

/// Whether the operands of [`Kernels::quad_rows`] fit: `x` of length `x_len`, `n` rows of
/// `stride` values in `rows_len` values (`stride` a multiple of [`QUAD_ROW_ALIGN`]) and `n`
/// corrections of 4 bytes in `corrections_len`.
#[inline(always)]
pub(crate) fn quad_rows_shape(
    x_len: usize,
    (rows_len, stride): (usize, usize),
    corrections_len: usize,
    n: usize,
) -> bool {
    stride.is_multiple_of(QUAD_ROW_ALIGN)
        && x_len >= stride
        && n.checked_mul(stride).is_some_and(|len| rows_len >= len)
        && n.checked_mul(4).is_some_and(|len| corrections_len >= len)
}

/// Length of one panel of `P` for patches of `len` values: the header, then 8 weights per
/// patch value.
#[inline(always)]
pub(crate) fn panel_len<P: PanelKernels>(len: usize) -> Option<usize> {
    len.checked_mul(8)?.checked_add(P::HEADER)
}

/// The first `N` elements of `s` and the zeros after them, as an array (for the last elements
/// of a row, through vector code).
#[inline(always)]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn padded<T: Copy + Default, const N: usize>(s: &[T]) -> [T; N] {
    let mut a = [T::default(); N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s[..n]);
    a
}

/// `N` operands cut into chunks of 16 values (see [`dot_chunks`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) type Chunked<'a, T, const N: usize> = [&'a [[T; 16]]; N];

/// The operands of [`Kernels::dot`] cut into whole chunks of 16 values: the number of chunks
/// (the fewest any operand has; none when there are no operands) and every operand holding
/// exactly that many, so that a level's loop over chunk indices stays in bounds by construction.
#[inline(always)]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn dot_chunks<'a, 'b, const MR: usize, const NR: usize>(
    patches: [&'a [i16]; MR],
    rows: [&'b [i8]; NR],
) -> (usize, Chunked<'a, i16, MR>, Chunked<'b, i8, NR>) {
    let shortest = patches
        .iter()
        .map(|p| p.len())
        .chain(rows.iter().map(|r| r.len()))
        .min()
        .unwrap_or(0);
    let chunks = shortest / 16;
    (
        chunks,
        patches.map(|p| &p.as_chunks::<16>().0[..chunks]),
        rows.map(|r| &r.as_chunks::<16>().0[..chunks]),
    )
}

/// Checks the operands of [`Kernels::depthwise`]: `Some((c, n))`, channels and pixels, when
/// they are consistent.
#[inline(always)]
pub(crate) fn depthwise_shape(
    (base, taps): (&[i8], &[usize]),
    step: usize,
    weights: &[i8],
    ch: &Channels<'_>,
    out: &[i8],
) -> Option<(usize, usize)> {
    let c = ch.len();
    if c == 0 || !taps.len().is_multiple_of(2) || weights.len() < taps.len().checked_mul(c)? {
        return None;
    }
    let n = out.len() / c;
    let run = n.checked_sub(1)?.checked_mul(step)?.checked_add(c)?;
    let last = taps.iter().max().copied().unwrap_or(0).checked_add(run)?;
    (last <= base.len()).then_some((c, n))
}

impl<'a> Channels<'a> {
    /// Channels `range` of `self`; `None` unless `range.start` is a multiple of 8 and the
    /// range is inside.
    pub fn get(&self, range: core::ops::Range<usize>) -> Option<Channels<'a>> {
        if !range.start.is_multiple_of(8) || range.start > range.end || range.end > self.len {
            return None;
        }
        Some(Channels {
            blocks: self.blocks.get(range.start / 8..range.end.div_ceil(8))?,
            len: range.end - range.start,
            ..*self
        })
    }

    /// The channels of group `g` when every group has `per_group` channels and starts a new
    /// block.
    pub fn group(&self, g: usize, per_group: usize) -> Option<Channels<'a>> {
        let n = per_group.div_ceil(8);
        Some(Channels {
            blocks: self.blocks.get(g * n..(g + 1) * n)?,
            len: per_group,
            ..*self
        })
    }

    /// The block of channels `c..c + 8` (`c` a multiple of 8 below `len`).
    #[inline(always)]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub fn block(&self, c: usize) -> Option<&'a Block> {
        if c.is_multiple_of(8) && c < self.len {
            self.blocks.get(c / 8)
        } else {
            None
        }
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Field `field` of channel `c` (0 outside).
    #[inline]
    pub fn value(&self, field: usize, c: usize) -> i32 {
        let lane = self.blocks.get(c / 8).and_then(|b| b.get(field));
        lane.and_then(|l| l.get(c % 8)).copied().unwrap_or(0)
    }

    /// The multiplier of channel `c` as a [`QuantizedMultiplier`].
    #[inline]
    pub fn quantized_multiplier(&self, c: usize) -> QuantizedMultiplier {
        QuantizedMultiplier {
            multiplier: self.value(MULTIPLIER, c),
            shift: self.value(LEFT, c) - self.value(RIGHT, c),
        }
    }
}

/// Output zero point and activation clamp of a requantization.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clamp {
    /// Output zero point (added with wrapping).
    pub zero_point: i32,
    /// Lower clamp.
    pub min: i32,
    /// Upper clamp.
    pub max: i32,
}

/// The inner kernels of one instruction-set level. Implementations must compute exactly what
/// the portable implementation computes, for every input (lengths included: every method works
/// on the common prefix of its slices and never reads or writes outside them).
pub(crate) trait Kernels: Copy {
    /// The convolution kernel on packed panels of this level, if it has one.
    type Panels: PanelKernels;

    /// This level's panel kernel; `None`: convolutions run on weight rows with [`Self::dot`].
    fn panels(self) -> Option<Self::Panels>;

    /// `out[m][n] = sum_k patches[m][k] * rows[n][k]` (wrapping `i32`) over the first
    /// `16 * floor(len / 16)` elements, `len` the shortest slice length. Patch values are int8
    /// values (widened), so every product is exact in `i16`.
    fn dot<const MR: usize, const NR: usize>(
        self,
        patches: [&[i16]; MR],
        rows: [&[i8]; NR],
    ) -> [[i32; NR]; MR];

    /// Sign-extends `src` into `dst` (the common prefix).
    fn widen(self, dst: &mut [i16], src: &[i8]);

    /// `dst[i] = src[i] ^ 0x80` (the bits of `src[i] + 128` as a `u8`) over the common prefix:
    /// the patch values of the quad panel kernels.
    #[inline(always)]
    fn flip(self, dst: &mut [i8], src: &[i8]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s ^ i8::MIN;
        }
    }

    /// FULLY_CONNECTED on quads (the layout of the levels whose [`Isa::quads`] holds): for
    /// `r < acc.len()`, `acc[r] = corrections[r] + sum_k (x[k] as u8) * rows[r * stride + k]`
    /// (wrapping `i32`) over `k < stride`, `x` holding input values plus 128 as `u8` bits (see
    /// [`Kernels::flip`]) and `corrections` the rows' `-128 * sum w` as little-endian `i32`s.
    /// `stride` must be a multiple of [`QUAD_ROW_ALIGN`]; nothing is written unless it is and
    /// `x`, `rows` and `corrections` are long enough.
    #[inline(always)]
    fn quad_rows(self, x: &[i8], rows: &[i8], stride: usize, corrections: &[i8], acc: &mut [i32]) {
        let n = acc.len();
        if !quad_rows_shape(x.len(), (rows.len(), stride), corrections.len(), n) {
            return;
        }
        for (r, a) in acc.iter_mut().enumerate() {
            let c = &corrections[4 * r..4 * r + 4];
            let mut sum = i32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]);
            for (&u, &w) in x[..stride].iter().zip(&rows[r * stride..(r + 1) * stride]) {
                sum = sum.wrapping_add(i32::from(u as u8) * i32::from(w));
            }
            *a = sum;
        }
    }

    /// `out[c] = clamp(MBQM(acc[c] + ch.bias[c] + offset, ch[c]) + zero_point)` truncated to
    /// int8, for `c` below the shortest length.
    fn requantize(self, acc: &[i32], offset: i32, ch: Channels<'_>, out: &mut [i8]);

    /// A row of a depthwise convolution. With `c = ch.len()` channels, `n = out.len() / c`
    /// pixels and the taps in pairs `p` (offsets `taps[2p]`, `taps[2p + 1]` into `base`,
    /// weights `weights[2pc..2(p + 1)c]` interleaved per channel), computes (wrapping `i32`)
    /// `acc = sum_p base[taps[2p] + j * step + i] * w[p][2i]
    /// + base[taps[2p + 1] + j * step + i] * w[p][2i + 1]`
    /// for pixel `j` and channel `i`, and stores the requantized `acc` to `out[j * c + i]`.
    /// Nothing is written unless `taps` has an even length, `weights` holds `taps.len() * c`
    /// values and every tap's run `taps[t]..taps[t] + (n - 1) * step + c` lies in `base`.
    fn depthwise(
        self,
        base: &[i8],
        taps: &[usize],
        step: usize,
        weights: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
    );

    /// Same-shape quantized int8 ADD over the common prefix.
    fn add_i8(self, p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]);
}

/// A value of a convolution patch as a panel kernel takes it, made from an int8 input value.
pub(crate) trait PatchValue: Copy + Default {
    /// The patch value of input value `x`.
    fn of(x: i8) -> Self;

    /// `dst[i] = of(src[i])` over the common prefix, with the kernels of level `k`.
    fn load<K: Kernels>(k: K, dst: &mut [Self], src: &[i8]);

    /// The scratch buffer that holds patches of this type.
    fn buffer<'a>(i8: &'a mut [i8], i16: &'a mut [i16]) -> &'a mut [Self];
}

/// The widened input value (pair kernels: `VPMADDWD`, `VPDPWSSD`).
impl PatchValue for i16 {
    #[inline(always)]
    fn of(x: i8) -> i16 {
        i16::from(x)
    }

    #[inline(always)]
    fn load<K: Kernels>(k: K, dst: &mut [i16], src: &[i8]) {
        k.widen(dst, src);
    }

    #[inline(always)]
    fn buffer<'a>(_: &'a mut [i8], i16: &'a mut [i16]) -> &'a mut [i16] {
        i16
    }
}

/// The input value plus 128 as the bits of a `u8` (`x ^ 0x80`) (quad kernels: `VPDPBUSD`,
/// whose first operand is unsigned).
impl PatchValue for i8 {
    #[inline(always)]
    fn of(x: i8) -> i8 {
        x ^ i8::MIN
    }

    #[inline(always)]
    fn load<K: Kernels>(k: K, dst: &mut [i8], src: &[i8]) {
        k.flip(dst, src);
    }

    #[inline(always)]
    fn buffer<'a>(i8: &'a mut [i8], _: &'a mut [i16]) -> &'a mut [i8] {
        i8
    }
}

/// The most output pixels any level's panel kernel takes per call (see [`PanelKernels::MR`]).
pub(crate) const MAX_MR: usize = 5;

/// A convolution kernel on weights packed in panels of 8 output channels.
///
/// Two layouts: pairs (`GROUP == 2`, `HEADER == 0`, `i16` patches) and quads (`GROUP == 4`,
/// or 8 for two quads per step, `HEADER == 32`, patches of `x + 128` as `u8` bits, see
/// [`PatchValue`]).
pub(crate) trait PanelKernels: Copy {
    /// The patch values the kernel takes.
    type Patch: PatchValue;
    /// Patch values per group of weights of a channel (the patch length is a multiple).
    const GROUP: usize;
    /// Bytes before the weights of each panel: none for pairs; for quads the 8 channels'
    /// `-128 * sum w` as little-endian `i32`s, the accumulators' initial values.
    const HEADER: usize;
    /// The most panels per call the caller should ask for (at most 5): enough independent
    /// accumulators to hide the multiply-accumulate latency, few enough to stay in registers.
    const MAX_NB: usize;
    /// Output pixels per call the caller should ask for (at most [`MAX_MR`]): with `MAX_NB`,
    /// the kernel's register blocking.
    const MR: usize;

    /// A block of a convolution, `MR` pixels times `NB` panels of 8 output channels.
    /// `patches` holds the `MR` pixels' patches of `len = patches.len()` values, in runs of a
    /// multiple of `GROUP` values; `panels` holds `NB` panels of `HEADER + 8 * len` bytes: after the
    /// header, for each group `j` of `GROUP` patch values, 8 channels times the group's
    /// weights. For pixel `m` and channel `c < n = min(8 * NB, ch.len())` it computes
    /// (wrapping `i32`) `acc = header[c / 8][c % 8] + sum_j sum_i
    /// patch[m][GROUP j + i] * panel[c / 8][HEADER + 8 GROUP j + GROUP (c % 8) + i]`
    /// (the patch values as `i16`, or as `u8`) and stores the requantized `acc` to
    /// `out[m * stride + c]`. Nothing is written unless every operand is long enough. `NB` is
    /// at most `MAX_NB` and `MR` at most [`Self::MR`].
    fn gemm<const MR: usize, const NB: usize>(
        self,
        patches: PatchRuns<'_, Self::Patch>,
        panels: &[i8],
        ch: Channels<'_>,
        out: &mut [i8],
        stride: usize,
    );
}

/// A run of `MR` patches in units of `U` values, and the weights that meet it (see
/// [`PatchRuns::units`]).
pub(crate) type RunUnits<'a, 'w, T, const U: usize, const MR: usize, W, const NB: usize> =
    ([&'a [[T; U]]; MR], [&'w [W]; NB]);

/// Where the patches of a [`PanelKernels::gemm`] call lie: patch `m` is `runs` runs of `run`
/// values, run `r` at `starts[m] + r * step` in `data`. Patches copied side by side are one run
/// each, at `m * len`; patches read in place from a padded image are one run per row of taps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PatchRuns<'a, T> {
    /// The values.
    pub data: &'a [T],
    /// Where each patch starts.
    pub starts: &'a [usize],
    /// Runs per patch.
    pub runs: usize,
    /// Values per run.
    pub run: usize,
    /// Distance from one run of a patch to the next.
    pub step: usize,
}

#[cfg_attr(
    not(target_arch = "x86_64"),
    expect(
        dead_code,
        reason = "only x86-64 levels have panel kernels that read patches"
    )
)]
impl<'a, T> PatchRuns<'a, T> {
    /// Values per patch.
    pub fn len(&self) -> usize {
        self.runs.saturating_mul(self.run)
    }

    /// Run `r` of patch `m`, if it lies inside `data`.
    #[inline(always)]
    pub fn get(&self, m: usize, r: usize) -> Option<&'a [T]> {
        let at = self.starts.get(m)?.checked_add(r.checked_mul(self.step)?)?;
        self.data.get(at..at.checked_add(self.run)?)
    }

    /// Run `r` of each of the first `MR` patches as `n` units of `U` values, with the units
    /// of the weight slices `all` that meet them (`n` from unit `r * n` on); `None` where a run
    /// lies outside the data or is not `n` units long.
    #[inline(always)]
    pub fn units<'w, const U: usize, const MR: usize, W, const NB: usize>(
        &self,
        r: usize,
        n: usize,
        all: &[&'w [W]; NB],
    ) -> Option<RunUnits<'a, 'w, T, U, MR, W, NB>> {
        let mut x: [&[[T; U]]; MR] = [&[]; MR];
        for (m, x) in x.iter_mut().enumerate() {
            *x = self.get(m, r)?.as_chunks::<U>().0.get(..n)?;
        }
        let mut w = *all;
        for w in &mut w {
            *w = w.get(r * n..(r + 1) * n)?;
        }
        Some((x, w))
    }

    /// Whether every run of the first `mr` patches lies inside `data` (the last one does).
    #[inline(always)]
    fn fits(&self, mr: usize) -> bool {
        if self.starts.len() < mr {
            return false;
        }
        if self.runs > 0 {
            // A loop, not `all`: the closure's fold was not inlined.
            for m in 0..mr {
                if self.get(m, self.runs - 1).is_none() {
                    return false;
                }
            }
        }
        true
    }
}

/// The panel kernel of a level without one: a type without values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NoPanels {}

impl PanelKernels for NoPanels {
    type Patch = i16;
    const GROUP: usize = 2;
    const HEADER: usize = 0;
    const MAX_NB: usize = 2;
    const MR: usize = 4;

    fn gemm<const MR: usize, const NB: usize>(
        self,
        _: PatchRuns<'_, i16>,
        _: &[i8],
        _: Channels<'_>,
        _: &mut [i8],
        _: usize,
    ) {
        match self {}
    }
}

/// Work that runs with the kernels of one level: [`dispatch`] monomorphizes `run` for the
/// requested level (under its target features).
pub(crate) trait Job {
    /// What the job returns.
    type Output;
    /// Runs the job with kernels `k`. Implementations should be `#[inline(always)]` so that
    /// their loops are compiled with the level's target features.
    fn run<K: Kernels>(self, k: K) -> Self::Output;
}

/// Runs `job` at level `isa`; an error if this CPU cannot run `isa` (the weights were laid out
/// for it, so no other level may stand in).
#[inline]
pub(crate) fn dispatch<J: Job>(isa: Isa, job: J) -> Result<J::Output> {
    match isa {
        Isa::Portable => Ok(job.run(Portable)),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => match x86::Avx2::detect() {
            Some(token) => Ok(x86::run_avx2(token, job)),
            None => Err(UNSUPPORTED),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => match x86::AvxVnni::detect() {
            Some(token) => Ok(x86::run_avxvnni(token, job)),
            None => Err(UNSUPPORTED),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => match x86::Avx512Vnni::detect() {
            Some(token) => Ok(x86::run_avx512vnni(token, job)),
            None => Err(UNSUPPORTED),
        },
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => Err(UNSUPPORTED),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => match aarch64::Neon::detect() {
            Some(token) => Ok(aarch64::run_neon(token, job)),
            None => Err(UNSUPPORTED),
        },
        #[cfg(target_arch = "aarch64")]
        Isa::Dotprod => match aarch64::Dotprod::detect() {
            Some(token) => Ok(aarch64::run_dotprod(token, job)),
            None => Err(UNSUPPORTED),
        },
        #[cfg(not(target_arch = "aarch64"))]
        Isa::Neon | Isa::Dotprod => Err(UNSUPPORTED),
    }
}

/// The error of an instruction-set level this CPU cannot run.
const UNSUPPORTED: KernelError =
    KernelError::Unsupported("instruction set not supported by this CPU");
