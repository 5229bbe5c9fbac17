//! Optimized int8 kernels, bit-exact with the reference kernels: CONV_2D, DEPTHWISE_CONV_2D and
//! FULLY_CONNECTED on weights laid out once at prepare time, AVERAGE_POOL_2D / MAX_POOL_2D and
//! same-shape ADD.
//!
//! Every kernel runs at a chosen [`Isa`] level ([`Isa::detect`] picks the fastest one the CPU
//! supports, [`Isa::Portable`] runs everywhere) and every level produces the reference kernels'
//! bytes: the property tests in `tests/fast_equivalence.rs` compare them on thousands of random
//! cases at each level the CPU supports.
//!
//! How the layers are computed:
//!
//! * CONV_2D (any groups, strides, dilations, padding) and DEPTHWISE_CONV_2D with a single input
//!   channel: per output pixel, a patch of the window's raw input values (int16; the input zero
//!   point at padded taps). At levels with a panel kernel (AVX2) the weights are packed in
//!   panels of 8 output channels, interleaved in pairs of patch values, and the inner kernel
//!   takes four pixels times sixteen channels, requantizing straight from its accumulators; at
//!   the portable level they stay rows (padded to a multiple of 16 values) and each output is a
//!   dot product that the compiler vectorizes.
//! * FULLY_CONNECTED: dot products of the widened input row with the int8 weight rows, eight
//!   rows at a time, on the model's own weights (copied, padded to a multiple of 16 values,
//!   only when a row is not).
//! * DEPTHWISE_CONV_2D with more input channels: one output row at a time, channels vectorized,
//!   taps in pairs whose weights are interleaved at prepare time; the input rows under the
//!   filter are copied into zero-point-padded rows when the window crosses the border (or the
//!   depth multiplier repeats inputs), so that each tap is one contiguous run.
//! * The zero points are folded into a per-channel bias at prepare time, using
//!   `sum (w + fo)(x + io) = sum w*x + io*sum w + fo*sum x + n*io*fo` with wrapping `i32`
//!   arithmetic (the integers modulo 2^32 form a ring, and the reference wraps too, so this is
//!   exact). A padded tap holds `x = zero point`, so it adds nothing, as in the reference. The
//!   FULLY_CONNECTED filter zero point (per tensor; 0 in valid models) adds `fo * sum x` per
//!   input row at eval time.
//! * Requantization is the reference's: TFLM's double-rounding `MultiplyByQuantizedMultiplier`,
//!   the output zero point, the activation clamp, truncation to int8.
//!
//! Prepare and eval: a plan ([`ConvPlan`], [`DepthwisePlan`], [`FcPlan`]; see [`WeightPlan`])
//! validates the parameters once. Its `pack` lays the weights out (`packed_len` is 0 when the
//! filter is used as is), `prepare_channels` computes the per-channel data and `scratch_len`
//! the scratch memory eval needs. Eval never allocates and never panics: a slice of the wrong
//! length is a [`KernelError::Shape`].

use crate::conv::{ConvParams, ConvShapes, DepthwiseParams};
use crate::elementwise::AddParams;
use crate::fully_connected::{FcQuantization, FullyConnectedParams};
use crate::pooling::PoolParams;
use crate::quant::QuantizedMultiplier;
use crate::shape::count4;
use crate::simd::{
    BIAS, Block, Channels, Clamp, HALF, Job, Kernels, LEFT, MASK, MULTIPLIER, PanelKernels, RIGHT,
    dispatch,
};
use crate::{KernelError, Result};

pub use crate::simd::Isa;

/// FULLY_CONNECTED weight rows (and input rows) are padded to a multiple of this many values.
const ROW_ALIGN: usize = 16;

/// Scratch memory of one eval call, in elements of each type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScratchLen {
    /// `i8` elements.
    pub i8: usize,
    /// `i16` elements.
    pub i16: usize,
    /// `i32` elements.
    pub i32: usize,
    /// `usize` elements.
    pub usize: usize,
}

/// Caller-provided scratch memory of an eval call (at least its [`ScratchLen`]).
#[derive(Debug)]
pub struct Scratch<'a> {
    /// `i8` scratch.
    pub i8: &'a mut [i8],
    /// `i16` scratch.
    pub i16: &'a mut [i16],
    /// `i32` scratch.
    pub i32: &'a mut [i32],
    /// `usize` scratch.
    pub usize: &'a mut [usize],
}

impl Scratch<'_> {
    /// Checks that the scratch holds at least `len`.
    fn check(&self, len: ScratchLen) -> Result<()> {
        if self.i8.len() < len.i8
            || self.i16.len() < len.i16
            || self.i32.len() < len.i32
            || self.usize.len() < len.usize
        {
            return Err(KernelError::Shape("scratch too short"));
        }
        Ok(())
    }
}

/// `n` rounded up to a multiple of [`ROW_ALIGN`] (saturating).
fn aligned(n: usize) -> usize {
    n.saturating_add(ROW_ALIGN - 1) / ROW_ALIGN * ROW_ALIGN
}

/// Range `lo..hi` of filter taps `f` in `0..f_len` whose input coordinate
/// `origin + dilation * f` lies in `0..in_len` (the valid taps form one interval).
#[inline(always)]
fn valid_taps(origin: i64, dilation: usize, f_len: usize, in_len: usize) -> (usize, usize) {
    let d = dilation.max(1) as i64;
    let n = in_len as i64;
    let f = f_len as i64;
    if origin >= n {
        return (0, 0);
    }
    // lo = ceil(-origin / d) when origin < 0; hi = floor((n - 1 - origin) / d) + 1.
    let (lo, hi) = if d == 1 {
        ((-origin).max(0), n - origin)
    } else {
        (
            if origin < 0 { (-origin + d - 1) / d } else { 0 },
            (n - 1 - origin) / d + 1,
        )
    };
    let hi = hi.min(f);
    let lo = lo.min(hi);
    (lo as usize, hi as usize)
}

/// Top/left input coordinate of an output position: `o * stride - pad` (exact in i64 for
/// the sizes [`Geometry::check`] accepts).
#[inline(always)]
fn origin(o: usize, stride: usize, pad: usize) -> i64 {
    o as i64 * stride as i64 - pad as i64
}

/// `sum row` (wrapping).
fn row_sum(row: &[i8]) -> i32 {
    row.iter().fold(0i32, |a, &w| a.wrapping_add(i32::from(w)))
}

/// Length of the prepared channel data of `groups` groups of `per_group` output channels: a
/// [`Block`] (48 values) per 8 channels of each group.
fn channels_len(groups: usize, per_group: usize) -> usize {
    blocks_len(groups, per_group).saturating_add(FLAGS)
}

/// The values of the [`Block`]s of `groups` groups of `per_group` channels.
fn blocks_len(groups: usize, per_group: usize) -> usize {
    groups
        .saturating_mul(per_group.div_ceil(8))
        .saturating_mul(8 * 6)
}

/// Values after the blocks: whether some multiplier is `i32::MIN`, whether some left shift is
/// not 0 (see [`Channels`]), found once at prepare time.
const FLAGS: usize = 2;

/// Views prepared channel data (see [`fill_channels`]) of `groups` groups of `per_group`
/// output channels, with the output stage `clamp`.
fn channels(
    buf: &[i32],
    (groups, per_group): (usize, usize),
    clamp: Clamp,
) -> Result<Channels<'_>> {
    if buf.len() != channels_len(groups, per_group) {
        return Err(KernelError::Shape("prepared channel data length"));
    }
    let (blocks, flags) = buf.split_at(blocks_len(groups, per_group));
    Ok(Channels {
        blocks: blocks.as_chunks::<8>().0.as_chunks::<6>().0,
        len: groups * per_group,
        saturating: flags[0] != 0,
        shifts_left: flags[1] != 0,
        clamp,
    })
}

