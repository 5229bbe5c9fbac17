//! The OP-TEE backend on the vendor side: a device whose attestation key is OP-TEE's
//! attestation PTA key (simulated here by a software RSA key, `omg_testkit::optee`) is enrolled
//! by that key and activated with an OP-TEE token; and the attacks on that evidence, each
//! refused with its own reason. Tokens are made as docs/protocol.md and `omg_protocol::optee`
//! describe them: a stranger who speaks the protocol correctly still gets nothing.

#[macro_use]
mod common;

use common::*;
use omg_protocol::key_release::{HpkeKeyPair, KeyRelease};
use omg_protocol::licence::Licence;
use omg_protocol::optee::{self, OpteeToken};
use omg_protocol::public_key_sec1;
use omg_testkit::optee::{SimulatedPta, forge_token};
use omg_vendor::{ActivateError, ActivationRequest, Policy, Refusal};

/// The omg TA's memory hash, as the PTA reports it.
const TA_HASH: [u8; 32] = [0x5a; 32];
/// Another TA (a changed build).
const OTHER_TA_HASH: [u8; 32] = [0x5b; 32];

/// Linux measurements MEASUREMENT and 0xaa.., OP-TEE: TA_HASH.
fn optee_policy() -> Policy {
    Policy::from_toml(&format!(
        r#"
        allowed_measurements = ["{}"]
        max_devices = 5
        not_after = {}

        [backends.optee]
        measurements = ["{}"]
        "#,
        hex(&MEASUREMENT),
        NOW + 86_400,
        hex(&TA_HASH),
    ))
    .unwrap()
}

fn refusal<T>(r: Result<T, ActivateError>) -> Refusal {
    match r {
        Err(ActivateError::Refused(r)) => r,
        Err(e) => panic!("internal error instead of a refusal: {e}"),
        Ok(_) => panic!("activation succeeded, a refusal was expected"),
    }
}

/// An OP-TEE device: the PTA and the TA's enclave HPKE key.
struct OpteeDevice {
    pta: SimulatedPta,
    enclave: HpkeKeyPair,
}

impl OpteeDevice {
    fn new(seed: u64, rng: &mut TestRng) -> Self {
        OpteeDevice {
            pta: SimulatedPta::new(seed, TA_HASH),
            enclave: HpkeKeyPair::generate(rng),
        }
    }

    fn token(&self, nonce: &[u8], rng: &mut TestRng) -> Vec<u8> {
        self.pta.token(nonce, self.enclave.public_key_hash(), rng)
    }

    fn request_with(&self, token: Vec<u8>) -> ActivationRequest {
        ActivationRequest {
            token,
            device_public_key: self.pta.device_key_der(),
            model_id: MODEL.into(),
            version: 1,
            enclave_public_key: self.enclave.public_key.to_bytes().to_vec(),
            endorsement: None,
        }
    }
}

fn enrolled(f: &mut Fixture, seed: u64) -> OpteeDevice {
    let device = OpteeDevice::new(seed, &mut f.rng);
    let ueid = f
        .service
        .enroll_device(&device.pta.device_key_der(), NOW - 50)
        .unwrap();
    assert_eq!(ueid, device.pta.ueid());
    device
}

on_both_backends!(
    an_enrolled_optee_device_gets_the_key,
    an_unenrolled_optee_device_is_refused
);

fn an_enrolled_optee_device_gets_the_key(backend: Backend) {
    let mut f = fixture_on(backend, "optee-ok", 40, &optee_policy());
    let device = enrolled(&mut f, 1);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = device.request_with(device.token(&c.nonce, &mut f.rng));
    let activation = f.service.activate(&request, NOW + 1, &mut f.rng).unwrap();
    let released = KeyRelease::open(
        &activation.key_release,
        &device.enclave.private_key,
        &request.token,
    )
    .unwrap();
    assert_eq!(released.content_key, f.content_key);
    let licence = Licence::verify(&activation.licence, f.vendor.verifying_key()).unwrap();
    assert_eq!(licence.device_ueid, device.pta.ueid());
    let devices = f.service.list_devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].ueid, hex(&device.pta.ueid()));
    assert_eq!(
        devices[0].public_key.as_deref(),
        Some(hex(&device.pta.device_key_der()).as_str())
    );
    // The same token again: its nonce is used.
    assert_eq!(
        refusal(f.service.activate(&request, NOW + 2, &mut f.rng)),
        Refusal::ReusedNonce
    );
}

