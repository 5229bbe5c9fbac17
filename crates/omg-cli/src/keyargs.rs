//! Keys given on the command line: signing key files, and public keys as files or hex.

use std::path::Path;

use anyhow::Result;
use omg_protocol::SigningKey;

use crate::files::read_limited;

/// Loads a signing key file (`vendor.key`, `maker.key`: the 32-byte P-256 scalar).
pub(crate) fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let bytes = zeroize::Zeroizing::new(read_limited(path, 64)?);
    SigningKey::from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a P-256 private key", path.display()))
}

/// The bytes of a key given on the command line as a file (of at most `limit` bytes) or as
/// the argument itself: raw when `is_key` accepts them, else decoded from hex (empty when
/// neither). The caller checks the result and says what it expected.
pub(crate) fn key_bytes(arg: &str, limit: u64, is_key: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>> {
    let path = Path::new(arg);
    let bytes = if path.exists() {
        read_limited(path, limit)?
    } else {
        arg.as_bytes().to_vec()
    };
    Ok(if is_key(&bytes) {
        bytes
    } else {
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| crate::device::parse_hex(text, "the device key").ok())
            .unwrap_or_default()
    })
}

/// A public key from the command line: a SEC1 key file (raw, as `attestation.pub` or
/// `maker.pub`, or hex text), or the key itself in hex.
pub(crate) fn public_key_arg(arg: &str) -> Result<Vec<u8>> {
    let is_sec1 = |b: &[u8]| omg_protocol::verifying_key_from_sec1(b).is_ok();
    let key = key_bytes(arg, 1024, is_sec1)?;
    if !is_sec1(&key) {
        anyhow::bail!("{arg} is neither a SEC1 public key file nor a SEC1 P-256 key in hex");
    }
    Ok(key)
}
