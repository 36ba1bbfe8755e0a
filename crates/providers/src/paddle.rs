//! Paddle Billing. Follows Paddle's "Verify webhook signatures" (developer.paddle.com/webhooks/
//! signature-verification): `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=…]`, HMAC-SHA256 keyed
//! with the notification destination's secret over `"<ts>:<raw body>"`. Events are
//! `{event_id, event_type, occurred_at, data}` (developer.paddle.com/webhooks/overview).

use std::time::Duration;

use chrono::Utc;
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

use crate::read::{int, text, time};
use crate::{any_secret_matches, StoreError, StoreEvent};

pub const PROVIDER: &str = "paddle";

pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    tolerance: Duration,
    now: i64,
) -> Result<(), StoreError> {
    if secrets.is_empty() {
        return Err(StoreError::NotConfigured);
    }
    let header = header.ok_or(StoreError::MissingSignature)?;
    let mut ts = None;
    let mut candidates = Vec::new();
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("ts", v)) => ts = Some(v),
            Some(("h1", v)) => {
                candidates.push(hex::decode(v).map_err(|_| StoreError::BadSignature)?)
            }
            _ => {}
        }
    }
    let ts = ts.ok_or(StoreError::BadSignature)?;
    let t: i64 = ts.parse().map_err(|_| StoreError::BadSignature)?;
    if now.abs_diff(t) > tolerance.as_secs() {
        return Err(StoreError::Stale);
    }
    let parts: [&[u8]; 3] = [ts.as_bytes(), b":", body];
    if candidates
        .iter()
        .any(|c| any_secret_matches(secrets, &parts, c))
    {
        Ok(())
    } else {
        Err(StoreError::BadSignature)
    }
}

/// A `Paddle-Signature` header for tests and tools.
pub fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let t = ts.to_string();
    format!(
        "ts={t};h1={}",
        hex::encode(crate::hmac_sha256(secret, &[t.as_bytes(), b":", body]))
    )
}

fn plan_and_quantity(data: &Value) -> (PlanRef, i64) {
    // Custom data is whatever the checkout carried, which the buyer can set: a hint only.
    let mut plan = PlanRef {
        provider_ids: Vec::new(),
        hint: int(data, &["custom_data", "keyturn_plan_id"]),
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

pub fn translate(body: &str) -> Result<Vec<StoreEvent>, StoreError> {
    let bad = |m: &str| StoreError::Unparsable("Paddle", m.to_owned());
    let v: Value = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
    let id = text(&v, &["event_id"]).ok_or_else(|| bad("no event_id"))?;
    let kind = text(&v, &["event_type"]).ok_or_else(|| bad("no event_type"))?;
    let created = time(&v, &["occurred_at"]).unwrap_or_else(Utc::now);
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
    Ok(vec![StoreEvent {
        id,
        event_type: kind,
        created,
        event,
    }])
}
