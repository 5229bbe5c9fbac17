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

use crate::conv::{ConvParams, ConvShapes, DepthwiseParams, check_lengths};
use crate::fully_connected::{FcQuantization, FullyConnectedParams};
use crate::quant::{OutputStage, QuantizedMultiplier};
use crate::{KernelError, Result};

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

/// `sum a[i] * w[i]` over the common prefix, wrapping `i32` accumulation (LLVM vectorises
/// this reduction; the integer adds may be reassociated freely).
#[inline]
fn dot<T: Copy + Into<i32>>(a: &[T], w: &[i8]) -> i32 {
    a.iter().zip(w).fold(0i32, |acc, (&x, &w)| {
        acc.wrapping_add(x.into() * i32::from(w))
    })
}

/// Four dot products of `a` with `w[0..4]` (each at least as long as `a`), sharing the loads
/// of `a`.
#[inline]
fn dot4<T: Copy + Into<i32>>(a: &[T], w: [&[i8]; 4]) -> [i32; 4] {
    let n = a.len();
    let (Some(w0), Some(w1), Some(w2), Some(w3)) =
        (w[0].get(..n), w[1].get(..n), w[2].get(..n), w[3].get(..n))
    else {
        return [0; 4];
    };
    let mut acc = [0i32; 4];
    for i in 0..n {
        let x: i32 = a[i].into();
        acc[0] = acc[0].wrapping_add(x * i32::from(w0[i]));
        acc[1] = acc[1].wrapping_add(x * i32::from(w1[i]));
        acc[2] = acc[2].wrapping_add(x * i32::from(w2[i]));
        acc[3] = acc[3].wrapping_add(x * i32::from(w3[i]));
    }
    acc
}

/// Calls `store(i, dot(a, rows[i]))` for every `k`-long row of `rows` (blocks of four rows
/// share the loads of `a`). Errors if `rows` is shorter than `count * k`.
#[inline]
fn dot_rows<T: Copy + Into<i32>>(
    a: &[T],
    rows: &[i8],
    k: usize,
    count: usize,
    mut store: impl FnMut(usize, i32),
    oob: KernelError,
) -> Result<()> {
    let mut i = 0;
    while i + 4 <= count {
        let w = rows.get(i * k..(i + 4) * k).ok_or(oob)?;
        let (w01, w23) = w.split_at(2 * k);
        let (w0, w1) = w01.split_at(k);
        let (w2, w3) = w23.split_at(k);
        for (j, acc) in dot4(a, [w0, w1, w2, w3]).into_iter().enumerate() {
            store(i + j, acc);
        }
        i += 4;
    }
    while i < count {
        store(i, dot(a, rows.get(i * k..(i + 1) * k).ok_or(oob)?));
        i += 1;
    }
    Ok(())
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
    check_lengths(shapes, input, filter, bias, multipliers, output, out_c)?;
    let k = conv_scratch_len(shapes);
    let patch = scratch
        .get_mut(..k)
        .ok_or(KernelError::Shape("conv scratch too short"))?;
    if output.is_empty() {
        return Ok(());
    }
    let out = OutputStage::new(p.output_zero_point, p.act_min, p.act_max);
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
                        let (head, rest) = row.split_at_mut_checked(fx_lo * f_c).ok_or(oob)?;
                        let (mid, tail) = rest
                            .split_at_mut_checked((fx_hi - fx_lo) * f_c)
                            .ok_or(oob)?;
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
                    let outs = out_px.get_mut(oc0..oc0 + filters_per_group).ok_or(oob)?;
                    let store = |i: usize, acc: i32| {
                        let oc = oc0 + i;
                        let qm = multipliers.get(oc).copied().unwrap_or_default();
                        if let Some(o) = outs.get_mut(i) {
                            *o = out.with_bias(acc, bias, oc, qm);
                        }
                    };
                    dot_rows(patch, rows, k, filters_per_group, store, oob)?;
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
    check_lengths(shapes, input, filter, bias, multipliers, output, out_c)?;
    let acc = scratch
        .get_mut(..depthwise_scratch_len(shapes))
        .ok_or(KernelError::Shape("depthwise scratch too short"))?;
    if output.is_empty() {
        return Ok(());
    }
    let out = OutputStage::new(p.output_zero_point, p.act_min, p.act_max);
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
                let taps = Taps {
                    y0: (oy0 + (p.dilation_height * fy_lo) as i128).max(0) as usize,
                    ny: fy_hi - fy_lo,
                    x0: (ox0 + (p.dilation_width * fx_lo) as i128).max(0) as usize,
                    nx: fx_hi - fx_lo,
                    fy_lo,
                    fx_lo,
                    dil_h: p.dilation_height,
                    dil_w: p.dilation_width,
                    img_row: b * in_h,
                    in_w,
                    f_w,
                    in_c,
                    out_c,
                };
                // Channel blocks with a compile-time depth multiplier, then the rest.
                let done = match dm {
                    1 => dw_blocks::<1, 16>(acc, &taps, input, filter, bias, zp)?,
                    2 => dw_blocks::<2, 16>(acc, &taps, input, filter, bias, zp)?,
                    4 => dw_blocks::<4, 16>(acc, &taps, input, filter, bias, zp)?,
                    8 => dw_blocks::<8, 8>(acc, &taps, input, filter, bias, zp)?,
                    _ => 0,
                };
                let rest = acc.get_mut(done..).ok_or(oob)?;
                match bias {
                    Some(bias) => rest.copy_from_slice(bias.get(done..out_c).ok_or(oob)?),
                    None => rest.fill(0),
                }
                let ic_done = done / dm;
                let rest_taps = if done < out_c { taps.ny } else { 0 };
                for ty in 0..rest_taps {
                    for tx in 0..taps.nx {
                        let (x_off, w_off) = taps.offsets(ty, tx);
                        let xs = input.get(x_off + ic_done..x_off + in_c).ok_or(oob)?;
                        let ws = filter.get(w_off + done..w_off + out_c).ok_or(oob)?;
                        accumulate_tap(rest, xs, ws, dm, zp);
                    }
                }
                for (oc, (o, &a)) in out_px.iter_mut().zip(acc.iter()).enumerate() {
                    let qm = multipliers.get(oc).copied().unwrap_or_default();
                    *o = out.requantize(a, qm);
                }
            }
        }
    }
    Ok(())
}

