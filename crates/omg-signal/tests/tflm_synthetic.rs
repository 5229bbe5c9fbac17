//! Window, auto-scale and FFT on deterministic synthetic frames, against
//! hashes of the tensors TFLM produced for the same frames.
//!
//! The eight 480-sample frames below were fed to `audio_preprocessor_int8.tflite`
//! (and to copies whose `SignalRfft` `fft_length` option was set to 480, 486
//! and 500, exercising kissfft's radix-3, radix-5 and radix-2 butterflies)
//! with `tools/tflm_dump_tensors.py`; the expected values are FNV-1a 64 hashes
//! of the little-endian bytes of the dumped tensors, over all frames in order.

use omg_signal::{Rfft, Window, fft_auto_scale};

/// Frames: LCG noise, quiet noise, full-scale square, impulse, constant
/// -32768, tiny noise, half noise / half -32768, noise (fresh LCG draws).
fn frames() -> Vec<[i16; 480]> {
    let mut x: u32 = 12345;
    let mut next = move || {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u16 as i16
    };
    (0..8)
        .map(|kind| {
            let mut f = [0i16; 480];
            for (i, s) in f.iter_mut().enumerate() {
                let r = next();
                *s = match kind {
                    1 => r >> 8,
                    2 => {
                        if (i / 7) % 2 == 0 {
                            32767
                        } else {
                            -32768
                        }
                    }
                    3 => {
                        if i == 200 {
                            32767
                        } else {
                            0
                        }
                    }
                    4 => -32768,
                    5 => r >> 14,
                    6 => {
                        if i < 240 {
                            r
                        } else {
                            -32768
                        }
                    }
                    _ => r,
                };
            }
            f
        })
        .collect()
}

fn fnv(h: &mut u64, values: &[i16]) {
    for v in values {
        for b in v.to_le_bytes() {
            *h ^= u64::from(b);
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn hann_q12() -> Vec<i16> {
    let arg = std::f64::consts::PI * 2.0 / 480.0;
    (0..480)
        .map(|i| ((0.5 - 0.5 * (arg * (i as f64 + 0.5)).cos()) * 4096.0).round_ties_even() as i16)
        .collect()
}

/// Window + auto-scale outputs of every frame, with their shifts.
fn scaled_frames() -> (Vec<Vec<i16>>, u64, u64, Vec<i32>) {
    let window = Window::new(&hann_q12(), 12).unwrap();
    let (mut hw, mut hs) = (FNV_START, FNV_START);
    let mut out = Vec::new();
    let mut shifts = Vec::new();
    for f in frames() {
        let mut w = vec![0i16; 480];
        window.apply(&f, &mut w).unwrap();
        fnv(&mut hw, &w);
        let mut s = vec![0i16; 480];
        let shift = fft_auto_scale(&w, &mut s).unwrap();
        fnv(&mut hs, &s);
        for b in shift.to_le_bytes() {
            hs ^= u64::from(b);
            hs = hs.wrapping_mul(0x0100_0000_01b3);
        }
        shifts.push(shift);
        out.push(s);
    }
    (out, hw, hs, shifts)
}

#[test]
fn window_and_auto_scale_match_tflm() {
    let (_, hw, hs, shifts) = scaled_frames();
    assert_eq!(shifts, [0, 8, 0, 0, 0, 13, 0, 0]);
    assert_eq!(hw, 0xe906_8164_30d4_4370);
    assert_eq!(hs, 0x683a_5a52_89ee_854d);
}

#[test]
fn rfft_matches_tflm_for_radices_2_3_4_5() {
    let (scaled, ..) = scaled_frames();
    for (len, expected) in [
        (512, 0x8fd1_ac7c_fbfc_1362_u64),
        (480, 0x849c_098c_7c3c_1105),
        (486, 0x9f4a_6c8a_c74a_13e5),
        (500, 0x9bd6_2ca4_a317_f081),
    ] {
        let mut fft = Rfft::new(len).unwrap();
        let mut h = FNV_START;
        let mut out = vec![0i16; fft.output_len()];
        for (i, frame) in scaled.iter().enumerate() {
            fft.apply(frame, &mut out).unwrap();
            if len == 512 && i == 0 {
                assert_eq!(out[..8], [-79, 0, 234, -35, -223, 205, -86, -94]);
            }
            if len == 512 && i == 3 {
                assert_eq!(out[..8], [59, 0, -46, -38, 11, 58, 28, -52]);
            }
            fnv(&mut h, &out);
        }
        assert_eq!(h, expected, "fft_length {len}");
    }
}
