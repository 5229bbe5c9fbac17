//! Property tests: the kernels of `omg_kernels::fast` produce exactly the same bytes (and the
//! same errors) as the reference kernels, on thousands of random cases, at every instruction-set
//! level this CPU supports (the portable one included).

use omg_kernels::conv::{self, ConvParams, ConvShapes, DepthwiseParams};
use omg_kernels::elementwise::{self, AddParams, TensorQuant};
use omg_kernels::fast::{self, Isa, Scratch, ScratchLen, WeightPlan};
use omg_kernels::fully_connected::{self, FcQuantization, FullyConnectedParams};
use omg_kernels::pooling::{self, PoolParams};
use omg_kernels::quant::{Padding, QuantizedMultiplier, compute_padding_height_width};
use omg_kernels::shape::Broadcast;
use omg_kernels::{KernelError, Result};

/// xorshift64* — small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i64, hi as i64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }
    /// int8 zero point, corners included.
    fn zero_point(&mut self) -> i32 {
        if self.chance(30) {
            self.pick(&[-128, 127, 0, -1, 1])
        } else {
            self.range(-128, 127) as i32
        }
    }
    /// int8 data: random, or all -128 / all 127 / all zero point-ish corners.
    fn data(&mut self, n: usize) -> Vec<i8> {
        match self.next() % 10 {
            0 => vec![-128; n],
            1 => vec![127; n],
            2 => (0..n).map(|_| self.pick(&[-128i8, 127])).collect(),
            _ => (0..n).map(|_| self.next() as i8).collect(),
        }
    }
    fn bias(&mut self, n: usize) -> Option<Vec<i32>> {
        match self.next() % 5 {
            0 => None,
            1 => Some(
                (0..n)
                    .map(|_| self.pick(&[i32::MIN, i32::MAX, 0, -1]))
                    .collect(),
            ),
            2 => Some((0..n).map(|_| self.next() as i32).collect()),
            _ => Some((0..n).map(|_| self.range(-40_000, 40_000) as i32).collect()),
        }
    }
    /// A multiplier: usually as `quantize_multiplier` makes them, sometimes a saturation
    /// corner (`i32::MIN` saturates the doubling high multiply) or an out-of-range shift.
    fn multiplier(&mut self) -> QuantizedMultiplier {
        let multiplier = match self.next() % 8 {
            0 => i32::MAX,
            1 => 1 << 30,
            2 => 0,
            3 if self.chance(30) => self.pick(&[i32::MIN, -(1 << 30), -1, 1]),
            _ => self.range(1 << 30, i64::from(i32::MAX)) as i32,
        };
        let shift = match self.next() % 10 {
            0 => self.range(-31, 30) as i32,
            1 if self.chance(20) => self.pick(&[31, -31, 40, -40, i32::MAX, i32::MIN + 1]),
            _ => self.range(-12, 2) as i32,
        };
        QuantizedMultiplier { multiplier, shift }
    }
    fn multipliers(&mut self, n: usize) -> Vec<QuantizedMultiplier> {
        if self.chance(20) {
            vec![self.multiplier(); n]
        } else {
            (0..n).map(|_| self.multiplier()).collect()
        }
    }
    /// An activation range: full int8, a random sub-range, or (rarely) one that exceeds int8
    /// (the kernels then truncate to int8 like the reference).
    fn act_range(&mut self) -> (i32, i32) {
        let (lo, hi) = if self.chance(5) {
            (-400, 400)
        } else {
            (-128, 127)
        };
        if self.chance(50) {
            (-128, 127)
        } else {
            let a = self.range(lo, hi) as i32;
            let b = self.range(lo, hi) as i32;
            (a.min(b), a.max(b))
        }
    }
}

/// Window geometry: SAME/VALID from TFLM's padding computation, or (sometimes) an arbitrary
/// output size and leading pad, which the kernels also accept.
struct Window {
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 2],
    out: [usize; 2],
}