/// Fills the channel data of `groups` groups of `per_group` output channels (see
/// [`channels_len`]): for output channel `oc`, the bias
/// `bias[oc] + input_offset * weight_sum(oc) + constant`, the multiplier split into left and
/// right shifts, and the rounding masks; `multipliers` holds one entry per channel, or one for
/// all.
#[allow(clippy::too_many_arguments)]
fn fill_channels(
    out: &mut [i32],
    (groups, per_group): (usize, usize),
    bias: Option<&[i32]>,
    multipliers: &[QuantizedMultiplier],
    input_offset: i32,
    constant: i32,
    weight_sum: impl Fn(usize) -> i32,
) -> Result<()> {
    let n = groups * per_group;
    if out.len() != channels_len(groups, per_group) {
        return Err(KernelError::Shape("prepared channel data length"));
    }
    if bias.is_some_and(|b| b.len() != n) {
        return Err(KernelError::Shape("bias length must equal output channels"));
    }
    if multipliers.len() != n && multipliers.len() != 1 {
        return Err(KernelError::Shape(
            "one quantized multiplier per output channel is required",
        ));
    }
    out.fill(0);
    let (blocks, flags) = out.split_at_mut(blocks_len(groups, per_group));
    let blocks: &mut [Block] = blocks.as_chunks_mut::<8>().0.as_chunks_mut::<6>().0;
    for oc in 0..n {
        let bias_c = bias.map_or(0, |b| b[oc]);
        let qm = multipliers[if multipliers.len() == 1 { 0 } else { oc }];
        // The split of `multiply_by_quantized_multiplier`.
        let right = qm.shift.wrapping_neg().clamp(0, 31);
        let mask = 1i32.wrapping_shl(right as u32).wrapping_sub(1);
        let (group, c) = (oc / per_group, oc % per_group);
        let block = &mut blocks[group * per_group.div_ceil(8) + c / 8];
        let lane = c % 8;
        block[BIAS][lane] = bias_c
            .wrapping_add(input_offset.wrapping_mul(weight_sum(oc)))
            .wrapping_add(constant);
        block[MULTIPLIER][lane] = qm.multiplier;
        block[LEFT][lane] = qm.shift.clamp(0, 31);
        block[RIGHT][lane] = right;
        block[MASK][lane] = mask;
        block[HALF][lane] = mask >> 1;
    }
    let lanes = |field: usize| blocks.iter().flat_map(move |b| b[field]);
    flags[0] = i32::from(lanes(MULTIPLIER).any(|m| m == i32::MIN));
    flags[1] = i32::from(lanes(LEFT).any(|l| l != 0));
    Ok(())
}

/// Lays out `rows` rows of `depth` weights (`weight(r, k)`) in `packed`, each row padded with
/// zeros to [`aligned`]`(depth)` values.
fn pack_rows(
    rows: usize,
    depth: usize,
    packed: &mut [i8],
    weight: impl Fn(usize, usize) -> i8,
) -> Result<()> {
    let stride = aligned(depth);
    if Some(packed.len()) != rows.checked_mul(stride) {
        return Err(KernelError::Shape("packed weights length"));
    }
    packed.fill(0);
    for (r, row) in packed.chunks_exact_mut(stride.max(1)).enumerate() {
        for (k, w) in row.iter_mut().enumerate().take(depth) {
            *w = weight(r, k);
        }
    }
    Ok(())
}

/// Geometry of a convolution as the patch loops see it.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    batches: usize,
    in_h: usize,
    in_w: usize,
    in_c: usize,
    out_h: usize,
    out_w: usize,
    out_c: usize,
    f_h: usize,
    f_w: usize,
    /// Input channels per group (CONV_2D filter depth).
    f_c: usize,
    groups: usize,
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
    input_zero_point: i32,
}

impl Geometry {
    /// Values per patch: `f_h * f_w * f_c`.
    fn depth(&self) -> usize {
        self.f_h.saturating_mul(self.f_w).saturating_mul(self.f_c)
    }

    /// Patch length: [`Self::depth`] rounded up to an even number (pairs of values).
    fn patch_len(&self) -> usize {
        self.depth().div_ceil(2).saturating_mul(2)
    }

    /// Output channels per group.
    fn per_group(&self) -> usize {
        self.out_c / self.groups.max(1)
    }

    /// Length of one packed panel (8 output channels, all pairs of patch values).
    fn panel_len(&self) -> usize {
        self.patch_len().saturating_mul(8)
    }

    /// Length of the packed weights: every group's channels in panels of 8.
    fn panels_len(&self) -> usize {
        let panels = self.groups.saturating_mul(self.per_group().div_ceil(8));
        panels.saturating_mul(self.panel_len())
    }

    /// Packs the weights (`weight(oc, k)` of output channel `oc`, patch value `k`) into
    /// `packed` ([`Self::panels_len`] values): per group, panels of 8 output channels holding,
    /// for each pair `j` of patch values, `[channel][pair member]`; zeros for missing channels
    /// and the odd last value.
    fn pack_panels(&self, packed: &mut [i8], weight: impl Fn(usize, usize) -> i8) -> Result<()> {
        if packed.len() != self.panels_len() {
            return Err(KernelError::Shape("packed weights length"));
        }
        packed.fill(0);
        let (per_group, depth, panel_len) = (self.per_group(), self.depth(), self.panel_len());
        let panels_per_group = per_group.div_ceil(8);
        for oc in 0..self.out_c {
            let (group, c) = (oc / per_group, oc % per_group);
            let panel = (group * panels_per_group + c / 8) * panel_len;
            for k in 0..depth {
                packed[panel + (k / 2) * 16 + 2 * (c % 8) + k % 2] = weight(oc, k);
            }
        }
        Ok(())
    }

    /// Length of the weights at level `isa`: panels, or rows padded to [`ROW_ALIGN`] values.
    fn weights_len(&self, isa: Isa) -> usize {
        if isa.panels() {
            self.panels_len()
        } else {
            self.out_c.saturating_mul(aligned(self.depth()))
        }
    }

    /// Lays out the weights (`weight(oc, k)`) for level `isa` in `packed`.
    fn pack(&self, isa: Isa, packed: &mut [i8], weight: impl Fn(usize, usize) -> i8) -> Result<()> {
        if isa.panels() {
            self.pack_panels(packed, weight)
        } else {
            pack_rows(self.out_c, self.depth(), packed, weight)
        }
    }

    /// Scratch memory of a patch convolution at level `isa`.
    fn conv_scratch(&self, isa: Isa) -> ScratchLen {
        if isa.panels() {
            ScratchLen {
                i16: MR.saturating_mul(self.patch_len()),
                ..ScratchLen::default()
            }
        } else {
            ScratchLen {
                i16: 2usize.saturating_mul(aligned(self.depth())),
                i32: 2usize.saturating_mul(self.per_group()),
                ..ScratchLen::default()
            }
        }
    }

    /// Output pixels (all batches).
    fn pixels(&self) -> usize {
        self.batches
            .saturating_mul(self.out_h)
            .saturating_mul(self.out_w)
    }

