//! Round trips, tampering, truncation, wrong keys and refusals for every format.

mod common;

use common::*;
use omg_protocol::challenge::Challenge;
use omg_protocol::endorsement::{self, Endorsement};
use omg_protocol::key_release::{HpkeKeyPair, HpkePublicKey, KeyRelease};
use omg_protocol::licence::{InputSource, InputSources, Lease, Licence, OutputPolicy, Refusal};
use omg_protocol::package::{Package, PackageHeader};
use omg_protocol::sealed::{self, SealedContent};
use omg_protocol::token::{Claims, ReferenceValue, SecurityLifecycle, Token};
use omg_protocol::{ContentKey, Format, ProtocolError, key_id, public_key_sec1, ueid};

// ---------------------------------------------------------------- package

fn sample_package(rng: &mut TestRng) -> (Vec<u8>, omg_protocol::SigningKey, ContentKey, Vec<u8>) {
    let vendor = key(rng);
    let ck = ContentKey::generate(rng);
    let bundle: Vec<u8> = (0..100u8).collect();
    let header = PackageHeader::new("micro_speech", 3, 1_700_000_000, vendor.verifying_key());
    let pkg = Package::seal(&header, &bundle, &ck, &vendor, rng).unwrap();
    (pkg, vendor, ck, bundle)
}

#[test]
fn package_round_trip() {
    let mut rng = TestRng::new(1);
    let (pkg, vendor, ck, bundle) = sample_package(&mut rng);
    let v = Package::open_signed(&pkg, vendor.verifying_key()).unwrap();
    assert_eq!(v.header().model_id, "micro_speech");
    assert_eq!(v.header().version, 3);
    assert_eq!(v.header().created, 1_700_000_000);
    assert_eq!(v.plaintext_len(), bundle.len());
    assert_eq!(v.decrypt(&ck).unwrap().as_slice(), bundle.as_slice());

    let mut out = vec![0u8; 200];
    let n = v.decrypt_in_place(&ck, &mut out).unwrap();
    assert_eq!(&out[..n], bundle.as_slice());
    let mut small = vec![0u8; 10];
    assert!(matches!(
        v.decrypt_in_place(&ck, &mut small),
        Err(ProtocolError::BufferTooSmall { .. })
    ));
}

#[test]
fn package_wrong_keys() {
    let mut rng = TestRng::new(2);
    let (pkg, _vendor, ck, _) = sample_package(&mut rng);
    let other = key(&mut rng);
    assert_eq!(
        Package::open_signed(&pkg, other.verifying_key()).unwrap_err(),
        ProtocolError::WrongKey {
            format: Format::Package
        }
    );
    let (pkg2, vendor2, _, _) = sample_package(&mut rng);
    let v = Package::open_signed(&pkg2, vendor2.verifying_key()).unwrap();
    let mut out = vec![0xaau8; v.plaintext_len()];
    assert_eq!(
        v.decrypt_in_place(&ck, &mut out).unwrap_err(),
        ProtocolError::DecryptionFailed {
            format: Format::Package
        }
    );
    assert!(
        out.iter().all(|&b| b == 0),
        "failed decryption must zeroize"
    );
}

#[test]
fn package_every_byte_change_and_truncation_rejected() {
    let mut rng = TestRng::new(3);
    let (pkg, vendor, ck, _) = sample_package(&mut rng);
    let n = assert_tamper_rejected(&pkg, |b| {
        Package::open_signed(b, vendor.verifying_key()).and_then(|v| v.decrypt(&ck))
    });
    assert!(n > 3 * pkg.len());
}

#[test]
fn package_seal_rejects_bad_header() {
    let mut rng = TestRng::new(4);
    let vendor = key(&mut rng);
    let other = key(&mut rng);
    let ck = ContentKey::generate(&mut rng);
    let header = PackageHeader::new("m", 1, 0, other.verifying_key());
    assert!(Package::seal(&header, b"x", &ck, &vendor, &mut rng).is_err());
    let header = PackageHeader::new("", 1, 0, vendor.verifying_key());
    assert!(Package::seal(&header, b"x", &ck, &vendor, &mut rng).is_err());
}

// ---------------------------------------------------------------- token

