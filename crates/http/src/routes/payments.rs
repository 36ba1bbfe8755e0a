//! What payments did: payments, provider events, and a sync of missed Stripe events.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use keyturn_app::{Page, PageRequest, SyncReport};
use keyturn_core::payment::{Payment, ProviderEvent, Subscription};
use keyturn_core::Permission;
use serde::Deserialize;

use crate::extract::{Auth, Path, Query};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/payments", get(list_payments))
        .route("/payments/{id}", get(show_payment))
        .route("/provider-events", get(list_events))
        .route("/provider-events/{provider}/{event_id}", get(show_event))
        .route(
            "/subscriptions/{provider}/{subscription_id}",
            get(show_subscription),
        )
        .route("/stripe/sync", post(stripe_sync))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentFilter {
    license_id: Option<i64>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list_payments(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(f): Query<PaymentFilter>,
) -> Result<Json<Page<Payment>>, ApiError> {
    let page = PageRequest {
        cursor: f.cursor,
        limit: f.limit,
    };
    Ok(Json(
        state.app.payments(&principal, f.license_id, &page).await?,
    ))
}

async fn show_payment(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<Json<Payment>, ApiError> {
    Ok(Json(state.app.payment(&principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFilter {
    provider: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list_events(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(f): Query<EventFilter>,
) -> Result<Json<Page<ProviderEvent>>, ApiError> {
    let page = PageRequest {
        cursor: f.cursor,
        limit: f.limit,
    };
    let events = state
        .app
        .provider_events(&principal, f.provider.as_deref(), &page)
        .await?;
    Ok(Json(events))
}

async fn show_event(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((provider, event_id)): Path<(String, String)>,
) -> Result<Json<ProviderEvent>, ApiError> {
    Ok(Json(
        state
            .app
            .provider_event(&principal, &provider, &event_id)
            .await?,
    ))
}

async fn show_subscription(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((provider, subscription_id)): Path<(String, String)>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(
        state
            .app
            .subscription(&principal, &provider, &subscription_id)
            .await?,
    ))
}

async fn stripe_sync(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<SyncReport>, ApiError> {
    principal.require_unrestricted(Permission::PaymentsWrite)?;
    let not_configured =
        |message: &str| ApiError::new(StatusCode::CONFLICT, "not_configured", message);
    let gateway = state
        .gateways
        .stripe
        .as_ref()
        .ok_or_else(|| not_configured("Stripe is not configured"))?;
    if gateway.0.is_none() {
        return Err(not_configured(
            "no Stripe API key is configured (set KEYTURN_STRIPE_API_KEY)",
        ));
    }
    Ok(Json(state.app.sync(gateway).await?))
}
