//! The native micro_speech front end: one audio window in, one int8 feature frame out.
//!
//! [`MicroFrontend`] computes what TFLM's `audio_preprocessor_int8.tflite`
//! computes, bit for bit, with omg-signal's fixed-point stages:
//!
//! ```text
//! int16[480] -> Window (Hann, Q12) -> FftAutoScale -> Rfft(512) -> Energy(bins start..end)
//!   -> FilterBank(40) -> FilterBankSquareRoot(>> auto-scale shift)
//!   -> SpectralSubtraction (noise estimate, stateful) -> PCAN (gain LUT)
//!   -> FilterBankLog -> int8: clamp((log * 256 + 333) / 666 - 128, -128, 127)
//! ```
//!
//! All constant tables (window, filter bank, PCAN gains) are derived from
//! [`FrontendConfig`] by [`crate::tables`] the way TFLM's model generator
//! (`audio_preprocessor.py` with its `FeatureParams`) derives them.

use alloc::vec;
use alloc::vec::Vec;

use omg_signal::{
    Energy, FilterBank, FilterBankConfig, FilterBankLog, Pcan, Rfft, SpectralSubtraction,
    SpectralSubtractionConfig, Window, fft_auto_scale, filter_bank_square_root,
};

use crate::KwsError;
use crate::error::expect_len;
use crate::tables::{self, FilterBankParams, FilterBankTables, PCAN_SNR_BITS};

/// Front-end parameters, with the meaning and defaults of TFLM's `FeatureParams`
/// (`audio_preprocessor.py`). Float fields are Python floats (binary64) there;
/// where the generator hands them to C `float` code they are rounded to binary32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrontendConfig {
    /// Audio sample rate in Hz.
    pub sample_rate: u32,
    /// Window length in ms (`window_samples = window_size_ms * sample_rate / 1000`).
    pub window_size_ms: u32,
    /// Hop between windows in ms.
    pub window_stride_ms: u32,
    /// Fixed-point bits of the Hann window weights (and the window's right shift).
    pub window_scaling_bits: u32,
    /// Number of filter-bank (mel) channels = features per frame.
    pub filter_bank_number_of_channels: usize,
    /// Lower edge of the filter bank in Hz.
    pub filter_bank_lower_band_limit_hz: f64,
    /// Upper edge of the filter bank in Hz.
    pub filter_bank_upper_band_limit_hz: f64,
    /// Fixed-point bits of the filter-bank weights.
    pub filter_bank_scaling_bits: u32,
    /// Byte alignment of each channel's first FFT bin.
    pub filter_bank_alignment: usize,
    /// Channel widths are padded to a multiple of this many bins.
    pub filter_bank_channel_block_size: usize,
    /// Log output scale is `2^post_scaling_bits`.
    pub filter_bank_post_scaling_bits: u32,
    /// Fixed-point bits of the noise-reduction coefficients.
    pub filter_bank_spectral_subtraction_bits: u32,
    /// Noise-reduction smoothing bits.
    pub filter_bank_smoothing_bits: u32,
    /// Noise-estimate smoothing of even channels.
    pub filter_bank_even_smoothing: f64,
    /// Noise-estimate smoothing of odd channels (0: same as even).
    pub filter_bank_odd_smoothing: f64,
    /// Fraction of the signal that noise reduction always keeps.
    pub filter_bank_min_signal_remaining: f64,
    /// Clamp the noise estimate to the signal (noise reduction option).
    pub filter_bank_clamping: bool,
    /// PCAN strength (exponent of the gain curve).
    pub pcan_strength: f64,
    /// PCAN offset added to the noise level before the power.
    pub pcan_offset: f64,
    /// PCAN gain fixed-point bits.
    pub pcan_gain_bits: u32,
    /// PCAN smoothing bits (fixes the LUT's input scale).
    pub pcan_smoothing_bits: u32,
    /// Legacy feature scale of the training pipeline (int8 divisor is `round(scale * 26)`).
    pub legacy_output_scaling: f64,
}

