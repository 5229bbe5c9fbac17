//! Shared test fixtures: a deterministic RNG and sample keys and claims.
#![allow(dead_code)]

use omg_protocol::SigningKey;
use omg_protocol::token::{Claims, SoftwareComponent};

/// The shared deterministic test RNG.
pub use omg_testkit::DeterministicRng as TestRng;

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
