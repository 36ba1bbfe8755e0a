//! Messages to programs (`/v1/messages`); programs read them through the Cryptolens
//! `message/GetMessages` method.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use chrono::{DateTime, Utc};
use keyturn_app::{MessageQuery, NewMessage};
use keyturn_core::Message;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path, Query};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/messages", get(list).post(create))
        .route("/messages/{id}", delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    content: String,
    #[serde(default)]
    channel: String,
    /// None: for every product.
    product_id: Option<i64>,
    /// Publication time; now when not given.
    created: Option<DateTime<Utc>>,
}

async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let new = NewMessage {
        product_id: b.product_id,
        channel: b.channel,
        content: b.content,
        created: b.created,
    };
    let message = state.app.post_message(&principal, new).await?;
    Ok((StatusCode::CREATED, axum::Json(message)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// What this product's programs see: its messages and those for every product.
    product_id: Option<i64>,
    channel: Option<String>,
    /// Only messages published after this.
    since: Option<DateTime<Utc>>,
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let query = MessageQuery {
        product_id: q.product_id,
        channel: q.channel,
        after: q.since,
    };
    let messages = state.app.messages(&principal, query).await?;
    Ok(axum::Json(json!({ "data": messages })))
}

async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_message(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
