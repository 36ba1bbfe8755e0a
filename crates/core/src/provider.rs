//! What crosses between a payment provider's adapter and the payment pipeline, in the pipeline's
//! terms.
//!
//! An adapter verifies an inbound request and translates it into [`EventEnvelope`]s: the record
//! Keyturn keeps of each event (provider, id, type, time, raw payload) together with the
//! [`PaymentEvent`] it stands for. The pipeline applies them and says what each did
//! ([`EventOutcome`]). Calls out to a provider (start a checkout, capture an order, read what a
//! checkout sold, list events) speak in [`CheckoutRequest`], [`CheckoutStarted`] and
//! [`LineItems`]. Whatever goes wrong on the provider's side is one [`ProviderError`], mapped to
//! a reply in one place.
//!
//! Nothing here names a provider: a provider is the name it is recorded under, and what differs
//! between providers is data the adapter fills in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::payment::PaymentEvent;

/// One event a provider reported, verified and translated.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// The name the provider's records carry (`provider_events.provider`, `payments.provider`).
    pub provider: String,
    /// The provider's id for the event; the pipeline applies an id once.
    pub event_id: String,
    pub event_type: String,
    /// The provider's time for the event; orders reports about one subscription.
    pub created: DateTime<Utc>,
    /// The raw notification, kept for the record.
    pub payload: String,
    /// Whether the integration wants new keys mailed to the buyer.
    pub notify_buyer: bool,
    /// How the licenses of this provider's subscriptions name their subscription.
    pub subscription_label: SubscriptionLabel,
    /// What the event means; `None` for types that change no license (recorded as ignored).
    pub event: Option<PaymentEvent>,
}

/// How a subscription's license names its subscription in its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionLabel {
    /// `{"provider": <provider>, "subscription_id": <id>}`.
    #[default]
    Provider,
    /// `{<key>: <id>}`: the one key a provider's licenses have always carried.
    Key(&'static str),
}

impl SubscriptionLabel {
    /// The metadata entries naming `subscription` of `provider`.
    pub fn metadata(self, provider: &str, subscription: &str) -> serde_json::Value {
        match self {
            Self::Provider => {
                serde_json::json!({"provider": provider, "subscription_id": subscription})
            }
            Self::Key(key) => serde_json::json!({ key: subscription }),
        }
    }
}

/// Where a provider event stands in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderEventStatus {
    /// Being applied now (held until its transaction ends).
    Processing,
    Applied,
    /// A type Keyturn does not act on.
    Ignored,
    /// Not applied, with the reason; applied again when redelivered.
    Failed,
}

impl ProviderEventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "processing" => Some(Self::Processing),
            "applied" => Some(Self::Applied),
            "ignored" => Some(Self::Ignored),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Applied or ignored: a delivery of it again changes nothing.
    pub fn is_handled(self) -> bool {
        matches!(self, Self::Applied | Self::Ignored)
    }
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Applied now; the text says what it did.
    Applied(String),
    /// A type Keyturn does not act on; recorded.
    Ignored,
    /// Seen before and already handled: nothing changed.
    Duplicate,
}

/// Why a provider's request was not accepted, or a call to a provider did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// This server is not set up for the integration (no secret, no credentials).
    #[error("{0}")]
    NotConfigured(String),
    /// The request is not shown to come from the provider: signature missing, wrong or stale.
    #[error("{0}")]
    BadSignature(String),
    /// The body is not a notification of the provider.
    #[error("{0}")]
    Malformed(String),
    /// The provider could not be reached, or answered with an error.
    #[error("{0}")]
    Unavailable(String),
    /// The provider cannot do what was asked (an offer it has no price for).
    #[error("{0}")]
    Unsupported(String),
}

/// What a buyer chose on a payment form, for the provider that is to charge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The form's public id; also the provider's reference for the checkout.
    pub form: String,
    /// Where the form is, without a trailing slash (`https://shop.example/buy/<form>`): the
    /// provider sends the buyer back below it, or to it when they cancel.
    pub form_url: String,
    pub plan_id: i64,
    pub quantity: i64,
    /// What the buyer sees for the offer.
    pub label: String,
    pub mode: crate::payment::OfferMode,
    /// The provider's price for the offer, when the provider charges its own price (Stripe).
    pub price_id: Option<String>,
    /// What the provider must take, when Keyturn states the amount: hundredths of `.1`.
    pub total: Option<(i64, String)>,
    pub buyer_name: String,
    pub buyer_email: String,
}

/// A checkout the provider opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutStarted {
    /// The provider's id for it: what its sale reports as the order.
    pub session_id: String,
    /// Where to send the buyer to pay.
    pub redirect_url: String,
    /// The amount and currency a capture must show to pay for it, where Keyturn checks that
    /// (the provider charges an amount Keyturn stated); `None` where the provider charges its
    /// own price.
    pub expected: Option<(i64, String)>,
}

/// What a provider's record of a sale says was bought.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItems {
    /// Price, plan and product ids, most specific first.
    pub provider_ids: Vec<String>,
    /// The total quantity.
    pub quantity: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_label_names_the_subscription() {
        assert_eq!(
            SubscriptionLabel::Key("stripe_subscription_id").metadata("stripe", "sub_1"),
            serde_json::json!({"stripe_subscription_id": "sub_1"})
        );
        assert_eq!(
            SubscriptionLabel::Provider.metadata("paddle", "sub_2"),
            serde_json::json!({"provider": "paddle", "subscription_id": "sub_2"})
        );
    }
}
