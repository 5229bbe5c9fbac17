//! The OP-TEE token (`omg_protocol::optee`): made as the TA makes it, with a simulated
//! attestation PTA (a software RSA key), and the attacks a verifier must refuse.

mod common;

use common::*;
use coset::cbor::value::Value;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use omg_protocol::optee::{self, DeviceKey, OpteeToken, PendingToken};
use omg_protocol::token::Token;
use omg_protocol::{ProtocolError, key_id, public_key_sec1, sha256};
use omg_testkit::optee::{SimulatedPta, forge_token};
use p256::ecdsa::signature::Signer;
use sha2::{Digest, Sha256};

const TA_HASH: [u8; 32] = [0x5a; 32];
const KEY_HASH: [u8; 32] = [0x66; 32];

fn device() -> SimulatedPta {
    SimulatedPta::new(1, TA_HASH)
}

#[test]
fn a_token_made_as_the_ta_makes_it_verifies_with_the_device_key() {
    let mut rng = TestRng::new(1);
    let pta = device();
    let token = pta.token(&NONCE, KEY_HASH, &mut rng);
    let claims = OpteeToken::verify(&token, &pta.device_key()).unwrap();
    assert_eq!(claims, pta.claims(&NONCE, KEY_HASH));
    assert_eq!(claims.profile, optee::OPTEE_PROFILE);
    assert_eq!(claims.instance_id, pta.ueid());
    assert_eq!(claims.instance_id[1..], sha256(pta.device_key().modulus()));
    assert_eq!(claims.software_components[0].measurement_value, TA_HASH);
    assert_eq!(
        claims.software_components[0].measurement_type.as_deref(),
        Some(optee::MEASUREMENT_TYPE)
    );
    assert_eq!(claims.enclave_key_hash, KEY_HASH);
    // The PTA key's DER form round-trips, and so does the UEID from the raw components.
    let der = pta.device_key_der();
    let again = DeviceKey::from_der(&der).unwrap();
    assert_eq!(again, pta.device_key());
    assert_eq!(again.ueid(), pta.ueid());
}

