//! Runs the reference models through the omg trusted application in OP-TEE and through the omg
//! engine in the normal world, in the same machine, and checks that both give the same bytes,
//! and the bytes of TensorFlow Lite Micro where the reference data has them:
//!
//!     omg-optee-host DATA_DIR
//!
//! DATA_DIR is the reference data (micro_speech/ and mlperf_tiny/). It also feeds the TA
//! hostile commands and models (wrong sizes, order, truncated and corrupted models), which must
//! give error codes while the TA stays alive. Prints, per model, the TA's cold start (open
//! session and model preparation), the mean time of one invoke in the TA and in the normal
//! world, their ratio, and the TA heap's high-water mark (OP-TEE's statistics PTA). Exits 1 if
//! any check failed. Last, it checks the TA's platform services: randomness from the TEE and
//! counters in RPMB secure storage that persist across TA instances and leave no file in the
//! normal world's /data/tee, and keys derived from the hardware-unique key (seen only as their
//! SHA-256): stable across instances, different per label; and attestation evidence (the TA's
//! memory hash signed by OP-TEE's attestation PTA over a nonce) and an attestation token over
//! the same nonce, written with the PTA's public key to DATA_DIR/../attest/ for verifiers
//! outside the machine (tools/optee/verify_attestation.py, the vendor side's Rust verifier); a TA with one byte changed must have another memory
//! hash, a TA signed with another key must not load.
#![forbid(unsafe_code)]

mod protocol;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use omg_protocol::optee::{DeviceKey, OpteeToken};
use optee_teec::{
    Context, Operation, ParamNone, ParamTmpRef, ParamType, ParamValue, Session, Uuid,
};

/// The TA's UUID (optee/ta/uuid.txt).
const TA_UUID: &str = include_str!("../../ta/uuid.txt");
/// The commands of optee/ta/src/commands.rs.
const CMD_LOAD_MODEL: u32 = 0;
const CMD_INVOKE: u32 = 1;
const CMD_RESET: u32 = 2;
const CMD_RANDOM: u32 = 3;
const CMD_COUNTER: u32 = 4;
const CMD_KEY_FINGERPRINT: u32 = 5;
const CMD_ATTEST: u32 = 6;
/// TA command: an attestation token over a nonce, for a random enclave key hash.
const CMD_SAMPLE_TOKEN: u32 = 8;
const CMD_PLATFORM_CHECK: u32 = 7;

/// OP-TEE's attestation PTA and its command returning the public key of its signatures.
const ATTESTATION_PTA_UUID: &str = "39800861-182a-4720-9b67-2bcd622bc0b5";
const PTA_ATTESTATION_GET_PUBKEY: u32 = 0;

/// OP-TEE's statistics pseudo TA and its command listing the loaded TAs' heaps.
const STATS_PTA_UUID: &str = "d96a5b40-e2c7-b1af-8794-1002a5d5c61b";
const STATS_CMD_TA_STATS: u32 = 3;

/// GlobalPlatform result codes the checks expect.
const TEE_ERROR_GENERIC: u32 = 0xFFFF_0000;
const TEE_ERROR_BAD_FORMAT: u32 = 0xFFFF_0005;
const TEE_ERROR_BAD_PARAMETERS: u32 = 0xFFFF_0006;
const TEE_ERROR_BAD_STATE: u32 = 0xFFFF_0007;
const TEE_ERROR_NOT_SUPPORTED: u32 = 0xFFFF_000A;
const TEE_ERROR_OUT_OF_MEMORY: u32 = 0xFFFF_000C;
const TEE_ERROR_SHORT_BUFFER: u32 = 0xFFFF_0010;

/// Each timing runs invokes until this much time passed (at least [`MIN_REPS`] invokes).
const TIMING_BUDGET: Duration = Duration::from_millis(300);
const MIN_REPS: u32 = 3;

/// One input of a model, with the reference output when the data has one.
struct Sample {
    name: String,
    /// Inputs, one per invoke (several for a clip fed frame by frame).
    frames: Vec<Vec<u8>>,
    /// TFLM's outputs, concatenated over the frames.
    expected: Option<Vec<u8>>,
}

/// A model and what to run it on.
struct Case {
    model: &'static str,
    samples: Vec<Sample>,
}

/// The outcome of the checks: failures are printed as they happen and counted.
#[derive(Default)]
struct Report {
    failures: u32,
}

impl Report {
    fn check(&mut self, ok: bool, what: &str) {
        if !ok {
            self.failures += 1;
            println!("FAIL {what}");
        }
    }
}

fn read(dir: &Path, rel: &str) -> Result<Vec<u8>, String> {
    std::fs::read(dir.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
}

/// The 16-bit samples of a RIFF/WAVE file's data chunk (little-endian bytes, as the model's
/// int16 input takes them).
fn wav_samples(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err("not a WAVE file".into());
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = bytes
            .get(at + 8..at + 8 + len)
            .ok_or("truncated WAVE chunk")?;
        if id == b"data" {
            return Ok(body.to_vec());
        }
        at += 8 + len + (len & 1);
    }
    Err("no data chunk".into())
}

