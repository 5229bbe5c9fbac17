//! `omg vendor serve` end to end: starts on a loopback port, answers a challenge, refuses a
//! malformed activation, keeps the admin API off without a token.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{Server, TempDir, vendor_keygen};

/// Sends one HTTP/1.1 request with `headers` (extra header lines, each ending in `\r\n`) and
/// returns the whole answer.
fn request_with(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn request(addr: &str, method: &str, path: &str, body: &str) -> String {
    request_with(addr, method, path, "", body)
}

#[test]
fn the_service_answers_on_loopback() {
    let dir = TempDir::new("vendor-serve");
    let keys = vendor_keygen(&dir);
    let server = Server::start(&dir.path("vendor.sqlite"), &keys, &[]);
    let addr = server.addr.clone();

    let challenge = request(&addr, "POST", "/v1/challenge", "");
    let activate = request(&addr, "POST", "/v1/activate", "{}");
    let devices = request(&addr, "GET", "/v1/devices", "");
    server.kill();

    assert!(challenge.starts_with("HTTP/1.1 200"), "{challenge}");
    assert!(challenge.contains("\"nonce\""), "{challenge}");
    assert!(
        activate.starts_with("HTTP/1.1 400") && activate.contains("invalid_json"),
        "{activate}"
    );
    assert!(
        devices.starts_with("HTTP/1.1 403") && devices.contains("admin_api_disabled"),
        "{devices}"
    );
}

#[test]
fn the_service_logs_one_line_per_request_without_secrets() {
    const ADMIN_TOKEN: &str = "admin-token-never-logged";
    const QUERY_SECRET: &str = "query-secret-never-logged";
    const BODY_SECRET: &str = "body-secret-never-logged";
    let dir = TempDir::new("vendor-log");
    let keys = vendor_keygen(&dir);
    let token_file = dir.path("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let (server, mut stderr) = Server::start_logged(
        &dir.path("vendor.sqlite"),
        &keys,
        &["--admin-token-file", token_file.to_str().unwrap()],
    );
    let addr = server.addr.clone();
    // The status line of each answer.
    let request_with = |method: &str, path: &str, headers: &str, body: &str| {
        let answer = request_with(&addr, method, path, headers, body);
        answer.lines().next().unwrap_or_default().to_owned()
    };

    let bearer = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let statuses = [
        request_with("POST", "/v1/challenge", "", ""),
        request_with("GET", "/v1/devices", &bearer, ""),
        request_with(
            "GET",
            &format!("/v1/devices?token={QUERY_SECRET}"),
            &format!("Authorization: Bearer {QUERY_SECRET}\r\n"),
            "",
        ),
        request_with(
            "POST",
            "/v1/activate",
            &bearer,
            &format!("{{\"token\": \"{BODY_SECRET}\"}}"),
        ),
        request_with("GET", &format!("/v1/{QUERY_SECRET}"), "", ""),
    ];
    server.kill();
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();

    let expected = [
        ("method=POST route=/v1/challenge status=200", "HTTP/1.1 200"),
        ("method=GET route=/v1/devices status=200", "HTTP/1.1 200"),
        ("method=GET route=/v1/devices status=401", "HTTP/1.1 401"),
        ("method=POST route=/v1/activate status=400", "HTTP/1.1 400"),
        ("method=GET route=(no route) status=404", "HTTP/1.1 404"),
    ];
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), expected.len(), "one line per request:\n{log}");
    for ((line, status), (logged, answered)) in lines.iter().zip(&statuses).zip(expected) {
        assert!(status.starts_with(answered), "{status} for {logged}");
        // "… INFO answered method=M route=R status=S ms=1.2"
        assert!(line.contains(" INFO answered "), "{line}");
        let (_, request) = line
            .split_once(logged)
            .unwrap_or_else(|| panic!("{logged}: {line}"));
        let ms = request
            .strip_prefix(" ms=")
            .unwrap_or_else(|| panic!("{line}"));
        assert!(ms.parse::<f64>().is_ok_and(|ms| ms >= 0.0), "{line}");
    }
    for secret in [ADMIN_TOKEN, QUERY_SECRET, BODY_SECRET, "Bearer", "token="] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// `--log-format json`: one JSON object per request with its fields, and `/metrics`, `/healthz`
/// and `/readyz` answered without the admin token of the service.
#[test]
fn the_json_log_and_the_health_and_metrics_routes() {
    let dir = TempDir::new("vendor-json-log");
    let keys = vendor_keygen(&dir);
    let token_file = dir.path("admin-token");
    std::fs::write(&token_file, "a-token").unwrap();
    let (server, mut stderr) = Server::start_logged(
        &dir.path("vendor.sqlite"),
        &keys,
        &[
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    );
    let addr = server.addr.clone();
    let answers = [
        request(&addr, "GET", "/healthz", ""),
        request(&addr, "GET", "/readyz", ""),
        request(&addr, "POST", "/v1/activate", "{}"),
        request(&addr, "GET", "/metrics", ""),
    ];
    server.kill();
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();

    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 200") || answer.contains("invalid_json"));
    }
    assert!(answers[0].ends_with(r#"{"status":"ok"}"#), "{}", answers[0]);
    assert!(
        answers[1].ends_with(r#"{"status":"ready"}"#),
        "{}",
        answers[1]
    );
    assert!(
        answers[3]
            .contains(r#"omg_activations_total{result="bad_request",reason="invalid_json"} 1"#),
        "{}",
        answers[3]
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let logged: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            let f = &l["fields"];
            assert_eq!(l["level"], "INFO");
            assert!(f["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
            (
                f["method"].as_str().unwrap().to_owned(),
                f["route"].as_str().unwrap().to_owned(),
                f["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("POST", "/v1/activate", 400),
        ("GET", "/metrics", 200),
    ];
    assert_eq!(
        logged,
        expected.map(|(m, r, s)| (m.to_owned(), r.to_owned(), s)),
        "{log}"
    );
}
