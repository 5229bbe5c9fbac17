//! Key material on disk: the vendor's signing key (`omg vendor keygen`) and the Linux backend's
//! platform identity (`omg device init`: a P-256 attestation key and a 256-bit hardware-unique
//! key). Secret files are created readable only by their owner and written atomically; an
//! existing identity is never replaced unless asked to (`--force`), so no key is lost by mistake.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use omg_protocol::keys::{generate_signing_key, key_id, public_key_sec1, ueid};
use omg_protocol::rand_core::TryRng;
use omg_vendor::OsRng;
use serde::Serialize;

use crate::files::{write_atomic, write_secret_atomic};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory for key files: `--dir`, else `$OMG_HOME/NAME`, else `$HOME/.local/share/omg/NAME`.
fn key_dir(dir: Option<PathBuf>, name: &str) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d);
    }
    if let Some(home) = std::env::var_os("OMG_HOME") {
        return Ok(PathBuf::from(home).join(name));
    }
    let home = std::env::var_os("HOME").context("neither --dir, OMG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/omg").join(name))
}

/// Refuses to overwrite existing key files unless `force`.
fn check_fresh(dir: &Path, files: &[&str], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    if let Some(f) = files.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        bail!(
            "{} already exists; keys are never replaced without --force",
            f.display()
        );
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

#[derive(Serialize)]
struct VendorKey {
    dir: String,
    public_key: String,
    key_id: String,
}

/// `omg vendor keygen`: `vendor.key` (the 32-byte P-256 scalar, owner-only) and `vendor.pub`
/// (SEC1 uncompressed public key, to hand out to devices and operators).
pub fn vendor_keygen(dir: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    let dir = key_dir(dir, "vendor")?;
    check_fresh(&dir, &["vendor.key", "vendor.pub"], force)?;
    create_private_dir(&dir)?;
    let key = generate_signing_key(&mut OsRng);
    let public = public_key_sec1(key.verifying_key());
    write_secret_atomic(&dir.join("vendor.key"), &key.to_bytes())?;
    write_atomic(&dir.join("vendor.pub"), &public)?;
    let out = VendorKey {
        dir: dir.display().to_string(),
        public_key: hex(&public),
        key_id: hex(&key_id(key.verifying_key())),
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("vendor signing key  {}/vendor.key (owner-only)", out.dir);
        println!("public key          {}/vendor.pub", out.dir);
        println!("key id              {}", out.key_id);
    }
    Ok(())
}

#[derive(Serialize)]
struct DeviceIdentity {
    dir: String,
    ueid: String,
    attestation_public_key: String,
}

/// `omg device init`: `attestation.key` (P-256 scalar) and `huk` (256 random bits), both
/// owner-only, and `attestation.pub`.
pub fn device_init(dir: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    let dir = key_dir(dir, "device")?;
    check_fresh(&dir, &["attestation.key", "attestation.pub", "huk"], force)?;
    create_private_dir(&dir)?;
    let key = generate_signing_key(&mut OsRng);
    let mut huk = zeroize::Zeroizing::new([0u8; 32]);
    OsRng.try_fill_bytes(huk.as_mut()).map_err(|e| match e {})?;
    let public = public_key_sec1(key.verifying_key());
    write_secret_atomic(&dir.join("huk"), huk.as_ref())?;
    write_secret_atomic(&dir.join("attestation.key"), &key.to_bytes())?;
    write_atomic(&dir.join("attestation.pub"), &public)?;
    let out = DeviceIdentity {
        dir: dir.display().to_string(),
        ueid: hex(&ueid(key.verifying_key())),
        attestation_public_key: hex(&public),
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "device identity     {} (attestation.key and huk owner-only)",
            out.dir
        );
        println!("UEID                {}", out.ueid);
        println!("attestation key     {}", out.attestation_public_key);
    }
    Ok(())
}