#[test]
fn evidence_by_another_rsa_key_is_refused() {
    let mut f = fixture("optee-otherkey", 41, &optee_policy());
    let device = enrolled(&mut f, 1);
    let attacker = SimulatedPta::new(2, TA_HASH);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    // Claims naming the enrolled device, evidence signed by the attacker's RSA key.
    let claims = device
        .pta
        .claims(&c.nonce, device.enclave.public_key_hash());
    let token = attacker.token_for(&claims, &mut f.rng);
    assert_eq!(
        refusal(
            f.service
                .activate(&device.request_with(token), NOW, &mut f.rng)
        ),
        Refusal::BadSignature
    );
    // The attacker's own claims (its own UEID) sent with the enrolled device's key.
    let token = attacker.token(&c.nonce, device.enclave.public_key_hash(), &mut f.rng);
    assert_eq!(
        refusal(
            f.service
                .activate(&device.request_with(token), NOW, &mut f.rng)
        ),
        Refusal::InstanceIdMismatch
    );
    assert!(f.service.list_activations().unwrap().is_empty());
}

#[test]
fn evidence_replayed_under_another_nonce_is_refused() {
    let mut f = fixture("optee-replay", 42, &optee_policy());
    let device = enrolled(&mut f, 1);
    // A genuine token for an earlier challenge, seen on the way.
    let first = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let genuine = device.token(&first.nonce, &mut f.rng);
    let evidence = OpteeToken::open(&genuine).unwrap().evidence;
    // A fresh challenge; the attacker re-signs the claims with it under its own key.
    let second = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let attacker = omg_protocol::generate_signing_key(&mut f.rng);
    let claims = device
        .pta
        .claims(&second.nonce, device.enclave.public_key_hash());
    let mut own = evidence.clone();
    own.ephemeral_public_key = public_key_sec1(attacker.verifying_key());
    for token in [
        forge_token(&claims, &attacker, &own),
        forge_token(&claims, &attacker, &evidence),
    ] {
        let r = refusal(
            f.service
                .activate(&device.request_with(token), NOW, &mut f.rng),
        );
        assert_eq!(r, Refusal::BadSignature);
    }
    // The genuine token still works once, for its own nonce.
    f.service
        .activate(&device.request_with(genuine), NOW, &mut f.rng)
        .unwrap();
}

#[test]
fn a_swapped_ephemeral_or_enclave_key_is_refused() {
    let mut f = fixture("optee-swap", 43, &optee_policy());
    let device = enrolled(&mut f, 1);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    // The device made a token for this very challenge; the attacker intercepts it and wants
    // the key released to its own HPKE key.
    let genuine = device.token(&c.nonce, &mut f.rng);
    let evidence = OpteeToken::open(&genuine).unwrap().evidence;
    let attacker_enclave = HpkeKeyPair::generate(&mut f.rng);
    let attacker = omg_protocol::generate_signing_key(&mut f.rng);
    let claims = device
        .pta
        .claims(&c.nonce, attacker_enclave.public_key_hash());
    let mut own = evidence.clone();
    own.ephemeral_public_key = public_key_sec1(attacker.verifying_key());
    for token in [
        forge_token(&claims, &attacker, &own),
        forge_token(&claims, &attacker, &evidence),
    ] {
        let mut request = device.request_with(token);
        request.enclave_public_key = attacker_enclave.public_key.to_bytes().to_vec();
        let r = refusal(f.service.activate(&request, NOW, &mut f.rng));
        assert_eq!(r, Refusal::BadSignature);
    }
    // The genuine token with the attacker's HPKE key in the request.
    let mut request = device.request_with(genuine);
    request.enclave_public_key = attacker_enclave.public_key.to_bytes().to_vec();
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::EnclaveKeyMismatch
    );
    assert!(f.service.list_activations().unwrap().is_empty());
}

