//! The errors a new user meets in the first hour, through the real binary: each says what is
//! wrong and who must do what (a mistyped device directory, a WAV given as the package, a
//! package not provisioned here, in the embedded and the service mode), a policy that does not
//! list this enclave, an expired licence period, a microphone this build lacks, a WAV piped in
//! as raw samples, and the TLS mistakes of a self-made certificate.

mod support;

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use support::{
    Device, OMG, Server, TempDir, clip, enroll, ok, omg, provisioned, spawn_service, vendor_keygen,
};

/// Asserts that `out` failed and returns its standard error.
fn err(out: Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// `omg run` of `device`'s package with `args`.
fn run(device: &Device, args: &[&str]) -> Output {
    let mut all = vec!["run", device.package.to_str().unwrap()];
    all.extend_from_slice(args);
    omg(&device.home, &all)
}

/// A package of micro_speech for this device's enclave signed by another vendor key, which
/// the device never provisioned.
fn foreign_package(device: &Device) -> std::path::PathBuf {
    let info: serde_json::Value =
        serde_json::from_str(&ok(omg(&device.home, &["device", "info", "--json"]))).unwrap();
    let measurement = info["enclave_measurement"].as_str().unwrap();
    let other = TempDir::new("foreign-vendor");
    let keys = vendor_keygen(&other);
    let policy = other.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allowed_measurements = [\"{measurement}\"]\nmax_devices = 1\nnot_after = 4102444800\n"
        ),
    )
    .unwrap();
    let package = device.dir.path("foreign.omgpkg");
    ok(support::vendor_package(
        &device.home,
        "micro_speech",
        &policy,
        &other.path("vendor.sqlite"),
        &keys,
        &package,
        &[],
    ));
    package
}

/// A running `omg platform serve` for `device` (as this user); killed on drop.
struct Platform(Child, std::path::PathBuf);

