//! CONV_2D and DEPTHWISE_CONV_2D, int8 with per-channel (or per-tensor) filter quantization.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use omg_kernels::QuantizedMultiplier;
use omg_kernels::conv::{self, ConvParams, ConvShapes, DepthwiseParams};
use omg_kernels::fast::{ConvPlan, DepthwisePlan, Isa, WeightPlan};
use omg_kernels::quant::{WindowGeometry, activation_range_i8, compute_padding_height_width};

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::memory::filled;
use crate::model::DType;
use crate::ops::{
    BoxedKernel, Kernel, OpCtx, Prepared, activation, kernel_err, padding, shape4, weights_i8,
};

/// Schema field ids of the options tables the convolutions read.
mod field {
    /// `Conv2DOptions`.
    pub mod conv_2d {
        /// `padding`.
        pub const PADDING: usize = 0;
        /// `stride_w`.
        pub const STRIDE_W: usize = 1;
        /// `stride_h`.
        pub const STRIDE_H: usize = 2;
        /// `fused_activation_function`.
        pub const ACTIVATION: usize = 3;
        /// `dilation_w_factor`.
        pub const DILATION_W: usize = 4;
        /// `dilation_h_factor`.
        pub const DILATION_H: usize = 5;
    }

    /// `DepthwiseConv2DOptions`.
    pub mod depthwise_conv_2d {
        /// `padding`.
        pub const PADDING: usize = 0;
        /// `stride_w`.
        pub const STRIDE_W: usize = 1;
        /// `stride_h`.
        pub const STRIDE_H: usize = 2;
        /// `depth_multiplier`.
        pub const DEPTH_MULTIPLIER: usize = 3;
        /// `fused_activation_function`.
        pub const ACTIVATION: usize = 4;
        /// `dilation_w_factor`.
        pub const DILATION_W: usize = 5;
        /// `dilation_h_factor`.
        pub const DILATION_H: usize = 6;
    }
}

/// What both convolutions share after prepare.
struct Common<'m> {
    input: Slot,
    output: Slot,
    filter: &'m [i8],
    bias: Option<Vec<i32>>,
    multipliers: Vec<QuantizedMultiplier>,
    shapes: ConvShapes,
    zero_points: (i32, i32),
    act: (i32, i32),
    geometry: WindowGeometry,
}

struct Window {
    padding: i8,
    stride: (i32, i32),
    dilation: (i32, i32),
    activation: i8,
}

fn positive(ctx: &OpCtx<'_, '_>, what: &str, v: i32) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| ctx.err(format!("{what} is {v}, must be at least 1")))
}

/// Checks tensors and options common to both convolutions. `channel_axis` is the filter's
/// output-channel dimension (0 for CONV_2D, 3 for DEPTHWISE_CONV_2D).
fn prepare_common<'m>(ctx: &OpCtx<'_, 'm>, w: Window, channel_axis: usize) -> Result<Common<'m>> {
    ctx.expect_arity(2, 3, 1)?;
    let (input, filter, output) = (ctx.input(0)?, ctx.input(1)?, ctx.output(0)?);
    ctx.expect_type("input", input, &[DType::I8])?;
    ctx.expect_type("filter", filter, &[DType::I8])?;
    ctx.expect_type("output", output, &[DType::I8])?;
    let (in_shape, f_shape, out_shape) = (
        shape4(ctx, "input", input)?,
        shape4(ctx, "filter", filter)?,
        shape4(ctx, "output", output)?,
    );
    let (in_scale, in_zp) = ctx.quant("input", input)?;
    let (out_scale, out_zp) = ctx.quant("output", output)?;
    let out_c = f_shape[channel_axis];
    let fq = filter
        .quant
        .as_ref()
        .ok_or_else(|| ctx.err("filter is not quantized"))?;
    if fq.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.err("filter zero points must be 0 (symmetric int8 weights)"));
    }
    if !fq.is_per_tensor() && fq.axis != channel_axis {
        return Err(ctx.err(format!(
            "filter is quantized along dimension {}, expected {channel_axis}",
            fq.axis
        )));
    }
    let mut multipliers = filled(
        out_c,
        QuantizedMultiplier::default(),
        "per-channel parameters",
    )?;
    conv::populate_conv_quantization(in_scale, &fq.scale, out_scale, &mut multipliers)
        .map_err(|e| kernel_err(ctx, e))?;
    let bias = match ctx.opt_input(2) {
        None => None,
        Some(b) => {
            ctx.expect_type("bias", b, &[DType::I32])?;
            if b.elements() != out_c {
                return Err(ctx.err(format!(
                    "bias has {} elements for {out_c} output channels",
                    b.elements()
                )));
            }
            Some(ctx.const_values::<i32>("bias", 2)?)
        }
    };
    let geometry = compute_padding_height_width(
        positive(ctx, "stride height", w.stride.0)?,
        positive(ctx, "stride width", w.stride.1)?,
        positive(ctx, "dilation height", w.dilation.0)?,
        positive(ctx, "dilation width", w.dilation.1)?,
        in_shape[1],
        in_shape[2],
        f_shape[1],
        f_shape[2],
        padding(ctx, w.padding)?,
    )
    .map_err(|e| kernel_err(ctx, e))?;
    if out_shape[1] != geometry.out_height || out_shape[2] != geometry.out_width {
        return Err(ctx.err(format!(
            "output shape {:?} does not match the computed {}x{}",
            output.shape, geometry.out_height, geometry.out_width
        )));
    }
    let act = activation_range_i8(activation(ctx, w.activation)?, out_scale, out_zp)
        .map_err(|e| kernel_err(ctx, e))?;
    Ok(Common {
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
        filter: weights_i8(ctx, 1)?,
        bias,
        multipliers,
        shapes: ConvShapes {
            input: in_shape,
            filter: f_shape,
            output: out_shape,
        },
        zero_points: (in_zp, out_zp),
        act,
        geometry,
    })
}