fn sample_token(rng: &mut TestRng) -> (Vec<u8>, omg_protocol::SigningKey, HpkeKeyPair) {
    let device = key(rng);
    let kp = HpkeKeyPair::generate(rng);
    let claims = claims(&device, kp.public_key_hash());
    (Token::sign(&claims, &device).unwrap(), device, kp)
}

fn reference() -> Vec<ReferenceValue> {
    vec![ReferenceValue {
        measurement_type: Some("enclave".into()),
        measurement_value: MEASUREMENT.to_vec(),
        signer_id: SIGNER_ID.to_vec(),
    }]
}

#[test]
fn token_round_trip_and_policy() {
    let mut rng = TestRng::new(10);
    let (token, device, kp) = sample_token(&mut rng);
    assert!(token.len() < 1024);
    assert_eq!(token[0], 0xd2, "tagged COSE_Sign1");
    let claims = Token::verify(&token, device.verifying_key()).unwrap();
    assert_eq!(claims, common::claims(&device, kp.public_key_hash()));
    assert_eq!(claims.instance_id, ueid(device.verifying_key()));
    assert!(claims.security_lifecycle.is_secured());
    claims.verify_against(&reference(), &NONCE).unwrap();
    claims.check_enclave_key(&kp.public_key.to_bytes()).unwrap();
    // The lenient verifier accepts our own tokens too.
    assert_eq!(
        Token::verify_foreign(&token, device.verifying_key()).unwrap(),
        claims
    );

    // Policy failures.
    assert!(claims.verify_against(&reference(), &[0x45; 32]).is_err());
    let mut wrong = reference();
    wrong[0].measurement_value[0] ^= 1;
    assert!(claims.verify_against(&wrong, &NONCE).is_err());
    let mut extra = reference();
    extra.push(ReferenceValue {
        measurement_type: None,
        measurement_value: vec![9; 32],
        signer_id: SIGNER_ID.to_vec(),
    });
    assert!(claims.verify_against(&extra, &NONCE).is_err());
    assert!(claims.verify_against(&[], &NONCE).is_err());
    let other = HpkeKeyPair::generate(&mut rng);
    assert!(
        claims
            .check_enclave_key(&other.public_key.to_bytes())
            .is_err()
    );
}

#[test]
fn token_wrong_key_and_bad_claims() {
    let mut rng = TestRng::new(11);
    let (token, _device, _) = sample_token(&mut rng);
    let other = key(&mut rng);
    assert!(Token::verify(&token, other.verifying_key()).is_err());
    assert!(Token::verify_foreign(&token, other.verifying_key()).is_err());

    // Claims whose instance id is not the signer's UEID are refused at signing.
    let device = key(&mut rng);
    let mut c = claims(&device, [0; 32]);
    c.instance_id = ueid(other.verifying_key());
    assert!(Token::sign(&c, &device).is_err());
    let mut c = claims(&device, [0; 32]);
    c.nonce = vec![1; 31];
    assert!(Token::sign(&c, &device).is_err());
    let mut c = claims(&device, [0; 32]);
    c.security_lifecycle = SecurityLifecycle(0x7000);
    assert!(Token::sign(&c, &device).is_err());
    let mut c = claims(&device, [0; 32]);
    c.software_components.clear();
    assert!(Token::sign(&c, &device).is_err());
}

#[test]
fn token_every_byte_change_and_truncation_rejected() {
    let mut rng = TestRng::new(12);
    let (token, device, _) = sample_token(&mut rng);
    assert_tamper_rejected(&token, |b| Token::verify(b, device.verifying_key()));
    assert_tamper_rejected(&token, |b| Token::verify_foreign(b, device.verifying_key()));
}