    /// Rejects sizes above `i32::MAX`, so that the window arithmetic is exact in `i64`.
    fn check(self) -> Result<Self> {
        let limit = i32::MAX as usize;
        let sizes = [
            self.batches,
            self.in_h,
            self.in_w,
            self.in_c,
            self.out_h,
            self.out_w,
            self.out_c,
            self.f_h,
            self.f_w,
        ];
        let window = [self.stride, self.dilation, self.pad];
        if sizes
            .iter()
            .chain(window.iter().flatten())
            .any(|&v| v > limit)
        {
            return Err(KernelError::Unsupported("convolution size above 2^31 - 1"));
        }
        Ok(self)
    }

    /// Checks the input and output lengths.
    fn check_io(&self, input: &[i8], output: &[i8]) -> Result<()> {
        let [b, h, w, c] = [self.batches, self.in_h, self.in_w, self.in_c];
        let [oh, ow, oc] = [self.out_h, self.out_w, self.out_c];
        if input.len() != count4([b, h, w, c]) || output.len() != count4([b, oh, ow, oc]) {
            return Err(KernelError::Shape("slice length does not match its shape"));
        }
        Ok(())
    }

    /// The output pixel after `(b, oy, ox)` in row-major order.
    #[inline(always)]
    fn next(&self, (b, oy, ox): Pixel) -> Pixel {
        if ox + 1 < self.out_w {
            (b, oy, ox + 1)
        } else if oy + 1 < self.out_h {
            (b, oy + 1, 0)
        } else {
            (b + 1, 0, 0)
        }
    }

    /// Vertical and horizontal input origins and valid tap ranges of output pixel `px`.
    #[inline(always)]
    fn window(&self, (_, oy, ox): Pixel) -> ([i64; 2], [(usize, usize); 2]) {
        let oy0 = origin(oy, self.stride[0], self.pad[0]);
        let ox0 = origin(ox, self.stride[1], self.pad[1]);
        let ty = valid_taps(oy0, self.dilation[0], self.f_h, self.in_h);
        let tx = valid_taps(ox0, self.dilation[1], self.f_w, self.in_w);
        ([oy0, ox0], [ty, tx])
    }
}

/// An output pixel `(batch, oy, ox)`.
type Pixel = (usize, usize, usize);

/// Output positions `lo..hi` (of `out`) whose window of `f` taps (dilation `d`, stride
/// `stride`, leading padding `pad`) lies inside `0..len`.
fn inner_range(
    out: usize,
    stride: usize,
    pad: usize,
    f: usize,
    d: usize,
    len: usize,
) -> (usize, usize) {
    let (stride, pad) = (stride as i64, pad as i64);
    let lo = (pad + stride - 1) / stride;
    // The last tap of position o is at o * stride - pad + d * (f - 1) <= len - 1.
    let last = len as i64 - 1 + pad - d as i64 * (f as i64 - 1);
    let hi = if last < 0 {
        0
    } else {
        (last / stride + 1).min(out as i64)
    };
    (lo.min(hi) as usize, hi as usize)
}

/// Gathers patches: for an output pixel, the raw input values under its window (the zero point
/// at padded taps), in filter order.
struct Patches<'a> {
    g: &'a Geometry,
    /// Values per patch.
    depth: usize,
    /// Values per row of taps.
    row_len: usize,
    /// Input offset between rows of taps.
    row_step: usize,
    /// Output rows and columns whose windows lie inside the input, if the rows of taps are
    /// contiguous in the input (horizontal dilation 1, one group).
    inner: Option<[(usize, usize); 2]>,
}

impl<'a> Patches<'a> {
    fn new(g: &'a Geometry) -> Self {
        let contiguous = g.dilation[1] == 1 && g.groups == 1;
        let rows = inner_range(g.out_h, g.stride[0], g.pad[0], g.f_h, g.dilation[0], g.in_h);
        let cols = inner_range(g.out_w, g.stride[1], g.pad[1], g.f_w, g.dilation[1], g.in_w);
        Patches {
            g,
            depth: g.depth(),
            row_len: g.f_w * g.f_c,
            row_step: g.dilation[0] * g.in_w * g.in_c,
            inner: contiguous.then_some([rows, cols]),
        }
    }

    /// The patch of output pixel `px`, group `group`, into the first `depth` values of `dst`.
    #[inline(always)]
    fn gather<K: Kernels>(
        &self,
        k: K,
        input: &[i8],
        px: Pixel,
        group: usize,
        dst: &mut [i16],
    ) -> Result<()> {
        let oob = KernelError::Shape("conv index out of range");
        let g = self.g;
        let patch = dst.get_mut(..self.depth).ok_or(oob)?;
        let (b, oy, ox) = px;
        if let Some([(y_lo, y_hi), (x_lo, x_hi)]) = self.inner
            && (y_lo..y_hi).contains(&oy)
            && (x_lo..x_hi).contains(&ox)
            && self.row_len > 0
        {
            // Every row of taps is inside the input, contiguous.
            let y = oy * g.stride[0] - g.pad[0];
            let x = ox * g.stride[1] - g.pad[1];
            let mut start = ((b * g.in_h + y) * g.in_w + x) * g.in_c;
            for row in patch.chunks_exact_mut(self.row_len) {
                k.widen(row, input.get(start..start + self.row_len).ok_or(oob)?);
                start = start.wrapping_add(self.row_step);
            }
            return Ok(());
        }
        self.gather_border(k, input, px, group, patch)
    }

    /// [`Self::gather`] for a window that may cross the input's border.
    #[inline(always)]
    fn gather_border<K: Kernels>(
        &self,
        k: K,
        input: &[i8],
        px: Pixel,
        group: usize,
        patch: &mut [i16],
    ) -> Result<()> {
        let oob = KernelError::Shape("conv index out of range");
        let g = self.g;
        let zp = g.input_zero_point as i16;
        let ([oy0, ox0], [(fy_lo, fy_hi), (fx_lo, fx_hi)]) = g.window(px);
        if patch.is_empty() || fy_lo >= fy_hi || fx_lo >= fx_hi {
            patch.fill(zp);
            return Ok(());
        }
        let (f_c, in_c, row_len) = (g.f_c, g.in_c, self.row_len);
        let (top, rest) = patch.split_at_mut(fy_lo * row_len);
        let (rows, bottom) = rest.split_at_mut((fy_hi - fy_lo) * row_len);
        top.fill(zp);
        bottom.fill(zp);
        // First valid input row and column (not negative by the choice of fy_lo, fx_lo).
        let y0 = (oy0 + (g.dilation[0] * fy_lo) as i64) as usize;
        let x0 = (ox0 + (g.dilation[1] * fx_lo) as i64) as usize;
        let mut start = ((px.0 * g.in_h + y0) * g.in_w + x0) * in_c + group * f_c;
        for row in rows.chunks_exact_mut(row_len) {
            let (head, rest) = row.split_at_mut(fx_lo * f_c);
            let (valid, tail) = rest.split_at_mut((fx_hi - fx_lo) * f_c);
            head.fill(zp);
            tail.fill(zp);
            if self.inner.is_some() {
                k.widen(valid, input.get(start..start + valid.len()).ok_or(oob)?);
            } else {
                for (t, d) in valid.chunks_exact_mut(f_c).enumerate() {
                    let at = start + t * g.dilation[1] * in_c;
                    k.widen(d, input.get(at..at + f_c).ok_or(oob)?);
                }
            }
            start = start.wrapping_add(self.row_step);
        }
        Ok(())
    }
}

/// Stores the `N` sums of each patch at `acc[m][r..r + N]`.
#[inline(always)]
fn store<const M: usize, const N: usize>(acc: &mut [&mut [i32]; M], r: usize, sums: [[i32; N]; M]) {
    for (a, s) in acc.iter_mut().zip(sums) {
        if let Some(d) = a.get_mut(r..r + N) {
            d.copy_from_slice(&s);
        }
    }
}

