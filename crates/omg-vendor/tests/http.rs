//! The HTTP API end to end: the router through `tower::ServiceExt::oneshot` (on SQLite and on
//! PostgreSQL), and `serve` on a loopback listener.
//!
//! The store blocks (and the PostgreSQL client runs a runtime of its own), so fixtures are
//! built and inspected outside the async runtime, which only drives the HTTP calls: as in
//! the service, where the handlers reach the store through `spawn_blocking`.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use http_body_util::BodyExt;
use omg_protocol::challenge::Challenge;
use omg_protocol::key_release::KeyRelease;
use omg_protocol::licence::Licence;
use omg_protocol::public_key_sec1;
use omg_vendor::http::{ApiConfig, router, router_with};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn post(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn activate_body(device: &Device, token: &[u8], version: u32) -> Value {
    json!({
        "token": B64.encode(token),
        "device_public_key": B64.encode(public_key_sec1(device.key.verifying_key())),
        "model_id": MODEL,
        "version": version,
        "enclave_public_key": B64.encode(device.enclave.public_key.to_bytes()),
    })
}

fn config(admin: Option<&str>) -> ApiConfig {
    ApiConfig {
        admin_token: admin.map(str::to_owned),
        clock: Arc::new(|| NOW),
        ..ApiConfig::default()
    }
}

/// Runs `future` on a fresh single-threaded runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn challenge_activate_refusal_and_limits(backend: Backend) {
    let mut f = fixture_on(backend, "http", 20, &policy(5));
    let app = router_with(f.service.clone(), config(None));
    let device = Device::new(&mut f.rng);
    block_on(challenge_activate_refusal_and_limits_calls(
        &app, &f, &device,
    ));
    // The audit saw every attempt that reached the service.
    assert_eq!(f.service.audit_log().unwrap().len(), 3);
}

async fn challenge_activate_refusal_and_limits_calls(
    app: &axum::Router,
    f: &Fixture,
    device: &Device,
) {
    let app = app.clone();

    // Challenge.
    let (status, body) = call(&app, post("/v1/challenge", Value::Null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_at"], NOW + 60);
    let nonce = B64.decode(body["nonce"].as_str().unwrap()).unwrap();
    let challenge =
        Challenge::from_bytes(&B64.decode(body["challenge"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(challenge.nonce.as_slice(), nonce.as_slice());

    // Activate.
    let token = device.token_with(&nonce, MEASUREMENT);
    let (status, body) = call(&app, post("/v1/activate", activate_body(device, &token, 1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key_release = B64.decode(body["key_release"].as_str().unwrap()).unwrap();
    let released = KeyRelease::open(&key_release, &device.enclave.private_key, &token).unwrap();
    assert_eq!(released.content_key, f.content_key);
    let licence = B64.decode(body["licence"].as_str().unwrap()).unwrap();
    let licence = Licence::verify(&licence, f.vendor.verifying_key()).unwrap();
    assert_eq!(licence.device_ueid, device.ueid());

    // The same token again: refused, with its reason.
    let (status, body) = call(&app, post("/v1/activate", activate_body(device, &token, 1))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "refused");
    assert_eq!(body["reason"], "reused_nonce");

    // Bad requests.
    let (status, body) = call(&app, post("/v1/activate", json!({"token": "x"}))).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let mut bad = activate_body(device, &token, 1);
    bad["token"] = json!("not base64!");
    let (status, body) = call(&app, post("/v1/activate", bad)).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_base64"))
    );
    // Unknown version: 404 (with a fresh nonce; the nonce is checked first).
    let (_, c) = call(&app, post("/v1/challenge", Value::Null)).await;
    let nonce2 = B64.decode(c["nonce"].as_str().unwrap()).unwrap();
    let token2 = device.token_with(&nonce2, MEASUREMENT);
    let (status, body) = call(
        &app,
        post("/v1/activate", activate_body(device, &token2, 42)),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_model"))
    );

    // Oversized body: 413 with a JSON error.
    let big = "a".repeat(70 * 1024);
    let (status, body) = call(&app, post("/v1/activate", json!({ "token": big }))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");

    // Unknown route.
    let (status, _) = call(&app, Request::get("/v1/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn admin_endpoints(backend: Backend) {
    let mut f = fixture_on(backend, "admin", 21, &policy(5));
    let device = Device::new(&mut f.rng);
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    f.service
        .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap();
    block_on(admin_endpoints_calls(&f, &device));
    assert!(f.service.list_devices().unwrap()[0].revoked);
    assert_eq!(
        f.service
            .store()
            .model(MODEL)
            .unwrap()
            .unwrap()
            .revocation_epoch,
        1
    );
}

async fn admin_endpoints_calls(f: &Fixture, device: &Device) {
    // Disabled without an admin token.
    let app = router(f.service.clone());
    let (status, body) = call(
        &app,
        Request::get("/v1/devices").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("admin_api_disabled"))
    );

    let app = router_with(f.service.clone(), config(Some("s3cret")));
    let get = |path: &str, token: &str| {
        Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _) = call(&app, get("/v1/devices", "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, get("/v1/devices", "s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["ueid"], hex(&device.ueid()));
    assert_eq!(body[0]["revoked"], false);
    let (status, body) = call(&app, get("/v1/activations", "s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["model_id"], MODEL);
    assert!(body[0]["licence"].as_str().unwrap().len() > 100);

    let admin_post = |path: &str, body: Value| {
        Request::post(path)
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, body) = call(
        &app,
        admin_post("/v1/revoke/device", json!({"ueid": hex(&device.ueid())})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, admin_post("/v1/revoke/device", json!({"ueid": "00"}))).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_ueid"))
    );
    let (status, body) = call(
        &app,
        admin_post("/v1/revoke/model", json!({"model_id": MODEL, "version": 1})),
    )
    .await;
    assert_eq!(
        (status, body["revocation_epoch"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (status, _) = call(
        &app,
        admin_post(
            "/v1/revoke/model",
            json!({"model_id": MODEL, "version": 99}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The OpenAPI description.
    let resp = app
        .clone()
        .oneshot(
            Request::get("/v1/openapi.yaml")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&text).unwrap();
    assert!(text.starts_with("openapi: 3."));
    for path in [
        "/v1/challenge:",
        "/v1/activate:",
        "/v1/revoke/device:",
        "/v1/revoke/model:",
        "/v1/devices:",
        "/v1/activations:",
    ] {
        assert!(text.contains(path), "{path}");
    }
}

on_both_backends!(challenge_activate_refusal_and_limits, admin_endpoints);

#[test]
fn serve_on_loopback() {
    let f = fixture("serve", 22, &policy(5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(omg_vendor::http::serve(listener, f.service.clone()));

    let request = |raw: &str| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let out = request(
        "POST /v1/challenge HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"nonce\""));
    // A declared body over the limit is refused before it is read.
    let out = request(&format!(
        "POST /v1/activate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        1024 * 1024
    ));
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("payload_too_large"));
    server.abort();
}
