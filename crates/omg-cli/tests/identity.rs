//! `omg device init` and `omg vendor keygen`: owner-only secret files, no silent replacement.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn omg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omg"))
        .args(args)
        .output()
        .unwrap()
}

/// A directory `name` not yet made, in a temporary directory removed when the test ends.
fn fresh_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let d = scratch.path().join(name);
    (scratch, d)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn device_init_creates_an_owner_only_identity_once() {
    let (_scratch, dir) = fresh_dir("device");
    let d = dir.to_str().unwrap();
    let first = json(&omg(&["device", "init", "--dir", d, "--json"]));
    assert_eq!(mode(&dir), 0o700);
    for (file, len, m) in [
        ("huk", 32, 0o600),
        ("attestation.key", 32, 0o600),
        ("attestation.pub", 65, 0o644),
    ] {
        let p = dir.join(file);
        assert_eq!(std::fs::read(&p).unwrap().len(), len, "{file}");
        assert_eq!(mode(&p), m, "{file}");
    }
    let ueid = first["ueid"].as_str().unwrap().to_string();
    assert_eq!(ueid.len(), 66);
    let huk = std::fs::read(dir.join("huk")).unwrap();

    let again = omg(&["device", "init", "--dir", d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(dir.join("huk")).unwrap(),
        huk,
        "a refused init must not touch the identity"
    );

    let forced = json(&omg(&["device", "init", "--dir", d, "--force", "--json"]));
    assert_ne!(forced["ueid"].as_str().unwrap(), ueid);
    assert_ne!(std::fs::read(dir.join("huk")).unwrap(), huk);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn vendor_keygen_writes_a_private_key_and_its_public_key() {
    let (_scratch, dir) = fresh_dir("vendor");
    let d = dir.to_str().unwrap();
    let out = json(&omg(&["vendor", "keygen", "--dir", d, "--json"]));
    assert_eq!(mode(&dir.join("vendor.key")), 0o600);
    let public = std::fs::read(dir.join("vendor.pub")).unwrap();
    assert_eq!(public.len(), 65);
    assert_eq!(public[0], 4, "SEC1 uncompressed point");
    let hex: String = public.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(out["public_key"].as_str().unwrap(), hex);
    assert_eq!(
        omg(&["vendor", "keygen", "--dir", d]).status.code(),
        Some(1)
    );
}
