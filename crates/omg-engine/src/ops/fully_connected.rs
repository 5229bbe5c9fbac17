//! FULLY_CONNECTED, int8, per-tensor or per-channel filter quantization.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use omg_kernels::QuantizedMultiplier;
use omg_kernels::fast::FcPlan;
use omg_kernels::fully_connected::{self as fc, FcQuantization, FullyConnectedParams};
use omg_kernels::quant::activation_range_i8;

use crate::error::Result;
use crate::exec::{Memory, Slot};
use crate::memory::filled;
use crate::model::DType;
use crate::ops::{BoxedKernel, Kernel, OpCtx, Prepared, activation, kernel_err, weights_i8};

/// Schema field ids of the options table FULLY_CONNECTED reads.
mod field {
    /// `FullyConnectedOptions`.
    pub mod fully_connected {
        /// `fused_activation_function`.
        pub const ACTIVATION: usize = 0;
        /// `weights_format`.
        pub const WEIGHTS_FORMAT: usize = 1;
    }
}

enum Quant {
    PerTensor {
        multiplier: QuantizedMultiplier,
        filter_zero_point: i32,
    },
    PerChannel(Vec<QuantizedMultiplier>),
}

impl Quant {
    /// The kernels' view of the quantization.
    fn get(&self) -> FcQuantization<'_> {
        match self {
            Quant::PerTensor {
                multiplier,
                filter_zero_point,
            } => FcQuantization::PerTensor {
                multiplier: *multiplier,
                filter_zero_point: *filter_zero_point,
            },
            Quant::PerChannel(m) => FcQuantization::PerChannel(m),
        }
    }

    /// The output multipliers: one per channel, or one for all.
    fn multipliers(&self) -> &[QuantizedMultiplier] {
        match self {
            Quant::PerTensor { multiplier, .. } => core::slice::from_ref(multiplier),
            Quant::PerChannel(m) => m,
        }
    }
}

struct FullyConnected<'m> {
    input: Slot,
    output: Slot,
    filter: &'m [i8],
    bias: Option<Vec<i32>>,
    quant: Quant,
    params: FullyConnectedParams,
    /// The optimized kernel; `None` runs the reference kernel.
    fast: Option<Prepared<'m, FcPlan>>,
}

/// Prepares FULLY_CONNECTED.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    ctx.expect_arity(2, 3, 1)?;
    let o = ctx.options()?;
    if o.get(field::fully_connected::WEIGHTS_FORMAT, 0i8)? != 0 {
        return Err(ctx.err("only the default weights format is supported"));
    }
    let act = activation(ctx, o.get(field::fully_connected::ACTIVATION, 0i8)?)?;
    let (input, filter, output) = (ctx.input(0)?, ctx.input(1)?, ctx.output(0)?);
    ctx.expect_type("input", input, &[DType::I8])?;
    ctx.expect_type("filter", filter, &[DType::I8])?;
    ctx.expect_type("output", output, &[DType::I8])?;
    let [out_depth, accum_depth] = filter.shape[..] else {
        return Err(ctx.err(format!(
            "filter has shape {:?}, expected 2 dimensions",
            filter.shape
        )));
    };
    if accum_depth == 0 || input.elements() % accum_depth != 0 {
        return Err(ctx.err(format!(
            "input of {} elements is not a whole number of rows of {accum_depth}",
            input.elements()
        )));
    }
    let batches = input.elements() / accum_depth;
    if output.elements() != batches * out_depth || output.shape.last() != Some(&out_depth) {
        return Err(ctx.err(format!(
            "output shape {:?} does not hold {batches} rows of {out_depth}",
            output.shape
        )));
    }
    let (in_scale, in_zp) = ctx.quant("input", input)?;
    let (out_scale, out_zp) = ctx.quant("output", output)?;
    let fq = filter
        .quant
        .as_ref()
        .ok_or_else(|| ctx.err("filter is not quantized"))?;
    let bias_t = ctx.opt_input(2);
    let bias = match bias_t {
        None => None,
        Some(b) => {
            ctx.expect_type("bias", b, &[DType::I32])?;
            if b.elements() != out_depth {
                return Err(ctx.err(format!(
                    "bias has {} elements for {out_depth} outputs",
                    b.elements()
                )));
            }
            Some(ctx.const_values::<i32>("bias", 2)?)
        }
    };
    let quant = if fq.is_per_tensor() {
        let bias_scale = bias_t.and_then(|b| b.quant.as_ref()).map(|q| q.scale[0]);
        let multiplier = fc::fc_per_tensor_multiplier(in_scale, fq.scale[0], bias_scale, out_scale)
            .map_err(|e| kernel_err(ctx, e))?;
        Quant::PerTensor {
            multiplier,
            filter_zero_point: fq.zero_point[0],
        }
    } else {
        if fq.axis != 0 {
            return Err(ctx.err(format!(
                "filter is quantized along dimension {}, expected 0",
                fq.axis
            )));
        }
        let mut m = filled(
            out_depth,
            QuantizedMultiplier::default(),
            "per-channel parameters",
        )?;
        fc::fc_per_channel_multipliers(in_scale, &fq.scale, out_scale, &mut m)
            .map_err(|e| kernel_err(ctx, e))?;
        Quant::PerChannel(m)
    };
    let (act_min, act_max) =
        activation_range_i8(act, out_scale, out_zp).map_err(|e| kernel_err(ctx, e))?;
    let params = FullyConnectedParams {
        input_zero_point: in_zp,
        output_zero_point: out_zp,
        act_min,
        act_max,
        output_depth: out_depth,
        accum_depth,
        batches,
    };
    let per_channel = match &quant {
        Quant::PerChannel(m) => Some(m.len()),
        Quant::PerTensor { .. } => None,
    };
    params
        .check(
            input.elements(),
            filter.elements(),
            bias.as_ref().map(Vec::len),
            per_channel,
            output.elements(),
        )
        .map_err(|e| kernel_err(ctx, e))?;
    let filter_data = weights_i8(ctx, 1)?;
    let fast = match ctx.isa() {
        Some(isa) => {
            let plan = FcPlan::new(&params, quant.get(), bias.as_ref().map(Vec::len))
                .map_err(|e| kernel_err(ctx, e))?;
            let multipliers = quant.multipliers();
            let bias = bias.as_deref();
            Some(Prepared::new(
                ctx,
                plan,
                isa,
                filter_data,
                bias,
                multipliers,
            )?)
        }
        None => None,
    };
    Ok(Box::new(FullyConnected {
        input: ctx.input_slot(0)?,
        output: ctx.output_slot(0)?,
        filter: filter_data,
        fast,
        bias,
        quant,
        params,
    }))
}

impl Kernel for FullyConnected<'_> {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let input = io.typed::<i8>(&self.input)?;
        let (bias, out) = (self.bias.as_deref(), io.out()?);
        match &mut self.fast {
            Some(f) => f.eval(input, out)?,
            None => {
                let quant = self.quant.get();
                fc::fully_connected_i8(&self.params, quant, input, self.filter, bias, out)?
            }
        }
        Ok(())
    }
}