/// The `N` consecutive rows of `stride` values of `block`.
#[inline(always)]
fn split_rows<const N: usize>(block: &[i8], stride: usize) -> [&[i8]; N] {
    let mut rows: [&[i8]; N] = [&[]; N];
    for (r, chunk) in rows.iter_mut().zip(block.chunks_exact(stride)) {
        *r = chunk;
    }
    rows
}

/// `acc[m][r] = patches[m] . row r` for the rows of `rows` (stride `stride`, at least as many
/// as the accumulators): eight at a time for one patch, then four, then the rest.
#[inline(always)]
fn dot_rows<K: Kernels, const M: usize>(
    k: K,
    patches: [&[i16]; M],
    rows: &[i8],
    stride: usize,
    mut acc: [&mut [i32]; M],
) {
    let n = acc.iter().map(|a| a.len()).min().unwrap_or(0);
    let Some(mut rows) = rows.get(..n * stride).filter(|_| stride > 0) else {
        // Empty rows: every dot product is 0.
        acc.iter_mut().for_each(|a| a.fill(0));
        return;
    };
    let mut r = 0;
    if M == 1 {
        let mut blocks = rows.chunks_exact(8 * stride);
        for block in blocks.by_ref() {
            store(&mut acc, r, k.dot(patches, split_rows::<8>(block, stride)));
            r += 8;
        }
        rows = blocks.remainder();
    }
    let mut blocks = rows.chunks_exact(4 * stride);
    for block in blocks.by_ref() {
        store(&mut acc, r, k.dot(patches, split_rows::<4>(block, stride)));
        r += 4;
    }
    let rest = blocks.remainder();
    match rest.len() / stride {
        3 => store(&mut acc, r, k.dot(patches, split_rows::<3>(rest, stride))),
        2 => store(&mut acc, r, k.dot(patches, split_rows::<2>(rest, stride))),
        1 => store(&mut acc, r, k.dot(patches, split_rows::<1>(rest, stride))),
        _ => {}
    }
}

/// Where [`rows_by_two`] takes its rows from: the patches of a convolution, the input rows of
/// a fully connected layer. (A trait rather than a closure: a closure would not be compiled
/// with the target features of the level, and the kernels it calls would not be inlined.)
trait RowSource {
    /// Widens the next row into `buffer` and returns its offset (added before requantization).
    fn next_row<K: Kernels>(&mut self, k: K, buffer: &mut [i16]) -> Result<i32>;
}

/// The patches of one group of a convolution, pixel by pixel from `at` on.
struct PatchRows<'a, 'g> {
    gather: &'a Patches<'g>,
    input: &'a [i8],
    at: Pixel,
    group: usize,
}

impl RowSource for PatchRows<'_, '_> {
    #[inline(always)]
    fn next_row<K: Kernels>(&mut self, k: K, buffer: &mut [i16]) -> Result<i32> {
        self.gather
            .gather(k, self.input, self.at, self.group, buffer)?;
        self.at = self.gather.g.next(self.at);
        Ok(0)
    }
}

/// Runs `count` rows from `source` against the weight `rows` (stride `stride`), two at a time
/// where it can; row `i`'s requantized outputs go to `output[range(i)]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_by_two<K: Kernels, S: RowSource>(
    k: K,
    count: usize,
    (rows, stride): (&[i8], usize),
    ch: Channels<'_>,
    (p0, p1): (&mut [i16], &mut [i16]),
    (a0, a1): (&mut [i32], &mut [i32]),
    source: &mut S,
    (output, range): (&mut [i8], impl Fn(usize) -> core::ops::Range<usize>),
) -> Result<()> {
    let oob = KernelError::Shape("output index out of range");
    let mut i = 0;
    while i < count {
        let off0 = source.next_row(k, p0)?;
        if i + 1 < count {
            let off1 = source.next_row(k, p1)?;
            dot_rows(k, [&*p0, &*p1], rows, stride, [&mut *a0, &mut *a1]);
            k.requantize(a0, off0, ch, output.get_mut(range(i)).ok_or(oob)?);
            k.requantize(a1, off1, ch, output.get_mut(range(i + 1)).ok_or(oob)?);
            i += 2;
        } else {
            dot_rows(k, [&*p0], rows, stride, [&mut *a0]);
            k.requantize(a0, off0, ch, output.get_mut(range(i)).ok_or(oob)?);
            i += 1;
        }
    }
    Ok(())
}

/// Splits `s` into two consecutive pieces of `n` elements.
fn two<T>(s: &mut [T], n: usize) -> Result<(&mut [T], &mut [T])> {
    let oob = KernelError::Shape("scratch too short");
    let (a, rest) = s.split_at_mut_checked(n).ok_or(oob)?;
    Ok((a, rest.get_mut(..n).ok_or(oob)?))
}

/// A convolution through patches (CONV_2D, or DEPTHWISE_CONV_2D with one input channel): on
/// packed panels, four output pixels at a time, at levels with a panel kernel; else on weight
/// rows, two pixels at a time.
struct ConvJob<'a> {
    g: &'a Geometry,
    input: &'a [i8],
    weights: &'a [i8],
    ch: Channels<'a>,
    output: &'a mut [i8],
    scratch: Scratch<'a>,
}

/// Output pixels per panel kernel call.
const MR: usize = 4;

impl Job for ConvJob<'_> {
    type Output = Result<()>;

    #[inline(always)]
    fn run<K: Kernels>(self, k: K) -> Result<()> {
        match k.panels() {
            Some(p) => self.on_panels(k, p),
            None => self.on_rows(k),
        }
    }
}

