//! TFLM's Signal custom operators (the audio front end of micro_speech's preprocessor models).
//!
//! Options come as FlexBuffers maps; the arithmetic lives in `omg-signal`.

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use omg_signal::{
    Energy, FilterBank, FilterBankConfig, FilterBankLog, Pcan, Rfft, SignalError,
    SpectralSubtraction, SpectralSubtractionConfig, Window, fft_auto_scale,
    filter_bank_square_root,
};

use crate::error::{Error, Result};
use crate::exec::{Memory, Slot};
use crate::flexbuf::{Map, Value};
use crate::model::DType;
use crate::ops::{BoxedKernel, Kernel, OpCtx};

impl From<SignalError> for Error {
    fn from(e: SignalError) -> Self {
        Error::Eval(format!("{e}"))
    }
}

fn signal_err(ctx: &OpCtx<'_, '_>, e: SignalError) -> Error {
    ctx.err(format!("{e}"))
}

/// The operator's custom options.
struct CustomOptions<'a, 'c, 'm> {
    ctx: &'c OpCtx<'a, 'm>,
    map: Map<'m>,
}

impl<'a, 'c, 'm> CustomOptions<'a, 'c, 'm> {
    fn new(ctx: &'c OpCtx<'a, 'm>) -> Result<Self> {
        let map = Map::root(ctx.op.custom_options)
            .map_err(|e| ctx.err(format!("custom options: {e}")))?;
        Ok(Self { ctx, map })
    }

    fn value(&self, key: &str) -> Result<Value> {
        self.map
            .get(key)
            .map_err(|e| self.ctx.err(format!("custom option `{key}`: {e}")))?
            .ok_or_else(|| self.ctx.err(format!("custom option `{key}` is missing")))
    }

    fn int(&self, key: &str) -> Result<i32> {
        match self.value(key)? {
            Value::Int(v) => i32::try_from(v).map_err(|_| {
                self.ctx
                    .err(format!("custom option `{key}` = {v} is out of range"))
            }),
            other => Err(self.ctx.err(format!(
                "custom option `{key}` is {other:?}, expected an integer"
            ))),
        }
    }

    fn flag(&self, key: &str) -> Result<bool> {
        match self.value(key)? {
            Value::Bool(b) => Ok(b),
            Value::Int(v) => Ok(v != 0),
            other => Err(self.ctx.err(format!(
                "custom option `{key}` is {other:?}, expected a boolean"
            ))),
        }
    }
}

/// Checks the data types of all inputs and outputs, in order.
fn expect_types(ctx: &OpCtx<'_, '_>, inputs: &[DType], outputs: &[DType]) -> Result<()> {
    ctx.expect_arity(inputs.len(), inputs.len(), outputs.len())?;
    for (k, t) in inputs.iter().enumerate() {
        ctx.expect_type(&format!("input {k}"), ctx.input(k)?, &[*t])?;
    }
    for (k, t) in outputs.iter().enumerate() {
        ctx.expect_type(&format!("output {k}"), ctx.output(k)?, &[*t])?;
    }
    Ok(())
}

fn len(ctx: &OpCtx<'_, '_>, input: bool, k: usize) -> Result<usize> {
    Ok(if input {
        ctx.input(k)?.elements()
    } else {
        ctx.output(k)?.elements()
    })
}

/// Slots of a single-input, single-output operator.
struct Unary {
    input: Slot,
    output: Slot,
}

impl Unary {
    fn new(ctx: &OpCtx<'_, '_>) -> Result<Self> {
        Ok(Self {
            input: ctx.input_slot(0)?,
            output: ctx.output_slot(0)?,
        })
    }
}

struct WindowOp {
    io: Unary,
    window: Window,
}

/// SignalWindow: multiplies each frame by fixed-point window weights.
pub(crate) fn prepare_window<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::I16, DType::I16], &[DType::I16])?;
    let opts = CustomOptions::new(ctx)?;
    let window = Window::new(
        &ctx.const_values::<i16>("window weights", 1)?,
        opts.int("shift")?,
    )
    .map_err(|e| signal_err(ctx, e))?;
    window
        .check_lengths(len(ctx, true, 0)?, len(ctx, false, 0)?)
        .map_err(|e| signal_err(ctx, e))?;
    Ok(Box::new(WindowOp {
        io: Unary::new(ctx)?,
        window,
    }))
}

