//! End to end against localstripe, a stateful Stripe-compatible server: it stores objects,
//! delivers signed webhooks, and lists its events. It speaks an old API version and has no
//! checkout, refunds or renewal periods; `stripe.rs` covers those with current-shape events.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use serde_json::{json, Value};

use crate::helpers::{backends, spawn_with, test_http, TestApp, TestDb};

pub(crate) const SECRET: &str = "whsec_localstripe";
pub(crate) const KEY: &str = "sk_test_keyturn";

pub(crate) struct Localstripe {
    child: Child,
    pub(crate) base: String,
    http: reqwest::Client,
}

impl Drop for Localstripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Localstripe {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = format!(
            "{}/tests/fixtures/run_localstripe.py",
            env!("CARGO_MANIFEST_DIR")
        );
        let child = Command::new(crate::helpers::test_python())
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start localstripe");
        let ls = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            let up = ls
                .http
                .get(format!("{}/v1/customers", ls.base))
                .basic_auth(KEY, Some(""))
                .send()
                .await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return ls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe did not start");
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(KEY, Some(""))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        // The configuration routes answer with an empty body.
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// A customer paying by `card` with a subscription to `plan_pro_m`; returns (customer, subscription).
    pub(crate) async fn subscribe(&self, email: &str) -> (String, Value) {
        self.subscribe_to(email, "plan_pro_m").await
    }

    /// A customer paying by `card` with a subscription to `plan`.
    async fn subscribe_to(&self, email: &str, plan: &str) -> (String, Value) {
        let customer = self
            .post(
                "/v1/customers",
                &[("name", "Ada Lovelace"), ("email", email)],
            )
            .await;
        let cus = customer["id"].as_str().unwrap().to_owned();
        let pm = self
            .post(
                "/v1/payment_methods/pm_card_visa/attach",
                &[("customer", &cus)],
            )
            .await;
        self.post(
            &format!("/v1/customers/{cus}"),
            &[(
                "invoice_settings[default_payment_method]",
                pm["id"].as_str().unwrap(),
            )],
        )
        .await;
        let sub = self
            .post(
                "/v1/subscriptions",
                &[("customer", &cus), ("items[0][plan]", plan)],
            )
            .await;
        (cus, sub)
    }
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    for _ in 0..150 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn license_of(app: &TestApp, subscription: &str) -> Option<Value> {
    app.get("/v1/licenses?limit=500").await.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["metadata"]["stripe_subscription_id"] == subscription)
        .cloned()
}

