//! Service logic: a successful activation, each refusal with its own reason, the device limit
//! under concurrency, migrations and the append-only audit table; each on SQLite and on
//! PostgreSQL (the latter when `OMG_TEST_POSTGRES_URL` is set, see `common`).

#[macro_use]
mod common;

use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::*;
use omg_protocol::endorsement::Endorsement;
use omg_protocol::key_release::{HpkeKeyPair, KeyRelease};
use omg_protocol::licence::{InputSource, Lease, Licence, OutputPolicy, Refusal as LicenceRefusal};
use omg_protocol::{SigningKey, key_id, public_key_sec1};
use omg_vendor::{ActivateError, Policy, Refusal, Service, Store};

fn refusal<T>(r: Result<T, ActivateError>) -> Refusal {
    match r {
        Err(ActivateError::Refused(r)) => r,
        Err(e) => panic!("internal error instead of a refusal: {e}"),
        Ok(_) => panic!("activation succeeded, a refusal was expected"),
    }
}

/// How many devices were activated at least once (enrolled devices refused are listed too).
fn activated_devices(f: &Fixture) -> usize {
    f.service
        .list_devices()
        .unwrap()
        .iter()
        .filter(|d| d.first_seen.is_some())
        .count()
}

fn audit_reasons(f: &Fixture) -> Vec<Option<String>> {
    f.service
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|a| a.reason)
        .collect()
}

fn successful_activation_releases_key_and_licence(backend: Backend) {
    let mut f = fixture_on(backend, "ok", 1, &policy(5));
    let device = f.enrolled_device();
    let challenge = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    assert_eq!(challenge.expires_at, NOW + 60);
    let request = device.request(&challenge.nonce, 1);
    let activation = f.service.activate(&request, NOW + 5, &mut f.rng).unwrap();

    // The key release opens with the enclave's private key (bound to the token).
    let released = KeyRelease::open(
        &activation.key_release,
        &device.enclave.private_key,
        &request.token,
    )
    .unwrap();
    assert_eq!(released.content_key, f.content_key);
    released.check_model(MODEL, 1).unwrap();
    // ...and only with that token.
    assert!(
        KeyRelease::open(
            &activation.key_release,
            &device.enclave.private_key,
            b"other"
        )
        .is_err()
    );
    let other = HpkeKeyPair::generate(&mut f.rng);
    assert!(KeyRelease::open(&activation.key_release, &other.private_key, &request.token).is_err());

    // The licence verifies with the vendor key and names the device and the policy terms.
    assert_eq!(f.service.vendor_public_key(), *f.vendor.verifying_key());
    let licence = Licence::verify(&activation.licence, f.vendor.verifying_key()).unwrap();
    assert_eq!(licence.device_ueid, device.ueid());
    assert_eq!(licence.model_id, MODEL);
    assert_eq!(licence.model_version, 1);
    assert_eq!(licence.not_after, NOW + 86_400);
    assert_eq!(licence.epoch, 0);
    assert_eq!(licence.quota, Some(1000));
    assert_eq!(licence.output_policy, OutputPolicy::LabelAndScore);
    assert!(licence.input_sources.contains(InputSource::Mic));
    assert!(!licence.input_sources.contains(InputSource::Stdin));
    licence
        .check(NOW, &device.ueid(), MODEL, 1, 0, InputSource::File)
        .unwrap();
    // Bound to this activation (the key release's AAD); no lease without `lease_seconds`.
    assert_eq!(licence.activation, omg_protocol::sha256(&request.token));
    assert_eq!(licence.lease, None);

    // Recorded: device, activation, audit row.
    let devices = f.service.list_devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].ueid, hex(&device.ueid()));
    assert_eq!(devices[0].first_seen, Some(NOW + 5));
    assert!(!devices[0].revoked);
    let activations = f.service.list_activations().unwrap();
    assert_eq!(activations.len(), 1);
    assert_eq!(activations[0].licence, activation.licence);
    assert_eq!(activations[0].ueid, hex(&device.ueid()));
    let audit = f.service.audit_log().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, "activated");
    assert_eq!(audit[0].reason, None);
}

