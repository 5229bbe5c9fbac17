//! The API's error answers: status, category, reason code and message.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use omg_protocol::api::ErrorResponse;

use crate::service::Refusal;
use crate::store_error::StoreError;

/// An API error: status, category, reason code and a human message; for 429 and 503 the
/// seconds after which the client may try again (`Retry-After`).
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    pub(super) reason: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

/// `Retry-After` of a 503 answer (database busy or unreachable), in seconds.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        reason: &'static str,
        message: &str,
    ) -> Self {
        ApiError {
            status,
            error,
            reason,
            message: message.to_owned(),
            retry_after: None,
        }
    }

    pub(super) fn unavailable() -> Self {
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

    pub(super) fn bad_request(reason: &'static str, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason, message)
    }

    pub(super) fn internal() -> Self {
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
        let body = ErrorResponse {
            error: self.error.to_owned(),
            reason: self.reason.to_owned(),
            message: self.message,
        };
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

pub(super) fn refusal_error(r: &Refusal) -> ApiError {
    let (status, error) = match r {
        Refusal::MalformedRequest(_) | Refusal::MalformedToken | Refusal::MalformedEndorsement => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        Refusal::UnknownModel => (StatusCode::NOT_FOUND, "refused"),
        _ => (StatusCode::FORBIDDEN, "refused"),
    };
    ApiError::new(status, error, r.code(), &r.to_string())
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
                StoreError::from(rusqlite::Error::SqliteFailure(
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
}
