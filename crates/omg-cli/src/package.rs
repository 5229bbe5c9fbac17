//! `omg vendor package`: a pipeline encrypted under a fresh content key and signed by the
//! vendor, registered (policy and content key) in the service database. A policy whose
//! `not_after` has already passed is refused: no device could activate the package.

use std::path::Path;

use anyhow::{Context, Result};
use omg_protocol::package::{MAX_MODEL_ID_LEN, Package, PackageHeader};
use omg_protocol::{ContentKey, OsRng};
use omg_vendor::{Policy, Store};
use serde::Serialize;

use crate::files::{read_limited, write_atomic};
use crate::identity::hex;
use crate::manifest;

/// What `omg vendor package` made.
#[derive(Serialize)]
struct Packaged {
    package: String,
    model_id: String,
    version: u32,
    bytes: usize,
    bundle_bytes: usize,
    vendor_key_id: String,
    database: String,
}

/// The `omg vendor package` options.
pub struct Options<'a> {
    /// Bundled pipeline name, directory or manifest.
    pub pipeline: &'a str,
    /// Policy TOML file.
    pub policy: &'a Path,
    /// Directory with vendor.key.
    pub key_dir: &'a Path,
    /// Service database (SQLite path or postgres:// URL).
    pub db: &'a str,
    /// Model id (default: the pipeline's name).
    pub model_id: Option<String>,
    /// Model version.
    pub version: u32,
    /// Output package path.
    pub output: &'a Path,
}

/// Packages `opts.pipeline`, registers it, then writes the package atomically.
pub fn run(opts: &Options<'_>, json: bool) -> Result<()> {
    let pipeline = manifest::Pipeline::load(opts.pipeline)?;
    let model_id = opts
        .model_id
        .clone()
        .unwrap_or_else(|| pipeline.manifest.name.clone());
    anyhow::ensure!(
        !model_id.is_empty() && model_id.len() <= MAX_MODEL_ID_LEN,
        "the model id must be 1..=128 bytes"
    );
    let policy_text = String::from_utf8(read_limited(opts.policy, 64 * 1024)?)
        .with_context(|| format!("{} is not UTF-8", opts.policy.display()))?;
    let policy =
        Policy::from_toml(&policy_text).with_context(|| format!("{}", opts.policy.display()))?;
    let now = crate::clock::unix_now();
    // The service refuses every activation past not_after: such a package could never run.
    anyhow::ensure!(
        now <= policy.not_after,
        "{}: not_after = {} is already past (now is {now}): no device could ever activate \
         this package; set a later expiry (seconds since the Unix epoch)",
        opts.policy.display(),
        policy.not_after
    );
    let vendor_key = crate::vendor::load_vendor_key(opts.key_dir)?;

    let bundle = crate::bundle::of(&pipeline)?
        .to_bytes()
        .context("cannot encode the pipeline bundle")?;
    let bundle = zeroize::Zeroizing::new(bundle);
    let content_key = ContentKey::generate(&mut OsRng::default());
    let header = PackageHeader::new(&model_id, opts.version, now, vendor_key.verifying_key());
    let package = Package::seal(
        &header,
        &bundle,
        &content_key,
        &vendor_key,
        &mut OsRng::default(),
    )
    .context("cannot seal the package")?;

    // Register first: a package whose key the service does not know would be useless.
    let store = Store::connect(opts.db)
        .with_context(|| format!("cannot open the service database {}", opts.db))?;
    store
        .put_model(&model_id, &policy, now)
        .with_context(|| format!("cannot register model {model_id}"))?;
    store
        .add_model_version(&model_id, opts.version, &content_key, now)
        .with_context(|| {
            format!(
                "cannot register version {} of {model_id} (choose another with --model-version)",
                opts.version
            )
        })?;
    write_atomic(opts.output, &package).with_context(|| {
        format!(
            "version {} of {model_id} is registered but the package could not be written",
            opts.version
        )
    })?;

    let out = Packaged {
        package: opts.output.display().to_string(),
        model_id,
        version: opts.version,
        bytes: package.len(),
        bundle_bytes: bundle.len(),
        vendor_key_id: hex(&header.vendor_key_id),
        database: store.location().to_string(),
    };
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("package        {} ({} bytes)", out.package, out.bytes);
        println!("model          {} version {}", out.model_id, out.version);
        println!(
            "bundle         {} bytes, AES-256-GCM under a fresh content key",
            out.bundle_bytes
        );
        println!("signed by      vendor key {}", out.vendor_key_id);
        println!("registered in  {} (policy and content key)", out.database);
    }
    Ok(())
}