impl ConvJob<'_> {
    /// The convolution on packed panels with panel kernel `pk`.
    #[inline(always)]
    fn on_panels<K: Kernels, P: PanelKernels>(self, k: K, pk: P) -> Result<()> {
        let ConvJob {
            g,
            input,
            weights,
            ch,
            output,
            scratch,
        } = self;
        let oob = KernelError::Shape("conv index out of range");
        let (len, per_group, pixels) = (g.patch_len(), g.per_group(), g.pixels());
        let panel_len = g.panel_len();
        let group_len = per_group.div_ceil(8) * panel_len;
        let gather = Patches::new(g);
        let patches = scratch.i16.get_mut(..MR * len).ok_or(oob)?;
        for p in patches.chunks_exact_mut(len.max(1)) {
            // The odd last value of a patch stays zero.
            p[g.depth()..].fill(0);
        }
        for group in 0..g.groups {
            let oc0 = group * per_group;
            let panels = weights
                .get(group * group_len..(group + 1) * group_len)
                .ok_or(oob)?;
            let ch = ch.group(group, per_group).ok_or(oob)?;
            let (mut px, mut at) = (0, (0, 0, 0));
            while px < pixels {
                let mr = (pixels - px).min(MR);
                for p in patches.chunks_exact_mut(len.max(1)).take(mr) {
                    gather.gather(k, input, at, group, p)?;
                    at = g.next(at);
                }
                let out = output
                    .get_mut(px * g.out_c + oc0..(px + mr) * g.out_c)
                    .ok_or(oob)?;
                // Blocks of 16 output channels (two panels), then 8.
                let mut c = 0;
                while c < per_group {
                    let nb = if per_group - c > 8 { 2 } else { 1 };
                    let hi = (c + 8 * nb).min(per_group);
                    let w = panels
                        .get(c / 8 * panel_len..(c / 8 + nb) * panel_len)
                        .ok_or(oob)?;
                    let (ch, out) = (ch.get(c..hi).ok_or(oob)?, out.get_mut(c..).ok_or(oob)?);
                    let (p, s) = (&*patches, g.out_c);
                    match (mr, nb) {
                        (4, 2) => pk.gemm::<4, 2>(p, len, w, ch, out, s),
                        (4, _) => pk.gemm::<4, 1>(p, len, w, ch, out, s),
                        (3, 2) => pk.gemm::<3, 2>(p, len, w, ch, out, s),
                        (3, _) => pk.gemm::<3, 1>(p, len, w, ch, out, s),
                        (2, 2) => pk.gemm::<2, 2>(p, len, w, ch, out, s),
                        (2, _) => pk.gemm::<2, 1>(p, len, w, ch, out, s),
                        (_, 2) => pk.gemm::<1, 2>(p, len, w, ch, out, s),
                        _ => pk.gemm::<1, 1>(p, len, w, ch, out, s),
                    }
                    c = hi;
                }
                px += mr;
            }
        }
        Ok(())
    }

    /// The convolution on weight rows (padded to [`ROW_ALIGN`] values).
    #[inline(always)]
    fn on_rows<K: Kernels>(self, k: K) -> Result<()> {
        let ConvJob {
            g,
            input,
            weights,
            ch,
            output,
            scratch,
        } = self;
        let oob = KernelError::Shape("conv index out of range");
        let (stride, per_group, pixels) = (aligned(g.depth()), g.per_group(), g.pixels());
        let gather = Patches::new(g);
        let (p0, p1) = two(scratch.i16, stride)?;
        let (a0, a1) = two(scratch.i32, per_group)?;
        // The patches' padding to the row stride stays zero.
        p0[g.depth()..].fill(0);
        p1[g.depth()..].fill(0);
        for group in 0..g.groups {
            let oc0 = group * per_group;
            let rows = weights
                .get(oc0 * stride..(oc0 + per_group) * stride)
                .ok_or(oob)?;
            let ch = ch.group(group, per_group).ok_or(oob)?;
            let out_at = |px: usize| px * g.out_c + oc0..px * g.out_c + oc0 + per_group;
            let mut patches = PatchRows {
                gather: &gather,
                input,
                at: (0, 0, 0),
                group,
            };
            rows_by_two(
                k,
                pixels,
                (rows, stride),
                ch,
                (&mut *p0, &mut *p1),
                (&mut *a0, &mut *a1),
                &mut patches,
                (&mut *output, out_at),
            )?;
        }
        Ok(())
    }
}

/// Checks the prepared operands of a patch convolution and runs it.
#[allow(clippy::too_many_arguments)]
fn run_conv(
    isa: Isa,
    g: &Geometry,
    clamp: Clamp,
    input: &[i8],
    weights: &[i8],
    channel_data: &[i32],
    output: &mut [i8],
    scratch: Scratch<'_>,
) -> Result<()> {
    g.check_io(input, output)?;
    if weights.len() != g.weights_len(isa) {
        return Err(KernelError::Shape("packed weights length"));
    }
    let ch = channels(channel_data, (g.groups, g.per_group()), clamp)?;
    if output.is_empty() {
        return Ok(());
    }
    let job = ConvJob {
        g,
        input,
        weights,
        ch,
        output,
        scratch,
    };
    dispatch(isa, job)?
}

/// The prepare-time layout and the eval of a layer with weights ([`ConvPlan`],
/// [`DepthwisePlan`], [`FcPlan`]).
pub trait WeightPlan {
    /// Length of the weights packed for level `isa` (the layout depends on the level); 0 when
    /// eval uses the filter as it is in the model.
    fn packed_len(&self, isa: Isa) -> usize;

    /// Lays out `filter` (the model's layout) in `packed` ([`Self::packed_len`] values) for
    /// level `isa`.
    fn pack(&self, isa: Isa, filter: &[i8], packed: &mut [i8]) -> Result<()>;

    /// Length of the per-channel data.
    fn channels_len(&self) -> usize;

    /// Computes the per-channel data ([`Self::channels_len`] values in `out`) from the
    /// model's `filter`, `bias` and the output `multipliers` (one per output channel, or one
    /// for all): the bias with the zero-point terms folded in, and the split multipliers.
    fn prepare_channels(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        multipliers: &[QuantizedMultiplier],
        out: &mut [i32],
    ) -> Result<()>;

    /// Scratch memory of [`Self::eval`] at level `isa`.
    fn scratch_len(&self, isa: Isa) -> ScratchLen;

    /// Eval at level `isa` (an error if this CPU cannot run it), bit-exact with the reference
    /// kernel. `weights` is the copy packed for `isa`, or the filter itself when
    /// [`Self::packed_len`] is 0; `channel_data` comes from [`Self::prepare_channels`].
    fn eval(
        &self,
        isa: Isa,
        input: &[i8],
        weights: &[i8],
        channel_data: &[i32],
        output: &mut [i8],
        scratch: Scratch<'_>,
    ) -> Result<()>;
}

/// A CONV_2D prepared for [`WeightPlan::eval`] (bit-exact with [`crate::conv::conv2d_i8`]).
#[derive(Debug, Clone, Copy)]
pub struct ConvPlan {
    g: Geometry,
    clamp: Clamp,
}

impl ConvPlan {
    /// Validates a CONV_2D (as [`ConvParams::check`]) and plans it.
    pub fn new(
        p: &ConvParams,
        shapes: &ConvShapes,
        bias_len: Option<usize>,
        multipliers_len: usize,
    ) -> Result<Self> {
        p.check(shapes, bias_len, multipliers_len)?;
        let [batches, in_h, in_w, in_c] = shapes.input;
        let [out_c, f_h, f_w, f_c] = shapes.filter;
        let [_, out_h, out_w, _] = shapes.output;
        Ok(ConvPlan {
            g: Geometry {
                batches,
                in_h,
                in_w,
                in_c,
                out_h,
                out_w,
                out_c,
                f_h,
                f_w,
                f_c,
                groups: in_c / f_c,
                stride: [p.stride_height, p.stride_width],
                dilation: [p.dilation_height, p.dilation_width],
                pad: [p.pad_height, p.pad_width],
                input_zero_point: p.input_zero_point,
            }
            .check()?,
            clamp: Clamp {
                zero_point: p.output_zero_point,
                min: p.act_min,
                max: p.act_max,
            },
        })
    }
}

impl WeightPlan for ConvPlan {
    fn packed_len(&self, isa: Isa) -> usize {
        if !isa.panels() && self.g.depth().is_multiple_of(ROW_ALIGN) {
            0
        } else {
            self.g.weights_len(isa)
        }
    }

    fn pack(&self, isa: Isa, filter: &[i8], packed: &mut [i8]) -> Result<()> {
        let k = self.g.depth();
        if Some(filter.len()) != self.g.out_c.checked_mul(k) {
            return Err(KernelError::Shape("filter length does not match its shape"));
        }
        self.g.pack(isa, packed, |oc, i| filter[oc * k + i])
    }

    fn channels_len(&self) -> usize {
        channels_len(self.g.groups, self.g.per_group())
    }

    fn prepare_channels(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        multipliers: &[QuantizedMultiplier],
        out: &mut [i32],
    ) -> Result<()> {
        let (n, k) = (self.g.out_c, self.g.depth());
        if Some(filter.len()) != n.checked_mul(k) {
            return Err(KernelError::Shape("filter length does not match its shape"));
        }
        let sum = |c: usize| row_sum(&filter[c * k..(c + 1) * k]);
        let groups = (self.g.groups, self.g.per_group());
        fill_channels(
            out,
            groups,
            bias,
            multipliers,
            -self.g.input_zero_point,
            0,
            sum,
        )
    }

