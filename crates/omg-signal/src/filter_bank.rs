//! `SignalFilterBank`: triangular (mel) filter bank over an energy spectrum.

use alloc::vec::Vec;

use crate::{SignalError, expect_len};

/// The constant inputs and options of a `SignalFilterBank` operator.
///
/// TFLM option: `num_channels` (int). Constant inputs 1..=5 (all int16,
/// rank 1): weights, unweights, channel frequency starts, channel weight
/// starts, channel widths. The three per-channel arrays describe
/// `num_channels + 1` channels; channel 0 only feeds the "unweight" half of
/// channel 1 and is not output.
#[derive(Debug, Clone, Copy)]
pub struct FilterBankConfig<'a> {
    /// Number of output channels.
    pub num_channels: i32,
    /// Weight of each bin for the channel it belongs to (Q12 in micro_speech).
    pub weights: &'a [i16],
    /// Weight of each bin for the following channel.
    pub unweights: &'a [i16],
    /// First spectrum bin of each channel.
    pub channel_frequency_starts: &'a [i16],
    /// First index into `weights` / `unweights` of each channel.
    pub channel_weight_starts: &'a [i16],
    /// Number of bins of each channel.
    pub channel_widths: &'a [i16],
    /// Number of bins of the input spectrum (uint32 elements).
    pub input_len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    freq_start: usize,
    weight_start: usize,
    width: usize,
}

/// A validated filter bank; see [`FilterBankConfig`].
#[derive(Debug, Clone)]
pub struct FilterBank {
    weights: Vec<i16>,
    unweights: Vec<i16>,
    channels: Vec<Channel>,
    input_len: usize,
}

impl FilterBank {
    /// Validates the configuration: `num_channels >= 0`, the per-channel
    /// arrays hold at least `num_channels + 1` entries, and every channel
    /// with a positive width reads only bins below `input_len` and weights
    /// within both weight arrays. Channels with width <= 0 read nothing, as in TFLM.
    pub fn new(config: &FilterBankConfig<'_>) -> Result<Self, SignalError> {
        let num_channels =
            usize::try_from(config.num_channels).map_err(|_| SignalError::Parameter {
                what: "filter bank num_channels",
                value: config.num_channels.into(),
                expected: "num_channels >= 0",
            })?;
        let needed = num_channels + 1;
        for (what, arr) in [
            ("channel_frequency_starts", config.channel_frequency_starts),
            ("channel_weight_starts", config.channel_weight_starts),
            ("channel_widths", config.channel_widths),
        ] {
            if arr.len() < needed {
                return Err(SignalError::TooShort {
                    what,
                    required: needed,
                    actual: arr.len(),
                });
            }
        }
        let mut channels = Vec::with_capacity(needed);
        for ch in 0..needed {
            let width = config.channel_widths[ch];
            if width <= 0 {
                channels.push(Channel {
                    freq_start: 0,
                    weight_start: 0,
                    width: 0,
                });
                continue;
            }
            let freq = config.channel_frequency_starts[ch];
            let wstart = config.channel_weight_starts[ch];
            let fits =
                |start: i16, len: usize| start >= 0 && start as usize + width as usize <= len;
            let bad = |what, start: i16, len| SignalError::FilterBankChannel {
                channel: ch,
                what,
                start: start.into(),
                width: width.into(),
                len,
            };
            if !fits(freq, config.input_len) {
                return Err(bad("input spectrum", freq, config.input_len));
            }
            if !fits(wstart, config.weights.len()) {
                return Err(bad("weights", wstart, config.weights.len()));
            }
            if !fits(wstart, config.unweights.len()) {
                return Err(bad("unweights", wstart, config.unweights.len()));
            }
            channels.push(Channel {
                freq_start: freq as usize,
                weight_start: wstart as usize,
                width: width as usize,
            });
        }
        Ok(Self {
            weights: config.weights.to_vec(),
            unweights: config.unweights.to_vec(),
            channels,
            input_len: config.input_len,
        })
    }

    /// Number of output channels.
    #[must_use]
    pub fn num_channels(&self) -> usize {
        self.channels.len() - 1
    }

