//! Payment provider adapters. An adapter does two things only: verify that an inbound request
//! really comes from the provider, and translate it into provider-neutral
//! [`keyturn_core::payment::PaymentEvent`]s. Applying them is the app's one payment pipeline.

pub mod fastspring;
pub mod gumroad;
pub mod lemonsqueezy;
pub mod paddle;
pub mod paypal;
pub mod stripe;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use keyturn_app::{App, AppError, EventEnvelope, EventOutcome};
use keyturn_core::payment::PaymentEvent;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The payment providers this server is configured for.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub stripe: Option<stripe::StripeAdapter>,
    pub paypal: Option<paypal::PaypalAdapter>,
    pub stores: StoreSecrets,
}

/// Webhook secrets of the stores (several per store while rotating; empty = not configured).
#[derive(Clone, Default)]
pub struct StoreSecrets {
    pub paddle: Vec<String>,
    pub lemonsqueezy: Vec<String>,
    pub fastspring: Vec<String>,
    /// Gumroad signs nothing: its pings are accepted only on a URL holding this secret.
    pub gumroad: Option<String>,
    /// Accepted age of a signed timestamp (Paddle).
    pub tolerance: Duration,
    /// Mail new keys to buyers of store sales.
    pub email_buyers: bool,
}

impl std::fmt::Debug for StoreSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSecrets")
            .field("paddle", &self.paddle.len())
            .field("lemonsqueezy", &self.lemonsqueezy.len())
            .field("fastspring", &self.fastspring.len())
            .field("gumroad", &self.gumroad.is_some())
            .finish()
    }
}

/// Why a store's webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("this store's webhooks are not configured")]
    NotConfigured,
    #[error("the signature is missing")]
    MissingSignature,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("the body is not a {0} notification: {1}")]
    Unparsable(&'static str, String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// One event of a store's notification, translated.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    pub id: String,
    pub event_type: String,
    pub created: DateTime<Utc>,
    /// `None` for events that change no license.
    pub event: Option<PaymentEvent>,
}

pub(crate) fn hmac_sha256(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether `candidate` equals the MAC of `parts` under any of `secrets`, in constant time.
pub(crate) fn any_secret_matches(secrets: &[String], parts: &[&[u8]], candidate: &[u8]) -> bool {
    secrets
        .iter()
        .any(|s| bool::from(hmac_sha256(s, parts).as_slice().ct_eq(candidate)))
}

/// Applies a notification's events in order, each exactly once.
pub async fn apply(
    app: &App,
    provider: &str,
    payload: &str,
    events: Vec<StoreEvent>,
    notify_buyer: bool,
) -> Result<Vec<EventOutcome>, AppError> {
    let mut outcomes = Vec::with_capacity(events.len());
    for e in events {
        let envelope = EventEnvelope {
            provider: provider.to_owned(),
            event_id: e.id,
            event_type: e.event_type,
            created: e.created,
            payload: payload.to_owned(),
            notify_buyer,
        };
        outcomes.push(app.apply_provider_event(&envelope, e.event).await?);
    }
    Ok(outcomes)
}

/// Lenient readers for providers' JSON.
pub(crate) mod read {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::Value;

    /// A string or number field as text.
    pub fn text(v: &Value, path: &[&str]) -> Option<String> {
        let mut cur = v;
        for key in path {
            cur = cur.get(key)?;
        }
        match cur {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn int(v: &Value, path: &[&str]) -> Option<i64> {
        let t = text(v, path)?;
        t.parse().ok()
    }

    pub fn time(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
        let t = text(v, path)?;
        if let Ok(ms) = t.parse::<i64>() {
            // Providers send seconds or milliseconds; no seconds value is this large before 2286.
            return if ms > 10_000_000_000 {
                Utc.timestamp_millis_opt(ms).single()
            } else {
                Utc.timestamp_opt(ms, 0).single()
            };
        }
        DateTime::parse_from_rfc3339(&t)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}
