//! Outgoing webhooks as the vendor manages them: `/v1/webhook-endpoints` (their signing secrets
//! shown once, on creation and rotation), each endpoint's deliveries, the log of one delivery,
//! retries and test events.

use axum::extract::{FromRequest, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use keyturn_app::{
    DeliveryLog, EndpointSecret, NewWebhookEndpoint, Page, PageRequest, WebhookEndpointPatch,
};
use keyturn_core::webhook::{WebhookDelivery, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path, Query};
use crate::serde_util::{nullable, Date};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhook-endpoints", get(list).post(create))
        .route(
            "/webhook-endpoints/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/webhook-endpoints/{id}/rotate", post(rotate))
        .route("/webhook-endpoints/{id}/deliveries", get(deliveries))
        .route("/webhook-endpoints/{id}/retry", post(retry_failed))
        .route("/webhook-endpoints/{id}/test", post(test))
        .route("/webhook-deliveries/{id}", get(delivery))
        .route("/webhook-deliveries/{id}/retry", post(retry))
}

type Reply<T> = Result<axum::Json<T>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    description: Option<String>,
    /// Patterns such as `license.*`; absent: everything.
    events: Option<Vec<String>>,
    product_id: Option<i64>,
    enabled: Option<bool>,
}

/// An endpoint with the secret that signs its deliveries: shown only in this answer.
#[derive(Serialize)]
struct WithSecret {
    #[serde(flatten)]
    endpoint: WebhookEndpoint,
    secret: String,
}

impl From<EndpointSecret> for WithSecret {
    fn from(e: EndpointSecret) -> Self {
        Self {
            secret: e.secret.expose().to_owned(),
            endpoint: e.endpoint,
        }
    }
}

async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<WithSecret>), ApiError> {
    let input = NewWebhookEndpoint {
        url: b.url,
        description: b.description,
        events: b.events,
        product_id: b.product_id,
        enabled: b.enabled,
    };
    let created = state.app.create_webhook_endpoint(&principal, input).await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(q): Query<PageQuery>,
) -> Reply<Page<WebhookEndpoint>> {
    let page = PageRequest {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(axum::Json(
        state.app.webhook_endpoints(&principal, &page).await?,
    ))
}

async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<WebhookEndpoint> {
    Ok(axum::Json(
        state.app.webhook_endpoint(&principal, id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    url: Option<String>,
    description: Option<String>,
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    product_id: Option<Option<i64>>,
    enabled: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<PatchBody>,
) -> Reply<WebhookEndpoint> {
    let patch = WebhookEndpointPatch {
        url: b.url,
        description: b.description,
        events: b.events,
        product_id: b.product_id,
        enabled: b.enabled,
    };
    Ok(axum::Json(
        state
            .app
            .update_webhook_endpoint(&principal, id, patch)
            .await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_webhook_endpoint(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Hours the old secret keeps signing beside the new one (default 24, at most 168).
    overlap_hours: Option<i64>,
}

/// The body is optional: none rotates with the default overlap.
async fn rotate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    request: axum::extract::Request,
) -> Reply<WithSecret> {
    let empty = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .is_none_or(|n| n == "0");
    let b = if empty {
        RotateBody::default()
    } else {
        let Json(b) = Json::<RotateBody>::from_request(request, &state).await?;
        b
    };
    Ok(axum::Json(
        state
            .app
            .rotate_webhook_secret(&principal, id, b.overlap_hours)
            .await?
            .into(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Query(q): Query<DeliveryQuery>,
) -> Reply<Page<WebhookDelivery>> {
    let page = PageRequest {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(axum::Json(
        state
            .app
            .webhook_deliveries(&principal, id, q.state.as_deref(), &page)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFailedBody {
    /// Deliveries that failed for good at or after this time.
    since: Date,
}

async fn retry_failed(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<RetryFailedBody>,
) -> Reply<Value> {
    let retried = state
        .app
        .retry_failed_webhook_deliveries(&principal, id, b.since.0)
        .await?;
    Ok(axum::Json(json!({ "retried": retried })))
}

async fn test(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<(StatusCode, axum::Json<WebhookDelivery>), ApiError> {
    let delivery = state.app.send_test_webhook(&principal, id).await?;
    Ok((StatusCode::CREATED, axum::Json(delivery)))
}

async fn delivery(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<DeliveryLog> {
    Ok(axum::Json(
        state.app.webhook_delivery(&principal, id).await?,
    ))
}

async fn retry(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<WebhookDelivery> {
    Ok(axum::Json(
        state.app.retry_webhook_delivery(&principal, id).await?,
    ))
}
