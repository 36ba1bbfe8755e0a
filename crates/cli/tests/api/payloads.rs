//! Provider notifications in their current shapes, built for the payment tests, and the signed
//! deliveries that carry them to the server as each provider sends them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::{fastspring, lemonsqueezy, paddle, Providers, StoreSecrets};
use serde_json::{json, Value};

use crate::helpers::{Resp, TestApp};

pub const STRIPE_SECRET: &str = "whsec_payloads_test";
pub const PADDLE_SECRET: &str = "pdl_ntfset_payloads";
pub const LEMON_SECRET: &str = "lemon-payloads-secret";
pub const FASTSPRING_SECRET: &str = "fastspring-payloads-secret";
/// Gumroad signs nothing: its pings are accepted on the URL holding this.
pub const GUMROAD_SECRET: &str = "gumroad-payloads-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Stripe,
    Paddle,
    Lemon,
    FastSpring,
    Gumroad,
}

impl Provider {
    pub fn path(self) -> String {
        match self {
            Provider::Stripe => "/webhooks/stripe".into(),
            Provider::Paddle => "/webhooks/paddle".into(),
            Provider::Lemon => "/webhooks/lemonsqueezy".into(),
            Provider::FastSpring => "/webhooks/fastspring".into(),
            Provider::Gumroad => format!("/webhooks/gumroad/{GUMROAD_SECRET}"),
        }
    }

    /// How the server names the provider in `/v1/subscriptions/{provider}/…`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Paddle => "paddle",
            Provider::Lemon => "lemonsqueezy",
            Provider::FastSpring => "fastspring",
            Provider::Gumroad => "gumroad",
        }
    }
}

/// Signs `body` as the provider does and posts it to its webhook (Gumroad: a form to its secret
/// URL).
pub async fn send(app: &TestApp, provider: Provider, body: &str) -> Resp {
    send_with(&app.http, &app.base, provider, body).await
}

pub async fn send_with(http: &reqwest::Client, base: &str, provider: Provider, body: &str) -> Resp {
    let now = Utc::now().timestamp();
    let signature = match provider {
        Provider::Stripe => Some((
            "stripe-signature",
            keyturn_providers::stripe::sign(STRIPE_SECRET, now, body.as_bytes()),
        )),
        Provider::Paddle => Some((
            "paddle-signature",
            paddle::sign(PADDLE_SECRET, now, body.as_bytes()),
        )),
        Provider::Lemon => Some((
            "x-signature",
            lemonsqueezy::sign(LEMON_SECRET, body.as_bytes()),
        )),
        Provider::FastSpring => Some((
            "x-fs-signature",
            fastspring::sign(FASTSPRING_SECRET, body.as_bytes()),
        )),
        Provider::Gumroad => None,
    };
    let content_type = match provider {
        Provider::Gumroad => "application/x-www-form-urlencoded",
        _ => "application/json",
    };
    let mut request = http
        .post(format!("{base}{}", provider.path()))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some((name, value)) = signature {
        request = request.header(name, value);
    }
    let r = request
        .send()
        .await
        .expect("the webhook reaches the server");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.expect("body").to_vec();
    Resp {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        headers,
    }
}

