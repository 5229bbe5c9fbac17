//! The device side of the Linux backend: `omg device init | info`, `omg attest`,
//! `omg verify-token`, `omg provision` and `omg renew`.
//!
//! `omg renew` is `omg provision` again for a package already provisioned here: a fresh
//! attestation and activation whose licence (with a new lease) replaces the sealed blob. The
//! blob is written only after the vendor and the enclave have accepted everything, so a refused
//! renewal (a revoked device or model version) leaves the old one in place.
//!
//! Provisioning goes through the enclave process (see [`crate::enclave`]); this process only
//! relays messages between the enclave and the vendor service. Its refusals say what to do: a
//! `wrong_measurement` names this device's enclave measurement for the vendor's policy, and the
//! usual TLS mistakes (a CA certificate as the server's, an unknown issuer, https against plain
//! HTTP) get one line each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use omg_enclave::Platform;
use omg_enclave::messages::{EnclaveReply, HostRequest};
use omg_enclave::platform::ModelScope;
use omg_linux::{DeviceIdentity, LinuxPlatform};
use omg_protocol::api::{ActivateRequest, ActivateResponse, ChallengeResponse, ErrorResponse};
use omg_protocol::base64;
use omg_protocol::key_release::HpkeKeyPair;
use omg_protocol::package::MAX_PACKAGE_LEN;
use omg_protocol::token::Token;
use omg_protocol::{VerifyingKey, ct_eq, verifying_key_from_sec1};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::files::{read_limited, write_atomic};
use crate::identity::{hex, key_dir};

/// The device directory: `--dir`, else `$OMG_HOME/device`, else `~/.local/share/omg/device`.
pub fn device_dir(dir: Option<PathBuf>) -> Result<PathBuf> {
    key_dir(dir, "device")
}

/// The device maker's endorsement of the attestation key, beside the device identity
/// (`omg maker endorse --device-dir`); `omg provision` sends it when present.
pub const ENDORSEMENT_FILE: &str = "endorsement.cose";

/// Where the sealed blob of a vendor's model version lives in the device directory: one file
/// per backend (`v2.sealed` for Linux, `v2.optee.sealed` for OP-TEE), since each enclave seals
/// with keys of its own.
pub fn sealed_path(
    device: &Path,
    scope: ModelScope<'_>,
    version: u32,
    backend: Backend,
) -> PathBuf {
    model_dir(device, scope).join(match backend {
        Backend::Linux => format!("v{version}.sealed"),
        Backend::Optee => format!("v{version}.optee.sealed"),
    })
}

/// Where the vendor public key a vendor's model was provisioned with is kept.
pub fn stored_vendor_key_path(device: &Path, scope: ModelScope<'_>) -> PathBuf {
    model_dir(device, scope).join("vendor.pub")
}

/// The directory of one vendor's model: `models/` and the first 16 bytes (hex) of
/// [`ModelScope::digest`] (vendor key id and model id), so that two vendors' models of the same
/// id never share a directory (and model ids may hold any character).
fn model_dir(device: &Path, scope: ModelScope<'_>) -> PathBuf {
    device.join("models").join(hex(&scope.digest()[..16]))
}

/// The measurement of the enclave image the launcher would start.
pub fn enclave_measurement() -> Result<[u8; 32]> {
    Ok(crate::enclave::image()?.measurement())
}

/// Reads a SEC1 public key file (vendor.pub, attestation.pub).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let bytes = read_limited(path, 256)?;
    verifying_key_from_sec1(&bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a P-256 public key (SEC1)", path.display()))
}

/// `s` (trimmed) as hexadecimal bytes; the error names `what`.
pub fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    omg_protocol::hex::decode(s.trim())
        .ok_or_else(|| anyhow::anyhow!("{what} must be hexadecimal digits, an even number of them"))
}

#[derive(Serialize)]
struct DeviceInfo {
    /// The device directory (Linux), or where the key is kept (OP-TEE).
    dir: String,
    /// Whether the key is OP-TEE's (not in a device directory).
    #[serde(skip)]
    optee: bool,
    ueid: String,
    attestation_public_key: String,
    enclave_measurement: String,
}

fn print_info(out: &DeviceInfo, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(out)?);
    } else {
        if out.optee {
            println!("device identity     {}", out.dir);
        } else {
            println!(
                "device identity     {} (attestation.key and huk owner-only)",
                out.dir
            );
        }
        println!("UEID                {}", out.ueid);
        println!("attestation key     {}", out.attestation_public_key);
        println!("enclave measurement {}", out.enclave_measurement);
    }
    Ok(())
}

