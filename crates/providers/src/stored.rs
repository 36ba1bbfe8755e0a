//! Notifications Keyturn verified when they arrived and kept in its record of provider events,
//! translated again, for a failed event retried by hand (the console's "retry").
//!
//! Why this may make a [`Verified`] without checking a signature: what is translated here is
//! the payload of Keyturn's own record, which only ever holds a body that passed its provider's
//! `verify` (an unverified request is refused before anything is stored). Signatures could not
//! be checked again anyway: they expire, and PayPal's are checked by asking PayPal at delivery.

use chrono::{DateTime, Utc};
use keyturn_core::provider::{EventEnvelope, ProviderError};

use crate::{fastspring, gumroad, lemonsqueezy, license_url, paddle, paypal, stripe, Verified};

/// The events in `payload`, the stored notification of `provider`; `created` is the time its
/// event was recorded with (the time of events whose payload carries none); `email_buyers` as
/// configured for the stores.
pub fn translate(
    provider: &str,
    payload: &str,
    created: DateTime<Utc>,
    email_buyers: bool,
) -> Result<Vec<EventEnvelope>, ProviderError> {
    let verified = Verified::new(payload.as_bytes(), created);
    match provider {
        stripe::PROVIDER => stripe::translate(&verified),
        paypal::PROVIDER => paypal::translate(&verified),
        paddle::PROVIDER => paddle::translate(&verified, email_buyers),
        lemonsqueezy::PROVIDER => lemonsqueezy::translate(&verified, email_buyers),
        fastspring::PROVIDER => fastspring::translate(&verified, email_buyers),
        gumroad::PROVIDER => {
            // A ping arrives form-encoded and is kept as a JSON object of its fields.
            let fields: std::collections::BTreeMap<String, String> = serde_json::from_str(payload)
                .map_err(|e| {
                    ProviderError::Malformed(format!("the stored Gumroad ping is not JSON: {e}"))
                })?;
            let form = serde_urlencoded::to_string(&fields)
                .map_err(|e| ProviderError::Malformed(e.to_string()))?;
            gumroad::translate(&Verified::new(form.as_bytes(), created), email_buyers)
        }
        license_url::PROVIDER => Err(ProviderError::Unsupported(
            "a license URL sale is applied while the store waits for its keys: the store \
             retries it by calling the URL again"
                .into(),
        )),
        other => Err(ProviderError::Unsupported(format!(
            "events of {other} are not retried from here"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_gumroad_ping_translates_as_it_arrived() {
        let body = "sale_id=S1&sale_timestamp=2026-01-02T03%3A04%3A05Z&product_id=P1\
                    &email=ann%40example.com&resource_name=sale&quantity=1";
        let at = Utc::now();
        let first = gumroad::translate(&Verified::new(body.as_bytes(), at), false).unwrap();
        let again = translate(gumroad::PROVIDER, &first[0].payload, at, false).unwrap();
        // The same event; its payload holds the same fields (a map's order is its own).
        let fields =
            |e: &EventEnvelope| serde_json::from_str::<serde_json::Value>(&e.payload).unwrap();
        assert_eq!(fields(&again[0]), fields(&first[0]));
        let same_payload = |e: &EventEnvelope| EventEnvelope {
            payload: String::new(),
            ..e.clone()
        };
        assert_eq!(same_payload(&again[0]), same_payload(&first[0]));
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn license_url_sales_and_unknown_providers_are_not_retried_here() {
        for provider in [license_url::PROVIDER, "nobody"] {
            assert!(matches!(
                translate(provider, "{}", Utc::now(), false),
                Err(ProviderError::Unsupported(_))
            ));
        }
    }
}
