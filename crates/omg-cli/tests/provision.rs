//! The device side end to end, through the real binary: vendor keygen and package, the service,
//! device init, vendor enroll, provision, attest / verify-token, and offline runs; with the
//! refusals a user meets (device not enrolled, wrong measurement, input source not licensed,
//! another device, tampered files).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use support::{OMG, Server, TempDir, clip, enroll, ok, omg, vendor_keygen, vendor_package};

fn err(out: Output) -> String {
    assert!(!out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.lines().next().unwrap()).unwrap()
}

fn policy(dir: &TempDir, measurement: &str, extra: &str) -> String {
    let path = dir.path(&format!("policy-{}.toml", &measurement[..8]));
    std::fs::write(
        &path,
        format!(
            "allowed_measurements = [\"{measurement}\"]\nmax_devices = 1\nnot_after = 4102444800\n\
             output_policy = \"label_and_score\"\ninput_sources = [\"file\", \"stdin\"]\n{extra}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn provision_then_run_offline() {
    let dir = TempDir::new("provision");
    let home = dir.path("home");
    let keys = vendor_keygen(&dir);
    let vendor_pub = keys.join("vendor.pub");
    let db = dir.path("vendor.sqlite");

    let info = json(&ok(omg(&home, &["device", "init", "--json"])));
    let measurement = info["enclave_measurement"].as_str().unwrap().to_string();
    assert_eq!(measurement.len(), 64);
    // Package twice: one policy allows this enclave, one only another build.
    let pkg = dir.path("ms.omgpkg");
    let other = dir.path("other.omgpkg");
    let package = |policy: &str, model: &str, out: &Path| {
        vendor_package(
            &home,
            "micro_speech",
            Path::new(policy),
            &db,
            &keys,
            out,
            &["--model-id", model, "--json"],
        )
    };
    let packaged = json(&ok(package(
        &policy(&dir, &measurement, ""),
        "micro_speech",
        &pkg,
    )));
    assert_eq!(packaged["model_id"], "micro_speech");
    ok(package(
        &policy(&dir, &"ab".repeat(32), ""),
        "other",
        &other,
    ));
    // The same version again is refused and the existing package is kept.
    let again = err(package(
        &policy(&dir, &measurement, ""),
        "micro_speech",
        &dir.path("x"),
    ));
    assert!(again.contains("--model-version"), "{again}");
    assert!(!dir.path("x").exists());

    let server = Server::start(&db, &keys, &[]);
    let url = format!("http://{}", server.addr);
    let provision = |home: &Path, pkg: &Path| {
        omg(
            home,
            &[
                "provision",
                pkg.to_str().unwrap(),
                "--server",
                &url,
                "--vendor-key",
                vendor_pub.to_str().unwrap(),
                "--json",
            ],
        )
    };
    // Not enrolled yet: refused.
    let unknown = err(provision(&home, &pkg));
    assert!(unknown.contains("unknown_device"), "{unknown}");
    enroll(&home, &db);
    let provisioned = json(&ok(provision(&home, &pkg)));
    assert_eq!(provisioned["measurement"], measurement.as_str());
    let sealed = provisioned["sealed"].as_str().unwrap().to_string();
    assert!(Path::new(&sealed).exists());
    let refused = err(provision(&home, &other));
    assert!(refused.contains("wrong_measurement"), "{refused}");
    // A second device exceeds max_devices = 1.
    let home2 = dir.path("home2");
    ok(omg(&home2, &["device", "init"]));
    enroll(&home2, &db);
    let limit = err(provision(&home2, &pkg));
    assert!(limit.contains("device_limit_reached"), "{limit}");
    server.kill();

    // Offline from here: the service is gone.
    let run = |home: &Path, args: &[&str]| {
        let mut all = vec!["run", pkg.to_str().unwrap()];
        all.extend_from_slice(args);
        omg(home, &all)
    };
    let events = ok(run(&home, &["--wav", &clip("yes_en-us"), "--json"]));
    let e = json(&events);
    assert_eq!(
        (e["label"].as_str(), events.lines().count()),
        (Some("yes"), 1)
    );
    assert!(e["score"].is_u64() && e.get("scores").is_none(), "{e}");
    let no = ok(run(&home, &["--wav", &clip("no_en-gb"), "--json"]));
    assert_eq!(json(&no)["label"], "no");
    assert!(ok(run(&home, &["--wav", &clip("silence"), "--json"])).is_empty());
    // Standard input is licensed, the microphone is not.
    let raw: Vec<u8> = hound::WavReader::open(clip("yes_en-gb"))
        .unwrap()
        .samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect();
    let mut child = Command::new(OMG)
        .env("OMG_HOME", &home)
        .args(["run", pkg.to_str().unwrap(), "--stdin", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(json(&ok(out))["label"], "yes");
    // The licence does not allow the microphone: the enclave refuses it (omg-enclave's
    // phases test shows it on every build); a build without microphone support refuses --mic
    // before it launches an enclave.
    let mic = err(run(&home, &["--mic"]));
    if cfg!(feature = "mic") {
        assert!(mic.contains("input source mic is not allowed"), "{mic}");
    } else {
        assert!(mic.contains("without microphone support"), "{mic}");
    }

    // The sealed blob copied to another device does not open there.
    let copy = dir.path("home2/device/models");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::process::Command::new("cp")
        .args(["-r"])
        .arg(home.join("device/models"))
        .arg(&copy)
        .status()
        .unwrap();
    let stolen = err(run(&home2, &["--wav", &clip("yes_en-us")]));
    assert!(stolen.contains("decryption failed"), "{stolen}");
    // A tampered sealed blob or package is refused with a clear reason; the original still works.
    let blob = std::fs::read(&sealed).unwrap();
    let mut bad = blob.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    std::fs::write(&sealed, &bad).unwrap();
    assert!(err(run(&home, &["--wav", &clip("yes_en-us")])).contains("sealed blob"));
    std::fs::write(&sealed, &blob).unwrap();
    let original = std::fs::read(&pkg).unwrap();
    let mut bad = original.clone();
    let at = bad.len() - 100;
    bad[at] ^= 1;
    std::fs::write(&pkg, &bad).unwrap();
    assert!(err(run(&home, &["--wav", &clip("yes_en-us")])).contains("not provisioned"));
    std::fs::write(&pkg, &original).unwrap();
    ok(run(&home, &["--wav", &clip("yes_en-us")]));
}

#[test]
fn attest_and_verify_token() {
    let dir = TempDir::new("attest");
    let home = dir.path("home");
    let info = json(&ok(omg(&home, &["device", "init", "--json"])));
    let measurement = info["enclave_measurement"].as_str().unwrap();
    let nonce = "11".repeat(32);
    let token = dir.path("token.cbor");
    ok(omg(
        &home,
        &["attest", "--nonce", &nonce, "-o", token.to_str().unwrap()],
    ));
    let device_pub = home.join("device/attestation.pub");
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify-token",
            token.to_str().unwrap(),
            "--device-key",
            device_pub.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        omg(&home, &args)
    };
    let report = json(&ok(verify(&[
        "--measurement",
        measurement,
        "--nonce",
        &nonce,
    ])));
    assert_eq!(report["ueid"], info["ueid"]);
    assert_eq!(report["measurements"][0], measurement);
    assert!(err(verify(&["--nonce", &"22".repeat(32)])).contains("nonce differs"));
    assert!(err(verify(&["--measurement", &"00".repeat(32)])).contains("not an expected one"));
    // Hex on stdout verifies too; a flipped byte does not.
    let hex = ok(omg(&home, &["attest", "--nonce", &nonce]));
    std::fs::write(&token, hex.trim()).unwrap();
    ok(verify(&[]));
    let mut raw = std::fs::read(&token).unwrap();
    raw[40] = if raw[40] == b'0' { b'1' } else { b'0' };
    std::fs::write(&token, &raw).unwrap();
    assert!(err(verify(&[])).contains("does not verify"));
    // Another device's key does not verify it.
    let home2 = dir.path("home2");
    ok(omg(&home2, &["device", "init"]));
    ok(omg(
        &home,
        &["attest", "--nonce", &nonce, "-o", token.to_str().unwrap()],
    ));
    let other = omg(
        &home,
        &[
            "verify-token",
            token.to_str().unwrap(),
            "--device-key",
            home2.join("device/attestation.pub").to_str().unwrap(),
        ],
    );
    assert!(err(other).contains("does not verify"));
}

/// The endorsement path of the trust chain, through the binary: a device maker endorses a
/// device it made (`omg maker keygen`, `omg maker endorse --device-dir`); the vendor never
/// enrols it. Provisioning is refused as `untrusted_maker` until the vendor trusts that maker
/// (`omg vendor trust-maker`), then succeeds, and the service records the device with the
/// maker's key id.
#[test]
fn an_endorsed_device_is_provisioned_once_its_maker_is_trusted() {
    let dir = TempDir::new("endorsed");
    let home = dir.path("home");
    let keys = vendor_keygen(&dir);
    let db = dir.path("vendor.sqlite");
    let info = json(&ok(omg(&home, &["device", "init", "--json"])));
    let measurement = info["enclave_measurement"].as_str().unwrap().to_string();
    let pkg = dir.path("ms.omgpkg");
    ok(vendor_package(
        &home,
        "micro_speech",
        Path::new(&policy(&dir, &measurement, "")),
        &db,
        &keys,
        &pkg,
        &[],
    ));
    let maker = dir.path("maker");
    let made = json(&ok(omg(
        &home,
        &[
            "maker",
            "keygen",
            "--dir",
            maker.to_str().unwrap(),
            "--json",
        ],
    )));
    let maker_key_id = made["key_id"].as_str().unwrap().to_string();
    let device = home.join("device");
    let endorsed = json(&ok(omg(
        &home,
        &[
            "maker",
            "endorse",
            device.join("attestation.pub").to_str().unwrap(),
            "--key",
            maker.join("maker.key").to_str().unwrap(),
            "--device-dir",
            device.to_str().unwrap(),
            "--json",
        ],
    )));
    assert_eq!(endorsed["maker_key_id"], maker_key_id.as_str());
    assert!(device.join("endorsement.cose").exists());

    let server = Server::start(&db, &keys, &[]);
    let provision = || {
        omg(
            &home,
            &[
                "provision",
                pkg.to_str().unwrap(),
                "--server",
                &format!("http://{}", server.addr),
                "--vendor-key",
                keys.join("vendor.pub").to_str().unwrap(),
            ],
        )
    };
    let untrusted = err(provision());
    assert!(untrusted.contains("untrusted_maker"), "{untrusted}");
    let trusted = json(&ok(omg(
        &home,
        &[
            "vendor",
            "trust-maker",
            "--db",
            db.to_str().unwrap(),
            maker.join("maker.pub").to_str().unwrap(),
            "--json",
        ],
    )));
    assert_eq!(trusted["key_id"], maker_key_id.as_str());
    ok(provision());
    server.kill();
    let devices = omg_vendor::Store::open(&db)
        .unwrap()
        .list_devices()
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(
        devices[0].endorsed_by.as_deref(),
        Some(maker_key_id.as_str())
    );
    assert_eq!(devices[0].enrolled_at, None);
    ok(omg(
        &home,
        &["run", pkg.to_str().unwrap(), "--wav", &clip("yes_en-us")],
    ));
}
