//! A check of [`OpteePlatform`] through omg-enclave's `Platform` trait, run in the TA for the
//! normal-world scenario: sealing with omg's own sealed-blob code, the epoch counter, the
//! inference quota, the clock, the measurement, and the attestation token of `attest`.
#![forbid(unsafe_code)]

use alloc::vec;

use omg_enclave::Platform;
use omg_enclave::platform::{Counter, ModelScope, Reservation};
use omg_protocol::ContentKey;
use omg_protocol::sealed::SealedContent;
use optee_utee::trace_println;

use crate::commands::Failure;
use crate::platform::OpteePlatform;

/// The scope the check uses (a vendor key id no real vendor key hashes to is not needed: the
/// counters of this scope belong to the check alone).
fn scope(model_id: &str) -> ModelScope<'_> {
    ModelScope {
        vendor: [0x5a; omg_protocol::KEY_ID_LEN],
        model_id,
    }
}

/// Fails the check named `what` unless `ok`.
fn expect(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        trace_println!("omg TA: platform check failed: {}", what);
        Err(Failure::Generic)
    }
}

/// Turns a platform error into a failure of the check, with its reason on the TA's log.
fn platform<T>(r: Result<T, omg_enclave::PlatformError>) -> Result<T, Failure> {
    r.map_err(|e| {
        trace_println!("omg TA: platform check: {}", e);
        Failure::Generic
    })
}

/// The inferences the quota check grants in all: the check's quota is the scope's committed
/// count when it starts plus this.
const QUOTA_STEP: u64 = 5;

/// Phase 0 exercises every service and returns (epoch, inferences counted) of the check's
/// scope; phase 1, run in another session (another TA instance), only reads them back, so the
/// normal world can compare.
pub fn run(phase: u32) -> Result<(u64, u64), Failure> {
    if phase > 1 {
        return Err(Failure::BadParameters);
    }
    let mut p = OpteePlatform::new().map_err(|e| {
        trace_println!("omg TA: platform: {:?}", e.kind());
        Failure::Generic
    })?;
    let a = scope("omg platform check a");
    if phase == 1 {
        let epoch = platform(p.counter(a, Counter::Epoch))?;
        let inferences = platform(p.counter(a, Counter::Inferences))?;
        return Ok((epoch, inferences));
    }
    let b = scope("omg platform check b");

    expect(p.measurement() != [0u8; 32], "measurement")?;
    expect(p.device_ueid()[0] == 0x01, "ueid")?;
    // Attestation: a token that opens (encoding, ephemeral signature, profile, the one
    // measurement equal to the PTA's hash) and names this device, this TA and the key hash; a
    // fresh ephemeral key each time; a nonce of a length the claims do not allow refused.
    let token = platform(p.attest(&[0x42; 32], [0x07; 32]))?;
    let opened = omg_protocol::optee::OpteeToken::open(&token).map_err(|e| {
        trace_println!("omg TA: platform check: token: {}", e);
        Failure::Generic
    })?;
    expect(
        opened.claims.instance_id == p.device_ueid()
            && opened.evidence.ta_hash == p.measurement()
            && opened.claims.enclave_key_hash == [0x07; 32]
            && opened.claims.nonce == [0x42; 32],
        "attest: the token's claims",
    )?;
    let second = platform(p.attest(&[0x42; 32], [0x07; 32]))?;
    expect(
        omg_protocol::optee::OpteeToken::open(&second)
            .is_ok_and(|o| o.evidence.ephemeral_public_key != opened.evidence.ephemeral_public_key),
        "attest: a fresh ephemeral key",
    )?;
    expect(
        matches!(p.attest(b"nonce", [0u8; 32]), Err(e) if e.service == "attest"),
        "attest: a 5-byte nonce refused",
    )?;

    // Sealing: a blob sealed under scope a's key opens under it again, in the same content,
    // and not under scope b's key.
    let content = SealedContent {
        content_key: ContentKey::generate(p.rng()),
        licence: vec![0x4c; 40],
    };
    let key_a = platform(p.sealing_key(a))?;
    let blob = key_a
        .seal(&content, p.rng())
        .map_err(|_| Failure::Generic)?;
    let again = platform(p.sealing_key(a))?.unseal(&blob);
    expect(again.as_ref() == Ok(&content), "unseal with the same scope")?;
    expect(
        platform(p.sealing_key(b))?.unseal(&blob).is_err(),
        "unseal with another scope refused",
    )?;

    // Clock: the normal world's time, never going back.
    let t0 = platform(p.now())?;
    let t1 = platform(p.now())?;
    expect(t0 > 1_600_000_000 && t1 >= t0, "clock")?;

    // Epoch: raised by two, never lowered.
    let epoch = platform(p.counter(a, Counter::Epoch))?;
    let raised = epoch.checked_add(2).ok_or(Failure::Generic)?;
    expect(
        platform(p.raise_epoch(a, raised))? == raised,
        "epoch raised",
    )?;
    expect(
        platform(p.raise_epoch(a, epoch))? == raised,
        "epoch never lowered",
    )?;
    expect(
        platform(p.counter(a, Counter::Epoch))? == raised,
        "epoch read",
    )?;

    // Quota: QUOTA_STEP inferences left; reservations of 3 and 5 get 3 and 2, a third gets
    // none; settling 1 and 2 of them gives back 2; a last reservation gets those 2.
    let base = platform(p.counter(a, Counter::Inferences))?;
    let quota = base + QUOTA_STEP;
    let r1 = platform(p.reserve_inferences(a, 3, quota))?;
    let r2 = platform(p.reserve_inferences(a, 5, quota))?;
    let r3 = platform(p.reserve_inferences(a, 1, quota))?;
    expect(
        r1.start == base && r1.granted == 3 && r2.start == base + 3 && r2.granted == 2,
        "reservations granted up to the quota",
    )?;
    expect(
        r3.granted == 0,
        "a reservation beyond the quota gets nothing",
    )?;
    platform(p.settle_inferences(a, r1, 1))?;
    platform(p.settle_inferences(a, r2, 9))?;
    // Settling again changes nothing (the reservation is no longer open).
    platform(p.settle_inferences(a, r1, 0))?;
    expect(
        platform(p.counter(a, Counter::Inferences))? == base + 3,
        "settled: 1 of 3 and 2 of 2 used",
    )?;
    let r4: Reservation = platform(p.reserve_inferences(a, 5, quota))?;
    expect(
        r4.start == base + 3 && r4.granted == 2,
        "returned inferences granted again",
    )?;
    platform(p.settle_inferences(a, r4, 0))?;
    let inferences = platform(p.counter(a, Counter::Inferences))?;
    expect(inferences == base + 3, "nothing used in the last one")?;
    expect(
        platform(p.counter(b, Counter::Inferences))? == 0
            && platform(p.counter(b, Counter::Epoch))? == 0,
        "another scope's counters untouched",
    )?;
    Ok((raised, inferences))
}