fn window(rng: &mut Rng, in_hw: [usize; 2], f_hw: [usize; 2]) -> Window {
    let stride = [rng.usize(1, 3), rng.usize(1, 3)];
    let dilation = if rng.chance(60) {
        [1, 1]
    } else {
        [rng.usize(1, 3), rng.usize(1, 3)]
    };
    if rng.chance(15) {
        return Window {
            stride,
            dilation,
            pad: [rng.usize(0, 5), rng.usize(0, 5)],
            out: [rng.usize(1, 6), rng.usize(1, 6)],
        };
    }
    let padding = if rng.chance(50) {
        Padding::Same
    } else {
        Padding::Valid
    };
    let g = compute_padding_height_width(
        stride[0],
        stride[1],
        dilation[0],
        dilation[1],
        in_hw[0],
        in_hw[1],
        f_hw[0],
        f_hw[1],
        padding,
    )
    .or_else(|_| {
        compute_padding_height_width(
            stride[0],
            stride[1],
            dilation[0],
            dilation[1],
            in_hw[0],
            in_hw[1],
            f_hw[0],
            f_hw[1],
            Padding::Same,
        )
    })
    .unwrap();
    Window {
        stride,
        dilation,
        pad: [g.padding.height, g.padding.width],
        out: [g.out_height, g.out_width],
    }
}

fn spatial(rng: &mut Rng) -> ([usize; 2], [usize; 2]) {
    let in_hw = if rng.chance(10) {
        [rng.usize(1, 3), rng.usize(10, 24)]
    } else {
        [rng.usize(1, 9), rng.usize(1, 9)]
    };
    let f_hw = if rng.chance(20) {
        // Filter larger than the input (SAME padding).
        [
            rng.usize(in_hw[0], in_hw[0] + 3),
            rng.usize(in_hw[1], in_hw[1] + 3),
        ]
    } else {
        [rng.usize(1, 5), rng.usize(1, 5)]
    };
    (in_hw, f_hw)
}

/// Random input and filter sizes, window and batch count of a convolution case.
fn geometry(rng: &mut Rng) -> ([usize; 2], [usize; 2], Window, usize) {
    let (in_hw, f_hw) = spatial(rng);
    let w = window(rng, in_hw, f_hw);
    (in_hw, f_hw, w, rng.usize(1, 2))
}

/// The window of `w` with random zero points and activation range, as CONV_2D parameters.
fn conv_params(rng: &mut Rng, w: &Window) -> ConvParams {
    let (act_min, act_max) = rng.act_range();
    ConvParams {
        stride_height: w.stride[0],
        stride_width: w.stride[1],
        dilation_height: w.dilation[0],
        dilation_width: w.dilation[1],
        pad_height: w.pad[0],
        pad_width: w.pad[1],
        input_zero_point: rng.zero_point(),
        output_zero_point: rng.zero_point(),
        act_min,
        act_max,
    }
}

/// The DEPTHWISE_CONV_2D parameters with the window, zero points and clamp of `c`.
fn depthwise_params(c: ConvParams, depth_multiplier: usize) -> DepthwiseParams {
    DepthwiseParams {
        stride_height: c.stride_height,
        stride_width: c.stride_width,
        dilation_height: c.dilation_height,
        dilation_width: c.dilation_width,
        pad_height: c.pad_height,
        pad_width: c.pad_width,
        depth_multiplier,
        input_zero_point: c.input_zero_point,
        output_zero_point: c.output_zero_point,
        act_min: c.act_min,
        act_max: c.act_max,
    }
}

/// Random operands of a convolution with `shapes` (output channels `out_c`), and the initial
/// content of its output buffer.
struct Operands {
    input: Vec<i8>,
    filter: Vec<i8>,
    bias: Option<Vec<i32>>,
    multipliers: Vec<QuantizedMultiplier>,
    output: Vec<i8>,
}

fn operands(rng: &mut Rng, shapes: &ConvShapes, out_c: usize) -> Operands {
    Operands {
        input: rng.data(shapes.input.iter().product()),
        filter: rng.data(shapes.filter.iter().product()),
        bias: rng.bias(out_c),
        multipliers: rng.multipliers(out_c),
        output: rng.data(shapes.output.iter().product()),
    }
}