fn info_of(identity: &DeviceIdentity) -> Result<DeviceInfo> {
    Ok(DeviceInfo {
        dir: identity.dir().display().to_string(),
        optee: false,
        ueid: hex(&identity.ueid()),
        attestation_public_key: hex(&identity.public_key()),
        enclave_measurement: hex(&enclave_measurement()?),
    })
}

/// `omg device init`: a new platform identity (never replacing one without `force`).
pub fn init(dir: Option<PathBuf>, force: bool, json: bool) -> Result<()> {
    let dir = device_dir(dir)?;
    let identity = DeviceIdentity::create(&dir, force)?;
    print_info(&info_of(&identity)?, json)
}

/// `omg device info`: the identity's public parts and the enclave measurement to put in a
/// vendor policy. On OP-TEE: the attestation PTA's RSA key (DER, as `omg vendor enroll` takes
/// it), the UEID made from it and the TA's memory hash (for `[backends.optee] measurements`),
/// from a token the TA makes now, verified against that key.
pub fn info(dir: Option<PathBuf>, backend: Option<Backend>, json: bool) -> Result<()> {
    let backend = Backend::choose(backend);
    crate::backend::available(backend)?;
    match backend {
        Backend::Linux => {
            let identity = crate::enclave::identity(&device_dir(dir)?)?;
            print_info(&info_of(&identity)?, json)
        }
        Backend::Optee => optee_info(json),
    }
}

#[cfg(feature = "optee")]
fn optee_info(json: bool) -> Result<()> {
    let info = crate::optee::device_info()?;
    print_info(
        &DeviceInfo {
            dir: "OP-TEE's attestation PTA (its key in secure storage)".into(),
            optee: true,
            ueid: hex(&info.key.ueid()),
            attestation_public_key: hex(info.key.to_der()),
            enclave_measurement: hex(&info.measurement),
        },
        json,
    )
}

#[cfg(not(feature = "optee"))]
fn optee_info(_json: bool) -> Result<()> {
    bail!("this omg was built without the OP-TEE backend")
}

/// `omg attest`: the platform's token over `nonce` and the enclave image's measurement, for a
/// fresh enclave key that is discarded (a diagnostic token: nothing can be released to it).
pub fn attest(dir: Option<PathBuf>, nonce: &str, output: Option<&Path>, json: bool) -> Result<()> {
    let nonce = parse_hex(nonce, "the nonce")?;
    let identity = crate::enclave::identity(&device_dir(dir)?)?;
    let mut platform = LinuxPlatform::new(identity, enclave_measurement()?);
    let enclave_key = HpkeKeyPair::generate(platform.rng());
    let token = platform
        .attest(&nonce, enclave_key.public_key_hash())
        .context("cannot make the token")?;
    if let Some(path) = output {
        write_atomic(path, &token)?;
    }
    if json {
        #[derive(Serialize)]
        struct Attested {
            token: String,
            enclave_public_key: String,
        }
        println!(
            "{}",
            serde_json::to_string(&Attested {
                token: hex(&token),
                enclave_public_key: hex(&enclave_key.public_key.to_bytes()),
            })?
        );
    } else if output.is_none() {
        println!("{}", hex(&token));
    }
    Ok(())
}

#[derive(Serialize)]
struct TokenReport {
    valid: bool,
    ueid: String,
    nonce: String,
    profile: String,
    security_lifecycle: u16,
    implementation_id: String,
    measurements: Vec<String>,
    enclave_key_hash: String,
}

