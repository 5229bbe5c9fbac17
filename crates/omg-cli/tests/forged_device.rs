//! The forged-device attack, against a real `omg vendor serve` over HTTP on loopback.
//!
//! The attacker has no device, no enclave and no root: only the public SHA-256 of the shipped
//! `omg-enclave` image, the published package and the protocol documentation
//! (docs/protocol.md and the module documentation of the formats). This client is written from
//! those alone — it uses none of omg's crates, only p256, sha2, hpke, ciborium, aes-gcm,
//! base64 and ureq: it makes its own P-256 "device" key, asks for a challenge, signs an EAT
//! token claiming the genuine enclave measurement with that key and asks for the model key.
//!
//! The service must refuse it as `unknown_device`: the token's signature only proves that the
//! client holds the key it sends. With an endorsement of its key signed by a "maker" key of
//! its own, it must be refused as `untrusted_maker`. The positive controls show the refusals
//! mean something: once the vendor enrols that very key, the same client gets a key release,
//! opens it with HPKE itself and decrypts the package, finding the classifier's bytes in it;
//! and once the vendor trusts that maker key, another self-made key with the client's own
//! endorsement gets the key too.

mod support;

use std::io::Read;
use std::path::Path;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ciborium::Value;
use hpke::aead::{AeadTag, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, Serializable};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use support::{OMG, Server, TempDir, ok, omg, vendor_keygen};

/// The classifier the vendor packages (bundled with the micro_speech pipeline).
const CLASSIFIER: &[u8] =
    include_bytes!("../../../assets/pipelines/micro_speech/micro_speech_quantized.tflite");

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut out)
        .unwrap();
    out
}

/// Canonical CBOR of `value` (ciborium writes the shortest heads and definite lengths; the
/// maps below are built in canonical key order).
fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}

fn random_key() -> SigningKey {
    loop {
        if let Ok(key) = SigningKey::from_slice(&random::<32>()) {
            return key;
        }
    }
}

fn sec1(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
}

/// A tagged COSE_Sign1 with ES256 by `key` over `payload`: protected header
/// `{1: -7, ? 3: content type, 4: kid}` (kid = the first 16 bytes of SHA-256 of the SEC1 key),
/// empty unprotected header, signature r || s over `["Signature1", protected, h'', payload]`.
fn sign1(key: &SigningKey, content_type: Option<&str>, payload: Vec<u8>) -> Vec<u8> {
    let mut header = vec![(1, int(-7))];
    if let Some(ct) = content_type {
        header.push((3, Value::Text(ct.into())));
    }
    header.push((4, Value::Bytes(sha256(&sec1(key))[..16].to_vec())));
    let protected = cbor(&map(header));
    let to_sign = cbor(&Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.clone()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.clone()),
    ]));
    let signature: Signature = key.sign(&to_sign);
    cbor(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(Vec::new()),
            Value::Bytes(payload),
            Value::Bytes(signature.to_bytes().to_vec()),
        ])),
    ))
}

/// A device maker's endorsement of `device_public_key` signed with `maker`: the payload
/// `{1: device SEC1 key, 2: maker key id, 3: issued at}` with the endorsement content type.
fn endorsement(maker: &SigningKey, device_public_key: &[u8]) -> Vec<u8> {
    let payload = map(vec![
        (1, Value::Bytes(device_public_key.to_vec())),
        (2, Value::Bytes(sha256(&sec1(maker))[..16].to_vec())),
        (3, int(1_800_000_000)),
    ]);
    sign1(
        maker,
        Some("application/vnd.omg.endorsement+cbor"),
        cbor(&payload),
    )
}

/// The attacker: a self-made P-256 key posing as a device, and an HTTP client.
struct Forger {
    key: SigningKey,
    agent: ureq::Agent,
    url: String,
}

/// What the service answered to an activation.
enum Answer {
    /// 200: the key release and the licence.
    Released { key_release: Vec<u8> },
    /// Anything else: the status and the reason code.
    Refused(u16, String),
}

impl Forger {
    fn new(url: &str) -> Self {
        let key = random_key();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Forger {
            key,
            agent,
            url: url.to_owned(),
        }
    }

    /// The SEC1 uncompressed public key (what `omg device init` writes as attestation.pub).
    fn public_key(&self) -> Vec<u8> {
        sec1(&self.key)
    }