impl FrontendConfig {
    /// TFLM's `FeatureParams` defaults, used to build `audio_preprocessor_int8.tflite`
    /// for `micro_speech_quantized.tflite`.
    #[must_use]
    pub const fn micro_speech() -> Self {
        Self {
            sample_rate: 16000,
            window_size_ms: 30,
            window_stride_ms: 20,
            window_scaling_bits: 12,
            filter_bank_number_of_channels: 40,
            filter_bank_lower_band_limit_hz: 125.0,
            filter_bank_upper_band_limit_hz: 7500.0,
            filter_bank_scaling_bits: 12,
            filter_bank_alignment: 4,
            filter_bank_channel_block_size: 4,
            filter_bank_post_scaling_bits: 6,
            filter_bank_spectral_subtraction_bits: 14,
            filter_bank_smoothing_bits: 10,
            filter_bank_even_smoothing: 0.025,
            filter_bank_odd_smoothing: 0.06,
            filter_bank_min_signal_remaining: 0.05,
            filter_bank_clamping: false,
            pcan_strength: 0.95,
            pcan_offset: 80.0,
            pcan_gain_bits: 21,
            pcan_smoothing_bits: 10,
            legacy_output_scaling: 25.6,
        }
    }

    /// Samples per window (`int(window_size_ms * sample_rate / 1000)`).
    #[must_use]
    pub fn window_samples(&self) -> usize {
        (u64::from(self.window_size_ms) * u64::from(self.sample_rate) / 1000) as usize
    }

    /// Samples per hop (`int(window_stride_ms * sample_rate / 1000)`).
    #[must_use]
    pub fn hop_samples(&self) -> usize {
        (u64::from(self.window_stride_ms) * u64::from(self.sample_rate) / 1000) as usize
    }
}

impl Default for FrontendConfig {
    fn default() -> Self {
        Self::micro_speech()
    }
}

/// Largest window the front end accepts (samples); the FFT is at most 4096 points.
pub const MAX_WINDOW_SAMPLES: usize = 4096;

/// Converts a non-negative float coefficient to fixed point with `bits`
/// fractional bits, truncating like Python's `int()`.
fn fixed(v: f64, bits: u32, what: &'static str) -> Result<i32, KwsError> {
    let scaled = v * f64::from(1u32 << bits);
    if !(scaled.is_finite() && (0.0..=f64::from(1u32 << bits)).contains(&scaled)) {
        return Err(KwsError::Config(what));
    }
    Ok(scaled as i32)
}

/// Every table and option the front end derives from a [`FrontendConfig`].
///
/// Exposed so that tests and tools can compare them with a model's constants.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedTables {
    /// Hann window weights (`window_samples` entries, Q`window_scaling_bits`).
    pub window: Vec<i16>,
    /// FFT length (smallest power of two >= the window).
    pub fft_length: usize,
    /// Filter-bank tables and the energy range.
    pub filter_bank: FilterBankTables,
    /// Spectral-subtraction options in fixed point.
    pub spectral_subtraction: SpectralSubtractionConfig,
    /// PCAN gain lookup table.
    pub pcan_gain_lut: [i16; tables::PCAN_GAIN_LUT_LEN],
    /// PCAN `snr_shift` option.
    pub pcan_snr_shift: i32,
    /// Input correction bits of PCAN and the log stage (`log2(fft) - scaling_bits / 2`).
    pub input_correction_bits: u32,
    /// Log stage output scale (`2^post_scaling_bits`).
    pub log_output_scale: i32,
    /// int8 conversion: `(log * mul + add) / div + offset`, clamped to int8.
    pub int8_mul: i32,
    /// See [`Self::int8_mul`].
    pub int8_add: i32,
    /// See [`Self::int8_mul`].
    pub int8_div: i32,
    /// See [`Self::int8_mul`].
    pub int8_offset: i32,
}

