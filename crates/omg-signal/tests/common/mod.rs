//! Shared by the integration tests: the stage options of the micro_speech audio preprocessor
//! (`audio_preprocessor_int8.tflite`).

#![allow(dead_code)]

use omg_signal::{FilterBank, FilterBankConfig, SpectralSubtractionConfig};

/// The model's `SignalFilterBankSpectralSubtraction` options, for `num_channels` channels
/// (40 in the model).
pub fn micro_speech_subtraction(num_channels: i32) -> SpectralSubtractionConfig {
    SpectralSubtractionConfig {
        num_channels,
        smoothing: 409,
        one_minus_smoothing: 15975,
        alternate_smoothing: 983,
        alternate_one_minus_smoothing: 15401,
        smoothing_bits: 10,
        spectral_subtraction_bits: 14,
        min_signal_remaining: 819,
        clamping: false,
    }
}

/// The model's `SignalFilterBank` (40 channels over 257 energy bins) from its constant
/// tables.
pub fn micro_speech_bank(
    weights: &[i16],
    unweights: &[i16],
    channel_frequency_starts: &[i16],
    channel_weight_starts: &[i16],
    channel_widths: &[i16],
) -> FilterBank {
    FilterBank::new(&FilterBankConfig {
        num_channels: 40,
        weights,
        unweights,
        channel_frequency_starts,
        channel_weight_starts,
        channel_widths,
        input_len: 257,
    })
    .unwrap()
}
