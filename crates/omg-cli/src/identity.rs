//! Signing keys on disk: the vendor's (`omg vendor keygen`) and a device maker's (`omg maker
//! keygen`); the device identity is omg-linux's. The secret file is created readable only by
//! its owner and written atomically; an existing key is never replaced unless asked to
//! (`--force`), so no key is lost by mistake.

use std::path::PathBuf;

use anyhow::{Context, Result};
use omg_protocol::OsRng;
use omg_protocol::keys::{generate_signing_key, key_id, public_key_sec1};
use serde::Serialize;

use crate::files::{write_atomic, write_secret_atomic};

/// Lowercase hex of `bytes`.
pub use omg_protocol::hex::encode as hex;

/// The directory for key files: `--dir`, else `$OMG_HOME/NAME`, else `$HOME/.local/share/omg/NAME`.
pub fn key_dir(dir: Option<PathBuf>, name: &str) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d);
    }
    if let Some(home) = std::env::var_os("OMG_HOME") {
        return Ok(PathBuf::from(home).join(name));
    }
    let home = std::env::var_os("HOME").context("neither --dir, OMG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/omg").join(name))
}

#[derive(Serialize)]
struct NewKey {
    dir: String,
    public_key: String,
    key_id: String,
}

/// `omg vendor keygen`: `vendor.key` (the 32-byte P-256 scalar, owner-only) and `vendor.pub`
/// (SEC1 uncompressed public key, to hand out to devices and operators).
#[cfg(feature = "vendor")]
pub fn vendor_keygen(dir: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    keygen("vendor", dir, force, json)
}

/// `omg maker keygen`: a device maker's `maker.key` (owner-only) and `maker.pub` (to hand to
/// the vendors that are to trust its endorsements).
pub fn maker_keygen(dir: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    keygen("maker", dir, force, json)
}

/// `ROLE.key` and `ROLE.pub` in `dir` (default `key_dir(None, ROLE)`).
fn keygen(role: &str, dir: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    let dir = key_dir(dir, role)?;
    let (secret, public_name) = (format!("{role}.key"), format!("{role}.pub"));
    omg_linux::fs::refuse_existing(&dir, &[&secret, &public_name], force)?;
    omg_linux::fs::create_private_dir(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let key = generate_signing_key(&mut OsRng::default());
    let public = public_key_sec1(key.verifying_key());
    write_secret_atomic(&dir.join(&secret), &key.to_bytes())?;
    write_atomic(&dir.join(&public_name), &public)?;
    let out = NewKey {
        dir: dir.display().to_string(),
        public_key: hex(&public),
        key_id: hex(&key_id(key.verifying_key())),
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{:<20}{}/{secret} (owner-only)",
            format!("{role} signing key"),
            out.dir
        );
        println!("public key          {}/{public_name}", out.dir);
        println!("key id              {}", out.key_id);
    }
    Ok(())
}