/// Runs the reference kernel, then `fast` at every supported level, each on its own copy of
/// `output`; asserts that they all return the same result and leave the same bytes, and returns
/// the reference result.
fn assert_same(
    context: &dyn Fn() -> String,
    output: &[i8],
    reference: impl FnOnce(&mut [i8]) -> Result<()>,
    mut fast: impl FnMut(Isa, &mut [i8]) -> Result<()>,
) -> Result<()> {
    let mut want = output.to_vec();
    let r = reference(&mut want);
    for isa in Isa::supported() {
        let mut got = output.to_vec();
        let f = fast(isa, &mut got);
        assert_eq!(r, f, "{isa:?} {}", context());
        assert_eq!(want, got, "{isa:?} {}", context());
    }
    r
}

/// Owned scratch memory of a [`ScratchLen`], plus `extra` elements of each type.
struct Buffers(Vec<i8>, Vec<i16>, Vec<i32>, Vec<usize>);

impl Buffers {
    fn new(len: ScratchLen, extra: usize) -> Self {
        Buffers(
            vec![0; len.i8 + extra],
            vec![0; len.i16 + extra],
            vec![0; len.i32 + extra],
            vec![0; len.usize + extra],
        )
    }

    fn scratch(&mut self) -> Scratch<'_> {
        Scratch {
            i8: &mut self.0,
            i16: &mut self.1,
            i32: &mut self.2,
            usize: &mut self.3,
        }
    }
}

/// The weights of `plan` for level `isa`: packed, or the filter itself when `packed_len` is 0.
fn weights(plan: &impl WeightPlan, isa: Isa, filter: &[i8]) -> Vec<i8> {
    match plan.packed_len(isa) {
        0 => filter.to_vec(),
        len => {
            let mut p = vec![0; len];
            plan.pack(isa, filter, &mut p).unwrap();
            p
        }
    }
}

/// Packs the weights of `plan` for `isa` and runs it with `extra` spare scratch elements.
fn eval(
    plan: &impl WeightPlan,
    isa: Isa,
    (input, filter, channels): (&[i8], &[i8], &[i32]),
    extra: usize,
    out: &mut [i8],
) -> Result<()> {
    let w = weights(plan, isa, filter);
    let mut buffers = Buffers::new(plan.scratch_len(isa), extra);
    plan.eval(isa, input, &w, channels, out, buffers.scratch())
}

/// Counts of the cases whose weights were used as is and repacked.
#[derive(Default)]
struct Layouts {
    as_is: usize,
    packed: usize,
}

impl Layouts {
    fn count(&mut self, packed_len: usize) {
        if packed_len == 0 {
            self.as_is += 1;
        } else {
            self.packed += 1;
        }
    }
}

#[test]
fn every_level_is_reported_and_the_detected_one_is_supported() {
    assert!(Isa::Portable.is_supported());
    assert!(Isa::detect().is_supported());
    assert_eq!(Isa::supported().next(), Some(Isa::Portable));
    assert!(Isa::supported().any(|isa| isa == Isa::detect()));
    println!(
        "levels tested here: {:?}",
        Isa::supported().collect::<Vec<_>>()
    );
    // A level this CPU cannot run is refused, not replaced (the weights are laid out for it).
    let q = TensorQuant {
        scale: 1.0,
        zero_point: 0,
    };
    let add = AddParams::prepare(q, q, q, false, -128, 127).unwrap();
    for isa in Isa::ALL.into_iter().filter(|isa| !isa.is_supported()) {
        println!(
            "level {} not supported by this CPU: its property tests are skipped here",
            isa.name()
        );
        let r = fast::add_i8(isa, &add, &[0; 2], &[0; 2], &mut [0; 2]);
        assert!(matches!(r, Err(KernelError::Unsupported(_))));
    }
}

