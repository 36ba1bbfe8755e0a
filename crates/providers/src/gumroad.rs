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

use crate::{StoreError, StoreEvent};

pub const PROVIDER: &str = "gumroad";

pub fn verify(presented: &str, configured: Option<&str>) -> Result<(), StoreError> {
    let configured = configured.ok_or(StoreError::NotConfigured)?;
    if bool::from(presented.as_bytes().ct_eq(configured.as_bytes())) {
        Ok(())
    } else {
        Err(StoreError::BadSignature)
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

pub fn translate(fields: &HashMap<String, String>) -> Result<Vec<StoreEvent>, StoreError> {
    let get = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let bad = |m: &str| StoreError::Unparsable("Gumroad", m.to_owned());
    let resource = get("resource_name").unwrap_or_else(|| "sale".into());
    let at: DateTime<Utc> = get("sale_timestamp")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let subscription = get("subscription_id").map(|s| format!("gumroad:{s}"));
    let plan = PlanRef {
        hint: None,
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
    Ok(vec![StoreEvent {
        id,
        event_type: resource,
        created: at,
        event,
    }])
}
