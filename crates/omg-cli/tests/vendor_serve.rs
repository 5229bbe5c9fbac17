//! `omg vendor serve` end to end: starts on a loopback port, answers a challenge, refuses a
//! malformed activation, keeps the admin API off without a token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn request(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_service_answers_on_loopback() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let keys = dir.join("keys");
    let keygen = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["vendor", "keygen", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["vendor", "serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("vendor.sqlite"))
        .arg("--key-dir")
        .arg(&keys)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();

    let challenge = request(&addr, "POST", "/v1/challenge", "");
    let activate = request(&addr, "POST", "/v1/activate", "{}");
    let devices = request(&addr, "GET", "/v1/devices", "");
    child.kill().unwrap();
    child.wait().unwrap();

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

/// `request` with extra header lines (each ending in `\r\n`); returns the status line.
fn request_with(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn the_service_logs_one_line_per_request_without_secrets() {
    const ADMIN_TOKEN: &str = "admin-token-never-logged";
    const QUERY_SECRET: &str = "query-secret-never-logged";
    const BODY_SECRET: &str = "body-secret-never-logged";
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let keys = dir.join("keys");
    let keygen = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["vendor", "keygen", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    std::fs::write(dir.join("admin-token"), ADMIN_TOKEN).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(["vendor", "serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("vendor.sqlite"))
        .arg("--key-dir")
        .arg(&keys)
        .arg("--admin-token-file")
        .arg(dir.join("admin-token"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();

    let bearer = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let statuses = [
        request_with(&addr, "POST", "/v1/challenge", "", ""),
        request_with(&addr, "GET", "/v1/devices", &bearer, ""),
        request_with(
            &addr,
            "GET",
            &format!("/v1/devices?token={QUERY_SECRET}"),
            &format!("Authorization: Bearer {QUERY_SECRET}\r\n"),
            "",
        ),
        request_with(
            &addr,
            "POST",
            "/v1/activate",
            &bearer,
            &format!("{{\"token\": \"{BODY_SECRET}\"}}"),
        ),
        request_with(&addr, "GET", &format!("/v1/{QUERY_SECRET}"), "", ""),
    ];
    child.kill().unwrap();
    child.wait().unwrap();
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
