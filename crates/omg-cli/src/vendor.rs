//! `omg vendor serve`: the provisioning and licensing service (omg-vendor's HTTP API); `omg
//! vendor enroll` and `omg vendor trust-maker`: the devices it gives keys to (enrolled, or
//! endorsed by a trusted device maker).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use omg_protocol::SigningKey;
use omg_vendor::http::{
    ApiConfig, RateLimit, TlsConfig, router_with, serve_router, serve_router_tls,
};
use omg_vendor::{Service, Store};

use serde::Serialize;

use crate::files::read_limited;

/// How `omg vendor serve` writes its request log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per request.
    Text,
    /// One JSON object per line.
    Json,
}

/// Loads the vendor signing key written by `omg vendor keygen`.
pub(crate) fn load_vendor_key(dir: &Path) -> Result<SigningKey> {
    crate::keyargs::load_signing_key(&dir.join("vendor.key"))
}

/// A device attestation key from the command line, of either backend
/// ([`omg_vendor::DeviceKey`]): a file holding it (a Linux device's SEC1 `attestation.pub`, an
/// OP-TEE device's attestation PTA key as a DER SubjectPublicKeyInfo, raw or in hex), or the
/// key itself in hex.
pub(crate) fn device_key_arg(arg: &str) -> Result<Vec<u8>> {
    let is_device_key = |b: &[u8]| omg_vendor::DeviceKey::parse(b).is_some();
    let key = crate::keyargs::key_bytes(arg, 2048, is_device_key)?;
    if !is_device_key(&key) {
        anyhow::bail!(
            "{arg} is not a device key (a SEC1 P-256 key, or an OP-TEE attestation key as an RSA \
             DER SubjectPublicKeyInfo), neither as a file nor in hex"
        );
    }
    Ok(key)
}

#[derive(Serialize)]
struct Enrolled {
    ueid: String,
    public_key: String,
}

/// `omg vendor enroll`: enrols the devices (their attestation public keys) in the service
/// database in one transaction, printing each UEID. Every key is checked before any is
/// enrolled.
pub(crate) fn enroll(db: &Path, device_pubs: &[String], json: bool) -> Result<()> {
    let keys = device_pubs
        .iter()
        .map(|arg| device_key_arg(arg))
        .collect::<Result<Vec<_>>>()?;
    let store = Store::connect(db).context("cannot open the service database")?;
    let ueids = store
        .enroll_devices(&keys, crate::clock::unix_now())
        .with_context(|| format!("cannot enrol the devices in {}", store.location()))?;
    for (ueid, key) in ueids.iter().zip(&keys) {
        let out = Enrolled {
            ueid: crate::identity::hex(ueid),
            public_key: crate::identity::hex(key),
        };
        if json {
            println!("{}", serde_json::to_string(&out)?);
        } else {
            println!("enrolled device {}", out.ueid);
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct TrustedMaker {
    key_id: String,
    public_key: String,
}

/// `omg vendor trust-maker`: trusts device makers (their public keys, `maker.pub`) in the
/// service database: devices they endorse are activated without enrolment. Prints each key
/// id. Every key is checked before any is trusted.
pub(crate) fn trust_makers(db: &Path, maker_pubs: &[String], json: bool) -> Result<()> {
    let keys = maker_pubs
        .iter()
        .map(|arg| crate::keyargs::public_key_arg(arg))
        .collect::<Result<Vec<_>>>()?;
    let store = Store::connect(db).context("cannot open the service database")?;
    for key in &keys {
        let key_id = store
            .trust_maker(key, crate::clock::unix_now())
            .with_context(|| format!("cannot trust a maker in {}", store.location()))?;
        let out = TrustedMaker {
            key_id: crate::identity::hex(&key_id),
            public_key: crate::identity::hex(key),
        };
        if json {
            println!("{}", serde_json::to_string(&out)?);
        } else {
            println!("trusted device maker {}", out.key_id);
        }
    }
    Ok(())
}

/// Largest certificate chain or key file read for TLS.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Loads the TLS certificate chain and key given with `--tls-cert` and `--tls-key` (both or
/// neither).
fn load_tls(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsConfig>> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    let cert_pem = read_limited(&cert, MAX_PEM_BYTES)?;
    let key_pem = zeroize::Zeroizing::new(read_limited(&key, MAX_PEM_BYTES)?);
    let config = TlsConfig::from_pem(&cert_pem, &key_pem).with_context(|| {
        format!(
            "cannot use {} and {} for TLS",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Some(config))
}

/// The `--tls-cert` and `--tls-key` files (both or neither).
pub(crate) struct Tls {
    /// The PEM certificate chain.
    pub(crate) cert: Option<PathBuf>,
    /// Its PEM private key.
    pub(crate) key: Option<PathBuf>,
}

/// The per-client rate limit of `--rate-limit` and `--rate-burst` (`None` when the rate is 0;
/// a burst of 0 counts as 1).
pub(crate) fn rate_limit(per_second: u32, burst: u32) -> Option<RateLimit> {
    (per_second > 0).then(|| RateLimit {
        per_second,
        burst: burst.max(1),
    })
}

/// Runs the service until the process is stopped: HTTPS when given a certificate and key,
/// plain HTTP otherwise.
pub(crate) fn serve(
    db: &Path,
    key_dir: &Path,
    listen: SocketAddr,
    admin_token_file: Option<PathBuf>,
    tls: Tls,
    rate_limit: Option<RateLimit>,
    log_format: LogFormat,
) -> Result<()> {
    let tls = load_tls(tls.cert, tls.key)?;
    let key = load_vendor_key(key_dir)?;
    // A SQLite file or a postgres:// URL; the error and the startup line name the database
    // without its password.
    let store = Store::connect(db).context("cannot open the service database")?;
    let location = store.location().to_owned();
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
            rate_limit,
            secure_cookies: tls.is_some(),
            ..ApiConfig::default()
        },
    );
    // The request log: one line per request on standard error (method, route, status, time;
    // no headers or bodies, see `omg_vendor::http::router_with`). A standard error nobody reads
    // any more loses the log, never a request: no complaint about it is printed (that would
    // panic the request's task).
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_target(false);
    let _ = match log_format {
        LogFormat::Text => log.try_init(),
        LogFormat::Json => log.json().try_init(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        if tls.is_none() && !addr.ip().is_loopback() {
            eprintln!(
                "omg: warning: listening on {addr} without TLS, reachable from other hosts \
                 (give --tls-cert and --tls-key)"
            );
        }
        let rate = match rate_limit {
            Some(r) => format!(
                "{}/s per client address, bursts of {}",
                r.per_second, r.burst
            ),
            None => "off".into(),
        };
        eprintln!(
            "omg: vendor service listening on {}://{addr} (database {}, admin API {}, rate \
             limit {rate})",
            if tls.is_some() { "https" } else { "http" },
            location,
            if admin { "on" } else { "off" }
        );
        let served = match tls {
            Some(tls) => serve_router_tls(listener, router, tls).await,
            None => serve_router(listener, router).await,
        };
        served.context("the service stopped")
    })
}
