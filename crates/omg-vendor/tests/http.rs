//! The HTTP API end to end: the router through `tower::ServiceExt::oneshot` (on SQLite and on
//! PostgreSQL), and `serve` on a loopback listener.
//!
//! The store blocks (and the PostgreSQL client runs a runtime of its own), so fixtures are
//! built and inspected outside the async runtime, which only drives the HTTP calls: as in
//! the service, where the handlers reach the store through `spawn_blocking`.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use omg_protocol::base64;
use omg_protocol::challenge::Challenge;
use omg_protocol::key_release::KeyRelease;
use omg_protocol::licence::Licence;
use omg_protocol::public_key_sec1;
use omg_vendor::http::{ApiConfig, ROUTES, RateLimit, router, router_with, serve_router_with};
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
        "token": base64::encode(token),
        "device_public_key": base64::encode(public_key_sec1(device.key.verifying_key())),
        "model_id": MODEL,
        "version": version,
        "enclave_public_key": base64::encode(device.enclave.public_key.to_bytes()),
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
    let device = f.enrolled_device();
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
    let nonce = base64::decode(body["nonce"].as_str().unwrap()).unwrap();
    let challenge =
        Challenge::from_bytes(&base64::decode(body["challenge"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(challenge.nonce.as_slice(), nonce.as_slice());

    // Activate.
    let token = device.token_with(&nonce, MEASUREMENT);
    let (status, body) = call(&app, post("/v1/activate", activate_body(device, &token, 1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key_release = base64::decode(body["key_release"].as_str().unwrap()).unwrap();
    let released = KeyRelease::open(&key_release, &device.enclave.private_key, &token).unwrap();
    assert_eq!(released.content_key, f.content_key);
    let licence = base64::decode(body["licence"].as_str().unwrap()).unwrap();
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
    let nonce2 = base64::decode(c["nonce"].as_str().unwrap()).unwrap();
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
    let device = f.enrolled_device();
    let c = f.service.issue_nonce(NOW, &mut f.rng).unwrap();
    f.service
        .activate(&device.request(&c.nonce, 1), NOW, &mut f.rng)
        .unwrap();
    block_on(admin_endpoints_calls(&f, &device));
    let devices = f.service.list_devices().unwrap();
    let activated = devices.iter().find(|d| d.ueid == hex(&device.ueid()));
    assert!(activated.unwrap().revoked);
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
    // Enrolment: admin only; answers the UEID; a malformed key is refused.
    let newcomer =
        public_key_sec1(omg_protocol::generate_signing_key(&mut TestRng::new(77)).verifying_key());
    let enroll = json!({"device_public_key": base64::encode(newcomer)});
    let (status, _) = call(&app, post("/v1/devices/enroll", enroll.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, admin_post("/v1/devices/enroll", enroll)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let newcomer_ueid = hex(&omg_protocol::ueid(
        &omg_protocol::verifying_key_from_sec1(&newcomer).unwrap(),
    ));
    assert_eq!(body["ueid"], newcomer_ueid.as_str());
    let (_, listed) = call(&app, get("/v1/devices", "s3cret")).await;
    let listed = listed.as_array().unwrap();
    assert!(listed.iter().any(|d| d["ueid"] == newcomer_ueid.as_str()
        && d["enrolled_at"] == NOW
        && d["first_seen"].is_null()));
    let (status, body) = call(
        &app,
        admin_post(
            "/v1/devices/enroll",
            json!({"device_public_key": base64::encode([4u8; 65])}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_device_public_key"))
    );
    // An OP-TEE device: its attestation PTA key, DER SubjectPublicKeyInfo; a truncated one is
    // refused.
    let optee_device = omg_testkit::optee::SimulatedPta::new(79, [0x5a; 32]);
    let der = optee_device.device_key_der();
    let (status, body) = call(
        &app,
        admin_post(
            "/v1/devices/enroll",
            json!({"device_public_key": base64::encode(&der)}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ueid"], hex(&optee_device.ueid()).as_str());
    let (status, body) = call(
        &app,
        admin_post(
            "/v1/devices/enroll",
            json!({"device_public_key": base64::encode(&der[..der.len() - 1])}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_device_public_key"))
    );

    // Trusting a device maker: admin only; answers its key id.
    let maker =
        public_key_sec1(omg_protocol::generate_signing_key(&mut TestRng::new(78)).verifying_key());
    let trust = json!({"maker_public_key": base64::encode(maker)});
    let (status, _) = call(&app, post("/v1/makers/trust", trust.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&app, admin_post("/v1/makers/trust", trust)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let maker_key = omg_protocol::verifying_key_from_sec1(&maker).unwrap();
    assert_eq!(body["key_id"], hex(&omg_protocol::key_id(&maker_key)));
    let (status, body) = call(
        &app,
        admin_post("/v1/makers/trust", json!({"maker_public_key": "AAAA"})),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_maker_public_key"))
    );

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
    for (method, path) in ROUTES {
        let described = format!("{path}:\n    {}:", method.to_lowercase());
        assert!(text.contains(&described), "{described}");
    }
}

/// `/metrics`, `/healthz` and `/readyz` answer without the admin token; the metrics count
/// each activation by result and reason and time each request by route, and hold no device
/// identity or token.
fn metrics_and_health(backend: Backend) {
    let mut f = fixture_on(backend, "metrics", 20, &policy(5));
    let app = router_with(f.service.clone(), config(Some("s3cret")));
    let device = f.enrolled_device();
    let sqlite = f.service.store().path().is_some();
    let (text, token) = block_on(async {
        let (_, body) = call(&app, post("/v1/challenge", Value::Null)).await;
        let nonce = base64::decode(body["nonce"].as_str().unwrap()).unwrap();
        let token = device.token_with(&nonce, MEASUREMENT);
        let granted = call(
            &app,
            post("/v1/activate", activate_body(&device, &token, 1)),
        )
        .await;
        assert_eq!(granted.0, StatusCode::OK);
        let replayed = call(
            &app,
            post("/v1/activate", activate_body(&device, &token, 1)),
        )
        .await;
        assert_eq!(replayed.1["reason"], "reused_nonce");
        let malformed = call(&app, post("/v1/activate", json!({"token": "x"}))).await;
        assert_eq!(malformed.1["reason"], "invalid_json");
        for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
            let (code, body) = call(&app, Request::get(path).body(Body::empty()).unwrap()).await;
            assert_eq!(
                (code, body["status"].as_str()),
                (StatusCode::OK, Some(status))
            );
        }
        // The admin API still wants its token.
        let (code, _) = call(
            &app,
            Request::get("/v1/devices").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let resp = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (String::from_utf8(bytes.to_vec()).unwrap(), token)
    });
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(
        value(r#"omg_activations_total{result="granted",reason="none"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"omg_activations_total{result="refused",reason="reused_nonce"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"omg_activations_total{result="bad_request",reason="invalid_json"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"omg_http_request_duration_seconds_count{method="POST",route="/v1/activate",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"omg_http_request_duration_seconds_count{method="POST",route="/v1/activate",status="403"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"omg_http_request_duration_seconds_count{method="GET",route="/v1/devices",status="401"}"#
        ),
        Some(1.0)
    );
    // SQLite commits in groups (the granted activation and the refusal's audit at least);
    // PostgreSQL has no group commit to report.
    let batches = value("omg_store_commit_batch_size_count");
    if sqlite {
        assert!(batches.is_some_and(|n| n >= 2.0), "{text}");
    } else {
        assert_eq!(batches, None);
    }
    let ueid: String = device.ueid().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&ueid) && !text.contains(&base64::encode(&token)[..40]));
    assert!(text.ends_with("# EOF\n"));
}

on_both_backends!(
    challenge_activate_refusal_and_limits,
    admin_endpoints,
    metrics_and_health
);

/// A runtime with `workers` threads and a listener on a free loopback port.
fn loopback(
    workers: usize,
) -> (
    tokio::runtime::Runtime,
    tokio::net::TcpListener,
    std::net::SocketAddr,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    (rt, listener, addr)
}

#[test]
fn serve_on_loopback() {
    let f = fixture("serve", 22, &policy(5));
    let (rt, listener, addr) = loopback(1);
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

// --- Hostile clients ----------------------------------------------------------------------

/// A served router on a loopback port of its own runtime (dropped with the runtime).
struct Served {
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn serve_with(f: &Fixture, config: ApiConfig, header_timeout: Duration) -> Served {
    let (rt, listener, addr) = loopback(2);
    let app = router_with(f.service.clone(), config);
    rt.spawn(serve_router_with(listener, app, None, header_timeout));
    Served { addr, _rt: rt }
}

/// Sends `raw` and reads the answer until the server closes the connection (or `wait`).
fn exchange(addr: std::net::SocketAddr, raw: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"))
}

/// Every route, and one that does not exist.
fn routes_and_a_missing_one() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.into_iter().chain([("POST", "/v1/no-such-route")])
}

/// Every route refuses a declared body over the limit with 413 before reading it (the
/// client sends only the headers), and a chunked body as soon as it passes the limit.
#[test]
fn oversized_bodies_are_refused_on_every_route_without_reading_them() {
    let f = fixture("oversized", 30, &policy(5));
    let served = serve_with(&f, config(Some("s3cret")), Duration::from_secs(5));
    for (method, path) in routes_and_a_missing_one() {
        let start = Instant::now();
        let answer = exchange(
            served.addr,
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                1 << 30
            )
            .as_bytes(),
            Duration::from_secs(5),
        );
        assert_eq!(status_of(&answer), 413, "{method} {path}: {answer}");
        assert!(answer.contains("\"payload_too_large\""), "{answer}");
        assert!(start.elapsed() < Duration::from_secs(4), "{method} {path}");
    }
    // Chunked, never finished: 413 once 64 KiB are passed, while the client still "sends".
    for path in ["/v1/activate", "/v1/revoke/device", "/v1/revoke/model"] {
        let mut s = TcpStream::connect(served.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 4096, "a".repeat(4096));
        for _ in 0..20 {
            // The server may stop reading (and close) once it has answered.
            if s.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
        let mut out = vec![0; 4096];
        let n = s.read(&mut out).unwrap();
        let answer = String::from_utf8_lossy(&out[..n]);
        assert_eq!(status_of(&answer), 413, "{path}: {answer}");
    }
}

/// Clients that send their headers or their body byte by byte are cut off after the header
/// timeout or the body timeout, while a normal client is served at once.
#[test]
fn slow_clients_are_cut_off_and_others_still_served() {
    const SLOW: usize = 40;
    let f = fixture("slow", 31, &policy(5));
    let served = serve_with(
        &f,
        ApiConfig {
            body_timeout: Duration::from_secs(1),
            ..config(None)
        },
        Duration::from_secs(1),
    );
    let addr = served.addr;
    let start = Instant::now();
    let slow: Vec<_> = (0..SLOW)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                // Half send their headers slowly, half a declared body.
                let (head, drip): (String, &[u8]) = if i % 2 == 0 {
                    (
                        "POST /v1/challenge HTTP/1.1\r\nHost: x\r\n".into(),
                        b"X-Slow: yes\r\n",
                    )
                } else {
                    (
                        "POST /v1/activate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                            .into(),
                        b"{\"token\": \"",
                    )
                };
                s.write_all(head.as_bytes()).unwrap();
                let mut answer = Vec::new();
                for byte in drip.iter().cycle() {
                    if start.elapsed() > Duration::from_secs(10) {
                        panic!("slow client {i} still connected after 10 s");
                    }
                    if s.write_all(&[*byte]).is_err() {
                        break;
                    }
                    let mut buf = [0; 1024];
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => answer.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                (
                    i,
                    start.elapsed(),
                    String::from_utf8_lossy(&answer).into_owned(),
                )
            })
        })
        .collect();

    // Meanwhile a normal client is served promptly, more than once.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let t = Instant::now();
        let answer = exchange(
            addr,
            b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        );
        assert_eq!(status_of(&answer), 200, "{answer}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }

    for handle in slow {
        let (i, closed_after, answer) = handle.join().unwrap();
        assert!(
            closed_after < Duration::from_secs(4),
            "slow client {i} cut off only after {closed_after:?}"
        );
        if i % 2 == 1 {
            // A slow body is answered 408 before the connection is closed.
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.contains("\"body_timeout\""), "{answer}");
        }
    }
}

/// Past its burst, one client address is answered 429 with `Retry-After`; the limit refills
/// with time.
#[test]
fn request_floods_are_rate_limited_per_client() {
    let f = fixture("flood", 32, &policy(5));
    let served = serve_with(
        &f,
        ApiConfig {
            rate_limit: Some(RateLimit {
                per_second: 2,
                burst: 5,
            }),
            ..config(None)
        },
        Duration::from_secs(5),
    );
    let get = b"GET /v1/openapi.yaml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let statuses: Vec<u16> = (0..8)
        .map(|_| status_of(&exchange(served.addr, get, Duration::from_secs(5))))
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let answer = exchange(served.addr, get, Duration::from_secs(5));
    assert_eq!(status_of(&answer), 429);
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\"rate_limited\""), "{answer}");
    // Two tokens a second: after 0.6 s one request passes again.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        status_of(&exchange(served.addr, get, Duration::from_secs(5))),
        200
    );
}

/// Malformed JSON, wrong types, bad base64 and malformed CBOR / COSE inside the token: 400
/// with a stable reason code, and nothing internal in the message.
#[test]
fn malformed_requests_get_400_without_internal_details() {
    let mut f = fixture("malformed", 33, &policy(5));
    let device = f.enrolled_device();
    let app = router_with(f.service.clone(), config(Some("s3cret")));
    let good = activate_body(&device, &device.token_with(&[7; 32], MEASUREMENT), 1);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body.to_string()
    };
    let cose = |bytes: &[u8]| with("token", json!(base64::encode(bytes)));
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "invalid_json"),
        ("{".into(), "invalid_json"),
        ("[]".into(), "invalid_json"),
        ("null".into(), "invalid_json"),
        ("\"token\"".into(), "invalid_json"),
        ("{\"token\": \"\u{0}\"".into(), "invalid_json"),
        (with("token", json!(42)), "invalid_json"),
        (with("version", json!(-1)), "invalid_json"),
        (with("version", json!(1u64 << 32)), "invalid_json"),
        (with("version", json!("1")), "invalid_json"),
        (with("model_id", json!(null)), "invalid_json"),
        (with("extra", json!(1)), "invalid_json"),
        (with("token", json!("not base64!")), "invalid_base64"),
        (with("device_public_key", json!("AAA")), "invalid_base64"),
        (with("enclave_public_key", json!("====")), "invalid_base64"),
        (
            with("device_public_key", json!(base64::encode([4; 10]))),
            "malformed_request",
        ),
        (
            with("enclave_public_key", json!(base64::encode([1; 31]))),
            "malformed_request",
        ),
        (with("model_id", json!("")), "malformed_request"),
        (
            with("model_id", json!("m".repeat(129))),
            "malformed_request",
        ),
        (cose(b""), "malformed_token"),
        (cose(&[0xd2]), "malformed_token"),
        (cose(&[0xd2, 0x84, 0x40, 0xa0, 0x40]), "malformed_token"),
        (cose(&[0xff; 64]), "malformed_token"),
        (cose(&[0x9f; 300]), "malformed_token"),
        (cose(&[0xd9, 0xd9, 0xf7, 0xd2, 0x84]), "malformed_token"),
        (with("endorsement", json!("not base64!")), "invalid_base64"),
        (with("endorsement", json!(7)), "invalid_json"),
        (
            with("endorsement", json!(base64::encode([0xd2, 0x84, 0x40]))),
            "malformed_endorsement",
        ),
    ];
    let admin_cases: Vec<(&str, String, &str)> = vec![
        ("/v1/revoke/device", "{\"ueid\": 5}".into(), "invalid_json"),
        (
            "/v1/revoke/device",
            "{\"ueid\": \"zz\"}".into(),
            "invalid_ueid",
        ),
        (
            "/v1/revoke/model",
            "{\"model_id\": \"m\"}".into(),
            "invalid_json",
        ),
        (
            "/v1/revoke/model",
            "{\"model_id\": \"\", \"version\": 1}".into(),
            "invalid_model_id",
        ),
        (
            "/v1/devices/enroll",
            "{\"device_public_key\": \"!\"}".into(),
            "invalid_base64",
        ),
        (
            "/v1/makers/trust",
            "{\"maker_public_key\": \"AAAA\"}".into(),
            "invalid_maker_public_key",
        ),
    ];
    block_on(async {
        let mut all: Vec<(&str, String, &str)> = cases
            .into_iter()
            .map(|(body, reason)| ("/v1/activate", body, reason))
            .collect();
        all.extend(admin_cases);
        for (path, body, reason) in all {
            let request = Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, "Bearer s3cret")
                .body(Body::from(body.clone()))
                .unwrap();
            let (status, answer) = call(&app, request).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path} {body:.80}: {answer}"
            );
            assert_eq!(answer["error"], "bad_request", "{body:.80}");
            assert_eq!(answer["reason"], reason, "{path} {body:.80}: {answer}");
            let message = answer["message"].as_str().unwrap();
            for leak in [
                "::", "SELECT", "sqlite", "SQLite", "/", "panicked", "Error", "line ",
            ] {
                assert!(!message.contains(leak), "{body:.80}: message {message:?}");
            }
        }
    });
}
