//! `omg vendor serve --tls-cert --tls-key`: real HTTPS (TLS 1.3 and 1.2) with a self-signed
//! certificate, plain HTTP refused on the TLS port, and clear errors for bad certificate or key
//! files.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use support::{OMG, Server, TempDir, vendor_keygen};

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate DER, cert PEM, key PEM).
fn self_signed() -> (CertificateDer<'static>, String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    (
        certified.cert.der().clone(),
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
    )
}

fn connect(addr: &str) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    tcp
}

const CHALLENGE_REQUEST: &str = "POST /v1/challenge HTTP/1.1\r\nHost: localhost\r\n\
                                 Content-Length: 0\r\nConnection: close\r\n\r\n";

/// POST /v1/challenge over TLS restricted to `version`, trusting only `cert`; returns the
/// negotiated version and the whole response.
fn https_challenge(
    addr: &str,
    cert: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> (rustls::ProtocolVersion, String) {
    https_exchange(addr, cert, version, CHALLENGE_REQUEST)
}

/// Sends `request` (raw HTTP/1.1, `Connection: close`) over TLS restricted to `version`,
/// trusting only `cert`; returns the negotiated version and the whole response.
fn https_exchange(
    addr: &str,
    cert: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
    request: &str,
) -> (rustls::ProtocolVersion, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, connect(addr));
    tls.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    // The service closes the connection after the answer (Connection: close). A peer that
    // closes without close_notify shows up as UnexpectedEof after the full answer.
    if let Err(e) = tls.read_to_end(&mut response) {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    let negotiated = tls.conn.protocol_version().unwrap();
    (negotiated, String::from_utf8(response).unwrap())
}

/// Over TLS, the web console's session cookie is Secure (besides HttpOnly, SameSite=Strict).
#[test]
fn the_console_cookie_is_secure_over_tls() {
    let dir = TempDir::new("tls-console");
    let keys = vendor_keygen(&dir);
    let (cert, cert_pem, key_pem) = self_signed();
    std::fs::write(dir.path("cert.pem"), cert_pem).unwrap();
    std::fs::write(dir.path("key.pem"), key_pem).unwrap();
    std::fs::write(dir.path("admin-token"), "tls-console-token\n").unwrap();
    let server = Server::start(
        &dir.path("vendor.sqlite"),
        &keys,
        &[
            "--tls-cert",
            dir.path("cert.pem").to_str().unwrap(),
            "--tls-key",
            dir.path("key.pem").to_str().unwrap(),
            "--admin-token-file",
            dir.path("admin-token").to_str().unwrap(),
        ],
    );
    let body = "token=tls-console-token";
    let login = format!(
        "POST /console/login HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let (_, response) = https_exchange(&server.addr, &cert, &rustls::version::TLS13, &login);
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let cookie = response
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no session cookie: {response}"));
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Secure"] {
        assert!(cookie.split("; ").any(|p| p == flag), "{flag} in {cookie}");
    }
    server.kill();
}

#[test]
fn https_answers_and_plain_http_is_refused() {
    let dir = TempDir::new("tls");
    let keys = vendor_keygen(&dir);
    let (cert, cert_pem, key_pem) = self_signed();
    std::fs::write(dir.path("cert.pem"), cert_pem).unwrap();
    std::fs::write(dir.path("key.pem"), key_pem).unwrap();
    let server = Server::start(
        &dir.path("vendor.sqlite"),
        &keys,
        &[
            "--tls-cert",
            dir.path("cert.pem").to_str().unwrap(),
            "--tls-key",
            dir.path("key.pem").to_str().unwrap(),
        ],
    );
    assert!(
        server.banner.contains("listening on https://127.0.0.1:"),
        "{}",
        server.banner
    );

    for (version, expected) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let (negotiated, response) = https_challenge(&server.addr, &cert, version);
        assert_eq!(negotiated, expected);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"nonce\""), "{response}");
    }

    // Plain HTTP on the TLS port: the handshake fails and the connection is closed without an
    // HTTP answer (at most a TLS alert record comes back).
    let mut plain = connect(&server.addr);
    plain.write_all(CHALLENGE_REQUEST.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered on the TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "expected nothing or a TLS alert, got {answer:?}"
    );

    // The failed handshake did not disturb the service.
    let (_, response) = https_challenge(&server.addr, &cert, &rustls::version::TLS13);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.kill();
}

/// Runs `omg vendor serve` with TLS arguments that must be refused before it listens; returns
/// its stderr.
fn refused(dir: &TempDir, keys: &std::path::Path, tls_args: &[&str]) -> String {
    let out = Command::new(OMG)
        .args(["vendor", "serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path("vendor.sqlite"))
        .arg("--key-dir")
        .arg(keys)
        .args(tls_args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "accepted {tls_args:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn bad_certificate_or_key_files_are_refused_with_a_reason() {
    let dir = TempDir::new("tls-errors");
    let keys = vendor_keygen(&dir);
    let (_, cert_pem, key_pem) = self_signed();
    let (_, _, other_key_pem) = self_signed();
    let file = |name: &str, text: &str| {
        let path = dir.path(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let cert = file("cert.pem", &cert_pem);
    let key = file("key.pem", &key_pem);
    let other_key = file("other-key.pem", &other_key_pem);
    let garbage = file("garbage.pem", "not a certificate\n");
    let broken = file(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n",
    );
    let missing = dir.path("missing.pem").to_str().unwrap().to_string();

    let err = refused(&dir, &keys, &["--tls-cert", &cert]);
    assert!(err.contains("--tls-key"), "{err}");
    let err = refused(&dir, &keys, &["--tls-key", &key]);
    assert!(err.contains("--tls-cert"), "{err}");

    let err = refused(&dir, &keys, &["--tls-cert", &missing, "--tls-key", &key]);
    assert!(
        err.contains("cannot read") && err.contains("missing.pem"),
        "{err}"
    );
    let err = refused(&dir, &keys, &["--tls-cert", &cert, "--tls-key", &missing]);
    assert!(
        err.contains("cannot read") && err.contains("missing.pem"),
        "{err}"
    );

    let err = refused(&dir, &keys, &["--tls-cert", &garbage, "--tls-key", &key]);
    assert!(
        err.contains("no usable PEM certificate") && err.contains("BEGIN CERTIFICATE"),
        "{err}"
    );
    let err = refused(&dir, &keys, &["--tls-cert", &broken, "--tls-key", &key]);
    assert!(err.contains("no usable PEM certificate"), "{err}");
    let err = refused(&dir, &keys, &["--tls-cert", &cert, "--tls-key", &garbage]);
    assert!(err.contains("no usable PEM private key"), "{err}");
    // A key file holding only a certificate has no key either.
    let err = refused(&dir, &keys, &["--tls-cert", &cert, "--tls-key", &cert]);
    assert!(err.contains("no usable PEM private key"), "{err}");
    let err = refused(&dir, &keys, &["--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(err.contains("does not belong to the certificate"), "{err}");
    // Every message names the files.
    assert!(
        err.contains("cert.pem") && err.contains("other-key.pem"),
        "{err}"
    );
}