fn nonce_refusals(backend: Backend) {
    let mut f = fixture_on(backend, "nonce", 2, &policy(5));
    let device = f.enrolled_device();

    // Reused.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = device.request(&c.nonce, 1);
    f.service.activate(&request, NOW, &mut f.rng).unwrap();
    let r = refusal(f.service.activate(&request, NOW, &mut f.rng));
    assert_eq!(r, Refusal::ReusedNonce);

    // Expired (valid while now <= expires_at).
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = device.request(&c.nonce, 1);
    let r = refusal(f.service.activate(&request, NOW + 61, &mut f.rng));
    assert_eq!(r, Refusal::ExpiredNonce);
    // The failed attempt consumed it.
    let r = refusal(f.service.activate(&request, NOW, &mut f.rng));
    assert_eq!(r, Refusal::ReusedNonce);

    // Never issued.
    let request = device.request(&[0x5a; 32], 1);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::UnknownNonce
    );

    assert_eq!(
        audit_reasons(&f),
        vec![
            None,
            Some("reused_nonce".into()),
            Some("expired_nonce".into()),
            Some("reused_nonce".into()),
            Some("unknown_nonce".into()),
        ]
    );
}

fn attestation_refusals(backend: Backend) {
    let mut f = fixture_on(backend, "attest", 3, &policy(5));
    let device = f.enrolled_device();
    let other = f.enrolled_device();

    // Wrong measurement.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = device.request_with(device.token_with(&c.nonce, OTHER_MEASUREMENT), 1);
    let r = refusal(f.service.activate(&request, NOW, &mut f.rng));
    assert_eq!(r, Refusal::WrongMeasurement);
    assert_eq!(
        r.to_string(),
        "the enclave measurement is not allowed by the policy"
    );

    // Token signed by another device key than the one presented.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = device.request_with(other.token_with(&c.nonce, MEASUREMENT), 1);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::BadSignature
    );
    // Tampered signature.
    let mut request = device.request(&c.nonce, 1);
    let last = request.token.len() - 1;
    request.token[last] ^= 1;
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::BadSignature
    );
    // Garbage token.
    let request = device.request_with(vec![0xd2, 0x84], 1);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::MalformedToken
    );
    // Enclave key other than the one the token names.
    let mut request = device.request(&c.nonce, 1);
    request.enclave_public_key = other.enclave.public_key.to_bytes().to_vec();
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::EnclaveKeyMismatch
    );
    // Malformed device key.
    let mut request = device.request(&c.nonce, 1);
    request.device_public_key.truncate(33);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::MalformedRequest("device_public_key")
    );
    // Unknown model / version.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = device.request(&c.nonce, 9);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::UnknownModel
    );
    assert_eq!(f.service.audit_log().unwrap().len(), 7);
    assert!(f.service.list_activations().unwrap().is_empty());
}

fn revoked_device_is_refused(backend: Backend) {
    let mut f = fixture_on(backend, "revdev", 4, &policy(5));
    let device = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    f.service
        .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap();
    f.service.revoke_device(&device.ueid(), NOW + 1).unwrap();
    let c = f.service.issue_nonce(NOW + 2, &mut f.rng).unwrap();
    let r = refusal(
        f.service
            .activate(&device.request(&c.nonce, 1), NOW + 2, &mut f.rng),
    );
    assert_eq!(r, Refusal::DeviceRevoked);
    assert!(f.service.list_devices().unwrap()[0].revoked);

    // A device revoked before it was ever seen.
    let fresh = Device::new(&mut f.rng);
    f.service.revoke_device(&fresh.ueid(), NOW).unwrap();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let r = refusal(
        f.service
            .activate(&fresh.request(&c.nonce, 1), NOW, &mut f.rng),
    );
    assert_eq!(r, Refusal::DeviceRevoked);
    assert!(f.service.revoke_device(&[0x01; 5], NOW).is_err());
}

fn expired_licence_is_refused(backend: Backend) {
    let mut p = policy(5);
    p.not_after = NOW - 1;
    let mut f = fixture_on(backend, "expired", 5, &p);
    let device = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let r = refusal(
        f.service
            .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng),
    );
    assert_eq!(r, Refusal::LicenceExpired);
    assert_eq!(audit_reasons(&f), vec![Some("licence_expired".into())]);
}