#[test]
fn conv2d_matches_reference() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut layouts = Layouts::default();
    for case in 0..4000 {
        let (in_hw, f_hw, w, batches) = geometry(&mut rng);
        let f_c = rng.pick(&[1, 2, 3, 4, 8, 9, 16, 17, 32, 40]);
        let groups = if rng.chance(20) { rng.usize(2, 3) } else { 1 };
        // Sometimes more than 24 channels per group: blocks of 4 or 5 panels at the 512-bit
        // level.
        let per_group = if rng.chance(10) {
            rng.usize(25, 40)
        } else {
            rng.usize(1, 21)
        };
        let out_c = groups * per_group;
        let shapes = ConvShapes {
            input: [batches, in_hw[0], in_hw[1], f_c * groups],
            filter: [out_c, f_hw[0], f_hw[1], f_c],
            output: [batches, w.out[0], w.out[1], out_c],
        };
        let p = conv_params(&mut rng, &w);
        let o = operands(&mut rng, &shapes, out_c);
        let (x, f, b, m) = (&o.input, &o.filter, o.bias.as_deref(), &o.multipliers);
        let plan = fast::ConvPlan::new(&p, &shapes, b.map(<[i32]>::len), m.len()).unwrap();
        layouts.count(plan.packed_len(Isa::Portable));
        let mut channels = vec![0; plan.channels_len()];
        plan.prepare_channels(f, b, m, &mut channels).unwrap();
        let extra = rng.usize(0, 3);
        let _ = assert_same(
            &|| format!("case {case}: {p:?} {shapes:?}"),
            &o.output,
            |out| conv::conv2d_i8(&p, &shapes, x, f, b, m, out),
            |isa, out| eval(&plan, isa, (x, f, &channels), extra, out),
        );
    }
    assert!(layouts.as_is > 100 && layouts.packed > 100);
}

#[test]
fn depthwise_matches_reference() {
    let mut rng = Rng(0xfeed_face_dead_beef);
    let mut layouts = Layouts::default();
    for case in 0..4000 {
        let (in_hw, f_hw, w, batches) = geometry(&mut rng);
        let in_c = rng.pick(&[1, 2, 3, 4, 5, 8, 16, 17, 24, 33, 40]);
        let dm = match rng.next() % 10 {
            0 => 16,
            1..=5 => 1,
            _ => rng.usize(2, 8),
        };
        let out_c = in_c * dm;
        let shapes = ConvShapes {
            input: [batches, in_hw[0], in_hw[1], in_c],
            filter: [1, f_hw[0], f_hw[1], out_c],
            output: [batches, w.out[0], w.out[1], out_c],
        };
        let p = depthwise_params(conv_params(&mut rng, &w), dm);
        let o = operands(&mut rng, &shapes, out_c);
        let (x, f, b, m) = (&o.input, &o.filter, o.bias.as_deref(), &o.multipliers);
        let plan = fast::DepthwisePlan::new(&p, &shapes, b.map(<[i32]>::len), m.len()).unwrap();
        // In-channel 1 runs through weight rows, the others through tap pairs.
        layouts.count(usize::from(in_c != 1));
        let mut channels = vec![0; plan.channels_len()];
        plan.prepare_channels(f, b, m, &mut channels).unwrap();
        let extra = rng.usize(0, 3);
        let _ = assert_same(
            &|| format!("case {case}: {p:?} {shapes:?}"),
            &o.output,
            |out| conv::depthwise_conv2d_i8(&p, &shapes, x, f, b, m, out),
            |isa, out| eval(&plan, isa, (x, f, &channels), extra, out),
        );
    }
    assert!(layouts.as_is > 100 && layouts.packed > 100);
}