/// `omg verify-token`: checks a token's signature against a device key, and optionally its
/// measurements and nonce; prints the claims.
pub fn verify_token(
    token: &Path,
    device_key: &Path,
    measurements: &[String],
    nonce: Option<&str>,
    json: bool,
) -> Result<()> {
    let raw = read_limited(token, 64 * 1024)?;
    // Accept the raw token or its hex form (as `omg attest` prints it).
    let text = std::str::from_utf8(&raw).ok().map(str::trim);
    let bytes = match text {
        Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            parse_hex(t, "the token")?
        }
        _ => raw,
    };
    let key = read_public_key(device_key)?;
    let claims = Token::verify(&bytes, &key)
        .map_err(|e| anyhow::anyhow!("{} does not verify: {e}", token.display()))?;
    if let Some(n) = nonce {
        let n = parse_hex(n, "the nonce")?;
        anyhow::ensure!(ct_eq(&n, &claims.nonce), "the token's nonce differs");
    }
    if !measurements.is_empty() {
        let allowed = measurements
            .iter()
            .map(|m| parse_hex(m, "a measurement"))
            .collect::<Result<Vec<_>>>()?;
        for c in &claims.software_components {
            anyhow::ensure!(
                allowed.iter().any(|m| ct_eq(m, &c.measurement_value)),
                "measurement {} is not an expected one",
                hex(&c.measurement_value)
            );
        }
    }
    let report = TokenReport {
        valid: true,
        ueid: hex(&claims.instance_id),
        nonce: hex(&claims.nonce),
        profile: claims.profile.clone(),
        security_lifecycle: claims.security_lifecycle.0,
        implementation_id: hex(&claims.implementation_id),
        measurements: claims
            .software_components
            .iter()
            .map(|c| hex(&c.measurement_value))
            .collect(),
        enclave_key_hash: hex(&claims.enclave_key_hash),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("token verifies with {}", device_key.display());
        println!("UEID                {}", report.ueid);
        println!("nonce               {}", report.nonce);
        println!("profile             {}", report.profile);
        println!("security lifecycle  {:#06x}", report.security_lifecycle);
        println!("implementation id   {}", report.implementation_id);
        for m in &report.measurements {
            println!("measurement         {m}");
        }
        println!("enclave key hash    {}", report.enclave_key_hash);
    }
    Ok(())
}

/// A client of the vendor service.
struct Client {
    agent: ureq::Agent,
    base: String,
    /// Whether the service's certificate is checked against `--ca-cert` (else the system's).
    ca_cert: bool,
}

impl Client {
    fn new(server: &str, ca_cert: Option<&Path>) -> Result<Self> {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false);
        if let Some(path) = ca_cert {
            let pem = read_limited(path, 1 << 20)?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{} is not PEM", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let base = server.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "the server must be an http:// or https:// URL"
        );
        Ok(Self {
            agent: config.build().into(),
            base,
            ca_cert: ca_cert.is_some(),
        })
    }

    fn post<T: for<'de> Deserialize<'de>>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let mut response = match self.agent.post(&url).send_json(body) {
            Ok(response) => response,
            Err(e) => {
                let hint = tls_hint(&e, self.ca_cert);
                let e = anyhow::Error::new(e);
                let e = match hint {
                    Some(hint) => e.context(hint),
                    None => e,
                };
                return Err(e.context(format!("cannot reach the vendor service at {url}")));
            }
        };
        let status = response.status();
        if !status.is_success() {
            let ErrorResponse {
                reason, message, ..
            } = response.body_mut().read_json().unwrap_or_default();
            let hint = match reason.as_str() {
                // The device knows what the vendor's policy must list.
                "wrong_measurement" => enclave_measurement()
                    .map(|m| {
                        format!(
                            "; this device's enclave measures {} (`omg device info`): the \
                             vendor's policy must list it in allowed_measurements",
                            hex(&m)
                        )
                    })
                    .unwrap_or_default(),
                _ => String::new(),
            };
            bail!("the vendor service refused ({status}): {message} [{reason}]{hint}");
        }
        response
            .body_mut()
            .read_json()
            .with_context(|| format!("unexpected answer from {url}"))
    }
}

/// One line on what a TLS failure means and what to do, for the failures a user meets when
/// setting up https (`ca_cert`: whether `--ca-cert` was given).
fn tls_hint(e: &ureq::Error, ca_cert: bool) -> Option<&'static str> {
    use rustls::{CertificateError, Error as Tls};
    let tls = match e {
        ureq::Error::Rustls(tls) => tls,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<Tls>()?,
        _ => return None,
    };
    Some(match tls {
        // A certificate named as issued by the --ca-cert's subject but not signed by its key
        // fails its signature check.
        Tls::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) if ca_cert => "the service's certificate is not the --ca-cert given, nor signed by it",
        Tls::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the service's certificate is signed by no authority this system trusts: pass its \
             certificate (or its CA's) with --ca-cert"
        }
        Tls::InvalidCertificate(CertificateError::Other(other))
            if other.to_string().contains("CaUsedAsEndEntity") =>
        {
            "the service's certificate is a CA certificate (as `openssl req -x509` makes by \
             default), which TLS refuses as a server's: make one with basicConstraints CA:FALSE \
             (see README, \"HTTPS\")"
        }
        Tls::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the service's certificate does not name the host in the URL (subjectAltName)",
        Tls::InvalidMessage(_) => {
            "the service did not answer in TLS: is it plain HTTP? (use an http:// URL, or \
             start `omg vendor serve` with --tls-cert and --tls-key)"
        }
        _ => return None,
    })
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>> {
    base64::decode(s).with_context(|| format!("the service's {field} is not base64"))
}

