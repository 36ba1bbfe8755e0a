//! Stripe: webhook signatures, event translation, and the API calls Keyturn makes.
//!
//! Follows Stripe's documented scheme ("Check the webhook signatures", docs.stripe.com/webhooks):
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 keyed with the endpoint secret
//! over `"<t>.<raw body>"`, any `v1` may match, other schemes (`v0`) are ignored.

mod api;
mod signature;
mod skm;
mod translate;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use keyturn_core::provider::SubscriptionLabel;

use crate::{EventEnvelope, ProviderError, Verified};

pub use api::{ApiError, StripeApi};
pub use signature::{sign, verify, SignatureError};
pub use translate::{payment_event, StripeEvent};

pub const PROVIDER: &str = "stripe";

/// The configured Stripe integration: the webhook's secrets, and the API when a key is set.
#[derive(Clone)]
pub struct StripeAdapter {
    secrets: Vec<String>,
    tolerance: Duration,
    api: Option<StripeApi>,
}

impl std::fmt::Debug for StripeAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeAdapter")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .field("api", &self.api.is_some())
            .finish()
    }
}

impl StripeAdapter {
    /// `secrets`: every endpoint signing secret in use (several during a rotation).
    pub fn new(secrets: Vec<String>, tolerance: Duration, api: Option<StripeApi>) -> Self {
        Self {
            secrets,
            tolerance,
            api,
        }
    }

    pub fn api(&self) -> Option<&StripeApi> {
        self.api.as_ref()
    }

    /// Checks a delivery's `Stripe-Signature` header at time `now`.
    pub fn verify<'a>(
        &self,
        signature_header: Option<&str>,
        body: &'a [u8],
        now: DateTime<Utc>,
    ) -> Result<Verified<'a>, ProviderError> {
        verify(
            signature_header,
            body,
            &self.secrets,
            self.tolerance,
            now.timestamp(),
        )
        .map_err(|e| ProviderError::BadSignature(e.to_string()))?;
        Ok(Verified::new(body, now))
    }
}

/// A verified delivery as the event it carries.
pub fn translate(verified: &Verified<'_>) -> Result<Vec<EventEnvelope>, ProviderError> {
    let text = verified.text()?;
    let event = StripeEvent::parse(text)
        .map_err(|m| ProviderError::Malformed(format!("the body is not a Stripe event: {m}")))?;
    Ok(vec![envelope(&event, text, verified.at())])
}

/// One Stripe event (`payload` its JSON text), received or fetched at `at`.
pub(crate) fn envelope(event: &StripeEvent, payload: &str, at: DateTime<Utc>) -> EventEnvelope {
    let created = Utc.timestamp_opt(event.created, 0).single().unwrap_or(at);
    // Keyturn's own payment forms mail their buyers; other Stripe sales do not.
    let notify = event.object["metadata"]["keyturn_form"].is_string();
    EventEnvelope {
        // Licenses of Stripe subscriptions have always named them so.
        subscription_label: SubscriptionLabel::Key("stripe_subscription_id"),
        event: payment_event(event),
        ..crate::envelope(
            PROVIDER,
            event.id.clone(),
            event.event_type.clone(),
            created,
            payload,
            notify,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorded::fixture;
    use keyturn_core::payment::PaymentEvent;

    const SECRET: &str = "whsec_test";

    fn adapter() -> StripeAdapter {
        StripeAdapter::new(vec![SECRET.into()], Duration::from_secs(300), None)
    }

    fn delivered(body: &str) -> Vec<EventEnvelope> {
        let now = Utc::now();
        let header = sign(SECRET, now.timestamp(), body.as_bytes());
        let verified = adapter()
            .verify(Some(&header), body.as_bytes(), now)
            .unwrap();
        translate(&verified).unwrap()
    }

    #[test]
    fn a_delivery_is_one_event_with_stripes_time_and_naming() {
        let body = fixture(
            "stripe/01_checkout_payment.json",
            &[("T0", "1861920000"), ("PLAN_ONCE", "7")],
        );
        let events = delivered(&body);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.provider, "stripe");
        assert_eq!(e.event_id, "evt_checkout_payment");
        assert_eq!(e.event_type, "checkout.session.completed");
        assert_eq!(e.created.timestamp(), 1_861_920_000);
        assert_eq!(e.payload, body);
        assert!(!e.notify_buyer, "not a checkout of Keyturn's forms");
        assert_eq!(
            e.subscription_label.metadata("stripe", "sub_1"),
            serde_json::json!({"stripe_subscription_id": "sub_1"})
        );
        assert!(matches!(
            &e.event,
            Some(PaymentEvent::Purchased { order, .. }) if order == "cs_test_once"
        ));
        let from_form = body.replace(
            r#""keyturn_quantity": "2""#,
            r#""keyturn_quantity": "2", "keyturn_form": "f1""#,
        );
        assert!(
            delivered(&from_form)[0].notify_buyer,
            "a form's buyer gets the key mail"
        );
    }

    #[test]
    fn an_ignored_type_is_still_an_event_to_record() {
        let body = fixture("stripe/12_customer_created.json", &[("T0", "1861920000")]);
        let events = delivered(&body);
        assert_eq!(events[0].event_type, "customer.created");
        assert_eq!(events[0].event, None);
    }

    #[test]
    fn unsigned_and_malformed_deliveries_are_refused() {
        let now = Utc::now();
        let body = br#"{"id": "evt_1"}"#;
        assert!(matches!(
            adapter().verify(None, body, now),
            Err(ProviderError::BadSignature(m)) if m == "the Stripe-Signature header is missing"
        ));
        let no_secret = StripeAdapter::new(Vec::new(), Duration::from_secs(300), None);
        let header = sign(SECRET, now.timestamp(), body);
        assert!(matches!(
            no_secret.verify(Some(&header), body, now),
            Err(ProviderError::BadSignature(m)) if m == "no webhook secret is configured"
        ));
        let verified = adapter().verify(Some(&header), body, now).unwrap();
        assert!(matches!(
            translate(&verified),
            Err(ProviderError::Malformed(m)) if m.starts_with("the body is not a Stripe event")
        ));
    }
}