/// The audio preprocessor's windows of a 1 s clip: 49 windows of 480 samples, stride 320.
fn clip_frames(samples: &[u8]) -> Vec<Vec<u8>> {
    (0..49)
        .map(|i| samples[i * 640..i * 640 + 960].to_vec())
        .collect()
}

/// Splits `bytes` into inputs of `size` bytes.
fn chunks(bytes: &[u8], size: usize) -> Vec<Vec<u8>> {
    bytes.chunks(size).map(<[u8]>::to_vec).collect()
}

/// The nine models of the reference data and their inputs.
fn cases(data: &Path) -> Result<Vec<Case>, String> {
    let ms = "micro_speech/reference";
    let mt = "mlperf_tiny/reference";
    let clips = ["yes", "no", "silence", "noise"];
    let single = |name: &str, input: &str, output: &str| -> Result<Sample, String> {
        Ok(Sample {
            name: name.into(),
            frames: vec![read(data, input)?],
            expected: Some(read(data, output)?),
        })
    };
    let mut preprocessor_int8 = Vec::new();
    let mut preprocessor_float = Vec::new();
    for word in ["yes", "no"] {
        let samples = wav_samples(&read(
            data,
            &format!("micro_speech/testdata/{word}_30ms.wav"),
        )?)?;
        preprocessor_int8.push(Sample {
            name: format!("{word}_30ms"),
            frames: vec![samples[..960].to_vec()],
            expected: Some(read(data, &format!("{ms}/{word}_30ms_feature.bin"))?),
        });
    }
    for clip in clips {
        let samples = wav_samples(&read(
            data,
            &format!("micro_speech/testdata/{clip}_1000ms.wav"),
        )?)?;
        preprocessor_int8.push(Sample {
            name: format!("{clip}_1000ms"),
            frames: clip_frames(&samples),
            expected: Some(read(data, &format!("{ms}/{clip}_1000ms_features.bin"))?),
        });
        preprocessor_float.push(Sample {
            name: format!("{clip}_1000ms"),
            frames: clip_frames(&samples),
            expected: None,
        });
    }
    let mut micro_speech = vec![single(
        "random",
        &format!("{ms}/micro_speech_random_input.bin"),
        &format!("{ms}/micro_speech_random_output_tflm.bin"),
    )?];
    for clip in clips {
        micro_speech.push(single(
            &format!("{clip}_1000ms"),
            &format!("{ms}/{clip}_1000ms_features.bin"),
            &format!("{ms}/{clip}_1000ms_scores.bin"),
        )?);
    }
    let random = |model: &str| {
        single(
            "random",
            &format!("{mt}/{model}_random_input.bin"),
            &format!("{mt}/{model}_random_output_tflm.bin"),
        )
    };
    let mut kws = vec![random("kws_ref_model")?];
    for clip in [
        "yes_1000ms",
        "no_1000ms",
        "silence_1000ms",
        "noise_1000ms",
        "marvin_617de221_0",
    ] {
        kws.push(Sample {
            name: format!("mfcc {clip}"),
            frames: vec![read(data, &format!("{mt}/kws_mfcc_{clip}.bin"))?],
            expected: None,
        });
    }
    let ad01 = vec![
        random("ad01_int8")?,
        Sample {
            name: "196 real windows".into(),
            frames: chunks(&read(data, &format!("{mt}/ad01_real_inputs_q.bin"))?, 640),
            expected: Some(read(data, &format!("{mt}/ad01_real_outputs_tflm.bin"))?),
        },
    ];
    Ok(vec![
        Case {
            model: "micro_speech/models/audio_preprocessor_int8.tflite",
            samples: preprocessor_int8,
        },
        Case {
            model: "micro_speech/models/audio_preprocessor_float.tflite",
            samples: preprocessor_float,
        },
        Case {
            model: "micro_speech/models/micro_speech_quantized.tflite",
            samples: micro_speech,
        },
        Case {
            model: "mlperf_tiny/models/kws_ref_model.tflite",
            samples: kws,
        },
        Case {
            model: "mlperf_tiny/models/vww_96_int8.tflite",
            samples: vec![random("vww_96_int8")?],
        },
        Case {
            model: "mlperf_tiny/models/pretrainedResnet_quant.tflite",
            samples: vec![random("pretrainedResnet_quant")?],
        },
        Case {
            model: "mlperf_tiny/models/pretrainedResnet_large_int8.tflite",
            samples: vec![random("pretrainedResnet_large_int8")?],
        },
        Case {
            model: "mlperf_tiny/models/ad01_int8.tflite",
            samples: ad01,
        },
        Case {
            model: "mlperf_tiny/models/str_ww_ref_model.tflite",
            samples: vec![random("str_ww_ref_model")?],
        },
    ])
}