/// What a provisioning stored: the model version, where its sealed blob is, the enclave's
/// measurement, the licence's validity and how long each step took.
#[derive(Serialize, Debug, Clone)]
pub struct Provisioned {
    /// The backend whose enclave sealed the blob (`linux` or `optee`).
    pub backend: &'static str,
    /// The package's model id.
    pub model_id: String,
    /// The package's model version.
    pub version: u32,
    /// The sealed blob's path.
    pub sealed: String,
    /// The attested enclave's measurement (hex).
    pub measurement: String,
    /// The licence's end (seconds since the Unix epoch).
    pub not_after: u64,
    /// With a lease: when to renew it (seconds since the Unix epoch).
    pub renew_after: Option<u64>,
    /// With a lease: when it ends (seconds since the Unix epoch).
    pub lease_until: Option<u64>,
    /// How long each step took.
    pub timings_ms: Timings,
}

/// The time of each provisioning step, in milliseconds.
#[derive(Serialize, Debug, Clone, Copy)]
pub struct Timings {
    /// Getting the vendor service's challenge.
    pub challenge: f64,
    /// The enclave's attestation.
    pub attest: f64,
    /// The vendor service's activation.
    pub activate: f64,
    /// The enclave's checks and sealing, and storing the blob.
    pub seal: f64,
}

/// `omg provision`: the preparation phase against the vendor service; stores the sealed blob.
pub fn provision(
    package_path: &Path,
    server: &str,
    vendor_key_path: &Path,
    dir: Option<PathBuf>,
    ca_cert: Option<&Path>,
    backend: Backend,
    json: bool,
) -> Result<()> {
    crate::backend::available(backend)?;
    let dir = device_dir(dir)?;
    let package = read_limited(package_path, MAX_PACKAGE_LEN as u64)?;
    let vendor_key = read_public_key(vendor_key_path)?;
    activate(
        package_path,
        package,
        server,
        vendor_key,
        dir,
        ca_cert,
        backend,
        json,
    )
}

