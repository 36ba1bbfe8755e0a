//! Stripe event JSON → neutral payment events. Read leniently with `serde_json::Value`: Stripe's
//! shapes change between API versions (and differ again in Stripe-compatible test servers), so
//! each field is looked for where current and older versions put it.

use chrono::{DateTime, TimeZone, Utc};
use keyturn_core::payment::{Buyer, Money, PaymentEvent, PlanRef, Reversal, SubscriptionStatus};
use serde_json::Value;

/// The envelope of a Stripe event.
#[derive(Debug, Clone)]
pub struct StripeEvent {
    pub id: String,
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    pub object: Value,
}

impl StripeEvent {
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_value(&v)
    }

    pub fn from_value(v: &Value) -> Result<Self, String> {
        let id = v["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or("no event id")?;
        let event_type = v["type"].as_str().ok_or("no event type")?;
        let created = v["created"].as_i64().ok_or("no created time")?;
        let object = v["data"]["object"].clone();
        if !object.is_object() {
            return Err("no data.object".into());
        }
        Ok(Self {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            created,
            object,
        })
    }

    /// The id of the object the event is about.
    pub fn object_id(&self) -> String {
        str_at(&self.object, &["id"]).unwrap_or_default()
    }
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An id field that may be a bare id or an expanded object.
fn id_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn time(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

/// A Keyturn plan id in an object's metadata: whoever created the object set it (Keyturn's own
/// checkouts are matched to their record instead), so it is only a hint.
fn metadata_plan(obj: &Value) -> PlanRef {
    let hint = obj["metadata"]["keyturn_plan_id"]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .or_else(|| obj["metadata"]["keyturn_plan_id"].as_i64());
    PlanRef {
        hint,
        ..PlanRef::default()
    }
}

fn push_unique(out: &mut Vec<String>, id: Option<String>) {
    if let Some(id) = id {
        if !out.contains(&id) {
            out.push(id);
        }
    }
}

/// Price, plan and product ids of one subscription item or invoice line, most specific first.
fn item_ids(item: &Value, out: &mut Vec<String>) {
    push_unique(out, id_at(item, "price"));
    push_unique(out, str_at(item, &["pricing", "price_details", "price"]));
    push_unique(out, id_at(item, "plan"));
    push_unique(out, item.get("price").and_then(|p| id_at(p, "product")));
    push_unique(out, str_at(item, &["pricing", "price_details", "product"]));
    push_unique(out, item.get("plan").and_then(|p| id_at(p, "product")));
}

fn buyer(obj: &Value) -> Buyer {
    Buyer {
        name: str_at(obj, &["customer_details", "name"])
            .or_else(|| str_at(obj, &["customer_name"])),
        email: str_at(obj, &["customer_details", "email"])
            .or_else(|| str_at(obj, &["customer_email"]))
            .or_else(|| str_at(obj, &["customer", "email"])),
        provider_customer_id: id_at(obj, "customer"),
    }
}

/// The subscription an invoice belongs to: current versions under `parent`, older at top level.
fn invoice_subscription(invoice: &Value) -> Option<String> {
    str_at(invoice, &["parent", "subscription_details", "subscription"])
        .or_else(|| id_at(invoice, "subscription"))
}

/// The charge or payment intent of an invoice where older API versions put them (and where an
/// expanded `payments` list has them); current versions report them in `invoice_payment.paid`.
fn invoice_money(invoice: &Value) -> Money {
    let first_payment = &invoice["payments"]["data"][0]["payment"];
    Money {
        payment_intent: id_at(invoice, "payment_intent")
            .or_else(|| id_at(first_payment, "payment_intent")),
        charge: id_at(invoice, "charge").or_else(|| id_at(first_payment, "charge")),
        amount: invoice["amount_paid"].as_i64(),
        currency: str_at(invoice, &["currency"]),
    }
}

/// What a subscription object says about its plan, quantity and current period.
fn subscription_items(sub: &Value) -> (PlanRef, i64, Option<DateTime<Utc>>) {
    let mut plan = metadata_plan(sub);
    let items = sub["items"]["data"].as_array().cloned().unwrap_or_default();
    let mut quantity = 0;
    let mut period_end = sub["current_period_end"].as_i64();
    for item in &items {
        item_ids(item, &mut plan.provider_ids);
        quantity += item["quantity"].as_i64().unwrap_or(1);
        period_end = period_end.max(item["current_period_end"].as_i64());
    }
    if items.is_empty() {
        item_ids(sub, &mut plan.provider_ids);
        quantity = sub["quantity"].as_i64().unwrap_or(1);
    }
    (plan, quantity.max(1), time(period_end))
}

/// The neutral event a Stripe event stands for; `None` for events that change no license.
pub fn payment_event(event: &StripeEvent) -> Option<PaymentEvent> {
    let obj = &event.object;
    match event.event_type.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            // A delayed payment method completes the session unpaid; the async event follows.
            if str_at(obj, &["payment_status"]).as_deref() == Some("unpaid") {
                return None;
            }
            // The event does not list what was bought: a checkout Keyturn started is matched to
            // its record, any other's line items are read from the API before applying.
            let quantity = 1;
            let money = Money {
                payment_intent: id_at(obj, "payment_intent"),
                charge: None,
                amount: obj["amount_total"].as_i64(),
                currency: str_at(obj, &["currency"]),
            };
            match str_at(obj, &["mode"]).as_deref() {
                Some("payment") => Some(PaymentEvent::Purchased {
                    order: str_at(obj, &["id"])?,
                    buyer: buyer(obj),
                    plan: metadata_plan(obj),
                    quantity,
                    money,
                }),
                Some("subscription") => Some(PaymentEvent::SubscriptionStarted {
                    subscription: id_at(obj, "subscription")?,
                    order: str_at(obj, &["id"]),
                    buyer: buyer(obj),
                    plan: metadata_plan(obj),
                    quantity,
                    status: SubscriptionStatus::Active,
                    period_end: None,
                    // Paid, for a period its invoice will tell: paid up to now, until then.
                    paid_through: time(Some(event.created)),
                    money,
                }),
                _ => None,
            }
        }
        "customer.subscription.created" => {
            let (plan, quantity, period_end) = subscription_items(obj);
            Some(PaymentEvent::SubscriptionStarted {
                subscription: str_at(obj, &["id"])?,
                order: None,
                buyer: Buyer {
                    provider_customer_id: id_at(obj, "customer"),
                    ..Default::default()
                },
                plan,
                quantity,
                status: SubscriptionStatus::parse(obj["status"].as_str().unwrap_or("")),
                period_end,
                // A subscription's period says nothing of payment; its invoices do.
                paid_through: None,
                money: Money::default(),
            })
        }
        "customer.subscription.updated" => {
            let (plan, quantity, period_end) = subscription_items(obj);
            Some(PaymentEvent::SubscriptionChanged {
                subscription: str_at(obj, &["id"])?,
                order: None,
                plan,
                quantity,
                status: SubscriptionStatus::parse(obj["status"].as_str().unwrap_or("")),
                cancel_at_period_end: obj["cancel_at_period_end"].as_bool().unwrap_or(false),
                period_end,
                // Stripe moves the period before the invoice is paid; only invoices extend.
                paid_through: None,
            })
        }
        "customer.subscription.deleted" => {
            let (_, _, period_end) = subscription_items(obj);
            Some(PaymentEvent::Cancelled {
                subscription: str_at(obj, &["id"])?,
                period_end,
            })
        }
        // The same fact under two names; the invoice id makes it apply once.
        "invoice.paid" | "invoice.payment_succeeded" => {
            let subscription = invoice_subscription(obj)?;
            let mut plan = metadata_plan(obj);
            if plan.hint.is_none() {
                plan.hint = metadata_plan(&obj["parent"]["subscription_details"]).hint;
            }
            let lines = obj["lines"]["data"].as_array().cloned().unwrap_or_default();
            // Proration lines name the old price too, as a credit: the regular lines say what
            // runs now, then the charged prorations, then the credited ones.
            let rank = |l: &Value| {
                let proration = l["proration"].as_bool().unwrap_or(false);
                let credit = l["amount"].as_i64().is_some_and(|a| a < 0);
                (proration, credit)
            };
            let mut ordered: Vec<&Value> = lines.iter().collect();
            ordered.sort_by_key(|l| rank(l));
            let mut quantity = None;
            for line in ordered {
                item_ids(line, &mut plan.provider_ids);
                quantity = quantity.or(line["quantity"].as_i64());
            }
            let period_end = lines
                .iter()
                .filter_map(|l| l["period"]["end"].as_i64())
                .max()
                .or_else(|| obj["period_end"].as_i64());
            Some(PaymentEvent::Renewed {
                subscription,
                invoice: str_at(obj, &["id"])?,
                buyer: buyer(obj),
                plan,
                quantity: quantity.unwrap_or(1).max(1),
                period_end: time(period_end),
                money: invoice_money(obj),
            })
        }
        "invoice.payment_failed" => Some(PaymentEvent::PaymentFailed {
            subscription: invoice_subscription(obj),
            invoice: str_at(obj, &["id"])?,
            money: invoice_money(obj),
        }),
        // Which payment settled an invoice: current API versions say so only here.
        "invoice_payment.paid" => Some(PaymentEvent::InvoiceSettled {
            invoice: id_at(obj, "invoice")?,
            money: Money {
                payment_intent: id_at(&obj["payment"], "payment_intent")
                    .or_else(|| id_at(obj, "payment_intent")),
                charge: id_at(&obj["payment"], "charge").or_else(|| id_at(obj, "charge")),
                amount: obj["amount_paid"].as_i64(),
                currency: str_at(obj, &["currency"]),
            },
        }),
        // Only a full refund takes the license away; a partial one is goodwill.
        "charge.refunded" if obj["refunded"].as_bool() == Some(true) => {
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Refunded,
                money: Money {
                    payment_intent: id_at(obj, "payment_intent"),
                    charge: str_at(obj, &["id"]),
                    amount: obj["amount_refunded"].as_i64(),
                    currency: str_at(obj, &["currency"]),
                },
            })
        }
        "charge.dispute.created" => Some(PaymentEvent::Reversed {
            reversal: Reversal::Disputed,
            money: Money {
                payment_intent: id_at(obj, "payment_intent"),
                charge: id_at(obj, "charge"),
                amount: obj["amount"].as_i64(),
                currency: str_at(obj, &["currency"]),
            },
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> StripeEvent {
        StripeEvent::from_value(&json!({"id": "evt_1", "type": kind, "created": 1_700_000_000, "data": {"object": object}})).unwrap()
    }

    #[test]
    fn the_envelope_must_be_complete() {
        assert!(StripeEvent::parse("{}").is_err());
        assert!(StripeEvent::parse(r#"{"id":"evt","type":"x","created":1,"data":{}}"#).is_err());
        assert!(StripeEvent::parse("not json").is_err());
    }

    #[test]
    fn checkout_payment_mode_is_a_purchase() {
        let e = event(
            "checkout.session.completed",
            json!({
                "id": "cs_1", "mode": "payment", "payment_status": "paid", "payment_intent": "pi_1",
                "customer": null, "customer_details": {"email": "ann@example.com", "name": "Ann"},
                "metadata": {"keyturn_plan_id": "7", "keyturn_quantity": "3"}, "amount_total": 900, "currency": "eur"
            }),
        );
        match payment_event(&e) {
            Some(PaymentEvent::Purchased {
                order,
                buyer,
                plan,
                quantity,
                money,
            }) => {
                assert_eq!(order, "cs_1");
                assert_eq!(buyer.email.as_deref(), Some("ann@example.com"));
                assert_eq!(plan.hint, Some(7), "metadata is a hint");
                assert!(plan.is_empty(), "the event names nothing purchased");
                assert_eq!(quantity, 1, "the metadata's quantity is not taken");
                assert_eq!(money.payment_intent.as_deref(), Some("pi_1"));
            }
            other => panic!("{other:?}"),
        }
        let unpaid = event(
            "checkout.session.completed",
            json!({"id": "cs_2", "mode": "payment", "payment_status": "unpaid"}),
        );
        assert_eq!(payment_event(&unpaid), None);
    }

    #[test]
    fn invoices_are_read_in_current_and_older_shapes() {
        let current = event(
            "invoice.paid",
            json!({
                "id": "in_1", "billing_reason": "subscription_cycle",
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}},
                "lines": {"data": [{"period": {"start": 1, "end": 1_702_592_000}, "quantity": 2,
                                     "pricing": {"price_details": {"price": "price_pro", "product": "prod_x"}}}]},
                "payments": {"data": [{"payment": {"payment_intent": "pi_9"}}]}
            }),
        );
        let older = event(
            "invoice.payment_succeeded",
            json!({
                "id": "in_1", "subscription": "sub_1", "charge": {"id": "ch_1"}, "payment_intent": "pi_9",
                "lines": {"data": [{"period": {"start": 1, "end": 1_702_592_000}, "quantity": 2, "plan": {"id": "plan_pro", "product": "prod_x"}, "price": null}]}
            }),
        );
        for (e, first_id) in [(current, "price_pro"), (older, "plan_pro")] {
            match payment_event(&e) {
                Some(PaymentEvent::Renewed {
                    subscription,
                    invoice,
                    plan,
                    quantity,
                    period_end,
                    money,
                    ..
                }) => {
                    assert_eq!(subscription, "sub_1");
                    assert_eq!(invoice, "in_1");
                    assert_eq!(plan.provider_ids[0], first_id);
                    assert!(plan.provider_ids.contains(&"prod_x".to_owned()));
                    assert_eq!(quantity, 2);
                    assert_eq!(period_end.unwrap().timestamp(), 1_702_592_000);
                    assert_eq!(money.payment_intent.as_deref(), Some("pi_9"));
                }
                other => panic!("{other:?}"),
            }
        }
        let one_off = event("invoice.paid", json!({"id": "in_2", "lines": {"data": []}}));
        assert_eq!(
            payment_event(&one_off),
            None,
            "invoices outside subscriptions are not renewals"
        );
    }

    #[test]
    fn subscription_periods_come_from_items_or_the_subscription() {
        let current = event(
            "customer.subscription.updated",
            json!({
                "id": "sub_1", "status": "past_due", "cancel_at_period_end": true,
                "items": {"data": [{"price": {"id": "price_team", "product": "prod_x"}, "quantity": 5, "current_period_end": 1_800_000_000}]}
            }),
        );
        match payment_event(&current) {
            Some(PaymentEvent::SubscriptionChanged {
                plan,
                quantity,
                status,
                cancel_at_period_end,
                period_end,
                ..
            }) => {
                assert_eq!(plan.provider_ids[0], "price_team");
                assert_eq!(quantity, 5);
                assert_eq!(status, SubscriptionStatus::PastDue);
                assert!(cancel_at_period_end);
                assert_eq!(period_end.unwrap().timestamp(), 1_800_000_000);
            }
            other => panic!("{other:?}"),
        }
        let older = event(
            "customer.subscription.created",
            json!({
                "id": "sub_2", "status": "active", "current_period_end": 1_800_000_001, "customer": "cus_1",
                "items": {"data": [{"plan": {"id": "plan_pro"}, "price": null, "quantity": 1}]}
            }),
        );
        match payment_event(&older) {
            Some(PaymentEvent::SubscriptionStarted {
                period_end,
                buyer,
                plan,
                ..
            }) => {
                assert_eq!(period_end.unwrap().timestamp(), 1_800_000_001);
                assert_eq!(buyer.provider_customer_id.as_deref(), Some("cus_1"));
                assert_eq!(plan.provider_ids, vec!["plan_pro".to_owned()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_full_refunds_and_disputes_reverse() {
        let partial = event(
            "charge.refunded",
            json!({"id": "ch_1", "refunded": false, "payment_intent": "pi_1"}),
        );
        assert_eq!(payment_event(&partial), None);
        let full = event(
            "charge.refunded",
            json!({"id": "ch_1", "refunded": true, "payment_intent": "pi_1"}),
        );
        assert!(matches!(
            payment_event(&full),
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Refunded,
                ..
            })
        ));
        let dispute = event(
            "charge.dispute.created",
            json!({"id": "dp_1", "charge": "ch_1", "payment_intent": "pi_1"}),
        );
        match payment_event(&dispute) {
            Some(PaymentEvent::Reversed {
                reversal: Reversal::Disputed,
                money,
            }) => {
                assert_eq!(money.charge.as_deref(), Some("ch_1"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            payment_event(&event("customer.created", json!({"id": "cus_1"}))),
            None
        );
    }

    #[test]
    fn an_invoice_payment_names_what_settled_the_invoice() {
        let current = event(
            "invoice_payment.paid",
            json!({"id": "inpay_1", "object": "invoice_payment", "invoice": "in_1", "amount_paid": 1500,
                   "currency": "eur", "payment": {"type": "payment_intent", "payment_intent": "pi_1"}}),
        );
        match payment_event(&current) {
            Some(PaymentEvent::InvoiceSettled { invoice, money }) => {
                assert_eq!(invoice, "in_1");
                assert_eq!(money.payment_intent.as_deref(), Some("pi_1"));
                assert_eq!(money.amount, Some(1500));
            }
            other => panic!("{other:?}"),
        }
        let by_charge = event(
            "invoice_payment.paid",
            json!({"id": "inpay_2", "invoice": {"id": "in_2"}, "payment": {"type": "charge", "charge": "ch_2"}}),
        );
        match payment_event(&by_charge) {
            Some(PaymentEvent::InvoiceSettled { invoice, money }) => {
                assert_eq!(invoice, "in_2");
                assert_eq!(money.charge.as_deref(), Some("ch_2"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_proration_invoice_names_the_new_price_first() {
        let upgrade = event(
            "invoice.paid",
            json!({"id": "in_3", "billing_reason": "subscription_update",
                   "parent": {"subscription_details": {"subscription": "sub_1", "metadata": {"keyturn_plan_id": "9"}}},
                   "lines": {"data": [
                       {"amount": -500, "proration": true, "quantity": 1, "period": {"end": 1_702_592_000},
                        "pricing": {"price_details": {"price": "price_old"}}},
                       {"amount": 1500, "proration": true, "quantity": 3, "period": {"end": 1_702_592_000},
                        "pricing": {"price_details": {"price": "price_new"}}}]}}),
        );
        match payment_event(&upgrade) {
            Some(PaymentEvent::Renewed { plan, quantity, .. }) => {
                assert_eq!(plan.provider_ids[0], "price_new");
                assert_eq!(quantity, 3);
                assert_eq!(plan.hint, Some(9), "the subscription's metadata is a hint");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_checkout_reports_paid_time_without_a_period() {
        let checkout = event(
            "checkout.session.completed",
            json!({"id": "cs_1", "mode": "subscription", "payment_status": "paid", "subscription": "sub_1"}),
        );
        match payment_event(&checkout) {
            Some(PaymentEvent::SubscriptionStarted { paid_through, .. }) => {
                assert_eq!(paid_through.unwrap().timestamp(), 1_700_000_000);
            }
            other => panic!("{other:?}"),
        }
        let created = event(
            "customer.subscription.created",
            json!({"id": "sub_1", "status": "active", "items": {"data": [
                {"price": {"id": "price_1"}, "quantity": 1, "current_period_end": 1_800_000_000}]}}),
        );
        match payment_event(&created) {
            Some(PaymentEvent::SubscriptionStarted {
                paid_through,
                period_end,
                ..
            }) => {
                assert_eq!(paid_through, None, "a reported period is not a payment");
                assert_eq!(period_end.unwrap().timestamp(), 1_800_000_000);
            }
            other => panic!("{other:?}"),
        }
    }
}
