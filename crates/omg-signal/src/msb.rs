//! Most-significant-bit helpers (TFLM `MostSignificantBit32/64`).

/// Number of significant bits of `x` (1-based position of the highest set bit).
///
/// Matches TFLM's GCC build, which returns 32 (not 0) for `x == 0`.
#[must_use]
pub const fn msb32(x: u32) -> u32 {
    if x == 0 { 32 } else { 32 - x.leading_zeros() }
}

/// Number of significant bits of `x`; returns 64 for `x == 0` like TFLM's GCC build.
#[must_use]
pub const fn msb64(x: u64) -> u32 {
    if x == 0 { 64 } else { 64 - x.leading_zeros() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msb_values() {
        assert_eq!(msb32(0), 32);
        assert_eq!(msb32(1), 1);
        assert_eq!(msb32(0x8000), 16);
        assert_eq!(msb32(u32::MAX), 32);
        assert_eq!(msb64(0), 64);
        assert_eq!(msb64(3), 2);
        assert_eq!(msb64(1 << 40), 41);
    }
}