/// A session of the TA with one model loaded.
struct TaModel {
    session: Session,
    output_bytes: usize,
}

impl TaModel {
    /// Opens a session and loads `model`; the error is the TA's result code.
    fn load(ctx: &mut Context, model: &[u8]) -> Result<(Self, usize), u32> {
        let mut session = open(ctx)?;
        let (input_bytes, output_bytes) = load(&mut session, model)?;
        Ok((
            Self {
                session,
                output_bytes,
            },
            input_bytes,
        ))
    }

    fn invoke(&mut self, input: &[u8]) -> Result<Vec<u8>, u32> {
        let mut out = vec![0u8; self.output_bytes];
        invoke(&mut self.session, input, &mut out)?;
        Ok(out)
    }

    fn reset(&mut self) -> Result<(), u32> {
        let mut op = Operation::new(0, ParamNone, ParamNone, ParamNone, ParamNone);
        self.session
            .invoke_command(CMD_RESET, &mut op)
            .map_err(|e| e.raw_code())
    }
}

fn open(ctx: &mut Context) -> Result<Session, u32> {
    let uuid = Uuid::parse_str(TA_UUID.trim()).map_err(|e| e.raw_code())?;
    ctx.open_session(uuid).map_err(|e| e.raw_code())
}

fn load(session: &mut Session, model: &[u8]) -> Result<(usize, usize), u32> {
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_input(model),
        ParamValue::new(0, 0, ParamType::ValueOutput),
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(CMD_LOAD_MODEL, &mut op)
        .map_err(|e| e.raw_code())?;
    let sizes = op.parameters().1;
    Ok((sizes.a() as usize, sizes.b() as usize))
}

fn invoke(session: &mut Session, input: &[u8], out: &mut [u8]) -> Result<(), u32> {
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_input(input),
        ParamTmpRef::new_output(out),
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(CMD_INVOKE, &mut op)
        .map_err(|e| e.raw_code())
}

/// The omg engine in this (normal-world) process.
struct NwModel<'m> {
    interp: omg_engine::Interpreter<'m>,
}

