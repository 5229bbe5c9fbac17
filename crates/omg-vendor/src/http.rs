//! The HTTP API (axum 0.8). Described in OpenAPI 3 by [`OPENAPI_YAML`], served at
//! `GET /v1/openapi.yaml`.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /v1/challenge` | none | `{nonce, expires_at, challenge}` |
//! | `POST /v1/activate` | `{token, device_public_key, model_id, version, enclave_public_key, endorsement?}` | `{key_release, licence}` |
//! | `POST /v1/devices/enroll` (admin) | `{device_public_key}` | `{ueid}` |
//! | `POST /v1/makers/trust` (admin) | `{maker_public_key}` | `{key_id}` |
//! | `POST /v1/revoke/device` (admin) | `{ueid}` | `{revoked: true}` |
//! | `POST /v1/revoke/model` (admin) | `{model_id, version}` | `{revocation_epoch}` |
//! | `GET /v1/devices` (admin) | | `[DeviceRecord]` |
//! | `GET /v1/activations` (admin) | | `[ActivationRecord]` |
//! | `GET /v1/openapi.yaml` | | the OpenAPI description |
//!
//! Bodies are JSON; byte strings are standard base64 with padding, UEIDs lowercase hex.
//! Request bodies are limited to [`ApiConfig::body_limit`] (64 KiB by default; 413 beyond).
//! Every error is `{"error": CATEGORY, "reason": CODE, "message": TEXT}` with a matching
//! status: 400 malformed, 401/403 admin authentication, 403 refused, 404 unknown model,
//! 413 too large, 503 with `Retry-After` when the database is busy or unreachable, 500 other
//! internal failures (never with internal details).
//!
//! Admin endpoints need `Authorization: Bearer <admin token>`; with no admin token configured
//! they are disabled (403 `admin_api_disabled`). Database work runs on the blocking thread pool.
//!
//! [`serve_router`] serves plain HTTP/1.1; [`serve_router_tls`] serves it over TLS 1.2 or 1.3
//! (rustls with the *ring* provider) with a certificate chain and key from PEM
//! ([`TlsConfig::from_pem`]). Handshakes run in their own tasks with a time limit
//! ([`TLS_HANDSHAKE_TIMEOUT`]), so a slow or silent client holds up no one else, and a failed
//! handshake (a plain-HTTP client on the TLS port, say) only closes that connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::metrics::Metrics;
use crate::service::{ActivateError, ActivationRequest, Refusal, Service};
use crate::store;
use crate::store::StoreError;
use omg_protocol::OsRng;
use omg_protocol::hex;

/// The OpenAPI 3 description of this API.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A source of the current time, seconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Default time a client has to send a request's body, once its headers are in: 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers (from the connection's start, or
/// from the end of the previous request on a kept-alive connection) before the connection is
/// closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default per-client rate limit: 2,000 requests per second, bursts of 4,000.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    per_second: 2000,
    burst: 4000,
};

/// A per-client request rate limit (a token bucket per client address: an IPv4 address, or
/// the /64 prefix of an IPv6 address). Requests beyond it are answered 429 with
/// `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second a client may make in the long run (at least 1).
    pub per_second: u32,
    /// Requests a client may make at once after a pause (the bucket's size, at least 1).
    pub burst: u32,
}

/// HTTP API settings.
#[derive(Clone)]
pub struct ApiConfig {
    /// Bearer token of the admin endpoints; `None` disables them.
    pub admin_token: Option<String>,
    /// Maximum request body size in bytes.
    pub body_limit: usize,
    /// How long a client has to send a request's body once its headers are in (408 beyond,
    /// and the connection is closed).
    pub body_timeout: Duration,
    /// The per-client rate limit; `None` turns it off. Requests that arrive without a client
    /// address (a router called in-process, not through [`serve_router`] or
    /// [`serve_router_tls`]) are not limited.
    pub rate_limit: Option<RateLimit>,
    /// The clock (the system clock by default).
    pub clock: Clock,
    /// Whether browsers reach the service over HTTPS (TLS here or at a proxy in front): the
    /// web console's session cookie is then marked `Secure`.
    pub secure_cookies: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            admin_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            clock: Arc::new(system_now),
            secure_cookies: false,
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("body_limit", &self.body_limit)
            .field("body_timeout", &self.body_timeout)
            .field("rate_limit", &self.rate_limit)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch from the system clock.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Clone)]
