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
//! Bodies are JSON, declared once for the service and its clients in [`omg_protocol::api`];
//! byte strings are standard base64 with padding, UEIDs lowercase hex.
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
//!
//! The routes are assembled in [`router_with`]; their handlers live by group (`device`: the
//! device protocol, `admin`: the admin API, `ops`: metrics, health, the OpenAPI file and the
//! request log), next to the request limits (`limits`, `rate_limit`), the error answers
//! (`error`) and the serving loops (`listener`, `tls`).

mod admin;
mod device;
mod error;
mod limits;
mod listener;
mod ops;
mod rate_limit;
mod tls;

pub use listener::{HEADER_READ_TIMEOUT, serve, serve_router, serve_router_tls, serve_router_with};
pub use ops::REQUEST_LOG_TARGET;
pub use rate_limit::{DEFAULT_RATE_LIMIT, RateLimit};
pub use tls::{TLS_HANDSHAKE_TIMEOUT, TlsConfig, TlsError};

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};

use crate::metrics::Metrics;
use crate::service::Service;
use admin::{activations, devices, enroll_device, revoke_device, revoke_model, trust_maker};
use device::{activate, challenge};
use error::ApiError;
use limits::limit_declared_length;
use ops::{healthz, log_request, metrics_text, not_found, openapi, readyz};
use rate_limit::{Limiter, rate_limit};

/// The OpenAPI 3 description of this API.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// Default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A source of the current time, seconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Default time a client has to send a request's body, once its headers are in: 10 s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal())?
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
