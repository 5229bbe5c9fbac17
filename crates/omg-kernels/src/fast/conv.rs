//! CONV_2D (and DEPTHWISE_CONV_2D with one input channel) through patches: on packed panels at
//! levels with a panel kernel, else on weight rows.

use super::geometry::{Geometry, Patches, Pixel, Window};
use super::rows::{RowSource, rows_by_two, two};
use super::{
    Isa, ROW_ALIGN, Scratch, ScratchLen, WeightPlan, aligned, channels_len, check_filter,
    fill_channels, row_sum,
};
use crate::conv::{ConvParams, ConvShapes};
use crate::quant::QuantizedMultiplier;
use crate::simd::{
    Channels, Clamp, Job, Kernels, MAX_MR, PanelKernels, PatchRuns, PatchValue, dispatch, panel_len,
};
use crate::{KernelError, Result};

/// The patches of one group of a convolution, pixel by pixel from `at` on.
pub(super) struct PatchRows<'a, 'g> {
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

/// A convolution through patches (CONV_2D, or DEPTHWISE_CONV_2D with one input channel): on
/// packed panels, four output pixels at a time, at levels with a panel kernel; else on weight
/// rows, two pixels at a time.
pub(super) struct ConvJob<'a> {
    g: &'a Geometry,
    input: &'a [i8],
    weights: &'a [i8],
    ch: Channels<'a>,
    output: &'a mut [i8],
    scratch: Scratch<'a>,
}

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
    /// The convolution on packed panels with panel kernel `pk`: the patches read in place from
    /// a padded copy of the input where [`Geometry::image`] allows, else copied `P::MR` at a time.
    #[inline(always)]
    pub(super) fn on_panels<K: Kernels, P: PanelKernels>(self, k: K, pk: P) -> Result<()> {
        let g = self.g;
        let oob = KernelError::Shape("conv index out of range");
        // The layout of `P` (the level's, see `Geometry::pack_panels`).
        let len = g.depth().div_ceil(P::GROUP) * P::GROUP;
        let panel_len = panel_len::<P>(len).ok_or(oob)?;
        match g.image(P::GROUP) {
            Some(dims) => self.in_place(k, pk, dims, panel_len),
            None => self.copied(k, pk, len, panel_len),
        }
    }

    /// [`Self::on_panels`] with the patches copied, `P::MR` at a time, `len` values each.
    #[inline(always)]
    fn copied<K: Kernels, P: PanelKernels>(
        self,
        k: K,
        pk: P,
        len: usize,
        panel_len: usize,
    ) -> Result<()> {
        let ConvJob {
            g,
            input,
            weights,
            ch,
            output,
            scratch,
        } = self;
        let oob = KernelError::Shape("conv index out of range");
        let (per_group, pixels) = (g.per_group(), g.pixels());
        let group_len = per_group.div_ceil(8) * panel_len;
        let gather = Patches::new(g);
        let patches = P::Patch::buffer(scratch.i8, scratch.i16);
        let patches = patches.get_mut(..P::MR * len).ok_or(oob)?;
        for p in patches.chunks_exact_mut(len.max(1)) {
            // The values past the depth stay zero (their weights are zero).
            p[g.depth()..].fill(P::Patch::default());
        }
        let starts: [usize; MAX_MR] = core::array::from_fn(|m| m * len);
        for group in 0..g.groups {
            let oc0 = group * per_group;
            let panels = weights
                .get(group * group_len..(group + 1) * group_len)
                .ok_or(oob)?;
            let ch = ch.group(group, per_group).ok_or(oob)?;
            let (mut px, mut at) = (0, (0, 0, 0));
            while px < pixels {
                let mr = (pixels - px).min(P::MR);
                for p in patches.chunks_exact_mut(len.max(1)).take(mr) {
                    gather.gather(k, input, at, group, p)?;
                    at = g.next(at);
                }
                let out = output
                    .get_mut(px * g.out_c + oc0..(px + mr) * g.out_c)
                    .ok_or(oob)?;
                let p = PatchRuns {
                    data: &*patches,
                    starts: &starts,
                    runs: 1,
                    run: len,
                    step: 0,
                };
                on_channels(pk, (p, mr), (panels, panel_len), ch, (out, g.out_c))?;
                px += mr;
            }
        }
        Ok(())
    }

    /// [`Self::on_panels`] with the patches read in place from the padded image of each batch
    /// (`[rows, cols]` pixels, see [`Geometry::image`]): one run of `f_w * in_c` values per
    /// row of taps, no copy per pixel.
    #[inline(always)]
    fn in_place<K: Kernels, P: PanelKernels>(
        self,
        k: K,
        pk: P,
        [rows, cols]: [usize; 2],
        panel_len: usize,
    ) -> Result<()> {
        let (g, input, output) = (self.g, self.input, self.output);
        let oob = KernelError::Shape("conv index out of range");
        let (c, row_len) = (g.in_c, cols * g.in_c);
        let image = P::Patch::buffer(self.scratch.i8, self.scratch.i16);
        let image = image.get_mut(..rows * row_len).ok_or(oob)?;
        let zp = P::Patch::of(g.input_zero_point as i8);
        let per_image = g.out_h * g.out_w;
        let mut starts = [0; MAX_MR];
        for b in 0..g.batches {
            for (y, row) in image.chunks_exact_mut(row_len.max(1)).enumerate() {
                let iy = y.wrapping_sub(g.pad[0]);
                if y < g.pad[0] || iy >= g.in_h {
                    row.fill(zp);
                    continue;
                }
                // `cols >= pad + in_w` (`Geometry::image`).
                let (left, rest) = row.split_at_mut(g.pad[1] * c);
                let (mid, right) = rest.split_at_mut(g.in_w * c);
                left.fill(zp);
                right.fill(zp);
                let at = (b * g.in_h + iy) * g.in_w * c;
                P::Patch::load(k, mid, input.get(at..at + g.in_w * c).ok_or(oob)?);
            }
            let (mut px, mut oy, mut ox) = (0, 0, 0);
            while px < per_image {
                let mr = (per_image - px).min(P::MR);
                for start in starts.iter_mut().take(mr) {
                    *start = oy * g.stride[0] * row_len + ox * g.stride[1] * c;
                    ox += 1;
                    if ox == g.out_w {
                        (oy, ox) = (oy + 1, 0);
                    }
                }
                let p = PatchRuns {
                    data: &*image,
                    starts: &starts,
                    runs: g.f_h,
                    run: g.f_w * c,
                    step: g.dilation[0] * row_len,
                };
                let at = (b * per_image + px) * g.out_c;
                let out = output.get_mut(at..at + mr * g.out_c).ok_or(oob)?;
                on_channels(
                    pk,
                    (p, mr),
                    (self.weights, panel_len),
                    self.ch,
                    (out, g.out_c),
                )?;
                px += mr;
            }
        }
        Ok(())
    }

    /// The convolution on weight rows (padded to [`ROW_ALIGN`] values).
    #[inline(always)]
    pub(super) fn on_rows<K: Kernels>(self, k: K) -> Result<()> {
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

/// Up to `P::MR` pixels (`mr`, their patches `p`) on the packed panels of the channels `ch`
/// (each `panel_len` bytes): the channels in calls of up to `P::MAX_NB` panels, as even as they
/// come (40 channels on 4 panels a call: 3 + 2, not 4 + 1); pixel `m`'s outputs at `out[m * s]`.
#[inline(always)]
fn on_channels<P: PanelKernels>(
    pk: P,
    (p, mr): (PatchRuns<'_, P::Patch>, usize),
    (panels, panel_len): (&[i8], usize),
    ch: Channels<'_>,
    (out, s): (&mut [i8], usize),
) -> Result<()> {
    let oob = KernelError::Shape("conv index out of range");
    let per_group = ch.len();
    let mut c = 0;
    while c < per_group {
        let left = (per_group - c).div_ceil(8);
        let nb = left.div_ceil(left.div_ceil(P::MAX_NB));
        let hi = (c + 8 * nb).min(per_group);
        let w = panels
            .get(c / 8 * panel_len..(c / 8 + nb) * panel_len)
            .ok_or(oob)?;
        let (ch, out) = (ch.get(c..hi).ok_or(oob)?, out.get_mut(c..).ok_or(oob)?);
        let call = (pk, p, w, ch, out, s);
        // Five pixels only where the kernel takes them (a constant: the other kernels' code
        // stays as small as before).
        match mr {
            5 if P::MR >= 5 => gemm_call::<P, 5>(nb, call),
            4 => gemm_call::<P, 4>(nb, call),
            3 => gemm_call::<P, 3>(nb, call),
            2 => gemm_call::<P, 2>(nb, call),
            _ => gemm_call::<P, 1>(nb, call),
        }
        c = hi;
    }
    Ok(())
}

/// The operands of one [`PanelKernels::gemm`] call: the kernel, the patches, the panels, the
/// channels, the output and its pixel stride.
type GemmCall<'a, P> = (
    P,
    PatchRuns<'a, <P as PanelKernels>::Patch>,
    &'a [i8],
    Channels<'a>,
    &'a mut [i8],
    usize,
);

/// One [`PanelKernels::gemm`] call of `MR` pixels on `nb` panels.
#[inline(always)]
fn gemm_call<P: PanelKernels, const MR: usize>(nb: usize, (pk, p, w, ch, out, s): GemmCall<'_, P>) {
    // Three to five panels only where the kernel takes them.
    match nb {
        5 if P::MAX_NB >= 5 => pk.gemm::<MR, 5>(p, w, ch, out, s),
        4 if P::MAX_NB >= 4 => pk.gemm::<MR, 4>(p, w, ch, out, s),
        3 if P::MAX_NB >= 3 => pk.gemm::<MR, 3>(p, w, ch, out, s),
        2 => pk.gemm::<MR, 2>(p, w, ch, out, s),
        _ => pk.gemm::<MR, 1>(p, w, ch, out, s),
    }
}

/// Checks the prepared operands of a patch convolution and runs it.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_conv(
    isa: Isa,
    g: &Geometry,
    clamp: Clamp,
    input: &[i8],
    weights: &[i8],
    channel_data: &[i32],
    output: &mut [i8],
    scratch: Scratch<'_>,
) -> Result<()> {
    let (io, w) = ((input, &*output), (weights, g.weights_len(isa)));
    let Some(ch) = g.operands(io, w, channel_data, clamp)? else {
        return Ok(());
    };
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
        let [_, _, _, in_c] = shapes.input;
        let [out_c, _, _, f_c] = shapes.filter;
        let window = Window {
            stride: [p.stride_height, p.stride_width],
            dilation: [p.dilation_height, p.dilation_width],
            pad: [p.pad_height, p.pad_width],
            input_zero_point: p.input_zero_point,
        };
        Ok(ConvPlan {
            g: Geometry::new(shapes, (out_c, f_c, in_c / f_c), window)?,
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
        check_filter(filter, self.g.out_c, k)?;
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
        check_filter(filter, n, k)?;
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