impl Kernel for WindowOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.io.output))?;
        let input = io.typed::<i16>(&self.io.input)?;
        Ok(self.window.apply(input, io.out()?)?)
    }
}

struct AutoScale {
    input: Slot,
    outputs: [Slot; 2],
}

/// SignalFftAutoScale: scales a frame up to use the full int16 range; outputs the shift.
pub(crate) fn prepare_fft_auto_scale<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::I16], &[DType::I16, DType::I32])?;
    if len(ctx, true, 0)? != len(ctx, false, 0)? || len(ctx, false, 1)? != 1 {
        return Err(ctx.err("output 0 must match the input and output 1 must be a scalar"));
    }
    Ok(Box::new(AutoScale {
        input: ctx.input_slot(0)?,
        outputs: [ctx.output_slot(0)?, ctx.output_slot(1)?],
    }))
}

impl Kernel for AutoScale {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(&self.outputs)?;
        let input = io.typed::<i16>(&self.input)?;
        let (scaled, shift) = io.outs2::<i16, i32>()?;
        let s = fft_auto_scale(input, scaled)?;
        if let Some(out) = shift.first_mut() {
            *out = s;
        }
        Ok(())
    }
}

struct RfftOp {
    io: Unary,
    rfft: Rfft,
    frame_in: usize,
    frames: usize,
}

/// SignalRfft (int16): real FFT of each frame, output interleaved `[re, im]` pairs.
pub(crate) fn prepare_rfft<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::I16], &[DType::I16])?;
    let opts = CustomOptions::new(ctx)?;
    if opts.int("T")? != 7 {
        return Err(Error::Unsupported(format!(
            "operator {} (SignalRfft) on a type other than int16",
            ctx.index
        )));
    }
    let rfft = Rfft::new(opts.int("fft_length")?).map_err(|e| signal_err(ctx, e))?;
    let (input, output) = (ctx.input(0)?, ctx.output(0)?);
    let frame_in = *input
        .shape
        .last()
        .ok_or_else(|| ctx.err("input is a scalar"))?;
    let frames = input.elements().checked_div(frame_in).unwrap_or(0);
    if output.elements() != frames * rfft.output_len() {
        return Err(ctx.err(format!(
            "output shape {:?} does not hold {frames} spectra of {}",
            output.shape,
            rfft.output_len()
        )));
    }
    rfft.check_lengths(frame_in, rfft.output_len())
        .map_err(|e| signal_err(ctx, e))?;
    Ok(Box::new(RfftOp {
        io: Unary::new(ctx)?,
        rfft,
        frame_in,
        frames,
    }))
}

impl Kernel for RfftOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.io.output))?;
        let input = io.typed::<i16>(&self.io.input)?;
        let out_len = self.rfft.output_len();
        let output = io.out::<i16>()?;
        for (frame, spectrum) in input
            .chunks_exact(self.frame_in)
            .zip(output.chunks_exact_mut(out_len))
            .take(self.frames)
        {
            self.rfft.apply(frame, spectrum)?;
        }
        Ok(())
    }
}

struct EnergyOp {
    io: Unary,
    energy: Energy,
}

/// SignalEnergy: squared magnitude of the spectrum bins in `[start_index, end_index)`.
pub(crate) fn prepare_energy<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::I16], &[DType::U32])?;
    let opts = CustomOptions::new(ctx)?;
    let energy = Energy::new(opts.int("start_index")?, opts.int("end_index")?)
        .map_err(|e| signal_err(ctx, e))?;
    energy
        .check_lengths(len(ctx, true, 0)?, len(ctx, false, 0)?)
        .map_err(|e| signal_err(ctx, e))?;
    Ok(Box::new(EnergyOp {
        io: Unary::new(ctx)?,
        energy,
    }))
}

