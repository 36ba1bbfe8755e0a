//! Cryptolens replies: `{"result":0|1,"message":…}` plus the method's fields. Every answer
//! about the call — a refusal, bad input, a method Keyturn does not serve, a rate limit (with
//! its `Retry-After`) — is HTTP 200 with `result: 1`, as Cryptolens answers them: the Java SDK
//! turns any other status into a library error without the message. Only a server fault keeps
//! its 5xx (500, or 503 with `Retry-After` while the database is away): nothing was stored,
//! no 2xx may say otherwise, and a program is better off taking it as "the server could not be
//! reached" (and falling back to its saved license) than as an answer about its key. The body
//! is in the Cryptolens shape all the same, for the SDKs that read it. The messages are
//! Cryptolens's exact strings, which the C++ SDK compares byte for byte.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keyturn_app::Entity;
use keyturn_app::{AppError, StoreError};
use keyturn_core::ActivationRefusal;
use serde::Serialize;
use serde_json::{json, Map, Value};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClError {
    #[error("Unable to authenticate.")]
    Unauthenticated,
    #[error("Access denied.")]
    AccessDenied,
    /// The detail is logged; the message stays Cryptolens's.
    #[error("The input parameters were incorrect.")]
    IncorrectInput(String),
    #[error("Could not find the product.")]
    ProductNotFound,
    #[error("Could not find the key.")]
    KeyNotFound,
    #[error("Could not find the customer.")]
    CustomerNotFound,
    /// Data-object methods: the key does not exist or the token's key lock does not reach it.
    #[error("Not enough permission and/or key not found.")]
    KeyOrPermission,
    #[error("Could not find the data object.")]
    DataObjectNotFound,
    #[error("The int value cannot pass the bound.")]
    BoundReached,
    #[error("Could not find the message.")]
    MessageNotFound,
    #[error("The key is blocked and cannot be accessed.")]
    Blocked,
    #[error("Cannot activate the new device as the limit has been reached.")]
    LimitReached,
    #[error("The key has expired.")]
    Expired,
    #[error(
        "Either the machine code was never activated or key activation feature was never set up."
    )]
    NotActivated,
    #[error("The machine code cannot be null.")]
    MachineCodeMissing,
    #[error("The machine code cannot exceed 128 chars in length.")]
    MachineCodeTooLong,
    #[error("{0}")]
    Refused(String),
    #[error("Too many requests; retry in {0} s.")]
    TooManyRequests(u64),
    /// A method Keyturn does not serve (a Cryptolens method without a counterpart, or none
    /// at all); the text names it and, when there is one, what to use instead.
    #[error("{0}")]
    NotSupported(String),
    #[error("Something went wrong.")]
    Internal,
    /// The database is unavailable (logged); the caller should retry.
    #[error("The service is temporarily unavailable; please retry.")]
    Unavailable,
}

impl From<AppError> for ClError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(d) => ClError::IncorrectInput(d.to_string()),
            AppError::NotFound(Entity::Product) => ClError::ProductNotFound,
            AppError::NotFound(Entity::Customer) => ClError::CustomerNotFound,
            AppError::NotFound(Entity::Activation) => ClError::NotActivated,
            AppError::NotFound(Entity::DataObject) => ClError::DataObjectNotFound,
            AppError::NotFound(Entity::Message) => ClError::MessageNotFound,
            AppError::BoundReached => ClError::BoundReached,
            AppError::NotFound(_) => ClError::KeyNotFound,
            AppError::Refused(ActivationRefusal::Blocked) => ClError::Blocked,
            AppError::Refused(ActivationRefusal::TooManyMachines) => ClError::LimitReached,
            AppError::Refused(ActivationRefusal::WrongProduct) => ClError::KeyNotFound,
            AppError::Refused(ActivationRefusal::Expired) => ClError::Expired,
            AppError::Unauthenticated => ClError::Unauthenticated,
            AppError::Forbidden(_) => ClError::AccessDenied,
            AppError::Conflict(m) => ClError::Refused(m),
            AppError::Provider(e) => ClError::Refused(e.to_string()),
            AppError::Store(StoreError::Conflict(what) | StoreError::MissingReference(what)) => {
                ClError::IncorrectInput(what)
            }
            AppError::Store(StoreError::Unavailable(reason)) => {
                tracing::warn!(%reason, "answered 503: the database is unavailable");
                ClError::Unavailable
            }
            AppError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                ClError::Internal
            }
        }
    }
}

impl IntoResponse for ClError {
    fn into_response(self) -> Response {
        let status = match &self {
            ClError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ClError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        };
        if let ClError::IncorrectInput(detail) = &self {
            tracing::debug!(%detail, "cryptolens request refused");
        }
        let body = json!({"result": 1, "message": self.to_string()});
        let mut response = json_response(status, &body);
        let retry_after = match self {
            ClError::TooManyRequests(secs) => Some(secs),
            ClError::Unavailable => Some(crate::error::UNAVAILABLE_RETRY_AFTER),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("replies always serialise");
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A successful reply: the method's fields, then `result` and `message`.
pub fn ok(fields: Value, message: &str) -> Response {
    let mut map = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    map.insert("result".into(), json!(0));
    map.insert("message".into(), json!(message));
    json_response(StatusCode::OK, &Value::Object(map))
}

pub type ClResult = Result<Response, ClError>;
