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
