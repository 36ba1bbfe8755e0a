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
use keyturn_providers::{fastspring, gumroad, lemonsqueezy, paddle, StoreError, StoreEvent};
use serde_json::{json, Value};

use crate::{ApiError, AppState};

/// Provider events are larger than API requests.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe", post(stripe))
        .route("/webhooks/paddle", post(paddle))
        .route("/webhooks/lemonsqueezy", post(lemonsqueezy))
        .route("/webhooks/fastspring", post(fastspring))
        .route("/webhooks/gumroad/{secret}", post(gumroad))
        .route("/webhooks/paypal", post(paypal_webhook))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotConfigured => {
            ApiError::new(StatusCode::NOT_FOUND, "not_configured", e.to_string())
        }
        StoreError::MissingSignature | StoreError::BadSignature | StoreError::Stale => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_signature", e.to_string())
        }
        StoreError::Unparsable(..) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_event", e.to_string())
        }
        StoreError::App(e) => e.into(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON event's text: UTF-8, and no control characters in its strings.
fn body_text(body: &Bytes) -> Result<&str, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_event",
            "the body is not UTF-8",
        )
    })?;
    if let Some(c) = crate::text::in_json(body) {
        let value = serde_json::from_str::<Value>(text).unwrap_or_default();
        let field = crate::text::json_field(&value).unwrap_or_default();
        return Err(ApiError::invalid(crate::text::message(&field, c)));
    }
    Ok(text)
}

/// Several events may arrive in one notification; the reply lists what each did.
async fn apply_store(
    state: &AppState,
    provider: &str,
    payload: &str,
    events: Result<Vec<StoreEvent>, StoreError>,
) -> Result<Json<Value>, ApiError> {
    let events = events.map_err(store_error)?;
    let notify = state.providers.stores.email_buyers;
    let outcomes = keyturn_providers::apply(&state.app, provider, payload, events, notify)
        .await
        .map_err(ApiError::from)?;
    let list: Vec<Value> = outcomes.into_iter().map(|o| outcome(o).0).collect();
    Ok(Json(match list.len() {
        1 => list.into_iter().next().expect("one outcome"),
        _ => json!({"received": true, "events": list}),
    }))
}

async fn paddle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = &state.providers.stores;
    paddle::verify(
        header(&headers, "paddle-signature"),
        &body,
        &s.paddle,
        s.tolerance,
        chrono::Utc::now().timestamp(),
    )
    .map_err(store_error)?;
    let text = body_text(&body)?;
    apply_store(&state, paddle::PROVIDER, text, paddle::translate(text)).await
}

async fn lemonsqueezy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    lemonsqueezy::verify(
        header(&headers, "x-signature"),
        &body,
        &state.providers.stores.lemonsqueezy,
    )
    .map_err(store_error)?;
    let text = body_text(&body)?;
    apply_store(
        &state,
        lemonsqueezy::PROVIDER,
        text,
        lemonsqueezy::translate(text),
    )
    .await
}

async fn fastspring(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    fastspring::verify(
        header(&headers, "x-fs-signature"),
        &body,
        &state.providers.stores.fastspring,
    )
    .map_err(store_error)?;
    let text = body_text(&body)?;
    apply_store(
        &state,
        fastspring::PROVIDER,
        text,
        fastspring::translate(text),
    )
    .await
}

async fn paypal_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    use keyturn_providers::paypal::PaypalError;
    let adapter = state.providers.paypal.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            "PayPal webhooks are not configured",
        )
    })?;
    let text = body_text(&body)?;
    match adapter.receive(&state.app, &headers, text).await {
        Ok(o) => Ok(outcome(o)),
        Err(PaypalError::App(e)) => Err(e.into()),
        Err(PaypalError::Transport(e)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            e.to_string(),
        )),
        Err(e @ (PaypalError::BadSignature | PaypalError::Unparsable(_))) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_signature",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_configured",
            e.to_string(),
        )),
    }
}

async fn gumroad(
    State(state): State<AppState>,
    axum::extract::Path(secret): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // An unconfigured store and a wrong secret look alike: neither tells a prober anything.
    gumroad::verify(&secret, state.providers.stores.gumroad.as_deref())
        .map_err(|_| ApiError::not_found("route"))?;
    if let Some((field, c)) = crate::text::in_urlencoded(&body) {
        return Err(ApiError::invalid(crate::text::message(&field, c)));
    }
    let fields: std::collections::HashMap<String, String> = serde_urlencoded::from_bytes(&body)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_event",
                format!("the body is not a Gumroad ping: {e}"),
            )
        })?;
    let payload = serde_json::to_string(&fields).expect("fields serialise");
    apply_store(
        &state,
        gumroad::PROVIDER,
        &payload,
        gumroad::translate(&fields),
    )
    .await
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
    body_text(&body)?;
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
