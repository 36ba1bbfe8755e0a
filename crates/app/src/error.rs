use keyturn_core::provider::ProviderError;
use keyturn_core::{ActivationRefusal, DomainError};
use keyturn_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    /// Transparent: with `{0}` and `#[from]`, the rule would print twice in an error chain
    /// (once as this error, once as its source).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("{0} not found")]
    NotFound(Entity),
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

/// What a lookup did not find (or found beyond the caller's reach, which answers the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Activation,
    Checkout,
    /// A console user's session.
    ConsoleSession,
    ConsoleUser,
    Customer,
    DataObject,
    License,
    /// A feature the license does not have.
    LicenseFeature,
    LicenseUrl,
    /// A kind of mail a product's template can be for.
    MailTemplate,
    Message,
    Order,
    /// A message in the mail outbox.
    OutboxMail,
    Payment,
    PaymentForm,
    Plan,
    Product,
    ProviderEvent,
    Subscription,
    Token,
    Trial,
    /// A product's trial plan.
    TrialPlan,
    WebhookDelivery,
    WebhookEndpoint,
}

impl Entity {
    /// The noun people read in "… not found".
    pub fn noun(self) -> &'static str {
        match self {
            Entity::Activation => "activation",
            Entity::Checkout => "checkout",
            Entity::ConsoleSession => "session",
            Entity::ConsoleUser => "console user",
            Entity::Customer => "customer",
            Entity::DataObject => "data object",
            Entity::License => "license",
            Entity::LicenseFeature => "feature on this license",
            Entity::LicenseUrl => "license URL",
            Entity::MailTemplate => "kind of mail",
            Entity::Message => "message",
            Entity::Order => "order",
            Entity::OutboxMail => "mail in the outbox",
            Entity::Payment => "payment",
            Entity::PaymentForm => "payment form",
            Entity::Plan => "plan",
            Entity::Product => "product",
            Entity::ProviderEvent => "provider event",
            Entity::Subscription => "subscription",
            Entity::Token => "token",
            Entity::Trial => "trial",
            Entity::TrialPlan => "trial plan for this product",
            Entity::WebhookDelivery => "webhook delivery",
            Entity::WebhookEndpoint => "webhook endpoint",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.noun())
    }
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid(DomainError::new(field, message))
    }
}
