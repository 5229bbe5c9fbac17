//! Same-shape quantized ADD.

use super::Isa;
use crate::elementwise::AddParams;
use crate::simd::{Job, Kernels, dispatch};
use crate::{KernelError, Result};

/// A same-shape quantized ADD.
pub(super) struct AddJob<'a> {
    p: &'a AddParams,
    a: &'a [i8],
    b: &'a [i8],
    output: &'a mut [i8],
}

impl Job for AddJob<'_> {
    type Output = ();

    #[inline(always)]
    fn run<K: Kernels>(self, k: K) {
        k.add_i8(self.p, self.a, self.b, self.output);
    }
}

/// Quantized int8 ADD of two tensors of the same shape, bit-exact with
/// [`crate::elementwise::add_quantized`]. All three slices must have the same length.
pub fn add_i8(isa: Isa, p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<()> {
    if a.len() != output.len() || b.len() != output.len() {
        return Err(KernelError::Shape(
            "slice lengths do not match the broadcast shapes",
        ));
    }
    dispatch(isa, AddJob { p, a, b, output })
}
