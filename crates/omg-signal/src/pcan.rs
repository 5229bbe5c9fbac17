//! `SignalPCAN`: per-channel amplitude normalization (automatic gain control).

use alloc::vec::Vec;

use crate::{SignalError, check_shift, expect_len, msb::msb32};

/// Fractional bits of the signal-to-noise ratio fed to the shrink function.
const SNR_BITS: u32 = 12;
/// Fractional bits of the output.
const OUTPUT_BITS: u32 = 6;
/// Entries of the gain lookup table TFLM may read (3 per octave of a uint32, plus 3).
pub const GAIN_LUT_LEN: usize = 125;

/// PCAN gain control driven by a noise estimate and a gain lookup table.
///
/// TFLM options: `snr_shift` (int). Constant input 2: the gain LUT (int16,
/// rank 1, at least [`GAIN_LUT_LEN`] entries). Runtime inputs: the signal
/// and the noise estimate (uint32, same length).
#[derive(Debug, Clone)]
pub struct Pcan {
    lut: Vec<i16>,
    snr_shift: u32,
}

impl Pcan {
    /// Validates the table length and `snr_shift` (`0..=63`).
    pub fn new(gain_lut: &[i16], snr_shift: i32) -> Result<Self, SignalError> {
        if gain_lut.len() < GAIN_LUT_LEN {
            return Err(SignalError::TooShort {
                what: "pcan gain LUT",
                required: GAIN_LUT_LEN,
                actual: gain_lut.len(),
            });
        }
        let snr_shift = check_shift("pcan snr_shift", snr_shift, 63)?;
        Ok(Self {
            lut: gain_lut[..GAIN_LUT_LEN].to_vec(),
            snr_shift,
        })
    }

    /// Gain for a noise level: piecewise quadratic interpolation of the LUT
    /// (TFLM `WideDynamicFunction`).
    fn gain(&self, x: u32) -> i16 {
        if x <= 2 {
            return self.lut[x as usize];
        }
        // x >= 3: interval in 2..=32, coefficients at 4*interval - 6 ..= 4*interval - 4 (<= 124).
        let interval = msb32(x);
        let c = &self.lut[(4 * interval - 6) as usize..];
        let frac = if interval < 11 {
            x << (11 - interval)
        } else {
            x >> (interval - 11)
        } & 0x3FF;
        let frac = frac as i32;
        let mut r = (i32::from(c[2]) * frac) >> 5;
        r += ((i32::from(c[1]) as u32) << 5) as i32;
        // |r| <= 2096128 and frac <= 1023: the product fits in i32.
        r *= frac;
        r = (r + (1 << 14)) >> 15;
        r += i32::from(c[0]);
        r as i16
    }

    /// x^2 / 4 below 2, x - 1 above, from SNR_BITS to OUTPUT_BITS fractional bits.
    fn shrink(x: u32) -> u32 {
        if x < (2 << SNR_BITS) {
            (x * x) >> (2 + 2 * SNR_BITS - OUTPUT_BITS)
        } else {
            (x >> (SNR_BITS - OUTPUT_BITS)) - (1 << OUTPUT_BITS)
        }
    }

    /// Checks that signal, noise estimate and output have the same length.
    pub fn check_lengths(
        &self,
        input_len: usize,
        noise_len: usize,
        output_len: usize,
    ) -> Result<(), SignalError> {
        expect_len("pcan noise estimate", input_len, noise_len)?;
        expect_len("pcan output", input_len, output_len)
    }

    /// Normalizes each channel of `input` by the gain for its noise level.
    pub fn apply(
        &self,
        input: &[u32],
        noise_estimate: &[u32],
        output: &mut [u32],
    ) -> Result<(), SignalError> {
        self.check_lengths(input.len(), noise_estimate.len(), output.len())?;
        for ((&x, &noise), y) in input.iter().zip(noise_estimate).zip(output.iter_mut()) {
            // The int16 gain is sign-extended to uint32, as in TFLM.
            let gain = i32::from(self.gain(noise)) as u32;
            let snr = ((u64::from(x) * u64::from(gain)) >> self.snr_shift) as u32;
            *y = Self::shrink(snr);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_pieces() {
        assert_eq!(Pcan::shrink(0), 0);
        assert_eq!(Pcan::shrink(4096), 16); // 1.0 -> 1/4 in Q6
        assert_eq!(Pcan::shrink(8192), 64); // 2.0 -> 1.0
        assert_eq!(Pcan::shrink(u32::MAX), (u32::MAX >> 6) - 64);
    }

    #[test]
    fn rejects_bad_config() {
        assert!(Pcan::new(&[0; 124], 6).is_err());
        assert!(Pcan::new(&[0; 125], 64).is_err());
        assert!(Pcan::new(&[0; 125], -1).is_err());
        let p = Pcan::new(&[0; 125], 6).unwrap();
        assert!(p.apply(&[1], &[1, 2], &mut [0]).is_err());
    }

    #[test]
    fn extreme_lut_values_do_not_overflow() {
        for v in [i16::MIN, i16::MAX] {
            let p = Pcan::new(&[v; 125], 0).unwrap();
            let mut out = [0u32; 4];
            p.apply(&[u32::MAX; 4], &[0, 3, 0x7FF, u32::MAX], &mut out)
                .unwrap();
        }
    }
}