    /// Checks `input_len` equals the configured spectrum size and `output_len` the channel count.
    pub fn check_lengths(&self, input_len: usize, output_len: usize) -> Result<(), SignalError> {
        expect_len("filter bank input", self.input_len, input_len)?;
        expect_len("filter bank output", self.num_channels(), output_len)
    }

    /// Accumulates the weighted energies of each channel into `output`.
    ///
    /// Arithmetic is uint64 and wraps like TFLM's (a negative int16 weight is
    /// converted to uint64 before the multiplication).
    pub fn apply(&self, input: &[u32], output: &mut [u64]) -> Result<(), SignalError> {
        self.check_lengths(input.len(), output.len())?;
        let mut carried: u64 = 0;
        for (ch, channel) in self.channels.iter().enumerate() {
            let bins = &input[channel.freq_start..channel.freq_start + channel.width];
            let span = channel.weight_start..channel.weight_start + channel.width;
            let mut weighted = carried;
            let mut unweighted: u64 = 0;
            for ((&x, &w), &u) in bins
                .iter()
                .zip(&self.weights[span.clone()])
                .zip(&self.unweights[span])
            {
                let x = u64::from(x);
                weighted = weighted.wrapping_add((i64::from(w) as u64).wrapping_mul(x));
                unweighted = unweighted.wrapping_add((i64::from(u) as u64).wrapping_mul(x));
            }
            if ch > 0 {
                output[ch - 1] = weighted;
            }
            carried = unweighted;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config<'a>(
        n: i32,
        w: &'a [i16],
        u: &'a [i16],
        f: &'a [i16],
        s: &'a [i16],
        widths: &'a [i16],
        len: usize,
    ) -> FilterBankConfig<'a> {
        FilterBankConfig {
            num_channels: n,
            weights: w,
            unweights: u,
            channel_frequency_starts: f,
            channel_weight_starts: s,
            channel_widths: widths,
            input_len: len,
        }
    }

    #[test]
    fn accumulates_with_carry() {
        let w = [1, 2, 3, 4];
        let u = [10, 20, 30, 40];
        let fb =
            FilterBank::new(&config(2, &w, &u, &[0, 1, 3], &[0, 1, 3], &[1, 2, 1], 4)).unwrap();
        let mut out = [0u64; 2];
        fb.apply(&[5, 6, 7, 8], &mut out).unwrap();
        // ch1 = 10*5 (carried) + 2*6 + 3*7; ch2 = 20*6 + 30*7 (carried) + 4*8.
        assert_eq!(out, [50 + 12 + 21, 120 + 210 + 32]);
    }

    #[test]
    fn negative_weight_wraps() {
        let fb = FilterBank::new(&config(1, &[-1], &[0], &[0, 0], &[0, 0], &[0, 1], 1)).unwrap();
        let mut out = [0u64; 1];
        fb.apply(&[3], &mut out).unwrap();
        assert_eq!(out, [3u64.wrapping_neg()]);
    }

    #[test]
    fn rejects_out_of_range_channels() {
        let w = [0i16; 4];
        assert!(FilterBank::new(&config(1, &w, &w, &[0, 3], &[0, 0], &[1, 2], 4)).is_err());
        assert!(FilterBank::new(&config(1, &w, &w, &[0, -1], &[0, 0], &[1, 1], 4)).is_err());
        assert!(FilterBank::new(&config(1, &w, &w, &[0, 0], &[0, 3], &[1, 2], 4)).is_err());
        assert!(FilterBank::new(&config(1, &w, &w[..2], &[0, 0], &[0, 2], &[1, 2], 4)).is_err());
        assert!(FilterBank::new(&config(2, &w, &w, &[0, 0], &[0, 0], &[1, 1], 4)).is_err());
        assert!(FilterBank::new(&config(-1, &w, &w, &[0], &[0], &[1], 4)).is_err());
        // Zero or negative widths read nothing, whatever their starts.
        assert!(FilterBank::new(&config(1, &w, &w, &[-9, 99], &[-9, 99], &[0, -3], 4)).is_ok());
    }
}