fn revoked_model_version_is_refused_and_epoch_rises(backend: Backend) {
    let mut f = fixture_on(backend, "revmodel", 6, &policy(5));
    let device = f.enrolled_device();
    assert_eq!(f.service.revoke_model_version(MODEL, 1, NOW).unwrap(), 1);
    // Idempotent.
    assert_eq!(f.service.revoke_model_version(MODEL, 1, NOW).unwrap(), 1);
    assert!(f.service.revoke_model_version(MODEL, 7, NOW).is_err());
    assert!(f.service.revoke_model_version("nope", 1, NOW).is_err());

    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let r = refusal(
        f.service
            .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng),
    );
    assert_eq!(r, Refusal::ModelVersionRevoked);

    // Version 2 still activates, with the new epoch in its licence.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let a = f
        .service
        .activate(&device.request(&c.nonce, 2), NOW, &mut f.rng)
        .unwrap();
    let licence = Licence::verify(&a.licence, f.vendor.verifying_key()).unwrap();
    assert_eq!((licence.model_version, licence.epoch), (2, 1));
}

/// With `lease_seconds`, the licence is a lease from its activation time plus the grace, never
/// past `not_after`; a renewal is a new activation (new token, new lease) that does not count
/// the device twice; a revoked device or model version gets no renewal.
fn leases_and_renewal(backend: Backend) {
    let mut p = policy(1);
    p.lease_seconds = Some(600);
    p.offline_grace_seconds = 60;
    p.validate().unwrap();
    let mut f = fixture_on(backend, "lease", 9, &p);
    let device = f.enrolled_device();
    let activate = |f: &mut Fixture, version, now| {
        let c = f.service.issue_nonce(now, &mut f.rng).unwrap();
        let request = device.request(&c.nonce, version);
        let a = f.service.activate(&request, now, &mut f.rng);
        a.map(|a| {
            let licence = Licence::verify(&a.licence, f.vendor.verifying_key()).unwrap();
            assert_eq!(licence.activation, omg_protocol::sha256(&request.token));
            licence
        })
    };
    let first = activate(&mut f, 1, NOW).unwrap();
    let lease = Lease {
        renew_after: NOW + 600,
        lease_until: NOW + 660,
    };
    assert_eq!(first.lease, Some(lease));
    let refused = first.check(NOW + 661, &device.ueid(), MODEL, 1, 0, InputSource::File);
    assert_eq!(
        refused,
        Err(LicenceRefusal::LeaseExpired {
            lease_until: NOW + 660,
            now: NOW + 661
        })
    );
    // Renewed after the lease (max_devices = 1: the same device again is no second device).
    let renewed = activate(&mut f, 1, NOW + 700).unwrap();
    assert_eq!(renewed.lease.unwrap().lease_until, NOW + 1360);
    assert_ne!(renewed.activation, first.activation);
    // Near not_after the lease ends with the licence.
    let late = activate(&mut f, 1, NOW + 86_000).unwrap();
    assert_eq!(
        late.lease,
        Some(Lease {
            renew_after: NOW + 86_600,
            lease_until: NOW + 86_400
        })
    );
    // Revocations stop renewals.
    f.service.revoke_model_version(MODEL, 2, NOW + 800).unwrap();
    assert_eq!(
        refusal(activate(&mut f, 2, NOW + 801)),
        Refusal::ModelVersionRevoked
    );
    f.service.revoke_device(&device.ueid(), NOW + 900).unwrap();
    assert_eq!(
        refusal(activate(&mut f, 1, NOW + 901)),
        Refusal::DeviceRevoked
    );
}

fn device_limit_counts_distinct_devices(backend: Backend) {
    let mut f = fixture_on(backend, "limit", 7, &policy(2));
    let devices: Vec<Device> = (0..3).map(|_| f.enrolled_device()).collect();
    for (i, d) in devices.iter().enumerate() {
        let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
        let r = f.service.activate(&d.request(&c.nonce, 1), NOW, &mut f.rng);
        if i < 2 {
            r.unwrap();
        } else {
            assert_eq!(refusal(r), Refusal::DeviceLimitReached);
        }
    }
    // Re-activation of an activated device (any version) does not count twice.
    for version in [1, 2] {
        let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
        f.service
            .activate(&devices[0].request(&c.nonce, version), NOW, &mut f.rng)
            .unwrap();
    }
    assert_eq!(f.service.list_activations().unwrap().len(), 4);
    assert_eq!(activated_devices(&f), 2);
}

