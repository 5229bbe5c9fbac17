//! FULLY_CONNECTED: dot products of the input rows with the weight rows: widened to `i16` at
//! most levels; at the VNNI levels (quads, `VPDPBUSD`) the input row flipped to `x + 128` as
//! `u8` bits against weight rows padded to [`QUAD_ROW_ALIGN`] values, after a header of each
//! row's `-128 * sum w`, added to the row's sum (which leaves `sum x w` modulo 2^32).

use super::rows::{RowSource, rows_by_two, two};
use super::{
    Isa, ROW_ALIGN, Scratch, ScratchLen, WeightPlan, aligned, channels, channels_len, check_filter,
    fill_channels, pack_rows, row_sum,
};
use crate::fully_connected::{FcQuantization, FullyConnectedParams};
use crate::quant::QuantizedMultiplier;
use crate::simd::{Channels, Clamp, Job, Kernels, QUAD_ROW_ALIGN, dispatch};
use crate::{KernelError, Result};

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

/// Row length of the quad layout: `depth` rounded up to a multiple of [`QUAD_ROW_ALIGN`]
/// (saturating).
fn quad_stride(depth: usize) -> usize {
    depth.saturating_add(QUAD_ROW_ALIGN - 1) / QUAD_ROW_ALIGN * QUAD_ROW_ALIGN
}

impl FcPlan {
    /// Length of the weights in the quad layout: `4 * n` bytes of corrections, then `n` rows
    /// of [`quad_stride`] values.
    fn quads_len(&self) -> usize {
        let (n, k) = (self.p.output_depth, self.p.accum_depth);
        n.saturating_mul(quad_stride(k))
            .saturating_add(n.saturating_mul(4))
    }

    /// Length of the weights at level `isa` as eval takes them.
    fn weights_len(&self, isa: Isa) -> usize {
        if isa.quads() {
            self.quads_len()
        } else {
            let (n, k) = (self.p.output_depth, self.p.accum_depth);
            n.saturating_mul(aligned(k))
        }
    }
}

impl WeightPlan for FcPlan {
    fn packed_len(&self, isa: Isa) -> usize {
        if isa.quads() {
            self.quads_len()
        } else if self.p.accum_depth.is_multiple_of(ROW_ALIGN) {
            0
        } else {
            self.p
                .output_depth
                .saturating_mul(aligned(self.p.accum_depth))
        }
    }

    /// The quad layout (VNNI levels): row `r`'s `-128 * sum w` (wrapping) as a little-endian
    /// `i32` at bytes `4r..4r + 4`, then the rows padded with zeros to a multiple of 32
    /// values; elsewhere rows padded with zeros to a multiple of 16 values.
    fn pack(&self, isa: Isa, filter: &[i8], packed: &mut [i8]) -> Result<()> {
        let (n, k) = (self.p.output_depth, self.p.accum_depth);
        check_filter(filter, n, k)?;
        if !isa.quads() {
            return pack_rows(n, k, packed, |r, i| filter[r * k + i]);
        }
        if packed.len() != self.quads_len() {
            return Err(KernelError::Shape("packed weights length"));
        }
        let (corrections, rows) = packed.split_at_mut(4 * n);
        for (r, c) in corrections.as_chunks_mut::<4>().0.iter_mut().enumerate() {
            // The accumulator multiplies `x + 128`: it starts at `-128 * sum w`.
            let sum = row_sum(&filter[r * k..(r + 1) * k]).wrapping_mul(-128);
            *c = sum.to_le_bytes().map(|b| b as i8);
        }
        rows.fill(0);
        let stride = quad_stride(k);
        for (row, w) in rows
            .chunks_exact_mut(stride.max(1))
            .zip(filter.chunks_exact(k.max(1)))
        {
            row[..k].copy_from_slice(w);
        }
        Ok(())
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
        check_filter(filter, n, k)?;
        let input_offset = self.p.input_zero_point.wrapping_neg();
        // n * io * fo, with n taken modulo 2^32 (the ring makes that exact).
        let constant = (k as u32 as i32)
            .wrapping_mul(input_offset)
            .wrapping_mul(self.filter_offset);
        let sum = |c: usize| row_sum(&filter[c * k..(c + 1) * k]);
        fill_channels(out, (1, n), bias, multipliers, input_offset, constant, sum)
    }

    fn scratch_len(&self, isa: Isa) -> ScratchLen {
        if isa.quads() {
            return ScratchLen {
                i8: quad_stride(self.p.accum_depth),
                i32: self.p.output_depth,
                ..ScratchLen::default()
            };
        }
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
        if weights.len() != self.weights_len(isa) {
            return Err(KernelError::Shape("packed weights length"));
        }
        let ch = channels(channel_data, (1, p.output_depth), self.clamp)?;
        if p.accum_depth == 0 || p.output_depth == 0 {
            // The reference writes nothing in these degenerate cases.
            return Ok(());
        }
        let job = FcJob {
            plan: self,
            quads: isa.quads(),
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
pub(super) struct FcJob<'a> {
    plan: &'a FcPlan,
    /// Whether `weights` has the quad layout (see [`FcPlan::pack`]).
    quads: bool,
    input: &'a [i8],
    weights: &'a [i8],
    ch: Channels<'a>,
    output: &'a mut [i8],
    scratch: Scratch<'a>,
}

/// The input rows of a fully connected layer, from row `b` on.
pub(super) struct FcRows<'a> {
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
        if self.quads {
            return self.run_quads(k);
        }
        let FcJob {
            plan,
            quads: _,
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

impl FcJob<'_> {
    /// [`Job::run`] on the quad layout: per input row, the row flipped to `x + 128` into the
    /// scratch (its padding zero), [`Kernels::quad_rows`], then the requantization with the
    /// row's offset.
    #[inline(always)]
    fn run_quads<K: Kernels>(self, k: K) -> Result<()> {
        let FcJob {
            plan,
            quads: _,
            input,
            weights,
            ch,
            output,
            scratch,
        } = self;
        let oob = KernelError::Shape("fully connected index out of range");
        let (n, depth) = (plan.p.output_depth, plan.p.accum_depth);
        let stride = quad_stride(depth);
        let x = scratch.i8.get_mut(..stride).ok_or(oob)?;
        let acc = scratch.i32.get_mut(..n).ok_or(oob)?;
        let (corrections, rows) = weights.split_at_checked(4 * n).ok_or(oob)?;
        // The padding past the depth stays zero (its weights are zero too).
        x[depth..].fill(0);
        for b in 0..plan.p.batches {
            let row = input.get(b * depth..(b + 1) * depth).ok_or(oob)?;
            k.flip(&mut x[..depth], row);
            k.quad_rows(x, rows, stride, corrections, acc);
            let offset = if plan.filter_offset == 0 {
                0
            } else {
                plan.filter_offset.wrapping_mul(row_sum(row))
            };
            let out = output.get_mut(b * n..(b + 1) * n).ok_or(oob)?;
            k.requantize(acc, offset, ch, out);
        }
        Ok(())
    }
}
