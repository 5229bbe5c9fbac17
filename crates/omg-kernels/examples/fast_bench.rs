//! Micro benchmark: the reference int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / ADD /
//! AVERAGE_POOL_2D kernels against the optimized ones at every instruction-set level this CPU
//! supports, on layer shapes of micro_speech, the MLPerf Tiny models and ResNet8.
//!
//! Run with `cargo run --release -p omg-kernels --example fast_bench [FILTER]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use omg_kernels::conv::{self, ConvParams, ConvShapes, DepthwiseParams};
use omg_kernels::elementwise::{self, AddParams, TensorQuant};
use omg_kernels::fast::{self, Isa, Scratch, WeightPlan};
use omg_kernels::fully_connected::{self, FcQuantization, FullyConnectedParams};
use omg_kernels::pooling::{self, PoolParams};
use omg_kernels::quant::{
    Padding, QuantizedMultiplier, WindowGeometry, compute_padding_height_width,
};
use omg_kernels::shape::Broadcast;

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

/// Times the reference kernel and the optimized one at every supported level (each writing
/// its own `n_out`-byte output; `setup` prepares a level outside the timing), checks that they
/// agree and prints the timings.
fn compare<S>(
    name: &str,
    n_out: usize,
    mut reference: impl FnMut(&mut [i8]),
    mut setup: impl FnMut(Isa) -> S,
    mut optimized: impl FnMut(&mut S, &mut [i8]),
) {
    let mut want = vec![0i8; n_out];
    let t_ref = time(|| reference(&mut want));
    print!("{name:<40} ref {t_ref:>9.1} us");
    for isa in Isa::supported() {
        let mut got = vec![0i8; n_out];
        let mut state = setup(isa);
        let t = time(|| optimized(&mut state, &mut got));
        assert_eq!(want, got, "{name} {isa:?}: outputs differ");
        print!("   {isa:?} {t:>7.2} us x{:<5.1}", t_ref / t);
    }
    println!();
}

/// Prepared operands of an optimized weight kernel at every supported level.
struct Prepared {
    filter: Vec<i8>,
    channels: Vec<i32>,
}

impl Prepared {
    fn new(
        plan: &impl WeightPlan,
        filter: &[i8],
        bias: &[i32],
        multipliers: &[QuantizedMultiplier],
    ) -> Self {
        let mut channels = vec![0; plan.channels_len()];
        plan.prepare_channels(filter, Some(bias), multipliers, &mut channels)
            .unwrap();
        Prepared {
            filter: filter.to_vec(),
            channels,
        }
    }

    /// A runner at level `isa` (weights packed and scratch allocated here, outside the timing).
    fn at(&self, plan: &impl WeightPlan, isa: Isa) -> Runner {
        let weights = match plan.packed_len(isa) {
            0 => self.filter.clone(),
            n => {
                let mut w = vec![0; n];
                plan.pack(isa, &self.filter, &mut w).unwrap();
                w
            }
        };
        let len = plan.scratch_len(isa);
        Runner {
            isa,
            weights,
            channels: self.channels.clone(),
            scratch: (
                vec![0; len.i8],
                vec![0; len.i16],
                vec![0; len.i32],
                vec![0; len.usize],
            ),
        }
    }
}

/// An optimized weight kernel ready to run at one level.
struct Runner {
    isa: Isa,
    weights: Vec<i8>,
    channels: Vec<i32>,
    scratch: (Vec<i8>, Vec<i16>, Vec<i32>, Vec<usize>),
}