#[test]
fn measurements_count_only_for_their_own_backend() {
    let mut f = fixture("optee-measure", 44, &optee_policy());
    let device = enrolled(&mut f, 1);
    // A changed TA: the PTA signs its (other) memory hash.
    let changed = OpteeDevice {
        pta: device.pta.for_ta(OTHER_TA_HASH),
        enclave: HpkeKeyPair::generate(&mut f.rng),
    };
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let token = changed.token(&c.nonce, &mut f.rng);
    assert_eq!(
        refusal(
            f.service
                .activate(&changed.request_with(token), NOW, &mut f.rng)
        ),
        Refusal::WrongMeasurement
    );
    // A TA whose memory hash is a measurement the policy allows for the Linux backend only.
    let linux_named = OpteeDevice {
        pta: device.pta.for_ta(MEASUREMENT),
        enclave: HpkeKeyPair::generate(&mut f.rng),
    };
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let token = linux_named.token(&c.nonce, &mut f.rng);
    assert_eq!(
        refusal(
            f.service
                .activate(&linux_named.request_with(token), NOW, &mut f.rng)
        ),
        Refusal::WrongMeasurement
    );
    // The normal world has the PTA sign its TA's signed-header digest (or the core's hash)
    // over a nonce of its choice, here the binding of its own token: valid evidence, but of a
    // value the policy does not list.
    let shdr_digest = [0x77; 32];
    let attacker = omg_protocol::generate_signing_key(&mut f.rng);
    let attacker_enclave = HpkeKeyPair::generate(&mut f.rng);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let claims = optee::claims(
        device.pta.ueid(),
        &c.nonce,
        shdr_digest,
        None,
        attacker_enclave.public_key_hash(),
    );
    let pending = optee::PendingToken::new(&claims, &attacker).unwrap();
    let output = device
        .pta
        .sign_hash(&pending.pta_nonce(), &shdr_digest, &mut f.rng);
    let token = pending.finish(&output).unwrap();
    assert!(OpteeToken::verify(&token, &device.pta.device_key()).is_ok());
    let mut request = device.request_with(token);
    request.enclave_public_key = attacker_enclave.public_key.to_bytes().to_vec();
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::WrongMeasurement
    );
    // A Linux-backend device presenting the OP-TEE TA's hash as its measurement.
    let linux = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let request = linux.request_with(linux.token_with(&c.nonce, TA_HASH), 1);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::WrongMeasurement
    );
    // ...while the same device with its own measurement is served, and so is the TA.
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    f.service
        .activate(&linux.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let token = device.token(&c.nonce, &mut f.rng);
    f.service
        .activate(&device.request_with(token), NOW, &mut f.rng)
        .unwrap();
}

#[test]
fn a_policy_without_optee_measurements_refuses_optee_devices() {
    let mut f = fixture("optee-none", 45, &policy(5));
    let device = enrolled(&mut f, 1);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let token = device.token(&c.nonce, &mut f.rng);
    assert_eq!(
        refusal(
            f.service
                .activate(&device.request_with(token), NOW, &mut f.rng)
        ),
        Refusal::WrongMeasurement
    );
}

/// A device that speaks the protocol correctly (its own OP-TEE, its own PTA key, a valid
/// token for a fresh challenge and the right TA) but was never enrolled gets nothing, and
/// the request consumes no nonce.
fn an_unenrolled_optee_device_is_refused(backend: Backend) {
    let mut f = fixture_on(backend, "optee-stranger", 46, &optee_policy());
    let stranger = OpteeDevice::new(3, &mut f.rng);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let token = stranger.token(&c.nonce, &mut f.rng);
    assert!(OpteeToken::verify(&token, &stranger.pta.device_key()).is_ok());
    let request = stranger.request_with(token);
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::UnknownDevice
    );
    assert!(f.service.list_devices().unwrap().is_empty());
    // Enrolled now, the same request goes through: its nonce was not consumed.
    f.service
        .enroll_device(&stranger.pta.device_key_der(), NOW)
        .unwrap();
    f.service.activate(&request, NOW, &mut f.rng).unwrap();
    // A Linux-backend key enrolled under the same UEID is impossible: the UEIDs differ.
    let linux = f.enrolled_device();
    assert_ne!(linux.ueid(), stranger.pta.ueid());
}

