//! Interoperability helpers for independent COSE libraries (e.g. Python pycose + cbor2<6).
//!
//! * `OMG_WRITE_TOKEN_SAMPLE=DIR cargo test -p omg-protocol --test token_interop` writes
//!   `DIR/token.cbor` (tagged COSE_Sign1, ES256), `DIR/device_pub.sec1` (65-byte SEC1
//!   uncompressed P-256 point), `DIR/device_priv.p256` (32-byte scalar, test key only, so a
//!   foreign library can sign a token with the same key), `DIR/claims.txt` (the expected
//!   claim values, hex) and `DIR/enclave_hpke_pub.bin`.
//! * `OMG_VERIFY_FOREIGN_TOKEN=DIR` verifies `DIR/foreign_token.cbor` (signed by another
//!   library with the private key above, tagged or not) with `DIR/device_pub.sec1` through
//!   `Token::verify_foreign`.

mod common;

use common::*;
use coset::cbor::value::Value;
use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use omg_protocol::key_release::HpkeKeyPair;
use omg_protocol::token::Token;
use omg_protocol::{Format, public_key_sec1, verifying_key_from_sec1};
use p256::ecdsa::signature::Signer;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
#[ignore = "interop with pycose: run by .ci/run (see tests/pycose_interop.py)"]
fn write_token_sample() {
    let dir =
        std::env::var("OMG_WRITE_TOKEN_SAMPLE").expect("set OMG_WRITE_TOKEN_SAMPLE to a directory");
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = TestRng::new(4242);
    let device = key(&mut rng);
    let kp = HpkeKeyPair::generate(&mut rng);
    let claims = claims(&device, kp.public_key_hash());
    let token = Token::sign(&claims, &device).unwrap();
    assert!(Token::verify(&token, device.verifying_key()).is_ok());
    std::fs::write(dir.join("token.cbor"), &token).unwrap();
    std::fs::write(
        dir.join("device_pub.sec1"),
        public_key_sec1(device.verifying_key()),
    )
    .unwrap();
    std::fs::write(dir.join("device_priv.p256"), device.to_bytes().as_slice()).unwrap();
    std::fs::write(dir.join("enclave_hpke_pub.bin"), kp.public_key.to_bytes()).unwrap();
    let text = format!(
        "nonce(10)={}\nueid(256)={}\nprofile(265)={}\nclient_id(2394)={}\nlifecycle(2395)={}\n\
         implementation_id(2396)={}\nmeasurement(2399[0][2])={}\nsigner_id(2399[0][5])={}\n\
         enclave_key_hash(-65537)={}\n",
        hex(&claims.nonce),
        hex(&claims.instance_id),
        claims.profile,
        claims.client_id,
        claims.security_lifecycle.0,
        hex(&claims.implementation_id),
        hex(&claims.software_components[0].measurement_value),
        hex(&claims.software_components[0].signer_id),
        hex(&claims.enclave_key_hash),
    );
    std::fs::write(dir.join("claims.txt"), text).unwrap();
}

#[test]
#[ignore = "interop with pycose: run by .ci/run (see tests/pycose_interop.py)"]
fn verify_foreign_token_from_env() {
    let dir = std::env::var("OMG_VERIFY_FOREIGN_TOKEN")
        .expect("set OMG_VERIFY_FOREIGN_TOKEN to a directory");
    let dir = std::path::PathBuf::from(dir);
    let token = std::fs::read(dir.join("foreign_token.cbor")).unwrap();
    let key =
        verifying_key_from_sec1(&std::fs::read(dir.join("device_pub.sec1")).unwrap()).unwrap();
    let claims = Token::verify_foreign(&token, &key).unwrap();
    eprintln!("foreign token verified: {claims:?}");
}

/// A token laid out the way other libraries often do it: untagged, kid in the unprotected
/// header, extra protected parameter, claims map in another key order with an unknown claim.
#[test]
fn foreign_style_token_verifies_leniently_only() {
    let mut rng = TestRng::new(77);
    let device = key(&mut rng);
    let kp = HpkeKeyPair::generate(&mut rng);
    let claims = claims(&device, kp.public_key_hash());
    let ours = claims.to_cbor().unwrap();
    // Reverse the claims map order and add an unknown claim.
    let Value::Map(mut entries) = coset::cbor::de::from_reader::<Value, _>(&ours[..]).unwrap()
    else {
        panic!()
    };
    entries.reverse();
    entries.push((Value::Integer((-70000).into()), Value::Text("extra".into())));
    let mut payload = Vec::new();
    coset::cbor::ser::into_writer(&Value::Map(entries), &mut payload).unwrap();

    let sign1 = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::ES256)
                .content_type("application/eat+cwt".into())
                .build(),
        )
        .unprotected(HeaderBuilder::new().key_id(b"device".to_vec()).build())
        .payload(payload)
        .create_signature(b"", |tbs| {
            let sig: p256::ecdsa::Signature = device.sign(tbs);
            sig.to_bytes().to_vec()
        })
        .build();
    let untagged = sign1.clone().to_vec().unwrap();
    let tagged = sign1.to_tagged_vec().unwrap();
    for bytes in [&untagged, &tagged] {
        let got = Token::verify_foreign(bytes, device.verifying_key()).unwrap();
        assert_eq!(got, claims);
        assert!(Token::verify(bytes, device.verifying_key()).is_err());
    }
    // Signature by another key fails.
    let other = key(&mut rng);
    assert!(Token::verify_foreign(&tagged, other.verifying_key()).is_err());
    // The generic verifier returns the payload.
    let payload = omg_protocol::cose::verify_sign1_es256(
        &tagged,
        device.verifying_key(),
        Format::Token,
        4096,
    )
    .unwrap();
    assert!(!payload.is_empty());
}