/// N activations of N distinct devices at once against a limit of K: exactly K succeed, the
/// others are refused for the limit, every attempt has its audit row and no sequence number
/// collides. The threads share two services, each with its own store (its own connections),
/// as two service processes on one database would.
fn parallel_activations_respect_the_device_limit(backend: Backend) {
    const N: usize = 32;
    const K: u32 = 5;
    let mut f = fixture_on(backend, "parallel", 8, &policy(K));
    let second = Service::new(Store::connect(f.db.spec()).unwrap(), f.vendor.clone());
    let jobs: Vec<_> = (0..N)
        .map(|_| {
            let d = f.enrolled_device();
            let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
            d.request(&c.nonce, 1)
        })
        .collect();
    let barrier = Arc::new(Barrier::new(N));
    let start = Instant::now();
    let handles: Vec<_> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let service: Service = if i % 2 == 0 {
                f.service.clone()
            } else {
                second.clone()
            };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut rng = TestRng::new(1000 + i as u64);
                barrier.wait();
                service.activate(&request, NOW, &mut rng)
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for h in handles {
        match h.join().unwrap() {
            Ok(_) => ok += 1,
            Err(ActivateError::Refused(Refusal::DeviceLimitReached)) => limited += 1,
            Err(e) => panic!("unexpected outcome: {e}"),
        }
    }
    eprintln!(
        "{backend:?}: {N} parallel activations, limit {K}: {ok} activated, {limited} refused \
         (device_limit_reached) in {} ms",
        start.elapsed().as_millis()
    );
    assert_eq!((ok, limited), (K as usize, N - K as usize));
    let audit = f.service.audit_log().unwrap();
    assert_eq!(audit.len(), N);
    assert_eq!(
        audit.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (1..=N as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        audit.iter().filter(|a| a.outcome == "activated").count(),
        K as usize
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.reason.as_deref() == Some("device_limit_reached"))
            .count(),
        N - K as usize
    );
    let activations = second.list_activations().unwrap();
    assert_eq!(
        activations.iter().map(|a| a.id).collect::<Vec<_>>(),
        (1..=u64::from(K)).collect::<Vec<_>>()
    );
    assert_eq!(activated_devices(&f), K as usize);
}

fn store_reopens_and_audit_is_append_only(backend: Backend) {
    let mut f = fixture_on(backend, "reopen", 9, &policy(5));
    let device = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    f.service
        .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap();
    assert_eq!(
        f.service.store().path().is_some(),
        backend == Backend::Sqlite
    );

    // Reopen: migrations are not re-applied, data is there.
    let store = Store::connect(f.db.spec()).unwrap();
    assert_eq!(store.schema_version().unwrap(), 5);
    assert_eq!(f.db.raw_count("SELECT COUNT(*) FROM schema_migrations"), 5);
    assert_eq!(store.list_activations().unwrap().len(), 1);
    assert_eq!(store.model(MODEL).unwrap().unwrap().policy, policy(5));
    assert!(store.model("other").unwrap().is_none());
    // A content key never changes.
    assert!(
        store
            .add_model_version(
                MODEL,
                1,
                &omg_protocol::ContentKey::from_bytes([0; 32]),
                NOW
            )
            .is_err()
    );

    if let Db::Sqlite(dir) = &f.db {
        let conn = rusqlite::Connection::open(dir.db()).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    // The operators' actions are append-only too.
    store.revoke_device(&[1; 33], NOW).unwrap();
    let mut refused = vec![
        "UPDATE audit SET reason = 'x'",
        "DELETE FROM audit",
        "UPDATE admin_audit SET action = 'revoke_device'",
        "DELETE FROM admin_audit",
    ];
    if backend == Backend::Postgres {
        refused.push("TRUNCATE audit");
        refused.push("TRUNCATE admin_audit");
    }
    for sql in refused {
        let err = f.db.raw_execute(sql).unwrap_err();
        assert!(err.contains("audit is append-only"), "{sql}: {err}");
    }
    assert_eq!(f.db.raw_count("SELECT COUNT(*) FROM admin_audit"), 1);
    assert_eq!(store.audit_log().unwrap().len(), 1);
    // Other tables are not append-only.
    f.db.raw_execute("DELETE FROM nonces").unwrap();
    assert_eq!(store.purge_nonces(NOW).unwrap(), 0);
}

/// Several stores opened at once on a fresh database: the migrations run once, none fails.
fn concurrent_opens_migrate_once(backend: Backend) {
    let db = Db::new(backend, "opens");
    let spec = db.spec();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (spec, barrier) = (spec.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                Store::connect(&spec).map(|s| s.schema_version())
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap().unwrap(), 5);
    }
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM schema_migrations"), 5);
}