struct AppState {
    service: Service,
    config: ApiConfig,
    metrics: Metrics,
}

/// An API error: status, category, reason code and a human message; for 429 and 503 the
/// seconds after which the client may try again (`Retry-After`).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: &'static str,
    reason: &'static str,
    message: String,
    retry_after: Option<u64>,
}

/// `Retry-After` of a 503 answer (database busy or unreachable), in seconds.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    fn new(status: StatusCode, error: &'static str, reason: &'static str, message: &str) -> Self {
        ApiError {
            status,
            error,
            reason,
            message: message.to_owned(),
            retry_after: None,
        }
    }

    fn unavailable() -> Self {
        ApiError {
            retry_after: Some(BUSY_RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "service_busy",
                "the service is busy, try again later",
            )
        }
    }

    fn bad_request(reason: &'static str, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason, message)
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal_error",
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "reason": self.reason, "message": self.message});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "not_found",
                &format!("{what} not found"),
            ),
            StoreError::Invalid(_) => Self::bad_request("invalid_argument", "invalid argument"),
            e if e.is_transient() => Self::unavailable(),
            _ => Self::internal(),
        }
    }
}

fn refusal_error(r: &Refusal) -> ApiError {
    let (status, error) = match r {
        Refusal::MalformedRequest(_) | Refusal::MalformedToken | Refusal::MalformedEndorsement => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        Refusal::UnknownModel => (StatusCode::NOT_FOUND, "refused"),
        _ => (StatusCode::FORBIDDEN, "refused"),
    };
    ApiError::new(status, error, r.code(), &r.to_string())
}

/// Reads the body (at most `body_limit` bytes, within `body_timeout`) and parses it as JSON.
async fn json_body<T: for<'de> Deserialize<'de>>(
    config: &ApiConfig,
    body: Body,
) -> Result<T, ApiError> {
    let read = axum::body::to_bytes(body, config.body_limit);
    let body = match tokio::time::timeout(config.body_timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return Err(if e.into_inner().is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::bad_request("unreadable_body", "request body could not be read")
            });
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "body_timeout",
                "the request body was not received in time",
            ));
        }
    };
    serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("invalid_json", "request body is not the expected JSON"))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "body_too_large",
        "request body too large",
    )
}

/// Refuses a request whose declared `Content-Length` exceeds the limit before reading it (the
/// body extractor also stops reading an undeclared / chunked body at the limit).
async fn limit_declared_length(
    State(limit): State<usize>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large().into_response();
    }
    next.run(request).await
}

fn b64(field: &'static str, s: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(s).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_base64",
            &format!("field {field} is not standard base64"),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal())?
}

