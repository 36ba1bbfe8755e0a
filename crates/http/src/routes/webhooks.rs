//! Inbound provider webhooks: the raw body goes to the provider's adapter, which verifies it and
//! feeds the payment pipeline. Answers 2xx for every verified event, including ignored types,
//! so providers never retry what Keyturn does not act on.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use keyturn_app::EventOutcome;
use keyturn_providers::stripe::WebhookError;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// Provider events are larger than API requests.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(stripe))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
}

fn outcome(o: EventOutcome) -> Json<Value> {
    Json(match o {
        EventOutcome::Applied(detail) => {
            json!({"received": true, "status": "applied", "detail": detail})
        }
        EventOutcome::Ignored => json!({"received": true, "status": "ignored"}),
        EventOutcome::Duplicate => json!({"received": true, "status": "duplicate"}),
    })
}

async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let adapter = state.providers.stripe.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Stripe webhooks are not configured (set KEYTURN_STRIPE_WEBHOOK_SECRET)",
        )
    })?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match adapter.receive(&state.app, signature, &body).await {
        Ok(o) => Ok(outcome(o)),
        Err(WebhookError::Signature(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_signature",
            e.to_string(),
        )),
        Err(WebhookError::Unparsable(m)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_event",
            format!("the body is not a Stripe event: {m}"),
        )),
        Err(WebhookError::App(e)) => Err(e.into()),
    }
}