/// The valid taps of one output pixel of a depthwise convolution.
struct Taps {
    /// First valid input row / column.
    y0: usize,
    x0: usize,
    /// Number of valid taps vertically / horizontally.
    ny: usize,
    nx: usize,
    /// Filter coordinates of the first valid tap.
    fy_lo: usize,
    fx_lo: usize,
    dil_h: usize,
    dil_w: usize,
    /// `batch * in_h`.
    img_row: usize,
    in_w: usize,
    f_w: usize,
    in_c: usize,
    out_c: usize,
}

impl Taps {
    /// Input and filter offsets (channel 0) of valid tap `(ty, tx)`.
    #[inline(always)]
    fn offsets(&self, ty: usize, tx: usize) -> (usize, usize) {
        let in_y = self.y0 + ty * self.dil_h;
        let in_x = self.x0 + tx * self.dil_w;
        let x_off = ((self.img_row + in_y) * self.in_w + in_x) * self.in_c;
        let w_off = ((self.fy_lo + ty) * self.f_w + self.fx_lo + tx) * self.out_c;
        (x_off, w_off)
    }
}

/// Accumulates the output channels `0..out_c / B * B` of one pixel in blocks of `B` register
/// accumulators (depth multiplier `DM`, `B` a multiple of `DM`) and stores them (bias
/// included) in `acc`. Returns the number of channels done.
#[inline(always)]
fn dw_blocks<const DM: usize, const B: usize>(
    acc: &mut [i32],
    t: &Taps,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    zp: i16,
) -> Result<usize> {
    let oob = KernelError::Shape("depthwise index out of range");
    let done = t.out_c / B * B;
    for c0 in (0..done).step_by(B) {
        let mut a = [0i32; B];
        if let Some(bias) = bias {
            a.copy_from_slice(bias.get(c0..c0 + B).ok_or(oob)?);
        }
        let ic0 = c0 / DM;
        for ty in 0..t.ny {
            for tx in 0..t.nx {
                let (x_off, w_off) = t.offsets(ty, tx);
                let xs = input.get(x_off + ic0..x_off + ic0 + B / DM).ok_or(oob)?;
                let ws: &[i8; B] = filter
                    .get(w_off + c0..w_off + c0 + B)
                    .and_then(|w| w.try_into().ok())
                    .ok_or(oob)?;
                let mut prod = [0i16; B];
                for (j, pr) in prod.iter_mut().enumerate() {
                    *pr = (i16::from(xs[j / DM]) - zp).wrapping_mul(i16::from(ws[j]));
                }
                for (a, &pr) in a.iter_mut().zip(&prod) {
                    *a = a.wrapping_add(i32::from(pr));
                }
            }
        }
        acc.get_mut(c0..c0 + B).ok_or(oob)?.copy_from_slice(&a);
    }
    Ok(done)
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
    p.check_eval(quant, input, filter, bias, output)?;
    if row_sums.len() != p.output_depth {
        return Err(KernelError::Shape(
            "one filter row sum per output channel is required",
        ));
    }
    let depth = p.accum_depth;
    let oob = KernelError::Shape("fully connected index out of range");
    if depth == 0 || p.output_depth == 0 {
        // The reference writes nothing in these degenerate cases.
        return Ok(());
    }
    let input_offset = p.input_zero_point.wrapping_neg();
    let filter_offset = quant.filter_zero_point().wrapping_neg();
    let out = OutputStage::new(p.output_zero_point, p.act_min, p.act_max);
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
        let store = |oc: usize, dot: i32| {
            let w_sum = row_sums.get(oc).copied().unwrap_or(0);
            let acc = dot
                .wrapping_add(input_offset.wrapping_mul(w_sum))
                .wrapping_add(row_constant);
            if let Some(o) = out_row.get_mut(oc) {
                *o = out.with_bias(acc, bias, oc, quant.multiplier(oc));
            }
        };
        dot_rows(in_row, filter, depth, p.output_depth, store, oob)?;
    }
    Ok(())
}