impl DerivedTables {
    /// Validates `config` and derives every table from it.
    pub fn new(config: &FrontendConfig) -> Result<Self, KwsError> {
        let c = config;
        if !(1000..=192_000).contains(&c.sample_rate) {
            return Err(KwsError::Config("sample_rate must be in 1000..=192000 Hz"));
        }
        let window_samples = c.window_samples();
        if !(4..=MAX_WINDOW_SAMPLES).contains(&window_samples) {
            return Err(KwsError::Config(
                "window must hold between 4 and 4096 samples",
            ));
        }
        if c.hop_samples() == 0 {
            return Err(KwsError::Config(
                "window stride must be at least one sample",
            ));
        }
        if c.window_scaling_bits > 14 {
            return Err(KwsError::Config("window_scaling_bits must be at most 14"));
        }
        let fft_length = window_samples.next_power_of_two();
        let fft_log2 = fft_length.trailing_zeros();
        // audio_preprocessor.py: fft_size_log2 - int(filter_bank_scaling_bits / 2).
        let correction = i64::from(fft_log2) - i64::from(c.filter_bank_scaling_bits / 2);
        let input_correction_bits =
            u32::try_from(correction)
                .ok()
                .filter(|&b| b <= 31)
                .ok_or(KwsError::Config(
                    "log2(fft length) - filter_bank_scaling_bits / 2 must be in 0..=31",
                ))?;
        let filter_bank = tables::filter_bank_tables(&FilterBankParams {
            spectrum_size: fft_length / 2 + 1,
            sample_rate: c.sample_rate,
            alignment: c.filter_bank_alignment,
            channel_block_size: c.filter_bank_channel_block_size,
            num_channels: c.filter_bank_number_of_channels,
            lower_band_limit_hz: c.filter_bank_lower_band_limit_hz,
            upper_band_limit_hz: c.filter_bank_upper_band_limit_hz,
            scaling_bits: c.filter_bank_scaling_bits,
        })?;

        let ss_bits = c.filter_bank_spectral_subtraction_bits;
        if ss_bits > 30 {
            return Err(KwsError::Config(
                "filter_bank_spectral_subtraction_bits must be at most 30",
            ));
        }
        if c.filter_bank_smoothing_bits > 31 {
            return Err(KwsError::Config(
                "filter_bank_smoothing_bits must be at most 31",
            ));
        }
        let smoothing = fixed(
            c.filter_bank_even_smoothing,
            ss_bits,
            "filter_bank_even_smoothing must be in 0..=1",
        )?;
        // Alternate smoothing may be disabled (0 means "same as even").
        let odd = if c.filter_bank_odd_smoothing == 0.0 {
            c.filter_bank_even_smoothing
        } else {
            c.filter_bank_odd_smoothing
        };
        let alternate_smoothing =
            fixed(odd, ss_bits, "filter_bank_odd_smoothing must be in 0..=1")?;
        let one = 1i32 << ss_bits;
        let spectral_subtraction = SpectralSubtractionConfig {
            num_channels: c.filter_bank_number_of_channels as i32,
            smoothing,
            one_minus_smoothing: one - smoothing,
            alternate_smoothing,
            alternate_one_minus_smoothing: one - alternate_smoothing,
            smoothing_bits: c.filter_bank_smoothing_bits as i32,
            min_signal_remaining: fixed(
                c.filter_bank_min_signal_remaining,
                ss_bits,
                "filter_bank_min_signal_remaining must be in 0..=1",
            )?,
            clamping: c.filter_bank_clamping,
            spectral_subtraction_bits: ss_bits as i32,
        };

        // pcan_op.py: input_bits = smoothing_bits - input_correction_bits,
        // snr_shift = gain_bits - input_correction_bits - PCAN_SNR_BITS must be >= 1;
        // the generator then passes snr_shift = 6 whatever it computed.
        let input_bits = i64::from(c.pcan_smoothing_bits) - i64::from(input_correction_bits);
        let input_bits =
            u32::try_from(input_bits)
                .ok()
                .filter(|&b| b <= 31)
                .ok_or(KwsError::Config(
                    "pcan_smoothing_bits - input correction bits must be in 0..=31",
                ))?;
        if c.pcan_gain_bits > 31
            || i64::from(c.pcan_gain_bits)
                - i64::from(input_correction_bits)
                - i64::from(PCAN_SNR_BITS)
                < 1
        {
            return Err(KwsError::Config(
                "pcan_gain_bits must be at most 31 and leave an SNR shift of at least 1",
            ));
        }
        let pcan_gain_lut = tables::pcan_gain_lut(
            c.pcan_strength as f32,
            c.pcan_offset as f32,
            input_bits,
            c.pcan_gain_bits,
        )?;

        if c.filter_bank_post_scaling_bits > 30 {
            return Err(KwsError::Config(
                "filter_bank_post_scaling_bits must be at most 30",
            ));
        }
        let div = c.legacy_output_scaling * 26.0 + 0.5;
        if !(div.is_finite() && (1.0..=1.0e6).contains(&div)) {
            return Err(KwsError::Config("legacy_output_scaling out of range"));
        }
        let int8_div = div as i32;
        Ok(Self {
            window: tables::hann_window(window_samples, c.window_scaling_bits)?,
            fft_length,
            filter_bank,
            spectral_subtraction,
            pcan_gain_lut,
            pcan_snr_shift: 6,
            input_correction_bits,
            log_output_scale: 1 << c.filter_bank_post_scaling_bits,
            int8_mul: 256,
            int8_add: int8_div / 2,
            int8_div,
            int8_offset: -128,
        })
    }
}

