//! `SignalEnergy`: squared magnitude of a range of complex int16 bins.

use crate::SignalError;

/// Computes `re^2 + im^2` (as uint32) for the bins `start_index..end_index`.
///
/// TFLM options: `start_index` (int), `end_index` (int). Like TFLM, bins
/// outside the range are left untouched in the output buffer (the
/// micro_speech model zeroes them with STRIDED_SLICE + CONCATENATION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Energy {
    start: usize,
    end: usize,
}

impl Energy {
    /// Validates the bin range. `start_index >= end_index` is accepted and
    /// computes nothing (TFLM's loop does not run); otherwise both must be
    /// non-negative. Whether `end_index` fits the buffers is checked by
    /// [`Energy::check_lengths`] / [`Energy::apply`].
    pub fn new(start_index: i32, end_index: i32) -> Result<Self, SignalError> {
        if start_index >= end_index {
            return Ok(Self { start: 0, end: 0 });
        }
        let start = usize::try_from(start_index).map_err(|_| SignalError::Parameter {
            what: "energy start_index",
            value: start_index.into(),
            expected: "0 <= start_index",
        })?;
        // end_index > start_index >= 0 here.
        Ok(Self {
            start,
            end: end_index as usize,
        })
    }

    /// The range of bins written.
    #[must_use]
    pub fn range(&self) -> core::ops::Range<usize> {
        self.start..self.end
    }

    /// Checks that the spectrum (interleaved int16 values) holds at least
    /// `end_index` complex bins and the output at least `end_index` values.
    pub fn check_lengths(&self, spectrum_len: usize, output_len: usize) -> Result<(), SignalError> {
        if spectrum_len / 2 < self.end {
            return Err(SignalError::TooShort {
                what: "energy input (int16 values, 2 per bin)",
                required: 2 * self.end,
                actual: spectrum_len,
            });
        }
        if output_len < self.end {
            return Err(SignalError::TooShort {
                what: "energy output",
                required: self.end,
                actual: output_len,
            });
        }
        Ok(())
    }

    /// Writes `output[k] = re_k^2 + im_k^2` for each bin `k` of the range,
    /// reading `spectrum = [re0, im0, re1, im1, ...]`.
    pub fn apply(&self, spectrum: &[i16], output: &mut [u32]) -> Result<(), SignalError> {
        self.check_lengths(spectrum.len(), output.len())?;
        let bins = spectrum[2 * self.start..2 * self.end].chunks_exact(2);
        for (pair, out) in bins.zip(&mut output[self.start..self.end]) {
            let re = i32::from(pair[0]);
            let im = i32::from(pair[1]);
            // Each square is at most 2^30, so the unsigned sum (at most 2^31) is exact.
            *out = ((re * re) as u32) + ((im * im) as u32);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_range_only() {
        let e = Energy::new(1, 3).unwrap();
        let mut out = [7u32; 4];
        e.apply(&[1, 1, 3, -4, -32768, -32768, 5, 5], &mut out)
            .unwrap();
        assert_eq!(out, [7, 25, 1 << 31, 7]);
        assert!(e.apply(&[0; 5], &mut out).is_err());
        assert!(e.apply(&[0; 6], &mut [0; 2]).is_err());
    }

    #[test]
    fn energy_config() {
        assert!(Energy::new(-1, 5).is_err());
        assert_eq!(Energy::new(5, 5).unwrap().range(), 0..0);
        assert_eq!(Energy::new(-7, -9).unwrap().range(), 0..0);
        assert!(
            Energy::new(0, i32::MAX)
                .unwrap()
                .check_lengths(514, 257)
                .is_err()
        );
    }
}
