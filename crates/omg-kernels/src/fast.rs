//! Fast scalar int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels.
//!
//! These functions take the same parameter structs as the reference kernels in
//! [`crate::conv`] and [`crate::fully_connected`] and produce **exactly the same output bytes**
//! (the reference kernels are the oracle; property tests in `tests/fast_equivalence.rs` compare
//! them on thousands of random cases). They use no `unsafe`, no intrinsics and no target
//! features: the inner loops are written as contiguous element-wise multiply-adds and
//! dot products that LLVM auto-vectorises for the baseline target. An explicit-SIMD variant can
//! sit beside this module with the same signatures.
//!
//! Why the results are identical:
//!
//! * all accumulation is in `i32` with wrapping adds, which form a ring, so the order of the
//!   terms (and folding the bias in first, or splitting `w * (x + io)` into
//!   `w * x + io * w`) does not change the result modulo 2^32 — the reference also wraps;
//! * padded taps are either skipped (depthwise) or contribute a `0` (conv patches hold
//!   `x - input_zero_point` and `0` at padded taps), exactly like TFLM's skipped taps;
//! * every product `(x - zp) * w` with int8 `x`, `zp`, `w` lies in `[-32640, 32640]`, so it is
//!   exact in `i16`, which lets LLVM use 16-bit multiplies (`pmullw` / `pmaddwd`);
//! * the requantization is the reference's `multiply_by_quantized_multiplier`, then the output
//!   zero point and the activation clamp.
//!
//! Eval never allocates: conv and depthwise take caller-provided scratch memory whose size is
//! given by [`conv_scratch_len`] / [`depthwise_scratch_len`] (computed once at prepare time);
//! the fully connected kernel takes per-row filter sums from [`fc_row_sums`] (also prepare
//! time). Validation follows the reference kernels (same checks, same errors, in the same
//! order); a too-short scratch or a wrong number of row sums is a [`KernelError::Shape`].

use crate::conv::{ConvParams, ConvShapes, DepthwiseParams};
use crate::fully_connected::{FcQuantization, FullyConnectedParams};
use crate::quant::{QuantizedMultiplier, multiply_by_quantized_multiplier};
use crate::shape::count4;
use crate::{KernelError, Result};

/// Same length checks (and messages) as the private helper of [`crate::conv`].
fn check_lengths(
    shapes: &ConvShapes,
    input: usize,
    filter: usize,
    bias: Option<usize>,
    quant: usize,
    output: usize,
    out_c: usize,
) -> Result<()> {
    if input != count4(shapes.input)
        || filter != count4(shapes.filter)
        || output != count4(shapes.output)
    {
        return Err(KernelError::Shape("slice length does not match its shape"));
    }
    if bias.is_some_and(|b| b != out_c) {
        return Err(KernelError::Shape("bias length must equal output channels"));
    }
    if quant != out_c {
        return Err(KernelError::Shape(
            "one quantized multiplier per output channel is required",
        ));
    }
    Ok(())
}

/// Range `lo..hi` of filter taps `f` in `0..f_len` whose input coordinate
/// `origin + dilation * f` lies in `0..in_len` (the valid taps form one interval).
#[inline]
fn valid_taps(origin: i128, dilation: usize, f_len: usize, in_len: usize) -> (usize, usize) {
    let d = dilation.max(1) as i128;
    let n = in_len as i128;
    let f = f_len as i128;
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

/// Top/left input coordinate of an output position: `o * stride - pad` (exact, in i128).
#[inline]
fn origin(o: usize, stride: usize, pad: usize) -> i128 {
    o as i128 * stride as i128 - pad as isize as i128
}

/// Reference requantization of one accumulator.
#[inline]
fn requantize(acc: i32, qm: QuantizedMultiplier, out_zp: i32, act_min: i32, act_max: i32) -> i8 {
    multiply_by_quantized_multiplier(acc, qm.multiplier, qm.shift)
        .wrapping_add(out_zp)
        .clamp(act_min, act_max) as i8
}

/// `sum a[i] * b[i]` over the common prefix, wrapping `i32` accumulation.
#[inline]
fn dot_i16_i8(a: &[i16], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |acc, (&x, &w)| acc.wrapping_add(i32::from(x) * i32::from(w)))
}

/// `sum a[i] * b[i]` over the common prefix, wrapping `i32` accumulation.
#[inline]
fn dot_i8_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .fold(0i32, |acc, (&x, &w)| acc.wrapping_add(i32::from(x) * i32::from(w)))
}

