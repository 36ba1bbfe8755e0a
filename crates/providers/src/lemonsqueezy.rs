//! Lemon Squeezy. Follows "Signing requests" (docs.lemonsqueezy.com/help/webhooks/signing-requests):
//! `X-Signature` is the hex HMAC-SHA256 of the raw body keyed with the webhook's signing secret.
//! Bodies are `{meta: {event_name, custom_data}, data: {type, id, attributes}}`
//! (docs.lemonsqueezy.com/help/webhooks/webhook-requests). Notifications carry no event id, so
//! one is made from the event name, the object and its `updated_at`: a retry repeats it.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

use crate::read::{int, text, time};
use crate::signature::{body_signed, hmac_sha256, unparsable};
use crate::{EventEnvelope, ProviderError, Verified};

pub const PROVIDER: &str = "lemonsqueezy";

pub fn verify<'a>(
    header: Option<&str>,
    body: &'a [u8],
    secrets: &[String],
    now: DateTime<Utc>,
) -> Result<Verified<'a>, ProviderError> {
    body_signed(header, body, secrets, now, |h| hex::decode(h).ok())
}

pub fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, &[body]))
}

/// A Lemon Squeezy status. `cancelled` runs until `ends_at` (the customer keeps what they paid
/// for), so it is active with its cancellation set; `expired` has ended.
fn status(s: &str) -> (SubscriptionStatus, bool) {
    match s {
        "on_trial" => (SubscriptionStatus::Trialing, false),
        "cancelled" => (SubscriptionStatus::Active, true),
        "expired" => (SubscriptionStatus::Canceled, false),
        other => (SubscriptionStatus::parse(other), false),
    }
}

