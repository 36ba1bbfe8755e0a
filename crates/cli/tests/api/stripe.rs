//! Stripe webhooks against the real server: current-shape events written for these tests
//! (`tests/fixtures/stripe`), signed as Stripe signs them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_providers::stripe::{sign, StripeAdapter};
use keyturn_providers::Providers;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{backends, spawn_with, test_http, Backend, Resp, TestApp, TestDb};

pub const SECRET: &str = "whsec_keyturn_test";
const OLD_SECRET: &str = "whsec_keyturn_previous";
const DAY: i64 = 86_400;

/// Stripe webhooks, with an API that knows what the fixtures' checkout sessions sold: a
/// checkout Keyturn did not start is matched by its line items, never by its metadata.
pub async fn providers() -> Providers {
    let sold = crate::payloads::StripeLineItems::default();
    sold.sell("cs_test_once", "price_once", 2);
    sold.sell("cs_test_sub", "price_monthly", 1);
    let api = sold.serve().await;
    Providers {
        stripe: Some(StripeAdapter::new(
            vec![OLD_SECRET.into(), SECRET.into()],
            Duration::from_secs(300),
            Some(keyturn_providers::stripe::StripeApi::new(
                &api,
                "sk_test_fixtures",
            )),
        )),
        ..Default::default()
    }
}

/// The plans the fixtures buy, and the times they mention.
pub struct World {
    pub vars: BTreeMap<&'static str, String>,
    pub p2_end: i64,
    pub p1_end: i64,
}

pub async fn world(app: &TestApp, base: i64) -> World {
    let product = app.product("Editor", &["pro", "team", "export"]).await;
    let plan = |body: Value| async move {
        let r = app.post("/v1/plans", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    };
    let once = plan(json!({"product_id": product, "name": "Pro (one year)", "period_days": 365, "max_machines": 2,
                           "features": ["pro"], "stripe_price_ids": ["price_once"]})).await;
    let monthly = plan(json!({"product_id": product, "name": "Pro monthly", "period_days": 30, "max_machines": 1,
                              "features": ["pro"], "grace_days": 5, "stripe_price_ids": ["price_monthly"]})).await;
    plan(json!({"product_id": product, "name": "Team monthly", "period_days": 30, "max_machines": 2,
                "features": ["pro", "team"], "quantity_mode": "seats", "stripe_price_ids": ["price_team"]})).await;
    let p1_end = base + 20 * DAY;
    let p2_end = p1_end + 30 * DAY;
    let mut vars = BTreeMap::new();
    vars.insert("PLAN_ONCE", once.to_string());
    vars.insert("PLAN_MONTHLY", monthly.to_string());
    for i in 0..8 {
        let name: &'static str = ["T0", "T1", "T2", "T3", "T4", "T5", "T6", "T7"][i];
        vars.insert(name, (base - 1000 + 10 * i as i64).to_string());
    }
    vars.insert("P1_START", (base - DAY).to_string());
    vars.insert("P1_END", p1_end.to_string());
    vars.insert("P2_END", p2_end.to_string());
    vars.insert("P3_END", (p2_end + 30 * DAY).to_string());
    World {
        vars,
        p2_end,
        p1_end,
    }
}

pub fn fixture(name: &str, vars: &BTreeMap<&'static str, String>) -> String {
    let path = format!(
        "{}/tests/fixtures/stripe/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in vars {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!text.contains("{{"), "unfilled placeholder in {name}");
    text
}

pub async fn deliver_signed(app: &TestApp, body: &str, header: Option<String>) -> Resp {
    let mut req = app
        .http
        .post(format!("{}/webhooks/stripe", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned());
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap().to_vec();
    Resp {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        headers,
    }
}

pub async fn deliver(app: &TestApp, body: &str) -> Resp {
    deliver_signed(
        app,
        body,
        Some(sign(SECRET, Utc::now().timestamp(), body.as_bytes())),
    )
    .await
}

const SEQUENCE: [&str; 13] = [
    "12_customer_created",
    "01_checkout_payment",
    "02_checkout_subscription",
    "08_subscription_created_second",
    "03_invoice_paid_create",
    "03b_invoice_payment_succeeded_create",
    "09_invoice_paid_second",
    "04_invoice_paid_cycle",
    "05_subscription_updated_upgrade",
    "06_invoice_payment_failed",
    "10_dispute_created",
    "07_charge_refunded",
    "11_subscription_deleted",
];

fn expires(l: &Value) -> DateTime<Utc> {
    l["expires"].as_str().unwrap().parse().unwrap()
}

/// The state payments produced, without what differs between runs (keys, ids of rows, the
/// instants of one-time licenses, which count from their creation).
async fn snapshot(app: &TestApp) -> Value {
    let customers = app.get("/v1/customers?limit=500").await.body["data"].clone();
    let email_of = |id: &Value| {
        customers
            .as_array()
            .unwrap()
            .iter()
            .find(|c| &c["id"] == id)
            .map(|c| c["email"].clone())
            .unwrap_or(Value::Null)
    };
    let mut licenses: Vec<Value> = app.get("/v1/licenses?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let created: DateTime<Utc> = l["created"].as_str().unwrap().parse().unwrap();
            let expiry = if l["metadata"]["stripe_subscription_id"].is_string() {
                json!(expires(l).timestamp())
            } else {
                json!((expires(l) - created).num_days())
            };
            json!({"metadata": l["metadata"], "plan_id": l["plan_id"], "features": l["features"],
                   "max_machines": l["max_machines"], "blocked": l["blocked"], "expiry": expiry,
                   "customer": email_of(&l["customer_id"])})
        })
        .collect();
    licenses.sort_by_key(|l| l.to_string());
    let mut payments: Vec<Value> = app.get("/v1/payments?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            json!({"object": format!("{}:{}", p["object_kind"].as_str().unwrap(), p["object_id"].as_str().unwrap()),
                   "status": p["status"], "plan_id": p["plan_id"], "subscription": p["subscription_id"],
                   "licenses": p["license_ids"].as_array().unwrap().len()})
        })
        .collect();
    payments.sort_by_key(|p| p.to_string());
    let mut people: Vec<Value> = customers
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!([c["name"], c["email"]]))
        .collect();
    people.sort_by_key(|c| c.to_string());
    json!({"licenses": licenses, "payments": payments, "customers": people})
}