impl Runner {
    fn eval(&mut self, plan: &impl WeightPlan, input: &[i8], out: &mut [i8]) {
        let scratch = Scratch {
            i8: &mut self.scratch.0,
            i16: &mut self.scratch.1,
            i32: &mut self.scratch.2,
            usize: &mut self.scratch.3,
        };
        plan.eval(self.isa, input, &self.weights, &self.channels, out, scratch)
            .unwrap();
    }
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

fn bench_conv(
    rng: &mut Rng,
    name: &str,
    input: [usize; 4],
    filter: [usize; 4],
    stride: usize,
    padding: Padding,
) {
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
    let (x, w) = (
        rng.i8s(input.iter().product()),
        rng.i8s(filter.iter().product()),
    );
    let (bias, qm) = (rng.i32s(filter[0]), rng.multipliers(filter[0]));
    let plan = fast::ConvPlan::new(&p, &shapes, Some(bias.len()), qm.len()).unwrap();
    let prepared = Prepared::new(&plan, &w, &bias, &qm);
    compare(
        name,
        shapes.output.iter().product(),
        |out| conv::conv2d_i8(&p, &shapes, black_box(&x), &w, Some(&bias), &qm, out).unwrap(),
        |isa| prepared.at(&plan, isa),
        |r, out| r.eval(&plan, black_box(&x), out),
    );
}

fn bench_depthwise(
    rng: &mut Rng,
    name: &str,
    input: [usize; 4],
    k: [usize; 2],
    dm: usize,
    stride: usize,
    padding: Padding,
) {
    let g = geometry(input, k, stride, padding);
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
    let (x, w) = (
        rng.i8s(input.iter().product()),
        rng.i8s(shapes.filter.iter().product()),
    );
    let (bias, qm) = (rng.i32s(out_c), rng.multipliers(out_c));
    let plan = fast::DepthwisePlan::new(&p, &shapes, Some(bias.len()), qm.len()).unwrap();
    let prepared = Prepared::new(&plan, &w, &bias, &qm);
    compare(
        name,
        shapes.output.iter().product(),
        |out| {
            conv::depthwise_conv2d_i8(&p, &shapes, black_box(&x), &w, Some(&bias), &qm, out)
                .unwrap()
        },
        |isa| prepared.at(&plan, isa),
        |r, out| r.eval(&plan, black_box(&x), out),
    );
}

fn bench_fc(rng: &mut Rng, name: &str, accum_depth: usize, output_depth: usize) {
    let p = FullyConnectedParams {
        input_zero_point: -20,
        output_zero_point: 3,
        act_min: -128,
        act_max: 127,
        output_depth,
        accum_depth,
        batches: 1,
    };
    let (x, w) = (rng.i8s(accum_depth), rng.i8s(accum_depth * output_depth));
    let bias = rng.i32s(output_depth);
    let multiplier = rng.multipliers(1)[0];
    let quant = FcQuantization::PerTensor {
        multiplier,
        filter_zero_point: 0,
    };
    let plan = fast::FcPlan::new(&p, quant, Some(bias.len())).unwrap();
    let prepared = Prepared::new(&plan, &w, &bias, &[multiplier]);
    compare(
        name,
        output_depth,
        |out| {
            fully_connected::fully_connected_i8(&p, quant, black_box(&x), &w, Some(&bias), out)
                .unwrap()
        },
        |isa| prepared.at(&plan, isa),
        |r, out| r.eval(&plan, black_box(&x), out),
    );
}

fn bench_add(rng: &mut Rng, name: &str, n: usize) {
    let q = |scale, zero_point| TensorQuant { scale, zero_point };
    let p = AddParams::prepare(q(0.05, -3), q(0.07, 10), q(0.1, -1), false, -128, 127).unwrap();
    let (a, b) = (rng.i8s(n), rng.i8s(n));
    let bc = Broadcast::new(&[n], &[n]).unwrap();
    compare(
        name,
        n,
        |out| elementwise::add_quantized(&p, &bc, black_box(&a), &b, out).unwrap(),
        |isa| isa,
        |&mut isa, out| fast::add_i8(isa, &p, black_box(&a), &b, out).unwrap(),
    );
}

fn bench_average_pool(rng: &mut Rng, name: &str, input: [usize; 4], k: [usize; 2]) {
    let p = PoolParams {
        stride_height: 1,
        stride_width: 1,
        filter_height: k[0],
        filter_width: k[1],
        pad_height: 0,
        pad_width: 0,
        act_min: -128,
        act_max: 127,
    };
    let output = [input[0], input[1] - k[0] + 1, input[2] - k[1] + 1, input[3]];
    let x = rng.i8s(input.iter().product());
    let mut scratch = vec![0; fast::pool_scratch_len(input)];
    compare(
        name,
        output.iter().product(),
        |out| pooling::average_pool(&p, input, output, black_box(&x), out).unwrap(),
        |isa| isa,
        |&mut isa, out| {
            fast::average_pool_i8(isa, &p, input, output, black_box(&x), out, &mut scratch).unwrap()
        },
    );
}

/// One benchmark: name and shape.
enum Bench {
    /// CONV_2D: input, filter `[out_c, kh, kw, in_c]`, stride, padding.
    Conv(&'static str, [usize; 4], [usize; 4], usize, Padding),
    /// DEPTHWISE_CONV_2D: input, kernel `[kh, kw]`, depth multiplier, stride, padding.
    Depthwise(&'static str, [usize; 4], [usize; 2], usize, usize, Padding),
    /// FULLY_CONNECTED: accum depth, output depth.
    Fc(&'static str, usize, usize),
    /// Same-shape ADD of this many elements.
    Add(&'static str, usize),
    /// AVERAGE_POOL_2D (VALID, stride 1): input, kernel.
    AveragePool(&'static str, [usize; 4], [usize; 2]),
}

fn main() {
    use Bench::{Add, AveragePool, Conv, Depthwise, Fc};
    use Padding::{Same, Valid};
    #[rustfmt::skip]
    let benches = [
        Depthwise("micro_speech DW 49x40x1 10x8 dm8 s2", [1, 49, 40, 1], [10, 8], 8, 2, Same),
        Fc("micro_speech FC 4000->4", 4000, 4),
        Conv("KWS conv 49x10x1 10x4 ->64 s2", [1, 49, 10, 1], [64, 10, 4, 1], 2, Same),
        Depthwise("KWS DW 25x5x64 3x3", [1, 25, 5, 64], [3, 3], 1, 1, Same),
        Conv("KWS pointwise 25x5x64 ->64", [1, 25, 5, 64], [64, 1, 1, 64], 1, Valid),
        AveragePool("KWS average pool 25x5x64", [1, 25, 5, 64], [25, 5]),
        Depthwise("str_ww DW 24x1x128 10x1", [1, 24, 1, 128], [10, 1], 1, 1, Valid),
        Conv("str_ww pointwise 24x1x128 ->128", [1, 24, 1, 128], [128, 1, 1, 128], 1, Valid),
        Fc("ad01 FC 640->128", 640, 128),
        Fc("ad01 FC 128->128", 128, 128),
        Conv("VWW conv 96x96x3 3x3 ->8 s2", [1, 96, 96, 3], [8, 3, 3, 3], 2, Same),
        Depthwise("VWW DW 48x48x8 3x3", [1, 48, 48, 8], [3, 3], 1, 1, Same),
        Conv("VWW pointwise 48x48x8 ->16", [1, 48, 48, 8], [16, 1, 1, 8], 1, Valid),
        Conv("VWW pointwise 24x24x32 ->32", [1, 24, 24, 32], [32, 1, 1, 32], 1, Valid),
        Conv("VWW pointwise 6x6x128 ->128", [1, 6, 6, 128], [128, 1, 1, 128], 1, Valid),
        Depthwise("VWW DW 6x6x128 3x3", [1, 6, 6, 128], [3, 3], 1, 1, Same),
        Conv("ResNet8 conv 32x32x3 3x3 ->16", [1, 32, 32, 3], [16, 3, 3, 3], 1, Same),
        Conv("ResNet8 conv 32x32x16 3x3 ->16", [1, 32, 32, 16], [16, 3, 3, 16], 1, Same),
        Conv("ResNet8 conv 8x8x64 3x3 ->64", [1, 8, 8, 64], [64, 3, 3, 64], 1, Same),
        Add("ResNet8 ADD 32x32x16", 32 * 32 * 16),
        Conv("ResNet large conv 32x32x40 3x3 ->40", [1, 32, 32, 40], [40, 3, 3, 40], 1, Same),
        Conv("ResNet large conv 8x8x160 3x3 ->160", [1, 8, 8, 160], [160, 3, 3, 160], 1, Same),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for bench in benches {
        match bench {
            Conv(name, input, filter, stride, padding) if selected(name) => {
                bench_conv(&mut rng, name, input, filter, stride, padding)
            }
            Depthwise(name, input, k, dm, stride, padding) if selected(name) => {
                bench_depthwise(&mut rng, name, input, k, dm, stride, padding)
            }
            Fc(name, accum_depth, output_depth) if selected(name) => {
                bench_fc(&mut rng, name, accum_depth, output_depth)
            }
            Add(name, n) if selected(name) => bench_add(&mut rng, name, n),
            AveragePool(name, input, k) if selected(name) => {
                bench_average_pool(&mut rng, name, input, k)
            }
            _ => {}
        }
    }
}