pub fn translate(
    verified: &Verified<'_>,
    notify_buyer: bool,
) -> Result<Vec<EventEnvelope>, ProviderError> {
    let bad = |m: &str| unparsable("Lemon Squeezy", m);
    let body = verified.text()?;
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
        .unwrap_or(verified.at());
    let buyer = Buyer {
        name: text(a, &["user_name"]),
        email: text(a, &["user_email"]),
        provider_customer_id: None,
    };
    // The variant bought picks the plan; custom data came with the checkout link, which the
    // buyer can edit, so its plan id is only a hint.
    let plan_of = |variant: Option<String>| PlanRef {
        provider_ids: variant
            .map(|id| vec![format!("lemonsqueezy:{id}")])
            .unwrap_or_default(),
        hint: int(&v, &["meta", "custom_data", "keyturn_plan_id"]),
        configured: None,
    };
    let subscription = |id: String| format!("lemonsqueezy:{id}");
    // An order's payment is known by its id, so a refund of the order finds whichever license
    // it bought, the order's own or the subscription's that adopted it.
    let order_money = |order: &str| Money {
        payment_intent: Some(format!("order:{order}")),
        ..Default::default()
    };
    let (st, cancelled) = status(&text(a, &["status"]).unwrap_or_default());
    let quantity = int(a, &["first_subscription_item", "quantity"])
        .unwrap_or(1)
        .max(1);
    let order_id = text(a, &["order_id"]);
    // Lemon Squeezy moves `renews_at` once a renewal is paid; its payment notice carries no
    // period, so an active subscription's `renews_at` is what the customer has paid for. A
    // past_due one's is a retry date, an expired one's `ends_at` when access ended: not paid.
    let paid_through = time(a, &["renews_at"]).filter(|_| {
        !cancelled
            && matches!(
                st,
                SubscriptionStatus::Active | SubscriptionStatus::Trialing
            )
    });
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
                    amount: int(a, &["total"]),
                    currency: text(a, &["currency"]),
                    ..order_money(&object)
                },
            })
        }
        // A partial refund leaves the order paid (only `refunded_amount` grows): goodwill, the
        // license stays, as with every other provider.
        "order_refunded"
            if a["refunded"].as_bool() == Some(true)
                || text(a, &["status"]).as_deref() == Some("refunded") =>
        {
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Refunded,
                money: order_money(&object),
            })
        }
        "subscription_created" => Some(PaymentEvent::SubscriptionStarted {
            subscription: subscription(object),
            order: order_id.clone(),
            buyer,
            plan: plan_of(text(a, &["variant_id"])),
            quantity,
            status: st,
            period_end: time(a, &["renews_at"]),
            paid_through,
            money: order_id.as_deref().map(order_money).unwrap_or_default(),
        }),
        "subscription_expired" => Some(PaymentEvent::Cancelled {
            subscription: subscription(object),
            period_end: None,
        }),
        "subscription_updated"
        | "subscription_cancelled"
        | "subscription_resumed"
        | "subscription_paused"
        | "subscription_unpaused" => Some(PaymentEvent::SubscriptionChanged {
            subscription: subscription(object),
            order: order_id,
            plan: plan_of(text(a, &["variant_id"])),
            quantity,
            status: st,
            cancel_at_period_end: cancelled || a["cancelled"].as_bool().unwrap_or(false),
            period_end: time(a, &["renews_at"]),
            paid_through,
        }),
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
    Ok(vec![EventEnvelope {
        event,
        ..crate::envelope(PROVIDER, id, name, created, body, notify_buyer)
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(body: Value) -> Option<PaymentEvent> {
        let text = body.to_string();
        translate(&Verified::new(text.as_bytes(), Utc::now()), false)
            .unwrap()
            .remove(0)
            .event
    }

    fn subscription(event: &str, status: &str) -> Value {
        json!({"meta": {"event_name": event, "custom_data": {"keyturn_plan_id": "9"}},
               "data": {"type": "subscriptions", "id": "5", "attributes": {"status": status, "order_id": 7,
                   "variant_id": 222, "renews_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z",
                   "updated_at": "2029-01-01T00:00:00Z"}}})
    }

    #[test]
    fn statuses_say_what_is_paid_and_what_has_ended() {
        match one(subscription("subscription_updated", "active")) {
            Some(PaymentEvent::SubscriptionChanged {
                status,
                paid_through,
                order,
                plan,
                ..
            }) => {
                assert_eq!(status, SubscriptionStatus::Active);
                assert!(paid_through.is_some(), "an active renews_at is paid");
                assert_eq!(order.as_deref(), Some("7"), "adopts its first order");
                assert_eq!(plan.provider_ids, vec!["lemonsqueezy:222".to_owned()]);
                assert_eq!(plan.hint, Some(9));
            }
            other => panic!("{other:?}"),
        }
        for (st, expected, cancelling) in [
            ("past_due", SubscriptionStatus::PastDue, false),
            ("cancelled", SubscriptionStatus::Active, true),
            ("expired", SubscriptionStatus::Canceled, false),
        ] {
            match one(subscription("subscription_updated", st)) {
                Some(PaymentEvent::SubscriptionChanged {
                    status,
                    paid_through,
                    cancel_at_period_end,
                    ..
                }) => {
                    assert_eq!(status, expected, "{st}");
                    assert_eq!(cancel_at_period_end, cancelling, "{st}");
                    assert_eq!(paid_through, None, "{st}: not paid time");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            one(subscription("subscription_expired", "expired")),
            Some(PaymentEvent::Cancelled {
                period_end: None,
                ..
            })
        ));
    }

    #[test]
    fn only_a_full_refund_reverses_an_order() {
        let refund = |refunded: bool, status: &str| {
            json!({"meta": {"event_name": "order_refunded"},
                   "data": {"type": "orders", "id": "7", "attributes": {"refunded": refunded, "status": status,
                       "refunded_amount": 100, "updated_at": "2029-01-01T00:00:00Z"}}})
        };
        assert_eq!(one(refund(false, "paid")), None);
        assert_eq!(one(refund(false, "partial_refund")), None);
        assert!(matches!(
            one(refund(true, "refunded")),
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Refunded,
                ..
            })
        ));
    }
}