fn by_metadata<'a>(licenses: &'a [Value], key: &str, value: &str) -> Vec<&'a Value> {
    licenses
        .iter()
        .filter(|l| l["metadata"][key] == value)
        .collect()
}

async fn all_licenses(app: &TestApp) -> Vec<Value> {
    app.get("/v1/licenses?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_drive_licenses() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers().await).await;
        let w = world(&app, Utc::now().timestamp()).await;
        let send = |name: &'static str| {
            let body = fixture(name, &w.vars);
            let app = &app;
            async move {
                let r = deliver(app, &body).await;
                assert_eq!(r.status, 200, "{name}: {}", r.body);
                r
            }
        };

        assert_eq!(send("12_customer_created").await.body["status"], "ignored");

        // One-time purchase, quantity 2 on a "keys" plan: two keys for the buyer.
        let r = send("01_checkout_payment").await;
        assert_eq!(r.body["status"], "applied", "{}", r.body);
        let once = all_licenses(&app).await;
        assert_eq!(once.len(), 2);
        for l in &once {
            assert_eq!(l["features"], json!(["pro"]));
            assert_eq!(l["max_machines"], 2);
            assert_eq!(l["metadata"]["order"], "cs_test_once");
        }
        let ann = app.get("/v1/customers?email=ann@example.com").await.body["data"][0].clone();
        assert_eq!(ann["name"], "Ann Lee");
        assert_eq!(once[0]["customer_id"], ann["id"]);
        let events = app
            .get(&format!("/v1/licenses/{}/events", once[0]["id"]))
            .await;
        assert_eq!(
            events.body["data"][0]["actor"],
            "stripe:evt_checkout_payment"
        );

        // Subscription checkout: one license linked to the subscription.
        send("02_checkout_subscription").await;
        let subs = by_metadata(
            &all_licenses(&app).await,
            "stripe_subscription_id",
            "sub_bo",
        )
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
        assert_eq!(subs.len(), 1);
        let sub_license = subs[0]["id"].as_i64().unwrap();
        let path = format!("/v1/licenses/{sub_license}");

        // First invoice, then the same fact again under its other name and shape.
        send("03_invoice_paid_create").await;
        let after_first = app.get(&path).await.body;
        assert!(expires(&after_first).timestamp() >= w.p1_end + 5 * DAY);
        let again = send("03b_invoice_payment_succeeded_create").await;
        assert!(
            again.body["detail"]
                .as_str()
                .unwrap()
                .contains("already applied"),
            "{}",
            again.body
        );
        assert_eq!(app.get(&path).await.body["expires"], after_first["expires"]);

        // A renewal extends to the paid period's end plus the grace days.
        send("04_invoice_paid_cycle").await;
        let renewed = app.get(&path).await.body;
        assert_eq!(expires(&renewed).timestamp(), w.p2_end + 5 * DAY);
        let events = app.get(&format!("{path}/events")).await.body["data"].clone();
        let renewal = events
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["action"] == "renewed")
            .unwrap();
        assert_eq!(renewal["actor"], "stripe:evt_invoice_paid_cycle");

        // Upgrade to a seats plan with three seats: features and machine limit follow.
        send("05_subscription_updated_upgrade").await;
        let upgraded = app.get(&path).await.body;
        assert_eq!(upgraded["features"], json!(["pro", "team"]));
        assert_eq!(upgraded["max_machines"], 6);
        assert_eq!(upgraded["blocked"], false);

        let recorded = app.get("/v1/subscriptions/stripe/sub_bo").await;
        assert_eq!(recorded.status, 200, "{}", recorded.body);
        assert_eq!(recorded.body["status"], "active");
        assert_eq!(recorded.body["quantity"], 3);
        assert_eq!(recorded.body["cancel_at_period_end"], false);
        assert_eq!(recorded.body["license_id"], sub_license);
        assert_eq!(
            app.get("/v1/subscriptions/stripe/sub_nope").await.status,
            404
        );

        // A failed payment is recorded and extends nothing.
        send("06_invoice_payment_failed").await;
        assert_eq!(app.get(&path).await.body["expires"], renewed["expires"]);
        let payments = app.get("/v1/payments?limit=100").await.body["data"].clone();
        let failed = payments
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["object_id"] == "in_bo_3")
            .unwrap();
        assert_eq!(failed["status"], "failed");

        // A second subscription, then a dispute of its payment: its license is blocked.
        send("08_subscription_created_second").await;
        send("09_invoice_paid_second").await;
        let cy = by_metadata(
            &all_licenses(&app).await,
            "stripe_subscription_id",
            "sub_cy",
        )[0]
        .clone();
        assert_eq!(cy["blocked"], false);
        let cy_customer = app
            .get(&format!("/v1/customers/{}", cy["customer_id"]))
            .await
            .body;
        assert_eq!(cy_customer["email"], "cy@example.com");
        send("10_dispute_created").await;
        assert_eq!(
            app.get(&format!("/v1/licenses/{}", cy["id"])).await.body["blocked"],
            true
        );

        // A full refund blocks what the payment bought; the customer and history stay.
        send("07_charge_refunded").await;
        for l in &once {
            let now = app.get(&format!("/v1/licenses/{}", l["id"])).await.body;
            assert_eq!(now["blocked"], true);
            assert_eq!(now["customer_id"], ann["id"]);
        }
        let refunded = app.get("/v1/payments?limit=100").await.body["data"].clone();
        let refund = refunded
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["object_id"] == "cs_test_once")
            .unwrap();
        assert_eq!(refund["status"], "refunded");
        assert_eq!(refund["license_ids"].as_array().unwrap().len(), 2);

        // Cancellation blocks the subscription's license.
        send("11_subscription_deleted").await;
        assert_eq!(app.get(&path).await.body["blocked"], true);
        assert_eq!(
            app.get("/v1/subscriptions/stripe/sub_bo").await.body["status"],
            "canceled"
        );

        // Nothing was issued twice, and every event is on record once.
        assert_eq!(all_licenses(&app).await.len(), 4);
        let recorded = app
            .get("/v1/provider-events?provider=stripe&limit=100")
            .await
            .body["data"]
            .clone();
        assert_eq!(recorded.as_array().unwrap().len(), SEQUENCE.len());
        let one = app
            .get("/v1/provider-events/stripe/evt_invoice_paid_cycle")
            .await;
        assert_eq!(one.body["status"], "applied");
        assert_eq!(one.body["payload"]["id"], "evt_invoice_paid_cycle");

        app.stop().await;
        db.remove().await;
    }
}