/// The builtin-options field ids a convolution reads (they differ between the two operators;
/// the options table is the one the operator's registry entry names).
struct WindowFields {
    padding: usize,
    stride_w: usize,
    stride_h: usize,
    activation: usize,
    dilation_w: usize,
    dilation_h: usize,
}

fn read_window(ctx: &OpCtx<'_, '_>, f: &WindowFields) -> Result<Window> {
    let o = ctx.options()?;
    Ok(Window {
        padding: o.get(f.padding, 0i8)?,
        stride: (o.get(f.stride_h, 0i32)?, o.get(f.stride_w, 0i32)?),
        dilation: (o.get(f.dilation_h, 1i32)?, o.get(f.dilation_w, 1i32)?),
        activation: o.get(f.activation, 0i8)?,
    })
}

impl<'m> Common<'m> {
    /// The kernel parameters shared by both convolutions.
    fn conv_params(&self, stride: (i32, i32), dilation: (i32, i32)) -> ConvParams {
        // Strides and dilations were checked to be positive in `prepare_common`.
        ConvParams {
            stride_height: stride.0 as usize,
            stride_width: stride.1 as usize,
            dilation_height: dilation.0 as usize,
            dilation_width: dilation.1 as usize,
            pad_height: self.geometry.padding.height,
            pad_width: self.geometry.padding.width,
            input_zero_point: self.zero_points.0,
            output_zero_point: self.zero_points.1,
            act_min: self.act.0,
            act_max: self.act.1,
        }
    }

    fn bias_len(&self) -> Option<usize> {
        self.bias.as_ref().map(Vec::len)
    }

    /// The optimized kernel of `plan` on these weights.
    fn prepared<'a, P: WeightPlan>(
        &self,
        ctx: &OpCtx<'a, 'm>,
        plan: P,
        isa: Isa,
    ) -> Result<Prepared<'m, P>> {
        let bias = self.bias.as_deref();
        Prepared::new(ctx, plan, isa, self.filter, bias, &self.multipliers)
    }

    /// The optimized kernel that `plan` plans (from the shapes, the bias length and the number
    /// of multipliers) when the interpreter runs optimized kernels; `None`: the reference kernel
    /// runs.
    fn fast<P: WeightPlan>(
        &self,
        ctx: &OpCtx<'_, 'm>,
        plan: impl FnOnce(&ConvShapes, Option<usize>, usize) -> omg_kernels::Result<P>,
    ) -> Result<Option<Prepared<'m, P>>> {
        let Some(isa) = ctx.isa() else {
            return Ok(None);
        };
        let plan = plan(&self.shapes, self.bias_len(), self.multipliers.len())
            .map_err(|e| kernel_err(ctx, e))?;
        self.prepared(ctx, plan, isa).map(Some)
    }

    /// Eval: the optimized kernel `fast` if there is one, else `reference` (input, filter, bias,
    /// multipliers, output).
    fn eval<P: WeightPlan>(
        &self,
        mem: &mut Memory<'_, '_>,
        fast: &mut Option<Prepared<'m, P>>,
        reference: impl FnOnce(
            &[i8],
            &[i8],
            Option<&[i32]>,
            &[QuantizedMultiplier],
            &mut [i8],
        ) -> omg_kernels::Result<()>,
    ) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let input = io.typed::<i8>(&self.input)?;
        let (bias, out) = (self.bias.as_deref(), io.out()?);
        match fast {
            Some(f) => f.eval(input, out)?,
            None => reference(input, self.filter, bias, &self.multipliers, out)?,
        }
        Ok(())
    }
}

