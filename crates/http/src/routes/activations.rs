//! What a vendor's program calls with a license key: no access token, rate-limited per IP, and
//! successful replies signed with the product's key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use keyturn_app::{ActivationRequest, LicenseState, TrialRequest, ValidationQuery};
use keyturn_core::{Activation, License, ValidationCode};
use serde::{Deserialize, Serialize};

use crate::extract::{ClientIp, Json};
use crate::signed::signed_json;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/validate", post(validate))
        .route("/activations", post(activate))
        .route("/activations/deactivate", post(deactivate))
        .route("/trials", post(trial))
}

/// Echoed back inside the signed body so a program can tell a fresh reply from a replayed one.
fn nonce(n: Option<String>) -> Result<Option<String>, ApiError> {
    match n {
        Some(n) if n.len() > 128 => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "nonce: must be at most 128 characters",
        )),
        n => Ok(n),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    key: String,
    fingerprint: Option<String>,
    #[serde(default)]
    features: Vec<String>,
    product_id: Option<i64>,
    nonce: Option<String>,
}

#[derive(Serialize)]
struct ValidateReply<'a> {
    valid: bool,
    code: ValidationCode,
    detail: String,
    license: Option<&'a serde_json::value::RawValue>,
    time: DateTime<Utc>,
    nonce: Option<String>,
}

async fn validate(
    State(state): State<AppState>,
    Json(body): Json<ValidateBody>,
) -> Result<Response, ApiError> {
    let nonce = nonce(body.nonce)?;
    let reply = state
        .app
        .validate(ValidationQuery {
            key: body.key,
            fingerprint: body.fingerprint,
            features: body.features,
            product_id: body.product_id,
        })
        .await?;
    let signer = match reply.product_id {
        Some(p) => state.app.signer(p).await.ok(),
        None => None,
    };
    let body = ValidateReply {
        valid: reply.outcome.code.is_valid(),
        code: reply.outcome.code,
        detail: reply.outcome.detail,
        license: reply.license.as_deref().map(LicenseState::license_json),
        time: Utc::now(),
        nonce,
    };
    Ok(signed_json(StatusCode::OK, signer.as_deref(), &body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    key: String,
    fingerprint: String,
    name: Option<String>,
    product_id: Option<i64>,
    nonce: Option<String>,
}

#[derive(Serialize)]
struct ActivationReply {
    created: bool,
    activation: Activation,
    license: License,
    time: DateTime<Utc>,
    nonce: Option<String>,
}

async fn activate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<ActivateBody>,
) -> Result<Response, ApiError> {
    let nonce = nonce(body.nonce)?;
    let outcome = state
        .app
        .activate(ActivationRequest {
            key: body.key,
            fingerprint: body.fingerprint,
            name: body.name,
            ip: ip.map(|ip| ip.to_string()),
            product_id: body.product_id,
            ..Default::default()
        })
        .await?;
    let signer = state.app.signer(outcome.license.product_id).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = ActivationReply {
        created: outcome.created,
        activation: outcome.activation,
        license: outcome.license,
        time: Utc::now(),
        nonce,
    };
    Ok(signed_json(status, Some(&signer), &reply))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeactivateBody {
    key: String,
    fingerprint: String,
    product_id: Option<i64>,
    nonce: Option<String>,
}

#[derive(Serialize)]
struct DeactivationReply {
    activation: Activation,
    time: DateTime<Utc>,
    nonce: Option<String>,
}

async fn deactivate(
    State(state): State<AppState>,
    Json(body): Json<DeactivateBody>,
) -> Result<Response, ApiError> {
    let nonce = nonce(body.nonce)?;
    let (activation, product_id) = state
        .app
        .deactivate(&body.key, &body.fingerprint, body.product_id)
        .await?;
    let signer = state.app.signer(product_id).await?;
    let reply = DeactivationReply {
        activation,
        time: Utc::now(),
        nonce,
    };
    Ok(signed_json(StatusCode::OK, Some(&signer), &reply))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrialBody {
    product_id: i64,
    plan_id: Option<i64>,
    fingerprint: String,
    name: Option<String>,
}

#[derive(Serialize)]
struct TrialReply {
    created: bool,
    license: License,
    time: DateTime<Utc>,
}

async fn trial(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<TrialBody>,
) -> Result<Response, ApiError> {
    let (license, created) = state
        .app
        .create_trial(TrialRequest {
            product_id: body.product_id,
            plan_id: body.plan_id,
            fingerprint: body.fingerprint,
            name: body.name,
            ip: ip.map(|ip| ip.to_string()),
            ..Default::default()
        })
        .await?;
    let signer = state.app.signer(license.product_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let reply = TrialReply {
        created,
        license,
        time: Utc::now(),
    };
    Ok(signed_json(status, Some(&signer), &reply))
}
