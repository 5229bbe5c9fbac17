//! The admin API (bearer token): enrolment, trusted makers, revocation, listings.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store;
use omg_protocol::api::{
    EnrollRequest, EnrollResponse, RevokeDeviceRequest, RevokeDeviceResponse, RevokeModelRequest,
    RevokeModelResponse, TrustMakerRequest, TrustMakerResponse,
};
use omg_protocol::{base64, hex};

use super::error::ApiError;
use super::limits::{b64, json_body};
use super::{AppState, blocking};

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

pub(super) async fn enroll_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: EnrollRequest = json_body(&state.config, body).await?;
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
    Ok(axum::Json(EnrollResponse {
        ueid: hex::encode(&ueid),
    })
    .into_response())
}

pub(super) async fn trust_maker(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: TrustMakerRequest = json_body(&state.config, body).await?;
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
    Ok(axum::Json(TrustMakerResponse {
        key_id: hex::encode(&key_id),
    })
    .into_response())
}

pub(super) async fn revoke_device(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: RevokeDeviceRequest = json_body(&state.config, body).await?;
    let ueid = hex::decode_n::<{ omg_protocol::keys::UEID_LEN }>(&body.ueid)
        .ok_or_else(|| ApiError::bad_request("invalid_ueid", "ueid must be 66 hex digits"))?;
    let now = (state.config.clock)();
    let service = state.service.clone();
    blocking(move || Ok(service.revoke_device(&ueid, now)?)).await?;
    Ok(axum::Json(RevokeDeviceResponse { revoked: true }).into_response())
}

pub(super) async fn revoke_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let body: RevokeModelRequest = json_body(&state.config, body).await?;
    store::check_model_id(&body.model_id)
        .map_err(|_| ApiError::bad_request("invalid_model_id", "model_id must be 1..=128 bytes"))?;
    let now = (state.config.clock)();
    let service = state.service.clone();
    let epoch =
        blocking(move || Ok(service.revoke_model_version(&body.model_id, body.version, now)?))
            .await?;
    Ok(axum::Json(RevokeModelResponse {
        revocation_epoch: epoch,
    })
    .into_response())
}

pub(super) async fn devices(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let service = state.service.clone();
    let list = blocking(move || Ok(service.list_devices()?)).await?;
    Ok(axum::Json(list).into_response())
}

#[derive(Serialize)]
struct ActivationEntry {
    #[serde(flatten)]
    record: crate::records::ActivationRecord,
    licence: String,
}

pub(super) async fn activations(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_admin(&state, &headers)?;
    let service = state.service.clone();
    let list = blocking(move || Ok(service.list_activations()?)).await?;
    let list: Vec<ActivationEntry> = list
        .into_iter()
        .map(|record| ActivationEntry {
            licence: base64::encode(&record.licence),
            record,
        })
        .collect();
    Ok(axum::Json(list).into_response())
}
