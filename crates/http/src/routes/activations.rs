//! What a vendor's program calls with a license key: no access token, rate-limited per IP.
//! Every reply, refusals included, is signed with the product's key (the product asked about, or
//! the key's) and echoes the request's nonce. Replies show a license as its licensee may see it:
//! its notes and metadata only as far as the product makes them public.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use keyturn_app::{ActivationRequest, TrialRequest, ValidationQuery};
use keyturn_core::{Activation, License, Nonce, ValidationCode};
use serde::{Deserialize, Serialize};

use crate::extract::{ClientIp, Json};
use crate::signed::{signed_json, signed_refusal};
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
    Ok(n.map(Nonce::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?
        .map(Nonce::into_string))
}

/// What a request asked about, which names the key that signs its refusal.
struct Asked {
    product_id: Option<i64>,
    key: Option<String>,
}

/// The reply to a program: `reply`, or the refusal it ended in, signed with the key of the
/// product asked about (or else of the key's product) and carrying `nonce`. A refusal about
/// neither a known product nor a known key has nothing to be signed with.
async fn answer(
    state: &AppState,
    asked: Asked,
    nonce: Option<String>,
    reply: Result<Response, ApiError>,
) -> Response {
    let error = match reply {
        Ok(response) => return response,
        Err(error) => error,
    };
    let product_id = match (asked.product_id, asked.key) {
        (Some(p), _) => Some(p),
        // Not the database that just failed to answer: a 503 goes out at once.
        (None, Some(_)) if error.status() == StatusCode::SERVICE_UNAVAILABLE => None,
        (None, Some(key)) => state.app.product_of_key(&key).await.ok().flatten(),
        (None, None) => None,
    };
    let signer = match product_id {
        Some(p) => state.app.signer(p).await.ok(),
        None => None,
    };
    signed_refusal(&error, signer.as_deref(), nonce)
}

/// Runs a program's call: checks its nonce, then `call` with it, and answers either way.
async fn run<F>(
    state: &AppState,
    asked: Asked,
    nonce_given: Option<String>,
    call: impl FnOnce(Option<String>) -> F,
) -> Response
where
    F: std::future::Future<Output = Result<Response, ApiError>>,
{
    match nonce(nonce_given) {
        Ok(nonce) => {
            let reply = call(nonce.clone()).await;
            answer(state, asked, nonce, reply).await
        }
        Err(e) => answer(state, asked, None, Err(e)).await,
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

async fn validate(State(state): State<AppState>, Json(mut body): Json<ValidateBody>) -> Response {
    let asked = Asked {
        product_id: body.product_id,
        key: Some(body.key.clone()),
    };
    let given = body.nonce.take();
    run(&state, asked, given, |nonce| async {
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
        let license = reply
            .license
            .as_ref()
            .map(|(license, product)| license.licensee_json(product.as_deref()));
        let body = ValidateReply {
            valid: reply.outcome.code.is_valid(),
            code: reply.outcome.code,
            detail: reply.outcome.detail,
            license: license.as_deref(),
            time: Utc::now(),
            nonce,
        };
        Ok(signed_json(StatusCode::OK, signer.as_deref(), &body))
    })
    .await
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
    Json(mut body): Json<ActivateBody>,
) -> Response {
    let asked = Asked {
        product_id: body.product_id,
        key: Some(body.key.clone()),
    };
    let given = body.nonce.take();
    run(&state, asked, given, |nonce| async {
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
            license: state.app.licensee_view(&outcome.license).await?,
            time: Utc::now(),
            nonce,
        };
        Ok(signed_json(status, Some(&signer), &reply))
    })
    .await
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
    Json(mut body): Json<DeactivateBody>,
) -> Response {
    let asked = Asked {
        product_id: body.product_id,
        key: Some(body.key.clone()),
    };
    let given = body.nonce.take();
    run(&state, asked, given, |nonce| async {
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
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrialBody {
    product_id: i64,
    plan_id: Option<i64>,
    fingerprint: String,
    name: Option<String>,
    nonce: Option<String>,
}

#[derive(Serialize)]
struct TrialReply {
    created: bool,
    license: License,
    time: DateTime<Utc>,
    nonce: Option<String>,
}

async fn trial(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(mut body): Json<TrialBody>,
) -> Response {
    let asked = Asked {
        product_id: Some(body.product_id),
        key: None,
    };
    let given = body.nonce.take();
    run(&state, asked, given, |nonce| async {
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
            license: state.app.licensee_view(&license).await?,
            time: Utc::now(),
            nonce,
        };
        Ok(signed_json(status, Some(&signer), &reply))
    })
    .await
}
