//! Constant tables of the micro_speech front end, derived from its configuration.
//!
//! TFLM's model generator (`audio_preprocessor.py` and the `signal` Python ops)
//! computes these tables in floating point and stores them in the `.tflite`
//! file as constant tensors. This module repeats the same computations with the
//! same precision at every step (IEEE binary32 where the generator uses C
//! `float` or `numpy.float32`, binary64 where it uses Python floats), using the
//! pure-Rust `libm` for the transcendental functions, so that the tables come
//! out identical to the model's constants (asserted by the crate's tests).
//!
//! Everything here runs once, at construction; nothing is called per frame.

use alloc::vec;
use alloc::vec::Vec;

use crate::KwsError;

/// Number of entries of the PCAN gain lookup table (`4 * 32 - 3`).
pub const PCAN_GAIN_LUT_LEN: usize = omg_signal::pcan::GAIN_LUT_LEN;

/// Fractional bits of PCAN's signal-to-noise ratio (TFLM `PCAN_SNR_BITS`).
pub const PCAN_SNR_BITS: i32 = 12;

/// Hann window weights in Q`bits`: `round_half_even((0.5 - 0.5 cos(2 pi (i + 0.5) / n)) * 2^bits)`.
///
/// Same as TFLM's `window_op.hann_window_weights` (NumPy, binary64). Errors if
/// `n` is zero or `bits > 14` (the weights would not fit an `i16`).
pub fn hann_window(n: usize, bits: u32) -> Result<Vec<i16>, KwsError> {
    if n == 0 {
        return Err(KwsError::Config("window length must be positive"));
    }
    if bits > 14 {
        return Err(KwsError::Config("window_scaling_bits must be at most 14"));
    }
    let arg = core::f64::consts::PI * 2.0 / n as f64;
    let scale = f64::from(1u32 << bits);
    Ok((0..n)
        .map(|i| {
            let w = 0.5 - 0.5 * libm::cos(arg * (i as f64 + 0.5));
            // 0 <= w * scale <= 2^14: the conversion is exact.
            libm::rint(w * scale) as i16
        })
        .collect())
}

/// Mel value of a frequency in Hz: `1127 * log1p(freq / 700)` in binary32
/// (TFLM's `FreqToMel`, which takes and returns a C `float`).
fn freq_to_mel(freq: f32) -> f32 {
    1127.0f32 * libm::log1pf(freq / 700.0f32)
}

/// The tables of a `SignalFilterBank` operator plus the FFT bin range it reads.
///
/// The three per-channel arrays hold `num_channels + 1` entries: TFLM computes
/// one extra leading channel whose "unweights" feed the first real channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterBankTables {
    /// First FFT bin any channel reads (the energy stage starts here).
    pub start_index: usize,
    /// One past the last FFT bin any channel reads (the energy stage ends here).
    pub end_index: usize,
    /// Weight of each bin for its own channel (Q`scaling_bits`).
    pub weights: Vec<i16>,
    /// Weight of each bin for the next channel (Q`scaling_bits`).
    pub unweights: Vec<i16>,
    /// First (aligned) spectrum bin of each channel.
    pub channel_frequency_starts: Vec<i16>,
    /// First index into `weights` / `unweights` of each channel.
    pub channel_weight_starts: Vec<i16>,
    /// Number of (padded) bins of each channel.
    pub channel_widths: Vec<i16>,
}

/// Parameters of [`filter_bank_tables`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterBankParams {
    /// Number of bins of the energy spectrum (`fft_length / 2 + 1`).
    pub spectrum_size: usize,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Byte alignment of each channel's first bin (micro_speech: 4).
    pub alignment: usize,
    /// Each channel's width is padded to a multiple of this (micro_speech: 4).
    pub channel_block_size: usize,
    /// Number of output channels (micro_speech: 40).
    pub num_channels: usize,
    /// Lower band limit in Hz (micro_speech: 125).
    pub lower_band_limit_hz: f64,
    /// Upper band limit in Hz (micro_speech: 7500).
    pub upper_band_limit_hz: f64,
    /// Fixed-point bits of the weights (micro_speech: 12).
    pub scaling_bits: u32,
}

fn to_i16(v: usize, what: &'static str) -> Result<i16, KwsError> {
    i16::try_from(v).map_err(|_| KwsError::Config(what))
}

