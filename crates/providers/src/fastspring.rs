//! FastSpring. Follows "Webhooks → Message secret / security" (developer.fastspring.com/reference/
//! message-secret-security): `X-FS-Signature` is the base64 HMAC-SHA256 of the raw body keyed
//! with the webhook's HMAC secret. One POST carries several events:
//! `{"events": [{id, type, created (ms), data}]}` (developer.fastspring.com/reference/webhooks-overview).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

use crate::read::{int, text, time};
use crate::signature::{body_signed, hmac_sha256, unparsable};
use crate::{EventEnvelope, ProviderError, Verified};

pub const PROVIDER: &str = "fastspring";

pub fn verify<'a>(
    header: Option<&str>,
    body: &'a [u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<Verified<'a>, ProviderError> {
    body_signed(header, body, secrets, now, |h| B64.decode(h).ok())
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    B64.encode(hmac_sha256(secret, &[body]))
}

/// FastSpring sends some references as ids and some as expanded objects.
fn id_of(v: &Value, key: &str) -> Option<String> {
    text(v, &[key]).or_else(|| text(v, &[key, "id"]))
}

fn buyer(data: &Value) -> Buyer {
    let contact = if data["customer"].is_object() {
        &data["customer"]
    } else {
        &data["account"]["contact"]
    };
    let name = [text(contact, &["first"]), text(contact, &["last"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Buyer {
        name: Some(name).filter(|n| !n.is_empty()),
        email: text(contact, &["email"]),
        provider_customer_id: None,
    }
}

fn product(path: Option<String>) -> PlanRef {
    PlanRef {
        provider_ids: path
            .map(|p| vec![format!("fastspring:{p}")])
            .unwrap_or_default(),
        ..PlanRef::default()
    }
}

fn subscription_id(id: String) -> String {
    format!("fastspring:{id}")
}

/// One event of a notification, `body` the whole notification.
fn event(
    e: &Value,
    body: &str,
    at: DateTime<Utc>,
    notify_buyer: bool,
) -> Result<EventEnvelope, ProviderError> {
    let bad = |m: &str| unparsable("FastSpring", m);
    let id = text(e, &["id"]).ok_or_else(|| bad("an event has no id"))?;
    let kind = text(e, &["type"]).ok_or_else(|| bad("an event has no type"))?;
    let created = time(e, &["created"]).unwrap_or(at);
    let data = &e["data"];
    let translated = match kind.as_str() {
        "order.completed" if data["completed"].as_bool() != Some(false) => {
            // Subscription items are announced by subscription.activated; an order of only
            // those is left to it.
            let items = data["items"].as_array().cloned().unwrap_or_default();
            items
                .iter()
                .find(|i| text(i, &["subscription"]).is_none())
                .map(|item| PaymentEvent::Purchased {
                    order: id_of(data, "order")
                        .or_else(|| text(data, &["id"]))
                        .unwrap_or_default(),
                    buyer: buyer(data),
                    plan: product(text(item, &["product"])),
                    quantity: int(item, &["quantity"]).unwrap_or(1).max(1),
                    money: Money {
                        payment_intent: id_of(data, "order").or_else(|| text(data, &["id"])),
                        charge: None,
                        amount: None,
                        currency: text(data, &["currency"]),
                    },
                })
        }
        "subscription.activated" => Some(PaymentEvent::SubscriptionStarted {
            subscription: subscription_id(
                id_of(data, "subscription")
                    .or_else(|| text(data, &["id"]))
                    .ok_or_else(|| bad("no subscription id"))?,
            ),
            order: id_of(data, "initialOrderId"),
            buyer: buyer(data),
            plan: product(id_of(data, "product")),
            quantity: int(data, &["quantity"]).unwrap_or(1).max(1),
            status: SubscriptionStatus::Active,
            period_end: time(data, &["next"]),
            // FastSpring activates a subscription once its first order is paid, until `next`.
            paid_through: time(data, &["next"]),
            // That first order is the payment: a return of it names the order, as a renewal's
            // does (its `order.completed` is left to this event and says nothing of its own).
            money: Money {
                payment_intent: id_of(data, "initialOrderId"),
                ..Default::default()
            },
        }),
        "subscription.charge.completed" if text(data, &["status"]).as_deref() != Some("failed") => {
            let sub = &data["subscription"];
            Some(PaymentEvent::Renewed {
                subscription: subscription_id(
                    id_of(data, "subscription").ok_or_else(|| bad("no subscription"))?,
                ),
                invoice: id_of(data, "order").unwrap_or_else(|| id.clone()),
                buyer: buyer(data),
                plan: product(id_of(sub, "product")),
                quantity: int(sub, &["quantity"]).unwrap_or(1).max(1),
                period_end: time(sub, &["next"]),
                money: Money {
                    payment_intent: id_of(data, "order"),
                    ..Default::default()
                },
            })
        }
        "subscription.charge.failed" => Some(PaymentEvent::PaymentFailed {
            subscription: id_of(data, "subscription").map(subscription_id),
            invoice: id_of(data, "order").unwrap_or_else(|| id.clone()),
            money: Money::default(),
        }),
        // Canceled: it runs to the end of the paid period; deactivated: it has ended.
        "subscription.canceled" => Some(PaymentEvent::SubscriptionChanged {
            subscription: subscription_id(
                id_of(data, "subscription")
                    .or_else(|| text(data, &["id"]))
                    .ok_or_else(|| bad("no subscription id"))?,
            ),
            order: None,
            plan: product(id_of(data, "product")),
            quantity: int(data, &["quantity"]).unwrap_or(1).max(1),
            status: SubscriptionStatus::Active,
            cancel_at_period_end: true,
            period_end: time(data, &["next"]),
            paid_through: None,
        }),
        "subscription.deactivated" => Some(PaymentEvent::Cancelled {
            subscription: subscription_id(
                id_of(data, "subscription")
                    .or_else(|| text(data, &["id"]))
                    .ok_or_else(|| bad("no subscription id"))?,
            ),
            period_end: None,
        }),
        "return.created" => Some(PaymentEvent::Reversed {
            reversal: Reversal::Refunded,
            money: Money {
                payment_intent: id_of(&data["original"], "order")
                    .or_else(|| text(&data["original"], &["id"])),
                ..Default::default()
            },
        }),
        _ => None,
    };
    Ok(EventEnvelope {
        event: translated,
        ..crate::envelope(PROVIDER, id, kind, created, body, notify_buyer)
    })
}

/// A notification: several events, applied in order.
pub fn translate(
    verified: &Verified<'_>,
    notify_buyer: bool,
) -> Result<Vec<EventEnvelope>, ProviderError> {
    let body = verified.text()?;
    let v: Value = serde_json::from_str(body).map_err(|e| unparsable("FastSpring", e))?;
    let events = v["events"]
        .as_array()
        .ok_or_else(|| unparsable("FastSpring", "no events"))?;
    events
        .iter()
        .map(|e| event(e, body, verified.at(), notify_buyer))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorded::fixture;

    const SECRET: &str = "fastspring-test-secret";

    fn translated(path: &str, vars: &[(&str, &str)]) -> Vec<EventEnvelope> {
        let body = fixture(path, vars);
        let header = sign(SECRET, body.as_bytes());
        let verified =
            verify(Some(&header), body.as_bytes(), &[SECRET.into()], Utc::now()).unwrap();
        translate(&verified, false).unwrap()
    }

    #[test]
    fn one_notification_carries_several_events_in_order() {
        let events = translated(
            "stores/fastspring_subscription.json",
            &[
                ("NOW_MS", "1861920000000"),
                ("LATER_MS", "1861920060000"),
                ("P1_MS", "1864598400000"),
                ("P2_MS", "1867017600000"),
            ],
        );
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["fs_evt_activated", "fs_evt_charge"]);
        assert!(
            events.iter().all(|e| e.payload == events[0].payload),
            "each keeps the whole notification"
        );
        assert_eq!(events[0].created.timestamp_millis(), 1_861_920_000_000);
        match &events[0].event {
            Some(PaymentEvent::SubscriptionStarted {
                subscription,
                order,
                plan,
                paid_through,
                buyer,
                money,
                ..
            }) => {
                assert_eq!(subscription, "fastspring:fs_sub_1");
                assert_eq!(order.as_deref(), Some("fs_order_2"));
                assert_eq!(
                    money.payment_intent.as_deref(),
                    Some("fs_order_2"),
                    "a return of the first order finds it"
                );
                assert_eq!(plan.provider_ids, vec!["fastspring:editor-monthly"]);
                assert_eq!(paid_through.unwrap().timestamp_millis(), 1_864_598_400_000);
                assert_eq!(buyer.name.as_deref(), Some("Bo Chen"));
            }
            other => panic!("{other:?}"),
        }
        match &events[1].event {
            Some(PaymentEvent::Renewed {
                subscription,
                invoice,
                period_end,
                ..
            }) => {
                assert_eq!(subscription, "fastspring:fs_sub_1");
                assert_eq!(invoice, "fs_order_3");
                assert_eq!(period_end.unwrap().timestamp_millis(), 1_867_017_600_000);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_order_is_a_purchase_of_its_product() {
        let events = translated(
            "stores/fastspring_order_completed.json",
            &[("NOW_MS", "1861920000000")],
        );
        match &events[0].event {
            Some(PaymentEvent::Purchased {
                order,
                plan,
                quantity,
                buyer,
                ..
            }) => {
                assert_eq!(order, "fs_order_1");
                assert_eq!(plan.provider_ids, vec!["fastspring:editor-pro"]);
                assert_eq!(*quantity, 2);
                assert_eq!(buyer.email.as_deref(), Some("ann@example.com"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_signed_with_another_secret_or_unsigned_is_refused() {
        let body = br#"{"events": []}"#;
        let secrets = [SECRET.to_owned()];
        let other = sign("other", body);
        assert!(verify(Some(&other), body, &secrets, Utc::now()).is_err());
        assert!(verify(None, body, &secrets, Utc::now()).is_err());
        assert!(verify(Some("not base64!"), body, &secrets, Utc::now()).is_err());
        assert!(matches!(
            verify(Some(&sign(SECRET, body)), body, &[], Utc::now()),
            Err(ProviderError::NotConfigured(_))
        ));
    }
}
