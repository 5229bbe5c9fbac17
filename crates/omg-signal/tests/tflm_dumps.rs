//! Stage-by-stage comparison with tensors dumped from TFLM by
//! `tools/tflm_dump_tensors.py` running the micro_speech audio preprocessor
//! (`audio_preprocessor_int8.tflite`).
//!
//! Set `OMG_TFLM_DUMPS` to a directory whose `dump_*` subdirectories are
//! outputs of that tool, then run
//! `cargo test -p omg-signal --test tflm_dumps -- --include-ignored`.
//! `.ci/run` makes such dumps from the reference clips and runs it. Every stage is fed with the
//! TFLM tensor it consumes and its output is compared byte for byte, frame by
//! frame; the stateful spectral subtraction runs across all frames of a dump.
//!
//! A dump directory may contain `fft_length.txt` (a model whose `SignalRfft`
//! option was changed); only the FFT stage is then compared.

use std::fs;
use std::path::{Path, PathBuf};

use omg_signal::{
    Energy, FilterBankLog, Pcan, Rfft, SpectralSubtraction, Window, fft_auto_scale,
    filter_bank_square_root,
};

mod common;

fn read<T: Copy>(dir: &Path, frame: usize, tensor: usize, conv: fn(&[u8]) -> T) -> Vec<T> {
    let path = dir.join(format!("frame_{frame:04}/t{tensor:03}.bin"));
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let size = std::mem::size_of::<T>();
    bytes.chunks_exact(size).map(conv).collect()
}

fn i16s(dir: &Path, f: usize, t: usize) -> Vec<i16> {
    read(dir, f, t, |b| i16::from_le_bytes([b[0], b[1]]))
}
fn i32s(dir: &Path, f: usize, t: usize) -> Vec<i32> {
    read(dir, f, t, |b| i32::from_le_bytes(b.try_into().unwrap()))
}
fn u32s(dir: &Path, f: usize, t: usize) -> Vec<u32> {
    read(dir, f, t, |b| u32::from_le_bytes(b.try_into().unwrap()))
}
fn u64s(dir: &Path, f: usize, t: usize) -> Vec<u64> {
    read(dir, f, t, |b| u64::from_le_bytes(b.try_into().unwrap()))
}
fn i8s(dir: &Path, f: usize, t: usize) -> Vec<i8> {
    read(dir, f, t, |b| b[0] as i8)
}

fn frames(dir: &Path) -> usize {
    (0..)
        .take_while(|f| dir.join(format!("frame_{f:04}")).is_dir())
        .count()
}

/// The int8 quantization the model performs after the log (MUL 256, ADD 333,
/// truncating DIV 666, ADD -128, MIN 127, MAX -128).
fn quantize(log: i16) -> i8 {
    ((i32::from(log) * 256 + 333) / 666 - 128).clamp(-128, 127) as i8
}

fn check_fft_only(dir: &Path, fft_length: i32) -> usize {
    let mut fft = Rfft::new(fft_length).unwrap();
    let n = fft.output_len();
    let mut checked = 0;
    for f in 0..frames(dir) {
        let mut out = vec![0i16; n];
        fft.apply(&i16s(dir, f, 21), &mut out).unwrap();
        assert_eq!(
            out,
            i16s(dir, f, 23)[..n],
            "{} frame {f}: rfft {fft_length}",
            dir.display()
        );
        checked += 1;
    }
    checked
}

