//! OP-TEE's platform services and [`OpteePlatform`], omg-enclave's `Platform` on them. The
//! services are also reachable by commands so the normal-world check can test them one by one:
//! randomness from the TEE, monotonic counters
//! kept as persistent objects in OP-TEE's RPMB secure storage (replay-protected: restoring the
//! normal world's files does not roll them back), and keys derived from the hardware-unique key
//! and the TA's identity by OP-TEE's system PTA (only their SHA-256 leaves the TA), and
//! evidence from OP-TEE's attestation PTA: a hash of the TA's code and read-only data in
//! memory, signed over a verifier's nonce with a key OP-TEE keeps.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::vec::Vec;
use core::convert::Infallible;

use omg_enclave::ledger::{Ledger, Open};
use omg_enclave::platform::{Counter, ModelScope, Reservation};
use omg_enclave::{Platform, PlatformError};
use omg_protocol::rand_core::{CryptoRng, TryCryptoRng, TryRng};
use omg_protocol::sealed::SealingKey;
use optee_utee::{
    AlgorithmId, DataFlag, Digest, ErrorKind, ObjectStorageConstants, ParamIndex, PersistentObject,
    Random, TaSessionBuilder, TeeParams, Time, Uuid,
};

/// Largest random draw a command returns.
pub const MAX_RANDOM_BYTES: usize = 64;
/// Number of counters (the enclave's revocation epoch and inference count).
pub const COUNTERS: u32 = 2;

/// Fills `out` from OP-TEE's random number generator.
pub fn random(out: &mut [u8]) {
    Random::generate(out);
}

/// The persistent object holding counter `index` of the counter command (8 bytes,
/// little-endian).
fn object_id(index: u32) -> [u8; 12] {
    let mut id = *b"omg-counter-";
    id[11] = b'0' + index as u8;
    id
}

/// Reads the `N`-byte record of persistent object `id` in RPMB storage (all zero when it does
/// not exist yet), lets `change` update it, and writes it back in one write (or creates the
/// object with it) when `change` says it changed. The object is opened without sharing flags, so OP-TEE refuses another session
/// (TA instance) opening it meanwhile (`TEE_ERROR_ACCESS_CONFLICT`): every update is one
/// read-modify-write no other session interleaves with.
fn update_record<const N: usize, T>(
    id: &[u8],
    change: impl FnOnce(&mut [u8; N]) -> optee_utee::Result<(T, bool)>,
) -> optee_utee::Result<T> {
    let flags = || DataFlag::ACCESS_READ | DataFlag::ACCESS_WRITE | DataFlag::ACCESS_WRITE_META;
    let mut record = [0u8; N];
    let mut object = match PersistentObject::open(ObjectStorageConstants::PrivateRpmb, id, flags())
    {
        Ok(object) => object,
        Err(e) if e.kind() == ErrorKind::ItemNotFound => {
            // A missing object reads as zeros; it is created only when it changes.
            let (result, changed) = change(&mut record)?;
            if changed {
                PersistentObject::create(
                    ObjectStorageConstants::PrivateRpmb,
                    id,
                    flags(),
                    None,
                    &record,
                )?;
            }
            return Ok(result);
        }
        Err(e) => return Err(e),
    };
    if object.read(&mut record)? as usize != N {
        return Err(ErrorKind::CorruptObject.into());
    }
    let (result, changed) = change(&mut record)?;
    if changed {
        object.seek(0, optee_utee::Whence::DataSeekSet)?;
        object.write(&record)?;
    }
    Ok(result)
}

/// Adds `increment` to the 8-byte little-endian counter of object `id` and returns its new
/// value. A counter never wraps: an overflow is refused.
fn add_to_counter(id: &[u8], increment: u64) -> optee_utee::Result<u64> {
    update_record::<8, u64>(id, |record| {
        let value = u64::from_le_bytes(*record)
            .checked_add(increment)
            .ok_or(ErrorKind::Overflow)?;
        *record = value.to_le_bytes();
        Ok((value, increment != 0))
    })
}

/// Adds `increment` to counter `index` in RPMB storage and returns its new value (0 if never
/// raised and `increment` is 0). A counter never wraps: an overflow is refused.
pub fn raise_counter(index: u32, increment: u64) -> optee_utee::Result<u64> {
    if index >= COUNTERS {
        return Err(ErrorKind::BadParameters.into());
    }
    add_to_counter(&object_id(index), increment)
}