/// The native micro_speech front end (see the module docs).
///
/// Stateful like the TFLM model: the noise estimate of the spectral
/// subtraction carries over from one [`Self::process`] call to the next until
/// [`Self::reset`]. All buffers are allocated by [`Self::new`].
#[derive(Debug, Clone)]
pub struct MicroFrontend {
    sample_rate: u32,
    hop_samples: usize,
    window: Window,
    fft: Rfft,
    energy: Energy,
    bank: FilterBank,
    subtraction: SpectralSubtraction,
    pcan: Pcan,
    log: FilterBankLog,
    int8: [i32; 4],
    windowed: Vec<i16>,
    scaled: Vec<i16>,
    spectrum: Vec<i16>,
    energies: Vec<u32>,
    channels: Vec<u64>,
    roots: Vec<u32>,
    cleaned: Vec<u32>,
    gained: Vec<u32>,
    logs: Vec<i16>,
}

impl MicroFrontend {
    /// Validates `config`, derives its tables and allocates every buffer.
    pub fn new(config: &FrontendConfig) -> Result<Self, KwsError> {
        let t = DerivedTables::new(config)?;
        let n = config.filter_bank_number_of_channels;
        let fb = &t.filter_bank;
        let spectrum_size = t.fft_length / 2 + 1;
        let bank = FilterBank::new(&FilterBankConfig {
            num_channels: n as i32,
            weights: &fb.weights,
            unweights: &fb.unweights,
            channel_frequency_starts: &fb.channel_frequency_starts,
            channel_weight_starts: &fb.channel_weight_starts,
            channel_widths: &fb.channel_widths,
            input_len: spectrum_size,
        })?;
        let fft_length =
            i32::try_from(t.fft_length).map_err(|_| KwsError::Config("FFT length out of range"))?;
        let window_samples = t.window.len();
        let frontend = Self {
            sample_rate: config.sample_rate,
            hop_samples: config.hop_samples(),
            window: Window::new(&t.window, config.window_scaling_bits as i32)?,
            fft: Rfft::new(fft_length)?,
            energy: Energy::new(fb.start_index as i32, fb.end_index as i32)?,
            bank,
            subtraction: SpectralSubtraction::new(&t.spectral_subtraction)?,
            pcan: Pcan::new(&t.pcan_gain_lut, t.pcan_snr_shift)?,
            log: FilterBankLog::new(t.log_output_scale, t.input_correction_bits as i32)?,
            int8: [t.int8_mul, t.int8_add, t.int8_div, t.int8_offset],
            windowed: vec![0; window_samples],
            scaled: vec![0; window_samples],
            spectrum: vec![0; t.fft_length + 2],
            energies: vec![0; spectrum_size],
            channels: vec![0; n],
            roots: vec![0; n],
            cleaned: vec![0; n],
            gained: vec![0; n],
            logs: vec![0; n],
        };
        // Check every stage's buffer lengths once, so a length error here is a
        // configuration error rather than a per-frame surprise.
        frontend
            .window
            .check_lengths(window_samples, window_samples)?;
        frontend
            .fft
            .check_lengths(window_samples, frontend.spectrum.len())?;
        frontend
            .energy
            .check_lengths(frontend.spectrum.len(), spectrum_size)?;
        frontend.bank.check_lengths(spectrum_size, n)?;
        frontend.subtraction.check_lengths(n, n)?;
        frontend.pcan.check_lengths(n, n, n)?;
        frontend.log.check_lengths(n, n)?;
        Ok(frontend)
    }

    /// Features per frame (filter-bank channels).
    #[must_use]
    pub fn feature_count(&self) -> usize {
        self.logs.len()
    }

    /// Samples per window (480 for micro_speech).
    #[must_use]
    pub fn window_samples(&self) -> usize {
        self.windowed.len()
    }

    /// Samples per hop (320 for micro_speech).
    #[must_use]
    pub fn hop_samples(&self) -> usize {
        self.hop_samples
    }