impl Kernel for EnergyOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.io.output))?;
        let input = io.typed::<i16>(&self.io.input)?;
        let output = io.out::<u32>()?;
        // TFLM leaves the bins outside the range untouched (stale arena bytes); omg zeroes them,
        // so no earlier data can show through.
        output.fill(0);
        Ok(self.energy.apply(input, output)?)
    }
}

struct FilterBankOp {
    io: Unary,
    bank: FilterBank,
}

/// SignalFilterBank: triangular mel filters over the energy spectrum.
pub(crate) fn prepare_filter_bank<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(
        ctx,
        &[
            DType::U32,
            DType::I16,
            DType::I16,
            DType::I16,
            DType::I16,
            DType::I16,
        ],
        &[DType::U64],
    )?;
    let opts = CustomOptions::new(ctx)?;
    let tables: Vec<Vec<i16>> = [
        "weights",
        "unweights",
        "channel frequency starts",
        "channel weight starts",
        "channel widths",
    ]
    .iter()
    .enumerate()
    .map(|(k, what)| ctx.const_values::<i16>(what, k + 1))
    .collect::<Result<_>>()?;
    let bank = FilterBank::new(&FilterBankConfig {
        num_channels: opts.int("num_channels")?,
        weights: &tables[0],
        unweights: &tables[1],
        channel_frequency_starts: &tables[2],
        channel_weight_starts: &tables[3],
        channel_widths: &tables[4],
        input_len: len(ctx, true, 0)?,
    })
    .map_err(|e| signal_err(ctx, e))?;
    bank.check_lengths(len(ctx, true, 0)?, len(ctx, false, 0)?)
        .map_err(|e| signal_err(ctx, e))?;
    Ok(Box::new(FilterBankOp {
        io: Unary::new(ctx)?,
        bank,
    }))
}

impl Kernel for FilterBankOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.io.output))?;
        let input = io.typed::<u32>(&self.io.input)?;
        Ok(self.bank.apply(input, io.out()?)?)
    }
}

struct SquareRoot {
    io: Unary,
    shift: Slot,
}

/// SignalFilterBankSquareRoot: square root of each channel, shifted down by the auto-scale bits.
pub(crate) fn prepare_filter_bank_square_root<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::U64, DType::I32], &[DType::U32])?;
    if len(ctx, true, 0)? != len(ctx, false, 0)? || len(ctx, true, 1)? != 1 {
        return Err(ctx.err("output must match input 0 and input 1 must be a scalar"));
    }
    Ok(Box::new(SquareRoot {
        io: Unary::new(ctx)?,
        shift: ctx.input_slot(1)?,
    }))
}

impl Kernel for SquareRoot {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.io.output))?;
        let input = io.typed::<u64>(&self.io.input)?;
        let shift = io.typed::<i32>(&self.shift)?.first().copied().unwrap_or(0);
        Ok(filter_bank_square_root(input, shift, io.out()?)?)
    }
}

struct SpectralSubtractionOp {
    input: Slot,
    outputs: [Slot; 2],
    state: SpectralSubtraction,
}

/// SignalFilterBankSpectralSubtraction: noise reduction with a running noise estimate (stateful).
pub(crate) fn prepare_spectral_subtraction<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::U32], &[DType::U32, DType::U32])?;
    let o = CustomOptions::new(ctx)?;
    let state = SpectralSubtraction::new(&SpectralSubtractionConfig {
        num_channels: o.int("num_channels")?,
        smoothing: o.int("smoothing")?,
        one_minus_smoothing: o.int("one_minus_smoothing")?,
        alternate_smoothing: o.int("alternate_smoothing")?,
        alternate_one_minus_smoothing: o.int("alternate_one_minus_smoothing")?,
        smoothing_bits: o.int("smoothing_bits")?,
        spectral_subtraction_bits: o.int("spectral_subtraction_bits")?,
        min_signal_remaining: o.int("min_signal_remaining")?,
        clamping: o.flag("clamping")?,
    })
    .map_err(|e| signal_err(ctx, e))?;
    state
        .check_lengths(len(ctx, true, 0)?, len(ctx, false, 0)?)
        .map_err(|e| signal_err(ctx, e))?;
    if len(ctx, false, 1)? != state.num_channels() {
        return Err(ctx.err("the noise estimate output must have one element per channel"));
    }
    Ok(Box::new(SpectralSubtractionOp {
        input: ctx.input_slot(0)?,
        outputs: [ctx.output_slot(0)?, ctx.output_slot(1)?],
        state,
    }))
}

