//! Starting the enclave process from the CLI (the embedded deployment: this process is both
//! the host app and the platform's launcher).

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use omg_linux::DeviceIdentity;
use omg_linux::launcher::{EnclaveImage, RunningEnclave, launch};

/// The enclave image, read and measured: `$OMG_ENCLAVE_IMAGE`, else `omg-enclave` beside this
/// executable.
pub fn image() -> Result<EnclaveImage> {
    let path = EnclaveImage::locate().context("cannot locate the enclave image")?;
    image_at(&path)
}

/// The enclave image at `path`, read and measured.
pub fn image_at(path: &Path) -> Result<EnclaveImage> {
    EnclaveImage::load(path).with_context(|| {
        format!(
            "cannot read the enclave image {} (it is installed next to omg; from the sources: `cargo build --bin omg-enclave`)",
            path.display()
        )
    })
}

/// Loads the device identity in `dir`.
pub fn identity(dir: &Path) -> Result<DeviceIdentity> {
    DeviceIdentity::load(dir).with_context(|| {
        format!(
            "no device identity in {} (run `omg device init` first)",
            dir.display()
        )
    })
}

/// Launches the enclave for the device in `dir`, with `audio` as its audio descriptor.
pub fn start(dir: &Path, audio: Option<OwnedFd>) -> Result<RunningEnclave> {
    let image = image()?;
    launch(&image, identity(dir)?, audio).context("cannot launch the enclave")
}