    /// Sample rate in Hz.
    #[must_use]
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Forgets the noise estimate (like TFLM's `Interpreter::Reset`).
    pub fn reset(&mut self) {
        self.subtraction.reset();
        // Scratch buffers hold audio-derived data: clear them too.
        self.windowed.fill(0);
        self.scaled.fill(0);
        self.spectrum.fill(0);
        self.channels.fill(0);
        self.roots.fill(0);
        self.cleaned.fill(0);
        self.gained.fill(0);
        self.logs.fill(0);
        // Bins outside the energy range must stay zero; clearing all is fine.
        self.energies.fill(0);
    }

    /// Computes the int8 feature frame of one window (`window_samples()`
    /// samples) into `out` (`feature_count()` values), updating the noise
    /// estimate. Never allocates; errors only on wrong slice lengths.
    pub fn process(&mut self, window: &[i16], out: &mut [i8]) -> Result<(), KwsError> {
        expect_len("front-end window", self.windowed.len(), window.len())?;
        expect_len("front-end output", self.logs.len(), out.len())?;
        self.window.apply(window, &mut self.windowed)?;
        let shift = fft_auto_scale(&self.windowed, &mut self.scaled)?;
        self.fft.apply(&self.scaled, &mut self.spectrum)?;
        // Only bins start..end are written; the others stay zero, which is what the
        // model's STRIDED_SLICE + CONCATENATION produce.
        self.energy.apply(&self.spectrum, &mut self.energies)?;
        self.bank.apply(&self.energies, &mut self.channels)?;
        filter_bank_square_root(&self.channels, shift, &mut self.roots)?;
        self.subtraction.process(&self.roots, &mut self.cleaned)?;
        self.pcan.apply(
            &self.cleaned,
            self.subtraction.noise_estimate(),
            &mut self.gained,
        )?;
        self.log.apply(&self.gained, &mut self.logs)?;
        let [mul, add, div, offset] = self.int8;
        for (&v, o) in self.logs.iter().zip(out.iter_mut()) {
            // |v| <= 32767, mul = 256, add < 2^19, div >= 1: no overflow; `/` truncates.
            let q = (i32::from(v) * mul + add) / div + offset;
            *o = q.clamp(-128, 127) as i8;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_speech_shapes() {
        let f = MicroFrontend::new(&FrontendConfig::micro_speech()).unwrap();
        assert_eq!(
            (f.window_samples(), f.hop_samples(), f.feature_count()),
            (480, 320, 40)
        );
        let t = DerivedTables::new(&FrontendConfig::micro_speech()).unwrap();
        assert_eq!(
            (t.int8_mul, t.int8_add, t.int8_div, t.int8_offset),
            (256, 333, 666, -128)
        );
        let s = t.spectral_subtraction;
        assert_eq!(
            (
                s.smoothing,
                s.one_minus_smoothing,
                s.alternate_smoothing,
                s.alternate_one_minus_smoothing,
                s.min_signal_remaining
            ),
            (409, 15975, 983, 15401, 819)
        );
        assert_eq!((t.input_correction_bits, t.pcan_snr_shift), (3, 6));
    }

    #[test]
    fn invalid_configs_are_errors() {
        let base = FrontendConfig::micro_speech();
        let bad = [
            FrontendConfig {
                sample_rate: 0,
                ..base
            },
            FrontendConfig {
                window_size_ms: 0,
                ..base
            },
            FrontendConfig {
                window_size_ms: 10_000,
                ..base
            },
            FrontendConfig {
                window_stride_ms: 0,
                ..base
            },
            FrontendConfig {
                filter_bank_number_of_channels: 0,
                ..base
            },
            FrontendConfig {
                filter_bank_upper_band_limit_hz: 9000.0,
                ..base
            },
            FrontendConfig {
                filter_bank_lower_band_limit_hz: -1.0,
                ..base
            },
            FrontendConfig {
                filter_bank_even_smoothing: f64::NAN,
                ..base
            },
            FrontendConfig {
                filter_bank_min_signal_remaining: 2.0,
                ..base
            },
            FrontendConfig {
                pcan_gain_bits: 40,
                ..base
            },
            FrontendConfig {
                pcan_gain_bits: 10,
                ..base
            },
            FrontendConfig {
                pcan_strength: f64::INFINITY,
                ..base
            },
            FrontendConfig {
                window_scaling_bits: 20,
                ..base
            },
            FrontendConfig {
                filter_bank_scaling_bits: 30,
                ..base
            },
            FrontendConfig {
                legacy_output_scaling: f64::NAN,
                ..base
            },
            FrontendConfig {
                filter_bank_channel_block_size: 0,
                ..base
            },
        ];
        for (i, c) in bad.iter().enumerate() {
            assert!(MicroFrontend::new(c).is_err(), "config {i} accepted");
        }
    }

    #[test]
    fn wrong_lengths_are_errors_and_extremes_do_not_panic() {
        let mut f = MicroFrontend::new(&FrontendConfig::micro_speech()).unwrap();
        let mut out = [0i8; 40];
        assert!(f.process(&[0; 479], &mut out).is_err());
        assert!(f.process(&[0; 480], &mut [0; 39]).is_err());
        for v in [i16::MIN, i16::MAX, 0, -1, 1] {
            for _ in 0..50 {
                f.process(&[v; 480], &mut out).unwrap();
            }
        }
        let square: alloc::vec::Vec<i16> = (0..480)
            .map(|i| if i % 16 < 8 { i16::MAX } else { i16::MIN })
            .collect();
        for _ in 0..100 {
            f.process(&square, &mut out).unwrap();
        }
    }
}
