//! Gumroad pings (gumroad.com/ping and the "resource subscriptions" of its API v2): a
//! form-encoded POST per sale, refund, dispute or subscription change.
//!
//! Gumroad signs nothing. A ping is accepted only on a URL holding the secret configured for
//! it, and is taken at its word: confirming the sale with Gumroad's API (`GET /v2/sales/:id`)
//! would need network access and an access token, which a self-hosted server may not have, so
//! keep the URL as secret as a password and rotate it if it leaks.

use std::collections::HashMap;

use chrono::{DateTime, Months, Utc};
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use subtle::ConstantTimeEq;

use crate::signature::{not_configured, unparsable};
use crate::{EventEnvelope, ProviderError, Verified};

pub const PROVIDER: &str = "gumroad";

/// A ping is Gumroad's when the URL it came to holds the configured secret.
pub fn verify<'a>(
    presented: &str,
    configured: Option<&str>,
    body: &'a [u8],
    now: DateTime<Utc>,
) -> Result<Verified<'a>, ProviderError> {
    let configured = configured.ok_or_else(not_configured)?;
    if bool::from(presented.as_bytes().ct_eq(configured.as_bytes())) {
        Ok(Verified::new(body, now))
    } else {
        Err(ProviderError::BadSignature(
            "the signature does not verify".into(),
        ))
    }
}

fn months(recurrence: &str) -> Option<u32> {
    match recurrence {
        "monthly" => Some(1),
        "quarterly" => Some(3),
        "biannually" => Some(6),
        "yearly" => Some(12),
        "every_two_years" => Some(24),
        _ => None,
    }
}

fn flag(f: &HashMap<String, String>, key: &str) -> bool {
    f.get(key).is_some_and(|v| v == "true")
}