#[test]
fn fully_connected_matches_reference() {
    let mut rng = Rng(0x5151_7272_9393_b4b4);
    let mut layouts = Layouts::default();
    for case in 0..4000 {
        let batches = rng.usize(1, 4);
        let accum_depth = match rng.next() % 20 {
            0 => 0,
            1..=5 => 16 * rng.usize(1, 40),
            // Long rows of any length (the quad rows' padding to 32 values, several vectors).
            6..=7 => rng.usize(81, 700),
            _ => rng.usize(1, 80),
        };
        let output_depth = match rng.next() % 30 {
            0 => 0,
            1..=6 => rng.usize(12, 70),
            _ => rng.usize(1, 11),
        };
        let (act_min, act_max) = rng.act_range();
        let p = FullyConnectedParams {
            input_zero_point: rng.zero_point(),
            output_zero_point: rng.zero_point(),
            act_min,
            act_max,
            output_depth,
            accum_depth,
            batches,
        };
        let input = rng.data(batches * accum_depth);
        let filter = rng.data(output_depth * accum_depth);
        let bias = rng.bias(output_depth);
        let per_channel = rng.multipliers(output_depth);
        let quant = if rng.chance(50) {
            FcQuantization::PerChannel(&per_channel)
        } else {
            FcQuantization::PerTensor {
                multiplier: rng.multiplier(),
                filter_zero_point: if rng.chance(50) { 0 } else { rng.zero_point() },
            }
        };
        let (x, f, b) = (&input, &filter, bias.as_deref());
        let plan = fast::FcPlan::new(&p, quant, b.map(<[i32]>::len)).unwrap();
        layouts.count(plan.packed_len(Isa::Portable));
        let mut channels = vec![0; plan.channels_len()];
        let multipliers = match quant {
            FcQuantization::PerChannel(m) => m.to_vec(),
            FcQuantization::PerTensor { multiplier, .. } => vec![multiplier],
        };
        plan.prepare_channels(f, b, &multipliers, &mut channels)
            .unwrap();
        let extra = rng.usize(0, 3);
        let init = rng.data(batches * output_depth);
        let _ = assert_same(
            &|| format!("case {case}: {p:?} {quant:?}"),
            &init,
            |out| fully_connected::fully_connected_i8(&p, quant, x, f, b, out),
            |isa, out| eval(&plan, isa, (x, f, &channels), extra, out),
        );
    }
    assert!(layouts.as_is > 100 && layouts.packed > 100);
}

#[test]
fn pooling_matches_reference() {
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    let mut errors = 0;
    for case in 0..3000 {
        let in_hw = [rng.usize(1, 12), rng.usize(1, 12)];
        let f_hw = [rng.usize(1, 6), rng.usize(1, 6)];
        let stride = [rng.usize(1, 3), rng.usize(1, 3)];
        let (pad, out) = if rng.chance(10) {
            // Arbitrary padding: some windows may not overlap the input.
            (
                [rng.usize(0, 7), rng.usize(0, 7)],
                [rng.usize(1, 5), rng.usize(1, 5)],
            )
        } else {
            let padding = if rng.chance(50) {
                Padding::Same
            } else {
                Padding::Valid
            };
            let g = compute_padding_height_width(
                stride[0], stride[1], 1, 1, in_hw[0], in_hw[1], f_hw[0], f_hw[1], padding,
            )
            .or_else(|_| {
                compute_padding_height_width(
                    stride[0],
                    stride[1],
                    1,
                    1,
                    in_hw[0],
                    in_hw[1],
                    f_hw[0],
                    f_hw[1],
                    Padding::Same,
                )
            })
            .unwrap();
            (
                [g.padding.height, g.padding.width],
                [g.out_height, g.out_width],
            )
        };
        let (act_min, act_max) = rng.act_range();
        let p = PoolParams {
            stride_height: stride[0],
            stride_width: stride[1],
            filter_height: f_hw[0],
            filter_width: f_hw[1],
            pad_height: pad[0],
            pad_width: pad[1],
            act_min,
            act_max,
        };
        let batches = rng.usize(1, 2);
        let depth = rng.pick(&[1, 3, 8, 16, 33, 64]);
        let input_shape = [batches, in_hw[0], in_hw[1], depth];
        let output_shape = [batches, out[0], out[1], depth];
        let input = rng.data(input_shape.iter().product());
        let init = rng.data(output_shape.iter().product());
        let mut scratch = vec![0i32; fast::pool_scratch_len(input_shape) + rng.usize(0, 3)];
        let r = assert_same(
            &|| format!("case {case} average: {p:?} {input_shape:?} {output_shape:?}"),
            &init,
            |out| pooling::average_pool(&p, input_shape, output_shape, &input, out),
            |isa, out| {
                fast::average_pool_i8(
                    isa,
                    &p,
                    input_shape,
                    output_shape,
                    &input,
                    out,
                    &mut scratch,
                )
            },
        );
        errors += usize::from(r.is_err());
        let _ = assert_same(
            &|| format!("case {case} max: {p:?} {input_shape:?} {output_shape:?}"),
            &init,
            |out| pooling::max_pool(&p, input_shape, output_shape, &input, out),
            |isa, out| {
                fast::max_pool_i8(
                    isa,
                    &p,
                    input_shape,
                    output_shape,
                    &input,
                    out,
                    &mut scratch,
                )
            },
        );
    }
    assert!(errors > 10, "windows outside the input: {errors}");
}

