//! FastSpring. Follows "Webhooks → Message secret / security" (developer.fastspring.com/reference/
//! message-secret-security): `X-FS-Signature` is the base64 HMAC-SHA256 of the raw body keyed
//! with the webhook's HMAC secret. One POST carries several events:
//! `{"events": [{id, type, created (ms), data}]}` (developer.fastspring.com/reference/webhooks-overview).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::Utc;
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

use crate::read::{int, text, time};
use crate::{any_secret_matches, StoreError, StoreEvent};

pub const PROVIDER: &str = "fastspring";

pub fn verify(header: Option<&str>, body: &[u8], secrets: &[String]) -> Result<(), StoreError> {
    if secrets.is_empty() {
        return Err(StoreError::NotConfigured);
    }
    let sig = B64
        .decode(header.ok_or(StoreError::MissingSignature)?.trim())
        .map_err(|_| StoreError::BadSignature)?;
    if any_secret_matches(secrets, &[body], &sig) {
        Ok(())
    } else {
        Err(StoreError::BadSignature)
    }
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    B64.encode(crate::hmac_sha256(secret, &[body]))
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
        hint: None,
    }
}

fn subscription_id(id: String) -> String {
    format!("fastspring:{id}")
}

fn event(e: &Value) -> Result<StoreEvent, StoreError> {
    let bad = |m: &str| StoreError::Unparsable("FastSpring", m.to_owned());
    let id = text(e, &["id"]).ok_or_else(|| bad("an event has no id"))?;
    let kind = text(e, &["type"]).ok_or_else(|| bad("an event has no type"))?;
    let created = time(e, &["created"]).unwrap_or_else(Utc::now);
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
            money: Money::default(),
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
    Ok(StoreEvent {
        id,
        event_type: kind,
        created,
        event: translated,
    })
}

pub fn translate(body: &str) -> Result<Vec<StoreEvent>, StoreError> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Unparsable("FastSpring", e.to_string()))?;
    let events = v["events"]
        .as_array()
        .ok_or_else(|| StoreError::Unparsable("FastSpring", "no events".into()))?;
    events.iter().map(event).collect()
}