fn check_dump(dir: &Path) -> usize {
    if let Ok(text) = fs::read_to_string(dir.join("fft_length.txt")) {
        return check_fft_only(dir, text.trim().parse().unwrap());
    }
    let window = Window::new(&i16s(dir, 0, 1), 12).unwrap();
    let mut fft = Rfft::new(512).unwrap();
    let energy = Energy::new(5, 241).unwrap();
    let (w, u) = (i16s(dir, 0, 13), i16s(dir, 0, 12));
    let (fs_, ws, widths) = (i16s(dir, 0, 11), i16s(dir, 0, 10), i16s(dir, 0, 9));
    let bank = common::micro_speech_bank(&w, &u, &fs_, &ws, &widths);
    let mut sub = SpectralSubtraction::new(&common::micro_speech_subtraction(40)).unwrap();
    let pcan = Pcan::new(&i16s(dir, 0, 8), 6).unwrap();
    let log = FilterBankLog::new(64, 3).unwrap();
    let ctx = |f: usize, stage: &str| format!("{} frame {f}: {stage}", dir.display());

    let count = frames(dir);
    for f in 0..count {
        let mut win = vec![0i16; 480];
        window.apply(&i16s(dir, f, 0), &mut win).unwrap();
        assert_eq!(win, i16s(dir, f, 19), "{}", ctx(f, "window"));

        let mut scaled = vec![0i16; 480];
        let shift = fft_auto_scale(&i16s(dir, f, 20), &mut scaled).unwrap();
        assert_eq!(scaled, i16s(dir, f, 21), "{}", ctx(f, "auto scale"));
        assert_eq!(
            vec![shift],
            i32s(dir, f, 22),
            "{}",
            ctx(f, "auto scale shift")
        );

        let mut spectrum = vec![0i16; 514];
        fft.apply(&i16s(dir, f, 21), &mut spectrum).unwrap();
        assert_eq!(spectrum, i16s(dir, f, 23), "{}", ctx(f, "rfft"));

        let mut energies = vec![0u32; 257];
        energy.apply(&i16s(dir, f, 23), &mut energies).unwrap();
        assert_eq!(
            energies[5..241],
            u32s(dir, f, 24)[5..241],
            "{}",
            ctx(f, "energy")
        );
        assert_eq!(energies, u32s(dir, f, 28), "{}", ctx(f, "energy sliced"));

        let mut bank_out = vec![0u64; 40];
        bank.apply(&u32s(dir, f, 28), &mut bank_out).unwrap();
        assert_eq!(bank_out, u64s(dir, f, 29), "{}", ctx(f, "filter bank"));

        let mut roots = vec![0u32; 40];
        filter_bank_square_root(&u64s(dir, f, 29), i32s(dir, f, 22)[0], &mut roots).unwrap();
        assert_eq!(roots, u32s(dir, f, 30), "{}", ctx(f, "square root"));

        let mut cleaned = vec![0u32; 40];
        sub.process(&u32s(dir, f, 30), &mut cleaned).unwrap();
        assert_eq!(
            cleaned,
            u32s(dir, f, 31),
            "{}",
            ctx(f, "spectral subtraction")
        );
        assert_eq!(
            sub.noise_estimate(),
            u32s(dir, f, 32),
            "{}",
            ctx(f, "noise estimate")
        );

        let mut gained = vec![0u32; 40];
        pcan.apply(&u32s(dir, f, 31), &u32s(dir, f, 32), &mut gained)
            .unwrap();
        assert_eq!(gained, u32s(dir, f, 33), "{}", ctx(f, "pcan"));

        let mut logs = vec![0i16; 40];
        log.apply(&u32s(dir, f, 33), &mut logs).unwrap();
        assert_eq!(logs, i16s(dir, f, 34), "{}", ctx(f, "log"));

        let features: Vec<i8> = logs.iter().map(|&v| quantize(v)).collect();
        assert_eq!(features, i8s(dir, f, 42), "{}", ctx(f, "int8 features"));
    }
    count
}

#[test]
#[ignore = "needs dumps from tools/tflm_dump_tensors.py in OMG_TFLM_DUMPS"]
fn matches_tflm_dumps() {
    let Some(root) = std::env::var_os("OMG_TFLM_DUMPS") else {
        panic!("set OMG_TFLM_DUMPS to a directory of dumps made by tools/tflm_dump_tensors.py");
    };
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("dump_")
        })
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no dump_* directories");
    for dir in dirs {
        let n = check_dump(&dir);
        eprintln!("{}: {n} frames identical", dir.display());
    }
}