/// A database written by a newer program is refused with a clear error.
fn newer_schema_is_refused(backend: Backend) {
    let db = Db::new(backend, "newer");
    drop(Store::connect(db.spec()).unwrap());
    db.raw_execute(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'future', 0)",
    )
    .unwrap();
    let err = Store::connect(db.spec()).unwrap_err().to_string();
    assert!(err.contains("newer than this program"), "{err}");
}

/// A device with a valid token over an issued nonce, the allowed measurement and its own
/// key, but never enrolled, is refused as `unknown_device`, with nothing recorded about it but
/// the audit row; once enrolled, the same device is activated. A device revoked and then
/// enrolled stays refused.
fn unknown_devices_are_refused_until_enrolled(backend: Backend) {
    let mut f = fixture_on(backend, "unknown_device", 12, &policy(5));
    let stranger = Device::new(&mut f.rng);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let r = refusal(
        f.service
            .activate(&stranger.request(&c.nonce, 1), NOW, &mut f.rng),
    );
    assert_eq!(r, Refusal::UnknownDevice);
    assert_eq!(r.code(), "unknown_device");
    assert!(f.service.list_devices().unwrap().is_empty());
    assert!(f.service.list_activations().unwrap().is_empty());
    assert_eq!(audit_reasons(&f), [Some("unknown_device".to_owned())]);

    // Enrolled (twice: the second changes nothing), the same device gets its key.
    let key = omg_protocol::public_key_sec1(stranger.key.verifying_key());
    assert_eq!(
        f.service.enroll_device(&key, NOW + 1).unwrap(),
        stranger.ueid()
    );
    f.service.enroll_device(&key, NOW + 3).unwrap();
    let c = f.service.issue_nonce(NOW + 2, &mut f.rng).unwrap();
    let request = stranger.request(&c.nonce, 1);
    let activation = f.service.activate(&request, NOW + 4, &mut f.rng).unwrap();
    KeyRelease::open(
        &activation.key_release,
        &stranger.enclave.private_key,
        &request.token,
    )
    .unwrap();
    let devices = f.service.list_devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].enrolled_at, Some(NOW + 1));
    assert_eq!(devices[0].first_seen, Some(NOW + 4));
    assert_eq!(devices[0].public_key.as_deref(), Some(hex(&key).as_str()));
    assert!(f.service.enroll_device(&key[..64], NOW).is_err());

    // Revoked before its enrolment: enrolment does not lift the revocation.
    let revoked = Device::new(&mut f.rng);
    f.service.revoke_device(&revoked.ueid(), NOW).unwrap();
    f.service
        .enroll_device(
            &omg_protocol::public_key_sec1(revoked.key.verifying_key()),
            NOW,
        )
        .unwrap();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let r = refusal(
        f.service
            .activate(&revoked.request(&c.nonce, 1), NOW, &mut f.rng),
    );
    assert_eq!(r, Refusal::DeviceRevoked);
}

/// An endorsement signed by `maker` for `device`'s key, valid until `not_after`.
fn endorsement(maker: &SigningKey, device: &Device, not_after: Option<u64>) -> Vec<u8> {
    Endorsement {
        device_public_key: public_key_sec1(device.key.verifying_key()),
        maker_key_id: key_id(maker.verifying_key()),
        issued_at: NOW - 1000,
        not_after,
    }
    .sign(maker)
    .unwrap()
}

