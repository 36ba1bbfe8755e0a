//! Lemon Squeezy. Follows "Signing requests" (docs.lemonsqueezy.com/help/webhooks/signing-requests):
//! `X-Signature` is the hex HMAC-SHA256 of the raw body keyed with the webhook's signing secret.
//! Bodies are `{meta: {event_name, custom_data}, data: {type, id, attributes}}`
//! (docs.lemonsqueezy.com/help/webhooks/webhook-requests). Notifications carry no event id, so
//! one is made from the event name, the object and its `updated_at`: a retry repeats it.

use chrono::Utc;
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

use crate::read::{int, text, time};
use crate::{any_secret_matches, StoreError, StoreEvent};

pub const PROVIDER: &str = "lemonsqueezy";

pub fn verify(header: Option<&str>, body: &[u8], secrets: &[String]) -> Result<(), StoreError> {
    if secrets.is_empty() {
        return Err(StoreError::NotConfigured);
    }
    let sig = hex::decode(header.ok_or(StoreError::MissingSignature)?.trim())
        .map_err(|_| StoreError::BadSignature)?;
    if any_secret_matches(secrets, &[body], &sig) {
        Ok(())
    } else {
        Err(StoreError::BadSignature)
    }
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(crate::hmac_sha256(secret, &[body]))
}

fn status(s: &str) -> SubscriptionStatus {
    match s {
        "on_trial" => SubscriptionStatus::Trialing,
        "cancelled" | "expired" => SubscriptionStatus::Canceled,
        other => SubscriptionStatus::parse(other),
    }
}

pub fn translate(body: &str) -> Result<Vec<StoreEvent>, StoreError> {
    let bad = |m: &str| StoreError::Unparsable("Lemon Squeezy", m.to_owned());
    let v: Value = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
    let name = text(&v, &["meta", "event_name"]).ok_or_else(|| bad("no meta.event_name"))?;
    let data = &v["data"];
    let object = text(data, &["id"]).ok_or_else(|| bad("no data.id"))?;
    let a = &data["attributes"];
    if !a.is_object() {
        return Err(bad("no data.attributes"));
    }
    let updated = text(a, &["updated_at"]).unwrap_or_default();
    let id = format!(
        "{name}:{}:{object}:{updated}",
        text(data, &["type"]).unwrap_or_default()
    );
    let created = time(a, &["updated_at"])
        .or_else(|| time(a, &["created_at"]))
        .unwrap_or_else(Utc::now);
    let buyer = Buyer {
        name: text(a, &["user_name"]),
        email: text(a, &["user_email"]),
        provider_customer_id: None,
    };
    let plan_of = |variant: Option<String>| PlanRef {
        plan_id: int(&v, &["meta", "custom_data", "keyturn_plan_id"]),
        provider_ids: variant
            .map(|id| vec![format!("lemonsqueezy:{id}")])
            .unwrap_or_default(),
    };
    let subscription = |id: String| format!("lemonsqueezy:{id}");
    let event = match name.as_str() {
        "order_created" if text(a, &["status"]).as_deref() == Some("paid") => {
            Some(PaymentEvent::Purchased {
                order: object.clone(),
                buyer,
                plan: plan_of(text(a, &["first_order_item", "variant_id"])),
                quantity: int(a, &["first_order_item", "quantity"])
                    .unwrap_or(1)
                    .max(1),
                money: Money {
                    payment_intent: Some(format!("order:{object}")),
                    charge: None,
                    amount: int(a, &["total"]),
                    currency: text(a, &["currency"]),
                },
            })
        }
        "order_refunded" => Some(PaymentEvent::Reversed {
            reversal: Reversal::Refunded,
            money: Money {
                payment_intent: Some(format!("order:{object}")),
                ..Default::default()
            },
        }),
        "subscription_created" => Some(PaymentEvent::SubscriptionStarted {
            subscription: subscription(object),
            order: text(a, &["order_id"]),
            buyer,
            plan: plan_of(text(a, &["variant_id"])),
            quantity: int(a, &["first_subscription_item", "quantity"])
                .unwrap_or(1)
                .max(1),
            status: status(&text(a, &["status"]).unwrap_or_default()),
            period_end: time(a, &["renews_at"]),
            money: Money::default(),
        }),
        // Lemon Squeezy moves `renews_at` once a renewal is paid; its payment notice carries no
        // period, so an active subscription's `renews_at` is what the customer has paid for.
        "subscription_updated"
        | "subscription_cancelled"
        | "subscription_resumed"
        | "subscription_expired"
        | "subscription_paused"
        | "subscription_unpaused" => {
            let st = status(&text(a, &["status"]).unwrap_or_default());
            let renews = time(a, &["renews_at"]);
            if name == "subscription_expired" {
                Some(PaymentEvent::Cancelled {
                    subscription: subscription(object),
                    period_end: time(a, &["ends_at"]),
                })
            } else {
                Some(PaymentEvent::SubscriptionChanged {
                    subscription: subscription(object),
                    plan: plan_of(text(a, &["variant_id"])),
                    quantity: int(a, &["first_subscription_item", "quantity"])
                        .unwrap_or(1)
                        .max(1),
                    // A cancelled Lemon Squeezy subscription runs until `ends_at`, then expires.
                    status: if st == SubscriptionStatus::Canceled && name != "subscription_expired"
                    {
                        SubscriptionStatus::Active
                    } else {
                        st
                    },
                    cancel_at_period_end: a["cancelled"].as_bool().unwrap_or(false),
                    period_end: renews.or_else(|| time(a, &["ends_at"])),
                    paid_through: renews.filter(|_| {
                        matches!(
                            st,
                            SubscriptionStatus::Active | SubscriptionStatus::Trialing
                        )
                    }),
                })
            }
        }
        "subscription_payment_success" => Some(PaymentEvent::Renewed {
            subscription: subscription(
                text(a, &["subscription_id"]).ok_or_else(|| bad("no subscription_id"))?,
            ),
            invoice: object,
            buyer,
            plan: PlanRef::default(),
            quantity: 1,
            period_end: None,
            money: Money {
                amount: int(a, &["total"]),
                currency: text(a, &["currency"]),
                ..Default::default()
            },
        }),
        _ => None,
    };
    Ok(vec![StoreEvent {
        id,
        event_type: name,
        created,
        event,
    }])
}
