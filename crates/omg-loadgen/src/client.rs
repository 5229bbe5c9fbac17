//! The clients: each repeats a new device's preparation phase (challenge, token, activation)
//! on a keep-alive HTTP/1.1 connection and records its latency or its error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use omg_protocol::api::{
    ActivateRequest, ActivateResponse, ChallengeResponse, EnrollRequest, ErrorResponse,
};
use omg_protocol::base64;
use omg_protocol::key_release::HpkeKeyPair;
use omg_protocol::token::{Claims, SoftwareComponent, Token};
use omg_protocol::{SigningKey, generate_signing_key, public_key_sec1};
use omg_vendor::OsRng;
use serde::Serialize;

use crate::setup::{Fixture, MODEL_ID, MODEL_VERSION};

/// Longest wait for one HTTP answer before the activation counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The implementation id the simulated devices claim.
const IMPLEMENTATION_ID: [u8; 32] = [0x4c; 32];
/// The signer id of the simulated enclave.
const SIGNER_ID: [u8; 32] = [0x53; 32];

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Where and what the clients activate.
pub struct Target {
    challenge: Uri,
    activate: Uri,
    enroll: Uri,
    admin_token: String,
    measurement: [u8; 32],
}

impl Target {
    /// The service at `addr`, prepared with `fixture`.
    pub fn new(addr: SocketAddr, fixture: &Fixture) -> Self {
        let uri = |path: &str| -> Uri {
            // A socket address and a fixed path always form a valid URI.
            format!("http://{addr}{path}")
                .parse()
                .unwrap_or_else(|_| unreachable!())
        };
        Target {
            challenge: uri("/v1/challenge"),
            activate: uri("/v1/activate"),
            enroll: uri("/v1/devices/enroll"),
            admin_token: fixture.admin_token.clone(),
            measurement: fixture.measurement,
        }
    }
}

/// Device attestation keys made before the run (a device has its identity long before it is
/// provisioned); once they are used up, clients make fresh ones inside the timed loop.
pub struct DeviceKeys {
    ready: Mutex<Vec<SigningKey>>,
    made_during_run: AtomicU64,
}