/// `omg renew`: a new activation of a package already provisioned on this device (with the
/// vendor key given, else the one it was provisioned with), replacing its sealed blob; a
/// refusal leaves the old blob as it was.
pub fn renew(
    package_path: &Path,
    server: &str,
    vendor_key_path: Option<&Path>,
    dir: Option<PathBuf>,
    ca_cert: Option<&Path>,
    backend: Backend,
    json: bool,
) -> Result<()> {
    crate::backend::available(backend)?;
    let dir = device_dir(dir)?;
    let package = read_limited(package_path, MAX_PACKAGE_LEN as u64)?;
    let (vendor_key, header) = match vendor_key_path {
        Some(path) => {
            let key = read_public_key(path)?;
            let verified = omg_protocol::package::Package::open_signed(&package, &key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", package_path.display()))?;
            (key, verified.header().clone())
        }
        None => {
            crate::run::provisioned_vendor_key(&dir, &package, crate::run::Provisioner::DeviceUser)?
        }
    };
    let sealed = sealed_path(
        &dir,
        ModelScope::new(&vendor_key, &header.model_id),
        header.version,
        backend,
    );
    anyhow::ensure!(
        sealed.is_file(),
        "{} version {} is not provisioned here: run `omg provision` first",
        header.model_id,
        header.version
    );
    activate(
        package_path,
        package,
        server,
        vendor_key,
        dir,
        ca_cert,
        backend,
        json,
    )
    .context("no renewal: the sealed licence on this device is unchanged")
}

/// The preparation phase for `package` against the vendor service at `server`: challenge,
/// attestation, activation, sealing; stores the sealed blob (replacing any earlier one) only
/// once everything checked out.
#[allow(clippy::too_many_arguments)]
fn activate(
    package_path: &Path,
    package: Vec<u8>,
    server: &str,
    vendor_key: VerifyingKey,
    dir: PathBuf,
    ca_cert: Option<&Path>,
    backend: Backend,
    json: bool,
) -> Result<()> {
    let out = provision_package(
        &package_path.display().to_string(),
        package,
        server,
        vendor_key,
        &dir,
        ca_cert,
        backend,
    )?;
    print_provisioned(&out, server, json)
}

/// The preparation phase for `package` (named `what` in errors) signed by `vendor_key`,
/// against the vendor service at `server` (its certificate checked against `ca_cert` if
/// given, else the system's roots), for the device in `dir` on `backend`: challenge,
/// attestation, activation, sealing. Stores the vendor key and the sealed blob (replacing any
/// earlier one) only once everything checked out, and says what it stored. This is
/// `omg provision` without its output.
pub fn provision_package(
    what: &str,
    package: Vec<u8>,
    server: &str,
    vendor_key: VerifyingKey,
    dir: &Path,
    ca_cert: Option<&Path>,
    backend: Backend,
) -> Result<Provisioned> {
    crate::backend::available(backend)?;
    let dir = dir.to_path_buf();
    let client = Client::new(server, ca_cert)?;
    let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
    let endorsement_path = dir.join(ENDORSEMENT_FILE);
    let endorsement = if endorsement_path.exists() {
        Some(read_limited(
            &endorsement_path,
            omg_protocol::endorsement::MAX_ENDORSEMENT_LEN as u64,
        )?)
    } else {
        None
    };

    let t = std::time::Instant::now();
    let challenge: ChallengeResponse = client.post("/v1/challenge", &serde_json::json!({}))?;
    let nonce = b64("nonce", &challenge.nonce)?;
    let t_challenge = ms(t);

    let t = std::time::Instant::now();
    let mut enclave = crate::backend::open(backend, &dir, None)?;
    let device_public_key = enclave.device_public_key()?;
    let EnclaveReply::Attested {
        token,
        enclave_public_key,
        model_id,
        version,
    } = enclave
        .request(&HostRequest::BeginProvision {
            package,
            vendor_key: omg_protocol::public_key_sec1(&vendor_key).to_vec(),
            nonce,
        })
        .with_context(|| what.to_string())?
    else {
        bail!("the enclave answered out of turn");
    };
    let t_attest = ms(t);

    let t = std::time::Instant::now();
    let answer: ActivateResponse = client.post(
        "/v1/activate",
        &ActivateRequest {
            token: base64::encode(&token),
            device_public_key: base64::encode(device_public_key),
            model_id: model_id.clone(),
            version,
            enclave_public_key: base64::encode(&enclave_public_key),
            endorsement: endorsement.as_ref().map(base64::encode),
        },
    )?;
    let t_activate = ms(t);

    let t = std::time::Instant::now();
    let EnclaveReply::Sealed {
        blob,
        not_after,
        renew_after,
        lease_until,
    } = enclave
        .request(&HostRequest::FinishProvision {
            key_release: b64("key release", &answer.key_release)?,
            licence: b64("licence", &answer.licence)?,
        })
        .context("the vendor's answer does not check out")?
    else {
        bail!("the enclave answered out of turn");
    };
    let measurement = enclave.measurement(&token)?;
    enclave.close()?;
    let scope = ModelScope::new(&vendor_key, &model_id);
    let sealed_path = sealed_path(&dir, scope, version, backend);
    let parent = sealed_path.parent().unwrap_or(&dir);
    omg_linux::fs::create_private_dir(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    write_atomic(
        &stored_vendor_key_path(&dir, scope),
        &omg_protocol::public_key_sec1(&vendor_key),
    )?;
    write_atomic(&sealed_path, &blob)?;
    let t_seal = ms(t);

    let out = Provisioned {
        backend: backend.name(),
        model_id,
        version,
        sealed: sealed_path.display().to_string(),
        measurement: hex(&measurement),
        not_after,
        renew_after,
        lease_until,
        timings_ms: Timings {
            challenge: t_challenge,
            attest: t_attest,
            activate: t_activate,
            seal: t_seal,
        },
    };
    Ok(out)
}

/// Prints what `omg provision` stored: one JSON object, or one line per step.
fn print_provisioned(out: &Provisioned, server: &str, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "challenge    nonce from {server} ({:.1} ms)",
            out.timings_ms.challenge
        );
        println!(
            "attested     {} enclave {} signed by the device key ({:.1} ms)",
            out.backend, out.measurement, out.timings_ms.attest
        );
        let lease = match (out.renew_after, out.lease_until) {
            (Some(renew), Some(until)) => {
                format!(", lease until {until} (renew after {renew} with `omg renew`)")
            }
            _ => String::new(),
        };
        println!(
            "activated    key released to this enclave, licence until {}{lease} ({:.1} ms)",
            out.not_after, out.timings_ms.activate
        );
        println!(
            "sealed       {} version {} -> {} ({:.1} ms)",
            out.model_id, out.version, out.sealed, out.timings_ms.seal
        );
    }
    Ok(())
}
