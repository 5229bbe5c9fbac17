//! Shared fixtures: deterministic RNG, temporary database (SQLite, or PostgreSQL when
//! `OMG_TEST_POSTGRES_URL` is set), keys, tokens.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;
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

/// A number unique within this test process.
fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A temporary directory (from `tempfile`, named after `tag`), removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("omg-vendor-test-{tag}-"))
            .tempdir()
            .unwrap();
        TempDir(dir)
    }
    pub fn db(&self) -> PathBuf {
        self.0.path().join("vendor.sqlite")
    }
}

/// The environment variable naming the PostgreSQL server for the tests: a URL of an existing
/// database (e.g. `postgres://omg:PASSWORD@127.0.0.1:5432/postgres`) whose role may create
/// databases. Each test creates a database of its own there and drops it afterwards.
pub const POSTGRES_URL_VAR: &str = "OMG_TEST_POSTGRES_URL";

/// The PostgreSQL test server URL, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the PostgreSQL tests run; if not, says so once per test binary (on the real
/// stderr, which the test harness does not capture).
pub fn postgres_enabled() -> bool {
    if postgres_url().is_some() {
        return true;
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "note: PostgreSQL tests skipped: {POSTGRES_URL_VAR} is not set (.ci/run sets it)"
        );
    });
    false
}

/// `url` with its database name replaced by `dbname`.
fn with_dbname(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{dbname}?{q}"),
        None => format!("{base}/{dbname}"),
    }
}

fn admin_client() -> postgres::Client {
    let url = postgres_url().expect("OMG_TEST_POSTGRES_URL is set");
    postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_VAR}: {e}"))
}

/// A PostgreSQL database created for one test, dropped (with its connections) on drop.
pub struct TempPgDb {
    pub name: String,
    pub url: String,
}

impl TempPgDb {
    pub fn new(tag: &str) -> Self {
        // An SQL identifier: letters, digits and underscores only (tags may hold '-').
        let tag: String = tag
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("omg_vendor_test_{}_{}_{tag}", std::process::id(), unique());
        let mut admin = admin_client();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = with_dbname(&postgres_url().unwrap(), &name);
        TempPgDb { name, url }
    }
}

impl Drop for TempPgDb {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&postgres_url().unwrap_or_default(), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of one test.
pub enum Db {
    Sqlite(TempDir),
    Postgres(TempPgDb),
}

impl Db {
    pub fn new(backend: Backend, tag: &str) -> Self {
        match backend {
            Backend::Sqlite => Db::Sqlite(TempDir::new(tag)),
            Backend::Postgres => Db::Postgres(TempPgDb::new(tag)),
        }
    }

    /// What [`Store::connect`] takes: the SQLite file path or the PostgreSQL URL.
    pub fn spec(&self) -> String {
        match self {
            Db::Sqlite(dir) => dir.db().to_str().unwrap().to_owned(),
            Db::Postgres(db) => db.url.clone(),
        }
    }

    /// Runs `sql` directly (not through the store); the error's text if it fails.
    pub fn raw_execute(&self, sql: &str) -> Result<(), String> {
        match self {
            Db::Sqlite(dir) => rusqlite::Connection::open(dir.db())
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Db::Postgres(db) => postgres::Client::connect(&db.url, postgres::NoTls)
                .and_then(|mut c| c.batch_execute(sql))
                .map_err(|e| {
                    let source = std::error::Error::source(&e).map(|s| s.to_string());
                    format!("{e}: {}", source.unwrap_or_default())
                }),
        }
    }

    /// Runs a query returning one integer, directly.
    pub fn raw_count(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(dir) => rusqlite::Connection::open(dir.db())
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Db::Postgres(db) => postgres::Client::connect(&db.url, postgres::NoTls)
                .unwrap()
                .query_one(sql, &[])
                .unwrap()
                .get(0),
        }
    }
}

/// Generates, for each named `fn name(backend: Backend)`, the tests `on_sqlite::name` and
/// `on_postgres::name` (the latter passes without running when PostgreSQL is not configured).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(crate::common::Backend::Sqlite);
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    if crate::common::postgres_enabled() {
                        super::$name(crate::common::Backend::Postgres);
                    }
                }
            )*
        }
    };
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
    /// Last, so that the service's connections are closed before the database is removed.
    pub db: Db,
}

/// A service on SQLite with model MODEL versions 1 and 2 under `policy`.
pub fn fixture(tag: &str, seed: u64, policy: &Policy) -> Fixture {
    fixture_on(Backend::Sqlite, tag, seed, policy)
}

/// A service on a fresh database of `backend` with model MODEL versions 1 and 2 under
/// `policy`.
pub fn fixture_on(backend: Backend, tag: &str, seed: u64, policy: &Policy) -> Fixture {
    let db = Db::new(backend, tag);
    let mut rng = TestRng::new(seed);
    let vendor = omg_protocol::generate_signing_key(&mut rng);
    let content_key = ContentKey::generate(&mut rng);
    let store = Store::connect(db.spec()).unwrap();
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
        db,
    }
}

impl Fixture {
    /// A new device, enrolled with the service at `NOW - 50`.
    pub fn enrolled_device(&mut self) -> Device {
        let device = Device::new(&mut self.rng);
        self.service
            .enroll_device(&public_key_sec1(device.key.verifying_key()), NOW - 50)
            .unwrap();
        device
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
            endorsement: None,
        }
    }
}
