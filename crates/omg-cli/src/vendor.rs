//! `omg vendor serve`: the provisioning and licensing service (omg-vendor's HTTP API).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use omg_protocol::SigningKey;
use omg_vendor::http::{ApiConfig, router_with, serve_router};
use omg_vendor::{Service, Store};

use crate::files::read_limited;

/// Loads the vendor signing key written by `omg vendor keygen`.
fn load_vendor_key(dir: &Path) -> Result<SigningKey> {
    let path = dir.join("vendor.key");
    let bytes = zeroize::Zeroizing::new(read_limited(&path, 64)?);
    SigningKey::from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a P-256 private key", path.display()))
}

/// Runs the service until the process is stopped.
pub fn serve(
    db: &Path,
    key_dir: &Path,
    listen: SocketAddr,
    admin_token_file: Option<PathBuf>,
) -> Result<()> {
    let key = load_vendor_key(key_dir)?;
    let store = Store::open(db)
        .with_context(|| format!("cannot open the service database {}", db.display()))?;
    let admin_token = match admin_token_file {
        Some(f) => {
            let t = String::from_utf8(read_limited(&f, 4096)?)
                .context("the admin token file is not UTF-8")?;
            Some(t.trim().to_string()).filter(|t| !t.is_empty())
        }
        None => None,
    };
    let admin = admin_token.is_some();
    let router = router_with(
        Service::new(store, key),
        ApiConfig {
            admin_token,
            ..ApiConfig::default()
        },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            eprintln!("omg: warning: listening on {addr}, reachable from other hosts (no TLS yet)");
        }
        eprintln!(
            "omg: vendor service listening on http://{addr} (database {}, admin API {})",
            db.display(),
            if admin { "on" } else { "off" }
        );
        serve_router(listener, router)
            .await
            .context("the service stopped")
    })
}
