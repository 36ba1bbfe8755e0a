//! Data objects of products, licenses and activated machines: `/v1/<owner>/{id}/data`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::Router;
use keyturn_app::{DataChange, NewDataObject};
use keyturn_core::{DataObject, DataOwner};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(routes::<OfProduct>("/products"))
        .merge(routes::<OfLicense>("/licenses"))
        .merge(routes::<OfMachine>("/activations"))
}

/// What the id in the path names.
trait Owner: Send + Sync + 'static {
    fn owner(id: i64) -> DataOwner;
}

struct OfProduct;
struct OfLicense;
struct OfMachine;

impl Owner for OfProduct {
    fn owner(id: i64) -> DataOwner {
        DataOwner::Product(id)
    }
}

impl Owner for OfLicense {
    fn owner(id: i64) -> DataOwner {
        DataOwner::License(id)
    }
}

impl Owner for OfMachine {
    fn owner(id: i64) -> DataOwner {
        DataOwner::Machine(id)
    }
}

fn routes<O: Owner>(base: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{base}/{{id}}/data"),
            get(list::<O>).post(create::<O>),
        )
        .route(
            &format!("{base}/{{id}}/data/{{data_id}}"),
            patch(update::<O>).delete(remove::<O>),
        )
        .route(
            &format!("{base}/{{id}}/data/{{data_id}}/increment"),
            post(increment::<O>),
        )
        .route(
            &format!("{base}/{{id}}/data/{{data_id}}/decrement"),
            post(decrement::<O>),
        )
}

type Reply<T> = Result<axum::Json<T>, ApiError>;

async fn list<O: Owner>(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
) -> Reply<Value> {
    let objects = state.app.data_objects(&principal, O::owner(id)).await?;
    Ok(axum::Json(json!({ "data": objects })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    string_value: String,
    #[serde(default)]
    int_value: i64,
    /// Refuse it if the owner has a data object of this name already.
    #[serde(default)]
    unique: bool,
}

async fn create<O: Owner>(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<i64>,
    Json(b): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<DataObject>), ApiError> {
    let new = NewDataObject {
        name: b.name,
        string_value: b.string_value,
        int_value: b.int_value,
        unique: b.unique,
    };
    let object = state
        .app
        .add_data_object(&principal, O::owner(id), new)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(object)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    string_value: Option<String>,
    int_value: Option<i64>,
}

async fn update<O: Owner>(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, data_id)): Path<(i64, i64)>,
    Json(b): Json<UpdateBody>,
) -> Reply<DataObject> {
    if b.string_value.is_none() && b.int_value.is_none() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "give string_value, int_value or both",
        ));
    }
    let change = DataChange::Set {
        string_value: b.string_value,
        int_value: b.int_value,
    };
    change_object::<O>(&state, &principal, id, data_id, change).await
}

async fn remove<O: Owner>(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, data_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .remove_data_object(&principal, O::owner(id), data_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    /// 1 when not given.
    amount: Option<i64>,
    /// The value the counter may reach but not pass.
    bound: Option<i64>,
}

async fn increment<O: Owner>(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, data_id)): Path<(i64, i64)>,
    Json(b): Json<StepBody>,
) -> Reply<DataObject> {
    let change = DataChange::Increment {
        amount: b.amount.unwrap_or(1),
        bound: b.bound,
    };
    change_object::<O>(&state, &principal, id, data_id, change).await
}

async fn decrement<O: Owner>(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, data_id)): Path<(i64, i64)>,
    Json(b): Json<StepBody>,
) -> Reply<DataObject> {
    let change = DataChange::Decrement {
        amount: b.amount.unwrap_or(1),
        bound: b.bound,
    };
    change_object::<O>(&state, &principal, id, data_id, change).await
}

async fn change_object<O: Owner>(
    state: &AppState,
    principal: &keyturn_app::Principal,
    id: i64,
    data_id: i64,
    change: DataChange,
) -> Reply<DataObject> {
    Ok(axum::Json(
        state
            .app
            .change_data_object(principal, O::owner(id), data_id, change)
            .await?,
    ))
}
