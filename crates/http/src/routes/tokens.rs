use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use keyturn_app::NewTokenInput;
use keyturn_core::{AccessToken, Permission};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path};
use crate::serde_util::{date, Date};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    permissions: Vec<Permission>,
    product_id: Option<i64>,
    /// Cryptolens key lock: a license id, or -1.
    key_lock: Option<i64>,
    /// Cryptolens feature lock: license fields Activate and GetKey hide.
    #[serde(default)]
    feature_lock: i64,
    expires: Option<Date>,
}

/// The secret appears in this reply only; the server keeps its hash.
#[derive(Serialize)]
struct Created {
    token: String,
    #[serde(flatten)]
    details: AccessToken,
}

async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<TokenBody>,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let (details, secret) = state
        .app
        .create_token(
            &principal,
            NewTokenInput {
                name: b.name,
                permissions: b.permissions,
                product_id: b.product_id,
                key_lock: b.key_lock,
                feature_lock: b.feature_lock,
                expires: date(b.expires),
            },
        )
        .await?;
    let body = Created {
        token: secret.expose().to_owned(),
        details,
    };
    Ok((StatusCode::CREATED, axum::Json(body)))
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<axum::Json<Value>, ApiError> {
    let tokens = state.app.tokens(&principal).await?;
    Ok(axum::Json(json!({ "data": tokens })))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<axum::Json<AccessToken>, ApiError> {
    Ok(axum::Json(state.app.revoke_token(&principal, id).await?))
}
