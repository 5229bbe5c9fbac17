//! The operating system's RNG as a rand_core 0.10 [`CryptoRng`](rand_core::CryptoRng) (feature `getrandom`).

use core::convert::Infallible;

use rand_core::{TryCryptoRng, TryRng};

/// The operating system's cryptographic RNG (`getrandom`).
///
/// Infallible by contract: if the OS cannot deliver randomness (which on Linux only happens
/// before the entropy pool is initialised at boot, where `getrandom` blocks instead), this
/// panics rather than hand out weak keys or nonces.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRng;

impl TryRng for OsRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        #[allow(clippy::expect_used)]
        getrandom::fill(dst).expect("the operating system RNG failed");
        Ok(())
    }
}

impl TryCryptoRng for OsRng {}