async fn run_sequence(backend: &Backend, base: i64, order: &[&'static str], twice: bool) -> Value {
    let db = TestDb::create(backend).await;
    let app = spawn_with(&db, test_http(), providers().await).await;
    let w = world(&app, base).await;
    for name in order {
        let body = fixture(name, &w.vars);
        let times = if twice { 2 } else { 1 };
        for _ in 0..times {
            let r = deliver(&app, &body).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
        }
    }
    let state = snapshot(&app).await;
    app.stop().await;
    db.remove().await;
    state
}

/// Retried, duplicated and reordered deliveries end in the state of one orderly delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_shuffled_deliveries_converge() {
    let base = Utc::now().timestamp();
    for backend in backends() {
        let reference = run_sequence(&backend, base, &SEQUENCE, false).await;
        assert_eq!(reference["licenses"].as_array().unwrap().len(), 4);
        for seed in [1u64, 7, 2024] {
            let mut order = SEQUENCE.to_vec();
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let state = run_sequence(&backend, base, &order, true).await;
            assert_eq!(state, reference, "order {order:?} on {backend:?}");
        }
        let mut reversed = SEQUENCE.to_vec();
        reversed.reverse();
        assert_eq!(
            run_sequence(&backend, base, &reversed, true).await,
            reference,
            "reversed on {backend:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_are_refused_and_store_nothing() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers().await).await;
        let w = world(&app, Utc::now().timestamp()).await;
        let body = fixture("01_checkout_payment", &w.vars);
        let now = Utc::now().timestamp();
        let bad: Vec<(&str, String, Option<String>)> = vec![
            ("no signature", body.clone(), None),
            (
                "wrong secret",
                body.clone(),
                Some(sign("whsec_someone_else", now, body.as_bytes())),
            ),
            (
                "expired timestamp",
                body.clone(),
                Some(sign(SECRET, now - 400, body.as_bytes())),
            ),
            (
                "future timestamp",
                body.clone(),
                Some(sign(SECRET, now + 400, body.as_bytes())),
            ),
            ("garbled header", body.clone(), Some("t=now,v1=xyz".into())),
            (
                "truncated body",
                body[..body.len() / 2].to_owned(),
                Some(sign(SECRET, now, body.as_bytes())),
            ),
            (
                "signed but not JSON",
                body[..body.len() / 2].to_owned(),
                Some(sign(SECRET, now, &body.as_bytes()[..body.len() / 2])),
            ),
            (
                "signed but no event",
                "{\"hello\": 1}".into(),
                Some(sign(SECRET, now, b"{\"hello\": 1}")),
            ),
        ];
        for (what, b, header) in bad {
            let r = deliver_signed(&app, &b, header).await;
            assert_eq!(r.status, 400, "{what}: {}", r.body);
            assert!(r.body["error"]["code"].is_string(), "{what}");
        }
        assert_eq!(app.license_count().await, 0);
        assert_eq!(app.get("/v1/provider-events").await.body["data"], json!([]));
        assert_eq!(app.get("/v1/payments").await.body["data"], json!([]));

        // During a secret rotation the previous secret still verifies.
        let rotated =
            deliver_signed(&app, &body, Some(sign(OLD_SECRET, now, body.as_bytes()))).await;
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        assert_eq!(app.license_count().await, 2);
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsellable_purchase_fails_visibly_and_applies_on_redelivery() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers().await).await;
        let w = world(&app, Utc::now().timestamp()).await;
        let body =
            fixture("09_invoice_paid_second", &w.vars).replace("price_monthly", "price_unknown");
        let r = deliver(&app, &body).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("price_unknown"));
        let failed = app
            .get("/v1/provider-events/stripe/evt_invoice_paid_cy")
            .await;
        assert_eq!(failed.body["status"], "failed");
        assert_eq!(app.license_count().await, 0);

        let monthly: i64 = w.vars["PLAN_MONTHLY"].parse().unwrap();
        let patched = app
            .patch(
                &format!("/v1/plans/{monthly}"),
                json!({"stripe_price_ids": ["price_monthly", "price_unknown"]}),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        let retry = deliver(&app, &body).await;
        assert_eq!(retry.status, 200, "{}", retry.body);
        assert_eq!(retry.body["status"], "applied");
        let applied = app
            .get("/v1/provider-events/stripe/evt_invoice_paid_cy")
            .await;
        assert_eq!(applied.body["status"], "applied");
        assert_eq!(applied.body["attempts"], 2);
        assert_eq!(app.license_count().await, 1);
        let reader = app
            .post(
                "/v1/tokens",
                json!({"name": "support", "permissions": ["licenses:read"]}),
            )
            .await
            .body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let denied = app
            .call(Method::GET, "/v1/payments", Some(&reader), None)
            .await;
        assert_eq!(denied.status, 403, "payments need payments:read");
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dunning_and_cancellation_follow_the_plan() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers().await).await;
        let w = world(&app, Utc::now().timestamp()).await;
        // The team plan blocks overdue subscriptions and lets cancelled ones run out.
        let team = app.get("/v1/plans").await.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Team monthly")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let r = app
            .patch(
                &format!("/v1/plans/{team}"),
                json!({"dunning": "block", "on_cancel": "expire"}),
            )
            .await;
        assert_eq!(r.body["dunning"], "block");
        assert_eq!(r.body["on_cancel"], "expire");

        let first = fixture("03_invoice_paid_create", &w.vars);
        assert_eq!(deliver(&app, &first).await.status, 200);
        let upgrade = fixture("05_subscription_updated_upgrade", &w.vars);
        assert_eq!(deliver(&app, &upgrade).await.status, 200);
        let license = by_metadata(
            &all_licenses(&app).await,
            "stripe_subscription_id",
            "sub_bo",
        )[0]
        .clone();
        let path = format!("/v1/licenses/{}", license["id"]);
        assert_eq!(license["blocked"], false);

        let overdue = upgrade
            .replace("evt_subscription_upgraded", "evt_overdue")
            .replace("\"status\": \"active\"", "\"status\": \"past_due\"")
            .replace(
                &format!("\"created\": {}", w.vars["T4"]),
                &format!("\"created\": {}", w.vars["T5"]),
            );
        deliver(&app, &overdue).await;
        assert_eq!(
            app.get(&path).await.body["blocked"],
            true,
            "overdue blocks on this plan"
        );

        // Payment recovers after the overdue report: the invoice lifts the block that dunning
        // put there.
        let paid = fixture("04_invoice_paid_cycle", &w.vars)
            .replace("in_bo_2", "in_bo_9")
            .replace("evt_invoice_paid_cycle", "evt_recovered")
            .replace("price_monthly", "price_team")
            .replace(
                &format!("\"created\": {}", w.vars["T3"]),
                &format!("\"created\": {}", w.vars["T6"]),
            );
        let r = deliver(&app, &paid).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(app.get(&path).await.body["blocked"], false, "{}", r.body);

        // A vendor's own block is not lifted by a payment.
        app.post(&format!("{path}/block"), json!({})).await;
        let paid_again = paid
            .replace("in_bo_9", "in_bo_10")
            .replace("evt_recovered", "evt_paid_again");
        deliver(&app, &paid_again).await;
        assert_eq!(app.get(&path).await.body["blocked"], true);
        app.post(&format!("{path}/unblock"), json!({})).await;

        // Cancelled on an "expire" plan: the license stays usable until its paid time is over.
        let before = app.get(&path).await.body;
        let deleted = fixture("11_subscription_deleted", &w.vars);
        let r = deliver(&app, &deleted).await;
        assert!(
            r.body["detail"].as_str().unwrap().contains("runs out"),
            "{}",
            r.body
        );
        let after = app.get(&path).await.body;
        assert_eq!(after["blocked"], false);
        assert_eq!(after["expires"], before["expires"]);
        assert!(expires(&after).timestamp() >= w.p2_end);
        app.stop().await;
        db.remove().await;
    }
}

