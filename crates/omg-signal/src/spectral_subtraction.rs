//! `SignalFilterBankSpectralSubtraction`: stateful noise estimation and subtraction.

use alloc::vec;
use alloc::vec::Vec;

use crate::{SignalError, check_shift, expect_len};

/// Options of a `SignalFilterBankSpectralSubtraction` operator, as the int32
/// (and bool) values TFLM reads from its FlexBuffer options.
///
/// The smoothing coefficients are in units of `1 << spectral_subtraction_bits`;
/// TFLM stores them as uint32, so negative values act as their two's
/// complement (accepted, since the arithmetic is then merely wrapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpectralSubtractionConfig {
    /// Number of channels (input, output and noise estimate length).
    pub num_channels: i32,
    /// Noise-filter coefficient for even channels.
    pub smoothing: i32,
    /// Complement of `smoothing`.
    pub one_minus_smoothing: i32,
    /// Noise-filter coefficient for odd channels.
    pub alternate_smoothing: i32,
    /// Complement of `alternate_smoothing`.
    pub alternate_one_minus_smoothing: i32,
    /// Extra fractional bits of the noise estimate, `0..=31`.
    pub smoothing_bits: i32,
    /// Fractional bits of the coefficients, `0..=63`.
    pub spectral_subtraction_bits: i32,
    /// Floor of the output as a fraction of the input signal.
    pub min_signal_remaining: i32,
    /// Whether the noise estimate is pulled down to a lower signal.
    pub clamping: bool,
}

/// Spectral subtraction with its per-channel noise estimate (the op's state).
///
/// Create once, call [`SpectralSubtraction::process`] frame by frame, and
/// [`SpectralSubtraction::reset`] where TFLM resets the interpreter (the
/// estimate starts at zero).
#[derive(Debug, Clone)]
pub struct SpectralSubtraction {
    smoothing: [u32; 2],
    one_minus_smoothing: [u32; 2],
    min_signal_remaining: u32,
    smoothing_bits: u32,
    spectral_subtraction_bits: u32,
    clamping: bool,
    noise_estimate: Vec<u32>,
}

impl SpectralSubtraction {
    /// Validates the options (non-negative channel count, shift amounts in
    /// range) and allocates a zeroed noise estimate.
    pub fn new(config: &SpectralSubtractionConfig) -> Result<Self, SignalError> {
        let channels =
            usize::try_from(config.num_channels).map_err(|_| SignalError::Parameter {
                what: "spectral subtraction num_channels",
                value: config.num_channels.into(),
                expected: "num_channels >= 0",
            })?;
        let smoothing_bits = check_shift(
            "spectral subtraction smoothing_bits",
            config.smoothing_bits,
            31,
        )?;
        let spectral_subtraction_bits = check_shift(
            "spectral subtraction spectral_subtraction_bits",
            config.spectral_subtraction_bits,
            63,
        )?;
        Ok(Self {
            smoothing: [config.smoothing as u32, config.alternate_smoothing as u32],
            one_minus_smoothing: [
                config.one_minus_smoothing as u32,
                config.alternate_one_minus_smoothing as u32,
            ],
            min_signal_remaining: config.min_signal_remaining as u32,
            smoothing_bits,
            spectral_subtraction_bits,
            clamping: config.clamping,
            noise_estimate: vec![0; channels],
        })
    }

    /// Number of channels.
    #[must_use]
    pub fn num_channels(&self) -> usize {
        self.noise_estimate.len()
    }

    /// Zeroes the noise estimate (TFLM's Prepare and Reset).
    pub fn reset(&mut self) {
        self.noise_estimate.fill(0);
    }

    /// The current noise estimate (the op's second output after `process`).
    #[must_use]
    pub fn noise_estimate(&self) -> &[u32] {
        &self.noise_estimate
    }

    /// Checks both lengths equal the channel count.
    pub fn check_lengths(&self, input_len: usize, output_len: usize) -> Result<(), SignalError> {
        expect_len("spectral subtraction input", self.num_channels(), input_len)?;
        expect_len(
            "spectral subtraction output",
            self.num_channels(),
            output_len,
        )
    }

    /// Updates the noise estimate with one frame and writes the
    /// noise-subtracted signal to `output`.
    pub fn process(&mut self, input: &[u32], output: &mut [u32]) -> Result<(), SignalError> {
        self.check_lengths(input.len(), output.len())?;
        let ss_bits = self.spectral_subtraction_bits;
        for (ch, ((&x, y), noise)) in input
            .iter()
            .zip(output.iter_mut())
            .zip(self.noise_estimate.iter_mut())
            .enumerate()
        {
            let parity = ch & 1;
            let signal = x << self.smoothing_bits;
            let smoothed = u64::from(signal)
                .wrapping_mul(u64::from(self.smoothing[parity]))
                .wrapping_add(
                    u64::from(*noise).wrapping_mul(u64::from(self.one_minus_smoothing[parity])),
                );
            *noise = (smoothed >> ss_bits) as u32;
            let mut estimate = *noise;
            if estimate > signal {
                estimate = signal;
                if self.clamping {
                    *noise = estimate;
                }
            }
            let floor = ((u64::from(x) * u64::from(self.min_signal_remaining)) >> ss_bits) as u32;
            let subtracted = (signal - estimate) >> self.smoothing_bits;
            *y = subtracted.max(floor);
        }
        Ok(())
    }
}
