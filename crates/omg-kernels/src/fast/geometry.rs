//! The geometry of a convolution and the gathering of its patches.

use super::{Isa, ScratchLen, aligned, channels, origin, pack_rows, valid_taps};
use crate::conv::ConvShapes;
use crate::shape::count4;
use crate::simd::{Channels, Clamp, Kernels, MAX_MR, PatchValue};
use crate::{KernelError, Result};

/// Geometry of a convolution as the patch loops see it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Geometry {
    pub(super) batches: usize,
    pub(super) in_h: usize,
    pub(super) in_w: usize,
    pub(super) in_c: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
    pub(super) out_c: usize,
    pub(super) f_h: usize,
    pub(super) f_w: usize,
    /// Input channels per group (CONV_2D filter depth).
    pub(super) f_c: usize,
    pub(super) groups: usize,
    pub(super) stride: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) pad: [usize; 2],
    pub(super) input_zero_point: i32,
}

/// The window of a convolution: strides, dilations and leading padding (height, width), and
/// the input zero point (the value of padded taps).
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) stride: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) pad: [usize; 2],
    pub(super) input_zero_point: i32,
}

impl Geometry {
    /// The geometry of a convolution of `shapes` (filter height and width at indices 1 and 2)
    /// with `out_c` output channels, `f_c` input channels per group and `groups` groups;
    /// sizes above `i32::MAX` are refused (see [`Self::check`]).
    pub(super) fn new(
        shapes: &ConvShapes,
        (out_c, f_c, groups): (usize, usize, usize),
        w: Window,
    ) -> Result<Self> {
        let [batches, in_h, in_w, in_c] = shapes.input;
        let [_, f_h, f_w, _] = shapes.filter;
        let [_, out_h, out_w, _] = shapes.output;
        Geometry {
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
            groups,
            stride: w.stride,
            dilation: w.dilation,
            pad: w.pad,
            input_zero_point: w.input_zero_point,
        }
        .check()
    }

    /// Values per patch: `f_h * f_w * f_c`.
    pub(super) fn depth(&self) -> usize {
        self.f_h.saturating_mul(self.f_w).saturating_mul(self.f_c)
    }

    /// Output channels per group.
    pub(super) fn per_group(&self) -> usize {
        self.out_c / self.groups.max(1)
    }

    /// Patch values per group of weights in the panels of level `isa`: 4 for the quads of
    /// `VPDPBUSD` (8, two quads, for the 512-bit kernel), else 2.
    pub(super) fn group_len(isa: Isa) -> usize {
        match isa {
            Isa::Avx512Vnni => 8,
            _ if isa.quads() => 4,
            _ => 2,
        }
    }

    /// Bytes before the weights of each panel at level `isa` (see
    /// [`PanelKernels`](crate::simd::PanelKernels)): 8 `i32` corrections for quads, else none.
    pub(super) fn header_len(isa: Isa) -> usize {
        if isa.quads() { 32 } else { 0 }
    }

    /// Patch length at level `isa`: [`Self::depth`] rounded up to a multiple of
    /// [`Self::group_len`].
    pub(super) fn patch_len(&self, isa: Isa) -> usize {
        let group = Self::group_len(isa);
        self.depth().div_ceil(group).saturating_mul(group)
    }

    /// Length of one packed panel at level `isa` (8 output channels: the header, then all
    /// groups of patch values).
    pub(super) fn panel_len(&self, isa: Isa) -> usize {
        self.patch_len(isa)
            .saturating_mul(8)
            .saturating_add(Self::header_len(isa))
    }

    /// Length of the packed weights at level `isa`: every group's channels in panels of 8.
    pub(super) fn panels_len(&self, isa: Isa) -> usize {
        let panels = self.groups.saturating_mul(self.per_group().div_ceil(8));
        panels.saturating_mul(self.panel_len(isa))
    }