/// A ping (form-encoded) as the event it reports; it is kept as JSON.
pub fn translate(
    verified: &Verified<'_>,
    notify_buyer: bool,
) -> Result<Vec<EventEnvelope>, ProviderError> {
    let fields: HashMap<String, String> = serde_urlencoded::from_bytes(verified.body())
        .map_err(|e| ProviderError::Malformed(format!("the body is not a Gumroad ping: {e}")))?;
    let fields = &fields;
    let payload = serde_json::to_string(fields).expect("fields serialise");
    let get = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let bad = |m: &str| unparsable("Gumroad", m);
    let resource = get("resource_name").unwrap_or_else(|| "sale".into());
    let at: DateTime<Utc> = get("sale_timestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(verified.at());
    let subscription = get("subscription_id").map(|s| format!("gumroad:{s}"));
    let plan = PlanRef {
        hint: None,
        configured: None,
        provider_ids: [
            get("product_id"),
            get("product_permalink"),
            get("permalink"),
        ]
        .into_iter()
        .flatten()
        .map(|id| format!("gumroad:{id}"))
        .collect(),
    };
    let sale = get("sale_id");
    let money = Money {
        payment_intent: sale.clone(),
        ..Default::default()
    };
    let (id, event) = match resource.as_str() {
        "cancellation" => {
            let sub = subscription
                .clone()
                .ok_or_else(|| bad("no subscription_id"))?;
            (
                format!("cancellation:{sub}"),
                Some(PaymentEvent::SubscriptionChanged {
                    subscription: sub,
                    order: None,
                    plan,
                    quantity: 1,
                    status: SubscriptionStatus::Active,
                    cancel_at_period_end: true,
                    period_end: None,
                    paid_through: None,
                }),
            )
        }
        "subscription_ended" => {
            let sub = subscription
                .clone()
                .ok_or_else(|| bad("no subscription_id"))?;
            (
                format!("ended:{sub}"),
                Some(PaymentEvent::Cancelled {
                    subscription: sub,
                    period_end: None,
                }),
            )
        }
        "refund" | "dispute" | "sale" => {
            let sale = sale.ok_or_else(|| bad("no sale_id"))?;
            if resource == "dispute" || flag(fields, "disputed") {
                (
                    format!("dispute:{sale}"),
                    Some(PaymentEvent::Reversed {
                        reversal: Reversal::Disputed,
                        money,
                    }),
                )
            } else if resource == "refund"
                && flag(fields, "partially_refunded")
                && !flag(fields, "refunded")
            {
                // Refunded in part: goodwill that leaves the license alone (a later full refund
                // comes as its own ping, with `refunded` true).
                (format!("partial-refund:{sale}"), None)
            } else if resource == "refund" || flag(fields, "refunded") {
                (
                    format!("refund:{sale}"),
                    Some(PaymentEvent::Reversed {
                        reversal: Reversal::Refunded,
                        money,
                    }),
                )
            } else {
                let buyer = Buyer {
                    name: get("full_name"),
                    email: get("email"),
                    provider_customer_id: None,
                };
                let quantity = get("quantity")
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1i64)
                    .max(1);
                let period_end = get("recurrence")
                    .and_then(|r| months(&r))
                    .and_then(|m| at.checked_add_months(Months::new(m)));
                let event = match subscription {
                    // Each charge of a membership is a sale of its own; the first one starts it.
                    Some(sub) if flag(fields, "is_recurring_charge") => PaymentEvent::Renewed {
                        subscription: sub,
                        invoice: sale.clone(),
                        buyer,
                        plan,
                        quantity,
                        period_end,
                        money,
                    },
                    Some(sub) => PaymentEvent::SubscriptionStarted {
                        subscription: sub,
                        order: Some(sale.clone()),
                        buyer,
                        plan,
                        quantity,
                        status: SubscriptionStatus::Active,
                        period_end,
                        // The first charge of a membership is the sale itself.
                        paid_through: period_end,
                        money,
                    },
                    None => PaymentEvent::Purchased {
                        order: sale.clone(),
                        buyer,
                        plan,
                        quantity,
                        money,
                    },
                };
                (format!("sale:{sale}"), Some(event))
            }
        }
        other => (format!("{other}:{}", sale.unwrap_or_default()), None),
    };
    Ok(vec![EventEnvelope {
        event,
        ..crate::envelope(PROVIDER, id, resource, at, &payload, notify_buyer)
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "gumroad-ping-secret";

    fn ping(fields: &[(&str, &str)]) -> Vec<EventEnvelope> {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let verified = verify(SECRET, Some(SECRET), body.as_bytes(), Utc::now()).unwrap();
        translate(&verified, true).unwrap()
    }

    #[test]
    fn a_sale_ping_is_a_purchase_keyed_by_its_sale() {
        let e = ping(&[
            ("sale_id", "S1"),
            ("product_id", "gum_once"),
            ("email", "cy@example.com"),
            ("quantity", "2"),
            ("sale_timestamp", "2029-01-01T00:00:00Z"),
        ])
        .remove(0);
        assert_eq!(e.event_id, "sale:S1");
        assert_eq!(e.created.to_rfc3339(), "2029-01-01T00:00:00+00:00");
        let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(payload["sale_id"], "S1", "the ping is kept as JSON");
        match e.event {
            Some(PaymentEvent::Purchased {
                order,
                plan,
                quantity,
                ..
            }) => {
                assert_eq!(order, "S1");
                assert_eq!(plan.provider_ids, vec!["gumroad:gum_once"]);
                assert_eq!(quantity, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Gumroad marks a sale refunded in part with `partially_refunded` (and `refunded` stays
    /// false until nothing is left to refund): goodwill, which blocks nothing, as with the other
    /// stores; the full refund that may follow still blocks.
    #[test]
    fn a_partial_refund_blocks_nothing_and_a_full_one_still_does() {
        let partial = ping(&[
            ("resource_name", "refund"),
            ("sale_id", "S9"),
            ("refunded", "false"),
            ("partially_refunded", "true"),
        ])
        .remove(0);
        assert_eq!(partial.event, None, "{partial:?}");
        let full = ping(&[
            ("resource_name", "refund"),
            ("sale_id", "S9"),
            ("refunded", "true"),
            ("partially_refunded", "false"),
        ])
        .remove(0);
        assert_ne!(
            full.event_id, partial.event_id,
            "the full refund is not a repeat"
        );
        assert!(matches!(
            full.event,
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Refunded,
                ..
            })
        ));
    }

    #[test]
    fn a_membership_starts_then_renews_with_each_charge() {
        let first = ping(&[
            ("sale_id", "S2"),
            ("product_id", "gum_member"),
            ("subscription_id", "M1"),
            ("recurrence", "monthly"),
            ("sale_timestamp", "2029-01-31T00:00:00Z"),
        ])
        .remove(0);
        match first.event {
            Some(PaymentEvent::SubscriptionStarted {
                subscription,
                paid_through,
                ..
            }) => {
                assert_eq!(subscription, "gumroad:M1");
                assert_eq!(
                    paid_through.unwrap().to_rfc3339(),
                    "2029-02-28T00:00:00+00:00",
                    "a month on, at the month's end"
                );
            }
            other => panic!("{other:?}"),
        }
        let charge = ping(&[
            ("sale_id", "S3"),
            ("subscription_id", "M1"),
            ("is_recurring_charge", "true"),
        ])
        .remove(0);
        assert!(matches!(charge.event, Some(PaymentEvent::Renewed { .. })));
        let refund = ping(&[("sale_id", "S2"), ("refunded", "true")]).remove(0);
        assert_eq!(refund.event_id, "refund:S2");
    }

    #[test]
    fn a_ping_to_another_url_is_refused() {
        assert!(verify("guess", Some(SECRET), b"", Utc::now()).is_err());
        assert!(matches!(
            verify(SECRET, None, b"", Utc::now()),
            Err(ProviderError::NotConfigured(_))
        ));
    }
}