    fn scratch_len(&self, isa: Isa) -> ScratchLen {
        self.g.conv_scratch(isa)
    }

    fn eval(
        &self,
        isa: Isa,
        input: &[i8],
        weights: &[i8],
        channel_data: &[i32],
        output: &mut [i8],
        scratch: Scratch<'_>,
    ) -> Result<()> {
        scratch.check(self.scratch_len(isa))?;
        run_conv(
            isa,
            &self.g,
            self.clamp,
            input,
            weights,
            channel_data,
            output,
            scratch,
        )
    }
}

/// How a depthwise convolution is computed.
#[derive(Debug, Clone, Copy)]
enum DepthwiseKind {
    /// One input channel: a patch convolution (the filter transposed).
    Rows,
    /// Channels vectorized, taps in pairs.
    Channels {
        /// Depth multiplier.
        multiplier: usize,
    },
}

/// A DEPTHWISE_CONV_2D prepared for [`WeightPlan::eval`] (bit-exact with
/// [`crate::conv::depthwise_conv2d_i8`]).
#[derive(Debug, Clone, Copy)]
pub struct DepthwisePlan {
    g: Geometry,
    kind: DepthwiseKind,
    clamp: Clamp,
}

impl DepthwisePlan {
    /// Validates a DEPTHWISE_CONV_2D (as [`DepthwiseParams::check`]) and plans it.
    pub fn new(
        p: &DepthwiseParams,
        shapes: &ConvShapes,
        bias_len: Option<usize>,
        multipliers_len: usize,
    ) -> Result<Self> {
        p.check(shapes, bias_len, multipliers_len)?;
        let [batches, in_h, in_w, in_c] = shapes.input;
        let [_, f_h, f_w, out_c] = shapes.filter;
        let [_, out_h, out_w, _] = shapes.output;
        let kind = if in_c == 1 {
            DepthwiseKind::Rows
        } else {
            DepthwiseKind::Channels {
                multiplier: p.depth_multiplier,
            }
        };
        Ok(DepthwisePlan {
            g: Geometry {
                batches,
                in_h,
                in_w,
                in_c,
                out_h,
                out_w,
                out_c,
                f_h,
                f_w,
                f_c: 1,
                groups: 1,
                stride: [p.stride_height, p.stride_width],
                dilation: [p.dilation_height, p.dilation_width],
                pad: [p.pad_height, p.pad_width],
                input_zero_point: p.input_zero_point,
            }
            .check()?,
            kind,
            clamp: Clamp {
                zero_point: p.output_zero_point,
                min: p.act_min,
                max: p.act_max,
            },
        })
    }

    /// Filter taps `kh * kw`.
    fn taps(&self) -> usize {
        self.g.f_h.saturating_mul(self.g.f_w)
    }
}

impl WeightPlan for DepthwisePlan {
    fn packed_len(&self, isa: Isa) -> usize {
        match self.kind {
            DepthwiseKind::Rows => self.g.weights_len(isa),
            DepthwiseKind::Channels { .. } => {
                aligned_pairs(self.taps()).saturating_mul(self.g.out_c)
            }
        }
    }

    fn pack(&self, isa: Isa, filter: &[i8], packed: &mut [i8]) -> Result<()> {
        let (n, taps) = (self.g.out_c, self.taps());
        if Some(filter.len()) != n.checked_mul(taps) || packed.len() != self.packed_len(isa) {
            return Err(KernelError::Shape("filter or packed weights length"));
        }
        match self.kind {
            // The transposed filter: output channel c, tap t.
            DepthwiseKind::Rows => self.g.pack(isa, packed, |c, t| filter[t * n + c]),
            DepthwiseKind::Channels { .. } => {
                packed.fill(0);
                for (t, w) in filter.chunks_exact(n.max(1)).enumerate() {
                    let pair = &mut packed[(t / 2) * 2 * n..(t / 2 + 1) * 2 * n];
                    for (c, &w) in w.iter().enumerate() {
                        pair[2 * c + t % 2] = w;
                    }
                }
                Ok(())
            }
        }
    }

    fn channels_len(&self) -> usize {
        channels_len(1, self.g.out_c)
    }

    fn prepare_channels(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        multipliers: &[QuantizedMultiplier],
        out: &mut [i32],
    ) -> Result<()> {
        let n = self.g.out_c;
        if Some(filter.len()) != n.checked_mul(self.taps()) {
            return Err(KernelError::Shape("filter length does not match its shape"));
        }
        let sum = |c: usize| {
            filter
                .iter()
                .skip(c)
                .step_by(n)
                .fold(0i32, |a, &w| a.wrapping_add(i32::from(w)))
        };
        fill_channels(
            out,
            (1, n),
            bias,
            multipliers,
            -self.g.input_zero_point,
            0,
            sum,
        )
    }

    fn scratch_len(&self, isa: Isa) -> ScratchLen {
        match self.kind {
            DepthwiseKind::Rows => self.g.conv_scratch(isa),
            DepthwiseKind::Channels { .. } => {
                let (i8, usize) = depthwise_scratch(&self.g);
                ScratchLen {
                    i8,
                    usize,
                    ..ScratchLen::default()
                }
            }
        }
    }

    fn eval(
        &self,
        isa: Isa,
        input: &[i8],
        weights: &[i8],
        channel_data: &[i32],
        output: &mut [i8],
        scratch: Scratch<'_>,
    ) -> Result<()> {
        scratch.check(self.scratch_len(isa))?;
        let g = &self.g;
        match self.kind {
            DepthwiseKind::Rows => run_conv(
                isa,
                g,
                self.clamp,
                input,
                weights,
                channel_data,
                output,
                scratch,
            ),
            DepthwiseKind::Channels { multiplier } => {
                g.check_io(input, output)?;
                if weights.len() != self.packed_len(isa) {
                    return Err(KernelError::Shape("packed weights length"));
                }
                let ch = channels(channel_data, (1, g.out_c), self.clamp)?;
                if output.is_empty() {
                    return Ok(());
                }
                let job = DepthwiseJob {
                    g,
                    multiplier,
                    input,
                    weights,
                    ch,
                    output,
                    scratch,
                };
                dispatch(isa, job)?
            }
        }
    }
}

/// Taps rounded up to an even number (tap pairs times two).
fn aligned_pairs(taps: usize) -> usize {
    taps.saturating_add(1) / 2 * 2
}

/// A depthwise convolution with vectorized channels, one output row per inner kernel call.
/// The input rows under the filter are copied into padded rows (zero points around them, each
/// input value repeated `depth multiplier` times), so that every tap reads one contiguous run
/// per output row; the input serves directly where no padding or repetition is needed.
struct DepthwiseJob<'a> {
    g: &'a Geometry,
    multiplier: usize,
    input: &'a [i8],
    weights: &'a [i8],
    ch: Channels<'a>,
    output: &'a mut [i8],
    scratch: Scratch<'a>,
}

/// Width in pixels of a padded input row: the left padding, the input and every column a tap
/// reads.
fn padded_width(g: &Geometry) -> usize {
    let last_tap = g.f_w.saturating_sub(1).saturating_mul(g.dilation[1]);
    let reach = g.out_w.saturating_sub(1).saturating_mul(g.stride[1]);
    g.in_w
        .saturating_add(g.pad[1])
        .max(reach.saturating_add(last_tap).saturating_add(1))
}

