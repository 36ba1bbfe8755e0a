//! Licenses and their activations, as the vendor manages them with an access token.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use keyturn_app::{
    BlockReasons, Extension, LicenseFileRequest, LicensePatch, LicenseQuery, LicenseSpec, Page,
    PageRequest,
};
use keyturn_core::{Activation, License, LicenseEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Auth, Json, JsonOrEmpty, Path, Query};
use crate::serde_util::{date, nullable, Date};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/licenses", get(list).post(create))
        .route(
            "/licenses/import",
            // 10,000 keys do not fit the general body limit.
            post(import).layer(axum::extract::DefaultBodyLimit::max(IMPORT_BODY_BYTES)),
        )
        .route("/licenses/by-key/{key}", get(by_key))
        .route("/licenses/{id}", get(show).patch(update).delete(remove))
        .route("/licenses/{id}/extend", post(extend))
        .route("/licenses/{id}/block", post(block))
        .route("/licenses/{id}/unblock", post(unblock))
        .route("/licenses/{id}/features", post(add_feature))
        .route("/licenses/{id}/features/{feature}", delete(remove_feature))
        .route("/licenses/{id}/events", get(events))
        .route("/licenses/{id}/file", post(license_file))
        .route("/licenses/{id}/activations", get(activations))
        .route("/activations/{id}", delete(delete_activation))
}

type Reply<T> = Result<axum::Json<T>, ApiError>;

/// Room for an import of the most keys allowed, each up to 128 characters.
const IMPORT_BODY_BYTES: usize = 2 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    product_id: Option<i64>,
    plan_id: Option<i64>,
    period_days: Option<i64>,
    expires: Option<Date>,
    max_machines: Option<i64>,
    features: Option<Vec<String>>,
    floating_lease_seconds: Option<i64>,
    trial: Option<bool>,
    customer_id: Option<i64>,
    notes: Option<String>,
    metadata: Option<Value>,
    blocked: Option<bool>,
    quantity: Option<i64>,
    trial_activation: Option<bool>,
    allowed_machines: Option<Vec<String>>,
}

impl CreateBody {
    fn into_spec(self) -> LicenseSpec {
        let b = self;
        LicenseSpec {
            product_id: b.product_id,
            plan_id: b.plan_id,
            period_days: b.period_days,
            expires: date(b.expires),
            max_machines: b.max_machines,
            features: b.features,
            floating_lease_seconds: b.floating_lease_seconds,
            trial: b.trial,
            customer_id: b.customer_id,
            notes: b.notes,
            metadata: b.metadata,
            blocked: b.blocked,
            quantity: b.quantity,
            trial_activation: b.trial_activation,
            allowed_machines: b.allowed_machines,
        }
    }
}

/// One license in, the license out; with `quantity`, `{"data": [...]}` whatever the number.
async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<CreateBody>,
) -> Result<Response, ApiError> {
    let batch = b.quantity.is_some();
    let mut licenses = state.app.create_licenses(&principal, b.into_spec()).await?;
    Ok(if batch {
        (StatusCode::CREATED, axum::Json(json!({ "data": licenses }))).into_response()
    } else {
        (StatusCode::CREATED, axum::Json(licenses.remove(0))).into_response()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// What every imported license is, as for creating one (without `quantity`).
    license: CreateBody,
    keys: Vec<String>,
}

/// Keys issued elsewhere become licenses, all or none: `{"imported": n}`.
async fn import(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<ImportBody>,
) -> Result<Response, ApiError> {
    let imported = state
        .app
        .import_licenses(&principal, b.license.into_spec(), b.keys)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "imported": imported })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFilter {
    product_id: Option<i64>,
    customer_id: Option<i64>,
    email: Option<String>,
    blocked: Option<bool>,
    expires_before: Option<Date>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(f): Query<ListFilter>,
) -> Reply<Page<License>> {
    let query = LicenseQuery {
        product_id: f.product_id,
        customer_id: f.customer_id,
        email: f.email,
        blocked: f.blocked,
        expires_before: date(f.expires_before),
        trial: None,
        page: PageRequest {
            cursor: f.cursor,
            limit: f.limit,
        },
    };
    Ok(axum::Json(state.app.licenses(&principal, query).await?))
}

async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<License> {
    Ok(axum::Json(state.app.license(&principal, id).await?))
}

async fn by_key(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(key): Path<String>,
) -> Reply<License> {
    Ok(axum::Json(
        state.app.license_by_key(&principal, &key).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    max_machines: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    customer_id: Option<Option<i64>>,
    notes: Option<String>,
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    expires: Option<Option<Date>>,
    #[serde(default, deserialize_with = "nullable")]
    floating_lease_seconds: Option<Option<i64>>,
}

async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<PatchBody>,
) -> Reply<License> {
    let patch = LicensePatch {
        max_machines: b.max_machines,
        customer_id: b.customer_id,
        notes: b.notes,
        metadata: b.metadata,
        expires: b.expires.map(date),
        floating_lease_seconds: b.floating_lease_seconds,
    };
    Ok(axum::Json(
        state.app.update_license(&principal, id, patch).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.app.delete_license(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    days: Option<i64>,
    until: Option<Date>,
}

async fn extend(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<ExtendBody>,
) -> Reply<License> {
    let extension = match (b.days, b.until) {
        (Some(days), None) => Extension::Days(days),
        (None, Some(Date(until))) => Extension::Until(until),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                "give exactly one of days or until",
            ))
        }
    };
    Ok(axum::Json(
        state.app.extend_license(&principal, id, extension).await?,
    ))
}

/// Why a license is blocked, both optional: `reason` for the audit log, `public_reason` for
/// its buyer in the customer portal.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    reason: Option<String>,
    public_reason: Option<String>,
}

async fn block(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    JsonOrEmpty(b): JsonOrEmpty<BlockBody>,
) -> Reply<License> {
    let reasons = BlockReasons {
        internal: b.reason.as_deref(),
        public: b.public_reason.as_deref(),
    };
    Ok(axum::Json(
        state
            .app
            .set_blocked_because(&principal, id, true, reasons)
            .await?,
    ))
}

async fn unblock(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<License> {
    Ok(axum::Json(
        state.app.set_blocked(&principal, id, false).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureBody {
    feature: String,
}

async fn add_feature(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<FeatureBody>,
) -> Reply<License> {
    Ok(axum::Json(
        state.app.add_feature(&principal, id, &b.feature).await?,
    ))
}

async fn remove_feature(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, feature)): Path<(i64, String)>,
) -> Reply<License> {
    Ok(axum::Json(
        state.app.remove_feature(&principal, id, &feature).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn events(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> Reply<Page<LicenseEvent>> {
    let page = PageRequest {
        cursor: q.cursor,
        limit: q.limit,
    };
    Ok(axum::Json(
        state.app.license_events(&principal, id, &page).await?,
    ))
}

async fn activations(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<Value> {
    let activations = state.app.activations(&principal, id).await?;
    Ok(axum::Json(json!({ "data": activations })))
}

async fn delete_activation(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<Activation> {
    Ok(axum::Json(
        state.app.delete_activation(&principal, id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    fingerprint: Option<String>,
    ttl_days: Option<i64>,
    #[serde(default)]
    encrypt: bool,
}

/// The signed license file, as text (`-----BEGIN LICENSE FILE-----` …).
async fn license_file(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<FileBody>,
) -> Result<Response, ApiError> {
    let request = LicenseFileRequest {
        fingerprint: b.fingerprint,
        ttl_days: b.ttl_days,
        encrypt: b.encrypt,
    };
    let text = state
        .app
        .issue_license_file(&principal, id, request)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response())
}