fn check_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "admin_api_disabled",
            "the admin API is disabled",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare hashes so neither length nor content leaks through timing.
    let ok = omg_protocol::ct_eq(
        &omg_protocol::sha256(presented.as_bytes()),
        &omg_protocol::sha256(expected.as_bytes()),
    );
    if !ok {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "bad_admin_token",
            "missing or wrong admin token",
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct ChallengeResponse {
    nonce: String,
    expires_at: u64,
    challenge: String,
}

async fn challenge(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = (state.config.clock)();
    let service = state.service.clone();
    let challenge = blocking(move || Ok(service.issue_nonce(now, &mut OsRng::default())?)).await?;
    let encoded = challenge.to_bytes().map_err(|_| ApiError::internal())?;
    Ok(axum::Json(ChallengeResponse {
        nonce: B64.encode(challenge.nonce),
        expires_at: challenge.expires_at,
        challenge: B64.encode(encoded),
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    token: String,
    device_public_key: String,
    model_id: String,
    version: u32,
    enclave_public_key: String,
    #[serde(default)]
    endorsement: Option<String>,
}

#[derive(Serialize)]
struct ActivateResponse {
    key_release: String,
    licence: String,
}

/// `POST /v1/activate`, counted in the metrics by outcome.
async fn activate(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let answer = activate_inner(&state, body).await;
    match &answer {
        Ok(_) => state.metrics.activation("granted", "none"),
        Err(e) => state.metrics.activation(e.error, e.reason),
    }
    answer
}

async fn activate_inner(state: &AppState, body: Body) -> Result<Response, ApiError> {
    let body: ActivateBody = json_body(&state.config, body).await?;
    let request = ActivationRequest {
        token: b64("token", &body.token)?,
        device_public_key: b64("device_public_key", &body.device_public_key)?,
        model_id: body.model_id,
        version: body.version,
        enclave_public_key: b64("enclave_public_key", &body.enclave_public_key)?,
        endorsement: body
            .endorsement
            .map(|e| b64("endorsement", &e))
            .transpose()?,
    };
    let now = (state.config.clock)();
    let service = state.service.clone();
    let activation = blocking(move || {
        service
            .activate(&request, now, &mut OsRng::default())
            .map_err(|e| match e {
                ActivateError::Refused(r) => refusal_error(&r),
                ActivateError::Internal(e) => ApiError::from(e),
            })
    })
    .await?;
    Ok(axum::Json(ActivateResponse {
        key_release: B64.encode(&activation.key_release),
        licence: B64.encode(&activation.licence),
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    device_public_key: String,
}

async fn enroll_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: EnrollBody = json_body(&state.config, body).await?;
    let key = b64("device_public_key", &body.device_public_key)?;
    if crate::DeviceKey::parse(&key).is_none() {
        return Err(ApiError::bad_request(
            "invalid_device_public_key",
            "device_public_key must be a SEC1 uncompressed P-256 key (65 bytes, Linux backend) \
             or the DER SubjectPublicKeyInfo of an RSA key of 2048 to 4096 bits (OP-TEE)",
        ));
    }
    let now = (state.config.clock)();
    let service = state.service.clone();
    let ueid = blocking(move || Ok(service.enroll_device(&key, now)?)).await?;
    Ok(axum::Json(json!({"ueid": hex::encode(&ueid)})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustMakerBody {
    maker_public_key: String,
}

async fn trust_maker(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: TrustMakerBody = json_body(&state.config, body).await?;
    let key = b64("maker_public_key", &body.maker_public_key)?;
    if omg_protocol::verifying_key_from_sec1(&key).is_err() {
        return Err(ApiError::bad_request(
            "invalid_maker_public_key",
            "maker_public_key must be a SEC1 uncompressed P-256 key (65 bytes)",
        ));
    }
    let now = (state.config.clock)();
    let service = state.service.clone();
    let key_id = blocking(move || Ok(service.trust_maker(&key, now)?)).await?;
    Ok(axum::Json(json!({"key_id": hex::encode(&key_id)})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeDeviceBody {
    ueid: String,
}

async fn revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: RevokeDeviceBody = json_body(&state.config, body).await?;
    let ueid = hex::decode_n::<{ omg_protocol::keys::UEID_LEN }>(&body.ueid)
        .ok_or_else(|| ApiError::bad_request("invalid_ueid", "ueid must be 66 hex digits"))?;
    let now = (state.config.clock)();
    let service = state.service.clone();
    blocking(move || Ok(service.revoke_device(&ueid, now)?)).await?;
    Ok(axum::Json(json!({"revoked": true})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeModelBody {
    model_id: String,
    version: u32,
}

async fn revoke_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: RevokeModelBody = json_body(&state.config, body).await?;
    store::check_model_id(&body.model_id)
        .map_err(|_| ApiError::bad_request("invalid_model_id", "model_id must be 1..=128 bytes"))?;
    let now = (state.config.clock)();
    let service = state.service.clone();
    let epoch =
        blocking(move || Ok(service.revoke_model_version(&body.model_id, body.version, now)?))
            .await?;
    Ok(axum::Json(json!({"revocation_epoch": epoch})).into_response())
}

async fn devices(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let service = state.service.clone();
    let list = blocking(move || Ok(service.list_devices()?)).await?;
    Ok(axum::Json(list).into_response())
}

#[derive(Serialize)]
struct ActivationEntry {
    #[serde(flatten)]
    record: crate::store::ActivationRecord,
    licence: String,
}

async fn activations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let service = state.service.clone();
    let list = blocking(move || Ok(service.list_activations()?)).await?;
    let list: Vec<ActivationEntry> = list
        .into_iter()
        .map(|record| ActivationEntry {
            licence: B64.encode(&record.licence),
            record,
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

/// A request method as a metrics label: the standard ones by name, any other as `other` (a
/// client must not grow the label set at will).
fn method_label(method: &axum::http::Method) -> &'static str {
    ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
}

/// `GET /metrics`: the metrics in the Prometheus text format.
async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// `GET /healthz`: the process serves requests.
async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: the database answers a query (else 503 `service_busy`, as any request that
/// needs it would get).
async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let service = state.service.clone();
    blocking(move || {
        service
            .store()
            .schema_version()
            .map_err(|_| ApiError::unavailable())
    })
    .await?;
    Ok(axum::Json(json!({"status": "ready"})).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no_such_route",
        "no such route",
    )
}

/// The API router with default settings (admin endpoints disabled, 64 KiB body limit,
/// [`DEFAULT_BODY_TIMEOUT`], [`DEFAULT_RATE_LIMIT`], system clock).
pub fn router(service: Service) -> Router {
    router_with(service, ApiConfig::default())
}

/// Every route of the API as `(method, path)`. The last three answer without a token and hold
/// no secret: `/metrics` ([`crate::metrics`]), `/healthz` (the process answers) and `/readyz`
/// (the database answers a query too; else 503).
pub const ROUTES: [(&str, &str); 12] = [
    ("POST", "/v1/challenge"),
    ("POST", "/v1/activate"),
    ("POST", "/v1/devices/enroll"),
    ("POST", "/v1/makers/trust"),
    ("POST", "/v1/revoke/device"),
    ("POST", "/v1/revoke/model"),
    ("GET", "/v1/devices"),
    ("GET", "/v1/activations"),
    ("GET", "/v1/openapi.yaml"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

/// The API router with explicit settings. Every request is logged in one line through
/// `tracing` (see [`REQUEST_LOG_TARGET`]); install a subscriber to see it.
pub fn router_with(service: Service, config: ApiConfig) -> Router {
    let metrics = Metrics::new(service.store().commit_batch_sizes());
    let limit = config.body_limit;
    let limiter = Arc::new(config.rate_limit.map(Limiter::new));
    let console = crate::console::router(service.clone(), &config);
    // In the order of `ROUTES`.
    let handlers: [MethodRouter<AppState>; ROUTES.len()] = [
        post(challenge),
        post(activate),
        post(enroll_device),
        post(trust_maker),
        post(revoke_device),
        post(revoke_model),
        get(devices),
        get(activations),
        get(openapi),
        get(metrics_text),
        get(healthz),
        get(readyz),
    ];
    ROUTES
        .into_iter()
        .zip(handlers)
        .fold(Router::new(), |r, ((_, path), h)| r.route(path, h))
        .fallback(not_found)
        .with_state(AppState {
            service,
            config,
            metrics: metrics.clone(),
        })
        .merge(console)
        .layer(middleware::from_fn_with_state(limit, limit_declared_length))
        .layer(middleware::from_fn_with_state(limiter, rate_limit))
        .layer(middleware::from_fn_with_state(metrics, log_request))
}

/// The `tracing` target of the request log (see [`router_with`]).
pub const REQUEST_LOG_TARGET: &str = "omg_vendor::request";

/// Logs one line per request at INFO level under [`REQUEST_LOG_TARGET`], as the fields
/// `method` (a standard method's name, else `other`), `route` (the pattern that matched, never
/// the request's URI with its query), `status` and `ms` (the time taken), refusals of the outer layers (rate limit, body limit) included. Never a header or a
/// body: no admin token, attestation token or licence reaches the log. The same goes to the
/// metrics' latency histogram.
async fn log_request(
    State(metrics): State<Metrics>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let method = method_label(&method);
    tracing::info!(
        target: REQUEST_LOG_TARGET,
        method = %method,
        route = %route,
        status,
        ms = (seconds * 1e4).round() / 10.0,
        "answered"
    );
    metrics.request(method, &route, status, seconds);
    response
}

/// Clients tracked by the rate limiter at most; beyond, clients whose bucket is full again are
/// forgotten (they are as good as new), and if that frees nothing, requests of clients not yet
/// tracked are refused until it does.
const MAX_TRACKED_CLIENTS: usize = 65_536;

/// The per-client token buckets.
struct Limiter {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_client: HashMap<IpAddr, Bucket>,
    /// When full buckets were last forgotten (at most once a second).
    last_sweep: Instant,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, limit: RateLimit) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * f64::from(limit.per_second.max(1)))
            .min(f64::from(limit.burst.max(1)))
    }
}

/// The address a client is limited by: an IPv4 address (also when mapped into IPv6), or the
/// /64 prefix of an IPv6 address (one host usually has a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl Limiter {
    fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// Takes a token from `client`'s bucket; if there is none, the whole seconds until there
    /// is one.
    fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let limit = self.limit;
        let burst = f64::from(limit.burst.max(1));
        let key = client_key(client);
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.by_client.len() >= MAX_TRACKED_CLIENTS && !buckets.by_client.contains_key(&key) {
            if now.saturating_duration_since(buckets.last_sweep) >= Duration::from_secs(1) {
                buckets.last_sweep = now;
                buckets
                    .by_client
                    .retain(|_, bucket| bucket.refilled(now, limit) < burst);
            }
            if buckets.by_client.len() >= MAX_TRACKED_CLIENTS {
                return Err(1);
            }
        }
        let bucket = buckets.by_client.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = bucket.refilled(now, limit);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            let wait = (1.0 - tokens) / f64::from(limit.per_second.max(1));
            // At most one second per token, so this is small.
            Err((wait.ceil() as u64).max(1))
        }
    }
}

/// Answers 429 with `Retry-After` to a client over its rate (see [`RateLimit`]).
async fn rate_limit(
    State(limiter): State<Arc<Option<Limiter>>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let (Some(limiter), Some(client)) = (limiter.as_ref(), client)
        && let Err(retry_after) = limiter.check(client, Instant::now())
    {
        return ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "rate_limited",
                "too many requests from this client, try again later",
            )
        }
        .into_response();
    }
    next.run(request).await
}

/// Serves the API with default settings on `listener` until the task is dropped or fails.
pub async fn serve(listener: TcpListener, service: Service) -> std::io::Result<()> {
    serve_router(listener, router(service)).await
}

/// Serves a router (e.g. from [`router_with`]) over plain HTTP/1.1 on `listener`: each
/// connection in a task of its own, its client address handed to the router (for the rate
/// limit), and closed if a request's headers take longer than [`HEADER_READ_TIMEOUT`].
pub async fn serve_router(listener: TcpListener, router: Router) -> std::io::Result<()> {
    serve_router_with(listener, router, None, HEADER_READ_TIMEOUT).await
}

/// Serves a router over TLS on `listener` (HTTP/1.1 inside TLS 1.2 or 1.3), otherwise as
/// [`serve_router`].
pub async fn serve_router_tls(
    listener: TcpListener,
    router: Router,
    tls: TlsConfig,
) -> std::io::Result<()> {
    serve_router_with(listener, router, Some(tls), HEADER_READ_TIMEOUT).await
}

/// Serves a router over TLS (`tls`) or plain HTTP (`None`) as [`serve_router`] does, closing a
/// connection whose request headers take longer than `header_read_timeout`.
pub async fn serve_router_with(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsConfig>,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    set_nodelay(&tcp);
                    let router = router.clone();
                    tokio::spawn(serve_connection(tcp, peer, router, header_read_timeout));
                }
                Err(e) => accept_error(e).await,
            }
        }
    };
    let mut listener = TlsListener {
        tcp: listener,
        acceptor: TlsAcceptor::from(tls.server),
        handshakes: JoinSet::new(),
    };
    loop {
        let (stream, peer) = listener.accept().await;
        let router = router.clone();
        tokio::spawn(serve_connection(stream, peer, router, header_read_timeout));
    }
}

/// Serves one connection until the client closes it, breaks the protocol or is too slow to
/// send a request's headers.
async fn serve_connection<I>(io: I, peer: SocketAddr, router: Router, header_read_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move { tower_service::Service::call(&mut router, request.map(Body::new)).await }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    // A broken or timed-out connection concerns only that client.
    let _ = connection.await;
}

/// Small request and response bodies: send them at once rather than wait for an ACK.
fn set_nodelay(stream: &TcpStream) {
    // Only a latency optimisation; a socket that refuses it still works.
    let _ = stream.set_nodelay(true);
}

/// How long a client may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The service's TLS settings: a certificate chain and its private key, TLS 1.2 and 1.3, ALPN
/// `http/1.1`, no client certificates. Cheap to clone.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Why a certificate chain or private key cannot be used for TLS.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate PEM holds no `CERTIFICATE` block, or a malformed one (the reason says
    /// which).
    Certificate(String),
    /// The key PEM holds no private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`),
    /// a malformed one, or one of an unsupported type (the reason says which).
    PrivateKey(String),
    /// The private key is not the key of the (first) certificate.
    KeyMismatch,
    /// The certificate is not a well-formed X.509 certificate, or rustls rejects the pair.
    Rejected(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Certificate(e) => write!(f, "no usable PEM certificate: {e}"),
            TlsError::PrivateKey(e) => write!(f, "no usable PEM private key: {e}"),
            TlsError::KeyMismatch => {
                f.write_str("the private key does not belong to the certificate")
            }
            TlsError::Rejected(e) => write!(f, "the certificate and key are not usable: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl TlsConfig {
    /// Reads a certificate chain (PEM `CERTIFICATE` blocks, the server's own certificate
    /// first) and its private key (PEM PKCS#8, PKCS#1 or SEC1), and checks that they match.
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Certificate(
                "no -----BEGIN CERTIFICATE----- block found".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                TlsError::PrivateKey("no -----BEGIN ... PRIVATE KEY----- block found".into())
            }
            e => TlsError::PrivateKey(e.to_string()),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch
                }
                rustls::Error::General(reason) => TlsError::PrivateKey(reason),
                e => TlsError::Rejected(e),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server: Arc::new(config),
        })
    }
}

/// A TLS listener: accepts TCP connections and runs each handshake in a task of its own
/// (bounded by [`TLS_HANDSHAKE_TIMEOUT`]); only completed handshakes are handed on.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    /// Handshakes in progress; aborted when the listener is dropped.
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    set_nodelay(&tcp);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some((stream, peer)),
        // A failed or timed-out handshake concerns only that client: drop its connection.
        Ok(Err(_)) | Err(_) => None,
    }
}