/// Scratch of the depthwise job, `(i8, usize)` elements: the padded rows under the filter,
/// and the tap offsets in the padded rows and in the input (the taps, plus one to pair an odd
/// last tap).
fn depthwise_scratch(g: &Geometry) -> (usize, usize) {
    let row = padded_width(g).saturating_mul(g.out_c);
    let taps = g.f_h.saturating_mul(g.f_w).saturating_add(1);
    (row.saturating_mul(g.f_h), taps.saturating_mul(2))
}

/// Fills `offsets` with the offset of each tap `(fy, fx)` (row-major, an odd last tap repeated)
/// in rows `row_stride` apart whose columns are `col_step` apart; returns the filled part.
fn tap_offsets<'o>(
    g: &Geometry,
    row_stride: usize,
    col_step: usize,
    offsets: &'o mut [usize],
) -> &'o [usize] {
    let taps = g.f_h * g.f_w;
    let mut n = 0;
    for fy in 0..g.f_h {
        for fx in 0..g.f_w {
            offsets[n] = fy * row_stride + fx * col_step;
            n += 1;
        }
    }
    if taps % 2 == 1 {
        offsets[n] = offsets[n - 1];
        n += 1;
    }
    &offsets[..n]
}

impl Job for DepthwiseJob<'_> {
    type Output = Result<()>;

    #[inline(always)]
    fn run<K: Kernels>(self, k: K) -> Result<()> {
        let oob = KernelError::Shape("depthwise index out of range");
        let DepthwiseJob {
            g,
            multiplier: dm,
            input,
            weights,
            ch,
            output,
            scratch,
        } = self;
        let (c, in_c, zp) = (g.out_c, g.in_c, g.input_zero_point as i8);
        let (rows_len, taps_len) = depthwise_scratch(g);
        let rows = scratch.i8.get_mut(..rows_len).ok_or(oob)?;
        let (padded_taps, input_taps) = two(scratch.usize, taps_len / 2)?;
        let width = padded_width(g) * c;
        let col_step = g.dilation[1] * c;
        let padded_taps = tap_offsets(g, width, col_step, padded_taps);
        // The input serves directly when no padding or repetition is needed.
        let direct = dm == 1 && g.pad[1] == 0 && padded_width(g) <= g.in_w;
        let input_taps = tap_offsets(g, g.dilation[0] * g.in_w * c, col_step, input_taps);
        let (step, row_out) = (g.stride[1] * c, g.out_w * c);
        for (r, out) in output.chunks_exact_mut(row_out.max(1)).enumerate() {
            let (b, oy) = (r / g.out_h, r % g.out_h);
            let oy0 = origin(oy, g.stride[0], g.pad[0]);
            let (fy_lo, fy_hi) = valid_taps(oy0, g.dilation[0], g.f_h, g.in_h);
            let input_row = |fy: usize| {
                (b * g.in_h + (oy0 + (g.dilation[0] * fy) as i64) as usize) * g.in_w * in_c
            };
            if direct && fy_lo == 0 && fy_hi == g.f_h {
                let base = input.get(input_row(0)..).ok_or(oob)?;
                k.depthwise(base, input_taps, step, weights, ch, out);
                continue;
            }
            for (fy, row) in rows.chunks_exact_mut(width.max(1)).enumerate() {
                if !(fy_lo..fy_hi).contains(&fy) {
                    row.fill(zp);
                    continue;
                }
                let start = input_row(fy);
                let x = input.get(start..start + g.in_w * in_c).ok_or(oob)?;
                let (left, rest) = row.split_at_mut(g.pad[1] * c);
                let (mid, right) = rest.split_at_mut(g.in_w * c);
                left.fill(zp);
                right.fill(zp);
                if dm == 1 {
                    mid.copy_from_slice(x);
                } else {
                    for (d, &x) in mid.chunks_exact_mut(dm).zip(x) {
                        d.fill(x);
                    }
                }
            }
            k.depthwise(rows, padded_taps, step, weights, ch, out);
        }
        Ok(())
    }
}

/// A FULLY_CONNECTED prepared for [`WeightPlan::eval`] (bit-exact with
/// [`crate::fully_connected::fully_connected_i8`]).
#[derive(Debug, Clone, Copy)]
pub struct FcPlan {
    p: FullyConnectedParams,
    filter_offset: i32,
    clamp: Clamp,
}

impl FcPlan {
    /// Validates a FULLY_CONNECTED (as [`FullyConnectedParams::check`], on the lengths its
    /// parameters imply) and plans it.
    pub fn new(
        p: &FullyConnectedParams,
        quant: FcQuantization<'_>,
        bias_len: Option<usize>,
    ) -> Result<Self> {
        let per_channel_len = match quant {
            FcQuantization::PerChannel(m) => Some(m.len()),
            FcQuantization::PerTensor { .. } => None,
        };
        let len = |a: usize, b: usize| a.checked_mul(b).ok_or(KernelError::Shape("size overflow"));
        p.check(
            len(p.batches, p.accum_depth)?,
            len(p.output_depth, p.accum_depth)?,
            bias_len,
            per_channel_len,
            len(p.batches, p.output_depth)?,
        )?;
        Ok(FcPlan {
            p: *p,
            filter_offset: quant.filter_zero_point().wrapping_neg(),
            clamp: Clamp {
                zero_point: p.output_zero_point,
                min: p.act_min,
                max: p.act_max,
            },
        })
    }
}

impl WeightPlan for FcPlan {
    fn packed_len(&self, _: Isa) -> usize {
        if self.p.accum_depth.is_multiple_of(ROW_ALIGN) {
            0
        } else {
            self.p
                .output_depth
                .saturating_mul(aligned(self.p.accum_depth))
        }
    }

    fn pack(&self, _: Isa, filter: &[i8], packed: &mut [i8]) -> Result<()> {
        let (n, k) = (self.p.output_depth, self.p.accum_depth);
        if Some(filter.len()) != n.checked_mul(k) {
            return Err(KernelError::Shape("filter length does not match its shape"));
        }
        pack_rows(n, k, packed, |r, i| filter[r * k + i])
    }

    fn channels_len(&self) -> usize {
        channels_len(1, self.p.output_depth)
    }

    fn prepare_channels(
        &self,
        filter: &[i8],
        bias: Option<&[i32]>,
        multipliers: &[QuantizedMultiplier],
        out: &mut [i32],
    ) -> Result<()> {
        let (n, k) = (self.p.output_depth, self.p.accum_depth);
        if Some(filter.len()) != n.checked_mul(k) {
            return Err(KernelError::Shape("filter length does not match its shape"));
        }
        let input_offset = self.p.input_zero_point.wrapping_neg();
        // n * io * fo, with n taken modulo 2^32 (the ring makes that exact).
        let constant = (k as u32 as i32)
            .wrapping_mul(input_offset)
            .wrapping_mul(self.filter_offset);
        let sum = |c: usize| row_sum(&filter[c * k..(c + 1) * k]);
        fill_channels(out, (1, n), bias, multipliers, input_offset, constant, sum)
    }

    fn scratch_len(&self, _: Isa) -> ScratchLen {
        ScratchLen {
            i16: 2 * aligned(self.p.accum_depth),
            i32: 2 * self.p.output_depth,
            ..ScratchLen::default()
        }
    }