    fn post(&self, path: &str, body: &Json) -> (u16, Json) {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.url))
            .send_json(body)
            .unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_json().unwrap())
    }

    /// The attestation token of docs/protocol.md: COSE_Sign1 (tag 18, ES256, kid = the first
    /// 16 bytes of SHA-256 of the SEC1 key) around the PSA claim set with omg's profile and the
    /// enclave key hash claim -65537, claiming `measurement`.
    fn token(&self, nonce: &[u8], measurement: [u8; 32], enclave_public_key: &[u8]) -> Vec<u8> {
        let sec1 = self.public_key();
        let mut ueid = vec![0x01];
        ueid.extend_from_slice(&sha256(&sec1));
        let component = map(vec![
            (1, Value::Text("enclave".into())),
            (2, Value::Bytes(measurement.to_vec())),
            (4, Value::Text("0.1.0".into())),
            (5, Value::Bytes(vec![0x22; 32])),
            (6, Value::Text("sha-256".into())),
        ]);
        let claims = map(vec![
            (10, Value::Bytes(nonce.to_vec())),
            (256, Value::Bytes(ueid)),
            (
                265,
                Value::Text("tag:omg.example.invalid,2026:eat-psa-v1".into()),
            ),
            (2394, int(1)),
            (2395, int(0x3000)),
            (2396, Value::Bytes(vec![0x33; 32])),
            (2399, Value::Array(vec![component])),
            (-65537, Value::Bytes(sha256(enclave_public_key).to_vec())),
        ]);
        sign1(&self.key, None, cbor(&claims))
    }

    /// The whole preparation phase of a device: challenge, token, activation (with
    /// `endorsement` if given). Returns the answer, the token and the enclave's HPKE private
    /// key.
    fn activate(
        &self,
        measurement: [u8; 32],
        endorsement: Option<&[u8]>,
    ) -> (Answer, Vec<u8>, <X25519HkdfSha256 as Kem>::PrivateKey) {
        let (status, challenge) = self.post("/v1/challenge", &json!({}));
        assert_eq!(status, 200, "{challenge}");
        let nonce = B64.decode(challenge["nonce"].as_str().unwrap()).unwrap();
        let (enclave_private, enclave_public) = X25519HkdfSha256::derive_keypair(&random::<32>());
        let enclave_public = enclave_public.to_bytes().to_vec();
        let token = self.token(&nonce, measurement, &enclave_public);
        let mut body = json!({
            "token": B64.encode(&token),
            "device_public_key": B64.encode(self.public_key()),
            "model_id": "micro_speech",
            "version": 1,
            "enclave_public_key": B64.encode(&enclave_public),
        });
        if let Some(endorsement) = endorsement {
            body["endorsement"] = json!(B64.encode(endorsement));
        }
        let (status, answer) = self.post("/v1/activate", &body);
        let answer = if status == 200 {
            Answer::Released {
                key_release: B64.decode(answer["key_release"].as_str().unwrap()).unwrap(),
            }
        } else {
            Answer::Refused(status, answer["reason"].as_str().unwrap_or("").to_owned())
        };
        (answer, token, enclave_private)
    }
}

/// Opens a key release `[1, enc, ct]` (HPKE base mode, X25519 / HKDF-SHA256 / AES-256-GCM,
/// info "omg key release v1", AAD = SHA-256 of the token) and returns the content key, the
/// first item of the payload `[key, model id, version]`.
fn open_key_release(
    key_release: &[u8],
    private_key: &<X25519HkdfSha256 as Kem>::PrivateKey,
    token: &[u8],
) -> [u8; 32] {
    let Value::Array(items) = ciborium::from_reader(key_release).unwrap() else {
        panic!("the key release is not an array");
    };
    let [Value::Integer(_), Value::Bytes(enc), Value::Bytes(ct)] = &items[..] else {
        panic!("the key release is not [version, enc, ct]");
    };
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc).unwrap();
    let (body, tag) = ct.split_at(ct.len() - 16);
    let tag = AeadTag::<AesGcm256>::from_bytes(tag).unwrap();
    let mut plaintext = body.to_vec();
    hpke::single_shot_open_inout_detached::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        private_key,
        &enc,
        b"omg key release v1",
        plaintext.as_mut_slice().into(),
        &sha256(token),
        &tag,
    )
    .expect("the key release opens with the enclave key");
    let Value::Array(payload) = ciborium::from_reader(&plaintext[..]).unwrap() else {
        panic!("the key release payload is not an array");
    };
    let Some(Value::Bytes(key)) = payload.first() else {
        panic!("no content key in the key release");
    };
    key.as_slice().try_into().unwrap()
}

