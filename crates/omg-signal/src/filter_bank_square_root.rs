//! `SignalFilterBankSquareRoot`: square root of filter-bank energies, scaled down.

use crate::{SignalError, check_shift, expect_len, square_root::sqrt64};

/// Writes `sqrt64(input[i]) >> scale_down_bits` to `output[i]`.
///
/// No options. `scale_down_bits` is the runtime int32 scalar input 1 (the
/// shift returned by `SignalFftAutoScale` in micro_speech); values outside
/// `0..=31` (undefined in TFLM, never produced by the auto-scale op) are
/// rejected. `input` and `output` must have the same length.
pub fn filter_bank_square_root(
    input: &[u64],
    scale_down_bits: i32,
    output: &mut [u32],
) -> Result<(), SignalError> {
    expect_len("filter bank square root output", input.len(), output.len())?;
    let shift = check_shift("filter bank square root scale bits", scale_down_bits, 31)?;
    for (&x, y) in input.iter().zip(output.iter_mut()) {
        *y = sqrt64(x) >> shift;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrt_and_shift() {
        let mut out = [0u32; 3];
        filter_bank_square_root(&[16, 1 << 40, u64::MAX], 2, &mut out).unwrap();
        assert_eq!(out, [1, 1 << 18, 0xFFFF_FFFF >> 2]);
        assert!(filter_bank_square_root(&[1], 32, &mut out[..1]).is_err());
        assert!(filter_bank_square_root(&[1], -1, &mut out[..1]).is_err());
        assert!(filter_bank_square_root(&[1, 2], 0, &mut out[..1]).is_err());
    }
}
