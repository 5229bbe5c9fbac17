//! `SignalFilterBankLog`: scaled natural log of filter-bank channels, as int16.

use crate::{SignalError, check_shift, expect_len, log::log32};

/// `min(log32(x << input_correction_bits, output_scale), 32767)`, 0 for inputs <= 1.
///
/// TFLM options: `output_scale` (int, used as uint32), `input_correction_bits` (int).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterBankLog {
    output_scale: u32,
    input_correction_bits: u32,
}

impl FilterBankLog {
    /// Validates `input_correction_bits` (`0..=31`); any `output_scale` is
    /// accepted (TFLM reinterprets it as uint32 and wraps).
    pub fn new(output_scale: i32, input_correction_bits: i32) -> Result<Self, SignalError> {
        let input_correction_bits = check_shift(
            "filter bank log input_correction_bits",
            input_correction_bits,
            31,
        )?;
        Ok(Self {
            output_scale: output_scale as u32,
            input_correction_bits,
        })
    }

    /// Checks that input and output have the same length.
    pub fn check_lengths(&self, input_len: usize, output_len: usize) -> Result<(), SignalError> {
        expect_len("filter bank log output", input_len, output_len)
    }

    /// Computes the log of each channel.
    pub fn apply(&self, input: &[u32], output: &mut [i16]) -> Result<(), SignalError> {
        self.check_lengths(input.len(), output.len())?;
        for (&x, y) in input.iter().zip(output.iter_mut()) {
            let scaled = x << self.input_correction_bits;
            *y = if scaled > 1 {
                log32(scaled, self.output_scale).min(i16::MAX as u32) as i16
            } else {
                0
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_values() {
        let l = FilterBankLog::new(64, 3).unwrap();
        let mut out = [9i16; 4];
        l.apply(&[0, 1, 1 << 29, u32::MAX], &mut out).unwrap();
        // 1 << 3 = 8: ln 8 * 64 = 133.08; 2^32 wraps to 0 -> 0; u32::MAX << 3 wraps.
        assert_eq!(out[0], 0);
        assert_eq!(out[1], 133);
        assert_eq!(out[2], 0);
        assert_eq!(out[3], log32(u32::MAX << 3, 64) as i16);
        let big = FilterBankLog::new(i32::MAX, 0).unwrap();
        big.apply(&[2, 3, 4, 5], &mut out).unwrap();
        assert!(FilterBankLog::new(64, 32).is_err());
        assert!(l.apply(&[1], &mut out).is_err());
    }
}
