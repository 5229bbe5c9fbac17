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
        ("POST /v1/challenge 200", "HTTP/1.1 200"),
        ("GET /v1/devices 200", "HTTP/1.1 200"),
        ("GET /v1/devices 401", "HTTP/1.1 401"),
        ("POST /v1/activate 400", "HTTP/1.1 400"),
        ("GET (no route) 404", "HTTP/1.1 404"),
    ];
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), expected.len(), "one line per request:\n{log}");
    for ((line, status), (logged, answered)) in lines.iter().zip(&statuses).zip(expected) {
        assert!(status.starts_with(answered), "{status} for {logged}");
        // "… INFO METHOD ROUTE STATUS 1.2 ms"
        assert!(line.contains(" INFO "), "{line}");
        let (_, request) = line
            .split_once(logged)
            .unwrap_or_else(|| panic!("{logged}: {line}"));
        assert!(request.ends_with(" ms"), "{line}");
    }
    for secret in [ADMIN_TOKEN, QUERY_SECRET, BODY_SECRET, "Bearer", "token="] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