/// Computes the mel filter-bank tables exactly as TFLM's
/// `filter_bank_ops._init_filter_bank_weights` does (binary32 mel math,
/// binary64 bin frequencies, weights truncated towards zero).
pub fn filter_bank_tables(p: &FilterBankParams) -> Result<FilterBankTables, KwsError> {
    let FilterBankParams {
        spectrum_size,
        sample_rate,
        alignment,
        channel_block_size,
        num_channels,
        lower_band_limit_hz: lower,
        upper_band_limit_hz: upper,
        scaling_bits,
    } = *p;
    if spectrum_size < 2 || spectrum_size > i16::MAX as usize {
        return Err(KwsError::Config("spectrum size must be in 2..=32767"));
    }
    if num_channels == 0 || num_channels >= i16::MAX as usize {
        return Err(KwsError::Config("filter bank needs 1..32767 channels"));
    }
    if channel_block_size == 0 || channel_block_size > 64 {
        return Err(KwsError::Config(
            "filter bank channel block size must be in 1..=64",
        ));
    }
    if alignment == 0 || alignment > 64 {
        return Err(KwsError::Config("filter bank alignment must be in 1..=64"));
    }
    if scaling_bits > 14 {
        return Err(KwsError::Config(
            "filter bank scaling bits must be at most 14",
        ));
    }
    if sample_rate == 0 {
        return Err(KwsError::Config("sample rate must be positive"));
    }
    if !(lower.is_finite() && upper.is_finite() && lower >= 0.0 && lower <= upper) {
        return Err(KwsError::Config(
            "filter bank band limits must satisfy 0 <= lower <= upper",
        ));
    }

    // int16 items per alignment unit.
    let index_alignment = if alignment < 2 { 1 } else { alignment / 2 };
    let n = num_channels + 1;

    // Center frequencies of the n channels, all in binary32 like numpy.float32.
    let mel_lower = freq_to_mel(lower as f32);
    let mel_upper = freq_to_mel(upper as f32);
    let mel_spacing = (mel_upper - mel_lower) / n as f32;
    let centers: Vec<f32> = (1..=n)
        .map(|c| mel_lower + mel_spacing * c as f32)
        .collect();

    // Python floats (binary64). (spectrum_size - 1) excludes DC, as HTK does.
    let hz_per_sbin = (f64::from(sample_rate) / 2.0) / (spectrum_size - 1) as f64;
    let start = libm::rint(1.0 + lower / hz_per_sbin);
    if !(start >= 0.0 && start < spectrum_size as f64) {
        return Err(KwsError::Config(
            "filter bank lower band limit is above Nyquist",
        ));
    }
    let start_index = start as usize;
    // The bin frequency is computed in binary64 and handed to the float function.
    let bin_mel = |bin: usize| freq_to_mel((bin as f64 * hz_per_sbin) as f32);

    let mut freq_starts = vec![0usize; n];
    let mut weight_starts = vec![0usize; n];
    let mut widths = vec![0usize; n];
    let mut actual_starts = vec![0usize; n];
    let mut actual_widths = vec![0usize; n];

    let mut chan_start = start_index;
    let mut weight_index = 0usize;
    let mut needs_zeros = false;
    for chan in 0..n {
        let mut freq = chan_start;
        // Bounded: a bin at or past the spectrum end is rejected below.
        while freq < spectrum_size && bin_mel(freq) <= centers[chan] {
            freq += 1;
        }
        if freq >= spectrum_size {
            return Err(KwsError::Config(
                "filter bank upper band limit too close to Nyquist for this FFT size",
            ));
        }
        let width = freq - chan_start;
        actual_starts[chan] = chan_start;
        actual_widths[chan] = width;
        if width == 0 {
            // Empty channel: point it at a block of zero weights placed at the start.
            freq_starts[chan] = 0;
            weight_starts[chan] = 0;
            widths[chan] = channel_block_size;
            if !needs_zeros {
                needs_zeros = true;
                for w in &mut weight_starts[..chan] {
                    *w += channel_block_size;
                }
                weight_index += channel_block_size;
            }
        } else {
            let aligned_start = chan_start / index_alignment * index_alignment;
            let aligned_width = chan_start - aligned_start + width;
            let padded =
                (aligned_width - 1) / channel_block_size * channel_block_size + channel_block_size;
            freq_starts[chan] = aligned_start;
            weight_starts[chan] = weight_index;
            widths[chan] = padded;
            weight_index += padded;
        }
        chan_start = freq;
    }
    if weight_index > i16::MAX as usize {
        return Err(KwsError::Config("filter bank needs too many weights"));
    }

    let mut weights = vec![0i16; weight_index];
    let mut unweights = vec![0i16; weight_index];
    let mut end_index = 0usize;
    let mel_low = freq_to_mel(lower as f32);
    let scale = (1u32 << scaling_bits) as f32;
    for chan in 0..n {
        let mut freq = actual_starts[chan];
        let offset = freq - freq_starts[chan];
        let denom = if chan == 0 {
            mel_low
        } else {
            centers[chan - 1]
        };
        let den = centers[chan] - denom;
        for j in 0..actual_widths[chan] {
            let num = centers[chan] - bin_mel(freq);
            let weight = num / den;
            let idx = weight_starts[chan] + offset + j;
            // In range: idx < weight_starts[chan] + widths[chan] <= weight_index.
            if let (Some(w), Some(u)) = (weights.get_mut(idx), unweights.get_mut(idx)) {
                // Python int() truncates; the float->int cast saturates like numpy's
                // int16 store would not, but weights lie in [0, 2^scaling_bits].
                *w = (weight * scale) as i32 as i16;
                *u = ((1.0f32 - weight) * scale) as i32 as i16;
            }
            freq += 1;
        }
        end_index = end_index.max(freq);
    }
    if end_index >= spectrum_size {
        return Err(KwsError::Config("filter bank reaches past the spectrum"));
    }

    let conv = |v: &[usize], what| -> Result<Vec<i16>, KwsError> {
        v.iter().map(|&x| to_i16(x, what)).collect()
    };
    Ok(FilterBankTables {
        start_index,
        end_index,
        weights,
        unweights,
        channel_frequency_starts: conv(&freq_starts, "filter bank start out of range")?,
        channel_weight_starts: conv(&weight_starts, "filter bank weight start out of range")?,
        channel_widths: conv(&widths, "filter bank width out of range")?,
    })
}

