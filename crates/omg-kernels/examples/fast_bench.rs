//! Micro benchmark: reference vs fast int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED on the
//! shapes of micro_speech, the MLPerf KWS DS-CNN and ResNet8.
//!
//! Run with `cargo run --release -p omg-kernels --example fast_bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use omg_kernels::conv::{self, ConvParams, ConvShapes, DepthwiseParams};
use omg_kernels::fast;
use omg_kernels::fully_connected::{self, FcQuantization, FullyConnectedParams};
use omg_kernels::quant::{
    Padding, QuantizedMultiplier, WindowGeometry, compute_padding_height_width,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    fn i32s(&mut self, n: usize) -> Vec<i32> {
        (0..n).map(|_| (self.next() as i32) >> 12).collect()
    }
    fn multipliers(&mut self, n: usize) -> Vec<QuantizedMultiplier> {
        (0..n)
            .map(|_| QuantizedMultiplier {
                multiplier: (1 << 30) + (self.next() as i32 & 0x3fff_ffff),
                shift: -((self.next() % 10) as i32) - 4,
            })
            .collect()
    }
}

/// Median time per call in microseconds.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut iters = 0u32;
    while start.elapsed() < Duration::from_millis(50) {
        f();
        iters += 1;
    }
    let per_batch = iters.div_ceil(10).max(1);
    let mut samples: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(per_batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Runs only the benchmarks whose name contains the first command-line argument (if any).
fn selected(name: &str) -> bool {
    std::env::args()
        .nth(1)
        .is_none_or(|f| name.contains(f.as_str()))
}

/// Times the reference and the fast kernel (each writing its own `n_out`-byte output),
/// checks that they agree and prints the timings.
fn compare(
    name: &str,
    n_out: usize,
    mut reference: impl FnMut(&mut [i8]),
    mut fast: impl FnMut(&mut [i8]),
) {
    let (mut a, mut b) = (vec![0i8; n_out], vec![0i8; n_out]);
    let t_ref = time(|| reference(&mut a));
    let t_fast = time(|| fast(&mut b));
    assert_eq!(a, b, "{name}: outputs differ");
    println!(
        "{name:<44} ref {t_ref:>9.1} us   fast {t_fast:>8.1} us   x{:.2}",
        t_ref / t_fast
    );
}

/// Output size and padding of a dilation-1 window with the same stride in both directions.
fn geometry(
    input: [usize; 4],
    kernel: [usize; 2],
    stride: usize,
    padding: Padding,
) -> WindowGeometry {
    compute_padding_height_width(
        stride, stride, 1, 1, input[1], input[2], kernel[0], kernel[1], padding,
    )
    .unwrap()
}

/// Random input, filter, bias and per-channel multipliers of a convolution.
struct Operands {
    x: Vec<i8>,
    w: Vec<i8>,
    bias: Vec<i32>,
    qm: Vec<QuantizedMultiplier>,
}

fn operands(rng: &mut Rng, shapes: &ConvShapes, out_c: usize) -> Operands {
    Operands {
        x: rng.i8s(shapes.input.iter().product()),
        w: rng.i8s(shapes.filter.iter().product()),
        bias: rng.i32s(out_c),
        qm: rng.multipliers(out_c),
    }
}

fn bench_conv(
    rng: &mut Rng,
    name: &str,
    input: [usize; 4],
    filter: [usize; 4],
    stride: usize,
    padding: Padding,
) {
    if !selected(name) {
        return;
    }
    let g = geometry(input, [filter[1], filter[2]], stride, padding);
    let shapes = ConvShapes {
        input,
        filter,
        output: [input[0], g.out_height, g.out_width, filter[0]],
    };
    let p = ConvParams {
        stride_height: stride,
        stride_width: stride,
        dilation_height: 1,
        dilation_width: 1,
        pad_height: g.padding.height,
        pad_width: g.padding.width,
        input_zero_point: -3,
        output_zero_point: 5,
        act_min: -128,
        act_max: 127,
    };
    let Operands { x, w, bias, qm } = operands(rng, &shapes, filter[0]);
    let mut scratch = vec![0i16; fast::conv_scratch_len(&shapes)];
    compare(
        name,
        shapes.output.iter().product(),
        |out| {
            conv::conv2d_i8(&p, &shapes, black_box(&x), &w, Some(&bias), &qm, out).unwrap();
        },
        |out| {
            fast::conv2d_i8(
                &p,
                &shapes,
                black_box(&x),
                &w,
                Some(&bias),
                &qm,
                out,
                &mut scratch,
            )
            .unwrap();
        },
    );
}

fn bench_depthwise(
    rng: &mut Rng,
    name: &str,
    input: [usize; 4],
    k: [usize; 2],
    dm: usize,
    stride: usize,
) {
    if !selected(name) {
        return;
    }
    let g = geometry(input, k, stride, Padding::Same);
    let out_c = input[3] * dm;
    let shapes = ConvShapes {
        input,
        filter: [1, k[0], k[1], out_c],
        output: [input[0], g.out_height, g.out_width, out_c],
    };
    let p = DepthwiseParams {
        stride_height: stride,
        stride_width: stride,
        dilation_height: 1,
        dilation_width: 1,
        pad_height: g.padding.height,
        pad_width: g.padding.width,
        depth_multiplier: dm,
        input_zero_point: 7,
        output_zero_point: -4,
        act_min: -128,
        act_max: 127,
    };
    let Operands { x, w, bias, qm } = operands(rng, &shapes, out_c);
    let mut scratch = vec![0i32; fast::depthwise_scratch_len(&shapes)];
    compare(
        name,
        shapes.output.iter().product(),
        |out| {
            conv::depthwise_conv2d_i8(&p, &shapes, black_box(&x), &w, Some(&bias), &qm, out)
                .unwrap();
        },
        |out| {
            fast::depthwise_conv2d_i8(
                &p,
                &shapes,
                black_box(&x),
                &w,
                Some(&bias),
                &qm,
                out,
                &mut scratch,
            )
            .unwrap();
        },
    );
}

fn bench_fc(rng: &mut Rng, name: &str, accum_depth: usize, output_depth: usize) {
    if !selected(name) {
        return;
    }
    let p = FullyConnectedParams {
        input_zero_point: -20,
        output_zero_point: 3,
        act_min: -128,
        act_max: 127,
        output_depth,
        accum_depth,
        batches: 1,
    };
    let x = rng.i8s(accum_depth);
    let w = rng.i8s(accum_depth * output_depth);
    let bias = rng.i32s(output_depth);
    let quant = FcQuantization::PerTensor {
        multiplier: rng.multipliers(1)[0],
        filter_zero_point: 0,
    };
    let mut sums = vec![0i32; output_depth];
    fast::fc_row_sums(&w, accum_depth, &mut sums);
    compare(
        name,
        output_depth,
        |out| {
            fully_connected::fully_connected_i8(&p, quant, black_box(&x), &w, Some(&bias), out)
                .unwrap();
        },
        |out| {
            fast::fully_connected_i8(&p, quant, black_box(&x), &w, Some(&bias), out, &sums)
                .unwrap();
        },
    );
}

/// One benchmark: name and shape.
enum Bench {
    /// CONV_2D: input, filter `[out_c, kh, kw, in_c]`, stride, padding.
    Conv(&'static str, [usize; 4], [usize; 4], usize, Padding),
    /// DEPTHWISE_CONV_2D (SAME): input, kernel `[kh, kw]`, depth multiplier, stride.
    Depthwise(&'static str, [usize; 4], [usize; 2], usize, usize),
    /// FULLY_CONNECTED: accum depth, output depth.
    Fc(&'static str, usize, usize),
}

fn main() {
    use Bench::{Conv, Depthwise, Fc};
    use Padding::{Same, Valid};
    #[rustfmt::skip]
    let benches = [
        Depthwise("micro_speech DW 49x40x1 10x8 dm8 s2", [1, 49, 40, 1], [10, 8], 8, 2),
        Conv("KWS conv 49x10x1 10x4 ->64 s2", [1, 49, 10, 1], [64, 10, 4, 1], 2, Same),
        Conv("KWS conv 25x5x64 3x3 ->64", [1, 25, 5, 64], [64, 3, 3, 64], 1, Same),
        Conv("KWS pointwise 25x5x64 1x1 ->64", [1, 25, 5, 64], [64, 1, 1, 64], 1, Valid),
        Depthwise("KWS DW 25x5x64 3x3 dm1", [1, 25, 5, 64], [3, 3], 1, 1),
        Conv("ResNet8 conv 32x32x16 3x3 ->16", [1, 32, 32, 16], [16, 3, 3, 16], 1, Same),
        Conv("ResNet8 conv 32x32x3 3x3 ->16", [1, 32, 32, 3], [16, 3, 3, 3], 1, Same),
        Fc("FC 4000->4", 4000, 4),
        Fc("FC 640->128", 640, 128),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for bench in benches {
        match bench {
            Conv(name, input, filter, stride, padding) => {
                bench_conv(&mut rng, name, input, filter, stride, padding)
            }
            Depthwise(name, input, k, dm, stride) => {
                bench_depthwise(&mut rng, name, input, k, dm, stride)
            }
            Fc(name, accum_depth, output_depth) => {
                bench_fc(&mut rng, name, accum_depth, output_depth)
            }
        }
    }
}