impl NwModel<'_> {
    fn invoke(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut at = 0;
        for i in 0..self.interp.input_count() {
            let n = self
                .interp
                .input_tensor(i)
                .map_err(|e| e.to_string())?
                .bytes();
            let part = input.get(at..at + n).ok_or("input too short")?;
            self.interp.set_input(i, part).map_err(|e| e.to_string())?;
            at += n;
        }
        self.interp.invoke().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for i in 0..self.interp.output_count() {
            out.extend_from_slice(self.interp.output(i).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
}

/// Bytes of one entry of the statistics PTA's TA list: UUID (16), panicked (u32), sessions
/// (u32), then OP-TEE's `struct malloc_stats`: a 32-byte description, allocated, max allocated,
/// pool size, failed allocations, biggest failed, bytes in use at that failure (u32 each).
const TA_STATS_ENTRY: usize = 80;
/// Offset of `max_allocated` and of the pool size in an entry.
const TA_STATS_MAX_ALLOCATED: usize = 60;
const TA_STATS_POOL: usize = 64;

/// The largest heap high-water mark among the loaded instances of the omg TA, and its heap
/// size, from OP-TEE's statistics PTA.
fn ta_heap(ctx: &mut Context) -> Result<(u32, u32), String> {
    let uuid = Uuid::parse_str(STATS_PTA_UUID).map_err(|e| e.to_string())?;
    let mut session = ctx
        .open_session(uuid)
        .map_err(|e| format!("stats PTA: {e}"))?;
    let mut buf = vec![0u8; TA_STATS_ENTRY * 16];
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_output(&mut buf),
        ParamNone,
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(STATS_CMD_TA_STATS, &mut op)
        .map_err(|e| format!("stats PTA: {e}"))?;
    let len = op.parameters().0.updated_size().min(buf.len());
    let ours = Uuid::parse_str(TA_UUID.trim())
        .map_err(|e| e.to_string())?
        .to_string();
    let mut best = None;
    for entry in buf[..len].chunks_exact(TA_STATS_ENTRY) {
        let word = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().expect("4"));
        let time_low = u32::from_le_bytes(entry[0..4].try_into().expect("4"));
        let time_mid = u16::from_le_bytes(entry[4..6].try_into().expect("2"));
        let time_hi = u16::from_le_bytes(entry[6..8].try_into().expect("2"));
        let node: String = entry[8..16].iter().map(|b| format!("{b:02x}")).collect();
        let uuid = format!(
            "{time_low:08x}-{time_mid:04x}-{time_hi:04x}-{}-{}",
            &node[..4],
            &node[4..]
        );
        if uuid == ours {
            let (max, pool) = (word(TA_STATS_MAX_ALLOCATED), word(TA_STATS_POOL));
            if best.is_none_or(|(m, _)| max > m) {
                best = Some((max, pool));
            }
        }
    }
    best.ok_or_else(|| "the omg TA is not among the loaded TAs".into())
}

/// Runs `f` repeatedly for [`TIMING_BUDGET`] and returns the mean time of one call.
fn time_per_call(mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    let mut reps = 0u32;
    while reps < MIN_REPS || start.elapsed() < TIMING_BUDGET {
        if !f() {
            return None;
        }
        reps += 1;
    }
    Some(start.elapsed() / reps)
}

fn run_case(
    ctx: &mut Context,
    data: &Path,
    case: &Case,
    report: &mut Report,
) -> Result<(), String> {
    let bytes = read(data, case.model)?;
    let name = Path::new(case.model)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(case.model);
    let cold = Instant::now();
    let (mut ta, input_bytes) = TaModel::load(ctx, &bytes)
        .map_err(|c| format!("{name}: the TA refused the model: {c:#x}"))?;
    let cold = cold.elapsed();
    let nw_start = Instant::now();
    let interp = omg_engine::Interpreter::new(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let nw_prepare = nw_start.elapsed();
    let mut nw = NwModel { interp };
    for sample in &case.samples {
        ta.reset().map_err(|c| format!("{name}: reset: {c:#x}"))?;
        nw.interp.reset();
        let (mut from_ta, mut from_nw) = (Vec::new(), Vec::new());
        for frame in &sample.frames {
            report.check(
                frame.len() == input_bytes,
                &format!("{name} {}: input size", sample.name),
            );
            from_ta.extend(
                ta.invoke(frame)
                    .map_err(|c| format!("{name} {}: TA invoke: {c:#x}", sample.name))?,
            );
            from_nw.extend(
                nw.invoke(frame)
                    .map_err(|e| format!("{name} {}: {e}", sample.name))?,
            );
        }
        report.check(
            from_ta == from_nw,
            &format!("{name} {}: TA and normal world differ", sample.name),
        );
        let tflm = match &sample.expected {
            Some(expected) => {
                report.check(
                    &from_ta == expected,
                    &format!("{name} {}: TA differs from TFLM", sample.name),
                );
                if &from_ta == expected {
                    "= TFLM"
                } else {
                    "!= TFLM"
                }
            }
            None => "(no TFLM reference)",
        };
        println!(
            "  {name} {}: {} invokes, TA == normal world: {}, {tflm}",
            sample.name,
            sample.frames.len(),
            from_ta == from_nw
        );
    }
    // Timing on the first frame of the first sample, the same bytes in both worlds.
    let frame = case.samples[0].frames[0].clone();
    let ta_time =
        time_per_call(|| ta.invoke(&frame).is_ok()).ok_or(format!("{name}: TA invoke failed"))?;
    let nw_time =
        time_per_call(|| nw.invoke(&frame).is_ok()).ok_or(format!("{name}: invoke failed"))?;
    // A command without shared memory: the round trip into the TA and back alone.
    let round_trip =
        time_per_call(|| ta.reset().is_ok()).ok_or(format!("{name}: TA reset failed"))?;
    let heap = ta_heap(ctx);
    let heap = match heap {
        Ok((max, pool)) => format!("{} KiB of {} KiB", max.div_ceil(1024), pool / 1024),
        Err(e) => {
            report.check(false, &format!("{name}: TA heap statistics: {e}"));
            "?".into()
        }
    };
    println!(
        "omg-optee: {name}: cold start {:.1} ms (normal world prepare {:.1} ms), invoke TA {:.3} ms, normal world {:.3} ms, ratio {:.2}, empty command round trip {:.3} ms, TA heap high-water {heap}",
        cold.as_secs_f64() * 1e3,
        nw_prepare.as_secs_f64() * 1e3,
        ta_time.as_secs_f64() * 1e3,
        nw_time.as_secs_f64() * 1e3,
        ta_time.as_secs_f64() / nw_time.as_secs_f64(),
        round_trip.as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Hostile commands and models: each must give the expected error code, and the TA must keep
/// serving (a panicked TA answers TEE_ERROR_TARGET_DEAD to everything after).
fn hostile(ctx: &mut Context, data: &Path, report: &mut Report) -> Result<(), String> {
    let model = read(data, "micro_speech/models/micro_speech_quantized.tflite")?;
    let input = read(data, "micro_speech/reference/micro_speech_random_input.bin")?;
    let expected = read(
        data,
        "micro_speech/reference/micro_speech_random_output_tflm.bin",
    )?;
    let refused = [
        TEE_ERROR_BAD_FORMAT,
        TEE_ERROR_NOT_SUPPORTED,
        TEE_ERROR_OUT_OF_MEMORY,
        TEE_ERROR_BAD_PARAMETERS,
        TEE_ERROR_GENERIC,
    ];

    // Commands out of order or with the wrong parameters.
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let mut out = [0u8; 4];
    report.check(
        invoke(&mut s, &input, &mut out) == Err(TEE_ERROR_BAD_STATE),
        "invoke before load",
    );
    let mut op = Operation::new(0, ParamNone, ParamNone, ParamNone, ParamNone);
    report.check(
        s.invoke_command(99, &mut op).map_err(|e| e.raw_code()) == Err(TEE_ERROR_BAD_PARAMETERS),
        "unknown command",
    );
    let mut op = Operation::new(
        0,
        ParamValue::new(1, 2, ParamType::ValueInput),
        ParamNone,
        ParamNone,
        ParamNone,
    );
    report.check(
        s.invoke_command(CMD_LOAD_MODEL, &mut op)
            .map_err(|e| e.raw_code())
            == Err(TEE_ERROR_BAD_PARAMETERS),
        "load with a value instead of a memory reference",
    );
    report.check(load(&mut s, &model).is_ok(), "load after refused commands");
    report.check(
        load(&mut s, &model) == Err(TEE_ERROR_BAD_STATE),
        "second load in a session",
    );
    report.check(
        invoke(&mut s, &input[..100], &mut out) == Err(TEE_ERROR_BAD_PARAMETERS),
        "short input",
    );
    let mut long = input.clone();
    long.push(0);
    report.check(
        invoke(&mut s, &long, &mut out) == Err(TEE_ERROR_BAD_PARAMETERS),
        "long input",
    );
    report.check(
        invoke(&mut s, &input, &mut out[..3]) == Err(TEE_ERROR_SHORT_BUFFER),
        "short output",
    );
    report.check(
        invoke(&mut s, &input, &mut out).is_ok() && out[..] == expected[..],
        "invoke after refused commands gives TFLM's output",
    );
    drop(s);

    // Models: empty, garbage, truncated, and with single bytes changed.
    let mut bad_models: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        (
            "garbage".into(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for cut in [4, 16, 64, 1000, model.len() / 2, model.len() - 1] {
        bad_models.push((format!("truncated to {cut} bytes"), model[..cut].to_vec()));
    }
    let mut refusals = 0;
    let mut corrupted = 0;
    let step = model.len() / 97;
    for k in 0..97 {
        let mut m = model.clone();
        let at = k * step + k % 7;
        m[at] ^= 0x5a;
        bad_models.push((format!("byte {at} changed"), m));
        corrupted += 1;
    }
    for (what, bytes) in &bad_models {
        let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
        match load(&mut s, bytes) {
            Ok((inputs, outputs)) => {
                // A change the parser cannot see (weights, say): the model runs, or is refused
                // with an error code.
                let mut out = vec![0u8; outputs];
                let r = invoke(&mut s, &vec![0u8; inputs], &mut out);
                report.check(
                    r.is_ok() || r.is_err_and(|c| refused.contains(&c)),
                    &format!("model {what}: invoke gave {r:?}"),
                );
            }
            Err(code) => {
                refusals += 1;
                report.check(
                    refused.contains(&code),
                    &format!("model {what}: refused with {code:#x}"),
                );
                // The same session still answers: the TA did not panic.
                report.check(
                    invoke(&mut s, &input, &mut out) == Err(TEE_ERROR_BAD_STATE),
                    &format!("model {what}: TA alive"),
                );
            }
        }
    }
    println!(
        "  hostile input: {} models ({} truncated or garbage, {corrupted} with one byte changed), {refusals} refused with an error code, no TA panic",
        bad_models.len(),
        bad_models.len() - corrupted
    );
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    report.check(
        load(&mut s, &model).is_ok(),
        "load after the hostile models",
    );
    Ok(())
}

/// Draws `len` bytes from the TEE's random number generator through the TA.
fn random(session: &mut Session, len: usize) -> Result<Vec<u8>, u32> {
    let mut out = vec![0u8; len];
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_output(&mut out),
        ParamNone,
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(CMD_RANDOM, &mut op)
        .map_err(|e| e.raw_code())?;
    Ok(out)
}

/// Adds `increment` to the TA's RPMB counter `index` and returns its new value.
fn raise(session: &mut Session, index: u32, increment: u32) -> Result<u64, u32> {
    let mut op = Operation::new(
        0,
        ParamValue::new(index, increment, ParamType::ValueInout),
        ParamNone,
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(CMD_COUNTER, &mut op)
        .map_err(|e| e.raw_code())?;
    let v = op.parameters().0;
    Ok((u64::from(v.a()) << 32) | u64::from(v.b()))
}

/// The SHA-256 of the TA's key for `label`.
fn key_fingerprint(session: &mut Session, label: &[u8]) -> Result<Vec<u8>, u32> {
    let mut out = vec![0u8; 32];
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_input(label),
        ParamTmpRef::new_output(&mut out),
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(CMD_KEY_FINGERPRINT, &mut op)
        .map_err(|e| e.raw_code())?;
    Ok(out)
}

/// Runs TA command `command` on `input`, with an output buffer of `capacity` bytes; returns
/// what the TA wrote there, or its error code.
fn bytes_command(
    session: &mut Session,
    command: u32,
    input: &[u8],
    capacity: usize,
) -> Result<Vec<u8>, u32> {
    let mut out = vec![0u8; capacity];
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_input(input),
        ParamTmpRef::new_output(&mut out),
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(command, &mut op)
        .map_err(|e| e.raw_code())?;
    let len = op.parameters().1.updated_size();
    out.truncate(len);
    Ok(out)
}

/// The TA's attestation evidence for `nonce`.
fn attest(session: &mut Session, nonce: &[u8]) -> Result<Vec<u8>, u32> {
    bytes_command(session, CMD_ATTEST, nonce, 32 + 512)
}

/// The TA's sample attestation token for `nonce`.
fn sample_token(session: &mut Session, nonce: &[u8]) -> Result<Vec<u8>, u32> {
    bytes_command(session, CMD_SAMPLE_TOKEN, nonce, 4096)
}

/// The attestation PTA's public key: exponent and modulus, big-endian.
fn attestation_key(ctx: &mut Context) -> Result<(Vec<u8>, Vec<u8>), String> {
    let uuid = Uuid::parse_str(ATTESTATION_PTA_UUID).map_err(|e| e.to_string())?;
    let mut session = ctx
        .open_session(uuid)
        .map_err(|e| format!("attestation PTA: {e}"))?;
    let (mut e, mut n) = (vec![0u8; 16], vec![0u8; 512]);
    let mut op = Operation::new(
        0,
        ParamTmpRef::new_output(&mut e),
        ParamTmpRef::new_output(&mut n),
        ParamValue::new(0, 0, ParamType::ValueOutput),
        ParamNone,
    );
    session
        .invoke_command(PTA_ATTESTATION_GET_PUBKEY, &mut op)
        .map_err(|e| format!("attestation PTA: {e}"))?;
    let (pe, pn, _) = (op.parameters().0, op.parameters().1, op.parameters().2);
    let (elen, nlen) = (pe.updated_size(), pn.updated_size());
    e.truncate(elen);
    n.truncate(nlen);
    Ok((e, n))
}

/// Checks the TA's evidence and leaves it, with the key and the nonce, in `dir` for an
/// independent verifier.
fn attestation(ctx: &mut Context, dir: &Path, report: &mut Report) -> Result<(), String> {
    let t = Instant::now();
    let (e, n) = attestation_key(ctx)?;
    let key_time = t.elapsed();
    let nonce: Vec<u8> = std::fs::read("/proc/sys/kernel/random/uuid")
        .map_err(|e| format!("nonce: {e}"))?
        .into_iter()
        .filter(u8::is_ascii_hexdigit)
        .collect();
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let t = Instant::now();
    let evidence = attest(&mut s, &nonce).map_err(|c| format!("attest: {c:#x}"))?;
    let attest_time = t.elapsed();
    report.check(
        evidence.len() == 32 + n.len(),
        "evidence is a SHA-256 hash and a signature as long as the key's modulus",
    );
    let other = attest(&mut s, b"another nonce").map_err(|c| format!("attest: {c:#x}"))?;
    report.check(
        other.len() == evidence.len()
            && other[..32] == evidence[..32]
            && other[32..] != evidence[32..],
        "another nonce: the same memory hash, another signature",
    );
    report.check(
        attest(&mut s, b"") == Err(TEE_ERROR_BAD_PARAMETERS),
        "empty nonce refused",
    );
    // The attestation token (omg_protocol::optee) over the same 32-byte nonce, checked
    // outside the machine by the vendor side's verifier and by Python.
    let t = Instant::now();
    let token = sample_token(&mut s, &nonce).map_err(|c| format!("token: {c:#x}"))?;
    let token_time = t.elapsed();
    report.check(
        token.len() > 32 + n.len() && token.len() <= 4096,
        "the attestation token holds the PTA's evidence",
    );
    report.check(
        sample_token(&mut s, &nonce[..31]) == Err(TEE_ERROR_BAD_PARAMETERS),
        "a token for a 31-byte nonce is refused",
    );
    // The vendor side's verifier (omg_protocol::optee, as the service runs it) against the
    // PTA's key as the normal world reads it: the ES256 signature by the ephemeral key, the
    // PTA's RSASSA-PSS evidence binding that key and the claims, the instance id.
    let device = DeviceKey::from_components(&e, &n).map_err(|e| format!("PTA key: {e}"))?;
    let verified = OpteeToken::verify(&token, &device);
    report.check(
        matches!(&verified, Ok(c) if c.nonce == nonce
            && c.instance_id == device.ueid()
            && c.software_components.len() == 1
            && c.software_components[0].measurement_value == evidence[..32]),
        "the TA's token verifies with the vendor side's verifier: this nonce, this device, the TA's memory hash",
    );
    if let Err(e) = &verified {
        println!("omg-optee: the TA's token does not verify: {e}");
    }
    let refused = [10, token.len() / 2, token.len() - 100, token.len() - 1]
        .iter()
        .all(|&i| {
            let mut changed = token.clone();
            changed[i] ^= 0x01;
            OpteeToken::verify(&changed, &device).is_err()
        });
    report.check(refused, "the token with a byte changed is refused");
    println!(
        "omg-optee: attestation token: {} bytes in {:.1} ms (ephemeral P-256 key, PTA evidence)",
        token.len(),
        token_time.as_secs_f64() * 1e3
    );
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in [
        ("exponent", &e),
        ("modulus", &n),
        ("nonce", &nonce),
        ("evidence", &evidence),
        ("token", &token),
    ] {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("{name}: {e}"))?;
    }
    drop(s);
    variants(ctx, &nonce, &evidence[..32], report)?;
    let hash: String = evidence[..32].iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "omg-optee: attestation: RSA-{} key from the PTA in {:.1} s (made on first use), evidence in {:.1} ms, TA memory hash {hash}",
        n.len() * 8,
        key_time.as_secs_f64(),
        attest_time.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Swaps the TA file for variants built by tools/optee/test.sh and restores it: the TA with one
/// byte of its read-only data changed (and re-signed with the development key) loads but has
/// another memory hash; the TA signed with another key does not load.
fn variants(
    ctx: &mut Context,
    nonce: &[u8],
    hash: &[u8],
    report: &mut Report,
) -> Result<(), String> {
    let dir = Path::new("/lib/optee_armtz");
    let ta = dir.join(format!("{}.ta", TA_UUID.trim()));
    let original = std::fs::read(&ta).map_err(|e| format!("{}: {e}", ta.display()))?;
    let install = |variant: &str| {
        std::fs::copy(dir.join("variants").join(variant), &ta)
            .map(|_| ())
            .map_err(|e| format!("{variant}: {e}"))
    };
    install("changed.ta")?;
    let changed = open(ctx).and_then(|mut s| attest(&mut s, nonce));
    install("foreign.ta")?;
    let foreign = open(ctx).map(|_| ());
    std::fs::write(&ta, &original).map_err(|e| format!("{}: {e}", ta.display()))?;
    match &changed {
        Ok(evidence) => report.check(
            evidence.len() > 32 && evidence[..32] != *hash,
            "a TA with one byte changed has another memory hash",
        ),
        Err(code) => report.check(false, &format!("the changed TA: {code:#x}")),
    }
    report.check(
        foreign.is_err(),
        "a TA signed with another key does not load",
    );
    report.check(open(ctx).is_ok(), "the original TA loads again");
    println!(
        "omg-optee: variants: one byte changed -> another memory hash: {}; signed with another key -> refused with {}",
        changed.is_ok_and(|e| e.len() > 32 && e[..32] != *hash),
        foreign
            .err()
            .map_or("nothing".into(), |c| format!("{c:#x}"))
    );
    Ok(())
}

/// Files under `dir`, recursively (the REE file system's directory).
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() { files_under(&path) } else { 1 }
            })
            .sum()
    })
}

/// Randomness and RPMB counters, the first platform services of the TA.
fn platform_services(ctx: &mut Context, report: &mut Report) -> Result<(), String> {
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let a = random(&mut s, 32).map_err(|c| format!("random: {c:#x}"))?;
    let b = random(&mut s, 32).map_err(|c| format!("random: {c:#x}"))?;
    report.check(
        a != b && a != [0u8; 32],
        "two random draws differ and are not zero",
    );
    report.check(
        random(&mut s, 65) == Err(TEE_ERROR_BAD_PARAMETERS),
        "random draw over 64 bytes refused",
    );

    let ree_files = files_under(Path::new("/data/tee"));
    let start = raise(&mut s, 0, 0).map_err(|c| format!("counter: {c:#x}"))?;
    let t = Instant::now();
    let raised = raise(&mut s, 0, 1).map_err(|c| format!("counter: {c:#x}"))?;
    let raise_time = t.elapsed();
    report.check(raised == start + 1, "counter 0 raised by one");
    report.check(
        raise(&mut s, 1, 5).map_err(|c| format!("counter: {c:#x}"))? >= 5,
        "counter 1 raised by five",
    );
    report.check(
        raise(&mut s, 2, 1) == Err(TEE_ERROR_BAD_PARAMETERS),
        "no counter 2",
    );
    drop(s);
    // Another session is another TA instance: the value comes from RPMB storage.
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let again = raise(&mut s, 0, 0).map_err(|c| format!("counter: {c:#x}"))?;
    report.check(again == raised, "counter 0 kept across TA instances");
    let fingerprint = |s: &mut Session, label: &[u8]| {
        key_fingerprint(s, label).map_err(|c| format!("key: {c:#x}"))
    };
    let model_a = fingerprint(&mut s, b"sealing model a")?;
    report.check(
        model_a != [0u8; 32] && fingerprint(&mut s, b"sealing model a")? == model_a,
        "a derived key is stable",
    );
    report.check(
        fingerprint(&mut s, b"sealing model b")? != model_a,
        "another label derives another key",
    );
    report.check(
        key_fingerprint(&mut s, &[0u8; 65]) == Err(TEE_ERROR_BAD_PARAMETERS),
        "a label over 64 bytes is refused",
    );
    report.check(
        files_under(Path::new("/data/tee")) == ree_files,
        "the counters leave no file in the normal world's /data/tee",
    );
    drop(s);
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    report.check(
        fingerprint(&mut s, b"sealing model a")? == model_a,
        "a derived key is the same in another TA instance",
    );
    println!(
        "omg-optee: platform services: random draws ok; derived keys stable and label-separated; RPMB counter 0 {start} -> {again} across TA instances, one raise {:.1} ms; files in /data/tee: {ree_files}",
        raise_time.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Runs phase `phase` of the TA's check of omg-enclave's `Platform`: returns the check's epoch
/// and inferences counted.
fn platform_check(session: &mut Session, phase: u32) -> Result<(u32, u32), u32> {
    let mut op = Operation::new(
        0,
        ParamValue::new(phase, 0, ParamType::ValueInout),
        ParamNone,
        ParamNone,
        ParamNone,
    );
    session
        .invoke_command(CMD_PLATFORM_CHECK, &mut op)
        .map_err(|e| e.raw_code())?;
    let v = op.parameters().0;
    Ok((v.a(), v.b()))
}

/// omg-enclave's `Platform` on OP-TEE, through the trait, in the TA: sealing, clock, epoch and
/// quota checked inside (phase 0); the epoch and the inferences read back by another TA
/// instance (phase 1).
fn enclave_platform(ctx: &mut Context, report: &mut Report) -> Result<(), String> {
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let t = Instant::now();
    let first = platform_check(&mut s, 0);
    let took = t.elapsed();
    // Only this session's TA instance is loaded now: its heap high-water mark.
    let (heap, pool) = ta_heap(ctx)?;
    report.check(
        first.is_ok(),
        &format!("the TA's Platform check (seal/unseal, clock, epoch, quota): {first:?}"),
    );
    report.check(
        platform_check(&mut s, 2) == Err(TEE_ERROR_BAD_PARAMETERS),
        "an unknown Platform check phase is refused",
    );
    drop(s);
    let mut s = open(ctx).map_err(|c| format!("open: {c:#x}"))?;
    let again = platform_check(&mut s, 1);
    report.check(
        first.is_ok() && again == first,
        &format!("epoch and inferences kept across TA instances: {first:?} then {again:?}"),
    );
    println!(
        "omg-optee: Platform on OP-TEE: phase 0 {first:?} in {:.0} ms, TA heap high-water {} KiB of {} KiB; phase 1 in another instance {again:?}",
        took.as_secs_f64() * 1e3,
        heap / 1024,
        pool / 1024
    );
    Ok(())
}

fn main() -> ExitCode {
    let Some(data) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: omg-optee-host DATA_DIR");
        return ExitCode::from(2);
    };
    let mut report = Report::default();
    let mut ctx = match Context::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: no TEE context: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cases = match cases(&data) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for case in &cases {
        if let Err(e) = run_case(&mut ctx, &data, case, &mut report) {
            report.check(false, &e);
        }
    }
    if let Err(e) = hostile(&mut ctx, &data, &mut report) {
        report.check(false, &e);
    }
    if let Err(e) = platform_services(&mut ctx, &mut report) {
        report.check(false, &e);
    }
    if let Err(e) = enclave_platform(&mut ctx, &mut report) {
        report.check(false, &e);
    }
    if let Err(e) = protocol::enclave_protocol(&mut ctx, &data, &mut report) {
        report.check(false, &format!("enclave protocol: {e}"));
    }
    let attest_dir = data.join("../attest");
    if let Err(e) = attestation(&mut ctx, &attest_dir, &mut report) {
        report.check(false, &e);
    }
    if report.failures == 0 {
        println!("omg-optee: all checks passed ({} models)", cases.len());
        ExitCode::SUCCESS
    } else {
        println!("omg-optee: {} checks failed", report.failures);
        ExitCode::FAILURE
    }
}
