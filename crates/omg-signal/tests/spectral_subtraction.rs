//! `SpectralSubtraction` with the micro_speech options on two channels (one even, one odd).

use omg_signal::SpectralSubtraction;

mod common;
use common::micro_speech_subtraction;

#[test]
fn tracks_noise_across_frames() {
    let mut ss = SpectralSubtraction::new(&micro_speech_subtraction(2)).unwrap();
    let mut out = [0u32; 2];
    ss.process(&[1000, 1000], &mut out).unwrap();
    // noise = (1000 << 10) * s >> 14: 25562 (even), 61437 (odd).
    assert_eq!(ss.noise_estimate(), [25562, 61437]);
    assert_eq!(out, [(1_024_000 - 25562) >> 10, (1_024_000 - 61437) >> 10]);
    ss.process(&[0, 1000], &mut out).unwrap();
    assert_eq!(out, [0, (1_024_000 - 61437 * 15401 / 16384 - 61440) >> 10]);
    ss.reset();
    assert_eq!(ss.noise_estimate(), [0, 0]);
}

#[test]
fn clamping_and_floor() {
    let mut cfg = micro_speech_subtraction(2);
    cfg.clamping = true;
    let mut ss = SpectralSubtraction::new(&cfg).unwrap();
    let mut out = [0u32; 2];
    ss.process(&[u32::MAX, u32::MAX], &mut out).unwrap();
    ss.process(&[5, 5], &mut out).unwrap();
    // Estimate above the signal: clamped to it, output is the floor 5*819>>14 = 0.
    assert_eq!(ss.noise_estimate(), [5 << 10, 5 << 10]);
    assert_eq!(out, [0, 0]);
}

#[test]
fn rejects_bad_options() {
    let mut cfg = micro_speech_subtraction(2);
    cfg.smoothing_bits = 32;
    assert!(SpectralSubtraction::new(&cfg).is_err());
    let mut cfg = micro_speech_subtraction(2);
    cfg.spectral_subtraction_bits = 64;
    assert!(SpectralSubtraction::new(&cfg).is_err());
    let mut cfg = micro_speech_subtraction(2);
    cfg.num_channels = -1;
    assert!(SpectralSubtraction::new(&cfg).is_err());
    let mut ss = SpectralSubtraction::new(&micro_speech_subtraction(2)).unwrap();
    assert!(ss.process(&[1, 2, 3], &mut [0; 3]).is_err());
}
