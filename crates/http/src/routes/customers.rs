use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use keyturn_app::{CustomerPatch, NewCustomerInput, Page, PageRequest};
use keyturn_core::Customer;
use serde::{Deserialize, Serialize};

use crate::extract::{Auth, Json, Path, Query};
use crate::serde_util::nullable;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", get(show).patch(update).delete(remove))
        .route("/customers/{id}/secret", post(new_secret))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerBody {
    name: String,
    email: Option<String>,
    company: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<CustomerBody>,
) -> Result<(StatusCode, axum::Json<Customer>), ApiError> {
    let input = NewCustomerInput {
        name: b.name,
        email: b.email,
        company: b.company,
    };
    let customer = state.app.create_customer(&principal, input).await?;
    Ok((StatusCode::CREATED, axum::Json(customer)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerFilter {
    email: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(f): Query<CustomerFilter>,
) -> Result<axum::Json<Page<Customer>>, ApiError> {
    let page = PageRequest {
        cursor: f.cursor,
        limit: f.limit,
    };
    let customers = state
        .app
        .customers(&principal, f.email.as_deref(), &page)
        .await?;
    Ok(axum::Json(customers))
}

async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<axum::Json<Customer>, ApiError> {
    Ok(axum::Json(state.app.customer(&principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerPatchBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    company: Option<Option<String>>,
}

async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<CustomerPatchBody>,
) -> Result<axum::Json<Customer>, ApiError> {
    let patch = CustomerPatch {
        name: b.name,
        email: b.email,
        company: b.company,
    };
    Ok(axum::Json(
        state.app.update_customer(&principal, id, patch).await?,
    ))
}

/// Removes a customer; its licenses stay, without a customer.
async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<axum::Json<Customer>, ApiError> {
    Ok(axum::Json(state.app.delete_customer(&principal, id).await?))
}

/// The secret appears in this reply only; the server keeps its hash.
#[derive(Serialize)]
struct NewSecret {
    customer_id: i64,
    secret: String,
}

/// A new secret for the customer (Cryptolens `GetCustomerLicensesBySecret`), replacing any
/// it had.
async fn new_secret(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<(StatusCode, axum::Json<NewSecret>), ApiError> {
    let secret = state.app.new_customer_secret(&principal, id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewSecret {
            customer_id: id,
            secret: secret.expose().to_owned(),
        }),
    ))
}
