//! Integer square roots with TFLM's rounding (`Sqrt32`, `Sqrt64`).

/// TFLM's `Sqrt32` / `Sqrt64` loop for a non-zero `num < 2^bits` (`bits` 32 or 64): its
/// digit-by-digit root is `floor(sqrt(num))`, rounded up when the remainder exceeds it except
/// when that would overflow `bits / 2` bits.
fn rounded_sqrt(num: u64, bits: u32) -> u64 {
    let root = num.isqrt();
    let rem = num - root * root;
    if rem > root && root != (1 << (bits / 2)) - 1 {
        root + 1
    } else {
        root
    }
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
    fn sqrt64_is_rounded_root() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = x >> (x % 40);
            if v < 1 << 32 {
                continue;
            }
            let r = u128::from(sqrt64(v));
            let fl = if r * r > u128::from(v) { r - 1 } else { r };
            assert!(
                fl * fl <= u128::from(v) && (fl + 1) * (fl + 1) > u128::from(v),
                "{v}"
            );
            let rounded = u128::from(v) - fl * fl > fl && fl != 0xFFFF_FFFF;
            assert_eq!(r, fl + u128::from(rounded), "{v}");
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
