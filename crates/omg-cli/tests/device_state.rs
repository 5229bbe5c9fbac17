//! What a device keeps per model, through the real binary: the inference quota holds when
//! sessions run at once and unused reservations come back; a second vendor shipping the same
//! model id cannot touch the first vendor's state.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{
    Device, Ended, OMG, Server, TempDir, clip, ended, ok, omg, provisioned_with, silence,
    vendor_keygen,
};

fn run(device: &Device, wav: &Path) -> Command {
    let mut c = Command::new(OMG);
    c.env("OMG_HOME", &device.home)
        .arg("run")
        .arg(&device.package)
        .arg("--wav")
        .arg(wav);
    c
}

/// Three runs of a one-second clip (51 classifications each, with the second of silence
/// after it) fit in a quota of 200: each session gives back what it did not use of its block.
#[test]
fn short_runs_give_back_what_they_did_not_use() {
    let device = provisioned_with(
        TempDir::new("quota-return"),
        "micro_speech",
        "inference_quota = 200\n",
    );
    let clip = PathBuf::from(clip("yes_en-us"));
    let mut total = 0;
    for _ in 0..3 {
        let out = run(&device, &clip).output().unwrap();
        let end = ended(&out);
        assert!(!end.refused, "{end:?}");
        total += end.classifications;
    }
    assert_eq!(total, 3 * 51);
}

/// Four `omg run` processes at once against a quota smaller than their total demand: together
/// they never classify more than the quota, each either finishes or is refused with the
/// quota message, and none fails on its counter files.
#[test]
fn parallel_embedded_runs_stay_within_the_quota() {
    const QUOTA: u64 = 600;
    let device = provisioned_with(
        TempDir::new("quota-parallel"),
        "micro_speech",
        &format!("inference_quota = {QUOTA}\n"),
    );
    // 4 s of audio and the second after it: about 250 classifications per session.
    let wav = silence(&device.dir, 4);
    let children: Vec<_> = (0..4)
        .map(|_| {
            run(&device, &wav)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ends: Vec<Ended> = children
        .into_iter()
        .map(|c| ended(&c.wait_with_output().unwrap()))
        .collect();
    let total: u64 = ends.iter().map(|e| e.classifications).sum();
    assert!(total <= QUOTA, "{total} classifications: {ends:?}");
    assert!(ends.iter().any(|e| e.refused), "{ends:?}");
    assert!(ends.iter().any(|e| !e.refused), "{ends:?}");
    // The quota is used up to what the sessions made, and nothing more is granted.
    let last = ended(&run(&device, &wav).output().unwrap());
    assert!(last.refused, "{last:?}");
    assert!(total + last.classifications <= QUOTA);
}

/// Vendor B ships a package with vendor A's model id and a huge revocation epoch, and it is
/// provisioned on A's device: A's model still runs, and A's vendor key and sealed blob are
/// untouched.
#[test]
fn another_vendor_cannot_touch_a_models_state() {
    let a = provisioned_with(TempDir::new("vendor-a"), "micro_speech", "");
    let models = a.home.join("device/models");
    let snapshot = || {
        let mut all = Vec::new();
        for d in std::fs::read_dir(&models).unwrap().flatten() {
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                all.push((f.path(), std::fs::read(f.path()).unwrap()));
            }
        }
        all.sort();
        all
    };
    let before = snapshot();
    assert_eq!(before.len(), 2, "{before:?}");

    let b = TempDir::new("vendor-b");
    let keys = vendor_keygen(&b);
    let info: serde_json::Value =
        serde_json::from_str(&ok(omg(&a.home, &["device", "info", "--json"]))).unwrap();
    let policy = b.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allowed_measurements = [{}]\nmax_devices = 5\nnot_after = 4102444800\n\
             output_policy = \"all_scores\"\nrevocation_epoch = 4000000000\n",
            info["enclave_measurement"]
        ),
    )
    .unwrap();
    let db = b.path("vendor.sqlite");
    let package = b.path("same-id.omgpkg");
    ok(support::vendor_package(
        &a.home,
        "micro_speech",
        &policy,
        &db,
        &keys,
        &package,
        &["--model-id", "micro_speech"],
    ));
    support::enroll(&a.home, &db);
    let server = Server::start(&db, &keys, &[]);
    ok(omg(
        &a.home,
        &[
            "provision",
            package.to_str().unwrap(),
            "--server",
            &format!("http://{}", server.addr),
            "--vendor-key",
            keys.join("vendor.pub").to_str().unwrap(),
        ],
    ));
    server.kill();

    // B's model has a directory of its own; A's files are as they were.
    let after = snapshot();
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(before.iter().all(|f| after.contains(f)));
    // Both models run, each with its own vendor's key.
    let yes = clip("yes_en-us");
    for pkg in [&a.package, &package] {
        let events = ok(omg(
            &a.home,
            &["run", pkg.to_str().unwrap(), "--wav", &yes, "--json"],
        ));
        assert!(events.contains("\"yes\""), "{events}");
    }
}