/// OP-TEE's system PTA, and its command deriving a key from the hardware-unique key, the calling
/// TA's UUID and caller-chosen extra data.
const SYSTEM_PTA_UUID: &str = "3a2f8978-5dc0-11e8-9c2d-fa7ae01bbebc";
const PTA_SYSTEM_DERIVE_TA_UNIQUE_KEY: u32 = 1;
/// Longest label a key derivation takes.
pub const MAX_LABEL_BYTES: usize = 64;

/// The 32-byte key of this TA on this device for `label`.
pub fn ta_unique_key(label: &[u8]) -> optee_utee::Result<[u8; 32]> {
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

/// Evidence for a normal-world `nonce` (1 to 64 bytes): the SHA-256 of this TA's immutable
/// memory followed by the attestation PTA's RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt)
/// signature of `SHA-256(RAW_EVIDENCE_LABEL || nonce) || hash`. The PTA never gets the
/// caller's nonce itself: otherwise the normal world could have it sign the binding of an
/// attestation token with a key of its own (omg_protocol::optee, "Why this binding").
/// Writes it to `out` and returns its length.
pub fn attest(nonce: &[u8], out: &mut [u8; MAX_EVIDENCE_BYTES]) -> optee_utee::Result<usize> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_BYTES {
        return Err(ErrorKind::BadParameters.into());
    }
    hash_ta_memory(&omg_protocol::optee::raw_evidence_nonce(nonce), out)
}

/// The attestation PTA's `PTA_ATTESTATION_HASH_TA_MEMORY` over `pta_nonce` as given: the TA's
/// memory hash followed by the PTA's signature of `pta_nonce || hash`. Only ever called with a
/// nonce the TA computed itself.
fn hash_ta_memory(
    pta_nonce: &[u8],
    out: &mut [u8; MAX_EVIDENCE_BYTES],
) -> optee_utee::Result<usize> {
    let mut session = TaSessionBuilder::new(Uuid::parse_str(ATTESTATION_PTA_UUID)?).build()?;
    let mut params = TeeParams::new()
        .with_memref_in(ParamIndex::Arg0, pta_nonce)
        .with_memref_out(ParamIndex::Arg1, out);
    session.invoke_command(PTA_ATTESTATION_HASH_TA_MEMORY, &mut params)?;
    params[ParamIndex::Arg1]
        .written_slice()
        .map(<[u8]>::len)
        .ok_or_else(|| ErrorKind::Generic.into())
}

/// A token over the normal world's `nonce` (32, 48 or 64 bytes) for an enclave key hash the TA
/// draws at random and forgets: a sample of this TA's token for a verifier outside the TA. Its
/// key hash is no hash of any key (nobody knows a preimage), so a vendor releases nothing to
/// it.
pub fn sample_token(nonce: &[u8]) -> optee_utee::Result<Vec<u8>> {
    let mut platform = OpteePlatform::new()?;
    let mut key_hash = [0u8; 32];
    random(&mut key_hash);
    platform.attest(nonce, key_hash).map_err(|e| {
        optee_utee::trace_println!("omg TA: sample token: {}", e);
        ErrorKind::BadParameters.into()
    })
}

/// The attestation PTA's command returning its public key (exponent and modulus).
const PTA_ATTESTATION_GET_PUBKEY: u32 = 0;
/// Largest RSA modulus the attestation PTA uses (4096 bits).
const MAX_MODULUS_BYTES: usize = 512;

/// The modulus of the attestation PTA's RSA public key (big-endian, no leading zero byte).
fn attestation_modulus() -> optee_utee::Result<Vec<u8>> {
    let mut session = TaSessionBuilder::new(Uuid::parse_str(ATTESTATION_PTA_UUID)?).build()?;
    let mut exponent = [0u8; 8];
    let mut modulus = [0u8; MAX_MODULUS_BYTES];
    let mut params = TeeParams::new()
        .with_memref_out(ParamIndex::Arg0, &mut exponent)
        .with_memref_out(ParamIndex::Arg1, &mut modulus)
        .with_value_out(ParamIndex::Arg2, 0, 0);
    session.invoke_command(PTA_ATTESTATION_GET_PUBKEY, &mut params)?;
    params[ParamIndex::Arg1]
        .written_slice()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| ErrorKind::Generic.into())
}

/// A platform error of `service` from an OP-TEE result.
fn tee_error(service: &'static str, e: optee_utee::Error) -> PlatformError {
    PlatformError::new(service, format!("OP-TEE {:?}", e.kind()))
}

/// OP-TEE's random number generator as a `CryptoRng`.
pub struct TeeRng;

impl TryRng for TeeRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        random(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        random(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        random(dst);
        Ok(())
    }
}

impl TryCryptoRng for TeeRng {}

