//! Micro benchmark: reference vs fast int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED on the
//! shapes of micro_speech, the MLPerf KWS DS-CNN and ResNet8.
//!
//! Run with `cargo run --release -p omg-kernels --example fast_bench`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use omg_kernels::conv::{self, ConvParams, ConvShapes, DepthwiseParams};
use omg_kernels::fast;
use omg_kernels::fully_connected::{self, FcQuantization, FullyConnectedParams};
use omg_kernels::quant::{Padding, QuantizedMultiplier, compute_padding_height_width};

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

fn report(name: &str, reference: f64, fast: f64) {
    println!(
        "{name:<44} ref {reference:>9.1} us   fast {fast:>8.1} us   x{:.2}",
        reference / fast
    );
}

#[allow(clippy::too_many_arguments)]
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
    let g = compute_padding_height_width(
        stride, stride, 1, 1, input[1], input[2], filter[1], filter[2], padding,
    )
    .unwrap();
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
    let x = rng.i8s(input.iter().product());
    let w = rng.i8s(filter.iter().product());
    let bias = rng.i32s(filter[0]);
    let qm = rng.multipliers(filter[0]);
    let n_out = shapes.output.iter().product();
    let (mut a, mut b) = (vec![0i8; n_out], vec![0i8; n_out]);
    let mut scratch = vec![0i16; fast::conv_scratch_len(&shapes)];
    let t_ref = time(|| {
        conv::conv2d_i8(&p, &shapes, black_box(&x), &w, Some(&bias), &qm, &mut a).unwrap();
    });
    let t_fast = time(|| {
        fast::conv2d_i8(
            &p,
            &shapes,
            black_box(&x),
            &w,
            Some(&bias),
            &qm,
            &mut b,
            &mut scratch,
        )
        .unwrap();
    });
    assert_eq!(a, b, "{name}: outputs differ");
    report(name, t_ref, t_fast);
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
    let g = compute_padding_height_width(
        stride,
        stride,
        1,
        1,
        input[1],
        input[2],
        k[0],
        k[1],
        Padding::Same,
    )
    .unwrap();
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
    let x = rng.i8s(input.iter().product());
    let w = rng.i8s(shapes.filter.iter().product());
    let bias = rng.i32s(out_c);
    let qm = rng.multipliers(out_c);
    let n_out = shapes.output.iter().product();
    let (mut a, mut b) = (vec![0i8; n_out], vec![0i8; n_out]);
    let mut scratch = vec![0i32; fast::depthwise_scratch_len(&shapes)];
    let t_ref = time(|| {
        conv::depthwise_conv2d_i8(&p, &shapes, black_box(&x), &w, Some(&bias), &qm, &mut a)
            .unwrap();
    });
    let t_fast = time(|| {
        fast::depthwise_conv2d_i8(
            &p,
            &shapes,
            black_box(&x),
            &w,
            Some(&bias),
            &qm,
            &mut b,
            &mut scratch,
        )
        .unwrap();
    });
    assert_eq!(a, b, "{name}: outputs differ");
    report(name, t_ref, t_fast);
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
    let (mut a, mut b) = (vec![0i8; output_depth], vec![0i8; output_depth]);
    let t_ref = time(|| {
        fully_connected::fully_connected_i8(&p, quant, black_box(&x), &w, Some(&bias), &mut a)
            .unwrap();
    });
    let t_fast = time(|| {
        fast::fully_connected_i8(&p, quant, black_box(&x), &w, Some(&bias), &mut b, &sums).unwrap();
    });
    assert_eq!(a, b, "{name}: outputs differ");
    report(name, t_ref, t_fast);
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    bench_depthwise(
        &mut rng,
        "micro_speech DW 49x40x1 10x8 dm8 s2",
        [1, 49, 40, 1],
        [10, 8],
        8,
        2,
    );
    bench_conv(
        &mut rng,
        "KWS conv 49x10x1 10x4 ->64 s2",
        [1, 49, 10, 1],
        [64, 10, 4, 1],
        2,
        Padding::Same,
    );
    bench_conv(
        &mut rng,
        "KWS conv 25x5x64 3x3 ->64",
        [1, 25, 5, 64],
        [64, 3, 3, 64],
        1,
        Padding::Same,
    );
    bench_conv(
        &mut rng,
        "KWS pointwise 25x5x64 1x1 ->64",
        [1, 25, 5, 64],
        [64, 1, 1, 64],
        1,
        Padding::Valid,
    );
    bench_depthwise(
        &mut rng,
        "KWS DW 25x5x64 3x3 dm1",
        [1, 25, 5, 64],
        [3, 3],
        1,
        1,
    );
    bench_conv(
        &mut rng,
        "ResNet8 conv 32x32x16 3x3 ->16",
        [1, 32, 32, 16],
        [16, 3, 3, 16],
        1,
        Padding::Same,
    );
    bench_conv(
        &mut rng,
        "ResNet8 conv 32x32x3 3x3 ->16",
        [1, 32, 32, 3],
        [16, 3, 3, 3],
        1,
        Padding::Same,
    );
    bench_fc(&mut rng, "FC 4000->4", 4000, 4);
    bench_fc(&mut rng, "FC 640->128", 640, 128);
}
