//! Platform services of OP-TEE that the enclave's `Platform` will stand on, each reachable by a
//! command so the normal-world check can test it: randomness from the TEE, and monotonic
//! counters kept as persistent objects in OP-TEE's RPMB secure storage (replay-protected:
//! restoring the normal world's files does not roll them back).
#![forbid(unsafe_code)]

use optee_utee::{DataFlag, ErrorKind, ObjectStorageConstants, PersistentObject, Random};

/// Largest random draw a command returns.
pub const MAX_RANDOM_BYTES: usize = 64;
/// Number of counters (the enclave's revocation epoch and inference count).
pub const COUNTERS: u32 = 2;

/// Fills `out` from OP-TEE's random number generator.
pub fn random(out: &mut [u8]) {
    Random::generate(out);
}

/// The persistent object holding counter `index` (8 bytes, little-endian).
fn object_id(index: u32) -> [u8; 12] {
    let mut id = *b"omg-counter-";
    id[11] = b'0' + index as u8;
    id
}

/// Adds `increment` to counter `index` in RPMB storage and returns its new value (0 if never
/// raised and `increment` is 0). A counter never wraps: an overflow is refused.
pub fn raise_counter(index: u32, increment: u64) -> optee_utee::Result<u64> {
    if index >= COUNTERS {
        return Err(ErrorKind::BadParameters.into());
    }
    let id = object_id(index);
    let flags = || DataFlag::ACCESS_READ | DataFlag::ACCESS_WRITE | DataFlag::ACCESS_WRITE_META;
    let mut object = match PersistentObject::open(ObjectStorageConstants::PrivateRpmb, &id, flags())
    {
        Ok(object) => object,
        Err(e) if e.kind() == ErrorKind::ItemNotFound => PersistentObject::create(
            ObjectStorageConstants::PrivateRpmb,
            &id,
            flags(),
            None,
            &0u64.to_le_bytes(),
        )?,
        Err(e) => return Err(e),
    };
    let mut bytes = [0u8; 8];
    if object.read(&mut bytes)? != 8 {
        return Err(ErrorKind::CorruptObject.into());
    }
    let value = u64::from_le_bytes(bytes)
        .checked_add(increment)
        .ok_or(ErrorKind::Overflow)?;
    if increment != 0 {
        object.seek(0, optee_utee::Whence::DataSeekSet)?;
        object.write(&value.to_le_bytes())?;
    }
    Ok(value)
}
