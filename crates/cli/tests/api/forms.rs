//! Payment forms end to end: the buyer's page, the Checkout Session Keyturn asks a
//! Stripe-compatible server for, the webhook that issues the key, the done page and the mail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use chrono::Utc;
use keyturn::config::{MailSettings, SmtpTls};
use keyturn_providers::stripe::{sign, StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use serde_json::{json, Value};

use crate::helpers::{backends, test_http, TestApp, TestDb};
use crate::mail::{delivered, start_sink};

pub(crate) const SECRET: &str = "whsec_forms_test";

pub(crate) type Recorded = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Answers `POST /v1/checkout/sessions` as Stripe does and records each request.
pub(crate) async fn stripe_server() -> (String, Recorded) {
    let recorded: Recorded = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route(
            "/v1/checkout/sessions",
            post(|State((recorded, base)): State<(Recorded, String)>, body: String| async move {
                let fields: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
                let mut all = recorded.lock().unwrap();
                all.push(fields);
                let id = format!("cs_test_{:04}", all.len());
                axum::Json(json!({"id": id, "object": "checkout.session", "url": format!("{base}/pay/{id}")}))
            }),
        )
        .with_state((recorded.clone(), base.clone()));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, recorded)
}

/// Starts the server on a port chosen first, so it can be told the address buyers reach it at.
pub async fn spawn_public(db: &TestDb, providers: Providers, mail: MailSettings) -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = keyturn_http::HttpSettings {
        public_url: Some(format!("http://127.0.0.1:{port}")),
        ..test_http()
    };
    crate::helpers::spawn_on(db, http, providers, mail, port).await
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
}

/// A done page's text as a reader sees it: a key's groups are marked up separately (so a
/// narrow screen wraps between them, never inside one), the key itself is one piece of text.
pub(crate) fn keys_as_text(html: &str) -> String {
    html.replace("<span class=\"g\">", "")
        .replace("</span><wbr>", "")
        .replace("</span></code>", "</code>")
}