/// A device the vendor never enrolled is activated with an endorsement of its key by a maker
/// the service trusts, and recorded with that maker; an endorsement by an untrusted maker, for
/// another device key, expired or malformed is refused with its own reason, and nothing about
/// such a device is recorded.
fn endorsed_devices_need_a_trusted_maker(backend: Backend) {
    let mut f = fixture_on(backend, "endorsed", 13, &policy(5));
    let maker = omg_protocol::generate_signing_key(&mut f.rng);
    let stranger = omg_protocol::generate_signing_key(&mut f.rng);
    let device = Device::new(&mut f.rng);
    let other = Device::new(&mut f.rng);
    let attempt = |f: &mut Fixture, endorsement: Option<Vec<u8>>| {
        let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
        let mut request = device.request(&c.nonce, 1);
        request.endorsement = endorsement;
        f.service.activate(&request, NOW, &mut f.rng)
    };

    // The maker is not trusted yet.
    let good = endorsement(&maker, &device, Some(NOW + 10));
    assert_eq!(
        refusal(attempt(&mut f, Some(good.clone()))),
        Refusal::UntrustedMaker
    );
    let kid = f
        .service
        .trust_maker(&public_key_sec1(maker.verifying_key()), NOW)
        .unwrap();
    assert_eq!(kid, key_id(maker.verifying_key()));
    for (sent, expected) in [
        (None, Refusal::UnknownDevice),
        (
            Some(endorsement(&stranger, &device, None)),
            Refusal::UntrustedMaker,
        ),
        (
            Some(endorsement(&maker, &other, None)),
            Refusal::EndorsementMismatch,
        ),
        (
            Some(endorsement(&maker, &device, Some(NOW - 1))),
            Refusal::EndorsementExpired,
        ),
        (
            Some(good[..good.len() - 1].to_vec()),
            Refusal::MalformedEndorsement,
        ),
    ] {
        assert_eq!(refusal(attempt(&mut f, sent)), expected);
    }
    // A signature by the trusted maker's key id that does not verify.
    let mut forged = good.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        refusal(attempt(&mut f, Some(forged))),
        Refusal::UntrustedMaker
    );
    assert!(f.service.list_devices().unwrap().is_empty());

    attempt(&mut f, Some(good)).unwrap();
    let devices = f.service.list_devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].ueid, hex(&device.ueid()));
    assert_eq!(devices[0].endorsed_by.as_deref(), Some(hex(&kid).as_str()));
    assert_eq!(devices[0].enrolled_at, None);
    assert_eq!(devices[0].first_seen, Some(NOW));
    // A revoked endorsed device stays refused, endorsement or not.
    f.service.revoke_device(&device.ueid(), NOW).unwrap();
    let again = endorsement(&maker, &device, None);
    assert_eq!(
        refusal(attempt(&mut f, Some(again))),
        Refusal::DeviceRevoked
    );
}

/// Rows in the tables a request from anyone could grow.
fn flood_rows(f: &Fixture) -> (i64, i64) {
    (
        f.db.raw_count("SELECT COUNT(*) FROM nonces"),
        f.db.raw_count("SELECT COUNT(*) FROM audit"),
    )
}