fn expires(l: &Value) -> DateTime<Utc> {
    l["expires"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_on_localstripe_drive_licenses() {
    for backend in backends() {
        let ls = Localstripe::start().await;
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&ls.base, KEY)),
            )),
            ..Default::default()
        };
        let app = spawn_with(&db, test_http(), providers).await;
        let product = app.product("Editor", &["pro"]).await;
        let plan = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Pro monthly", "period_days": 30, "max_machines": 1,
                       "features": ["pro"], "grace_days": 5, "stripe_price_ids": ["plan_pro_m"]}),
            )
            .await;
        assert_eq!(plan.status, 201, "{}", plan.body);
        ls.post(
            "/v1/products",
            &[("id", "prod_pro"), ("name", "Editor Pro")],
        )
        .await;
        ls.post(
            "/v1/plans",
            &[
                ("id", "plan_pro_m"),
                ("product", "prod_pro"),
                ("amount", "2500"),
                ("currency", "eur"),
                ("interval", "month"),
            ],
        )
        .await;

        // Events sent while no webhook reached Keyturn are recovered from Stripe's event list.
        let (_, missed) = ls.subscribe("missed@example.com").await;
        let missed_id = missed["id"].as_str().unwrap().to_owned();
        let sync = app.post("/v1/stripe/sync", json!({})).await;
        assert_eq!(sync.status, 200, "{}", sync.body);
        assert!(sync.body["applied"].as_u64().unwrap() >= 2, "{}", sync.body);
        let recovered = license_of(&app, &missed_id)
            .await
            .expect("sync created the license");
        assert_eq!(recovered["blocked"], false);
        let again = app.post("/v1/stripe/sync", json!({})).await;
        assert_eq!(
            again.body["applied"], 0,
            "a second sync applies nothing: {}",
            again.body
        );

        // From now on Stripe delivers webhooks.
        let webhook = format!("{}/webhooks/stripe", app.base);
        ls.post(
            "/_config/webhooks/keyturn",
            &[("url", &webhook), ("secret", SECRET)],
        )
        .await;
        let (cus, sub) = ls.subscribe("ada@example.com").await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let period_end = sub["current_period_end"].as_i64().unwrap();
        // The subscription and its first invoice arrive as separate deliveries, in either order.
        let license = wait_for("the subscription's license and customer", || async {
            license_of(&app, &sub_id).await.filter(|l| {
                l["customer_id"].is_i64() && expires(l).timestamp() == period_end + 5 * 86_400
            })
        })
        .await;
        assert_eq!(
            expires(&license).timestamp(),
            period_end + 5 * 86_400,
            "paid period plus grace days"
        );
        assert_eq!(license["features"], json!(["pro"]));
        let customer = app
            .get(&format!("/v1/customers/{}", license["customer_id"]))
            .await
            .body;
        assert_eq!(customer["email"], "ada@example.com");
        let id = license["id"].as_i64().unwrap();
        let path = format!("/v1/licenses/{id}");

        // A further paid invoice extends the license. localstripe bills every invoice for the
        // same period, so the vendor first shortens the license to see the invoice restore it.
        let short = Utc::now() + chrono::Duration::days(1);
        app.patch(&path, json!({"expires": short})).await;
        let invoice = ls
            .post(
                "/v1/invoices",
                &[("customer", &cus), ("subscription", &sub_id)],
            )
            .await;
        ls.post(
            &format!("/v1/invoices/{}/pay", invoice["id"].as_str().unwrap()),
            &[],
        )
        .await;
        wait_for("the renewal", || async {
            let l = app.get(&path).await.body;
            (expires(&l).timestamp() == period_end + 5 * 86_400).then_some(l)
        })
        .await;

        // A failed payment (3-D Secure refused) is recorded and extends nothing.
        let before = app.get(&path).await.body["expires"].clone();
        let card = ls
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", "4000002500003155"),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2030"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        let card = card["id"].as_str().unwrap();
        ls.post(
            &format!("/v1/payment_methods/{card}/attach"),
            &[("customer", &cus)],
        )
        .await;
        ls.post(
            &format!("/v1/customers/{cus}"),
            &[("invoice_settings[default_payment_method]", card)],
        )
        .await;
        let invoice = ls
            .post(
                "/v1/invoices",
                &[("customer", &cus), ("subscription", &sub_id)],
            )
            .await;
        let invoice_id = invoice["id"].as_str().unwrap().to_owned();
        ls.post(&format!("/v1/invoices/{invoice_id}/pay"), &[])
            .await;
        let pi = ls.get(&format!("/v1/invoices/{invoice_id}")).await["payment_intent"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret = ls.get(&format!("/v1/payment_intents/{pi}")).await["client_secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = ls
            .http
            .post(format!("{}/v1/payment_intents/{pi}/_authenticate", ls.base))
            .form(&[
                ("key", "pk_test_keyturn"),
                ("client_secret", &secret),
                ("success", "false"),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let failed = wait_for("the failed payment", || async {
            let payments = app.get("/v1/payments?limit=100").await.body["data"].clone();
            payments
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["object_id"] == invoice_id.as_str())
                .cloned()
        })
        .await;
        assert_eq!(failed["status"], "failed");
        assert_eq!(app.get(&path).await.body["expires"], before);

        // Cancelling the subscription blocks the license.
        let r = ls
            .http
            .delete(format!("{}/v1/subscriptions/{sub_id}", ls.base))
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        wait_for("the block", || async {
            let l = app.get(&path).await.body;
            (l["blocked"] == true).then_some(l)
        })
        .await;
        let events = app.get(&format!("{path}/events")).await.body["data"].clone();
        let block = events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "blocked")
            .unwrap();
        assert!(
            block["actor"].as_str().unwrap().starts_with("stripe:evt_"),
            "{block}"
        );
        assert_eq!(
            app.license_count().await,
            2,
            "one license per subscription, never more"
        );

        app.stop().await;
        db.remove().await;
        drop(ls);
    }
}

