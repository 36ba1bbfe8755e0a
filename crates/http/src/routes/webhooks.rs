//! Inbound provider webhooks. Every route has one shape: the provider's adapter verifies the raw
//! body, the text is checked, the adapter translates it, and the app applies the events (asking
//! the provider's gateway what a sale bought when the event does not say). A refusal is one
//! [`keyturn_core::provider::ProviderError`], mapped in `error.rs`. Answers 2xx for every
//! verified event, including ignored types, so providers never retry what Keyturn does not act
//! on.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use keyturn_app::{EventEnvelope, EventOutcome, PaymentGateway, ProviderError};
use keyturn_providers::{fastspring, gumroad, lemonsqueezy, paddle, paypal, stripe, Verified};
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
        .route("/webhooks/paypal", post(paypal))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A JSON event's text: UTF-8, and no control characters in its strings.
fn json_text(verified: &Verified<'_>) -> Result<(), ApiError> {
    let text = verified.text()?;
    if let Some(c) = crate::text::in_json(verified.body()) {
        let value = serde_json::from_str::<Value>(text).unwrap_or_default();
        let field = crate::text::json_field(&value).unwrap_or_default();
        return Err(ApiError::invalid(crate::text::message(&field, c)));
    }
    Ok(())
}

/// `result` as it was, after counting a refusal that says a provider's set-up is wrong (a bad
/// signature or secret, a provider not configured) for the console's status page.
async fn noted<T>(
    state: &AppState,
    provider: &str,
    result: Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    if let Err(e) = &result {
        state.app.note_refusal(provider, e).await;
    }
    result
}

/// Applies what the adapter translated; the reply lists what each event did (one event: its
/// outcome alone).
async fn apply(
    state: &AppState,
    gateway: Option<&dyn PaymentGateway>,
    events: Result<Vec<EventEnvelope>, ProviderError>,
) -> Result<Json<Value>, ApiError> {
    let outcomes = state.app.apply_provider_events(gateway, events?).await?;
    let list: Vec<Value> = outcomes.into_iter().map(outcome).collect();
    Ok(Json(match list.len() {
        1 => list.into_iter().next().expect("one outcome"),
        _ => json!({"received": true, "events": list}),
    }))
}

fn outcome(o: EventOutcome) -> Value {
    match o {
        EventOutcome::Applied(detail) => {
            json!({"received": true, "status": "applied", "detail": detail})
        }
        EventOutcome::Ignored => json!({"received": true, "status": "ignored"}),
        EventOutcome::Duplicate => json!({"received": true, "status": "duplicate"}),
    }
}

async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let adapter = state.providers.stripe.as_ref().ok_or_else(|| {
        ProviderError::NotConfigured(
            "Stripe webhooks are not configured (set KEYTURN_STRIPE_WEBHOOK_SECRET)".into(),
        )
    });
    let adapter = noted(&state, "stripe", adapter).await?;
    let verified = adapter.verify(header(&headers, "stripe-signature"), &body, Utc::now());
    let verified = noted(&state, "stripe", verified).await?;
    json_text(&verified)?;
    let gateway = state
        .gateways
        .stripe
        .as_ref()
        .map(|g| g as &dyn PaymentGateway);
    apply(&state, gateway, stripe::translate(&verified)).await
}

async fn paypal(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let adapter =
        state.providers.paypal.as_ref().ok_or_else(|| {
            ProviderError::NotConfigured("PayPal webhooks are not configured".into())
        });
    let adapter = noted(&state, "paypal", adapter).await?;
    let verified = adapter.verify(&headers, &body, Utc::now()).await;
    let verified = noted(&state, "paypal", verified).await?;
    json_text(&verified)?;
    let gateway = state
        .gateways
        .paypal
        .as_ref()
        .map(|g| g as &dyn PaymentGateway);
    apply(&state, gateway, paypal::translate(&verified)).await
}

async fn paddle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = &state.providers.stores;
    let signature = header(&headers, "paddle-signature");
    let verified = paddle::verify(signature, &body, &s.paddle, s.tolerance, Utc::now());
    let verified = noted(&state, "paddle", verified).await?;
    json_text(&verified)?;
    apply(&state, None, paddle::translate(&verified, s.email_buyers)).await
}

async fn lemonsqueezy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = &state.providers.stores;
    let signature = header(&headers, "x-signature");
    let verified = lemonsqueezy::verify(signature, &body, &s.lemonsqueezy, Utc::now());
    let verified = noted(&state, "lemonsqueezy", verified).await?;
    json_text(&verified)?;
    let events = lemonsqueezy::translate(&verified, s.email_buyers);
    apply(&state, None, events).await
}

async fn fastspring(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = &state.providers.stores;
    let signature = header(&headers, "x-fs-signature");
    let verified = fastspring::verify(signature, &body, &s.fastspring, Utc::now());
    let verified = noted(&state, "fastspring", verified).await?;
    json_text(&verified)?;
    let events = fastspring::translate(&verified, s.email_buyers);
    apply(&state, None, events).await
}

async fn gumroad(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let s = &state.providers.stores;
    // An unconfigured store and a wrong secret look alike: neither tells a prober anything.
    let verified = gumroad::verify(&secret, s.gumroad.as_deref(), &body, Utc::now());
    let verified = noted(&state, "gumroad", verified)
        .await
        .map_err(|_| ApiError::not_found("route"))?;
    if let Some((field, c)) = crate::text::in_urlencoded(verified.body()) {
        return Err(ApiError::invalid(crate::text::message(&field, c)));
    }
    apply(&state, None, gumroad::translate(&verified, s.email_buyers)).await
}