impl DeviceKeys {
    /// Makes `count` keys on `threads` threads.
    pub fn generate(count: usize, threads: usize) -> Self {
        let threads = threads.clamp(1, count.max(1));
        let keys = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..threads)
                .map(|i| {
                    let share = count / threads + usize::from(i < count % threads);
                    scope.spawn(move || {
                        (0..share)
                            .map(|_| generate_signing_key(&mut OsRng::default()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            makers
                .into_iter()
                .flat_map(|maker| maker.join().unwrap_or_default())
                .collect()
        });
        DeviceKeys {
            ready: Mutex::new(keys),
            made_during_run: AtomicU64::new(0),
        }
    }

    /// The public keys (SEC1) of the keys made before the run, to enrol.
    pub fn public_keys(&self) -> Vec<[u8; 65]> {
        self.ready
            .lock()
            .map(|keys| {
                keys.iter()
                    .map(|k| public_key_sec1(k.verifying_key()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A key made (and enrolled) before the run if one is left, else a fresh one (`true`:
    /// not enrolled yet).
    fn take(&self) -> (SigningKey, bool) {
        let ready = self.ready.lock().ok().and_then(|mut keys| keys.pop());
        match ready {
            Some(key) => (key, false),
            None => {
                self.made_during_run.fetch_add(1, Ordering::Relaxed);
                (generate_signing_key(&mut OsRng::default()), true)
            }
        }
    }

    /// How many keys clients had to make inside the timed loop.
    pub fn made_during_run(&self) -> u64 {
        self.made_during_run.load(Ordering::Relaxed)
    }
}

/// One successful activation.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When it completed, from the start of the run.
    pub done_at: Duration,
    /// The whole activation: challenge, token, activate.
    pub total: Duration,
    /// The `POST /v1/challenge` round trip.
    pub challenge: Duration,
    /// Making the enclave key pair and signing the token (and making and enrolling the device
    /// key, once those made before the run are used up).
    pub token: Duration,
    /// The `POST /v1/activate` round trip.
    pub activate: Duration,
}

/// What a run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The successful activations.
    pub samples: Vec<Sample>,
    /// Failed activations by kind (step, status and reason code, or transport error).
    pub errors: BTreeMap<String, u64>,
    /// From the start until the last client finished its last activation.
    pub elapsed: Duration,
}

/// Runs `concurrency` clients; each starts activations until `duration` has passed.
pub async fn run(
    target: Target,
    keys: Arc<DeviceKeys>,
    concurrency: usize,
    duration: Duration,
) -> Outcome {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let target = Arc::new(target);
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let target = Arc::clone(&target);
            let keys = Arc::clone(&keys);
            tokio::spawn(async move {
                let mut outcome = Outcome::default();
                while Instant::now() < deadline {
                    match activate_once(&client, &target, &keys, start).await {
                        Ok(sample) => outcome.samples.push(sample),
                        Err(kind) => *outcome.errors.entry(kind).or_default() += 1,
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = Outcome::default();
    for worker in workers {
        match worker.await {
            Ok(outcome) => {
                total.samples.extend(outcome.samples);
                for (kind, n) in outcome.errors {
                    *total.errors.entry(kind).or_default() += n;
                }
            }
            Err(e) => {
                *total
                    .errors
                    .entry(format!("client task failed: {e}"))
                    .or_default() += 1
            }
        }
    }
    total.elapsed = start.elapsed();
    total
}

/// POSTs `body` (with the admin token `admin`, if given) and returns the status and the whole
/// answer, or an error kind.
async fn post(
    client: &HttpClient,
    step: &str,
    uri: &Uri,
    body: Vec<u8>,
    admin: Option<&str>,
) -> Result<(StatusCode, Bytes), String> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = admin {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("{step}: cannot build the request: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{step}: {e}"))?;
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{step}: reading the answer: {e}"))?
            .to_bytes();
        Ok((status, answer))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{step}: no answer within {REQUEST_TIMEOUT:?}"))?
}

/// An error kind for a non-200 answer: the step, the status and the service's reason code.
fn refused(step: &str, status: StatusCode, answer: &[u8]) -> String {
    let reason = serde_json::from_slice::<ErrorResponse>(answer)
        .ok()
        .map(|e| e.reason)
        .filter(|reason| !reason.is_empty())
        .unwrap_or_else(|| "no reason given".into());
    format!("{step}: HTTP {} {reason}", status.as_u16())
}

/// A request body as JSON.
fn json_body(step: &str, body: &impl Serialize) -> Result<Vec<u8>, String> {
    serde_json::to_vec(body).map_err(|e| format!("{step}: cannot encode the request: {e}"))
}

fn decode(step: &str, field: &str, text: &str) -> Result<Vec<u8>, String> {
    match base64::decode(text) {
        Some(bytes) if !bytes.is_empty() => Ok(bytes),
        _ => Err(format!("{step}: {field} is not non-empty base64")),
    }
}

/// One new device's preparation phase.
async fn activate_once(
    client: &HttpClient,
    target: &Target,
    keys: &DeviceKeys,
    start: Instant,
) -> Result<Sample, String> {
    let t0 = Instant::now();
    let (status, answer) = post(client, "challenge", &target.challenge, Vec::new(), None).await?;
    if status != StatusCode::OK {
        return Err(refused("challenge", status, &answer));
    }
    let challenge: ChallengeResponse = serde_json::from_slice(&answer)
        .map_err(|_| "challenge: the answer is not the expected JSON".to_string())?;
    let nonce = decode("challenge", "nonce", &challenge.nonce)?;

    let t1 = Instant::now();
    let (device_key, fresh) = keys.take();
    if fresh {
        let body = json_body(
            "enroll",
            &EnrollRequest {
                device_public_key: base64::encode(public_key_sec1(device_key.verifying_key())),
            },
        )?;
        let (status, answer) = post(
            client,
            "enroll",
            &target.enroll,
            body,
            Some(&target.admin_token),
        )
        .await?;
        if status != StatusCode::OK {
            return Err(refused("enroll", status, &answer));
        }
    }
    let enclave = HpkeKeyPair::generate(&mut OsRng::default());
    let claims = Claims::new(
        device_key.verifying_key(),
        &nonce,
        IMPLEMENTATION_ID,
        vec![SoftwareComponent {
            measurement_type: Some("enclave".into()),
            measurement_value: target.measurement.to_vec(),
            version: Some("1".into()),
            signer_id: SIGNER_ID.to_vec(),
            measurement_desc: Some("sha-256".into()),
        }],
        enclave.public_key_hash(),
    );
    let token =
        Token::sign(&claims, &device_key).map_err(|e| format!("token: cannot sign: {e}"))?;
    let body = json_body(
        "activate",
        &ActivateRequest {
            token: base64::encode(&token),
            device_public_key: base64::encode(public_key_sec1(device_key.verifying_key())),
            model_id: MODEL_ID.into(),
            version: MODEL_VERSION,
            enclave_public_key: base64::encode(enclave.public_key.to_bytes()),
            endorsement: None,
        },
    )?;

    let t2 = Instant::now();
    let (status, answer) = post(client, "activate", &target.activate, body, None).await?;
    if status != StatusCode::OK {
        return Err(refused("activate", status, &answer));
    }
    let activation: ActivateResponse = serde_json::from_slice(&answer)
        .map_err(|_| "activate: the answer is not the expected JSON".to_string())?;
    decode("activate", "key_release", &activation.key_release)?;
    decode("activate", "licence", &activation.licence)?;
    let t3 = Instant::now();
    Ok(Sample {
        done_at: t3 - start,
        total: t3 - t0,
        challenge: t1 - t0,
        token: t2 - t1,
        activate: t3 - t2,
    })
}
