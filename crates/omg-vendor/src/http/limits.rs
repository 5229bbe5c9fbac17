//! Request bodies: the size limit (declared or not), the read timeout, JSON and base64 fields.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use omg_protocol::base64;
use serde::Deserialize;

use super::ApiConfig;
use super::error::ApiError;

/// Reads the body (at most `body_limit` bytes, within `body_timeout`) and parses it as JSON.
pub(super) async fn json_body<T: for<'de> Deserialize<'de>>(
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
pub(super) async fn limit_declared_length(
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

pub(super) fn b64(field: &'static str, s: &str) -> Result<Vec<u8>, ApiError> {
    base64::decode(s).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid_base64",
            &format!("field {field} is not standard base64"),
        )
    })
}