    /// Packs the weights (`weight(oc, k)` of output channel `oc`, patch value `k`) into
    /// `packed` ([`Self::panels_len`] values) for level `isa`: per group, panels of 8 output
    /// channels holding the header (quads: channel `c`'s `-128 * sum_k weight(c, k)`, wrapping,
    /// as a little-endian `i32` at bytes `4c..4c + 4`), then, for each group `j` of
    /// [`Self::group_len`] patch values, `[channel][group member]`; zeros for missing channels
    /// and the values past the depth.
    pub(super) fn pack_panels(
        &self,
        isa: Isa,
        packed: &mut [i8],
        weight: impl Fn(usize, usize) -> i8,
    ) -> Result<()> {
        if packed.len() != self.panels_len(isa) {
            return Err(KernelError::Shape("packed weights length"));
        }
        packed.fill(0);
        let (per_group, depth, panel_len) = (self.per_group(), self.depth(), self.panel_len(isa));
        let (group, header) = (Self::group_len(isa), Self::header_len(isa));
        let panels_per_group = per_group.div_ceil(8);
        for oc in 0..self.out_c {
            let (g, c) = (oc / per_group, oc % per_group);
            let panel = (g * panels_per_group + c / 8) * panel_len;
            let mut sum = 0i32;
            for k in 0..depth {
                let w = weight(oc, k);
                sum = sum.wrapping_add(i32::from(w));
                packed[panel + header + (k / group) * 8 * group + group * (c % 8) + k % group] = w;
            }
            if header > 0 {
                // Quads multiply `x + 128`: the accumulator starts at `-128 * sum w`.
                let correction = sum.wrapping_mul(-128).to_le_bytes();
                for (d, &b) in packed[panel + 4 * (c % 8)..][..4]
                    .iter_mut()
                    .zip(&correction)
                {
                    *d = b as i8;
                }
            }
        }
        Ok(())
    }

    /// Length of the weights at level `isa`: panels, or rows padded to [`ROW_ALIGN`](super::ROW_ALIGN) values.
    pub(super) fn weights_len(&self, isa: Isa) -> usize {
        if isa.panels() {
            self.panels_len(isa)
        } else {
            self.out_c.saturating_mul(aligned(self.depth()))
        }
    }

    /// Lays out the weights (`weight(oc, k)`) for level `isa` in `packed`.
    pub(super) fn pack(
        &self,
        isa: Isa,
        packed: &mut [i8],
        weight: impl Fn(usize, usize) -> i8,
    ) -> Result<()> {
        if isa.panels() {
            self.pack_panels(isa, packed, weight)
        } else {
            pack_rows(self.out_c, self.depth(), packed, weight)
        }
    }

    /// The padded image a convolution on panels reads its patches from in place (see
    /// `ConvJob::on_panels`), `[rows, cols]` pixels of `in_c` values per batch: every window
    /// inside it, the padding holding the zero point. `Some` for kernels taking patch values
    /// in groups of `group` when each row of taps is one run there (one group, no horizontal
    /// dilation) a whole number of groups long, and the filter has more than one tap (a 1x1
    /// filter's patch is one input pixel, copied as cheaply: measured no faster in place).
    pub(super) fn image(&self, group: usize) -> Option<[usize; 2]> {
        let run = self.f_w.saturating_mul(self.in_c);
        let one_tap = self.f_h == 1 && self.f_w == 1;
        if self.groups != 1 || self.dilation[1] != 1 || one_tap || !run.is_multiple_of(group) {
            return None;
        }
        Some([self.padded_extent(0), self.padded_extent(1)])
    }

    /// Rows (`axis` 0) or columns (1) of the input with its leading padding and every position
    /// a tap reads: the leading padding, the input, and whatever the last window reaches past
    /// it.
    pub(super) fn padded_extent(&self, axis: usize) -> usize {
        let [out, f, len] = [
            [self.out_h, self.f_h, self.in_h],
            [self.out_w, self.f_w, self.in_w],
        ][axis];
        let last_tap = f.saturating_sub(1).saturating_mul(self.dilation[axis]);
        let reach = out.saturating_sub(1).saturating_mul(self.stride[axis]);
        len.saturating_add(self.pad[axis])
            .max(reach.saturating_add(last_tap).saturating_add(1))
    }

