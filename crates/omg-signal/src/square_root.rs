//! Integer square roots with TFLM's rounding (`Sqrt32`, `Sqrt64`).

use crate::msb::msb64;

/// Digit-by-digit square root of a non-zero `num < 2^bits` (`bits` 32 or 64), starting at
/// the highest even bit position at or below the leading bit, rounded up when the remainder
/// exceeds the root except when that would overflow `bits / 2` bits (TFLM's `Sqrt32` /
/// `Sqrt64` loop, whose intermediate values fit their type: computing in `u64` is exact).
fn rounded_sqrt(num: u64, bits: u32) -> u64 {
    let mut rem = num;
    let mut root: u64 = 0;
    let top = (bits - msb64(num)) | 1;
    let mut bit: u64 = 1 << (bits - 1 - top);
    for _ in 0..=((bits - 1 - top) / 2) {
        let trial = root + bit;
        if rem >= trial {
            rem -= trial;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    if rem > root && root != (1 << (bits / 2)) - 1 {
        root += 1;
    }
    root
}

/// Rounded integer square root of a 32-bit value (TFLM `Sqrt32`).
///
/// The digit-by-digit root is rounded up when the remainder exceeds it,
/// except when that would overflow 16 bits.
#[must_use]
pub fn sqrt32(num: u32) -> u16 {
    if num == 0 {
        return 0;
    }
    // The root never exceeds 0xFFFF.
    rounded_sqrt(u64::from(num), 32) as u16
}

/// Rounded integer square root of a 64-bit value (TFLM `Sqrt64`).
///
/// Values below 2^32 take the 32-bit path, exactly as TFLM does (which
/// saturates at 0xFFFF for inputs just below 2^32).
#[must_use]
pub fn sqrt64(num: u64) -> u32 {
    if let Ok(small) = u32::try_from(num) {
        return u32::from(sqrt32(small));
    }
    // The root never exceeds 0xFFFF_FFFF.
    rounded_sqrt(num, 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrt32_values() {
        assert_eq!(sqrt32(0), 0);
        assert_eq!(sqrt32(1), 1);
        assert_eq!(sqrt32(2), 1);
        assert_eq!(sqrt32(3), 2); // rounded: remainder 2 > root 1
        assert_eq!(sqrt32(16), 4);
        assert_eq!(sqrt32(20), 4);
        assert_eq!(sqrt32(21), 5);
        assert_eq!(sqrt32(u32::MAX), 0xFFFF);
    }

    #[test]
    fn sqrt32_is_rounded_root() {
        let mut x: u32 = 1;
        while x < 0xFFFE_0001 {
            let r = u64::from(sqrt32(x));
            let xf = u64::from(x);
            // r = floor(sqrt(x)) rounded up when x - floor^2 > floor.
            let fl = {
                let mut f = (x as f64).sqrt() as u64;
                while f * f > xf {
                    f -= 1;
                }
                while (f + 1) * (f + 1) <= xf {
                    f += 1;
                }
                f
            };
            let expect = if xf - fl * fl > fl { fl + 1 } else { fl };
            assert_eq!(r, expect, "x = {x}");
            x = x.wrapping_mul(3).wrapping_add(7) | 1;
            if x < 8 {
                break;
            }
        }
    }

    #[test]
    fn sqrt64_values() {
        assert_eq!(sqrt64(0), 0);
        assert_eq!(sqrt64(1 << 32), 1 << 16);
        assert_eq!(sqrt64(u64::MAX), 0xFFFF_FFFF);
        assert_eq!(sqrt64(1 << 62), 1 << 31);
        assert_eq!(sqrt64((1 << 40) + (1 << 20) + 1), (1 << 20) + 1);
    }
}
