//! Paddle Billing. Follows Paddle's "Verify webhook signatures" (developer.paddle.com/webhooks/
//! signature-verification): `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=…]`, HMAC-SHA256 keyed
//! with the notification destination's secret over `"<ts>:<raw body>"`. Events are
//! `{event_id, event_type, occurred_at, data}` (developer.paddle.com/webhooks/overview).

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

use crate::read::{int, text, time};
use crate::signature::{not_configured, unparsable, Timestamped};
use crate::{EventEnvelope, ProviderError, Verified};

pub const PROVIDER: &str = "paddle";

const SCHEME: Timestamped = Timestamped {
    separator: ';',
    timestamp: "ts",
    signature: "h1",
    joiner: b":",
};

pub fn verify<'a>(
    header: Option<&str>,
    body: &'a [u8],
    secrets: &[String],
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<Verified<'a>, ProviderError> {
    if secrets.is_empty() {
        return Err(not_configured());
    }
    SCHEME.verify(header, body, secrets, tolerance, now.timestamp())?;
    Ok(Verified::new(body, now))
}

/// A `Paddle-Signature` header for tests and tools.
pub fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    SCHEME.sign(secret, ts, body)
}

fn plan_and_quantity(data: &Value) -> (PlanRef, i64) {
    // Custom data is whatever the checkout carried, which the buyer can set: a hint only.
    let mut plan = PlanRef {
        hint: int(data, &["custom_data", "keyturn_plan_id"]),
        ..PlanRef::default()
    };
    let mut quantity = None;
    for item in data["items"].as_array().into_iter().flatten() {
        for id in [
            text(item, &["price", "id"]),
            text(item, &["price_id"]),
            text(item, &["price", "product_id"]),
        ]
        .into_iter()
        .flatten()
        {
            let id = format!("paddle:{id}");
            if !plan.provider_ids.contains(&id) {
                plan.provider_ids.push(id);
            }
        }
        quantity = quantity.or(int(item, &["quantity"]));
    }
    (plan, quantity.unwrap_or(1).max(1))
}

fn buyer(data: &Value) -> Buyer {
    // A transaction names its customer by id only; the email travels in custom data when the
    // vendor's checkout puts it there.
    Buyer {
        name: text(data, &["custom_data", "name"]),
        email: text(data, &["custom_data", "email"]).or_else(|| text(data, &["customer", "email"])),
        provider_customer_id: None,
    }
}

