//! Shared fixtures: deterministic RNG, temporary database, keys, tokens.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use omg_protocol::key_release::HpkeKeyPair;
use omg_protocol::token::{Claims, SoftwareComponent, Token};
use omg_protocol::{ContentKey, SigningKey, public_key_sec1};
use omg_vendor::{ActivationRequest, Policy, Service, Store};

/// "Now" of the tests.
pub const NOW: u64 = 1_800_000_000;
pub const MEASUREMENT: [u8; 32] = [0x11; 32];
pub const OTHER_MEASUREMENT: [u8; 32] = [0x12; 32];
pub const SIGNER_ID: [u8; 32] = [0x22; 32];
pub const IMPLEMENTATION_ID: [u8; 32] = [0x33; 32];
pub const MODEL: &str = "micro_speech";

/// The shared deterministic test RNG.
pub use omg_testkit::DeterministicRng as TestRng;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("omg-vendor-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn db(&self) -> PathBuf {
        self.0.join("vendor.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn policy(max_devices: u32) -> Policy {
    Policy::from_toml(&format!(
        r#"
        allowed_measurements = ["{}", "{}"]
        max_devices = {max_devices}
        not_after = {}
        output_policy = "label_and_score"
        input_sources = ["mic", "file"]
        inference_quota = 1000
        "#,
        hex(&[0xaa; 32]),
        hex(&MEASUREMENT),
        NOW + 86_400
    ))
    .unwrap()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub struct Fixture {
    pub service: Service,
    pub vendor: SigningKey,
    pub content_key: ContentKey,
    pub rng: TestRng,
    pub dir: TempDir,
}

/// A service with model MODEL versions 1 and 2 under `policy`.
pub fn fixture(tag: &str, seed: u64, policy: &Policy) -> Fixture {
    let dir = TempDir::new(tag);
    let mut rng = TestRng::new(seed);
    let vendor = omg_protocol::generate_signing_key(&mut rng);
    let content_key = ContentKey::generate(&mut rng);
    let store = Store::open(dir.db()).unwrap();
    store.put_model(MODEL, policy, NOW - 100).unwrap();
    store
        .add_model_version(MODEL, 1, &content_key, NOW - 100)
        .unwrap();
    store
        .add_model_version(MODEL, 2, &ContentKey::generate(&mut rng), NOW - 100)
        .unwrap();
    let service = Service::new(store, vendor.clone());
    Fixture {
        service,
        vendor,
        content_key,
        rng,
        dir,
    }
}

/// A device: attestation key and enclave HPKE key pair.
pub struct Device {
    pub key: SigningKey,
    pub enclave: HpkeKeyPair,
}

impl Device {
    pub fn new(rng: &mut TestRng) -> Self {
        Device {
            key: omg_protocol::generate_signing_key(rng),
            enclave: HpkeKeyPair::generate(rng),
        }
    }

    pub fn ueid(&self) -> [u8; 33] {
        omg_protocol::ueid(self.key.verifying_key())
    }

    pub fn token_with(&self, nonce: &[u8], measurement: [u8; 32]) -> Vec<u8> {
        let claims = Claims::new(
            self.key.verifying_key(),
            nonce,
            IMPLEMENTATION_ID,
            vec![SoftwareComponent {
                measurement_type: Some("enclave".into()),
                measurement_value: measurement.to_vec(),
                version: Some("0.1.0".into()),
                signer_id: SIGNER_ID.to_vec(),
                measurement_desc: Some("sha-256".into()),
            }],
            self.enclave.public_key_hash(),
        );
        Token::sign(&claims, &self.key).unwrap()
    }

    /// A request for MODEL `version` with a token over `nonce` and the good measurement.
    pub fn request(&self, nonce: &[u8], version: u32) -> ActivationRequest {
        self.request_with(self.token_with(nonce, MEASUREMENT), version)
    }

    pub fn request_with(&self, token: Vec<u8>, version: u32) -> ActivationRequest {
        ActivationRequest {
            token,
            device_public_key: public_key_sec1(self.key.verifying_key()).to_vec(),
            model_id: MODEL.into(),
            version,
            enclave_public_key: self.enclave.public_key.to_bytes().to_vec(),
        }
    }
}
