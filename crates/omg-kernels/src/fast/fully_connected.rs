//! FULLY_CONNECTED: dot products of the widened input rows with the weight rows.

use super::rows::{RowSource, rows_by_two, two};
use super::{
    Isa, ROW_ALIGN, Scratch, ScratchLen, WeightPlan, aligned, channels, channels_len, check_filter,
    fill_channels, pack_rows, row_sum,
};
use crate::fully_connected::{FcQuantization, FullyConnectedParams};
use crate::quant::QuantizedMultiplier;
use crate::simd::{Channels, Clamp, Job, Kernels, dispatch};
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
        check_filter(filter, n, k)?;
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
        check_filter(filter, n, k)?;
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
pub(super) struct FcJob<'a> {
    plan: &'a FcPlan,
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