#[test]
fn token_claims_parser_rejects_garbage() {
    let mut rng = TestRng::new(13);
    let device = key(&mut rng);
    let c = claims(&device, [7; 32]);
    let bytes = c.to_cbor().unwrap();
    assert_eq!(Claims::from_cbor(&bytes, true).unwrap(), c);
    for len in 0..bytes.len() {
        assert!(Claims::from_cbor(&bytes[..len], true).is_err());
        assert!(Claims::from_cbor(&bytes[..len], false).is_err());
    }
    // Deeply nested input is an error, not a stack overflow.
    let deep = vec![0x81u8; 4000];
    assert!(Claims::from_cbor(&deep, false).is_err());
    // Oversized input.
    assert!(matches!(
        Claims::from_cbor(&vec![0u8; 5000], false),
        Err(ProtocolError::TooLarge { .. })
    ));
    // Display names format and field.
    let err = Token::verify(&[0xd2, 0x84], device.verifying_key()).unwrap_err();
    assert!(err.to_string().starts_with("attestation token: "), "{err}");
}

// ---------------------------------------------------------------- challenge

#[test]
fn challenge_round_trip() {
    let mut rng = TestRng::new(20);
    let c = Challenge::generate(&mut rng, 1000, 300);
    let bytes = c.to_bytes().unwrap();
    assert_eq!(Challenge::from_bytes(&bytes).unwrap(), c);
    c.check_response(&c.nonce, 1300).unwrap();
    assert!(matches!(
        c.check_response(&c.nonce, 1301),
        Err(ProtocolError::Expired { .. })
    ));
    assert!(c.check_response(&[0; 32], 1000).is_err());
    for len in 0..bytes.len() {
        assert!(Challenge::from_bytes(&bytes[..len]).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Challenge::from_bytes(&longer).is_err());
}

// ---------------------------------------------------------------- key release

#[test]
fn key_release_round_trip() {
    let mut rng = TestRng::new(30);
    let (token, _, kp) = sample_token(&mut rng);
    let ck = ContentKey::generate(&mut rng);
    let pk = HpkePublicKey::from_bytes(&kp.public_key.to_bytes()).unwrap();
    let kr = KeyRelease::seal(&pk, &token, &ck, "micro_speech", 3, &mut rng).unwrap();
    assert!(kr.len() < 256);
    let released = KeyRelease::open(&kr, &kp.private_key, &token).unwrap();
    assert_eq!(released.content_key, ck);
    assert_eq!(released.model_id, "micro_speech");
    assert_eq!(released.version, 3);
    released.check_model("micro_speech", 3).unwrap();
    assert!(released.check_model("micro_speech", 4).is_err());
    assert!(released.check_model("other", 3).is_err());
}

#[test]
fn key_release_wrong_key_or_token_rejected() {
    let mut rng = TestRng::new(31);
    let (token, _, kp) = sample_token(&mut rng);
    let ck = ContentKey::generate(&mut rng);
    let kr = KeyRelease::seal(&kp.public_key, &token, &ck, "m", 1, &mut rng).unwrap();
    let other = HpkeKeyPair::generate(&mut rng);
    assert_eq!(
        KeyRelease::open(&kr, &other.private_key, &token).unwrap_err(),
        ProtocolError::DecryptionFailed {
            format: Format::KeyRelease
        }
    );
    let mut other_token = token.clone();
    other_token[10] ^= 1;
    assert!(KeyRelease::open(&kr, &kp.private_key, &other_token).is_err());
    // A restored private key works.
    let restored =
        omg_protocol::key_release::HpkePrivateKey::from_bytes(&*kp.private_key.to_bytes()).unwrap();
    assert!(KeyRelease::open(&kr, &restored, &token).is_ok());
}

#[test]
fn key_release_every_byte_change_and_truncation_rejected() {
    let mut rng = TestRng::new(32);
    let (token, _, kp) = sample_token(&mut rng);
    let ck = ContentKey::generate(&mut rng);
    let kr = KeyRelease::seal(&kp.public_key, &token, &ck, "micro_speech", 3, &mut rng).unwrap();
    assert_tamper_rejected(&kr, |b| KeyRelease::open(b, &kp.private_key, &token));
}

// ---------------------------------------------------------------- licence

fn sample_licence(device_ueid: [u8; 33]) -> Licence {
    Licence {
        device_ueid,
        model_id: "micro_speech".into(),
        model_version: 3,
        not_after: 2_000_000_000,
        epoch: 5,
        quota: Some(1000),
        output_policy: OutputPolicy::LabelAndScore,
        input_sources: InputSources::of(&[InputSource::Mic, InputSource::File]),
        activation: [0xac; 32],
        lease: None,
    }
}

#[test]
fn licence_round_trip_and_refusals() {
    let mut rng = TestRng::new(40);
    let vendor = key(&mut rng);
    let device = key(&mut rng);
    let id = ueid(device.verifying_key());
    let lic = sample_licence(id);
    let bytes = lic.sign(&vendor).unwrap();
    let got = Licence::verify(&bytes, vendor.verifying_key()).unwrap();
    assert_eq!(got, lic);
    let mut no_quota = lic.clone();
    no_quota.quota = None;
    let b2 = no_quota.sign(&vendor).unwrap();
    assert_eq!(
        Licence::verify(&b2, vendor.verifying_key()).unwrap(),
        no_quota
    );
    assert!(no_quota.check_quota(u64::MAX).is_ok());

    let now = 1_900_000_000;
    let ok = |l: &Licence| l.check(now, &id, "micro_speech", 3, 5, InputSource::Mic);
    ok(&got).unwrap();
    assert_eq!(
        got.check(2_000_000_001, &id, "micro_speech", 3, 5, InputSource::Mic),
        Err(Refusal::Expired {
            not_after: 2_000_000_000,
            now: 2_000_000_001
        })
    );
    got.check(2_000_000_000, &id, "micro_speech", 3, 5, InputSource::Mic)
        .unwrap();
    let other_id = ueid(vendor.verifying_key());
    assert_eq!(
        got.check(now, &other_id, "micro_speech", 3, 5, InputSource::Mic),
        Err(Refusal::WrongDevice)
    );
    assert_eq!(
        got.check(now, &id, "other", 3, 5, InputSource::Mic),
        Err(Refusal::WrongModel)
    );
    assert_eq!(
        got.check(now, &id, "micro_speech", 4, 5, InputSource::Mic),
        Err(Refusal::WrongVersion {
            licensed: 3,
            requested: 4
        })
    );
    assert_eq!(
        got.check(now, &id, "micro_speech", 3, 6, InputSource::Mic),
        Err(Refusal::Revoked {
            licence_epoch: 5,
            current_epoch: 6
        })
    );
    got.check(now, &id, "micro_speech", 3, 4, InputSource::File)
        .unwrap();
    assert_eq!(
        got.check(now, &id, "micro_speech", 3, 5, InputSource::Stdin),
        Err(Refusal::SourceNotAllowed(InputSource::Stdin))
    );
    assert!(got.check_quota(999).is_ok());
    assert_eq!(
        got.check_quota(1000),
        Err(Refusal::QuotaExhausted {
            quota: 1000,
            used: 1000
        })
    );
    assert_eq!(
        Refusal::SourceNotAllowed(InputSource::Stdin).to_string(),
        "input source stdin is not allowed"
    );
}

/// A leased licence round-trips, is usable up to its lease's last second and refused after it
/// (before the source check), and names `omg renew` when refused.
#[test]
fn licence_lease_round_trip_and_refusal() {
    let mut rng = TestRng::new(42);
    let vendor = key(&mut rng);
    let device = key(&mut rng);
    let id = ueid(device.verifying_key());
    let mut lic = sample_licence(id);
    lic.lease = Some(Lease {
        renew_after: 1_900_000_000,
        lease_until: 1_900_000_100,
    });
    let got = Licence::verify(&lic.sign(&vendor).unwrap(), vendor.verifying_key()).unwrap();
    assert_eq!(got, lic);
    let check = |now, source| got.check(now, &id, "micro_speech", 3, 5, source);
    check(1_900_000_100, InputSource::Mic).unwrap();
    let refusal = Refusal::LeaseExpired {
        lease_until: 1_900_000_100,
        now: 1_900_000_101,
    };
    assert_eq!(check(1_900_000_101, InputSource::Mic), Err(refusal.clone()));
    assert_eq!(
        check(1_900_000_101, InputSource::Stdin),
        Err(refusal.clone())
    );
    assert!(refusal.to_string().contains("omg renew"), "{refusal}");
    // The not-after still bounds a lease that runs past it.
    assert!(matches!(
        check(2_000_000_001, InputSource::Mic),
        Err(Refusal::Expired { .. })
    ));
    // The activation is signed: another one is another licence.
    let mut other = lic.clone();
    other.activation[0] ^= 1;
    assert_ne!(
        Licence::verify(&other.sign(&vendor).unwrap(), vendor.verifying_key()).unwrap(),
        got
    );
}

#[test]
fn licence_wrong_key_and_tamper() {
    let mut rng = TestRng::new(41);
    let vendor = key(&mut rng);
    let device = key(&mut rng);
    let bytes = sample_licence(ueid(device.verifying_key()))
        .sign(&vendor)
        .unwrap();
    assert_eq!(
        Licence::verify(&bytes, device.verifying_key()).unwrap_err(),
        ProtocolError::WrongKey {
            format: Format::Licence
        }
    );
    assert_tamper_rejected(&bytes, |b| Licence::verify(b, vendor.verifying_key()));
}

#[test]
fn licence_and_package_are_not_interchangeable() {
    let mut rng = TestRng::new(42);
    let (pkg, vendor, _, _) = sample_package(&mut rng);
    assert!(Licence::verify(&pkg, vendor.verifying_key()).is_err());
    let lic = sample_licence([1; 33]).sign(&vendor).unwrap();
    assert!(Package::open_signed(&lic, vendor.verifying_key()).is_err());
}

// ---------------------------------------------------------------- endorsement

fn sample_endorsement(
    maker: &omg_protocol::SigningKey,
    device: &omg_protocol::SigningKey,
) -> Endorsement {
    Endorsement {
        device_public_key: public_key_sec1(device.verifying_key()),
        maker_key_id: key_id(maker.verifying_key()),
        issued_at: 1_700_000_000,
        not_after: Some(1_900_000_000),
    }
}

#[test]
fn endorsement_round_trip_and_refusals() {
    let mut rng = TestRng::new(45);
    let (maker, device, other) = (key(&mut rng), key(&mut rng), key(&mut rng));
    let terms = sample_endorsement(&maker, &device);
    let bytes = terms.sign(&maker).unwrap();
    assert_eq!(
        Endorsement::maker_key_id(&bytes).unwrap(),
        key_id(maker.verifying_key())
    );
    let got = Endorsement::verify(&bytes, maker.verifying_key()).unwrap();
    assert_eq!(got, terms);
    let device_key = public_key_sec1(device.verifying_key());
    assert_eq!(got.check(&device_key, 1_900_000_000), Ok(()));
    assert_eq!(
        got.check(&device_key, 1_900_000_001),
        Err(endorsement::Refusal::Expired)
    );
    assert_eq!(
        got.check(&public_key_sec1(other.verifying_key()), 1_800_000_000),
        Err(endorsement::Refusal::WrongDevice)
    );
    // No end date: valid for ever.
    let open = Endorsement {
        not_after: None,
        ..terms.clone()
    };
    let got = Endorsement::verify(&open.sign(&maker).unwrap(), maker.verifying_key()).unwrap();
    assert_eq!(got.check(&device_key, u64::MAX), Ok(()));
    // Another maker's key: refused before the signature is checked; a maker key id that is
    // not the signer's cannot be signed.
    assert_eq!(
        Endorsement::verify(&bytes, other.verifying_key()).unwrap_err(),
        ProtocolError::WrongKey {
            format: Format::Endorsement
        }
    );
    assert!(terms.sign(&other).is_err());
}

#[test]
fn endorsement_every_byte_change_and_truncation_rejected() {
    let mut rng = TestRng::new(46);
    let (maker, device) = (key(&mut rng), key(&mut rng));
    let bytes = sample_endorsement(&maker, &device).sign(&maker).unwrap();
    assert_tamper_rejected(&bytes, |b| Endorsement::verify(b, maker.verifying_key()));
    // Nor is an endorsement a licence or a package signed by the same key, or the reverse.
    assert!(Licence::verify(&bytes, maker.verifying_key()).is_err());
    let lic = sample_licence([1; 33]).sign(&maker).unwrap();
    assert!(Endorsement::verify(&lic, maker.verifying_key()).is_err());
}

// ---------------------------------------------------------------- sealed blob

const HUK: [u8; 32] = [0x55; 32];
const VENDOR_ID: [u8; 16] = [0x33; 16];

#[test]
fn sealed_round_trip_and_binding() {
    let mut rng = TestRng::new(50);
    let ck = ContentKey::generate(&mut rng);
    let content = SealedContent {
        content_key: ck.clone(),
        licence: vec![0xd2, 0x84, 1, 2, 3],
    };
    let blob = sealed::seal(
        &HUK,
        &MEASUREMENT,
        &VENDOR_ID,
        "micro_speech",
        &content,
        &mut rng,
    )
    .unwrap();
    let back = sealed::unseal(&blob, &HUK, &MEASUREMENT, &VENDOR_ID, "micro_speech").unwrap();
    assert_eq!(back, content);

    let decrypt_failed = Err(ProtocolError::DecryptionFailed {
        format: Format::SealedBlob,
    });
    assert_eq!(
        sealed::unseal(&blob, &[0x56; 32], &MEASUREMENT, &VENDOR_ID, "micro_speech"),
        decrypt_failed
    );
    assert_eq!(
        sealed::unseal(&blob, &HUK, &[0x12; 32], &VENDOR_ID, "micro_speech"),
        decrypt_failed
    );
    assert_eq!(
        sealed::unseal(&blob, &HUK, &MEASUREMENT, &VENDOR_ID, "micro_speecH"),
        decrypt_failed
    );
    // Another vendor's model of the same id has another key.
    assert_eq!(
        sealed::unseal(&blob, &HUK, &MEASUREMENT, &[0x34; 16], "micro_speech"),
        decrypt_failed
    );
    assert!(sealed::unseal(&blob, &HUK[..8], &MEASUREMENT, &VENDOR_ID, "micro_speech").is_err());
}

#[test]
fn sealed_every_byte_change_and_truncation_rejected() {
    let mut rng = TestRng::new(51);
    let vendor = key(&mut rng);
    let licence = sample_licence([1; 33]).sign(&vendor).unwrap();
    let content = SealedContent {
        content_key: ContentKey::generate(&mut rng),
        licence,
    };
    let blob = sealed::seal(
        &HUK,
        &MEASUREMENT,
        &VENDOR_ID,
        "micro_speech",
        &content,
        &mut rng,
    )
    .unwrap();
    assert_tamper_rejected(&blob, |b| {
        sealed::unseal(b, &HUK, &MEASUREMENT, &VENDOR_ID, "micro_speech")
    });
}

// ---------------------------------------------------------------- whole flow

#[test]
fn provisioning_and_initialization_flow() {
    let mut rng = TestRng::new(60);
    let vendor = key(&mut rng);
    let device = key(&mut rng);
    let ck = ContentKey::generate(&mut rng);
    let bundle = b"pipeline bundle bytes".to_vec();
    let header = PackageHeader::new("kws", 1, 100, vendor.verifying_key());
    let pkg = Package::seal(&header, &bundle, &ck, &vendor, &mut rng).unwrap();

    // Preparation.
    let challenge = Challenge::generate(&mut rng, 1000, 60);
    let challenge = Challenge::from_bytes(&challenge.to_bytes().unwrap()).unwrap();
    let kp = HpkeKeyPair::generate(&mut rng);
    let claims = Claims::new(
        device.verifying_key(),
        &challenge.nonce,
        IMPLEMENTATION_ID,
        vec![component()],
        kp.public_key_hash(),
    );
    let token = Token::sign(&claims, &device).unwrap();
    let enclave_pk = kp.public_key.to_bytes();
    // Vendor.
    let got = Token::verify(&token, device.verifying_key()).unwrap();
    challenge.check_response(&got.nonce, 1010).unwrap();
    got.verify_against(&reference(), &challenge.nonce).unwrap();
    got.check_enclave_key(&enclave_pk).unwrap();
    let pk = HpkePublicKey::from_bytes(&enclave_pk).unwrap();
    let kr = KeyRelease::seal(&pk, &token, &ck, "kws", 1, &mut rng).unwrap();
    let mut lic = sample_licence(got.instance_id);
    lic.model_id = "kws".into();
    lic.model_version = 1;
    lic.activation = omg_protocol::sha256(&token);
    let lic = lic.sign(&vendor).unwrap();
    // Enclave.
    let released = KeyRelease::open(&kr, &kp.private_key, &token).unwrap();
    released.check_model("kws", 1).unwrap();
    let blob = sealed::seal(
        &HUK,
        &MEASUREMENT,
        &VENDOR_ID,
        "kws",
        &SealedContent {
            content_key: released.content_key,
            licence: lic,
        },
        &mut rng,
    )
    .unwrap();

    // Initialization (offline).
    let content = sealed::unseal(&blob, &HUK, &MEASUREMENT, &VENDOR_ID, "kws").unwrap();
    let v = Package::open_signed(&pkg, vendor.verifying_key()).unwrap();
    let lic = Licence::verify(&content.licence, vendor.verifying_key()).unwrap();
    lic.check(
        1_500_000_000,
        &ueid(device.verifying_key()),
        &v.header().model_id,
        v.header().version,
        5,
        InputSource::Mic,
    )
    .unwrap();
    assert_eq!(v.decrypt(&content.content_key).unwrap().as_slice(), bundle);
}

// ---------------------------------------------------------------- random garbage

/// Random inputs and multi-byte mutations of valid messages: every parser returns an error,
/// none panics.
#[test]
fn parsers_never_panic_on_garbage() {
    use omg_protocol::rand_core::Rng;
    let mut rng = TestRng::new(70);
    let (pkg, vendor, _, _) = sample_package(&mut rng);
    let (token, device, kp) = sample_token(&mut rng);
    let ck = ContentKey::generate(&mut rng);
    let kr = KeyRelease::seal(&kp.public_key, &token, &ck, "m", 1, &mut rng).unwrap();
    let lic = sample_licence([1; 33]).sign(&vendor).unwrap();
    let content = SealedContent {
        content_key: ck,
        licence: lic.clone(),
    };
    let blob = sealed::seal(&HUK, &MEASUREMENT, &VENDOR_ID, "m", &content, &mut rng).unwrap();
    let chal = Challenge::generate(&mut rng, 0, 1).to_bytes().unwrap();
    let run_all = |b: &[u8]| {
        let _ = Package::open_signed(b, vendor.verifying_key());
        let _ = Token::verify(b, device.verifying_key());
        let _ = Token::verify_foreign(b, device.verifying_key());
        let _ = Claims::from_cbor(b, false);
        let _ = KeyRelease::open(b, &kp.private_key, &token);
        let _ = Licence::verify(b, vendor.verifying_key());
        let _ = sealed::unseal(b, &HUK, &MEASUREMENT, &VENDOR_ID, "m");
        let _ = Challenge::from_bytes(b);
    };
    for _ in 0..300 {
        let len = (rng.next_u32() % 300) as usize;
        let mut b = vec![0u8; len];
        rng.fill_bytes(&mut b);
        run_all(&b);
    }
    for valid in [&pkg, &token, &kr, &lic, &blob, &chal] {
        for _ in 0..60 {
            let mut b = valid.to_vec();
            for _ in 0..(1 + rng.next_u32() % 4) {
                let i = (rng.next_u32() as usize) % b.len();
                b[i] = rng.next_u32() as u8;
            }
            run_all(&b);
        }
    }
}

/// The `protocol` fuzz target's licence seed (selector 2, then a leased licence signed with the
/// target's vendor key), checked here and, with `OMG_WRITE_FUZZ_SEEDS=DIR`, written to
/// `DIR/protocol/licence`.
#[test]
fn licence_fuzz_seed() {
    let vendor = omg_protocol::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let mut lic = sample_licence([1; 33]);
    lic.lease = Some(Lease {
        renew_after: 1_900_000_000,
        lease_until: 1_900_086_400,
    });
    let bytes = lic.sign(&vendor).unwrap();
    assert_eq!(
        Licence::verify(&bytes, vendor.verifying_key()).unwrap(),
        lic
    );
    if let Some(dir) = std::env::var_os("OMG_WRITE_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir).join("protocol");
        std::fs::create_dir_all(&dir).unwrap();
        let mut seed = vec![2u8];
        seed.extend_from_slice(&bytes);
        std::fs::write(dir.join("licence"), seed).unwrap();
    }
}
