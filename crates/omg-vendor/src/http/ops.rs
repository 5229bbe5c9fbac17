//! The operations endpoints (`/metrics`, `/healthz`, `/readyz`, the OpenAPI file), the
//! fallback and the request log.

use std::time::Instant;

use axum::extract::{MatchedPath, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::metrics::Metrics;

use super::error::ApiError;
use super::{AppState, OPENAPI_YAML, blocking};

/// A request method as a metrics label: the standard ones by name, any other as `other` (a
/// client must not grow the label set at will).
fn method_label(method: &axum::http::Method) -> &'static str {
    ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]
        .into_iter()
        .find(|name| *name == method.as_str())
        .unwrap_or("other")
}

/// `GET /metrics`: the metrics in the Prometheus text format.
pub(super) async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// `GET /healthz`: the process serves requests.
pub(super) async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: the database answers a query (else 503 `service_busy`, as any request that
/// needs it would get).
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
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

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no_such_route",
        "no such route",
    )
}

/// The `tracing` target of the request log (see [`router_with`](super::router_with)).
pub const REQUEST_LOG_TARGET: &str = "omg_vendor::request";

/// Logs one line per request at INFO level under [`REQUEST_LOG_TARGET`], as the fields
/// `method` (a standard method's name, else `other`), `route` (the pattern that matched, never
/// the request's URI with its query), `status` and `ms` (the time taken), refusals of the outer layers (rate limit, body limit) included. Never a header or a
/// body: no admin token, attestation token or licence reaches the log. The same goes to the
/// metrics' latency histogram.
pub(super) async fn log_request(
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