/// Most reservations of one scope open at once; when one more is granted, the oldest is counted
/// as used whole (a session that never settled, because its TA instance died, is counted so).
pub const MAX_OPEN_RESERVATIONS: usize = 8;
/// The quota record: used, next id, number open, then the open reservations (id, start,
/// granted), every field a little-endian u64.
const QUOTA_RECORD_BYTES: usize = 24 + MAX_OPEN_RESERVATIONS * 24;

/// A scope's inference quota as kept in RPMB (open reservations have no holder: a TA instance
/// cannot tell whether another one is still alive).
type Quota = Ledger<()>;

fn record_field(record: &[u8; QUOTA_RECORD_BYTES], i: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&record[i * 8..i * 8 + 8]);
    u64::from_le_bytes(bytes)
}

/// Reads the quota record; a count of open reservations above the maximum is corruption.
fn parse_quota(record: &[u8; QUOTA_RECORD_BYTES]) -> optee_utee::Result<Quota> {
    let count = record_field(record, 2);
    if count > MAX_OPEN_RESERVATIONS as u64 {
        return Err(ErrorKind::CorruptObject.into());
    }
    let open = (0..count as usize)
        .map(|i| Open {
            reservation: Reservation {
                id: record_field(record, 3 + 3 * i),
                start: record_field(record, 4 + 3 * i),
                granted: record_field(record, 5 + 3 * i),
            },
            holder: (),
        })
        .collect();
    Ok(Quota {
        used: record_field(record, 0),
        next: record_field(record, 1),
        open,
    })
}

/// Writes `state` as the quota record.
fn write_quota(state: &Quota, record: &mut [u8; QUOTA_RECORD_BYTES]) {
    *record = [0u8; QUOTA_RECORD_BYTES];
    let mut fields = [state.used, state.next, state.open.len() as u64]
        .into_iter()
        .chain(state.open.iter().flat_map(|o| {
            let r = o.reservation;
            [r.id, r.start, r.granted]
        }));
    for chunk in record.chunks_exact_mut(8) {
        match fields.next() {
            Some(v) => chunk.copy_from_slice(&v.to_le_bytes()),
            None => break,
        }
    }
}

/// The RPMB object of `scope`'s counter: a tag and the scope's digest.
fn scope_object_id(scope: ModelScope<'_>, counter: Counter) -> [u8; 41] {
    let mut id = [0u8; 41];
    id[..9].copy_from_slice(match counter {
        Counter::Epoch => b"omg-epoch",
        Counter::Inferences => b"omg-quota",
    });
    id[9..].copy_from_slice(&scope.digest());
    id
}

/// The RPMB object holding the latest normal-world time the TA has seen.
const TIME_FLOOR_ID: &[u8] = b"omg-time-floor";

/// omg-enclave's `Platform` on OP-TEE, inside the TA.
///
/// - `rng`: `TEE_GenerateRandom`.
/// - `sealing_key(scope)`: the system PTA's key for this TA (HUK and TA UUID) with the
///   measurement followed by the scope's digest as label: the system PTA binds the key to the
///   TA's UUID only, the label binds it to this build too, as the trait asks.
/// - counters and reservations: persistent objects in RPMB secure storage, one per scope and
///   counter.
/// - `now`: the normal world's time (`TEE_GetREETime`), never below the latest one seen,
///   which is kept in RPMB: the normal world can stop the clock but not turn it back.
/// - `measurement`: the attestation PTA's SHA-256 of the TA's code and read-only data in
///   memory; `device_ueid`: `0x01 || SHA-256(modulus of the attestation PTA's RSA key)`
///   (omg_protocol::optee::device_ueid).
/// - `attest`: an OP-TEE token (omg_protocol::optee): the claims signed by a fresh ephemeral
///   P-256 key, which the attestation PTA's signature over the token's binding ties to this
///   TA's memory hash and the device's PTA key.
pub struct OpteePlatform {
    measurement: [u8; 32],
    ueid: [u8; 33],
    rng: TeeRng,
}

impl OpteePlatform {
    /// Asks the attestation PTA for this TA's memory hash and for its public key.
    pub fn new() -> optee_utee::Result<Self> {
        let mut nonce = [0u8; 32];
        random(&mut nonce);
        let mut evidence = [0u8; MAX_EVIDENCE_BYTES];
        if attest(&nonce, &mut evidence)? < 32 {
            return Err(ErrorKind::Generic.into());
        }
        let mut measurement = [0u8; 32];
        measurement.copy_from_slice(&evidence[..32]);
        let ueid = omg_protocol::optee::device_ueid(&attestation_modulus()?);
        Ok(Self {
            measurement,
            ueid,
            rng: TeeRng,
        })
    }
}