/// Challenges write nothing: 10,000 of them add no row. Their nonces are still single use,
/// and another service instance with the same vendor key (a fleet on one database) accepts
/// them; a nonce under another vendor key is unknown.
fn challenges_write_nothing(backend: Backend) {
    let mut f = fixture_on(backend, "challenges", 12, &policy(5));
    let before = flood_rows(&f);
    let challenges: Vec<_> = (0..10_000)
        .map(|_| f.service.issue_nonce(NOW, &mut f.rng).unwrap())
        .collect();
    assert_eq!(flood_rows(&f), before);
    assert_eq!(before, (0, 0));

    let device = f.enrolled_device();
    let twin = Service::new(Store::connect(f.db.spec()).unwrap(), f.vendor.clone());
    let request = device.request(&challenges[1234].nonce, 1);
    twin.activate(&request, NOW, &mut f.rng).unwrap();
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::ReusedNonce
    );
    // One row for the consumed nonce; none for the 9,999 others.
    assert_eq!(f.db.raw_count("SELECT COUNT(*) FROM nonces"), 1);

    let stranger = Service::new(
        Store::connect(f.db.spec()).unwrap(),
        omg_protocol::generate_signing_key(&mut f.rng),
    );
    let c = stranger.issue_nonce(NOW, &mut f.rng).unwrap();
    assert_eq!(
        refusal(
            f.service
                .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        ),
        Refusal::UnknownNonce
    );
    // Consumed nonces are purged once expired longer than the retention (default 3600 s).
    let late = NOW + 60 + 3601;
    let c = f.service.issue_nonce(late, &mut f.rng).unwrap();
    f.service
        .activate(&device.request(&c.nonce, 1), late, &mut f.rng)
        .unwrap();
    assert_eq!(f.db.raw_count("SELECT COUNT(*) FROM nonces"), 1);
}

/// Refusals anyone can cause add at most MAX_UNSIGNED_AUDIT_PER_MINUTE audit rows a minute:
/// 10,000 malformed activations in one minute add 30 rows (and 30 more the next minute); 200
/// strangers with self-made keys, valid tokens and fresh nonces add 30 rows and consume no
/// nonce; refusals of an enrolled device still get one row each.
fn unsigned_refusals_have_capped_audit_rows(backend: Backend) {
    let mut f = fixture_on(backend, "flood", 13, &policy(5));
    let device = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let garbage = device.request_with(vec![0xd2, 0x84], 1);
    let mut bad_signature = device.request(&c.nonce, 1);
    let last = bad_signature.token.len() - 1;
    bad_signature.token[last] ^= 1;
    let mut bad_key = device.request(&c.nonce, 1);
    bad_key.device_public_key.truncate(10);
    let cap = omg_vendor::MAX_UNSIGNED_AUDIT_PER_MINUTE;
    let flood = |requests: &[&omg_vendor::ActivationRequest], at: u64, n: usize| {
        let f = &f;
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    let mut rng = TestRng::new(100 + t as u64);
                    for i in (t..n).step_by(4) {
                        let r = requests[i % requests.len()];
                        assert!(f.service.activate(r, at, &mut rng).is_err());
                    }
                });
            }
        });
    };
    flood(&[&garbage, &bad_signature, &bad_key], NOW, 10_000);
    assert_eq!(flood_rows(&f), (0, cap));
    flood(&[&garbage], NOW + 60, 100);
    assert_eq!(flood_rows(&f).1, 2 * cap);

    // Strangers: a valid token over a fresh nonce, signed by a key nobody enrolled or
    // endorsed. Refused before the nonce check, so nothing is consumed.
    for _ in 0..200 {
        let stranger = Device::new(&mut f.rng);
        let c = f.service.issue_nonce(NOW + 120, &mut f.rng).unwrap();
        assert_eq!(
            refusal(
                f.service
                    .activate(&stranger.request(&c.nonce, 1), NOW + 120, &mut f.rng)
            ),
            Refusal::UnknownDevice
        );
    }
    assert_eq!(flood_rows(&f), (0, 3 * cap));

    // An enrolled device's refusals: one row each, even past the cap.
    for _ in 0..40 {
        let r = device.request(&[0x5a; 32], 1);
        assert_eq!(
            refusal(f.service.activate(&r, NOW + 120, &mut f.rng)),
            Refusal::UnknownNonce
        );
    }
    let reasons = audit_reasons(&f);
    assert_eq!(reasons.len() as i64, 3 * cap + 40);
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.as_deref() == Some("unknown_nonce"))
            .count(),
        40
    );
    assert!(reasons[..cap as usize].iter().all(|r| matches!(
        r.as_deref(),
        Some("malformed_token" | "bad_signature" | "malformed_request")
    )));
}

