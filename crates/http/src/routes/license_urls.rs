//! License URLs: `GET|POST /l/{id}/{secret}` for stores (plain-text keys, one per line), and
//! their management under `/v1/license-urls`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyturn_app::{AppError, LicenseUrlSecret, NewLicenseUrl, ProviderError};
use keyturn_core::payment::LicenseUrl;
use keyturn_providers::license_url;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::extract::{Auth, Path};
use crate::{ApiError, AppState};

pub fn store_router() -> Router<AppState> {
    Router::new().route("/l/{id}/{secret}", get(sale).post(sale))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/license-urls", get(list).post(create))
        .route("/license-urls/{id}", axum::routing::delete(remove))
        .route("/license-urls/{id}/rotate", post(rotate))
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Stores show the answer to the buyer, so even errors are plain text.
async fn sale(
    State(state): State<AppState>,
    axum::extract::Path((id, secret)): axum::extract::Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let not_found = || text(StatusCode::NOT_FOUND, "not found\n".into());
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let mut params: HashMap<String, String> = query
        .as_deref()
        .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        if let Some((field, c)) = crate::text::in_urlencoded(&body) {
            return text(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::text::message(&field, c) + "\n",
            );
        }
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
            Ok(fields) => params.extend(fields),
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "the form body is malformed\n".into(),
                )
            }
        }
    }
    // verify → translate → apply, as every provider's sale.
    let sale = async {
        let url = state.app.license_url_for_sale(id, &secret).await?;
        let sale = license_url::translate(&url, &params, chrono::Utc::now())?;
        state.app.apply_license_url_sale(sale).await
    };
    match sale.await {
        Ok(keys) => text(StatusCode::OK, keys.join("\n") + "\n"),
        Err(AppError::NotFound(_)) => not_found(),
        Err(AppError::Invalid(e)) => text(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")),
        Err(AppError::Provider(ProviderError::Malformed(e))) => {
            text(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n"))
        }
        Err(e) => {
            let error = ApiError::from(e);
            let mut reply = text(
                error.status(),
                "the license could not be issued; please try again\n".into(),
            );
            if let Some(secs) = error.retry_after() {
                reply.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            reply
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    plan_id: i64,
    name: String,
    store: String,
    order_id_param: Option<String>,
    name_param: Option<String>,
    email_param: Option<String>,
    quantity_param: Option<String>,
    item_param: Option<String>,
    #[serde(default)]
    email_buyer: bool,
}

#[derive(Serialize)]
struct Created {
    /// The path to give the store, secret included; shown only now.
    path: String,
    #[serde(flatten)]
    url: LicenseUrl,
}

impl From<LicenseUrlSecret> for Created {
    fn from(s: LicenseUrlSecret) -> Self {
        Self {
            path: s.path,
            url: s.url,
        }
    }
}

async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    crate::extract::Json(b): crate::extract::Json<CreateBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let input = NewLicenseUrl {
        plan_id: b.plan_id,
        name: b.name,
        store: b.store,
        order_id_param: b.order_id_param,
        name_param: b.name_param,
        email_param: b.email_param,
        quantity_param: b.quantity_param,
        item_param: b.item_param,
        email_buyer: b.email_buyer,
    };
    let created = state.app.create_license_url(&principal, input).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"data": state.app.license_urls(&principal).await?}),
    ))
}

async fn rotate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<Json<Created>, ApiError> {
    Ok(Json(
        state.app.rotate_license_url(&principal, id).await?.into(),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_license_url(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
