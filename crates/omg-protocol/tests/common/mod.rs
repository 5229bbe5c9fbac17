//! Shared test fixtures: a deterministic RNG and sample keys and claims.
#![allow(dead_code)]

use omg_protocol::rand_core::{TryCryptoRng, TryRng};
use omg_protocol::token::{Claims, SoftwareComponent};
use omg_protocol::{SigningKey, sha256};
use std::convert::Infallible;

/// Deterministic test RNG: SHA-256(seed || counter) blocks. Tests only.
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 32],
    pos: usize,
}

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng {
            seed: sha256(&seed.to_le_bytes()),
            counter: 0,
            buf: [0; 32],
            pos: 32,
        }
    }
}

impl TryRng for TestRng {
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
        for d in dst {
            if self.pos == 32 {
                let mut input = [0u8; 40];
                input[..32].copy_from_slice(&self.seed);
                input[32..].copy_from_slice(&self.counter.to_le_bytes());
                self.buf = sha256(&input);
                self.counter += 1;
                self.pos = 0;
            }
            *d = self.buf[self.pos];
            self.pos += 1;
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

pub const MEASUREMENT: [u8; 32] = [0x11; 32];
pub const SIGNER_ID: [u8; 32] = [0x22; 32];
pub const IMPLEMENTATION_ID: [u8; 32] = [0x33; 32];
pub const NONCE: [u8; 32] = [0x44; 32];

pub fn key(rng: &mut TestRng) -> SigningKey {
    omg_protocol::generate_signing_key(rng)
}

pub fn component() -> SoftwareComponent {
    SoftwareComponent {
        measurement_type: Some("enclave".into()),
        measurement_value: MEASUREMENT.to_vec(),
        version: Some("0.1.0".into()),
        signer_id: SIGNER_ID.to_vec(),
        measurement_desc: Some("sha-256".into()),
    }
}

pub fn claims(device: &SigningKey, enclave_key_hash: [u8; 32]) -> Claims {
    Claims::new(
        device.verifying_key(),
        &NONCE,
        IMPLEMENTATION_ID,
        vec![component()],
        enclave_key_hash,
    )
}

/// Applies every single-byte change (three masks per byte) and every truncation to `bytes`
/// and asserts that `check` rejects each variant.
pub fn assert_tamper_rejected<T, E: std::fmt::Debug>(
    bytes: &[u8],
    mut check: impl FnMut(&[u8]) -> Result<T, E>,
) -> usize {
    let mut n = 0;
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut m = bytes.to_vec();
            m[i] ^= mask;
            assert!(check(&m).is_err(), "byte {i} ^ {mask:#04x} accepted");
            n += 1;
        }
    }
    for len in 0..bytes.len() {
        assert!(
            check(&bytes[..len]).is_err(),
            "truncation to {len} accepted"
        );
        n += 1;
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(check(&longer).is_err(), "trailing byte accepted");
    n + 1
}