/// Scratch elements (`i16`) needed by [`conv2d_i8`]: one input patch of
/// `filter_height * filter_width * filter_depth` values (saturating on overflow).
pub fn conv_scratch_len(shapes: &ConvShapes) -> usize {
    let [_, f_h, f_w, f_c] = shapes.filter;
    f_h.saturating_mul(f_w).saturating_mul(f_c)
}

/// CONV_2D int8 per-channel eval, bit-exact with [`crate::conv::conv2d_i8`] (including
/// grouped convolution).
///
/// Per output pixel and group the input patch is gathered once into `scratch` as
/// `x - input_zero_point` (`0` at padded taps); each output channel is then one contiguous dot
/// product of the patch with its filter row. `scratch` must hold at least
/// [`conv_scratch_len`]`(shapes)` elements.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8(
    p: &ConvParams,
    shapes: &ConvShapes,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    multipliers: &[QuantizedMultiplier],
    output: &mut [i8],
    scratch: &mut [i16],
) -> Result<()> {
    p.check(shapes, bias.map(<[i32]>::len), multipliers.len())?;
    let [batches, in_h, in_w, in_c] = shapes.input;
    let [out_c, f_h, f_w, f_c] = shapes.filter;
    let [_, out_h, out_w, _] = shapes.output;
    check_lengths(
        shapes,
        input.len(),
        filter.len(),
        bias.map(<[i32]>::len),
        multipliers.len(),
        output.len(),
        out_c,
    )?;
    let k = conv_scratch_len(shapes);
    let patch = scratch
        .get_mut(..k)
        .ok_or(KernelError::Shape("conv scratch too short"))?;
    if output.is_empty() {
        return Ok(());
    }
    let groups = in_c / f_c;
    let filters_per_group = out_c / groups;
    // Validated to be in -128..=127 by `check`.
    let zp = p.input_zero_point as i16;
    let row_len = f_w * f_c;
    let oob = KernelError::Shape("conv index out of range");
    let mut out_chunks = output.chunks_exact_mut(out_c);
    for b in 0..batches {
        for oy in 0..out_h {
            let oy0 = origin(oy, p.stride_height, p.pad_height);
            let (fy_lo, fy_hi) = valid_taps(oy0, p.dilation_height, f_h, in_h);
            for ox in 0..out_w {
                let ox0 = origin(ox, p.stride_width, p.pad_width);
                let (fx_lo, fx_hi) = valid_taps(ox0, p.dilation_width, f_w, in_w);
                let out_px = out_chunks.next().ok_or(oob)?;
                // First valid input column (only used when fx_lo < fx_hi).
                let x_start = (ox0 + (p.dilation_width * fx_lo) as i128).max(0) as usize;
                for g in 0..groups {
                    // Gather the patch of group `g`.
                    for (fy, row) in patch.chunks_exact_mut(row_len.max(1)).enumerate() {
                        if fy < fy_lo || fy >= fy_hi || fx_lo >= fx_hi {
                            row.fill(0);
                            continue;
                        }
                        let in_y = (oy0 + (p.dilation_height * fy) as i128) as usize;
                        let (head, rest) = row.split_at_mut(fx_lo * f_c);
                        let (mid, tail) = rest.split_at_mut((fx_hi - fx_lo) * f_c);
                        head.fill(0);
                        tail.fill(0);
                        let row_base = (b * in_h + in_y) * in_w;
                        if p.dilation_width == 1 && groups == 1 {
                            // The valid taps of this row are contiguous in the input.
                            let start = (row_base + x_start) * in_c;
                            let src = input.get(start..start + mid.len()).ok_or(oob)?;
                            for (d, &s) in mid.iter_mut().zip(src) {
                                *d = i16::from(s) - zp;
                            }
                        } else {
                            for (t, dst) in mid.chunks_exact_mut(f_c).enumerate() {
                                let in_x = x_start + t * p.dilation_width;
                                let start = (row_base + in_x) * in_c + g * f_c;
                                let src = input.get(start..start + f_c).ok_or(oob)?;
                                for (d, &s) in dst.iter_mut().zip(src) {
                                    *d = i16::from(s) - zp;
                                }
                            }
                        }
                    }
                    // One dot product per output channel of the group.
                    let oc0 = g * filters_per_group;
                    let rows = filter
                        .get(oc0 * k..(oc0 + filters_per_group) * k)
                        .ok_or(oob)?;
                    let outs = out_px
                        .get_mut(oc0..oc0 + filters_per_group)
                        .ok_or(oob)?;
                    for (i, o) in outs.iter_mut().enumerate() {
                        let oc = oc0 + i;
                        let w_row = rows.get(i * k..(i + 1) * k).ok_or(oob)?;
                        let mut acc = dot_i16_i8(patch, w_row);
                        if let Some(bias) = bias {
                            acc = acc.wrapping_add(bias.get(oc).copied().unwrap_or(0));
                        }
                        let qm = multipliers.get(oc).copied().unwrap_or_default();
                        *o = requantize(acc, qm, p.output_zero_point, p.act_min, p.act_max);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Scratch elements (`i32`) needed by [`depthwise_conv2d_i8`]: one accumulator per output
/// channel (`filter[3]`).
pub fn depthwise_scratch_len(shapes: &ConvShapes) -> usize {
    shapes.filter[3]
}

/// DEPTHWISE_CONV_2D int8 per-channel eval, bit-exact with
/// [`crate::conv::depthwise_conv2d_i8`] (any depth multiplier, dilation, padding).
///
/// Per output pixel all output channels are accumulated at once in `scratch` (initialised
/// with the bias), looping over the valid taps only (the window is clipped once per pixel);
/// the inner loop runs over contiguous channels. `scratch` must hold at least
/// [`depthwise_scratch_len`]`(shapes)` elements.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_i8(
    p: &DepthwiseParams,
    shapes: &ConvShapes,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    multipliers: &[QuantizedMultiplier],
    output: &mut [i8],
    scratch: &mut [i32],
) -> Result<()> {
    p.check(shapes, bias.map(<[i32]>::len), multipliers.len())?;
    let [batches, in_h, in_w, in_c] = shapes.input;
    let [_, f_h, f_w, out_c] = shapes.filter;
    let [_, out_h, out_w, _] = shapes.output;
    check_lengths(
        shapes,
        input.len(),
        filter.len(),
        bias.map(<[i32]>::len),
        multipliers.len(),
        output.len(),
        out_c,
    )?;
    let acc = scratch
        .get_mut(..depthwise_scratch_len(shapes))
        .ok_or(KernelError::Shape("depthwise scratch too short"))?;
    if output.is_empty() {
        return Ok(());
    }
    let dm = p.depth_multiplier;
    let zp = p.input_zero_point as i16;
    let oob = KernelError::Shape("depthwise index out of range");
    let mut out_chunks = output.chunks_exact_mut(out_c);
    for b in 0..batches {
        for oy in 0..out_h {
            let oy0 = origin(oy, p.stride_height, p.pad_height);
            let (fy_lo, fy_hi) = valid_taps(oy0, p.dilation_height, f_h, in_h);
            for ox in 0..out_w {
                let ox0 = origin(ox, p.stride_width, p.pad_width);
                let (fx_lo, fx_hi) = valid_taps(ox0, p.dilation_width, f_w, in_w);
                let out_px = out_chunks.next().ok_or(oob)?;
                match bias {
                    Some(bias) => acc.copy_from_slice(bias.get(..out_c).ok_or(oob)?),
                    None => acc.fill(0),
                }
                for fy in fy_lo..fy_hi {
                    let in_y = (oy0 + (p.dilation_height * fy) as i128) as usize;
                    let row_base = (b * in_h + in_y) * in_w;
                    for fx in fx_lo..fx_hi {
                        let in_x = (ox0 + (p.dilation_width * fx) as i128) as usize;
                        let xs_start = (row_base + in_x) * in_c;
                        let ws_start = (fy * f_w + fx) * out_c;
                        let xs = input.get(xs_start..xs_start + in_c).ok_or(oob)?;
                        let ws = filter.get(ws_start..ws_start + out_c).ok_or(oob)?;
                        accumulate_tap(acc, xs, ws, dm, zp);
                    }
                }
                for (oc, (o, &a)) in out_px.iter_mut().zip(acc.iter()).enumerate() {
                    let qm = multipliers.get(oc).copied().unwrap_or_default();
                    *o = requantize(a, qm, p.output_zero_point, p.act_min, p.act_max);
                }
            }
        }
    }
    Ok(())
}

/// `acc[ic * dm + m] += (xs[ic] - zp) * ws[ic * dm + m]` (products exact in `i16`).
#[inline]
fn accumulate_tap(acc: &mut [i32], xs: &[i8], ws: &[i8], dm: usize, zp: i16) {
    if dm == 1 {
        for ((a, &x), &w) in acc.iter_mut().zip(xs).zip(ws) {
            *a = a.wrapping_add(i32::from((i16::from(x) - zp).wrapping_mul(i16::from(w))));
        }
    } else {
        for ((ac, &x), wc) in acc.chunks_exact_mut(dm).zip(xs).zip(ws.chunks_exact(dm)) {
            let xv = i16::from(x) - zp;
            for (a, &w) in ac.iter_mut().zip(wc) {
                *a = a.wrapping_add(i32::from(xv.wrapping_mul(i16::from(w))));
            }
        }
    }
}

/// Prepare-time helper for [`fully_connected_i8`]: `out[r] = sum(filter row r)` (wrapping)
/// for each `accum_depth`-long row of `filter` (`[output_depth, accum_depth]`). Entries of
/// `out` without a row (and all of them when `accum_depth == 0`) are set to 0.
pub fn fc_row_sums(filter: &[i8], accum_depth: usize, out: &mut [i32]) {
    out.fill(0);
    if accum_depth == 0 {
        return;
    }
    for (o, row) in out.iter_mut().zip(filter.chunks_exact(accum_depth)) {
        *o = row
            .iter()
            .fold(0i32, |acc, &w| acc.wrapping_add(i32::from(w)));
    }
}

/// FULLY_CONNECTED int8 eval, bit-exact with [`crate::fully_connected::fully_connected_i8`].
///
/// Uses `sum (w + fo)(x + io) = sum w*x + io*sum w + fo*sum x + n*io*fo` (wrapping), where
/// `io = -input_zero_point`, `fo = -filter_zero_point` (per-tensor only) and `sum w` is the
/// prepare-time `row_sums` from [`fc_row_sums`] (one per output channel), so the inner loop is
/// a pure int8 dot product.
pub fn fully_connected_i8(
    p: &FullyConnectedParams,
    quant: FcQuantization<'_>,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
    row_sums: &[i32],
) -> Result<()> {
    let per_channel_len = match quant {
        FcQuantization::PerChannel(m) => Some(m.len()),
        FcQuantization::PerTensor { .. } => None,
    };
    p.check(
        input.len(),
        filter.len(),
        bias.map(<[i32]>::len),
        per_channel_len,
        output.len(),
    )?;
    if row_sums.len() != p.output_depth {
        return Err(KernelError::Shape(
            "one filter row sum per output channel is required",
        ));
    }
    let depth = p.accum_depth;
    if depth == 0 || p.output_depth == 0 {
        // The reference writes nothing in these degenerate cases.
        return Ok(());
    }
    let input_offset = p.input_zero_point.wrapping_neg();
    let filter_offset = match quant {
        FcQuantization::PerTensor {
            filter_zero_point, ..
        } => filter_zero_point.wrapping_neg(),
        FcQuantization::PerChannel(_) => 0,
    };
    // n * io * fo, with n taken modulo 2^32 (the ring makes that exact).
    let constant = (depth as u32 as i32)
        .wrapping_mul(input_offset)
        .wrapping_mul(filter_offset);
    for (in_row, out_row) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(p.output_depth))
    {
        let mut row_constant = constant;
        if filter_offset != 0 {
            let sum_x = in_row
                .iter()
                .fold(0i32, |acc, &x| acc.wrapping_add(i32::from(x)));
            row_constant = row_constant.wrapping_add(filter_offset.wrapping_mul(sum_x));
        }
        for (oc, ((w_row, o), &w_sum)) in filter
            .chunks_exact(depth)
            .zip(out_row.iter_mut())
            .zip(row_sums)
            .enumerate()
        {
            let mut acc = dot_i8_i8(in_row, w_row)
                .wrapping_add(input_offset.wrapping_mul(w_sum))
                .wrapping_add(row_constant);
            if let Some(b) = bias.and_then(|b| b.get(oc)) {
                acc = acc.wrapping_add(*b);
            }
            let qm = match quant {
                FcQuantization::PerTensor { multiplier, .. } => multiplier,
                FcQuantization::PerChannel(m) => m.get(oc).copied().unwrap_or_default(),
            };
            *o = requantize(acc, qm, p.output_zero_point, p.act_min, p.act_max);
        }
    }
    Ok(())
}
