//! The device identity of the Linux backend: `attestation.key` (the P-256 attestation key's
//! 32-byte scalar), `attestation.pub` (its SEC1 public key, to hand out) and `huk` (256 random
//! bits, the hardware-unique key stand-in). Secrets are owner-only files in an owner-only
//! directory, written atomically; an identity is never replaced unless asked to.

use std::io;
use std::path::{Path, PathBuf};

use omg_protocol::rand_core::TryRng;
use omg_protocol::{OsRng, SigningKey, generate_signing_key, public_key_sec1, ueid};
use zeroize::Zeroizing;

use crate::fs::{create_private_dir, read_limited, refuse_existing, write_atomic};

/// File name of the attestation private key.
pub const ATTESTATION_KEY: &str = "attestation.key";
/// File name of the attestation public key.
pub const ATTESTATION_PUB: &str = "attestation.pub";
/// File name of the hardware-unique key.
pub const HUK: &str = "huk";

/// A device's platform secrets, loaded from their directory.
pub struct DeviceIdentity {
    dir: PathBuf,
    key: SigningKey,
    huk: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl DeviceIdentity {
    /// Makes a new identity in `dir` (created owner-only). Refuses to replace existing key
    /// files unless `force`.
    pub fn create(dir: &Path, force: bool) -> io::Result<Self> {
        refuse_existing(dir, &[ATTESTATION_KEY, ATTESTATION_PUB, HUK], force)?;
        create_private_dir(dir).map_err(|e| with_path(dir, e))?;
        let key = generate_signing_key(&mut OsRng::default());
        let mut huk = Zeroizing::new([0u8; 32]);
        let Ok(()) = OsRng::default().try_fill_bytes(huk.as_mut());
        for (name, data, mode) in [
            (HUK, &huk[..], 0o600),
            (ATTESTATION_KEY, &key.to_bytes()[..], 0o600),
            (
                ATTESTATION_PUB,
                &public_key_sec1(key.verifying_key())[..],
                0o644,
            ),
        ] {
            let path = dir.join(name);
            write_atomic(&path, data, mode).map_err(|e| with_path(&path, e))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            huk,
        })
    }

    /// Loads the identity in `dir`.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            read_limited(&path, 64)
                .map(Zeroizing::new)
                .map_err(|e| with_path(&path, e))
        };
        let invalid = |name: &str, what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {what}", dir.join(name).display()),
            )
        };
        let key = SigningKey::from_slice(&read(ATTESTATION_KEY)?)
            .map_err(|_| invalid(ATTESTATION_KEY, "not a P-256 private key"))?;
        let huk_bytes = read(HUK)?;
        let huk: [u8; 32] = huk_bytes
            .as_slice()
            .try_into()
            .map_err(|_| invalid(HUK, "not 32 bytes"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            huk: Zeroizing::new(huk),
        })
    }

    /// The directory the identity lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The attestation key.
    pub fn attestation_key(&self) -> &SigningKey {
        &self.key
    }

    /// The SEC1 public attestation key.
    pub fn public_key(&self) -> [u8; 65] {
        public_key_sec1(self.key.verifying_key())
    }

    /// The device's UEID.
    pub fn ueid(&self) -> [u8; 33] {
        ueid(self.key.verifying_key())
    }

    /// The hardware-unique key.
    pub(crate) fn huk(&self) -> &[u8; 32] {
        &self.huk
    }
}
