//! The vendor service's HTTP API on arbitrary request bodies: the axum router is called
//! in-process (a SQLite store in a temporary file, one model, the admin API on). The first
//! byte picks the route (and whether the admin token is sent); the rest is the body. Whatever
//! the body, the answer must not be a 5xx other than 503 (and nothing may panic).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use omg_protocol::{ContentKey, SigningKey};
use omg_vendor::http::{ApiConfig, ROUTES, router_with};
use omg_vendor::{Policy, Service, Store};

/// The service's "now" (fixed, so that nothing expires while fuzzing).
const NOW: u64 = 1_800_000_000;

/// The API's routes and one that does not exist.
const PATHS: usize = ROUTES.len() + 1;

fn route(i: usize) -> (&'static str, &'static str) {
    ROUTES
        .get(i)
        .copied()
        .unwrap_or(("POST", "/v1/no-such-route"))
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Under TMPDIR: tools/fuzz.sh gives each run a private directory (RAM-backed where it
        // can) and removes it afterwards, since libFuzzer exits without running destructors.
        let db =
            std::env::temp_dir().join(format!("omg-fuzz-vendor-{}.sqlite", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let store = Store::open(&db).expect("temporary store");
        let policy = Policy::from_toml(&format!(
            "allowed_measurements = [\"{}\"]\nmax_devices = 3\nnot_after = {}\n",
            "11".repeat(32),
            NOW + 86_400
        ))
        .expect("valid policy");
        store
            .put_model("micro_speech", &policy, NOW)
            .expect("model");
        store
            .add_model_version("micro_speech", 1, &ContentKey::from_bytes([9; 32]), NOW)
            .expect("model version");
        let vendor = SigningKey::from_slice(&[7u8; 32]).expect("valid scalar");
        let app = router_with(
            Service::new(store, vendor),
            ApiConfig {
                admin_token: Some("fuzz".into()),
                clock: Arc::new(|| NOW),
                ..ApiConfig::default()
            },
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture { runtime, app }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let (method, path) = route(usize::from(selector) % PATHS);
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if selector & 0x80 != 0 {
        request = request.header(header::AUTHORIZATION, "Bearer fuzz");
    }
    let request = request.body(Body::from(body.to_vec())).expect("request");
    let mut app = f.app.clone();
    let response = f
        .runtime
        .block_on(tower_service::Service::call(&mut app, request))
        .expect("infallible");
    let status = response.status().as_u16();
    assert!(
        status < 500 || status == 503,
        "{method} {path} answered {status} to {body:?}"
    );
});