/// A Stripe catalogue set up for Cryptolens (`skm_product_id` on the product, the `skm`
/// CreateKey parameters on the plan) issues licenses on those terms without any plan naming
/// its prices: each price becomes a plan on its first sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_with_cryptolens_metadata_issue_licenses_on_their_terms() {
    for backend in backends() {
        let ls = Localstripe::start().await;
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&ls.base, KEY)),
            )),
            ..Default::default()
        };
        let app = spawn_with(&db, test_http(), providers).await;
        let editor = app.product("Editor", &["pro", "team", "export"]).await;
        // A product `keyturn import cryptolens` brought over from Cryptolens product 3349.
        let suite = app.product("Suite", &["basic", "cloud"]).await;
        {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
            sqlx::query(
                "INSERT INTO imported (origin, server, kind, source_id, local_id) \
                 VALUES ('cryptolens', 'https://app.cryptolens.io', 'product', '3349', $1)",
            )
            .bind(suite)
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let editor_id = editor.to_string();
        for (product, skm_product_id, plan, interval, skm) in [
            (
                "prod_editor",
                editor_id.as_str(),
                "plan_editor_m",
                "month",
                r#"{"F2": true, "F3": "true", "MaxNoOfMachines": 3, "Notes": "ignored"}"#,
            ),
            (
                "prod_suite",
                "3349",
                "plan_suite_y",
                "year",
                r#"{"f2": true}"#,
            ),
        ] {
            ls.post(
                "/v1/products",
                &[
                    ("id", product),
                    ("name", product),
                    ("metadata[skm_product_id]", skm_product_id),
                ],
            )
            .await;
            ls.post(
                "/v1/plans",
                &[
                    ("id", plan),
                    ("product", product),
                    ("amount", "1500"),
                    ("currency", "eur"),
                    ("interval", interval),
                    ("metadata[skm]", skm),
                ],
            )
            .await;
        }
        let webhook = format!("{}/webhooks/stripe", app.base);
        ls.post(
            "/_config/webhooks/keyturn",
            &[("url", &webhook), ("secret", SECRET)],
        )
        .await;

        let (_, sub) = ls.subscribe_to("ada@example.com", "plan_editor_m").await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let period_end = sub["current_period_end"].as_i64().unwrap();
        let license = wait_for(
            "the license of a price with Cryptolens metadata",
            || async {
                license_of(&app, &sub_id)
                    .await
                    .filter(|l| expires(l).timestamp() == period_end + 5 * 86_400)
            },
        )
        .await;
        assert_eq!(license["product_id"], editor);
        assert_eq!(license["features"], json!(["team", "export"]), "F2 and F3");
        assert_eq!(license["max_machines"], 3);
        let plan = app
            .get(&format!("/v1/plans/{}", license["plan_id"]))
            .await
            .body;
        assert_eq!(plan["stripe_price_ids"], json!(["plan_editor_m"]));
        assert_eq!(plan["period_days"], 30, "the plan's billing interval");

        let (_, sub) = ls.subscribe_to("grace@example.com", "plan_suite_y").await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let license = wait_for("the license of the imported product", || async {
            license_of(&app, &sub_id)
                .await
                .filter(|l| l["expires"].is_string())
        })
        .await;
        assert_eq!(
            license["product_id"], suite,
            "the product Cryptolens product 3349 became"
        );
        assert_eq!(license["features"], json!(["cloud"]));

        // A second sale of the same price uses the plan the first made.
        let (_, sub) = ls.subscribe_to("bob@example.com", "plan_editor_m").await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let again = wait_for("a second license", || async {
            license_of(&app, &sub_id).await
        })
        .await;
        assert_eq!(again["plan_id"], plan["id"]);
        let plans = app
            .get(&format!("/v1/plans?product_id={editor}"))
            .await
            .body;
        assert_eq!(plans["data"].as_array().unwrap().len(), 1, "{plans}");
        assert_eq!(app.license_count().await, 3);

        app.stop().await;
        db.remove().await;
        drop(ls);
    }
}