/// The token built only from the module documentation's layout, with coset and sha2 directly
/// (not omg's encoder), verifies: the documentation is the format.
#[test]
fn a_token_built_from_the_documented_layout_verifies() {
    let mut rng = TestRng::new(2);
    let pta = device();
    let claims = pta.claims(&NONCE, KEY_HASH);
    let payload = claims.to_cbor().unwrap();
    let ephemeral = omg_protocol::generate_signing_key(&mut rng);
    let eph = public_key_sec1(ephemeral.verifying_key());
    let mut h = Sha256::new();
    h.update(b"omg optee token v1");
    h.update(eph);
    h.update(Sha256::digest(&payload));
    let binding: [u8; 32] = h.finalize().into();
    let output = pta.hash_ta_memory(&binding, &mut rng);
    let evidence = Value::Map(vec![
        (Value::Integer(1.into()), Value::Bytes(eph.to_vec())),
        (
            Value::Integer(2.into()),
            Value::Bytes(output[..32].to_vec()),
        ),
        (
            Value::Integer(3.into()),
            Value::Bytes(output[32..].to_vec()),
        ),
    ]);
    let header = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(key_id(ephemeral.verifying_key()).to_vec())
        .value(-65537, evidence)
        .build();
    let token = CoseSign1Builder::new()
        .protected(header)
        .payload(payload)
        .create_signature(b"", |tbs| {
            let sig: p256::ecdsa::Signature = ephemeral.sign(tbs);
            sig.to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .unwrap();
    let verified = OpteeToken::verify(&token, &pta.device_key()).unwrap();
    assert_eq!(verified, claims);
}

#[test]
fn evidence_signed_by_another_rsa_key_is_refused() {
    let mut rng = TestRng::new(3);
    let device = device();
    let other = SimulatedPta::new(2, TA_HASH);
    // The other key signs claims that name the real device.
    let token = other.token_for(&device.claims(&NONCE, KEY_HASH), &mut rng);
    assert!(matches!(
        OpteeToken::verify(&token, &device.device_key()),
        Err(ProtocolError::BadSignature { .. })
    ));
    // Its own claims name another device.
    let token = other.token(&NONCE, KEY_HASH, &mut rng);
    assert!(matches!(
        OpteeToken::verify(&token, &device.device_key()),
        Err(ProtocolError::Mismatch {
            field: "instance id",
            ..
        })
    ));
}

#[test]
fn genuine_evidence_does_not_carry_other_claims_or_another_signer() {
    let mut rng = TestRng::new(4);
    let pta = device();
    let token = pta.token(&NONCE, KEY_HASH, &mut rng);
    let genuine = OpteeToken::open(&token).unwrap().evidence;
    let attacker = omg_protocol::generate_signing_key(&mut rng);

    // Replayed under another vendor nonce, the attacker's key in the evidence.
    let mut replay = pta.claims(&[0x45; 32], KEY_HASH);
    let mut evidence = genuine.clone();
    evidence.ephemeral_public_key = public_key_sec1(attacker.verifying_key());
    assert!(matches!(
        OpteeToken::verify(
            &forge_token(&replay, &attacker, &evidence),
            &pta.device_key()
        ),
        Err(ProtocolError::BadSignature { .. })
    ));
    // The same with the genuine token's own claims except the enclave key (a swapped HPKE key).
    replay = pta.claims(&NONCE, [0x67; 32]);
    assert!(matches!(
        OpteeToken::verify(
            &forge_token(&replay, &attacker, &evidence),
            &pta.device_key()
        ),
        Err(ProtocolError::BadSignature { .. })
    ));
    // The genuine claims and evidence, re-signed by the attacker's key: the PTA bound another
    // ephemeral key.
    let same = pta.claims(&NONCE, KEY_HASH);
    assert!(matches!(
        OpteeToken::verify(&forge_token(&same, &attacker, &evidence), &pta.device_key()),
        Err(ProtocolError::BadSignature { .. })
    ));
    // The genuine ephemeral key named in the evidence, the COSE signature the attacker's.
    let bad = forge_token(&replay, &attacker, &genuine);
    assert!(matches!(
        OpteeToken::verify(&bad, &pta.device_key()),
        Err(ProtocolError::WrongKey { .. })
    ));
    // A measurement claim that is not the PTA's hash.
    let mut other_measurement = pta.claims(&NONCE, KEY_HASH);
    other_measurement.software_components[0].measurement_value = vec![0x11; 32];
    assert!(matches!(
        OpteeToken::verify(
            &forge_token(&other_measurement, &attacker, &evidence),
            &pta.device_key()
        ),
        Err(ProtocolError::Mismatch { .. })
    ));
}

/// The TA's raw evidence command hashes the normal world's nonce with its own label, so the
/// normal world cannot have it sign a token binding.
#[test]
fn raw_evidence_for_a_chosen_nonce_makes_no_token() {
    let mut rng = TestRng::new(5);
    let pta = device();
    let attacker = omg_protocol::generate_signing_key(&mut rng);
    let claims = pta.claims(&NONCE, KEY_HASH);
    let pending = PendingToken::new(&claims, &attacker).unwrap();
    let wanted = pending.pta_nonce();
    // The TA passes SHA-256(label || nonce), never the nonce itself.
    let output = pta.hash_ta_memory(&optee::raw_evidence_nonce(&wanted), &mut rng);
    let token = pending.finish(&output).unwrap();
    assert!(matches!(
        OpteeToken::verify(&token, &pta.device_key()),
        Err(ProtocolError::BadSignature { .. })
    ));
    // Without that label the same call would have made a valid token: the label is what
    // stops it.
    let pending = PendingToken::new(&claims, &attacker).unwrap();
    let output = pta.hash_ta_memory(&pending.pta_nonce(), &mut rng);
    let token = pending.finish(&output).unwrap();
    assert!(OpteeToken::verify(&token, &pta.device_key()).is_ok());
}

#[test]
fn linux_and_optee_tokens_are_not_confused() {
    let mut rng = TestRng::new(6);
    let pta = device();
    let token = pta.token(&NONCE, KEY_HASH, &mut rng);
    let evidence = OpteeToken::open(&token).unwrap().evidence;
    // The OP-TEE token is no Linux token, even for its own ephemeral key.
    assert!(Token::verify(&token, &evidence.ephemeral_key().unwrap()).is_err());
    // A Linux-backend token is no OP-TEE token.
    let linux_key = key(&mut rng);
    let linux = Token::sign(&claims(&linux_key, KEY_HASH), &linux_key).unwrap();
    assert!(OpteeToken::open(&linux).is_err());
    // Linux claims (the Linux profile) signed the OP-TEE way are refused for their profile.
    let mut linux_claims = claims(&linux_key, KEY_HASH);
    linux_claims.instance_id = pta.ueid();
    let ephemeral = key(&mut rng);
    assert!(PendingToken::new(&linux_claims, &ephemeral).is_err());
}

#[test]
fn every_changed_or_truncated_byte_is_refused_without_panic() {
    let mut rng = TestRng::new(7);
    let pta = device();
    let token = pta.token(&NONCE, KEY_HASH, &mut rng);
    let device_key = pta.device_key();
    let n = assert_tamper_rejected(&token, |t| OpteeToken::verify(t, &device_key));
    assert!(n > 1000, "{n} variants");
    for len in [0, 1, 7, 100, 5000] {
        let garbage: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        assert!(OpteeToken::open(&garbage).is_err());
    }
}

#[test]
fn device_keys_are_rsa_2048_to_4096_in_canonical_der() {
    let pta = device();
    let der = pta.device_key_der();
    assert!(DeviceKey::from_der(&der[..der.len() - 1]).is_err());
    let mut longer = der.clone();
    longer.push(0);
    assert!(DeviceKey::from_der(&longer).is_err());
    let mut rng = TestRng::new(8);
    let sec1 = public_key_sec1(key(&mut rng).verifying_key());
    assert!(DeviceKey::from_der(&sec1).is_err());
    assert!(DeviceKey::from_der(&[]).is_err());
    // A 1024-bit modulus is refused.
    assert!(DeviceKey::from_components(&[1, 0, 1], &[0xc5; 128]).is_err());
    // Leading zero bytes of the PTA's output do not change the key or the UEID.
    let m = pta.device_key().modulus().to_vec();
    let mut padded = vec![0, 0];
    padded.extend_from_slice(&m);
    let k = DeviceKey::from_components(&[0, 1, 0, 1], &padded).unwrap();
    assert_eq!(k.ueid(), pta.ueid());
    assert_eq!(optee::device_ueid(&padded), pta.ueid());
}

/// Writes the files tools/optee/verify_attestation.py reads, made by the simulated PTA as the
/// TA makes them, to the directory named by `OMG_WRITE_OPTEE_SAMPLE` (the Python verifier is
/// then checked without the emulated machine).
#[test]
#[ignore = "writes files for the Python verifier; run by hand or CI with OMG_WRITE_OPTEE_SAMPLE"]
fn write_token_sample_optee() {
    let dir = std::path::PathBuf::from(std::env::var("OMG_WRITE_OPTEE_SAMPLE").unwrap());
    let mut rng = TestRng::new(9);
    let pta = device();
    let key = pta.device_key();
    let nonce = [0x31u8; 32];
    let evidence = pta.hash_ta_memory(&optee::raw_evidence_nonce(&nonce), &mut rng);
    let token = pta.token(&nonce, KEY_HASH, &mut rng);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [
        // The simulated PTA's exponent is 65537, as OP-TEE's.
        ("exponent", vec![1, 0, 1]),
        ("modulus", key.modulus().to_vec()),
        ("nonce", nonce.to_vec()),
        ("evidence", evidence),
        ("token", token),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