struct Conv2d<'m> {
    c: Common<'m>,
    params: ConvParams,
    /// The optimized kernel; `None` runs the reference kernel.
    fast: Option<Prepared<'m, ConvPlan>>,
}

/// Prepares CONV_2D.
pub(crate) fn prepare_conv<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    use field::conv_2d as f;
    let fields = WindowFields {
        padding: f::PADDING,
        stride_w: f::STRIDE_W,
        stride_h: f::STRIDE_H,
        activation: f::ACTIVATION,
        dilation_w: f::DILATION_W,
        dilation_h: f::DILATION_H,
    };
    let w = read_window(ctx, &fields)?;
    let (stride, dilation) = (w.stride, w.dilation);
    let c = prepare_common(ctx, w, 0)?;
    let params = c.conv_params(stride, dilation);
    params
        .check(&c.shapes, c.bias_len(), c.multipliers.len())
        .map_err(|e| kernel_err(ctx, e))?;
    let fast = c.fast(ctx, |s, b, m| ConvPlan::new(&params, s, b, m))?;
    Ok(Box::new(Conv2d { c, params, fast }))
}

impl Kernel for Conv2d<'_> {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let (params, shapes) = (&self.params, &self.c.shapes);
        self.c
            .eval(mem, &mut self.fast, |input, filter, bias, m, out| {
                conv::conv2d_i8(params, shapes, input, filter, bias, m, out)
            })
    }
}

struct Depthwise<'m> {
    c: Common<'m>,
    params: DepthwiseParams,
    /// The optimized kernel; `None` runs the reference kernel.
    fast: Option<Prepared<'m, DepthwisePlan>>,
}

/// Prepares DEPTHWISE_CONV_2D (any depth multiplier).
pub(crate) fn prepare_depthwise<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    use field::depthwise_conv_2d as f;
    let fields = WindowFields {
        padding: f::PADDING,
        stride_w: f::STRIDE_W,
        stride_h: f::STRIDE_H,
        activation: f::ACTIVATION,
        dilation_w: f::DILATION_W,
        dilation_h: f::DILATION_H,
    };
    let w = read_window(ctx, &fields)?;
    let depth_multiplier = ctx.options()?.get(f::DEPTH_MULTIPLIER, 0i32)?;
    let (stride, dilation) = (w.stride, w.dilation);
    let c = prepare_common(ctx, w, 3)?;
    let (in_c, out_c) = (c.shapes.input[3], c.shapes.filter[3]);
    if in_c == 0 || out_c % in_c != 0 || usize::try_from(depth_multiplier) != Ok(out_c / in_c) {
        return Err(ctx.err(format!(
            "depth multiplier {depth_multiplier} does not turn {in_c} input channels into {out_c} output channels"
        )));
    }
    let base = c.conv_params(stride, dilation);
    let params = DepthwiseParams {
        stride_height: base.stride_height,
        stride_width: base.stride_width,
        dilation_height: base.dilation_height,
        dilation_width: base.dilation_width,
        pad_height: base.pad_height,
        pad_width: base.pad_width,
        depth_multiplier: out_c / in_c,
        input_zero_point: base.input_zero_point,
        output_zero_point: base.output_zero_point,
        act_min: base.act_min,
        act_max: base.act_max,
    };
    params
        .check(&c.shapes, c.bias_len(), c.multipliers.len())
        .map_err(|e| kernel_err(ctx, e))?;
    let fast = c.fast(ctx, |s, b, m| DepthwisePlan::new(&params, s, b, m))?;
    Ok(Box::new(Depthwise { c, params, fast }))
}

impl Kernel for Depthwise<'_> {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let (params, shapes) = (&self.params, &self.c.shapes);
        self.c
            .eval(mem, &mut self.fast, |input, filter, bias, m, out| {
                conv::depthwise_conv2d_i8(params, shapes, input, filter, bias, m, out)
            })
    }
}