/// Stripe, Paddle, Lemon Squeezy, FastSpring and Gumroad webhooks, with Stripe's API at
/// `stripe_api` when given.
pub fn providers(stripe_api: Option<&str>) -> Providers {
    Providers {
        stripe: Some(StripeAdapter::new(
            vec![STRIPE_SECRET.into()],
            Duration::from_secs(300),
            stripe_api.map(|base| StripeApi::new(base, "sk_test_payloads")),
        )),
        stores: StoreSecrets {
            paddle: vec![PADDLE_SECRET.into()],
            lemonsqueezy: vec![LEMON_SECRET.into()],
            fastspring: vec![FASTSPRING_SECRET.into()],
            gumroad: Some(GUMROAD_SECRET.into()),
            tolerance: Duration::from_secs(300),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub fn iso(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .expect("a test time")
        .to_rfc3339()
}

/// A Stripe API that knows what each checkout session sold, as a test registers it.
#[derive(Clone, Default)]
pub struct StripeLineItems(Arc<Mutex<HashMap<String, (String, i64)>>>);

impl StripeLineItems {
    pub fn sell(&self, session: &str, price: &str, quantity: i64) {
        self.0
            .lock()
            .unwrap()
            .insert(session.to_owned(), (price.to_owned(), quantity));
    }

    /// Serves `GET /v1/checkout/sessions/{id}/line_items`; returns its base URL.
    pub async fn serve(&self) -> String {
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        let router = axum::Router::new()
            .route(
                "/v1/checkout/sessions/{id}/line_items",
                axum::routing::get(
                    |State(sold): State<StripeLineItems>, Path(id): Path<String>| async move {
                        let found = sold.0.lock().unwrap().get(&id).cloned();
                        match found {
                            Some((price, quantity)) => (
                                StatusCode::OK,
                                axum::Json(json!({"object": "list", "has_more": false, "data": [
                                    {"id": format!("li_{id}"), "object": "item", "quantity": quantity,
                                     "price": {"id": price, "object": "price", "product": "prod_test"}}]})),
                            ),
                            None => (
                                StatusCode::NOT_FOUND,
                                axum::Json(json!({"error": {"message": "No such checkout session"}})),
                            ),
                        }
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        base
    }
}

/// Stripe events in the current API shape (`2026-10-28.endive`).
pub mod stripe {
    use super::*;

    fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
        json!({"id": id, "object": "event", "api_version": "2026-10-28.endive", "created": created,
               "livemode": false, "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
               "type": kind, "data": {"object": object}})
        .to_string()
    }

    /// A Checkout Session completed in payment mode; `metadata` as its creator set it.
    pub fn checkout_payment(
        id: &str,
        created: i64,
        session: &str,
        email: &str,
        metadata: Value,
        payment_intent: &str,
    ) -> String {
        event(
            id,
            "checkout.session.completed",
            created,
            json!({"id": session, "object": "checkout.session", "mode": "payment", "status": "complete",
                   "payment_status": "paid", "amount_total": 4900, "currency": "eur", "customer": null,
                   "customer_details": {"email": email, "name": "Buyer"}, "metadata": metadata,
                   "payment_intent": payment_intent, "subscription": null, "invoice": null}),
        )
    }

    /// A Checkout Session completed in subscription mode.
    pub fn checkout_subscription(
        id: &str,
        created: i64,
        session: &str,
        subscription: &str,
        email: &str,
        metadata: Value,
    ) -> String {
        event(
            id,
            "checkout.session.completed",
            created,
            json!({"id": session, "object": "checkout.session", "mode": "subscription", "status": "complete",
                   "payment_status": "paid", "customer_details": {"email": email, "name": "Subscriber"},
                   "metadata": metadata, "payment_intent": null, "subscription": subscription}),
        )
    }

    fn subscription_object(
        subscription: &str,
        status: &str,
        price: &str,
        quantity: i64,
        period: (i64, i64),
        cancel_at_period_end: bool,
    ) -> Value {
        json!({"id": subscription, "object": "subscription", "status": status, "customer": format!("cus_{subscription}"),
               "cancel_at_period_end": cancel_at_period_end, "metadata": {},
               "items": {"object": "list", "data": [
                   {"id": format!("si_{subscription}"), "object": "subscription_item", "quantity": quantity,
                    "current_period_start": period.0, "current_period_end": period.1,
                    "price": {"id": price, "object": "price", "product": "prod_test"}}]}})
    }

    /// `customer.subscription.created`, `.updated` or `.deleted`.
    #[allow(clippy::too_many_arguments)]
    pub fn subscription(
        id: &str,
        kind: &str,
        created: i64,
        subscription: &str,
        status: &str,
        price: &str,
        quantity: i64,
        period: (i64, i64),
        cancel_at_period_end: bool,
    ) -> String {
        event(
            id,
            kind,
            created,
            subscription_object(
                subscription,
                status,
                price,
                quantity,
                period,
                cancel_at_period_end,
            ),
        )
    }

    /// `invoice.paid` as current API versions send it: no charge, no payment intent.
    #[allow(clippy::too_many_arguments)]
    pub fn invoice_paid(
        id: &str,
        created: i64,
        invoice: &str,
        subscription: &str,
        email: &str,
        price: &str,
        quantity: i64,
        period: (i64, i64),
    ) -> String {
        event(
            id,
            "invoice.paid",
            created,
            json!({"id": invoice, "object": "invoice", "billing_reason": "subscription_cycle", "status": "paid",
                   "customer": format!("cus_{subscription}"), "customer_email": email, "customer_name": "Subscriber",
                   "amount_paid": 1500, "currency": "eur",
                   "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription, "metadata": {}}},
                   "lines": {"object": "list", "has_more": false, "data": [
                       {"id": format!("il_{invoice}"), "object": "line_item", "amount": 1500, "quantity": quantity,
                        "proration": false, "period": {"start": period.0, "end": period.1},
                        "pricing": {"type": "price_details", "price_details": {"price": price, "product": "prod_test"}}}]}}),
        )
    }

    pub fn invoice_failed(
        id: &str,
        created: i64,
        invoice: &str,
        subscription: &str,
        price: &str,
        period: (i64, i64),
    ) -> String {
        event(
            id,
            "invoice.payment_failed",
            created,
            json!({"id": invoice, "object": "invoice", "billing_reason": "subscription_cycle", "status": "open",
                   "attempt_count": 1, "amount_paid": 0, "amount_due": 1500, "currency": "eur",
                   "parent": {"type": "subscription_details", "subscription_details": {"subscription": subscription}},
                   "lines": {"object": "list", "data": [
                       {"id": format!("il_{invoice}"), "object": "line_item", "amount": 1500, "quantity": 1,
                        "proration": false, "period": {"start": period.0, "end": period.1},
                        "pricing": {"type": "price_details", "price_details": {"price": price, "product": "prod_test"}}}]}}),
        )
    }

    /// `invoice_payment.paid`: which payment settled an invoice.
    pub fn invoice_payment_paid(
        id: &str,
        created: i64,
        invoice: &str,
        payment_intent: &str,
    ) -> String {
        event(
            id,
            "invoice_payment.paid",
            created,
            json!({"id": format!("inpay_{invoice}"), "object": "invoice_payment", "amount_paid": 1500,
                   "amount_requested": 1500, "currency": "eur", "invoice": invoice, "is_default": true,
                   "payment": {"type": "payment_intent", "payment_intent": payment_intent}, "status": "paid",
                   "status_transitions": {"canceled_at": null, "paid_at": created}}),
        )
    }

    pub fn charge_refunded(id: &str, created: i64, payment_intent: &str, full: bool) -> String {
        event(
            id,
            "charge.refunded",
            created,
            json!({"id": format!("ch_{payment_intent}"), "object": "charge", "amount": 1500,
                   "amount_refunded": if full { 1500 } else { 500 }, "currency": "eur", "refunded": full,
                   "payment_intent": payment_intent}),
        )
    }

    pub fn dispute(id: &str, created: i64, payment_intent: &str) -> String {
        event(
            id,
            "charge.dispute.created",
            created,
            json!({"id": format!("dp_{payment_intent}"), "object": "dispute", "amount": 1500, "currency": "eur",
                   "charge": format!("ch_{payment_intent}"), "payment_intent": payment_intent,
                   "reason": "fraudulent", "status": "needs_response"}),
        )
    }
}

/// Paddle Billing events.
pub mod paddle_events {
    use super::*;

    fn event(id: &str, kind: &str, at: i64, data: Value) -> String {
        json!({"event_id": id, "event_type": kind, "occurred_at": iso(at), "notification_id": format!("ntf_{id}"), "data": data})
            .to_string()
    }

    /// A completed transaction: a one-time sale, or a subscription's payment for `period`.
    #[allow(clippy::too_many_arguments)]
    pub fn transaction(
        id: &str,
        at: i64,
        txn: &str,
        subscription: Option<&str>,
        email: &str,
        price: &str,
        quantity: i64,
        period: Option<(i64, i64)>,
        custom_data: Value,
    ) -> String {
        let mut custom = json!({"email": email});
        if let (Value::Object(c), Value::Object(extra)) = (&mut custom, custom_data) {
            c.extend(extra);
        }
        event(
            id,
            "transaction.completed",
            at,
            json!({"id": txn, "status": "completed", "customer_id": "ctm_test", "subscription_id": subscription,
                   "origin": if subscription.is_some() { "subscription_recurring" } else { "web" },
                   "currency_code": "EUR", "custom_data": custom,
                   "items": [{"price": {"id": price, "product_id": "pro_test"}, "quantity": quantity}],
                   "details": {"totals": {"grand_total": "1500"}},
                   "billing_period": period.map(|(s, e)| json!({"starts_at": iso(s), "ends_at": iso(e)}))}),
        )
    }

    /// `subscription.created`, `.updated`, `.past_due`, `.canceled`…
    #[allow(clippy::too_many_arguments)]
    pub fn subscription(
        id: &str,
        kind: &str,
        at: i64,
        subscription: &str,
        status: &str,
        price: &str,
        quantity: i64,
        period: (i64, i64),
        cancel_scheduled: bool,
        first_transaction: Option<&str>,
    ) -> String {
        event(
            id,
            kind,
            at,
            json!({"id": subscription, "status": status, "customer_id": "ctm_test", "transaction_id": first_transaction,
                   "items": [{"price": {"id": price, "product_id": "pro_test"}, "quantity": quantity, "status": "active"}],
                   "current_billing_period": {"starts_at": iso(period.0), "ends_at": iso(period.1)},
                   "scheduled_change": if cancel_scheduled { json!({"action": "cancel", "effective_at": iso(period.1)}) } else { Value::Null }}),
        )
    }

    /// A refund (`full` or partial) or a chargeback of a transaction.
    pub fn adjustment(id: &str, at: i64, txn: &str, action: &str, full: bool) -> String {
        event(
            id,
            "adjustment.updated",
            at,
            json!({"id": format!("adj_{id}"), "action": action, "type": if full { "full" } else { "partial" },
                   "status": "approved", "transaction_id": txn, "currency_code": "EUR"}),
        )
    }
}

/// Lemon Squeezy webhook requests.
pub mod lemon {
    use super::*;

    /// `order_created` for one variant; `custom_data` as the checkout link carried it.
    pub fn order_created(
        order: &str,
        at: i64,
        email: &str,
        variant: i64,
        quantity: i64,
        custom_data: Value,
    ) -> String {
        json!({"meta": {"event_name": "order_created", "custom_data": custom_data, "test_mode": true},
               "data": {"type": "orders", "id": order, "attributes": {"store_id": 1, "customer_id": 7,
                   "user_name": "Buyer", "user_email": email, "currency": "EUR", "status": "paid", "refunded": false,
                   "total": 2900, "first_order_item": {"id": 9, "order_id": order, "variant_id": variant,
                       "product_name": "Editor", "quantity": quantity},
                   "created_at": iso(at), "updated_at": iso(at)}}})
        .to_string()
    }

    /// `order_refunded`: `full` sets `refunded`; a partial refund only `refunded_amount`.
    pub fn order_refunded(order: &str, at: i64, full: bool) -> String {
        json!({"meta": {"event_name": "order_refunded", "test_mode": true},
               "data": {"type": "orders", "id": order, "attributes": {"store_id": 1, "user_email": "buyer@example.com",
                   "status": if full { "refunded" } else { "paid" }, "refunded": full, "total": 2900,
                   "refunded_amount": if full { 2900 } else { 900 },
                   "created_at": iso(at), "updated_at": iso(at)}}})
        .to_string()
    }

    /// A subscription event (`subscription_created`, `_updated`, `_cancelled`, `_expired`…).
    #[allow(clippy::too_many_arguments)]
    pub fn subscription(
        event: &str,
        at: i64,
        subscription: &str,
        order: &str,
        email: &str,
        variant: i64,
        quantity: i64,
        status: &str,
        renews_at: i64,
        ends_at: Option<i64>,
    ) -> String {
        json!({"meta": {"event_name": event, "test_mode": true},
               "data": {"type": "subscriptions", "id": subscription, "attributes": {"store_id": 1, "order_id": order.parse::<i64>().unwrap_or(0),
                   "variant_id": variant, "user_name": "Subscriber", "user_email": email, "status": status,
                   "cancelled": status == "cancelled" || status == "expired",
                   "renews_at": iso(renews_at), "ends_at": ends_at.map(iso),
                   "first_subscription_item": {"id": 3, "subscription_id": subscription, "quantity": quantity},
                   "created_at": iso(at), "updated_at": iso(at)}}})
        .to_string()
    }

    /// `subscription_payment_success`: a paid subscription invoice (it carries no period).
    pub fn payment_success(invoice: &str, at: i64, subscription: &str, email: &str) -> String {
        json!({"meta": {"event_name": "subscription_payment_success", "test_mode": true},
               "data": {"type": "subscription-invoices", "id": invoice, "attributes": {"store_id": 1,
                   "subscription_id": subscription.parse::<i64>().unwrap_or(0), "user_name": "Subscriber", "user_email": email,
                   "status": "paid", "total": 1500, "currency": "EUR", "created_at": iso(at), "updated_at": iso(at)}}})
        .to_string()
    }
}

/// FastSpring events (times in milliseconds), carried by notifications of one or more.
pub mod fastspring_events {
    use super::*;

    /// One notification: FastSpring posts several events at once, applied in order.
    pub fn notification(events: &[Value]) -> String {
        json!({ "events": events }).to_string()
    }

    fn event(id: &str, kind: &str, at: i64, data: Value) -> Value {
        json!({"id": id, "live": false, "processed": false, "type": kind, "created": at * 1000, "data": data})
    }

    fn contact(email: &str) -> Value {
        json!({"first": "Bo", "last": "Chen", "email": email})
    }

    /// `order.completed` for one product; an item of a subscription names it.
    pub fn order_completed(
        id: &str,
        at: i64,
        order: &str,
        email: &str,
        product: &str,
        quantity: i64,
        subscription: Option<&str>,
    ) -> Value {
        let mut item = json!({"product": product, "quantity": quantity, "subtotal": 49.0});
        if let Some(sub) = subscription {
            item["subscription"] = json!(sub);
        }
        event(
            id,
            "order.completed",
            at,
            json!({"order": order, "id": order, "reference": format!("REF-{order}"), "completed": true,
                   "currency": "EUR", "customer": contact(email), "items": [item]}),
        )
    }

    /// `subscription.activated`: its first order is paid, up to `next`.
    #[allow(clippy::too_many_arguments)]
    pub fn activated(
        id: &str,
        at: i64,
        subscription: &str,
        email: &str,
        product: &str,
        quantity: i64,
        next: i64,
        initial_order: &str,
    ) -> Value {
        event(
            id,
            "subscription.activated",
            at,
            json!({"id": subscription, "subscription": subscription, "active": true, "state": "active",
                   "product": product, "quantity": quantity, "next": next * 1000, "initialOrderId": initial_order,
                   "account": {"id": format!("acc_{subscription}"), "contact": contact(email)}}),
        )
    }

    /// `subscription.charge.completed`: the renewal `order` paid the subscription up to `next`.
    pub fn charge_completed(
        id: &str,
        at: i64,
        order: &str,
        subscription: &str,
        product: &str,
        quantity: i64,
        next: i64,
    ) -> Value {
        event(
            id,
            "subscription.charge.completed",
            at,
            json!({"status": "successful", "order": {"id": order}, "total": 15.0, "currency": "EUR",
                   "subscription": {"id": subscription, "product": product, "quantity": quantity, "next": next * 1000}}),
        )
    }

    /// `subscription.charge.failed`: a renewal could not be charged (no order was made).
    pub fn charge_failed(id: &str, at: i64, subscription: &str, product: &str) -> Value {
        event(
            id,
            "subscription.charge.failed",
            at,
            json!({"status": "failed", "reason": "card declined", "total": 15.0, "currency": "EUR",
                   "subscription": {"id": subscription, "product": product}}),
        )
    }

    /// `subscription.canceled`: it runs to the end of its paid period, `next`.
    pub fn canceled(
        id: &str,
        at: i64,
        subscription: &str,
        product: &str,
        quantity: i64,
        next: i64,
    ) -> Value {
        event(
            id,
            "subscription.canceled",
            at,
            json!({"id": subscription, "subscription": subscription, "active": true, "state": "canceled",
                   "product": product, "quantity": quantity, "next": next * 1000}),
        )
    }

    /// `subscription.deactivated`: it has ended.
    pub fn deactivated(id: &str, at: i64, subscription: &str, product: &str) -> Value {
        event(
            id,
            "subscription.deactivated",
            at,
            json!({"id": subscription, "subscription": subscription, "active": false, "state": "deactivated",
                   "product": product}),
        )
    }

    /// `return.created`: money of `order` went back (a refund, or a chargeback).
    pub fn return_created(id: &str, at: i64, order: &str, reason: &str) -> Value {
        event(
            id,
            "return.created",
            at,
            json!({"id": format!("ret_{id}"), "reference": format!("REF-{order}R"),
                   "original": {"id": order, "order": order}, "reason": reason, "totalReturn": 15.0}),
        )
    }
}

/// Gumroad pings: form fields, posted to the secret URL.
pub mod gumroad_pings {
    use super::*;

    fn form(fields: &[(&str, String)]) -> String {
        serde_urlencoded::to_string(fields).expect("fields encode")
    }

    /// A sale: a one-time purchase, a membership's first sale, or (`recurring`) a later charge
    /// of the membership.
    #[allow(clippy::too_many_arguments)]
    pub fn sale(
        sale: &str,
        at: i64,
        email: &str,
        product: &str,
        quantity: i64,
        membership: Option<&str>,
        recurring: bool,
    ) -> String {
        let mut f = vec![
            ("seller_id", "seller_payloads".to_owned()),
            ("sale_id", sale.to_owned()),
            ("sale_timestamp", iso(at)),
            ("product_id", product.to_owned()),
            ("email", email.to_owned()),
            ("full_name", "Cy Diaz".to_owned()),
            ("price", "1500".to_owned()),
            ("currency", "eur".to_owned()),
            ("quantity", quantity.to_string()),
            ("refunded", "false".to_owned()),
            ("disputed", "false".to_owned()),
            ("test", "true".to_owned()),
        ];
        if let Some(m) = membership {
            f.push(("subscription_id", m.to_owned()));
            f.push(("recurrence", "monthly".to_owned()));
            if recurring {
                f.push(("is_recurring_charge", "true".to_owned()));
            }
        }
        form(&f)
    }

    /// The `refund` or `dispute` resource of a sale; `partial_refund` is a `refund` ping of a
    /// sale refunded in part (`partially_refunded` true, `refunded` still false).
    pub fn reversed(resource: &str, sale: &str, at: i64, product: &str) -> String {
        let partial = resource == "partial_refund";
        let refunded = resource == "refund";
        form(&[
            (
                "resource_name",
                if partial { "refund" } else { resource }.to_owned(),
            ),
            ("seller_id", "seller_payloads".to_owned()),
            ("sale_id", sale.to_owned()),
            ("sale_timestamp", iso(at)),
            ("product_id", product.to_owned()),
            ("refunded", refunded.to_string()),
            ("partially_refunded", partial.to_string()),
            ("disputed", (resource == "dispute").to_string()),
            ("test", "true".to_owned()),
        ])
    }

    /// `cancellation` (it runs to the end of its paid period) or `subscription_ended`.
    pub fn membership(resource: &str, membership: &str, product: &str) -> String {
        form(&[
            ("resource_name", resource.to_owned()),
            ("seller_id", "seller_payloads".to_owned()),
            ("subscription_id", membership.to_owned()),
            ("product_id", product.to_owned()),
            ("recurrence", "monthly".to_owned()),
        ])
    }
}
