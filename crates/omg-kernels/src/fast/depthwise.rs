//! DEPTHWISE_CONV_2D: channels vectorized, taps in pairs (a patch convolution when the input
//! has one channel).

use super::conv::run_conv;
use super::geometry::{Geometry, Window};
use super::rows::two;
use super::{
    Isa, Scratch, ScratchLen, WeightPlan, channels_len, check_filter, fill_channels, origin,
    valid_taps,
};
use crate::conv::{ConvShapes, DepthwiseParams};
use crate::quant::QuantizedMultiplier;
use crate::simd::{Channels, Clamp, Job, Kernels, dispatch};
use crate::{KernelError, Result};

/// How a depthwise convolution is computed.
#[derive(Debug, Clone, Copy)]
pub(super) enum DepthwiseKind {
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
        let [_, _, _, in_c] = shapes.input;
        let [_, _, _, out_c] = shapes.filter;
        let kind = if in_c == 1 {
            DepthwiseKind::Rows
        } else {
            DepthwiseKind::Channels {
                multiplier: p.depth_multiplier,
            }
        };
        let window = Window {
            stride: [p.stride_height, p.stride_width],
            dilation: [p.dilation_height, p.dilation_width],
            pad: [p.pad_height, p.pad_width],
            input_zero_point: p.input_zero_point,
        };
        Ok(DepthwisePlan {
            g: Geometry::new(shapes, (out_c, 1, 1), window)?,
            kind,
            clamp: Clamp {
                zero_point: p.output_zero_point,
                min: p.act_min,
                max: p.act_max,
            },
        })
    }

    /// Filter taps `kh * kw`.
    pub(super) fn taps(&self) -> usize {
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
        check_filter(filter, n, self.taps())?;
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
                let io = (input, &*output);
                let w = (weights, self.packed_len(isa));
                let Some(ch) = g.operands(io, w, channel_data, self.clamp)? else {
                    return Ok(());
                };
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
pub(super) fn aligned_pairs(taps: usize) -> usize {
    taps.saturating_add(1) / 2 * 2
}

/// A depthwise convolution with vectorized channels, one output row per inner kernel call.
/// The input rows under the filter are copied into padded rows (zero points around them, each
/// input value repeated `depth multiplier` times), so that every tap reads one contiguous run
/// per output row; the input serves directly where no padding or repetition is needed.
pub(super) struct DepthwiseJob<'a> {
    g: &'a Geometry,
    multiplier: usize,
    input: &'a [i8],
    weights: &'a [i8],
    ch: Channels<'a>,
    output: &'a mut [i8],
    scratch: Scratch<'a>,
}

/// Scratch of the depthwise job, `(i8, usize)` elements: the padded rows under the filter,
/// and the tap offsets in the padded rows and in the input (the taps, plus one to pair an odd
/// last tap).
pub(super) fn depthwise_scratch(g: &Geometry) -> (usize, usize) {
    let row = g.padded_extent(1).saturating_mul(g.out_c);
    let taps = g.f_h.saturating_mul(g.f_w).saturating_add(1);
    (row.saturating_mul(g.f_h), taps.saturating_mul(2))
}

/// Fills `offsets` with the offset of each tap `(fy, fx)` (row-major, an odd last tap repeated)
/// in rows `row_stride` apart whose columns are `col_step` apart; returns the filled part.
pub(super) fn tap_offsets<'o>(
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
        let width = g.padded_extent(1) * c;
        let col_step = g.dilation[1] * c;
        let padded_taps = tap_offsets(g, width, col_step, padded_taps);
        // The input serves directly when no padding or repetition is needed.
        let direct = dm == 1 && g.pad[1] == 0 && g.padded_extent(1) <= g.in_w;
        let input_taps = tap_offsets(g, g.dilation[0] * g.in_w * c, col_step, input_taps);
        let (step, row_out) = (g.stride[1] * c, g.out_w * c);
        // The filter rows inside the input for output row `oy`, and all of them (no vertical
        // padding).
        let rows_in = |oy: usize| {
            let oy0 = origin(oy, g.stride[0], g.pad[0]);
            valid_taps(oy0, g.dilation[0], g.f_h, g.in_h)
        };
        let all = (0, g.f_h);
        let total = output.len() / row_out.max(1);
        let mut r = 0;
        while r < total {
            let (b, oy) = (r / g.out_h, r % g.out_h);
            let oy0 = origin(oy, g.stride[0], g.pad[0]);
            let (fy_lo, fy_hi) = rows_in(oy);
            let input_row = |fy: usize| {
                (b * g.in_h + (oy0 + (g.dilation[0] * fy) as i64) as usize) * g.in_w * in_c
            };
            if direct && (fy_lo, fy_hi) == all {
                // Rows one pixel wide: the next rows of the batch with all taps inside too,
                // as the pixels of one call (their inputs `stride * in_w * c` apart), so that
                // the kernel's work per call is spread over them.
                let mut end = r + 1;
                while g.out_w == 1
                    && end < total
                    && end / g.out_h == b
                    && rows_in(end % g.out_h) == all
                {
                    end += 1;
                }
                let step = if end > r + 1 {
                    g.stride[0] * g.in_w * c
                } else {
                    step
                };
                let base = input.get(input_row(0)..).ok_or(oob)?;
                let out = output.get_mut(r * row_out..end * row_out).ok_or(oob)?;
                k.depthwise(base, input_taps, step, weights, ch, out);
                r = end;
                continue;
            }
            let out = output.get_mut(r * row_out..(r + 1) * row_out).ok_or(oob)?;
            r += 1;
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
