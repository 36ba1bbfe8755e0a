use keyturn_core::provider::ProviderError;
use keyturn_core::{ActivationRefusal, DomainError};
use keyturn_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(#[from] DomainError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{}", .0.message())]
    Refused(ActivationRefusal),
    /// A counter step that would pass its bound; the value is unchanged.
    #[error("the value would pass its bound")]
    BoundReached,
    #[error("a valid access token is required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    /// A payment provider refused or could not be reached; nothing was changed here.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid(DomainError::new(field, message))
    }
}
