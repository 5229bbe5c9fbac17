//! The device protocol: `POST /v1/challenge` and `POST /v1/activate`.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::service::{ActivateError, ActivationRequest};
use omg_protocol::OsRng;
use omg_protocol::api::{ActivateRequest, ActivateResponse, ChallengeResponse};
use omg_protocol::base64;

use super::error::{ApiError, refusal_error};
use super::limits::{b64, json_body};
use super::{AppState, blocking};

pub(super) async fn challenge(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = (state.config.clock)();
    let service = state.service.clone();
    let challenge = blocking(move || Ok(service.issue_nonce(now, &mut OsRng::default())?)).await?;
    let encoded = challenge.to_bytes().map_err(|_| ApiError::internal())?;
    Ok(axum::Json(ChallengeResponse {
        nonce: base64::encode(challenge.nonce),
        expires_at: challenge.expires_at,
        challenge: base64::encode(encoded),
    })
    .into_response())
}

/// `POST /v1/activate`, counted in the metrics by outcome.
pub(super) async fn activate(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let answer = activate_inner(&state, body).await;
    match &answer {
        Ok(_) => state.metrics.activation("granted", "none"),
        Err(e) => state.metrics.activation(e.error, e.reason),
    }
    answer
}

async fn activate_inner(state: &AppState, body: Body) -> Result<Response, ApiError> {
    let body: ActivateRequest = json_body(&state.config, body).await?;
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
        key_release: base64::encode(&activation.key_release),
        licence: base64::encode(&activation.licence),
    })
    .into_response())
}