    fn eval(
        &self,
        isa: Isa,
        input: &[i8],
        weights: &[i8],
        channel_data: &[i32],
        output: &mut [i8],
        scratch: Scratch<'_>,
    ) -> Result<()> {
        scratch.check(self.scratch_len(isa))?;
        let p = &self.p;
        if input.len() != p.batches * p.accum_depth || output.len() != p.batches * p.output_depth {
            return Err(KernelError::Shape("input or output length"));
        }
        if weights.len() != p.output_depth * aligned(p.accum_depth) {
            return Err(KernelError::Shape("packed weights length"));
        }
        let ch = channels(channel_data, (1, p.output_depth), self.clamp)?;
        if p.accum_depth == 0 || p.output_depth == 0 {
            // The reference writes nothing in these degenerate cases.
            return Ok(());
        }
        let job = FcJob {
            plan: self,
            input,
            weights,
            ch,
            output,
            scratch,
        };
        dispatch(isa, job)?
    }
}

/// A fully connected layer, up to two input rows at a time.
struct FcJob<'a> {
    plan: &'a FcPlan,
    input: &'a [i8],
    weights: &'a [i8],
    ch: Channels<'a>,
    output: &'a mut [i8],
    scratch: Scratch<'a>,
}

/// The input rows of a fully connected layer, from row `b` on.
struct FcRows<'a> {
    plan: &'a FcPlan,
    input: &'a [i8],
    b: usize,
}

impl RowSource for FcRows<'_> {
    /// Widens input row `b` into the start of `dst` and returns its row offset
    /// `filter_offset * sum x`.
    #[inline(always)]
    fn next_row<K: Kernels>(&mut self, k: K, dst: &mut [i16]) -> Result<i32> {
        let (depth, b) = (self.plan.p.accum_depth, self.b);
        self.b += 1;
        let oob = KernelError::Shape("fully connected index out of range");
        let x = self.input.get(b * depth..(b + 1) * depth).ok_or(oob)?;
        k.widen(dst.get_mut(..depth).ok_or(oob)?, x);
        Ok(if self.plan.filter_offset == 0 {
            0
        } else {
            self.plan.filter_offset.wrapping_mul(row_sum(x))
        })
    }
}

impl Job for FcJob<'_> {
    type Output = Result<()>;

    #[inline(always)]
    fn run<K: Kernels>(self, k: K) -> Result<()> {
        let FcJob {
            plan,
            input,
            weights,
            ch,
            output,
            scratch,
        } = self;
        let (n, stride) = (plan.p.output_depth, aligned(plan.p.accum_depth));
        let (p0, p1) = two(scratch.i16, stride)?;
        let (a0, a1) = two(scratch.i32, n)?;
        // The rows' padding to the stride stays zero.
        p0[plan.p.accum_depth..].fill(0);
        p1[plan.p.accum_depth..].fill(0);
        let mut source = FcRows { plan, input, b: 0 };
        rows_by_two(
            k,
            plan.p.batches,
            (weights, stride),
            ch,
            (p0, p1),
            (a0, a1),
            &mut source,
            (output, |b| b * n..(b + 1) * n),
        )
    }
}

/// Scratch elements (`i32`) of [`average_pool_i8`] and [`max_pool_i8`]: one per channel.
pub fn pool_scratch_len(input_shape: [usize; 4]) -> usize {
    input_shape[3]
}

/// A pooling layer, channels vectorized.
struct PoolJob<'a> {
    p: &'a PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &'a [i8],
    output: &'a mut [i8],
    acc: &'a mut [i32],
    average: bool,
}

impl Job for PoolJob<'_> {
    type Output = Result<()>;

    #[inline(always)]
    fn run<K: Kernels>(self, _: K) -> Result<()> {
        let PoolJob {
            p,
            input_shape,
            output_shape,
            input,
            output,
            acc,
            average,
        } = self;
        let oob = KernelError::Shape("pool index out of range");
        let [batches, in_h, in_w, depth] = input_shape;
        let [_, out_h, out_w, _] = output_shape;
        let acc = acc.get_mut(..depth).ok_or(oob)?;
        let mut out = output.chunks_exact_mut(depth.max(1));
        for b in 0..batches {
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let (ys, ye, xs, xe) = p.window(oy, ox, in_h, in_w);
                    let count = (ye - ys) * (xe - xs);
                    if average && count == 0 {
                        return Err(KernelError::Shape(
                            "pooling window does not overlap the input",
                        ));
                    }
                    acc.fill(if average { 0 } else { i32::from(i8::MIN) });
                    for y in (ys..ye).filter(|_| count > 0) {
                        let start = ((b * in_h + y) * in_w + xs) * depth;
                        let rows = input.get(start..start + (xe - xs) * depth).ok_or(oob)?;
                        for row in rows.chunks_exact(depth.max(1)) {
                            for (a, &x) in acc.iter_mut().zip(row) {
                                *a = if average {
                                    a.wrapping_add(i32::from(x))
                                } else {
                                    (*a).max(i32::from(x))
                                };
                            }
                        }
                    }
                    let Some(o) = out.next() else {
                        return Ok(());
                    };
                    let count = count as i32;
                    for (o, &a) in o.iter_mut().zip(acc.iter()) {
                        let v = if !average {
                            a
                        } else if a > 0 {
                            a.wrapping_add(count / 2) / count
                        } else {
                            a.wrapping_sub(count / 2) / count
                        };
                        *o = v.clamp(p.act_min, p.act_max) as i8;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks and runs a pooling layer.
fn pool(
    isa: Isa,
    p: &PoolParams,
    shapes: ([usize; 4], [usize; 4]),
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i32],
    average: bool,
) -> Result<()> {
    let (input_shape, output_shape) = shapes;
    p.check(input_shape, output_shape)?;
    if input.len() != count4(input_shape) || output.len() != count4(output_shape) {
        return Err(KernelError::Shape(
            "pool slice length does not match its shape",
        ));
    }
    let job = PoolJob {
        p,
        input_shape,
        output_shape,
        input,
        output,
        acc: scratch,
        average,
    };
    dispatch(isa, job)?
}

/// AVERAGE_POOL_2D int8 eval, bit-exact with [`crate::pooling::average_pool`] (same errors).
/// `scratch` holds at least [`pool_scratch_len`] elements.
pub fn average_pool_i8(
    isa: Isa,
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i32],
) -> Result<()> {
    let shapes = (input_shape, output_shape);
    pool(isa, p, shapes, input, output, scratch, true)
}

/// MAX_POOL_2D int8 eval, bit-exact with [`crate::pooling::max_pool`]. `scratch` holds at
/// least [`pool_scratch_len`] elements.
pub fn max_pool_i8(
    isa: Isa,
    p: &PoolParams,
    input_shape: [usize; 4],
    output_shape: [usize; 4],
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i32],
) -> Result<()> {
    let shapes = (input_shape, output_shape);
    pool(isa, p, shapes, input, output, scratch, false)
}

/// A same-shape quantized ADD.
struct AddJob<'a> {
    p: &'a AddParams,
    a: &'a [i8],
    b: &'a [i8],
    output: &'a mut [i8],
}

impl Job for AddJob<'_> {
    type Output = ();

    #[inline(always)]
    fn run<K: Kernels>(self, k: K) {
        k.add_i8(self.p, self.a, self.b, self.output);
    }
}

/// Quantized int8 ADD of two tensors of the same shape, bit-exact with
/// [`crate::elementwise::add_quantized`]. All three slices must have the same length.
pub fn add_i8(isa: Isa, p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<()> {
    if a.len() != output.len() || b.len() != output.len() {
        return Err(KernelError::Shape(
            "slice lengths do not match the broadcast shapes",
        ));
    }
    dispatch(isa, AddJob { p, a, b, output })
}
