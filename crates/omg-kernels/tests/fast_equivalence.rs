//! Property tests: the fast kernels of `omg_kernels::fast` produce exactly the same bytes (and
//! the same errors) as the reference kernels, on thousands of random cases.

use omg_kernels::conv::{self, ConvParams, ConvShapes, DepthwiseParams};
use omg_kernels::fast;
use omg_kernels::fully_connected::{self, FcQuantization, FullyConnectedParams};
use omg_kernels::quant::{Padding, QuantizedMultiplier, compute_padding_height_width};
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
    fn multiplier(&mut self) -> QuantizedMultiplier {
        let multiplier = match self.next() % 6 {
            0 => i32::MAX,
            1 => 1 << 30,
            2 => 0,
            _ => self.range(1 << 30, i64::from(i32::MAX)) as i32,
        };
        let shift = if self.chance(20) {
            self.range(-31, 30) as i32
        } else {
            self.range(-12, 2) as i32
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
    fn act_range(&mut self) -> (i32, i32) {
        if self.chance(50) {
            (-128, 127)
        } else {
            let a = self.range(-128, 127) as i32;
            let b = self.range(-128, 127) as i32;
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
    let in_hw = [rng.usize(1, 9), rng.usize(1, 9)];
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

/// Runs the reference and the fast kernel, each on its own copy of `output`, asserts that
/// they return the same result and leave the same bytes, and returns the result.
fn assert_same(
    context: &dyn Fn() -> String,
    output: &[i8],
    reference: impl FnOnce(&mut [i8]) -> Result<()>,
    fast: impl FnOnce(&mut [i8]) -> Result<()>,
) -> Result<()> {
    let (mut want, mut got) = (output.to_vec(), output.to_vec());
    let r = reference(&mut want);
    let f = fast(&mut got);
    assert_eq!(r, f, "{}", context());
    assert_eq!(want, got, "{}", context());
    r
}

#[test]
fn conv2d_matches_reference() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for case in 0..3000 {
        let (in_hw, f_hw, w, batches) = geometry(&mut rng);
        let f_c = rng.pick(&[1, 2, 3, 4, 8, 9, 17]);
        let groups = if rng.chance(25) { rng.usize(2, 3) } else { 1 };
        let out_c = groups * rng.usize(1, 9);
        let shapes = ConvShapes {
            input: [batches, in_hw[0], in_hw[1], f_c * groups],
            filter: [out_c, f_hw[0], f_hw[1], f_c],
            output: [batches, w.out[0], w.out[1], out_c],
        };
        let p = conv_params(&mut rng, &w);
        let o = operands(&mut rng, &shapes, out_c);
        let mut scratch = vec![0i16; fast::conv_scratch_len(&shapes) + rng.usize(0, 3)];
        let (x, f, b, m) = (&o.input, &o.filter, o.bias.as_deref(), &o.multipliers);
        let _ = assert_same(
            &|| format!("case {case}: {p:?} {shapes:?}"),
            &o.output,
            |out| conv::conv2d_i8(&p, &shapes, x, f, b, m, out),
            |out| fast::conv2d_i8(&p, &shapes, x, f, b, m, out, &mut scratch),
        );
    }
}

#[test]
fn depthwise_matches_reference() {
    let mut rng = Rng(0xfeed_face_dead_beef);
    for case in 0..3000 {
        let (in_hw, f_hw, w, batches) = geometry(&mut rng);
        let in_c = rng.pick(&[1, 2, 3, 4, 5, 8, 16, 17, 33]);
        let dm = if rng.chance(10) { 16 } else { rng.usize(1, 8) };
        let out_c = in_c * dm;
        let shapes = ConvShapes {
            input: [batches, in_hw[0], in_hw[1], in_c],
            filter: [1, f_hw[0], f_hw[1], out_c],
            output: [batches, w.out[0], w.out[1], out_c],
        };
        let p = depthwise_params(conv_params(&mut rng, &w), dm);
        let o = operands(&mut rng, &shapes, out_c);
        let mut scratch = vec![0i32; fast::depthwise_scratch_len(&shapes) + rng.usize(0, 3)];
        let (x, f, b, m) = (&o.input, &o.filter, o.bias.as_deref(), &o.multipliers);
        let _ = assert_same(
            &|| format!("case {case}: {p:?} {shapes:?}"),
            &o.output,
            |out| conv::depthwise_conv2d_i8(&p, &shapes, x, f, b, m, out),
            |out| fast::depthwise_conv2d_i8(&p, &shapes, x, f, b, m, out, &mut scratch),
        );
    }
}

#[test]
fn fully_connected_matches_reference() {
    let mut rng = Rng(0x5151_7272_9393_b4b4);
    for case in 0..3000 {
        let batches = rng.usize(1, 3);
        let accum_depth = if rng.chance(5) { 0 } else { rng.usize(1, 80) };
        let output_depth = if rng.chance(3) { 0 } else { rng.usize(1, 11) };
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
        let mut sums = vec![0i32; output_depth];
        fast::fc_row_sums(&filter, accum_depth, &mut sums);
        let init = rng.data(batches * output_depth);
        let (x, f, b) = (&input, &filter, bias.as_deref());
        let _ = assert_same(
            &|| format!("case {case}: {p:?} {quant:?}"),
            &init,
            |out| fully_connected::fully_connected_i8(&p, quant, x, f, b, out),
            |out| fast::fully_connected_i8(&p, quant, x, f, b, out, &sums),
        );
    }
}

fn is_shape_err(r: Result<()>) -> bool {
    matches!(r, Err(KernelError::Shape(_)))
}

#[test]
fn short_scratch_and_bad_lengths_are_errors() {
    let unit = QuantizedMultiplier {
        multiplier: 1 << 30,
        shift: 1,
    };
    let no_error = || String::from("the same error");
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
    let mut out = [0i8; 8];
    let len = fast::conv_scratch_len(&shapes);
    assert_eq!(len, 8);
    let mut scratch = vec![0i16; len - 1];
    let r = fast::conv2d_i8(
        &cp,
        &shapes,
        &x,
        &f,
        None,
        &[unit; 2],
        &mut out,
        &mut scratch,
    );
    assert!(is_shape_err(r));
    let mut scratch = vec![0i16; len];
    // Wrong output length: the same error as the reference.
    let r = assert_same(
        &no_error,
        &[0; 7],
        |out| conv::conv2d_i8(&cp, &shapes, &x, &f, None, &[unit; 2], out),
        |out| fast::conv2d_i8(&cp, &shapes, &x, &f, None, &[unit; 2], out, &mut scratch),
    );
    assert!(r.is_err());

    let dshapes = ConvShapes {
        input: [1, 3, 3, 2],
        filter: [1, 2, 2, 4],
        output: [1, 2, 2, 4],
    };
    let dp = depthwise_params(cp, 2);
    assert_eq!(fast::depthwise_scratch_len(&dshapes), 4);
    let mut out = [0i8; 16];
    let r = fast::depthwise_conv2d_i8(
        &dp,
        &dshapes,
        &x,
        &f,
        None,
        &[unit; 4],
        &mut out,
        &mut [0i32; 3],
    );
    assert!(is_shape_err(r));
    let bias = Some(&[0; 3][..]);
    let r = assert_same(
        &no_error,
        &out,
        |out| conv::depthwise_conv2d_i8(&dp, &dshapes, &x, &f, bias, &[unit; 4], out),
        |out| {
            let mut scratch = [0i32; 4];
            fast::depthwise_conv2d_i8(&dp, &dshapes, &x, &f, bias, &[unit; 4], out, &mut scratch)
        },
    );
    assert!(r.is_err());

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
    let mut out = [0i8; 2];
    let r = fast::fully_connected_i8(&fp, quant, &[0; 3], &[0; 6], None, &mut out, &[0; 1]);
    assert!(is_shape_err(r));
    let r = assert_same(
        &no_error,
        &out,
        |out| fully_connected::fully_connected_i8(&fp, quant, &[0; 2], &[0; 6], None, out),
        |out| fast::fully_connected_i8(&fp, quant, &[0; 2], &[0; 6], None, out, &[0; 2]),
    );
    assert!(r.is_err());
}