#[test]
fn add_matches_reference() {
    let mut rng = Rng(0x7777_1111_cccc_3333);
    for case in 0..3000 {
        let (act_min, act_max) = rng.act_range();
        let scale = |rng: &mut Rng| rng.range(1, 4000) as f32 / 1000.0;
        let q = |rng: &mut Rng| TensorQuant {
            scale: scale(rng),
            zero_point: rng.zero_point(),
        };
        let mut p = AddParams::prepare(
            q(&mut rng),
            q(&mut rng),
            q(&mut rng),
            false,
            act_min,
            act_max,
        )
        .unwrap();
        if rng.chance(20) {
            // Raw multipliers, saturation corners included (shifts stay <= 0, as prepared).
            for m in [&mut p.input1, &mut p.input2, &mut p.output] {
                let r = rng.multiplier();
                m.multiplier = r.multiplier;
                m.shift = -(r.shift.clamp(-40, 40).abs());
            }
        }
        let n = if rng.chance(10) {
            rng.usize(0, 4)
        } else {
            rng.usize(1, 100)
        };
        let (a, b) = (rng.data(n), rng.data(n));
        let bc = Broadcast::new(&[n], &[n]).unwrap();
        let _ = assert_same(
            &|| format!("case {case}: {p:?} n {n}"),
            &rng.data(n),
            |out| elementwise::add_quantized(&p, &bc, &a, &b, out),
            |isa, out| fast::add_i8(isa, &p, &a, &b, out),
        );
    }
}

fn is_shape_err(r: Result<()>) -> bool {
    matches!(r, Err(KernelError::Shape(_)))
}

/// Runs `plan` at every supported level with the scratch `shrink` makes from its length,
/// (and otherwise correct operands) and asserts a shape error.
fn assert_short_scratch(
    plan: &impl WeightPlan,
    (input, filter, channels): (&[i8], &[i8], &[i32]),
    out_len: usize,
    shrink: impl Fn(ScratchLen) -> ScratchLen,
) {
    for isa in Isa::supported() {
        let w = weights(plan, isa, filter);
        let mut out = vec![0i8; out_len];
        let mut short = Buffers::new(shrink(plan.scratch_len(isa)), 0);
        let r = plan.eval(isa, input, &w, channels, &mut out, short.scratch());
        assert!(is_shape_err(r), "{isa:?}");
    }
}