on_both_backends!(
    endorsed_devices_need_a_trusted_maker,
    unknown_devices_are_refused_until_enrolled,
    challenges_write_nothing,
    unsigned_refusals_have_capped_audit_rows,
    successful_activation_releases_key_and_licence,
    nonce_refusals,
    attestation_refusals,
    revoked_device_is_refused,
    expired_licence_is_refused,
    leases_and_renewal,
    revoked_model_version_is_refused_and_epoch_rises,
    device_limit_counts_distinct_devices,
    parallel_activations_respect_the_device_limit,
    store_reopens_and_audit_is_append_only,
    concurrent_opens_migrate_once,
    newer_schema_is_refused,
);

#[test]
fn connect_spec_selects_the_backend_and_errors_never_show_the_password() {
    // A file path is SQLite.
    let dir = TempDir::new("spec");
    let store = Store::connect(dir.db()).unwrap();
    assert_eq!(store.path(), Some(dir.db().as_path()));
    assert_eq!(store.location(), dir.db().display().to_string());

    // A PostgreSQL URL: nothing listens on port 1, so the connection is refused, and the
    // message names the database without the password.
    let err = Store::connect("postgres://omg:hunter2-secret@127.0.0.1:1/vendor")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "cannot connect to the PostgreSQL database postgresql://omg@127.0.0.1:1/vendor: "
        ),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = Store::connect("POSTGRESQL://127.0.0.1:1/vendor?password=hunter2-secret")
        .unwrap_err()
        .to_string();
    assert!(err.contains("postgresql://127.0.0.1:1/vendor"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    // An invalid URL is not echoed.
    for bad in [
        "postgres://omg:hunter2-secret@127.0.0.1:notaport/vendor",
        "postgresql://omg:hunter2-secret@127.0.0.1/vendor?sslmode=hunter2",
    ] {
        let err = Store::connect(bad).unwrap_err().to_string();
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    // Another scheme is refused rather than taken for a file name.
    let err = Store::connect("mysql://localhost/vendor")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported database URL scheme `mysql`"),
        "{err}"
    );
}

#[test]
fn policy_toml() {
    let p = policy(3);
    assert_eq!(p.max_devices, 3);
    assert_eq!(p.measurements()[1], MEASUREMENT);
    let minimal = Policy::from_toml(&format!(
        "allowed_measurements = [\"{}\"]\nmax_devices = 1\nnot_after = 5\n",
        hex(&MEASUREMENT)
    ))
    .unwrap();
    assert_eq!(minimal.input_sources.len(), 3);
    assert_eq!(minimal.inference_quota, None);
    assert!(!minimal.allow_insecure_lifecycle);
    for bad in [
        "allowed_measurements = [\"abcd\"]\nmax_devices = 1\nnot_after = 5\n",
        "allowed_measurements = []\nmax_devices = 1\nnot_after = 5\n",
        "max_devices = 1\nnot_after = 5\n",
    ] {
        assert!(Policy::from_toml(bad).is_err(), "{bad}");
    }
    let unknown = format!(
        "allowed_measurements = [\"{}\"]\nmax_devices = 1\nnot_after = 5\nmax_device = 9\n",
        hex(&MEASUREMENT)
    );
    assert!(Policy::from_toml(&unknown).is_err());

    // Leases: 1 s to ten years, a grace only with a lease; each refusal names its field.
    let with = |extra: &str| {
        Policy::from_toml(&format!(
            "allowed_measurements = [\"{}\"]\nmax_devices = 1\nnot_after = 5\n{extra}",
            hex(&MEASUREMENT)
        ))
    };
    assert_eq!(minimal.lease_seconds, None);
    assert_eq!(minimal.lease(100), None);
    let leased = with("lease_seconds = 1\n").unwrap();
    assert_eq!(
        (leased.lease_seconds, leased.offline_grace_seconds),
        (Some(1), 0)
    );
    with("lease_seconds = 315360000\noffline_grace_seconds = 315360000\n").unwrap();
    for (bad, field) in [
        ("lease_seconds = 0\n", "lease_seconds"),
        ("lease_seconds = 315360001\n", "lease_seconds"),
        (
            "lease_seconds = 1\noffline_grace_seconds = 315360001\n",
            "offline_grace_seconds",
        ),
        ("offline_grace_seconds = 60\n", "offline_grace_seconds"),
        ("lease_seconds = -1\n", "lease_seconds"),
    ] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains(field), "{bad}: {err}");
    }
}
