//! `omg maker endorse`: a device maker vouches for a device's attestation key at manufacture,
//! with a COSE_Sign1 endorsement ([`omg_protocol::endorsement`]) stored beside the device
//! identity (`endorsement.cose`), which `omg provision` sends to the vendor service.

use std::path::{Path, PathBuf};

use anyhow::Result;
use omg_protocol::endorsement::Endorsement;
use omg_protocol::key_id;
use serde::Serialize;

use crate::files::write_atomic;
use crate::identity::hex;

#[derive(Serialize)]
struct Endorsed {
    file: String,
    device_public_key: String,
    maker_key_id: String,
    not_after: Option<u64>,
}

/// Where `omg maker endorse` writes.
pub(crate) enum Output {
    /// This file.
    File(PathBuf),
    /// `endorsement.cose` in this device directory (the default one if `None`).
    DeviceDir(Option<PathBuf>),
}

/// Signs an endorsement of `device_pub` (a SEC1 key file or hex) with the maker key in
/// `key`, valid until `not_after` (or for ever), and writes it atomically.
pub(crate) fn endorse(
    device_pub: &str,
    key: &Path,
    not_after: Option<u64>,
    output: Output,
    json: bool,
) -> Result<()> {
    let device_key: [u8; 65] = crate::keyargs::public_key_arg(device_pub)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{device_pub} is not a SEC1 uncompressed key"))?;
    let maker = crate::keyargs::load_signing_key(key)?;
    let bytes = Endorsement {
        device_public_key: device_key,
        maker_key_id: key_id(maker.verifying_key()),
        issued_at: crate::clock::unix_now(),
        not_after,
    }
    .sign(&maker)?;
    let file = match output {
        Output::File(file) => file,
        Output::DeviceDir(dir) => {
            crate::device::device_dir(dir)?.join(crate::device::ENDORSEMENT_FILE)
        }
    };
    write_atomic(&file, &bytes)?;
    let out = Endorsed {
        file: file.display().to_string(),
        device_public_key: hex(&device_key),
        maker_key_id: hex(&key_id(maker.verifying_key())),
        not_after,
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("endorsed device key {}", out.device_public_key);
        println!("by maker key id     {}", out.maker_key_id);
        println!("endorsement         {}", out.file);
    }
    Ok(())
}
