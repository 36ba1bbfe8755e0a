//! Payment provider adapters. An adapter does two things only, both pure functions of the
//! request, the secrets and the time: `verify` that an inbound request really comes from the
//! provider (which yields a [`Verified`] body), and `translate` it into provider-neutral
//! [`EventEnvelope`]s. Applying them is the app's one payment pipeline; this crate depends on
//! `keyturn-core` only, so an adapter cannot reach past its job.
//!
//! The clients here ([`stripe::StripeApi`], [`paypal::PaypalAdapter`]) make the calls out to a
//! provider (start a checkout, capture an order, read a checkout's line items, list events)
//! and answer in core's types; the app reaches them through its `PaymentGateway` trait, whose
//! impls live in `keyturn-http` (see `http/src/gateways.rs` for why there).
//!
//! PayPal signs nothing a server can check offline: its `verify` asks PayPal, so it is the one
//! verification that is a call out.

pub mod fastspring;
pub mod gumroad;
pub mod lemonsqueezy;
pub mod license_url;
pub mod paddle;
pub mod paypal;
mod signature;
pub mod stored;
pub mod stripe;

use std::time::Duration;

use chrono::{DateTime, Utc};
pub use keyturn_core::provider::{EventEnvelope, ProviderError};

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

/// A request body shown to come from its provider. Only the adapters' `verify` functions make
/// one, so nothing unverified reaches a `translate`.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    body: &'a [u8],
    at: DateTime<Utc>,
}

impl<'a> Verified<'a> {
    pub(crate) fn new(body: &'a [u8], at: DateTime<Utc>) -> Self {
        Self { body, at }
    }

    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// When it was verified: the time of events that carry none.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The body as text.
    pub fn text(&self) -> Result<&'a str, ProviderError> {
        std::str::from_utf8(self.body)
            .map_err(|_| ProviderError::Malformed("the body is not UTF-8".into()))
    }
}

/// An envelope for one event of `provider` that keys are mailed for when `notify_buyer`.
pub(crate) fn envelope(
    provider: &str,
    event_id: String,
    event_type: String,
    created: DateTime<Utc>,
    payload: &str,
    notify_buyer: bool,
) -> EventEnvelope {
    EventEnvelope {
        provider: provider.to_owned(),
        event_id,
        event_type,
        created,
        payload: payload.to_owned(),
        notify_buyer,
        subscription_label: Default::default(),
        event: None,
    }
}

/// The HTTP client the provider clients call out with.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client builds")
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

/// The notifications recorded for the integration tests (`cli/tests/fixtures`), for the
/// adapters' own tests: each provider's current shapes, in one place.
#[cfg(test)]
pub(crate) mod recorded {
    /// The fixture at `path` (below `cli/tests/fixtures`) with its `{{NAME}}` placeholders
    /// filled from `vars`.
    pub fn fixture(path: &str, vars: &[(&str, &str)]) -> String {
        let file = format!(
            "{}/../cli/tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (k, v) in vars {
            text = text.replace(&format!("{{{{{k}}}}}"), v);
        }
        assert!(!text.contains("{{"), "unfilled placeholder in {path}");
        text
    }
}
