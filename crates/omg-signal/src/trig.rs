//! Double-precision sine and cosine for table construction (no `std`).
//!
//! Accurate to a few ulps on the phases used for FFT twiddles (|x| < 8),
//! which is what TFLM's `floor(0.5 + 32767 * cos(x))` needs: the test
//! suite checks every twiddle table that [`crate::Rfft`] accepts against
//! values produced by a C math library.

/// `floor(x)` for |x| < 2^62.
pub(crate) fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

use core::f64::consts::FRAC_2_PI;

/// pi/2 split in a 33-bit head (so that k * head is exact for small k) and a tail.
const HALF_PI_HEAD: f64 = 1.570_796_326_734_125_6;
const HALF_PI_TAIL: f64 = 6.077_100_506_506_192e-11;

/// sin(r) and cos(r) for |r| <= pi/4 + a little, by Taylor series.
fn sin_cos_reduced(r: f64) -> (f64, f64) {
    let r2 = r * r;
    // Horner over 1/n! terms; truncation error below 1e-20 on |r| <= 0.8.
    let mut s = 0.0;
    let mut c = 0.0;
    let mut n = 21u32;
    while n >= 3 {
        // s accumulates sum_{odd k} (-1)^((k-1)/2) r^(k-1) / k!, nested.
        s = 1.0 - s * r2 / f64::from(n * (n - 1));
        n -= 2;
    }
    let sin = r * s;
    let mut m = 22u32;
    while m >= 2 {
        c = 1.0 - c * r2 / f64::from(m * (m - 1));
        m -= 2;
    }
    (sin, c)
}

/// Returns (sin(x), cos(x)) for moderate |x| (used with |x| < 8).
pub(crate) fn sin_cos(x: f64) -> (f64, f64) {
    let k = floor(x * FRAC_2_PI + 0.5);
    let r = (x - k * HALF_PI_HEAD) - k * HALF_PI_TAIL;
    let (s, c) = sin_cos_reduced(r);
    match (k as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_std() {
        let mut x = -7.5f64;
        while x < 7.5 {
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 4e-16, "sin {x}");
            assert!((c - x.cos()).abs() < 4e-16, "cos {x}");
            x += 0.001_234_5;
        }
    }

    #[test]
    fn floor_values() {
        assert_eq!(floor(-0.5), -1.0);
        assert_eq!(floor(2.0), 2.0);
        assert_eq!(floor(2.7), 2.0);
        assert_eq!(floor(-3.0), -3.0);
    }
}