#[test]
fn short_scratch_and_bad_lengths_are_errors() {
    let unit = QuantizedMultiplier {
        multiplier: 1 << 30,
        shift: 1,
    };
    let shapes = ConvShapes {
        input: [1, 3, 3, 2],
        filter: [2, 2, 2, 2],
        output: [1, 2, 2, 2],
    };
    let cp = ConvParams {
        stride_height: 1,
        stride_width: 1,
        dilation_height: 1,
        dilation_width: 1,
        pad_height: 0,
        pad_width: 0,
        input_zero_point: 0,
        output_zero_point: 0,
        act_min: -128,
        act_max: 127,
    };
    let (x, f) = ([0i8; 18], [0i8; 16]);
    let plan = fast::ConvPlan::new(&cp, &shapes, None, 2).unwrap();
    assert!(fast::ConvPlan::new(&cp, &shapes, Some(3), 2).is_err());
    // Panels: one panel of 8 channels, 4 pairs of patch values, 2 bytes each; rows: the
    // filter as is (2 rows of 8 values, padded to 16).
    assert_eq!(plan.packed_len(Isa::Avx2), 8 * 4 * 2);
    // Quads (VNNI): a header of 8 `i32`s, then 2 quads of patch values, 4 bytes each.
    assert_eq!(plan.packed_len(Isa::AvxVnni), 8 * 4 + 8 * 2 * 4);
    assert_eq!(plan.packed_len(Isa::Portable), 2 * 16);
    let mut packed = vec![0i8; plan.packed_len(Isa::Portable)];
    assert!(plan.pack(Isa::Portable, &f[..15], &mut packed).is_err());
    let mut channels = vec![0i32; plan.channels_len()];
    assert!(
        plan.prepare_channels(&f, None, &[unit; 3], &mut channels)
            .is_err()
    );
    plan.prepare_channels(&f, None, &[unit; 2], &mut channels)
        .unwrap();
    // The patches: `i16` scratch (pairs, rows) or `i8` (quads).
    assert_short_scratch(&plan, (&x, &f, &channels), 8, |l| ScratchLen {
        i16: l.i16.saturating_sub(1),
        i8: l.i8.saturating_sub(1),
        ..l
    });
    for isa in Isa::supported() {
        let w = weights(&plan, isa, &f);
        let mut out = [0i8; 8];
        let mut buffers = Buffers::new(plan.scratch_len(isa), 0);
        let r = plan.eval(isa, &x, &w[1..], &channels, &mut out, buffers.scratch());
        assert!(is_shape_err(r), "weights");
        let r = plan.eval(isa, &x, &w, &channels[1..], &mut out, buffers.scratch());
        assert!(is_shape_err(r), "channel data");
        let r = plan.eval(isa, &x, &w, &channels, &mut out[1..], buffers.scratch());
        assert!(is_shape_err(r), "output");
        plan.eval(isa, &x, &w, &channels, &mut out, buffers.scratch())
            .unwrap();
    }

    let dshapes = ConvShapes {
        input: [1, 3, 3, 2],
        filter: [1, 2, 2, 4],
        output: [1, 2, 2, 4],
    };
    let dp = depthwise_params(cp, 2);
    let plan = fast::DepthwisePlan::new(&dp, &dshapes, None, 4).unwrap();
    let mut channels = vec![0i32; plan.channels_len()];
    plan.prepare_channels(&f, None, &[unit; 4], &mut channels)
        .unwrap();
    let operands = (&x[..], &f[..], &channels[..]);
    assert_short_scratch(&plan, operands, 16, |l| ScratchLen { i8: l.i8 - 1, ..l });
    assert_short_scratch(&plan, operands, 16, |l| ScratchLen {
        usize: l.usize - 1,
        ..l
    });
    assert_short_scratch(&plan, (&x[1..], &f, &channels), 16, |l| l);

    let fp = FullyConnectedParams {
        input_zero_point: 0,
        output_zero_point: 0,
        act_min: -128,
        act_max: 127,
        output_depth: 2,
        accum_depth: 3,
        batches: 1,
    };
    let quant = FcQuantization::PerTensor {
        multiplier: unit,
        filter_zero_point: 0,
    };
    assert!(fast::FcPlan::new(&fp, FcQuantization::PerChannel(&[unit; 3]), None).is_err());
    let plan = fast::FcPlan::new(&fp, quant, None).unwrap();
    let mut channels = vec![0i32; plan.channels_len()];
    plan.prepare_channels(&[0; 6], None, &[unit], &mut channels)
        .unwrap();
    assert_short_scratch(&plan, (&[0; 2], &[0; 6], &channels), 2, |l| l);
    assert_short_scratch(&plan, (&[0; 3], &[0; 6], &channels), 2, |l| ScratchLen {
        i32: 1,
        ..l
    });
    let q = TensorQuant {
        scale: 1.0,
        zero_point: 0,
    };
    let add = AddParams::prepare(q, q, q, false, -128, 127).unwrap();
    for isa in Isa::supported() {
        let r = fast::add_i8(isa, &add, &[0; 2], &[0; 3], &mut [0; 2]);
        assert!(is_shape_err(r));
    }
}