/// A Stripe-compatible server that knows one checkout session's line items.
async fn line_item_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::routing::get;
    let router = axum::Router::new().route(
        "/v1/checkout/sessions/{id}/line_items",
        get(|axum::extract::Path(id): axum::extract::Path<String>, headers: axum::http::HeaderMap| async move {
            let authorized = headers.get("authorization").is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic "));
            if id != "cs_test_once" || !authorized {
                return (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": "No such session"}})));
            }
            (axum::http::StatusCode::OK, axum::Json(json!({"object": "list", "has_more": false, "data": [
                {"id": "li_1", "object": "item", "quantity": 3, "price": {"id": "price_once", "object": "price", "product": "prod_editor"}}
            ]})))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (base, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_without_plan_metadata_is_matched_by_its_line_items() {
    let (base, server) = line_item_server().await;
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(keyturn_providers::stripe::StripeApi::new(
                    &base,
                    "sk_test_lines",
                )),
            )),
            ..Default::default()
        };
        let app = spawn_with(&db, test_http(), providers).await;
        let w = world(&app, Utc::now().timestamp()).await;
        let body = fixture("01_checkout_payment", &w.vars).replace(
            &format!(
                "\"metadata\": {{\"keyturn_plan_id\": \"{}\", \"keyturn_quantity\": \"2\"}}",
                w.vars["PLAN_ONCE"]
            ),
            "\"metadata\": {}",
        );
        assert!(body.contains("\"metadata\": {}"));
        let r = deliver(&app, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let licenses = all_licenses(&app).await;
        assert_eq!(licenses.len(), 3, "the line items' quantity");
        let plan_once: i64 = w.vars["PLAN_ONCE"].parse().unwrap();
        assert!(
            licenses.iter().all(|l| l["plan_id"] == plan_once),
            "the price names the plan"
        );
        app.stop().await;
        db.remove().await;
    }
    server.abort();
}

/// A checkout of a price set up for Cryptolens: its line items name the price, the price holds
/// the `skm` CreateKey parameters and its product `skm_product_id`, and the keys the checkout
/// issues have those terms although no plan names the price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_of_a_price_with_cryptolens_metadata_issues_keys_on_its_terms() {
    use axum::extract::{Path, State};
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    let product = Arc::new(Mutex::new(0i64));
    type Answer = (axum::http::StatusCode, axum::Json<Value>);
    fn found(v: Value) -> Answer {
        (axum::http::StatusCode::OK, axum::Json(v))
    }
    fn missing() -> Answer {
        (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"message": "No such object"}})),
        )
    }
    let router = axum::Router::new()
        .route(
            "/v1/checkout/sessions/{id}/line_items",
            get(move |Path(id): Path<String>| async move {
                if id != "cs_test_once" {
                    return missing();
                }
                found(json!({"object": "list", "has_more": false, "data": [
                    {"id": "li_1", "object": "item", "quantity": 2,
                     "price": {"id": "price_skm", "object": "price", "product": "prod_skm"}}]}))
            }),
        )
        .route(
            "/v1/prices/{id}",
            get(move |Path(id): Path<String>| async move {
                if id != "price_skm" {
                    return missing();
                }
                found(json!({"id": "price_skm", "object": "price", "product": "prod_skm", "recurring": null,
                             "metadata": {"skm": "{\"F1\": true, \"F3\": true, \"Period\": 365, \"MaxNoOfMachines\": 2}"}}))
            }),
        )
        .route(
            "/v1/products/{id}",
            get(
                |State(product): State<Arc<Mutex<i64>>>, Path(id): Path<String>| async move {
                    if id != "prod_skm" {
                        return missing();
                    }
                    let skm_product_id = product.lock().unwrap().to_string();
                    found(json!({"id": "prod_skm", "object": "product",
                                 "metadata": {"skm_product_id": skm_product_id}}))
                },
            ),
        )
        .with_state(product.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(keyturn_providers::stripe::StripeApi::new(
                    &base,
                    "sk_test_skm",
                )),
            )),
            ..Default::default()
        };
        let app = spawn_with(&db, test_http(), providers).await;
        let w = world(&app, Utc::now().timestamp()).await;
        let editor = app.get("/v1/products").await.body["data"][0]["id"]
            .as_i64()
            .unwrap();
        *product.lock().unwrap() = editor;
        let body = fixture("01_checkout_payment", &w.vars).replace(
            &format!(
                "\"metadata\": {{\"keyturn_plan_id\": \"{}\", \"keyturn_quantity\": \"2\"}}",
                w.vars["PLAN_ONCE"]
            ),
            "\"metadata\": {}",
        );
        let r = deliver(&app, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let licenses = all_licenses(&app).await;
        assert_eq!(licenses.len(), 2, "the line items' quantity");
        for l in &licenses {
            assert_eq!(l["product_id"], editor);
            assert_eq!(l["features"], json!(["pro", "export"]), "F1 and F3");
            assert_eq!(l["max_machines"], 2);
            let days = (expires(l) - Utc::now()).num_days();
            assert!((364..=365).contains(&days), "Period 365: {days}");
        }
        let plan = app
            .get(&format!("/v1/plans/{}", licenses[0]["plan_id"]))
            .await
            .body;
        assert_eq!(plan["stripe_price_ids"], json!(["price_skm"]));
        // Delivered again: nothing more.
        let r = deliver(&app, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(all_licenses(&app).await.len(), 2);
        app.stop().await;
        db.remove().await;
    }
    server.abort();
}