impl Kernel for SpectralSubtractionOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(&self.outputs)?;
        let input = io.typed::<u32>(&self.input)?;
        let (output, noise) = io.outs2::<u32, u32>()?;
        self.state.process(input, output)?;
        noise.copy_from_slice(self.state.noise_estimate());
        Ok(())
    }

    fn reset(&mut self) {
        self.state.reset();
    }
}

struct PcanOp {
    inputs: [Slot; 2],
    output: Slot,
    pcan: Pcan,
}

/// SignalPCAN: per-channel automatic gain control driven by the noise estimate.
pub(crate) fn prepare_pcan<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::U32, DType::U32, DType::I16], &[DType::U32])?;
    let opts = CustomOptions::new(ctx)?;
    let pcan = Pcan::new(
        &ctx.const_values::<i16>("gain lookup table", 2)?,
        opts.int("snr_shift")?,
    )
    .map_err(|e| signal_err(ctx, e))?;
    pcan.check_lengths(len(ctx, true, 0)?, len(ctx, true, 1)?, len(ctx, false, 0)?)
        .map_err(|e| signal_err(ctx, e))?;
    Ok(Box::new(PcanOp {
        inputs: [ctx.input_slot(0)?, ctx.input_slot(1)?],
        output: ctx.output_slot(0)?,
        pcan,
    }))
}

impl Kernel for PcanOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.output))?;
        let signal = io.typed::<u32>(&self.inputs[0])?;
        let noise = io.typed::<u32>(&self.inputs[1])?;
        Ok(self.pcan.apply(signal, noise, io.out()?)?)
    }
}

struct LogOp {
    io: Unary,
    log: FilterBankLog,
}

/// SignalFilterBankLog: fixed-point natural log of each channel, scaled.
pub(crate) fn prepare_filter_bank_log<'m>(ctx: &OpCtx<'_, 'm>) -> Result<BoxedKernel<'m>> {
    expect_types(ctx, &[DType::U32], &[DType::I16])?;
    let opts = CustomOptions::new(ctx)?;
    let log = FilterBankLog::new(
        opts.int("output_scale")?,
        opts.int("input_correction_bits")?,
    )
    .map_err(|e| signal_err(ctx, e))?;
    log.check_lengths(len(ctx, true, 0)?, len(ctx, false, 0)?)
        .map_err(|e| signal_err(ctx, e))?;
    Ok(Box::new(LogOp {
        io: Unary::new(ctx)?,
        log,
    }))
}

impl Kernel for LogOp {
    fn eval(&mut self, mem: &mut Memory<'_, '_>) -> Result<()> {
        let mut io = mem.io(core::slice::from_ref(&self.io.output))?;
        let input = io.typed::<u32>(&self.io.input)?;
        Ok(self.log.apply(input, io.out()?)?)
    }
}

/// Prepares a Signal custom operator by name, or `None` if the name is not one of them.
pub(crate) fn prepare<'m>(ctx: &OpCtx<'_, 'm>, name: &str) -> Option<Result<BoxedKernel<'m>>> {
    Some(match name {
        "SignalWindow" => prepare_window(ctx),
        "SignalFftAutoScale" => prepare_fft_auto_scale(ctx),
        "SignalRfft" => prepare_rfft(ctx),
        "SignalEnergy" => prepare_energy(ctx),
        "SignalFilterBank" => prepare_filter_bank(ctx),
        "SignalFilterBankSquareRoot" => prepare_filter_bank_square_root(ctx),
        "SignalFilterBankSpectralSubtraction" => prepare_spectral_subtraction(ctx),
        "SignalPCAN" => prepare_pcan(ctx),
        "SignalFilterBankLog" => prepare_filter_bank_log(ctx),
        _ => return None,
    })
}