impl Platform {
    fn start(device: &Device) -> Platform {
        let socket = device.dir.path("p.sock");
        let mut serve = Command::new(OMG);
        serve
            .args(["platform", "serve", "--dir"])
            .arg(device.home.join("device"))
            .arg("--socket")
            .arg(&socket);
        let (child, stderr, banner) = spawn_service(serve);
        assert!(banner.contains("serving the device"), "{banner:?}");
        std::thread::spawn(move || stderr.lines().for_each(drop));
        Platform(child, socket)
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_tells_apart_no_device_not_a_package_and_not_provisioned_and_who_must_act() {
    let device = provisioned(TempDir::new("first-run"), "micro_speech");
    let yes = clip("yes_en-us");

    // A mistyped --dir: no device there (not "no model is provisioned").
    let typo = device.dir.path("devcie");
    let e = err(run(
        &device,
        &["--wav", &yes, "--dir", typo.to_str().unwrap()],
    ));
    assert!(e.contains("there is no device in"), "{e}");
    assert!(e.contains("devcie") && e.contains("--dir"), "{e}");
    assert!(!e.contains("provision"), "{e}");

    // A WAV given as the package.
    let e = err(omg(&device.home, &["run", &yes, "--wav", &yes]));
    assert!(e.contains("is not an omg model package"), "{e}");
    assert!(!e.contains("provision"), "{e}");

    // A real package of a vendor this device never provisioned: the user must provision.
    let foreign = foreign_package(&device);
    let e = err(omg(
        &device.home,
        &["run", foreign.to_str().unwrap(), "--wav", &yes],
    ));
    assert!(e.contains("not provisioned on this device"), "{e}");
    assert!(e.contains("run `omg provision` first"), "{e}");

    // Through the platform service, the app is told to ask the platform's administrator.
    let platform = Platform::start(&device);
    let e = err(omg(
        &device.home,
        &[
            "run",
            foreign.to_str().unwrap(),
            "--wav",
            &yes,
            "--socket",
            platform.1.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("not provisioned on this device"), "{e}");
    assert!(
        e.contains("ask the platform's administrator to provision it"),
        "{e}"
    );
    assert!(!e.contains("omg provision"), "{e}");

    // Without microphone support, --mic is refused before any enclave starts: no ready line,
    // in the embedded mode as through the service (whose build decides).
    if cfg!(not(feature = "mic")) {
        for args in [
            vec!["--mic"],
            vec!["--mic", "--socket", platform.1.to_str().unwrap()],
        ] {
            let e = err(run(&device, &args));
            assert!(e.contains("without microphone support"), "{args:?}: {e}");
            assert!(!e.contains("ready in the enclave"), "{args:?}: {e}");
        }
    }
}

/// Runs `omg ARGS` with `input` on its standard input.
fn piped(home: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(OMG)
        .env("OMG_HOME", home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The refusal may close the pipe before all is written.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn a_wav_piped_as_raw_samples_is_refused_with_a_pointer_to_wav() {
    let device = provisioned(TempDir::new("first-stdin"), "micro_speech");
    let wav = std::fs::read(clip("yes_en-us")).unwrap();
    let package = device.package.to_str().unwrap();
    for args in [
        vec!["listen", "micro_speech", "--stdin"],
        vec!["run", package, "--stdin"],
    ] {
        let e = err(piped(&device.home, &args, &wav));
        assert!(e.contains("starts with a WAV header"), "{args:?}: {e}");
        assert!(e.contains("--wav"), "{args:?}: {e}");
        // The same clip as raw samples is heard.
        let out = ok(piped(
            &device.home,
            &[&args[..], &["--json"]].concat(),
            &support::clip_pcm("yes_en-us"),
        ));
        assert!(out.contains("\"yes\""), "{args:?}: {out}");
    }
}

#[test]
fn policy_mistakes_are_explained() {
    let dir = TempDir::new("first-policy");
    let home = dir.path("home");
    let keys = vendor_keygen(&dir);
    let db = dir.path("vendor.sqlite");
    let info: serde_json::Value =
        serde_json::from_str(&ok(omg(&home, &["device", "init", "--json"]))).unwrap();
    let measurement = info["enclave_measurement"].as_str().unwrap().to_string();
    let package = |policy_text: String, out: &str| {
        let policy = dir.path(&format!("{out}.toml"));
        std::fs::write(&policy, policy_text).unwrap();
        support::vendor_package(
            &home,
            "micro_speech",
            &policy,
            &db,
            &keys,
            &dir.path(out),
            &["--model-id", out],
        )
    };
    // A licence period that is already over: refused when packaging.
    let e = err(package(
        format!("allowed_measurements = [\"{measurement}\"]\nmax_devices = 1\nnot_after = 1000\n"),
        "expired",
    ));
    assert!(e.contains("not_after = 1000 is already past"), "{e}");
    assert!(!dir.path("expired").exists());

    // A policy without this device's measurement: the refusal names the one to list.
    let stranger = "ab".repeat(32);
    ok(package(
        format!(
            "allowed_measurements = [\"{stranger}\"]\nmax_devices = 1\nnot_after = 4102444800\n"
        ),
        "other",
    ));
    enroll(&home, &db);
    let server = Server::start(&db, &keys, &[]);
    let e = err(omg(
        &home,
        &[
            "provision",
            dir.path("other").to_str().unwrap(),
            "--server",
            &format!("http://{}", server.addr),
            "--vendor-key",
            keys.join("vendor.pub").to_str().unwrap(),
        ],
    ));
    assert!(e.contains("wrong_measurement"), "{e}");
    assert!(
        e.contains(&format!("this device's enclave measures {measurement}")),
        "{e}"
    );
    assert!(
        e.contains("omg device info") && e.contains("allowed_measurements"),
        "{e}"
    );
}

/// `omg provision` against `url`, trusting `ca_cert` if given; returns its standard error.
fn provision_against(dir: &TempDir, url: &str, ca_cert: Option<&Path>) -> String {
    let home = dir.path("home");
    if !home.join("device").exists() {
        ok(omg(&home, &["device", "init"]));
    }
    // The client fails at the first request, before the package matters.
    let package = dir.path("any.omgpkg");
    std::fs::write(&package, b"x").unwrap();
    let keys = dir.path("keys");
    let mut args = vec![
        "provision".to_string(),
        package.to_str().unwrap().to_string(),
        "--server".to_string(),
        url.to_string(),
        "--vendor-key".to_string(),
        keys.join("vendor.pub").to_str().unwrap().to_string(),
    ];
    if let Some(ca) = ca_cert {
        args.extend(["--ca-cert".to_string(), ca.to_str().unwrap().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    err(omg(&home, &args))
}

/// Writes a certificate for localhost/127.0.0.1 (a CA one, as `openssl req -x509` makes by
/// default, or an end-entity one) and its key; returns their paths.
fn certificate(dir: &TempDir, ca: bool) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let tag = if ca { "ca" } else { "leaf" };
    let (cert_path, key_path) = (
        dir.path(&format!("{tag}.pem")),
        dir.path(&format!("{tag}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[test]
fn tls_mistakes_are_explained_in_one_line() {
    let dir = TempDir::new("first-tls");
    let keys = vendor_keygen(&dir);
    let db = dir.path("vendor.sqlite");
    let tls = |cert: &Path, key: &Path| {
        Server::start(
            &db,
            &keys,
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        )
    };

    // A CA certificate as the server's, trusted with --ca-cert.
    let (ca, ca_key) = certificate(&dir, true);
    let server = tls(&ca, &ca_key);
    let url = format!("https://{}", server.addr);
    let e = provision_against(&dir, &url, Some(&ca));
    assert!(e.contains("is a CA certificate"), "{e}");
    assert!(e.contains("CA:FALSE"), "{e}");
    server.kill();

    // An end-entity certificate not trusted: use --ca-cert.
    let (leaf, leaf_key) = certificate(&dir, false);
    let server = tls(&leaf, &leaf_key);
    let url = format!("https://{}", server.addr);
    let e = provision_against(&dir, &url, None);
    assert!(
        e.contains("pass its certificate (or its CA's) with --ca-cert"),
        "{e}"
    );
    // With it, the TLS part works (the package is refused later, not the connection).
    let e = provision_against(&dir, &url, Some(&leaf));
    assert!(!e.contains("cannot reach the vendor service"), "{e}");
    // Another certificate given as --ca-cert.
    let e = provision_against(&dir, &url, Some(&ca));
    assert!(e.contains("not the --ca-cert given"), "{e}");
    server.kill();

    // https:// against a plain-HTTP service.
    let server = Server::start(&db, &keys, &[]);
    let e = provision_against(&dir, &format!("https://{}", server.addr), None);
    assert!(e.contains("did not answer in TLS"), "{e}");
    assert!(e.contains("http://"), "{e}");
}

/// Starts `omg platform serve` for the device of `home` on `socket` and waits for its startup
/// line.
fn platform_serve(home: &Path, socket: &Path) -> Child {
    let mut serve = Command::new(OMG);
    serve
        .env("OMG_HOME", home)
        .args(["platform", "serve", "--socket"])
        .arg(socket);
    let (child, _stderr, banner) = spawn_service(serve);
    assert!(banner.contains("serving the device"), "{banner:?}");
    child
}

#[test]
fn the_platform_service_makes_its_socket_directory_and_removes_the_socket_on_signals() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    let dir = TempDir::new("first-platform");
    let home = dir.path("home");
    ok(omg(&home, &["device", "init"]));
    for (signal, status) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        // A missing directory is made, searchable (not listable) by those who may connect.
        let run = dir.path("run");
        let socket = run.join("omg").join("platform.sock");
        std::fs::create_dir(&run).unwrap();
        let mut child = platform_serve(&home, &socket);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(socket.parent().unwrap()), 0o711, "{signal}");
        assert!(
            std::fs::symlink_metadata(&socket)
                .unwrap()
                .file_type()
                .is_socket()
        );
        assert_eq!(mode(&socket), 0o666, "{signal}");
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(exit.code(), Some(status), "{signal}: {exit:?}");
        assert!(!socket.exists(), "{signal} left the socket behind");
        assert!(
            !socket.parent().unwrap().exists(),
            "{signal} left the directory the service made"
        );

        // A directory that was there stays; only the socket goes.
        std::fs::create_dir(socket.parent().unwrap()).unwrap();
        let mut child = platform_serve(&home, &socket);
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(status), "{signal}");
        assert!(!socket.exists(), "{signal} left the socket behind");
        assert!(socket.parent().unwrap().is_dir());
        std::fs::remove_dir_all(&run).unwrap();
    }

    // A directory whose parent is missing is not guessed: the error says what to do.
    let missing = dir.path("no/such/dir/platform.sock");
    let e = err(omg(
        &home,
        &["platform", "serve", "--socket", missing.to_str().unwrap()],
    ));
    assert!(e.contains("its parent does not exist"), "{e}");
    assert!(!dir.path("no").exists());
}