    /// Scratch memory of a patch convolution at level `isa`: the patches, or the padded image
    /// (see [`Self::image`]).
    pub(super) fn conv_scratch(&self, isa: Isa) -> ScratchLen {
        let buffer = match self.image(Self::group_len(isa)) {
            Some([rows, cols]) => rows.saturating_mul(cols).saturating_mul(self.in_c),
            None => MAX_MR.saturating_mul(self.patch_len(isa)),
        };
        if isa.quads() {
            ScratchLen {
                i8: buffer,
                ..ScratchLen::default()
            }
        } else if isa.panels() {
            ScratchLen {
                i16: buffer,
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
    pub(super) fn pixels(&self) -> usize {
        self.batches
            .saturating_mul(self.out_h)
            .saturating_mul(self.out_w)
    }

    /// Rejects sizes above `i32::MAX`, so that the window arithmetic is exact in `i64`.
    pub(super) fn check(self) -> Result<Self> {
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

    /// Checks the operands of an eval (input, output, `weights` of `weights_len` values, the
    /// prepared `channel_data`) and views the channels with the output stage `clamp`; `None`
    /// when the output is empty (nothing to compute).
    pub(super) fn operands<'c>(
        &self,
        (input, output): (&[i8], &[i8]),
        (weights, weights_len): (&[i8], usize),
        channel_data: &'c [i32],
        clamp: Clamp,
    ) -> Result<Option<Channels<'c>>> {
        self.check_io(input, output)?;
        if weights.len() != weights_len {
            return Err(KernelError::Shape("packed weights length"));
        }
        let ch = channels(channel_data, (self.groups, self.per_group()), clamp)?;
        Ok((!output.is_empty()).then_some(ch))
    }

    /// Checks the input and output lengths.
    pub(super) fn check_io(&self, input: &[i8], output: &[i8]) -> Result<()> {
        let [b, h, w, c] = [self.batches, self.in_h, self.in_w, self.in_c];
        let [oh, ow, oc] = [self.out_h, self.out_w, self.out_c];
        if input.len() != count4([b, h, w, c]) || output.len() != count4([b, oh, ow, oc]) {
            return Err(KernelError::Shape("slice length does not match its shape"));
        }
        Ok(())
    }

    /// The output pixel after `(b, oy, ox)` in row-major order.
    #[inline(always)]
    pub(super) fn next(&self, (b, oy, ox): Pixel) -> Pixel {
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
    pub(super) fn window(&self, (_, oy, ox): Pixel) -> ([i64; 2], [(usize, usize); 2]) {
        let oy0 = origin(oy, self.stride[0], self.pad[0]);
        let ox0 = origin(ox, self.stride[1], self.pad[1]);
        let ty = valid_taps(oy0, self.dilation[0], self.f_h, self.in_h);
        let tx = valid_taps(ox0, self.dilation[1], self.f_w, self.in_w);
        ([oy0, ox0], [ty, tx])
    }
}

/// An output pixel `(batch, oy, ox)`.
pub(super) type Pixel = (usize, usize, usize);

/// Output positions `lo..hi` (of `out`) whose window of `f` taps (dilation `d`, stride
/// `stride`, leading padding `pad`) lies inside `0..len`.
pub(super) fn inner_range(
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
/// at padded taps), in filter order, as [`PatchValue`]s.
pub(super) struct Patches<'a> {
    pub(super) g: &'a Geometry,
    /// Values per patch.
    pub(super) depth: usize,
    /// Values per row of taps.
    pub(super) row_len: usize,
    /// Input offset between rows of taps.
    pub(super) row_step: usize,
    /// Output rows and columns whose windows lie inside the input, if the rows of taps are
    /// contiguous in the input (horizontal dilation 1, one group).
    pub(super) inner: Option<[(usize, usize); 2]>,
}

impl<'a> Patches<'a> {
    pub(super) fn new(g: &'a Geometry) -> Self {
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
    pub(super) fn gather<K: Kernels, T: PatchValue>(
        &self,
        k: K,
        input: &[i8],
        px: Pixel,
        group: usize,
        dst: &mut [T],
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
                T::load(k, row, input.get(start..start + self.row_len).ok_or(oob)?);
                start = start.wrapping_add(self.row_step);
            }
            return Ok(());
        }
        self.gather_border(k, input, px, group, patch)
    }

    /// [`Self::gather`] for a window that may cross the input's border.
    #[inline(always)]
    pub(super) fn gather_border<K: Kernels, T: PatchValue>(
        &self,
        k: K,
        input: &[i8],
        px: Pixel,
        group: usize,
        patch: &mut [T],
    ) -> Result<()> {
        let oob = KernelError::Shape("conv index out of range");
        let g = self.g;
        let zp = T::of(g.input_zero_point as i8);
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
                T::load(k, valid, input.get(start..start + valid.len()).ok_or(oob)?);
            } else {
                for (t, d) in valid.chunks_exact_mut(f_c).enumerate() {
                    let at = start + t * g.dilation[1] * in_c;
                    T::load(k, d, input.get(at..at + f_c).ok_or(oob)?);
                }
            }
            start = start.wrapping_add(self.row_step);
        }
        Ok(())
    }
}