impl Platform for OpteePlatform {
    fn measurement(&self) -> [u8; 32] {
        self.measurement
    }

    fn device_ueid(&self) -> [u8; 33] {
        self.ueid
    }

    fn attest(&mut self, nonce: &[u8], hash: [u8; 32]) -> Result<Vec<u8>, PlatformError> {
        use omg_protocol::optee::{PendingToken, claims};
        let error = |e: omg_protocol::ProtocolError| PlatformError::new("attest", format!("{e}"));
        // A key for this token only: the PTA's signature below binds it to this TA and to the
        // claims; it is dropped (and zeroized by p256) when the token is made.
        let ephemeral = omg_protocol::generate_signing_key(&mut self.rng);
        let claims = claims(
            self.ueid,
            nonce,
            self.measurement,
            Some(env!("CARGO_PKG_VERSION")),
            hash,
        );
        let pending = PendingToken::new(&claims, &ephemeral).map_err(error)?;
        let mut output = [0u8; MAX_EVIDENCE_BYTES];
        let len = hash_ta_memory(&pending.pta_nonce(), &mut output)
            .map_err(|e| tee_error("attest", e))?;
        pending.finish(&output[..len]).map_err(error)
    }

    fn sealing_key(&mut self, scope: ModelScope<'_>) -> Result<SealingKey, PlatformError> {
        let mut label = [0u8; 64];
        label[..32].copy_from_slice(&self.measurement);
        label[32..].copy_from_slice(&scope.digest());
        let key = ta_unique_key(&label).map_err(|e| tee_error("sealing key", e))?;
        SealingKey::from_bytes(key, &scope.vendor, scope.model_id)
            .map_err(|e| PlatformError::new("sealing key", format!("{e}")))
    }

    fn rng(&mut self) -> &mut dyn CryptoRng {
        &mut self.rng
    }

    fn now(&mut self) -> Result<u64, PlatformError> {
        let mut time = Time::new();
        time.ree_time();
        let ree = u64::from(time.seconds);
        update_record::<8, u64>(TIME_FLOOR_ID, |record| {
            let floor = u64::from_le_bytes(*record);
            if ree > floor {
                *record = ree.to_le_bytes();
                Ok((ree, true))
            } else {
                Ok((floor, false))
            }
        })
        .map_err(|e| tee_error("time", e))
    }

    fn counter(&mut self, scope: ModelScope<'_>, counter: Counter) -> Result<u64, PlatformError> {
        let id = scope_object_id(scope, counter);
        match counter {
            Counter::Epoch => add_to_counter(&id, 0),
            Counter::Inferences => update_record::<QUOTA_RECORD_BYTES, u64>(&id, |record| {
                Ok((parse_quota(record)?.committed(), false))
            }),
        }
        .map_err(|e| tee_error("counter", e))
    }

    fn raise_epoch(&mut self, scope: ModelScope<'_>, value: u64) -> Result<u64, PlatformError> {
        update_record::<8, u64>(&scope_object_id(scope, Counter::Epoch), |record| {
            let epoch = u64::from_le_bytes(*record);
            if value > epoch {
                *record = value.to_le_bytes();
                Ok((value, true))
            } else {
                Ok((epoch, false))
            }
        })
        .map_err(|e| tee_error("counter", e))
    }

    fn reserve_inferences(
        &mut self,
        scope: ModelScope<'_>,
        wanted: u64,
        quota: u64,
    ) -> Result<Reservation, PlatformError> {
        let id = scope_object_id(scope, Counter::Inferences);
        update_record::<QUOTA_RECORD_BYTES, Reservation>(&id, |record| {
            let mut state = parse_quota(record)?;
            // The TA cannot tell a crashed session's reservation from a live one: when the
            // record is full, the oldest is counted as used whole.
            let reservation =
                state.reserve_retiring_oldest(wanted, quota, (), MAX_OPEN_RESERVATIONS);
            let changed = reservation.granted > 0;
            if changed {
                write_quota(&state, record);
            }
            Ok((reservation, changed))
        })
        .map_err(|e| tee_error("counter", e))
    }

    fn settle_inferences(
        &mut self,
        scope: ModelScope<'_>,
        reservation: Reservation,
        used: u64,
    ) -> Result<(), PlatformError> {
        let id = scope_object_id(scope, Counter::Inferences);
        update_record::<QUOTA_RECORD_BYTES, ()>(&id, |record| {
            let mut state = parse_quota(record)?;
            let changed = state.settle(reservation, used);
            if changed {
                write_quota(&state, record);
            }
            Ok(((), changed))
        })
        .map_err(|e| tee_error("counter", e))
    }
}
