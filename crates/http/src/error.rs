//! The one place where errors become HTTP: `{"error": {"code", "message"}}` with a fitting status.

use axum::extract::rejection::PathRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use keyturn_app::{AppError, ProviderError, StoreError};
use keyturn_core::ActivationRefusal;
use serde_json::json;

/// Seconds a client is told to wait before retrying when the database is unavailable.
pub const UNAVAILABLE_RETRY_AFTER: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// `code` is snake_case, as every error code of the API (validation *verdicts* such as
    /// `NOT_ACTIVATED` are a separate vocabulary, in upper case).
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "error codes are snake_case: {code}"
        );
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry in {retry_after} s"),
            )
        }
    }

    /// The database could not do the work now; nothing the request asked for is acknowledged.
    pub fn unavailable(reason: &str) -> Self {
        tracing::warn!(%reason, "answered 503: the database is unavailable");
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_AFTER),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; the request was not completed, retry shortly",
            )
        }
    }

    /// Input that breaks a rule, said in `message` (which names the field).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The body every error reply carries: `{"code", "message"}` under `error`.
    pub fn body(&self) -> serde_json::Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(d) => Self::invalid(d.to_string()),
            AppError::NotFound(what) => Self::not_found(what.noun()),
            AppError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            AppError::Refused(r) => {
                let status = match r {
                    ActivationRefusal::TooManyMachines => StatusCode::CONFLICT,
                    _ => StatusCode::FORBIDDEN,
                };
                let code = match r {
                    ActivationRefusal::WrongProduct => "wrong_product",
                    ActivationRefusal::Blocked => "blocked",
                    ActivationRefusal::Expired => "expired",
                    ActivationRefusal::TooManyMachines => "too_many_machines",
                };
                Self::new(status, code, r.message())
            }
            AppError::BoundReached => Self::new(
                StatusCode::CONFLICT,
                "bound_reached",
                "the value would pass its bound; it is unchanged",
            ),
            AppError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid access token is required (Authorization: Bearer <token>)",
            ),
            AppError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            AppError::Provider(e) => e.into(),
            AppError::Store(StoreError::Conflict(what)) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("conflicts with an existing record ({what})"),
            ),
            AppError::Store(StoreError::MissingReference(what)) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                format!("refers to a record that does not exist ({what})"),
            ),
            AppError::Store(StoreError::Unavailable(reason)) => Self::unavailable(&reason),
            AppError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed to complete the request",
                )
            }
        }
    }
}

/// A provider's request that is not accepted, or a provider that did not do what was asked.
impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        let (status, code) = match &e {
            ProviderError::NotConfigured(_) => (StatusCode::NOT_FOUND, "not_configured"),
            ProviderError::BadSignature(_) => (StatusCode::BAD_REQUEST, "bad_signature"),
            ProviderError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_event"),
            ProviderError::Unavailable(_) => (StatusCode::BAD_GATEWAY, "provider_unavailable"),
            ProviderError::Unsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.body()});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
