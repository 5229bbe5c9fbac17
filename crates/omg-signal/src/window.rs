//! `SignalWindow`: multiply samples by fixed-point window weights.

use alloc::vec::Vec;

use crate::{SignalError, check_shift, expect_len};

/// A window (e.g. Hann in Q12) applied sample by sample: `sat16((x * w) >> shift)`.
///
/// TFLM options: `shift` (int). Constant input 1: the weights (int16, rank 1).
#[derive(Debug, Clone)]
pub struct Window {
    weights: Vec<i16>,
    shift: u32,
}

impl Window {
    /// Builds a window from its weights and the right shift applied to each product.
    ///
    /// Rejects an empty weight vector and shifts outside `0..=31`.
    pub fn new(weights: &[i16], shift: i32) -> Result<Self, SignalError> {
        if weights.is_empty() {
            return Err(SignalError::TooShort {
                what: "window weights",
                required: 1,
                actual: 0,
            });
        }
        let shift = check_shift("window shift", shift, 31)?;
        Ok(Self {
            weights: weights.to_vec(),
            shift,
        })
    }

    /// Number of weights (the innermost dimension of the input).
    #[must_use]
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Always false: a window has at least one weight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Checks the buffer lengths `apply` accepts: the input holds whole frames
    /// of `len()` samples and the output has the same length as the input.
    pub fn check_lengths(&self, input_len: usize, output_len: usize) -> Result<(), SignalError> {
        expect_len("window output", input_len, output_len)?;
        if !input_len.is_multiple_of(self.weights.len()) {
            return Err(SignalError::Length {
                what: "window input (a multiple of the weight count)",
                expected: (input_len / self.weights.len() + 1) * self.weights.len(),
                actual: input_len,
            });
        }
        Ok(())
    }

    /// Windows every frame of `input` (a whole number of frames of `len()`
    /// samples) into `output`, saturating to the int16 range.
    pub fn apply(&self, input: &[i16], output: &mut [i16]) -> Result<(), SignalError> {
        self.check_lengths(input.len(), output.len())?;
        let n = self.weights.len();
        for (frame_in, frame_out) in input.chunks_exact(n).zip(output.chunks_exact_mut(n)) {
            for ((&x, &w), y) in frame_in.iter().zip(&self.weights).zip(frame_out.iter_mut()) {
                // |x * w| <= 2^30: no overflow.
                let raw = (i32::from(x) * i32::from(w)) >> self.shift;
                *y = raw.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_and_shifts() {
        let w = Window::new(&[4096, -32768, 32767, 2], 12).unwrap();
        let mut out = [0i16; 8];
        w.apply(&[100, -32768, -32768, -3, 32767, 1, 32767, 32767], &mut out)
            .unwrap();
        // -32768 * -32768 >> 12 = 262144 saturates; -3 * 2 >> 12 = -1 (floor).
        assert_eq!(out, [100, 32767, -32768, -1, 32767, -8, 32767, 15]);
    }

    #[test]
    fn rejects_bad_config_and_lengths() {
        assert!(Window::new(&[], 1).is_err());
        assert!(Window::new(&[1], 32).is_err());
        assert!(Window::new(&[1], -1).is_err());
        let w = Window::new(&[1, 2], 0).unwrap();
        assert!(w.apply(&[1, 2, 3], &mut [0; 3]).is_err());
        assert!(w.apply(&[1, 2], &mut [0; 3]).is_err());
    }
}
