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
//!   point at padded taps). At levels with a panel kernel (x86-64) the weights are packed in
//!   panels of 8 output channels, interleaved in pairs of patch values (AVX2: `i16` patches)
//!   or quads (VNNI: `VPDPBUSD` on patches of `x + 128` as `u8`, each panel headed by the
//!   `-128 * sum w` that its accumulators start from), and the inner kernel takes each
//!   level's number of pixels (`PanelKernels::MR`: 4 at AVX2, 5 at the VNNI levels) times up to
//!   16 (AVX2, AVX-VNNI) or 32 (AVX-512 VNNI) channels, requantizing straight from its
//!   accumulators; at
//!   the portable level they stay rows (padded to a multiple of 16 values) and each output is a
//!   dot product that the compiler vectorizes.
//! * FULLY_CONNECTED: dot products of the widened input row with the int8 weight rows, eight
//!   rows at a time, on the model's own weights (copied, padded to a multiple of 16 values,
//!   only when a row is not). At the VNNI levels the rows are copied, padded to a multiple of
//!   32 values, after a header of each row's `-128 * sum w`; the input row is flipped to
//!   `x + 128` as `u8` once per row and each input vector feeds `VPDPBUSD` for eight weight
//!   rows; adding the header to the sums leaves `sum x w` (modulo 2^32, as the reference).
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

use crate::quant::QuantizedMultiplier;
use crate::simd::{
    BIAS, Block, Channels, Clamp, FIELDS, HALF, LEFT, MASK, MULTIPLIER, ODD_MULTIPLIER, RIGHT,
    ROUND, SHIFT, THRESHOLD, one_step,
};
use crate::{KernelError, Result};

pub use crate::simd::Isa;

mod add;
mod conv;
mod depthwise;
mod fully_connected;
mod geometry;
mod pool;
mod rows;

pub use add::add_i8;
pub use conv::ConvPlan;
pub use depthwise::DepthwisePlan;
pub use fully_connected::FcPlan;
pub use pool::{average_pool_i8, max_pool_i8, pool_scratch_len};

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
/// the sizes [`Geometry::check`](geometry::Geometry::check) accepts).
#[inline(always)]
fn origin(o: usize, stride: usize, pad: usize) -> i64 {
    o as i64 * stride as i64 - pad as i64
}

/// Checks that `filter` holds `rows` rows of `depth` values.
fn check_filter(filter: &[i8], rows: usize, depth: usize) -> Result<()> {
    if Some(filter.len()) != rows.checked_mul(depth) {
        return Err(KernelError::Shape("filter length does not match its shape"));
    }
    Ok(())
}

/// `sum row` (wrapping).
fn row_sum(row: &[i8]) -> i32 {
    row.iter().fold(0i32, |a, &w| a.wrapping_add(i32::from(w)))
}

/// Length of the prepared channel data of `groups` groups of `per_group` output channels: a
/// [`Block`] (`8 * FIELDS` values) per 8 channels of each group.
fn channels_len(groups: usize, per_group: usize) -> usize {
    blocks_len(groups, per_group).saturating_add(FLAGS)
}

/// The values of the [`Block`]s of `groups` groups of `per_group` channels.
fn blocks_len(groups: usize, per_group: usize) -> usize {
    groups
        .saturating_mul(per_group.div_ceil(8))
        .saturating_mul(8 * FIELDS)
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
        blocks: blocks.as_chunks::<8>().0.as_chunks::<FIELDS>().0,
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
    let blocks: &mut [Block] = blocks.as_chunks_mut::<8>().0.as_chunks_mut::<FIELDS>().0;
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
        // The 64-bit constants of the one-step form, in the 64-bit lane of the channel's pair.
        let (parity, at) = (lane % 2, lane / 2 * 2);
        if parity == 1 {
            block[ODD_MULTIPLIER][at] = qm.multiplier;
        }
        let (round, shift, threshold) = one_step(right);
        for (field, v) in [(ROUND, round), (SHIFT, shift), (THRESHOLD, threshold)] {
            // Low half, then high half (little-endian lanes).
            block[field[parity]][at] = v as i32;
            block[field[parity]][at + 1] = (v >> 32) as i32;
        }
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