#[test]
fn truncated_or_garbage_evidence_is_refused_without_panic() {
    let mut f = fixture("optee-garbage", 47, &optee_policy());
    let device = enrolled(&mut f, 1);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let token = device.token(&c.nonce, &mut f.rng);
    for len in (0..token.len()).step_by(7) {
        let r = refusal(f.service.activate(
            &device.request_with(token[..len].to_vec()),
            NOW,
            &mut f.rng,
        ));
        assert!(
            matches!(r, Refusal::MalformedToken | Refusal::BadSignature),
            "truncation to {len}: {r:?}"
        );
    }
    for i in (0..token.len()).step_by(5) {
        let mut t = token.clone();
        t[i] ^= 0x41;
        let r = refusal(f.service.activate(&device.request_with(t), NOW, &mut f.rng));
        assert!(r.is_unauthenticated(), "byte {i}: {r:?}");
    }
    // Garbage and truncated device keys.
    let der = device.pta.device_key_der();
    for key in [
        vec![0x30],
        der[..der.len() / 2].to_vec(),
        vec![0x30; 300],
        vec![0x04; 65],
        Vec::new(),
    ] {
        let mut request = device.request_with(token.clone());
        request.device_public_key = key;
        assert_eq!(
            refusal(f.service.activate(&request, NOW, &mut f.rng)),
            Refusal::MalformedRequest("device_public_key")
        );
    }
    assert!(f.service.enroll_device(&der[1..], NOW).is_err());
    // A Linux-backend token sent with the OP-TEE key, and the reverse.
    let linux = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    let mut request = linux.request(&c.nonce, 1);
    request.device_public_key = der.clone();
    assert_eq!(
        refusal(f.service.activate(&request, NOW, &mut f.rng)),
        Refusal::MalformedToken
    );
    let mut request = device.request_with(device.token(&c.nonce, &mut f.rng));
    request.device_public_key = public_key_sec1(linux.key.verifying_key()).to_vec();
    let r = refusal(f.service.activate(&request, NOW, &mut f.rng));
    assert!(r.is_unauthenticated(), "{r:?}");
    // The genuine token is still good after all that.
    f.service
        .activate(&device.request_with(token), NOW, &mut f.rng)
        .unwrap();
}

#[test]
fn optee_policies_parse_and_old_ones_stay_valid() {
    let ok = optee_policy();
    assert_eq!(
        ok.measurements_for(omg_vendor::Backend::Optee),
        vec![TA_HASH]
    );
    assert_eq!(
        ok.measurements_for(omg_vendor::Backend::Linux),
        vec![MEASUREMENT]
    );
    // A Linux-only policy as before.
    let old = policy(5);
    assert!(old.measurements_for(omg_vendor::Backend::Optee).is_empty());
    // OP-TEE only.
    let only = Policy::from_toml(&format!(
        "max_devices = 1\nnot_after = 1\n[backends.optee]\nmeasurements = [\"{}\"]\n",
        hex(&TA_HASH)
    ))
    .unwrap();
    assert!(only.measurements().is_empty());
    for bad in [
        "max_devices = 1\nnot_after = 1\n".to_string(),
        "max_devices = 1\nnot_after = 1\n[backends.optee]\nmeasurements = []\n".to_string(),
        "max_devices = 1\nnot_after = 1\n[backends.optee]\nmeasurements = [\"zz\"]\n".to_string(),
        format!(
            "max_devices = 1\nnot_after = 1\n[backends.sgx]\nmeasurements = [\"{}\"]\n",
            hex(&TA_HASH)
        ),
        format!(
            "max_devices = 1\nnot_after = 1\n[backends.optee]\nmeasurement = [\"{}\"]\n",
            hex(&TA_HASH)
        ),
    ] {
        assert!(Policy::from_toml(&bad).is_err(), "{bad}");
    }
}
