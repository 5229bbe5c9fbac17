//! Fallible allocation for everything whose size a model decides: the tensor arena, kernel
//! scratch memory and repacked weights. A model that asks for more than the heap holds gets
//! [`Error::OutOfMemory`] instead of aborting the process (which matters most in an enclave
//! whose whole heap is a few MiB).

use alloc::vec::Vec;

use crate::error::{Error, Result};

/// `len` copies of `value`, or [`Error::OutOfMemory`] naming `what` if they do not fit.
pub fn filled<T: Clone>(len: usize, value: T, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        what,
        bytes: len.saturating_mul(core::mem::size_of::<T>()),
    })?;
    v.resize(len, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_size_is_an_error_not_an_abort() {
        let e = filled(1 << 60, 0u64, "tensor arena").unwrap_err();
        assert_eq!(
            alloc::format!("{e}"),
            "not enough memory for the tensor arena (9223372036854775808 bytes)"
        );
        assert_eq!(filled(3, 7u8, "x").unwrap(), [7, 7, 7]);
    }
}
