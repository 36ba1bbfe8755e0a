//! Store webhooks (Paddle, Lemon Squeezy, FastSpring, Gumroad) through the one payment pipeline:
//! samples written from each store's documented format, signed with its scheme.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_providers::{fastspring, lemonsqueezy, paddle, Providers, StoreSecrets};
use serde_json::{json, Value};

use crate::helpers::{backends, spawn_with, test_http, Resp, TestApp, TestDb};

const PADDLE: &str = "pdl_ntfset_test_secret";
const LEMON: &str = "lemon-test-secret";
const FASTSPRING: &str = "fastspring-test-secret";
const GUMROAD: &str = "gumroad-ping-secret-0123456789";
const DAY: i64 = 86_400;

fn providers() -> Providers {
    Providers {
        stores: StoreSecrets {
            paddle: vec![PADDLE.into()],
            lemonsqueezy: vec![LEMON.into()],
            fastspring: vec![FASTSPRING.into()],
            gumroad: Some(GUMROAD.into()),
            tolerance: Duration::from_secs(300),
            email_buyers: false,
        },
        ..Default::default()
    }
}

struct World {
    vars: BTreeMap<String, String>,
    p1: i64,
    p2: i64,
}

async fn world(app: &TestApp) -> World {
    let product = app.product("Editor", &["pro"]).await;
    for body in [
        json!({"product_id": product, "name": "Once", "period_days": 365, "max_machines": 2, "features": ["pro"],
               "store_product_ids": ["paddle:pri_once", "lemonsqueezy:111", "fastspring:editor-pro", "gumroad:gum_once"]}),
        json!({"product_id": product, "name": "Monthly", "period_days": 30, "max_machines": 1, "features": ["pro"], "grace_days": 5,
               "store_product_ids": ["paddle:pri_monthly", "lemonsqueezy:222", "fastspring:editor-monthly", "gumroad:gum_member"]}),
    ] {
        let r = app.post("/v1/plans", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let now = Utc::now().timestamp();
    let (p1, p2) = (now + 20 * DAY, now + 50 * DAY);
    let iso = |t: i64| DateTime::<Utc>::from_timestamp(t, 0).unwrap().to_rfc3339();
    let mut vars = BTreeMap::new();
    for (k, v) in [
        ("NOW_ISO", iso(now)),
        ("P1_ISO", iso(p1)),
        ("P2_ISO", iso(p2)),
        ("NOW_MS", (now * 1000).to_string()),
        ("LATER_MS", (now * 1000 + 1000).to_string()),
        ("P1_MS", (p1 * 1000).to_string()),
        ("P2_MS", (p2 * 1000).to_string()),
    ] {
        vars.insert(k.to_owned(), v);
    }
    World { vars, p1, p2 }
}

fn sample(name: &str, vars: &BTreeMap<String, String>, extra: &[(&str, &str)]) -> String {
    let path = format!(
        "{}/tests/fixtures/stores/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (k, v) in vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.iter().copied())
    {
        text = text.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(
        !text.contains("{{"),
        "unfilled placeholder in {name}: {text}"
    );
    text
}

async fn post(
    app: &TestApp,
    path: &str,
    body: &str,
    header: Option<(&str, String)>,
    content_type: &str,
) -> Resp {
    let mut req = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body.to_owned());
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.unwrap().to_vec();
    Resp {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        headers,
    }
}

async fn licenses(app: &TestApp) -> Vec<Value> {
    app.get("/v1/licenses?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

fn of_subscription<'a>(ls: &'a [Value], sub: &str) -> Vec<&'a Value> {
    ls.iter()
        .filter(|l| l["metadata"]["subscription_id"] == sub)
        .collect()
}

fn expires(l: &Value) -> i64 {
    l["expires"]
        .as_str()
        .unwrap()
        .parse::<DateTime<Utc>>()
        .unwrap()
        .timestamp()
}

async fn events_recorded(app: &TestApp, provider: &str) -> usize {
    app.get(&format!(
        "/v1/provider-events?provider={provider}&limit=500"
    ))
    .await
    .body["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddle_notifications() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers()).await;
        let w = world(&app).await;
        let send = |name: &str| {
            let body = sample(name, &w.vars, &[]);
            let app = &app;
            async move {
                let sig = paddle::sign(PADDLE, Utc::now().timestamp(), body.as_bytes());
                post(
                    app,
                    "/webhooks/paddle",
                    &body,
                    Some(("paddle-signature", sig)),
                    "application/json",
                )
                .await
            }
        };
        // Refused: no signature, wrong secret, stale timestamp. Nothing is stored.
        let body = sample("paddle_transaction_onetime", &w.vars, &[]);
        let now = Utc::now().timestamp();
        for header in [
            None,
            Some(paddle::sign("pdl_other", now, body.as_bytes())),
            Some(paddle::sign(PADDLE, now - 400, body.as_bytes())),
        ] {
            let r = post(
                &app,
                "/webhooks/paddle",
                &body,
                header.map(|h| ("paddle-signature", h)),
                "application/json",
            )
            .await;
            assert_eq!(r.status, 400, "{}", r.body);
        }
        assert_eq!(events_recorded(&app, "paddle").await, 0);
        assert_eq!(app.license_count().await, 0);

        let r = send("paddle_transaction_onetime").await;
        assert_eq!(
            (r.status, r.body["status"].as_str()),
            (200, Some("applied")),
            "{}",
            r.body
        );
        assert_eq!(
            send("paddle_transaction_onetime").await.body["status"],
            "duplicate"
        );
        let once = licenses(&app).await;
        assert_eq!(once.len(), 1);
        let customer = app
            .get(&format!("/v1/customers/{}", once[0]["customer_id"]))
            .await
            .body;
        assert_eq!(customer["email"], "ann@example.com");

        // A subscription's billing period is not a payment: its first transaction is.
        send("paddle_subscription_created").await;
        assert!(of_subscription(&licenses(&app).await, "sub_01paddle").is_empty());
        let now = w.p1 - 20 * DAY;
        let first = crate::payloads::paddle_events::transaction(
            "evt_01paddlefirst",
            now,
            "txn_01first",
            Some("sub_01paddle"),
            "bo@example.com",
            "pri_monthly",
            1,
            Some((now, w.p1)),
            json!({}),
        );
        let sig = paddle::sign(PADDLE, Utc::now().timestamp(), first.as_bytes());
        let r = post(
            &app,
            "/webhooks/paddle",
            &first,
            Some(("paddle-signature", sig)),
            "application/json",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let sub = of_subscription(&licenses(&app).await, "sub_01paddle")[0].clone();
        assert_eq!(expires(&sub), w.p1 + 5 * DAY);
        send("paddle_transaction_renewal").await;
        let path = format!("/v1/licenses/{}", sub["id"]);
        assert_eq!(
            expires(&app.get(&path).await.body),
            w.p2 + 5 * DAY,
            "renewal extends to the billing period's end plus grace"
        );

        send("paddle_adjustment_refund").await;
        assert_eq!(
            app.get(&format!("/v1/licenses/{}", once[0]["id"]))
                .await
                .body["blocked"],
            true
        );
        send("paddle_subscription_canceled").await;
        assert_eq!(app.get(&path).await.body["blocked"], true);
        assert_eq!(app.license_count().await, 2);
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lemon_squeezy_webhooks() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers()).await;
        let w = world(&app).await;
        let send = |body: String| {
            let app = &app;
            async move {
                let sig = lemonsqueezy::sign(LEMON, body.as_bytes());
                post(
                    app,
                    "/webhooks/lemonsqueezy",
                    &body,
                    Some(("x-signature", sig)),
                    "application/json",
                )
                .await
            }
        };
        let order = |id: &str, variant: &str, quantity: &str| {
            sample(
                "lemonsqueezy_order_created",
                &w.vars,
                &[
                    ("ORDER", id),
                    ("VARIANT", variant),
                    ("QUANTITY", quantity),
                    ("NAME", "Ann Lee"),
                    ("EMAIL", "ann@example.com"),
                ],
            )
        };
        let bad = post(
            &app,
            "/webhooks/lemonsqueezy",
            &order("1001", "111", "2"),
            Some(("x-signature", "00ff".into())),
            "application/json",
        )
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(events_recorded(&app, "lemonsqueezy").await, 0);

        let r = send(order("1001", "111", "2")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(app.license_count().await, 2, "quantity 2 on a keys plan");
        assert_eq!(
            send(order("1001", "111", "2")).await.body["status"],
            "duplicate"
        );

        // A subscription's first order is announced twice (order, subscription): one license.
        send(
            order("1002", "222", "1")
                .replace("Ann Lee", "Bo Chen")
                .replace("ann@", "bo@"),
        )
        .await;
        let r = send(sample("lemonsqueezy_subscription_created", &w.vars, &[])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let all = licenses(&app).await;
        assert_eq!(all.len(), 3, "the subscription adopted its order's license");
        let sub = of_subscription(&all, "lemonsqueezy:5001")[0].clone();
        assert!(expires(&sub) >= w.p1 + 5 * DAY);
        let path = format!("/v1/licenses/{}", sub["id"]);

        let p2 = w.vars["P2_ISO"].clone();
        let renewed = sample(
            "lemonsqueezy_subscription_updated",
            &w.vars,
            &[
                ("EVENT", "subscription_updated"),
                ("STATUS", "active"),
                ("CANCELLED", "false"),
                ("RENEWS_ISO", &p2),
                ("ENDS", "null"),
                ("UPDATED_ISO", &p2),
            ],
        );
        send(renewed).await;
        assert_eq!(expires(&app.get(&path).await.body), w.p2 + 5 * DAY);

        let expired = sample(
            "lemonsqueezy_subscription_updated",
            &w.vars,
            &[
                ("EVENT", "subscription_expired"),
                ("STATUS", "expired"),
                ("CANCELLED", "true"),
                ("RENEWS_ISO", &p2),
                ("ENDS", &format!("\"{p2}\"")),
                ("UPDATED_ISO", "2100-01-01T00:00:00Z"),
            ],
        );
        send(expired).await;
        assert_eq!(app.get(&path).await.body["blocked"], true);

        send(sample(
            "lemonsqueezy_order_refunded",
            &w.vars,
            &[("UPDATED_ISO", &p2)],
        ))
        .await;
        let once: Vec<Value> = licenses(&app)
            .await
            .into_iter()
            .filter(|l| l["metadata"]["order"] == "1001")
            .collect();
        assert_eq!(once.len(), 2);
        assert!(once.iter().all(|l| l["blocked"] == true));
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastspring_webhooks() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers()).await;
        let w = world(&app).await;
        let send = |name: &str| {
            let body = sample(name, &w.vars, &[]);
            let app = &app;
            async move {
                let sig = fastspring::sign(FASTSPRING, body.as_bytes());
                post(
                    app,
                    "/webhooks/fastspring",
                    &body,
                    Some(("x-fs-signature", sig)),
                    "application/json",
                )
                .await
            }
        };
        let body = sample("fastspring_order_completed", &w.vars, &[]);
        let bad = post(
            &app,
            "/webhooks/fastspring",
            &body,
            Some(("x-fs-signature", fastspring::sign("other", body.as_bytes()))),
            "application/json",
        )
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(app.license_count().await, 0);

        assert_eq!(send("fastspring_order_completed").await.status, 200);
        assert_eq!(app.license_count().await, 2);
        assert_eq!(
            send("fastspring_order_completed").await.body["status"],
            "duplicate"
        );

        // One POST, two events: activation, then the renewal charge.
        let r = send("fastspring_subscription").await;
        assert_eq!(r.body["events"].as_array().unwrap().len(), 2, "{}", r.body);
        let sub = of_subscription(&licenses(&app).await, "fastspring:fs_sub_1")[0].clone();
        assert_eq!(expires(&sub), w.p2 + 5 * DAY);
        let r = send("fastspring_subscription").await;
        assert!(r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"] == "duplicate"));

        send("fastspring_return").await;
        let refunded: Vec<Value> = licenses(&app)
            .await
            .into_iter()
            .filter(|l| l["metadata"]["order"] == "fs_order_1")
            .collect();
        assert!(refunded.iter().all(|l| l["blocked"] == true) && refunded.len() == 2);
        send("fastspring_deactivated").await;
        assert_eq!(
            app.get(&format!("/v1/licenses/{}", sub["id"])).await.body["blocked"],
            true
        );
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gumroad_pings() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers()).await;
        world(&app).await;
        let ping = |secret: &str, fields: Vec<(&str, String)>| {
            let body = serde_urlencoded::to_string(&fields).unwrap();
            let path = format!("/webhooks/gumroad/{secret}");
            let app = &app;
            async move { post(app, &path, &body, None, "application/x-www-form-urlencoded").await }
        };
        let now = Utc::now();
        let sale = |id: &str, extra: Vec<(&'static str, String)>| -> Vec<(&'static str, String)> {
            let mut f = vec![
                ("seller_id", "seller_1".to_owned()),
                ("sale_id", id.to_owned()),
                ("sale_timestamp", now.to_rfc3339()),
                ("email", "cy@example.com".into()),
                ("full_name", "Cy Diaz".into()),
                ("quantity", "1".into()),
                ("refunded", "false".into()),
                ("test", "true".into()),
            ];
            f.extend(extra);
            f
        };
        let one_time = sale(
            "S1",
            vec![("product_id", "gum_once".into()), ("quantity", "2".into())],
        );
        let wrong = ping("not-the-secret", one_time.clone()).await;
        assert_eq!(
            wrong.status, 404,
            "an unsigned ping is accepted only on its secret URL"
        );
        assert_eq!(app.license_count().await, 0);

        assert_eq!(ping(GUMROAD, one_time.clone()).await.status, 200);
        assert_eq!(
            ping(GUMROAD, one_time.clone()).await.body["status"],
            "duplicate"
        );
        assert_eq!(app.license_count().await, 2);

        let member = |id: &str, recurring: bool, at: DateTime<Utc>| {
            let mut f = sale(
                id,
                vec![
                    ("product_id", "gum_member".into()),
                    ("subscription_id", "M1".into()),
                    ("recurrence", "monthly".into()),
                ],
            );
            f.retain(|(k, _)| *k != "sale_timestamp");
            f.push(("sale_timestamp", at.to_rfc3339()));
            if recurring {
                f.push(("is_recurring_charge", "true".into()));
            }
            f
        };
        ping(GUMROAD, member("S2", false, now)).await;
        let sub = of_subscription(&licenses(&app).await, "gumroad:M1")[0].clone();
        let first = expires(&sub);
        let next = now.checked_add_months(chrono::Months::new(1)).unwrap();
        assert_eq!(first, next.timestamp() + 5 * DAY);
        ping(GUMROAD, member("S3", true, next)).await;
        let path = format!("/v1/licenses/{}", sub["id"]);
        let second = next.checked_add_months(chrono::Months::new(1)).unwrap();
        assert_eq!(
            expires(&app.get(&path).await.body),
            second.timestamp() + 5 * DAY
        );

        let mut refund = one_time.clone();
        refund.retain(|(k, _)| *k != "refunded");
        refund.push(("refunded", "true".into()));
        ping(GUMROAD, refund).await;
        let refunded: Vec<Value> = licenses(&app)
            .await
            .into_iter()
            .filter(|l| l["metadata"]["order"] == "S1")
            .collect();
        assert!(refunded.len() == 2 && refunded.iter().all(|l| l["blocked"] == true));

        ping(
            GUMROAD,
            vec![
                ("resource_name", "subscription_ended".into()),
                ("subscription_id", "M1".into()),
            ],
        )
        .await;
        assert_eq!(app.get(&path).await.body["blocked"], true);
        app.stop().await;
        db.remove().await;
    }
}