pub fn translate(
    verified: &Verified<'_>,
    notify_buyer: bool,
) -> Result<Vec<EventEnvelope>, ProviderError> {
    let bad = |m: &str| unparsable("Paddle", m);
    let body = verified.text()?;
    let v: Value = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
    let id = text(&v, &["event_id"]).ok_or_else(|| bad("no event_id"))?;
    let kind = text(&v, &["event_type"]).ok_or_else(|| bad("no event_type"))?;
    let created = time(&v, &["occurred_at"]).unwrap_or(verified.at());
    let data = &v["data"];
    if !data.is_object() {
        return Err(bad("no data"));
    }
    let object = text(data, &["id"]).ok_or_else(|| bad("no data.id"));
    let (plan, quantity) = plan_and_quantity(data);
    let status = SubscriptionStatus::parse(&text(data, &["status"]).unwrap_or_default());
    let event = match kind.as_str() {
        "transaction.completed" => {
            let txn = object?;
            let money = Money {
                payment_intent: Some(txn.clone()),
                charge: None,
                amount: int(data, &["details", "totals", "grand_total"]),
                currency: text(data, &["currency_code"]),
            };
            Some(match text(data, &["subscription_id"]) {
                None => PaymentEvent::Purchased {
                    order: txn,
                    buyer: buyer(data),
                    plan,
                    quantity,
                    money,
                },
                Some(subscription) => PaymentEvent::Renewed {
                    subscription,
                    invoice: txn,
                    buyer: buyer(data),
                    plan,
                    quantity,
                    period_end: time(data, &["billing_period", "ends_at"]),
                    money,
                },
            })
        }
        "subscription.created" | "subscription.activated" => {
            Some(PaymentEvent::SubscriptionStarted {
                subscription: object?,
                order: text(data, &["transaction_id"]),
                buyer: buyer(data),
                plan,
                quantity,
                status,
                period_end: time(data, &["current_billing_period", "ends_at"]),
                // A subscription's billing period is not proof of payment: its transactions are.
                paid_through: None,
                money: Money::default(),
            })
        }
        "subscription.updated"
        | "subscription.past_due"
        | "subscription.paused"
        | "subscription.resumed" => Some(PaymentEvent::SubscriptionChanged {
            subscription: object?,
            order: None,
            plan,
            quantity,
            status,
            cancel_at_period_end: text(data, &["scheduled_change", "action"]).as_deref()
                == Some("cancel"),
            period_end: time(data, &["current_billing_period", "ends_at"]),
            paid_through: None,
        }),
        "subscription.canceled" => Some(PaymentEvent::Cancelled {
            subscription: object?,
            period_end: time(data, &["current_billing_period", "ends_at"]),
        }),
        // Refunds and chargebacks are adjustments of a transaction; only an approved full
        // refund takes the license away.
        "adjustment.created" | "adjustment.updated" => {
            let action = text(data, &["action"]).unwrap_or_default();
            let approved = text(data, &["status"]).as_deref() == Some("approved");
            let full = text(data, &["type"]).as_deref() == Some("full");
            let money = Money {
                payment_intent: text(data, &["transaction_id"]),
                ..Default::default()
            };
            match action.as_str() {
                "refund" if approved && full => Some(PaymentEvent::Reversed {
                    reversal: Reversal::Refunded,
                    money,
                }),
                "chargeback" => Some(PaymentEvent::Reversed {
                    reversal: Reversal::Disputed,
                    money,
                }),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(vec![EventEnvelope {
        event,
        ..crate::envelope(PROVIDER, id, kind, created, body, notify_buyer)
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorded::fixture;

    const SECRET: &str = "pdl_ntfset_test";
    const NOW: &str = "2029-01-01T00:00:00Z";

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(NOW)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn translated(path: &str, vars: &[(&str, &str)]) -> EventEnvelope {
        let body = fixture(path, vars);
        let header = sign(SECRET, at().timestamp(), body.as_bytes());
        let verified = verify(
            Some(&header),
            body.as_bytes(),
            &[SECRET.into()],
            Duration::from_secs(300),
            at(),
        )
        .unwrap();
        let mut events = translate(&verified, true).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn a_one_time_transaction_is_a_purchase_of_its_price() {
        let e = translated(
            "stores/paddle_transaction_onetime.json",
            &[("NOW_ISO", NOW)],
        );
        assert_eq!(
            (e.provider.as_str(), e.event_id.as_str()),
            ("paddle", "evt_01paddleonce")
        );
        assert_eq!(e.created, at());
        assert!(e.notify_buyer);
        match e.event {
            Some(PaymentEvent::Purchased {
                order,
                buyer,
                plan,
                quantity,
                money,
            }) => {
                assert_eq!(order, "txn_01once");
                assert_eq!(buyer.email.as_deref(), Some("ann@example.com"));
                assert_eq!(
                    plan.provider_ids,
                    vec!["paddle:pri_once", "paddle:pro_editor"]
                );
                assert_eq!(quantity, 1);
                assert_eq!(money.amount, Some(4900));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_subscription_transaction_renews_for_its_billing_period() {
        let e = translated(
            "stores/paddle_transaction_renewal.json",
            &[
                ("NOW_ISO", NOW),
                ("P1_ISO", "2029-01-01T00:00:00Z"),
                ("P2_ISO", "2029-02-01T00:00:00Z"),
            ],
        );
        match e.event {
            Some(PaymentEvent::Renewed {
                subscription,
                invoice,
                period_end,
                ..
            }) => {
                assert_eq!(subscription, "sub_01paddle");
                assert_eq!(invoice, "txn_01renew");
                assert_eq!(
                    period_end.unwrap().to_rfc3339(),
                    "2029-02-01T00:00:00+00:00"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_approved_full_refund_reverses_its_transaction() {
        let e = translated("stores/paddle_adjustment_refund.json", &[("NOW_ISO", NOW)]);
        match e.event {
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Refunded,
                money,
            }) => assert_eq!(money.payment_intent.as_deref(), Some("txn_01once")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn signatures_are_checked_for_secret_body_and_age() {
        let body = br#"{"event_id":"evt_1"}"#;
        let secrets = vec!["old".to_owned(), SECRET.to_owned()];
        let tolerance = Duration::from_secs(300);
        let t = at().timestamp();
        let good = sign(SECRET, t, body);
        assert!(verify(Some(&good), body, &secrets, tolerance, at()).is_ok());
        let bad = |header: Option<&str>, body: &[u8], secrets: &[String], now| {
            verify(header, body, secrets, tolerance, now).unwrap_err()
        };
        assert!(matches!(
            bad(Some(&good), b"{}", &secrets, at()),
            ProviderError::BadSignature(_)
        ));
        assert!(matches!(
            bad(Some(&sign("other", t, body)), body, &secrets, at()),
            ProviderError::BadSignature(_)
        ));
        let late = at() + chrono::Duration::seconds(301);
        assert_eq!(
            bad(Some(&good), body, &secrets, late).to_string(),
            "the signature's timestamp is outside the tolerance"
        );
        assert_eq!(
            bad(None, body, &secrets, at()).to_string(),
            "the signature is missing"
        );
        assert!(matches!(
            bad(Some(&good), body, &[], at()),
            ProviderError::NotConfigured(_)
        ));
    }
}