async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_pays_on_a_form_and_gets_the_key_on_the_page_and_by_mail() {
    let (stripe_base, recorded) = stripe_server().await;
    for backend in backends() {
        recorded.lock().unwrap().clear();
        let smtp_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let scratch = tempfile::tempdir().unwrap();
        let maildir = scratch.path().join("mail");
        let _sink = start_sink(smtp_port, &maildir);
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&stripe_base, "sk_test_forms")),
            )),
            ..Default::default()
        };
        let mail = MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port,
            tls: SmtpTls::None,
            poll: Duration::from_millis(100),
            retry_base: Duration::from_millis(200),
            ..MailSettings::default()
        };
        let app = spawn_public(&db, providers, mail).await;
        let product = app.product("Editor Pro", &["pro"]).await;
        let once = app.post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "features": ["pro"], "stripe_price_ids": ["price_once"]})).await.body["id"].as_i64().unwrap();
        let monthly = app
            .post("/v1/plans", json!({"product_id": product, "name": "Pro monthly", "period_days": 30, "stripe_price_ids": ["price_monthly"]}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let created = app
            .post(
                "/v1/payment-forms",
                json!({"name": "Buy Editor Pro", "product_id": product,
                    "email_subject": "Your {product} key", "email_body": "Hi {name}!\n\n{keys}\n\nEnjoy {product}.",
                    "offers": [
                    {"plan_id": once, "label": "Pro — one year", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"},
                    {"plan_id": monthly, "label": "Pro — monthly", "price": "€5 / month", "stripe_price_id": "price_monthly", "mode": "subscription"}
                ]}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let path = created.body["path"].as_str().unwrap().to_owned();
        let public_id = created.body["public_id"].as_str().unwrap().to_owned();
        assert!(public_id.len() >= 26, "the form's id is unguessable");
        let bad = app
            .post(
                "/v1/payment-forms",
                json!({"name": "x", "product_id": product, "offers": []}),
            )
            .await;
        assert_eq!(bad.status, 422);

        let (status, html) = page(&app, &path).await;
        assert_eq!(status, 200);
        for text in [
            "Pro — one year",
            "€49",
            "Pro — monthly",
            "<legend>Choose a plan</legend>",
            "name=\"viewport\"",
            "autocomplete=\"email\"",
        ] {
            assert!(html.contains(text), "{text} missing from the form page");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
        assert_eq!(page(&app, "/buy/nosuchform").await.0, 404);

        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let submit = |fields: Vec<(&'static str, &'static str)>| {
            let url = format!("{}{path}", app.base);
            let client = no_redirect.clone();
            async move { client.post(url).form(&fields).send().await.unwrap() }
        };
        let wrong = submit(vec![
            ("offer", "0"),
            ("quantity", "2"),
            ("name", "Ann Lee"),
            ("email", "not-an-email"),
        ])
        .await;
        assert_eq!(wrong.status(), 422);
        let body = wrong.text().await.unwrap();
        assert!(
            body.contains("valid email") && body.contains("Ann Lee"),
            "the page says what to fix and keeps the input"
        );
        assert!(
            recorded.lock().unwrap().is_empty(),
            "nothing was sent to Stripe"
        );

        let go = submit(vec![
            ("offer", "0"),
            ("quantity", "2"),
            ("name", "Ann Lee"),
            ("email", "ann@example.com"),
        ])
        .await;
        assert_eq!(go.status(), 303);
        let location = go.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(location, format!("{stripe_base}/pay/cs_test_0001"));
        let request = recorded.lock().unwrap()[0].clone();
        assert_eq!(field(&request, "mode"), "payment");
        assert_eq!(field(&request, "line_items[0][price]"), "price_once");
        assert_eq!(field(&request, "line_items[0][quantity]"), "2");
        assert_eq!(field(&request, "customer_email"), "ann@example.com");
        assert_eq!(field(&request, "metadata[keyturn_form]"), public_id);
        assert_eq!(
            field(&request, "metadata[keyturn_plan_id]"),
            once.to_string()
        );
        assert_eq!(field(&request, "metadata[keyturn_quantity]"), "2");
        assert_eq!(
            field(&request, "success_url"),
            format!(
                "{}/buy/{public_id}/done?session={{CHECKOUT_SESSION_ID}}",
                app.base
            )
        );
        assert_eq!(
            field(&request, "cancel_url"),
            format!("{}/buy/{public_id}", app.base)
        );

        // Before the webhook, the done page waits and refreshes.
        let done = format!("{path}/done?session=cs_test_0001");
        let (status, waiting) = page(&app, &done).await;
        assert_eq!(status, 200);
        assert!(waiting.contains("http-equiv=\"refresh\"") && waiting.contains("being confirmed"));

        // Stripe reports the completed checkout; the pipeline issues the keys.
        let metadata: Value = request
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("metadata[")
                    .and_then(|k| k.strip_suffix(']'))
                    .map(|k| (k.to_owned(), json!(v)))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let event = json!({"id": "evt_form_1", "object": "event", "type": "checkout.session.completed", "created": Utc::now().timestamp(),
            "data": {"object": {"id": "cs_test_0001", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
                "status": "complete", "customer": "cus_form_ann", "customer_details": {"email": "ann@example.com", "name": "Ann Lee"},
                "client_reference_id": public_id, "metadata": metadata, "payment_intent": "pi_form_1", "amount_total": 9800, "currency": "eur"}}})
        .to_string();
        let r = app
            .http
            .post(format!("{}/webhooks/stripe", app.base))
            .header(
                "stripe-signature",
                sign(SECRET, Utc::now().timestamp(), event.as_bytes()),
            )
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        let (_, shown) = page(&app, &done).await;
        let shown = keys_as_text(&shown);
        let licenses = app.get("/v1/licenses").await.body["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(licenses.len(), 2);
        for l in &licenses {
            let key = l["key"].as_str().unwrap();
            assert!(shown.contains(key), "the done page shows {key}");
        }
        assert!(shown.contains("data-copy") && !shown.contains("http-equiv"));

        let mut mails = Vec::new();
        for _ in 0..100 {
            mails = delivered(&maildir);
            if !mails.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(mails.len(), 1, "the buyer got one mail");
        for l in &licenses {
            assert!(mails[0].contains(l["key"].as_str().unwrap()));
        }
        assert!(mails[0].contains("To: ann@example.com"));
        assert!(
            mails[0].contains("Subject: Your Editor Pro key"),
            "{}",
            mails[0]
        );
        assert!(
            mails[0].contains("Hi Ann Lee!") && mails[0].contains("Enjoy Editor Pro."),
            "the form's own words"
        );

        // Another buyer's session, or a session under another form, shows nothing.
        assert_eq!(
            page(&app, &format!("{path}/done?session=cs_test_9999"))
                .await
                .0,
            404
        );
        let other = app
            .post("/v1/payment-forms", json!({"name": "Other", "product_id": product, "offers": [
                {"plan_id": once, "label": "x", "price": "€1", "stripe_price_id": "price_once", "mode": "payment"}]}))
            .await
            .body["path"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            page(&app, &format!("{other}/done?session=cs_test_0001"))
                .await
                .0,
            404
        );

        // A subscription offer starts a subscription checkout.
        let sub = submit(vec![
            ("offer", "1"),
            ("quantity", "1"),
            ("name", "Bo"),
            ("email", "bo@example.com"),
        ])
        .await;
        assert_eq!(sub.status(), 303);
        let request = recorded.lock().unwrap()[1].clone();
        assert_eq!(field(&request, "mode"), "subscription");
        assert_eq!(field(&request, "line_items[0][price]"), "price_monthly");
        assert_eq!(
            field(&request, "subscription_data[metadata][keyturn_plan_id]"),
            monthly.to_string()
        );

        app.stop().await;
        db.remove().await;
    }
}

/// The checkout page of the test Stripe server: paying sends Stripe's signed
/// `checkout.session.completed` to Keyturn and returns the buyer to the success URL, as Stripe
/// Checkout does.
pub(crate) async fn checkout_server(keyturn: String) -> (String, Recorded) {
    use axum::extract::Path;
    use axum::response::{Html, Redirect};
    let recorded: Recorded = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    type S = (Recorded, String, String);
    let session = |recorded: &Recorded, id: &str| -> Vec<(String, String)> {
        let n: usize = id.trim_start_matches("cs_test_").parse().unwrap();
        recorded.lock().unwrap()[n - 1].clone()
    };
    let router = axum::Router::new()
        .route(
            "/v1/checkout/sessions",
            post(|State((recorded, base, _)): State<S>, body: String| async move {
                let fields: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
                let mut all = recorded.lock().unwrap();
                all.push(fields);
                let id = format!("cs_test_{:04}", all.len());
                axum::Json(json!({"id": id, "object": "checkout.session", "url": format!("{base}/pay/{id}")}))
            }),
        )
        .route(
            "/pay/{id}",
            axum::routing::get(|Path(id): Path<String>| async move {
                Html(format!("<!doctype html><title>Checkout</title><form method=post action=/pay/{id}><button>Pay €49</button></form>"))
            })
            .post(move |State((recorded, _, keyturn)): State<S>, Path(id): Path<String>| async move {
                let fields = session(&recorded, &id);
                let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone()).unwrap_or_default();
                let metadata: serde_json::Map<String, Value> = fields
                    .iter()
                    .filter_map(|(k, v)| k.strip_prefix("metadata[").and_then(|k| k.strip_suffix(']')).map(|k| (k.to_owned(), json!(v))))
                    .collect();
                let event = json!({"id": format!("evt_{id}"), "object": "event", "type": "checkout.session.completed",
                    "created": Utc::now().timestamp(), "data": {"object": {"id": id, "object": "checkout.session",
                    "mode": get("mode"), "payment_status": "paid", "status": "complete",
                    "customer_details": {"email": get("customer_email"), "name": get("metadata[buyer_name]")},
                    "metadata": metadata, "payment_intent": format!("pi_{id}")}}})
                .to_string();
                let r = reqwest::Client::new()
                    .post(format!("{keyturn}/webhooks/stripe"))
                    .header("stripe-signature", sign(SECRET, Utc::now().timestamp(), event.as_bytes()))
                    .body(event)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                Redirect::to(&get("success_url").replace("{CHECKOUT_SESSION_ID}", &id))
            }),
        )
        .with_state((recorded.clone(), base.clone(), keyturn));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, recorded)
}

/// Chromium from Debian and playwright-core from npm, installed when missing.
fn browser_tools() -> (std::path::PathBuf, std::path::PathBuf) {
    use std::process::Command;
    let chromium = std::path::PathBuf::from(
        std::env::var("KEYTURN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if !chromium.exists() {
        let ok = Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && chromium.exists(),
            "this test needs Chromium: apt-get install chromium (or set KEYTURN_TEST_CHROMIUM)"
        );
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    if !dir.join("node_modules/playwright-core").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "playwright-core@1",
            ])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "npm install playwright-core failed");
    }
    (chromium, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_completes_a_form_in_a_real_browser() {
    let (chromium, node_dir) = browser_tools();
    let backend = backends().remove(0);
    let db = TestDb::create(&backend).await;
    // Each side must know the other's address: Keyturn's port is chosen first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let keyturn_base = format!("http://127.0.0.1:{port}");
    let (stripe_base, _) = checkout_server(keyturn_base.clone()).await;
    let providers = Providers {
        stripe: Some(StripeAdapter::new(
            vec![SECRET.into()],
            Duration::from_secs(300),
            Some(StripeApi::new(&stripe_base, "sk_test_browser")),
        )),
        ..Default::default()
    };
    let http = keyturn_http::HttpSettings {
        public_url: Some(keyturn_base.clone()),
        ..test_http()
    };
    let app = crate::helpers::spawn_on(&db, http, providers, MailSettings::default(), port).await;
    let product = app.product("Editor Pro", &["pro"]).await;
    let once = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 365, "features": ["pro"],
                   "stripe_price_ids": ["price_once"]}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let form = app
        .post("/v1/payment-forms", json!({"name": "Buy Editor Pro", "product_id": product, "offers": [
            {"plan_id": once, "label": "Pro — one year", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"}]}))
        .await;
    let url = format!("{}{}", app.base, form.body["path"].as_str().unwrap());
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("payment-form-done.png");
    let _ = std::fs::remove_file(&shot);
    let script = format!("{}/tests/browser/checkout.mjs", env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(&script, node_dir.join("checkout.mjs")).unwrap();
    let out = tokio::process::Command::new("node")
        .arg("checkout.mjs")
        .current_dir(&node_dir)
        .env("FORM_URL", &url)
        .env("SCREENSHOT", &shot)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let license = app.get(&format!("/v1/licenses/by-key/{key}")).await;
    assert_eq!(license.status, 200, "the page showed a real key: {key}");
    assert_eq!(license.body["features"], json!(["pro"]));
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "a screenshot was saved at {}",
        shot.display()
    );
    app.stop().await;
    db.remove().await;
}

/// A PayPal stand-in: the orders created, and the amount its next capture takes instead of the
/// order's (a buyer who paid less than was ordered).
#[derive(Clone, Default)]
struct Paypal {
    orders: Recorded,
    captured: Arc<Mutex<HashMap<String, Value>>>,
    capture_amount: Arc<Mutex<Option<Value>>>,
}

impl Paypal {
    fn order(&self, n: usize) -> Value {
        serde_json::from_str(&self.orders.lock().unwrap()[n - 1][0].1).unwrap()
    }
}

/// Answers the PayPal calls Keyturn makes, as PayPal does, and records created orders.
async fn paypal_server() -> (String, Paypal) {
    use axum::extract::Path;
    use axum::http::StatusCode;
    let paypal = Paypal::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    type S = (Paypal, String);
    let order_number =
        |id: &str| -> usize { id.trim_start_matches("PPORDER").parse().unwrap_or(0) };
    let router = axum::Router::new()
        .route("/v1/oauth2/token", post(|| async { axum::Json(json!({"access_token": "A21-test", "token_type": "Bearer", "expires_in": 32400})) }))
        .route(
            "/v2/checkout/orders",
            post(|State((paypal, base)): State<S>, axum::Json(body): axum::Json<Value>| async move {
                let mut all = paypal.orders.lock().unwrap();
                all.push(vec![("order".into(), body.to_string())]);
                let id = format!("PPORDER{}", all.len());
                axum::Json(json!({"id": id, "status": "PAYER_ACTION_REQUIRED",
                    "links": [{"rel": "self", "href": format!("{base}/v2/checkout/orders/{id}")},
                              {"rel": "payer-action", "href": format!("{base}/approve/{id}")}]}))
            }),
        )
        .route(
            "/v2/checkout/orders/{id}",
            axum::routing::get(move |State((paypal, _)): State<S>, Path(id): Path<String>| async move {
                match paypal.captured.lock().unwrap().get(&id) {
                    Some(done) => (StatusCode::OK, axum::Json(done.clone())),
                    None => (StatusCode::NOT_FOUND, axum::Json(json!({"name": "RESOURCE_NOT_FOUND"}))),
                }
            }),
        )
        .route(
            "/v2/checkout/orders/{id}/capture",
            post(move |State((paypal, _)): State<S>, Path(id): Path<String>| async move {
                let n = order_number(&id);
                if n == 0 || n > paypal.orders.lock().unwrap().len() {
                    return (StatusCode::NOT_FOUND, axum::Json(json!({"name": "RESOURCE_NOT_FOUND"})));
                }
                let order = paypal.order(n);
                let mut captured = paypal.captured.lock().unwrap();
                if captured.contains_key(&id) {
                    return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"name": "UNPROCESSABLE_ENTITY",
                        "details": [{"issue": "ORDER_ALREADY_CAPTURED", "description": "Order already captured."}]})));
                }
                let unit = &order["purchase_units"][0];
                let amount = paypal.capture_amount.lock().unwrap().take().unwrap_or_else(|| unit["amount"].clone());
                let done = json!({"id": id, "status": "COMPLETED",
                    "purchase_units": [{"reference_id": unit["reference_id"], "custom_id": unit["custom_id"],
                        "payments": {"captures": [{"id": format!("CAP-{id}"), "status": "COMPLETED", "amount": amount, "custom_id": unit["custom_id"]}]}}]});
                captured.insert(id, done.clone());
                (StatusCode::CREATED, axum::Json(done))
            }),
        )
        .route(
            "/v1/notifications/verify-webhook-signature",
            post(|axum::Json(body): axum::Json<Value>| async move {
                let ok = body["transmission_sig"] == "valid-signature" && body["webhook_id"] == "WH-KEYTURN";
                axum::Json(json!({"verification_status": if ok { "SUCCESS" } else { "FAILURE" }}))
            }),
        )
        .with_state((paypal.clone(), base.clone()));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, paypal)
}

/// PayPal, at the stand-in, with the webhook id its verification accepts.
fn paypal_providers(base: &str) -> Providers {
    Providers {
        paypal: Some(keyturn_providers::paypal::PaypalAdapter::new(
            base,
            "client-id",
            "client-secret",
            Some("WH-KEYTURN".into()),
        )),
        ..Default::default()
    }
}

/// A PayPal webhook delivery of a completed capture; PayPal's verification accepts
/// `valid-signature` only.
async fn paypal_capture_webhook(
    app: &TestApp,
    event_id: &str,
    order: &str,
    custom_id: &str,
    amount: Value,
    signature: &str,
) -> reqwest::Response {
    let event = json!({"id": event_id, "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource_type": "capture",
        "resource": {"id": format!("CAP-{order}"), "status": "COMPLETED", "custom_id": custom_id, "amount": amount,
            "supplementary_data": {"related_ids": {"order_id": order}}}})
    .to_string();
    app.http
        .post(format!("{}/webhooks/paypal", app.base))
        .header("paypal-transmission-id", format!("tx-{event_id}"))
        .header("paypal-transmission-sig", signature)
        .header("paypal-auth-algo", "SHA256withRSA")
        .header("paypal-cert-url", "https://api.paypal.com/cert")
        .header("paypal-transmission-time", "2026-11-23T10:00:00Z")
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paypal_return_and_webhook_issue_one_sale_once() {
    for backend in backends() {
        let (pp_base, paypal) = paypal_server().await;
        let db = TestDb::create(&backend).await;
        let providers = paypal_providers(&pp_base);
        let app = spawn_public(&db, providers, MailSettings::default()).await;
        let product = app.product("Editor Pro", &[]).await;
        let once = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Pro", "period_days": 365}),
            )
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let created = app
            .post(
                "/v1/payment-forms",
                json!({"name": "Buy Editor Pro", "product_id": product, "offers": [
                {"plan_id": once, "label": "Pro — one year", "price": "€49", "mode": "payment",
                 "paypal_amount": "49.00", "currency": "EUR"}]}),
            )
            .await;
        let path = created.body["path"].as_str().unwrap().to_owned();
        let public_id = created.body["public_id"].as_str().unwrap().to_owned();
        assert!(page(&app, &path).await.1.contains("Pay with PayPal"));

        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let go = no_redirect
            .post(format!("{}{path}", app.base))
            .form(&[
                ("offer", "0"),
                ("quantity", "2"),
                ("name", "Ann Lee"),
                ("email", "ann@example.com"),
                ("provider", "paypal"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(go.status(), 303);
        assert_eq!(
            go.headers()["location"].to_str().unwrap(),
            format!("{pp_base}/approve/PPORDER1")
        );
        let order = paypal.order(1);
        assert_eq!(order["intent"], "CAPTURE");
        assert_eq!(
            order["purchase_units"][0]["amount"],
            json!({"currency_code": "EUR", "value": "98.00"})
        );
        assert_eq!(
            order["purchase_units"][0]["custom_id"],
            format!("keyturn:{public_id}:{once}:2")
        );
        assert_eq!(
            order["payment_source"]["paypal"]["experience_context"]["return_url"],
            format!("{}/buy/{public_id}/paypal/return", app.base)
        );

        let custom_id = format!("keyturn:{public_id}:{once}:2");
        let paid = json!({"currency_code": "EUR", "value": "98.00"});
        let webhook = |sig: &'static str| {
            paypal_capture_webhook(&app, "WH-EVT-1", "PPORDER1", &custom_id, paid.clone(), sig)
        };
        assert_eq!(
            webhook("forged").await.status(),
            400,
            "PayPal refuses the signature: nothing stored"
        );
        assert_eq!(app.license_count().await, 0);

        // The buyer returns from PayPal: captured, keys issued, shown.
        let back = no_redirect
            .get(format!(
                "{}/buy/{public_id}/paypal/return?token=PPORDER1&PayerID=P1",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 303);
        let done = back.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(done, format!("/buy/{public_id}/done?session=PPORDER1"));
        let (_, shown) = page(&app, &done).await;
        let shown = keys_as_text(&shown);
        let licenses = app.get("/v1/licenses").await.body["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(licenses.len(), 2);
        assert!(licenses
            .iter()
            .all(|l| shown.contains(l["key"].as_str().unwrap())));
        let customer = app
            .get(&format!("/v1/customers/{}", licenses[0]["customer_id"]))
            .await
            .body;
        assert_eq!(
            customer["email"], "ann@example.com",
            "the buyer from the form"
        );

        // The webhook for the same capture, and a second return (PayPal: already captured),
        // change nothing.
        let r = webhook("valid-signature").await;
        assert_eq!(r.status(), 200);
        let again = no_redirect
            .get(format!(
                "{}/buy/{public_id}/paypal/return?token=PPORDER1",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 303);
        assert_eq!(app.license_count().await, 2, "one sale, one set of keys");
        let unknown = no_redirect
            .get(format!(
                "{}/buy/{public_id}/paypal/return?token=PPORDER9",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        app.stop().await;
        db.remove().await;
    }
}

/// The event a provider delivery left on record.
async fn provider_event(app: &TestApp, provider: &str, id: &str) -> Value {
    let r = app
        .get(&format!("/v1/provider-events/{provider}/{id}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// PayPal's capture and the buyer's return issue keys only for an order Keyturn created, and
/// only when what was captured is the offer's price times the quantity ordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paypal_issues_keys_only_for_what_was_ordered_and_paid() {
    for backend in backends() {
        let (pp_base, paypal) = paypal_server().await;
        let db = TestDb::create(&backend).await;
        let providers = paypal_providers(&pp_base);
        let app = spawn_public(&db, providers, MailSettings::default()).await;
        let product = app.product("Editor Pro", &[]).await;
        let suite = app.product("Suite", &["all"]).await;
        let plan = |body: Value| {
            let app = &app;
            async move {
                app.post("/v1/plans", body).await.body["id"]
                    .as_i64()
                    .unwrap()
            }
        };
        let once = plan(
            json!({"product_id": product, "name": "Pro", "period_days": 365, "max_machines": 1}),
        )
        .await;
        let dear = plan(
            json!({"product_id": suite, "name": "Suite", "period_days": 365, "max_machines": 50}),
        )
        .await;
        let created = app
            .post("/v1/payment-forms", json!({"name": "Buy Editor Pro", "product_id": product, "offers": [
                {"plan_id": once, "label": "Pro", "price": "€49", "mode": "payment", "paypal_amount": "49.00", "currency": "EUR"}]}))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let path = created.body["path"].as_str().unwrap().to_owned();
        let public_id = created.body["public_id"].as_str().unwrap().to_owned();
        let no_redirect = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let order = |quantity: &'static str| {
            let client = no_redirect.clone();
            let url = format!("{}{path}", app.base);
            async move {
                let r = client
                    .post(url)
                    .form(&[
                        ("offer", "0"),
                        ("quantity", quantity),
                        ("name", "Ann Lee"),
                        ("email", "ann@example.com"),
                        ("provider", "paypal"),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 303);
            }
        };
        order("2").await;
        let ordered = format!("keyturn:{public_id}:{once}:2");
        let eur = |v: &str| json!({"currency_code": "EUR", "value": v});

        // Captured less than ordered, or in another currency: recorded as failed, nothing issued.
        for (id, amount) in [
            ("WH-LOW", eur("49.00")),
            ("WH-USD", json!({"currency_code": "USD", "value": "98.00"})),
        ] {
            let r =
                paypal_capture_webhook(&app, id, "PPORDER1", &ordered, amount, "valid-signature")
                    .await;
            assert_eq!(r.status(), 422, "{id}");
            let recorded = provider_event(&app, "paypal", id).await;
            assert_eq!(recorded["status"], "failed");
            assert!(
                recorded["detail"].as_str().unwrap().contains("98.00"),
                "{recorded}"
            );
        }
        // An order Keyturn did not create, whatever its custom_id says.
        let foreign = format!("keyturn:{public_id}:{dear}:5");
        let r = paypal_capture_webhook(
            &app,
            "WH-FOREIGN",
            "PPORDER77",
            &foreign,
            eur("98.00"),
            "valid-signature",
        )
        .await;
        assert_eq!(r.status(), 422);
        assert_eq!(
            provider_event(&app, "paypal", "WH-FOREIGN").await["status"],
            "failed"
        );
        assert_eq!(app.license_count().await, 0);

        // The full amount: the recorded order's plan and quantity, not the custom_id's.
        let r = paypal_capture_webhook(
            &app,
            "WH-OK",
            "PPORDER1",
            &foreign,
            eur("98.00"),
            "valid-signature",
        )
        .await;
        assert_eq!(r.status(), 200);
        let licenses = app.get("/v1/licenses").await.body["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(licenses.len(), 2);
        assert!(licenses.iter().all(|l| l["plan_id"] == once));

        // The buyer returns from an order PayPal captured for less.
        order("1").await;
        *paypal.capture_amount.lock().unwrap() = Some(eur("0.49"));
        let back = no_redirect
            .get(format!(
                "{}/buy/{public_id}/paypal/return?token=PPORDER2",
                app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 422);
        assert!(back
            .text()
            .await
            .unwrap()
            .contains("does not match this order"));
        assert_eq!(
            provider_event(&app, "paypal", "return:PPORDER2").await["status"],
            "failed"
        );
        assert_eq!(app.license_count().await, 2);
        app.stop().await;
        db.remove().await;
    }
}

/// The message of an error reply.
fn message(r: &crate::helpers::Resp) -> String {
    r.body["error"]["message"].as_str().unwrap_or("").to_owned()
}

/// A form is refused when it is created if it could not take a payment: the offer's price is
/// not on its plan, two plans sell it, or its provider or the public address is not configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_form_that_cannot_work_is_refused() {
    let (stripe_base, _) = stripe_server().await;
    let (pp_base, _) = paypal_server().await;
    let stripe = |api: bool| {
        StripeAdapter::new(
            vec![SECRET.into()],
            Duration::from_secs(300),
            api.then(|| StripeApi::new(&stripe_base, "sk_test_forms")),
        )
    };
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(stripe(true)),
            ..Default::default()
        };
        let app = spawn_public(&db, providers, MailSettings::default()).await;
        let product = app.product("Editor Pro", &[]).await;
        let plan = |name: &'static str, prices: Value| {
            let app = &app;
            async move {
                let r = app.post("/v1/plans", json!({"product_id": product, "name": name, "period_days": 365, "stripe_price_ids": prices})).await;
                assert_eq!(r.status, 201, "{}", r.body);
                r.body["id"].as_i64().unwrap()
            }
        };
        let pro = plan("Pro", json!(["price_pro"])).await;
        let team = plan("Team", json!(["price_team", "price_shared"])).await;
        plan("Team again", json!(["price_shared"])).await;
        let form = |offer: Value| {
            let app = &app;
            async move {
                app.post(
                    "/v1/payment-forms",
                    json!({"name": "Buy", "product_id": product, "offers": [offer]}),
                )
                .await
            }
        };
        let cases = [
            (
                json!({"plan_id": pro, "label": "Pro", "price": "€49", "stripe_price_id": "price_other", "mode": "payment"}),
                "stripe_price_ids",
            ),
            (
                json!({"plan_id": team, "label": "Team", "price": "€99", "stripe_price_id": "price_shared", "mode": "payment"}),
                "two plans",
            ),
            (
                json!({"plan_id": pro, "label": "Pro", "price": "€49", "stripe_price_id": "price_pro", "mode": "payment",
                    "paypal_amount": "49.00", "currency": "EUR"}),
                "KEYTURN_PAYPAL_CLIENT_ID",
            ),
            (
                json!({"plan_id": pro, "label": "Pro", "price": "€49", "mode": "payment"}),
                "stripe_price_id or a paypal_amount",
            ),
        ];
        for (offer, says) in cases {
            let r = form(offer.clone()).await;
            assert_eq!(r.status, 422, "{offer}: {}", r.body);
            assert!(message(&r).contains(says), "{offer}: {}", r.body);
        }
        let ok = form(json!({"plan_id": pro, "label": "Pro", "price": "€49", "stripe_price_id": "price_pro", "mode": "payment"})).await;
        assert_eq!(ok.status, 201, "{}", ok.body);
        app.stop().await;
        db.remove().await;

        // Without the Stripe API key Keyturn cannot start a Checkout Session; without the public
        // address it cannot tell Stripe where to send the buyer back.
        for (providers, public, says) in [
            (
                Providers {
                    stripe: Some(stripe(false)),
                    ..Default::default()
                },
                true,
                "KEYTURN_STRIPE_API_KEY",
            ),
            (
                Providers {
                    stripe: Some(stripe(true)),
                    ..Default::default()
                },
                false,
                "KEYTURN_PUBLIC_URL",
            ),
        ] {
            let db = TestDb::create(&backend).await;
            let app = if public {
                spawn_public(&db, providers, MailSettings::default()).await
            } else {
                crate::helpers::spawn_with(&db, test_http(), providers).await
            };
            let product = app.product("Editor Pro", &[]).await;
            let pro = app.post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "stripe_price_ids": ["price_pro"]})).await.body["id"].as_i64().unwrap();
            let r = app.post("/v1/payment-forms", json!({"name": "Buy", "product_id": product, "offers": [
                {"plan_id": pro, "label": "Pro", "price": "€49", "stripe_price_id": "price_pro", "mode": "payment"}]})).await;
            assert_eq!(r.status, 422, "{}", r.body);
            assert!(message(&r).contains(says), "{}", r.body);
            app.stop().await;
            db.remove().await;
        }

        // PayPal offers: an amount PayPal takes, a currency code, one-time sales only.
        let db = TestDb::create(&backend).await;
        let providers = paypal_providers(&pp_base);
        let app = spawn_public(&db, providers, MailSettings::default()).await;
        let product = app.product("Editor Pro", &[]).await;
        let pro = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Pro", "period_days": 365}),
            )
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        for (amount, currency, mode) in [
            ("49.999", "EUR", "payment"),
            ("-1", "EUR", "payment"),
            ("lots", "EUR", "payment"),
            ("49.00", "euro", "payment"),
            ("49.00", "EUR", "subscription"),
        ] {
            let r = app.post("/v1/payment-forms", json!({"name": "Buy", "product_id": product, "offers": [
                {"plan_id": pro, "label": "Pro", "price": "€49", "mode": mode, "paypal_amount": amount, "currency": currency}]})).await;
            assert_eq!(r.status, 422, "{amount} {currency} {mode}: {}", r.body);
        }
        app.stop().await;
        db.remove().await;
    }
}

/// Return links are built from KEYTURN_PUBLIC_URL only: without it a form refuses to start a
/// checkout rather than send the buyer back to whatever Host the request named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_no_checkout_starts() {
    let (stripe_base, recorded) = stripe_server().await;
    let providers = || Providers {
        stripe: Some(StripeAdapter::new(
            vec![SECRET.into()],
            Duration::from_secs(300),
            Some(StripeApi::new(&stripe_base, "sk_test_forms")),
        )),
        ..Default::default()
    };
    for backend in backends() {
        recorded.lock().unwrap().clear();
        let db = TestDb::create(&backend).await;
        let first = spawn_public(&db, providers(), MailSettings::default()).await;
        let product = first.product("Editor Pro", &[]).await;
        let pro = first.post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "stripe_price_ids": ["price_pro"]})).await.body["id"].as_i64().unwrap();
        let form = first.post("/v1/payment-forms", json!({"name": "Buy", "product_id": product, "offers": [
            {"plan_id": pro, "label": "Pro", "price": "€49", "stripe_price_id": "price_pro", "mode": "payment"}]})).await;
        assert_eq!(form.status, 201, "{}", form.body);
        let path = form.body["path"].as_str().unwrap().to_owned();
        let admin = first.admin.clone();
        first.stop().await;

        // The same installation, restarted without its public address.
        let app = crate::helpers::spawn_again(&db, test_http(), providers(), &admin).await;
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}{path}", app.base))
            .header("host", "shop.attacker.example")
            .form(&[
                ("offer", "0"),
                ("quantity", "1"),
                ("name", "Ann"),
                ("email", "ann@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("KEYTURN_PUBLIC_URL"));
        assert!(
            recorded.lock().unwrap().is_empty(),
            "no checkout was started"
        );
        app.stop().await;
        db.remove().await;
    }
}

/// Keyturn records each checkout it starts; the provider's report of it is matched to that
/// record's plan and quantity, whatever the session's metadata says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_checkout_is_matched_to_its_recorded_plan_and_quantity() {
    let (stripe_base, _) = stripe_server().await;
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&stripe_base, "sk_test_forms")),
            )),
            ..Default::default()
        };
        let app = spawn_public(&db, providers, MailSettings::default()).await;
        let product = app.product("Editor Pro", &[]).await;
        let suite = app.product("Suite", &[]).await;
        let once = app.post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "max_machines": 1, "stripe_price_ids": ["price_once"]})).await.body["id"].as_i64().unwrap();
        let dear = app.post("/v1/plans", json!({"product_id": suite, "name": "Suite", "period_days": 365, "max_machines": 50, "stripe_price_ids": ["price_suite"]})).await.body["id"].as_i64().unwrap();
        let form = app.post("/v1/payment-forms", json!({"name": "Buy", "product_id": product, "offers": [
            {"plan_id": once, "label": "Pro", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"}]})).await;
        assert_eq!(form.status, 201, "{}", form.body);
        let path = form.body["path"].as_str().unwrap().to_owned();
        let go = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}{path}", app.base))
            .form(&[
                ("offer", "0"),
                ("quantity", "2"),
                ("name", "Ann"),
                ("email", "ann@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(go.status(), 303);
        let session = go.headers()["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let event = json!({"id": "evt_recorded", "object": "event", "type": "checkout.session.completed", "created": Utc::now().timestamp(),
            "data": {"object": {"id": session, "object": "checkout.session", "mode": "payment", "payment_status": "paid",
                "customer_details": {"email": "ann@example.com", "name": "Ann"}, "payment_intent": "pi_recorded",
                "metadata": {"keyturn_form": "x", "keyturn_plan_id": dear.to_string(), "keyturn_quantity": "5"}}}})
        .to_string();
        let r = app
            .http
            .post(format!("{}/webhooks/stripe", app.base))
            .header(
                "stripe-signature",
                sign(SECRET, Utc::now().timestamp(), event.as_bytes()),
            )
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let licenses = app.get("/v1/licenses").await.body["data"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(
            licenses.len(),
            2,
            "the quantity the buyer ordered on the form"
        );
        assert!(licenses
            .iter()
            .all(|l| l["plan_id"] == once && l["max_machines"] == 1));
        app.stop().await;
        db.remove().await;
    }
}
