//! Platform services of OP-TEE that the enclave's `Platform` will stand on, each reachable by a
//! command so the normal-world check can test it: randomness from the TEE, monotonic counters
//! kept as persistent objects in OP-TEE's RPMB secure storage (replay-protected: restoring the
//! normal world's files does not roll them back), and keys derived from the hardware-unique key
//! and the TA's identity by OP-TEE's system PTA (only their SHA-256 leaves the TA), and
//! evidence from OP-TEE's attestation PTA: a hash of the TA's code and read-only data in
//! memory, signed over a verifier's nonce with a key OP-TEE keeps.
#![forbid(unsafe_code)]

use optee_utee::{
    AlgorithmId, DataFlag, Digest, ErrorKind, ObjectStorageConstants, ParamIndex, PersistentObject,
    Random, TaSessionBuilder, TeeParams, Uuid,
};

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

/// OP-TEE's system PTA, and its command deriving a key from the hardware-unique key, the calling
/// TA's UUID and caller-chosen extra data.
const SYSTEM_PTA_UUID: &str = "3a2f8978-5dc0-11e8-9c2d-fa7ae01bbebc";
const PTA_SYSTEM_DERIVE_TA_UNIQUE_KEY: u32 = 1;
/// Longest label a key derivation takes.
pub const MAX_LABEL_BYTES: usize = 64;

/// The 32-byte key of this TA on this device for `label`.
fn ta_unique_key(label: &[u8]) -> optee_utee::Result<[u8; 32]> {
    if label.len() > MAX_LABEL_BYTES {
        return Err(ErrorKind::BadParameters.into());
    }
    let mut session = TaSessionBuilder::new(Uuid::parse_str(SYSTEM_PTA_UUID)?).build()?;
    let mut key = [0u8; 32];
    let mut params = TeeParams::new()
        .with_memref_in(ParamIndex::Arg0, label)
        .with_memref_out(ParamIndex::Arg1, &mut key);
    session.invoke_command(PTA_SYSTEM_DERIVE_TA_UNIQUE_KEY, &mut params)?;
    if params[ParamIndex::Arg1].written_slice().map(<[u8]>::len) != Some(32) {
        return Err(ErrorKind::Generic.into());
    }
    Ok(key)
}

/// SHA-256 of the key for `label`: the normal world can check that derivation is stable and
/// label-separated without ever seeing a key.
pub fn key_fingerprint(label: &[u8]) -> optee_utee::Result<[u8; 32]> {
    let key = ta_unique_key(label)?;
    let digest = Digest::allocate(AlgorithmId::Sha256)?;
    let mut out = [0u8; 32];
    if digest.do_final(&key, &mut out)? != out.len() {
        return Err(ErrorKind::Generic.into());
    }
    Ok(out)
}

/// OP-TEE's attestation PTA and its command measuring the calling TA's memory.
const ATTESTATION_PTA_UUID: &str = "39800861-182a-4720-9b67-2bcd622bc0b5";
const PTA_ATTESTATION_HASH_TA_MEMORY: u32 = 2;
/// Longest nonce an attestation takes.
pub const MAX_NONCE_BYTES: usize = 64;
/// Largest evidence: a SHA-256 hash and an RSA signature of up to 4096 bits.
pub const MAX_EVIDENCE_BYTES: usize = 32 + 512;

/// Evidence for `nonce` (1 to 64 bytes): the SHA-256 of this TA's immutable memory followed by
/// the attestation PTA's RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) signature of
/// SHA-256(nonce | hash). Writes it to `out` and returns its length.
pub fn attest(nonce: &[u8], out: &mut [u8; MAX_EVIDENCE_BYTES]) -> optee_utee::Result<usize> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_BYTES {
        return Err(ErrorKind::BadParameters.into());
    }
    let mut session = TaSessionBuilder::new(Uuid::parse_str(ATTESTATION_PTA_UUID)?).build()?;
    let mut params = TeeParams::new()
        .with_memref_in(ParamIndex::Arg0, nonce)
        .with_memref_out(ParamIndex::Arg1, out);
    session.invoke_command(PTA_ATTESTATION_HASH_TA_MEMORY, &mut params)?;
    params[ParamIndex::Arg1]
        .written_slice()
        .map(<[u8]>::len)
        .ok_or_else(|| ErrorKind::Generic.into())
}
