//! Products and plans.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use keyturn_app::{NewPlanInput, NewProductInput, PlanPatch, ProductPatch};
use keyturn_core::payment::{CancelRule, DunningRule, QuantityMode};
use keyturn_core::{BuyerRulesPatch, Plan, Product};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path, Query};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/products", get(list_products).post(create_product))
        .route("/products/{id}", get(get_product).patch(update_product))
        .route("/products/{id}/public-key", get(public_key))
        .route("/products/{id}/rsa-key", put(import_rsa_key))
        .route("/plans", get(list_plans).post(create_plan))
        .route("/plans/{id}", get(get_plan).patch(update_plan))
}

type Reply<T> = Result<axum::Json<T>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    public_notes: bool,
    #[serde(default)]
    public_metadata: Vec<String>,
    #[serde(default)]
    block_expired_licenses: bool,
}

async fn create_product(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<ProductBody>,
) -> Result<(StatusCode, axum::Json<Product>), ApiError> {
    let product = state
        .app
        .create_product(
            &principal,
            NewProductInput {
                name: body.name,
                description: body.description,
                features: body.features,
                public_notes: body.public_notes,
                public_metadata: body.public_metadata,
                block_expired_licenses: body.block_expired_licenses,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(product)))
}

async fn list_products(State(state): State<AppState>, Auth(principal): Auth) -> Reply<Value> {
    let products = state.app.products(&principal).await?;
    Ok(axum::Json(json!({ "data": products })))
}

async fn get_product(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<Product> {
    Ok(axum::Json(state.app.product(&principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductPatchBody {
    name: Option<String>,
    description: Option<String>,
    features: Option<Vec<String>>,
    public_notes: Option<bool>,
    public_metadata: Option<Vec<String>>,
    block_expired_licenses: Option<bool>,
}

async fn update_product(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(body): Json<ProductPatchBody>,
) -> Reply<Product> {
    let patch = ProductPatch {
        name: body.name,
        description: body.description,
        features: body.features,
        public_notes: body.public_notes,
        public_metadata: body.public_metadata,
        block_expired_licenses: body.block_expired_licenses,
    };
    Ok(axum::Json(
        state.app.update_product(&principal, id, patch).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFormat {
    format: Option<String>,
}

/// Public: programs embed it to verify signed replies. `?format=rsa-xml` gives the RSA key of
/// the Cryptolens-compatible API as the `<RSAKeyValue>` XML the Cryptolens SDKs take.
async fn public_key(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<KeyFormat>,
) -> Result<Response, ApiError> {
    match q.format.as_deref() {
        None | Some("ed25519") => {
            let key = state.app.public_key(id).await?;
            Ok(axum::Json(json!({
                "product_id": id,
                "algorithm": "ed25519",
                "public_key": key.to_base64(),
                "pem": key.to_pem(),
            }))
            .into_response())
        }
        Some("rsa-xml") => {
            let key = state.app.rsa_public_key(id).await?;
            Ok((
                [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
                key.to_xml(),
            )
                .into_response())
        }
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("format: {other:?} is not one of ed25519, rsa-xml"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RsaKeyBody {
    /// The key pair: .NET `<RSAKeyValue>` XML with private parts, or PEM (PKCS#1 or PKCS#8).
    private_key: String,
}

/// Replaces the product's RSA key (the Cryptolens-compatible API's) with a key pair brought
/// from elsewhere; answers with the public key it now publishes.
async fn import_rsa_key(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(body): Json<RsaKeyBody>,
) -> Reply<Value> {
    let public = state
        .app
        .import_rsa_key(&principal, id, &body.private_key)
        .await?;
    Ok(axum::Json(json!({
        "product_id": id,
        "algorithm": "rsa2048",
        "public_key": public.to_xml(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanBody {
    product_id: i64,
    name: String,
    period_days: Option<i64>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    max_machines: i64,
    floating_lease_seconds: Option<i64>,
    #[serde(default)]
    trial: bool,
    grace_days: Option<i64>,
    #[serde(default)]
    stripe_price_ids: Vec<String>,
    #[serde(default)]
    store_product_ids: Vec<String>,
    #[serde(default)]
    quantity_mode: QuantityMode,
    #[serde(default)]
    dunning: DunningRule,
    #[serde(default)]
    on_cancel: CancelRule,
    buyers_may_free_machines: Option<bool>,
    buyer_frees_max: Option<i64>,
    buyer_frees_days: Option<i64>,
    buyers_may_download_files: Option<bool>,
    buyer_file_days: Option<i64>,
    expiry_reminder_days: Option<i64>,
}

async fn create_plan(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<PlanBody>,
) -> Result<(StatusCode, axum::Json<Plan>), ApiError> {
    let plan = state
        .app
        .create_plan(
            &principal,
            NewPlanInput {
                product_id: b.product_id,
                name: b.name,
                period_days: b.period_days,
                features: b.features,
                max_machines: b.max_machines,
                floating_lease_seconds: b.floating_lease_seconds,
                trial: b.trial,
                grace_days: b.grace_days,
                stripe_price_ids: b.stripe_price_ids,
                store_product_ids: b.store_product_ids,
                quantity_mode: b.quantity_mode,
                dunning: b.dunning,
                on_cancel: b.on_cancel,
                buyers: BuyerRulesPatch {
                    buyers_may_free_machines: b.buyers_may_free_machines,
                    buyer_frees_max: b.buyer_frees_max,
                    buyer_frees_days: b.buyer_frees_days,
                    buyers_may_download_files: b.buyers_may_download_files,
                    buyer_file_days: b.buyer_file_days,
                },
                expiry_reminder_days: b.expiry_reminder_days,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(plan)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFilter {
    product_id: Option<i64>,
}

async fn list_plans(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Query(f): Query<PlanFilter>,
) -> Reply<Value> {
    let plans = state.app.plans(&principal, f.product_id).await?;
    Ok(axum::Json(json!({ "data": plans })))
}

async fn get_plan(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<Plan> {
    Ok(axum::Json(state.app.plan(&principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanPatchBody {
    name: Option<String>,
    grace_days: Option<i64>,
    stripe_price_ids: Option<Vec<String>>,
    store_product_ids: Option<Vec<String>>,
    quantity_mode: Option<QuantityMode>,
    dunning: Option<DunningRule>,
    on_cancel: Option<CancelRule>,
    buyers_may_free_machines: Option<bool>,
    buyer_frees_max: Option<i64>,
    buyer_frees_days: Option<i64>,
    buyers_may_download_files: Option<bool>,
    buyer_file_days: Option<i64>,
    expiry_reminder_days: Option<i64>,
}

async fn update_plan(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<PlanPatchBody>,
) -> Reply<Plan> {
    let patch = PlanPatch {
        name: b.name,
        grace_days: b.grace_days,
        stripe_price_ids: b.stripe_price_ids,
        store_product_ids: b.store_product_ids,
        quantity_mode: b.quantity_mode,
        dunning: b.dunning,
        on_cancel: b.on_cancel,
        buyers: BuyerRulesPatch {
            buyers_may_free_machines: b.buyers_may_free_machines,
            buyer_frees_max: b.buyer_frees_max,
            buyer_frees_days: b.buyer_frees_days,
            buyers_may_download_files: b.buyers_may_download_files,
            buyer_file_days: b.buyer_file_days,
        },
        expiry_reminder_days: b.expiry_reminder_days,
    };
    Ok(axum::Json(
        state.app.update_plan(&principal, id, patch).await?,
    ))
}
