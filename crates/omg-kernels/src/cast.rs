//! CAST (TFLM `cast.cc`): element-wise `static_cast` between int8, int16, int32, uint32, uint64,
//! float32 and from bool.
//!
//! TFLM supports inputs int8, int16, int32, uint32, float32, bool and outputs int8, int16, int32,
//! uint32, float32; uint64 is provided here as well. Integer -> integer conversions wrap (C
//! semantics). float -> integer truncates toward zero; where C is undefined (NaN, out of range)
//! this crate saturates (NaN -> 0), which can differ from what a given C compiler produces.

/// A value type CAST can read or write.
pub trait CastElement: Copy {
    /// Converts to the target type with C `static_cast` semantics (see the module docs).
    fn cast_to<U: CastElement>(self) -> U;
    /// Builds this type from an i64 (integer sources).
    fn from_i64(v: i64) -> Self;
    /// Builds this type from a u64 (uint64 source).
    fn from_u64(v: u64) -> Self;
    /// Builds this type from an f32 (float source).
    fn from_f32(v: f32) -> Self;
}

macro_rules! cast_int {
    ($($t:ty),*) => {$(
        impl CastElement for $t {
            #[inline]
            fn cast_to<U: CastElement>(self) -> U {
                U::from_i64(self as i64)
            }
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
        }
    )*};
}
cast_int!(i8, i16, i32, u32);

impl CastElement for u64 {
    #[inline]
    fn cast_to<U: CastElement>(self) -> U {
        U::from_u64(self)
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v as u64
    }
    #[inline]
    fn from_u64(v: u64) -> Self {
        v
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v as u64
    }
}

impl CastElement for f32 {
    #[inline]
    fn cast_to<U: CastElement>(self) -> U {
        U::from_f32(self)
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    #[inline]
    fn from_u64(v: u64) -> Self {
        v as f32
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl CastElement for bool {
    #[inline]
    fn cast_to<U: CastElement>(self) -> U {
        U::from_i64(i64::from(self))
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    #[inline]
    fn from_u64(v: u64) -> Self {
        v != 0
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v != 0.0
    }
}

/// CAST eval: converts element by element (the common prefix if the lengths differ).
pub fn cast<A: CastElement, B: CastElement>(input: &[A], output: &mut [B]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = x.cast_to::<B>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts() {
        let mut o8 = [0i8; 4];
        cast(&[300i32, -129, 5, -1], &mut o8);
        assert_eq!(o8, [44, 127, 5, -1]);
        let mut ou = [0u32; 2];
        cast(&[-1i16, 7], &mut ou);
        assert_eq!(ou, [u32::MAX, 7]);
        let mut oi = [0i32; 4];
        cast(&[1.9f32, -1.9, f32::NAN, 3e9], &mut oi);
        assert_eq!(oi, [1, -1, 0, i32::MAX]);
        let mut of = [0f32; 3];
        cast(&[u64::MAX, 1, 16_777_217], &mut of);
        assert_eq!(of, [1.8446744e19, 1.0, 16_777_216.0]);
        let mut ob = [0i16; 2];
        cast(&[true, false], &mut ob);
        assert_eq!(ob, [1, 0]);
        let mut o64 = [0u64; 2];
        cast(&[-1i8, 2], &mut o64);
        assert_eq!(o64, [u64::MAX, 2]);
    }
}