impl TlsListener {
    /// The next connection whose handshake completed, and its client's address.
    async fn accept(&mut self) -> (TlsStream<TcpStream>, SocketAddr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        self.handshakes.spawn(handshake(self.acceptor.clone(), tcp, peer));
                    }
                    Err(e) => accept_error(e).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }
}

/// What axum's TCP listener does on an accept error: a connection that died before it was
/// accepted is skipped; anything else (out of file descriptors, say) is waited out for a second
/// rather than turned into a busy loop.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_store_errors_are_503_with_retry_after_and_others_500() {
        for (error, status) in [
            (
                StoreError::Busy("pool".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                StoreError::Connect {
                    database: "postgresql://omg@db/omg".into(),
                    reason: "refused".into(),
                },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    None,
                )),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                StoreError::Corrupt("policy"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                StoreError::Batch("disk full".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            let text = error.to_string();
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status(), status, "{text}");
            let retry_after = response.headers().get(header::RETRY_AFTER);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(retry_after.unwrap(), "1", "{text}");
            } else {
                assert!(retry_after.is_none(), "{text}");
            }
        }
    }

    #[test]
    fn clients_are_limited_by_ipv4_address_or_ipv6_prefix() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn token_buckets_refill_and_stay_bounded() {
        let limiter = Limiter::new(RateLimit {
            per_second: 10,
            burst: 3,
        });
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check(a, t0), Ok(()));
        }
        assert_eq!(limiter.check(a, t0), Err(1));
        // Another client has a bucket of its own.
        assert_eq!(limiter.check(b, t0), Ok(()));
        // 10 per second: one token after 0.1 s, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check(a, t1), Ok(()));
        assert_eq!(limiter.check(a, t1), Err(1));
        // Refilled at most to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check(a, t2), Ok(()));
        }
        assert_eq!(limiter.check(a, t2), Err(1));

        // Bounded: with the table full of busy clients, a new one is refused; once their
        // buckets are full again they are forgotten and new clients get in.
        let full = Limiter::new(RateLimit {
            per_second: 1,
            burst: 1,
        });
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_CLIENTS {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
            assert_eq!(full.check(ip, t0), Ok(()));
        }
        let newcomer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            full.check(newcomer, t0 + Duration::from_millis(500)),
            Err(1)
        );
        assert_eq!(full.check(newcomer, t0 + Duration::from_secs(2)), Ok(()));
        let tracked = full
            .buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_client
            .len();
        assert_eq!(tracked, 1);
    }
}