/// Decrypts a package (COSE_Sign1 around `[1, header, COSE_Encrypt0]`, AES-256-GCM with the
/// COSE `Enc_structure` `["Encrypt0", << {1: 3} >>, canonical header]` as AAD).
fn decrypt_package(package: &[u8], content_key: &[u8; 32]) -> Vec<u8> {
    let Value::Tag(18, sign1) = ciborium::from_reader(package).unwrap() else {
        panic!("the package is not a COSE_Sign1");
    };
    let Value::Array(sign1) = *sign1 else {
        panic!("the package is not a COSE_Sign1 array");
    };
    let Some(Value::Bytes(payload)) = sign1.get(2) else {
        panic!("the package has no payload");
    };
    let Value::Array(payload) = ciborium::from_reader(&payload[..]).unwrap() else {
        panic!("the package payload is not an array");
    };
    let [_, header, Value::Tag(16, encrypt0)] = &payload[..] else {
        panic!("the package payload is not [version, header, COSE_Encrypt0]");
    };
    let Value::Array(encrypt0) = &**encrypt0 else {
        panic!("the COSE_Encrypt0 is not an array");
    };
    let [
        Value::Bytes(protected),
        Value::Map(unprotected),
        Value::Bytes(ct),
    ] = &encrypt0[..]
    else {
        panic!("the COSE_Encrypt0 is not [protected, unprotected, ciphertext]");
    };
    let Some((_, Value::Bytes(iv))) = unprotected.first() else {
        panic!("no IV");
    };
    let aad = cbor(&Value::Array(vec![
        Value::Text("Encrypt0".into()),
        Value::Bytes(protected.clone()),
        Value::Bytes(cbor(header)),
    ]));
    let (body, tag) = ct.split_at(ct.len() - 16);
    let mut plaintext = body.to_vec();
    Aes256Gcm::new(content_key.into())
        .decrypt_inout_detached(
            &<[u8; 12]>::try_from(&iv[..]).unwrap().into(),
            &aad,
            plaintext.as_mut_slice().into(),
            &Tag::try_from(tag).unwrap(),
        )
        .expect("the package decrypts with the released key");
    plaintext
}

fn enroll_key(home: &Path, db: &Path, public_key: &[u8]) {
    ok(omg(
        home,
        &[
            "vendor",
            "enroll",
            "--db",
            db.to_str().unwrap(),
            &hex(public_key),
        ],
    ));
}

#[test]
fn a_self_made_device_key_gets_no_model_key_unless_enrolled_or_endorsed_by_a_trusted_maker() {
    let dir = TempDir::new("forged");
    let home = dir.path("home");
    let keys = vendor_keygen(&dir);
    let db = dir.path("vendor.sqlite");
    // The genuine enclave's measurement is public: the SHA-256 of the shipped image.
    let image = std::fs::read(Path::new(OMG).with_file_name("omg-enclave")).unwrap();
    let measurement = sha256(&image);
    let policy = dir.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allowed_measurements = [\"{}\"]\nmax_devices = 100\nnot_after = 4102444800\n",
            hex(&measurement)
        ),
    )
    .unwrap();
    let package = dir.path("ms.omgpkg");
    ok(support::vendor_package(
        &home,
        "micro_speech",
        &policy,
        &db,
        &keys,
        &package,
        &[],
    ));
    let package = std::fs::read(&package).unwrap();
    let server = Server::start(&db, &keys, &[]);
    let url = format!("http://{}", server.addr);
    let forger = Forger::new(&url);
    let refused = |answer: Answer, expected: &str| match answer {
        Answer::Refused(status, reason) => {
            assert_eq!((status, reason.as_str()), (403, expected));
        }
        Answer::Released { .. } => panic!("a self-made device key was given the model key"),
    };

    // The attack: refused, with no endorsement and with one by a maker key of its own, and the
    // service recorded no device.
    refused(forger.activate(measurement, None).0, "unknown_device");
    let own_maker = random_key();
    let endorsed = endorsement(&own_maker, &forger.public_key());
    refused(
        forger.activate(measurement, Some(&endorsed)).0,
        "untrusted_maker",
    );
    let store = omg_vendor::Store::open(&db).unwrap();
    assert!(store.list_devices().unwrap().is_empty());
    assert!(store.list_activations().unwrap().is_empty());

    // Positive control: the vendor enrols this very key; the same client now gets the key,
    // opens it and decrypts the package (so the refusal above was the enrolment's doing).
    enroll_key(&home, &db, &forger.public_key());
    let steal = |forger: &Forger, endorsement: Option<&[u8]>| {
        let (answer, token, enclave_private) = forger.activate(measurement, endorsement);
        let key_release = match answer {
            Answer::Released { key_release } => key_release,
            Answer::Refused(status, reason) => panic!("still refused: {status} {reason}"),
        };
        let content_key = open_key_release(&key_release, &enclave_private, &token);
        let bundle = decrypt_package(&package, &content_key);
        assert!(
            memchr::memmem::find(&bundle, CLASSIFIER).is_some(),
            "the decrypted bundle does not hold the classifier"
        );
    };
    steal(&forger, None);

    // Positive control of the endorsement: once the vendor trusts that maker key, another
    // self-made key with the client's own endorsement gets the model key.
    ok(omg(
        &home,
        &[
            "vendor",
            "trust-maker",
            "--db",
            db.to_str().unwrap(),
            &hex(&sec1(&own_maker)),
        ],
    ));
    let second = Forger::new(&url);
    steal(
        &second,
        Some(&endorsement(&own_maker, &second.public_key())),
    );
    server.kill();
}