/// PCAN gain for a noise level `x` (TFLM `PcanGainLookupFunction`, binary32).
fn pcan_gain(strength: f32, offset: f32, gain_bits: u32, input_bits: u32, x: u32) -> i16 {
    let x_as_float = x as f32 / (1u32 << input_bits) as f32;
    let gain = (1u32 << gain_bits) as f32 * libm::powf(x_as_float + offset, -strength);
    if gain > f32::from(i16::MAX) {
        return i16::MAX;
    }
    // C truncates towards zero; Rust's cast does too (and saturates, where C is undefined).
    (gain + 0.5f32) as i16
}

/// The PCAN gain lookup table: gains at 0 and 1, then for each octave
/// `[2^(k-1), 2^k)` the value at its start and two quadratic interpolation
/// coefficients (TFLM `WideDynamicFuncLut`).
///
/// `input_bits` is PCAN's `smoothing_bits - input_correction_bits` (7 for
/// micro_speech); `gain_bits` at most 31.
pub fn pcan_gain_lut(
    strength: f32,
    offset: f32,
    input_bits: u32,
    gain_bits: u32,
) -> Result<[i16; PCAN_GAIN_LUT_LEN], KwsError> {
    if input_bits > 31 || gain_bits > 31 {
        return Err(KwsError::Config("PCAN bits must be in 0..=31"));
    }
    if !(strength.is_finite() && offset.is_finite()) {
        return Err(KwsError::Config("PCAN strength and offset must be finite"));
    }
    let g = |x: u32| pcan_gain(strength, offset, gain_bits, input_bits, x);
    let mut lut = [0i16; PCAN_GAIN_LUT_LEN];
    lut[0] = g(0);
    lut[1] = g(1);
    for interval in 2..=32u32 {
        let x0 = 1u32 << (interval - 1);
        let x1 = x0 + (x0 >> 1);
        let x2 = if interval == 32 {
            x0 + (x0 - 1)
        } else {
            2 * x0
        };
        let (y0, y1, y2) = (g(x0), g(x1), g(x2));
        let diff1 = i32::from(y1) - i32::from(y0);
        let diff2 = i32::from(y2) - i32::from(y0);
        let a1 = 4 * diff1 - diff2;
        let a2 = diff2 - a1;
        let base = (4 * interval - 6) as usize;
        // base + 2 <= 4 * 32 - 4 = 124 < PCAN_GAIN_LUT_LEN; the 4th slot of the
        // last interval would be index 125, outside the table TFLM keeps.
        lut[base] = y0;
        lut[base + 1] = a1 as i16;
        lut[base + 2] = a2 as i16;
        if let Some(z) = lut.get_mut(base + 3) {
            *z = 0;
        }
    }
    Ok(lut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro_speech_params() -> FilterBankParams {
        FilterBankParams {
            spectrum_size: 257,
            sample_rate: 16000,
            alignment: 4,
            channel_block_size: 4,
            num_channels: 40,
            lower_band_limit_hz: 125.0,
            upper_band_limit_hz: 7500.0,
            scaling_bits: 12,
        }
    }

    #[test]
    fn micro_speech_filter_bank_shape() {
        let t = filter_bank_tables(&micro_speech_params()).unwrap();
        assert_eq!((t.start_index, t.end_index), (5, 241));
        assert_eq!(t.channel_widths.len(), 41);
        // Weights and unweights are complementary up to the truncation.
        for (&w, &u) in t.weights.iter().zip(&t.unweights) {
            assert!((0..=4096).contains(&w) && (0..=4096).contains(&u));
        }
    }

    #[test]
    fn bad_band_limits_are_errors() {
        let mut p = micro_speech_params();
        p.upper_band_limit_hz = 8000.0;
        assert!(filter_bank_tables(&p).is_err());
        p.upper_band_limit_hz = f64::NAN;
        assert!(filter_bank_tables(&p).is_err());
        p.upper_band_limit_hz = 100.0;
        assert!(filter_bank_tables(&p).is_err());
    }

    #[test]
    fn pcan_lut_starts_with_gain_at_zero() {
        let lut = pcan_gain_lut(0.95, 80.0, 7, 21).unwrap();
        // 2^21 * 80^-0.95 ~ 32548: just below the int16 limit.
        assert!((32000..32767).contains(&lut[0]));
        // The gain falls with the noise level.
        assert!(lut[1] <= lut[0] && lut[2 * 4 - 6] <= lut[1]);
        assert!(pcan_gain_lut(0.95, 80.0, 32, 21).is_err());
    }
}
