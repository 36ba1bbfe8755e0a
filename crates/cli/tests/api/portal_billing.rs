//! The money side of the customer portal: a subscription buyer's billing page (subscriptions,
//! payment history) and "Manage billing" (a Stripe Billing Portal session), the Cryptolens
//! `portalLink` sign-in, and the links into the portal on the done page and in the key mail.
//!
//! Subscriptions come from localstripe, a real Stripe-compatible server that delivers signed
//! webhooks. localstripe has no Billing Portal, so a small HTTP server stands in front of it as
//! the Stripe API base: it answers `POST /v1/billing_portal/sessions` itself (recording the
//! request, answering with a session object as Stripe does) and passes every other request on
//! to localstripe unchanged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{TimeZone, Utc};
use keyturn::config::{MailSettings, SmtpTls};
use keyturn_providers::stripe::{sign, StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use serde_json::{json, Value};
use sqlx::Row;

use crate::console::{Browser, Page};
use crate::cryptolens::{post as cl_post, token};
use crate::forms::{spawn_public, stripe_server};
use crate::helpers::{backends, Backend, TestApp, TestDb};
use crate::localstripe::{license_of, Localstripe, KEY, SECRET};
use crate::mail::{delivered, start_sink};

type Recorded = Arc<Mutex<Vec<Vec<(String, String)>>>>;

#[derive(Clone)]
struct StandIn {
    recorded: Recorded,
    localstripe: String,
    http: reqwest::Client,
}

/// The Stripe API base the server is given: billing portal sessions here, the rest at
/// localstripe. Returns its base and the billing portal requests it answered.
async fn stripe_stand_in(localstripe: &str) -> (String, Recorded) {
    let state = StandIn {
        recorded: Arc::default(),
        localstripe: localstripe.to_owned(),
        http: reqwest::Client::new(),
    };
    let recorded = state.recorded.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/v1/billing_portal/sessions", post(billing_session))
        .fallback(forward)
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, recorded)
}

/// Answers as Stripe does: a `billing_portal.session` with the page's URL.
async fn billing_session(State(s): State<StandIn>, headers: HeaderMap, body: String) -> Response {
    let mut fields: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    fields.push(("authorization".into(), auth));
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (customer, return_url) = (field("customer"), field("return_url"));
    let mut all = s.recorded.lock().unwrap();
    all.push(fields);
    let id = format!("bps_test_{}", all.len());
    axum::Json(
        json!({"id": id, "object": "billing_portal.session", "customer": customer,
                      "return_url": return_url, "livemode": false,
                      "url": format!("https://billing.stripe.test/p/session/{id}")}),
    )
    .into_response()
}

/// Every other Stripe call, passed on to localstripe and its answer back.
async fn forward(State(s): State<StandIn>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut req = s
        .http
        .request(parts.method, format!("{}{path}", s.localstripe))
        .body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(v) = parts.headers.get(name) {
            req = req.header(name, v);
        }
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let content_type = r.headers().get("content-type").cloned();
    let mut response = (status, r.bytes().await.unwrap()).into_response();
    if let Some(ct) = content_type {
        response.headers_mut().insert("content-type", ct);
    }
    response
}

pub(crate) async fn eventually<F, Fut, T>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..150 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A browser signed in to the portal with a key and the email it was sold to.
async fn portal_browser(app: &TestApp, key: &str, email: &str) -> Browser {
    let mut b = Browser::new(app);
    let form = b.get("/portal/sign-in").await;
    let csrf = form.csrf();
    let r = b
        .post(
            "/portal/sign-in/key",
            &[("csrf", &csrf), ("key", key), ("email", email)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    b
}

async fn billing_page(b: &mut Browser) -> Page {
    let page = b.get("/portal/billing").await;
    assert_eq!(page.status, 200, "{:?} {}", page.location, page.html);
    page
}

/// A localstripe subscription to `plan_pro_m` for `email`, and its license once the webhooks
/// made it (with its customer and the paid period): (Stripe customer, subscription, license).
async fn subscriber(app: &TestApp, ls: &Localstripe, email: &str) -> (String, Value, Value) {
    let (cus, sub) = ls.subscribe(email).await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let license = eventually("the subscription's license and customer", || async {
        license_of(app, &sub_id)
            .await
            .filter(|l| l["customer_id"].is_i64() && l["expires"].is_string())
    })
    .await;
    eventually("the subscription's payment", || async {
        let payments = app.get("/v1/payments?limit=100").await.body["data"].clone();
        payments
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"] == "paid" && p["customer_id"] == license["customer_id"])
            .cloned()
    })
    .await;
    (cus, sub, license)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_billing_subscription_buyer_reaches_the_billing_portal() {
    for backend in backends() {
        let ls = Localstripe::start().await;
        let (stand_in, recorded) = stripe_stand_in(&ls.base).await;
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![SECRET.into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&stand_in, KEY)),
            )),
            ..Default::default()
        };
        let app = spawn_public(&db, providers, MailSettings::default()).await;
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
        let webhook = format!("{}/webhooks/stripe", app.base);
        ls.post(
            "/_config/webhooks/keyturn",
            &[("url", &webhook), ("secret", SECRET)],
        )
        .await;

        let (ada_cus, ada_sub, ada_license) = subscriber(&app, &ls, "ada@example.com").await;
        let (_, _, bob_license) = subscriber(&app, &ls, "bob@example.com").await;
        let ada_key = ada_license["key"].as_str().unwrap().to_owned();
        let bob_key = bob_license["key"].as_str().unwrap().to_owned();
        let ada_customer = ada_license["customer_id"].as_i64().unwrap();
        let bob_customer = bob_license["customer_id"].as_i64().unwrap();

        // Ada's billing page: her subscription and payment, nothing of Bob's.
        let mut ada = portal_browser(&app, &ada_key, "ada@example.com").await;
        let licenses = ada.get("/portal/licenses").await;
        assert!(
            licenses.html.contains("href=\"/portal/billing\""),
            "the portal's navigation links to billing"
        );
        let page = billing_page(&mut ada).await;
        let next_payment = Utc
            .timestamp_opt(ada_sub["current_period_end"].as_i64().unwrap(), 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        for text in [
            "Editor: Pro monthly",
            ">active<",
            "Next payment",
            next_payment.as_str(),
            "Renews automatically",
            ada_key.as_str(),
            "Manage billing",
            "25.00 EUR",
            "Stripe",
            "badge pay-paid",
        ] {
            assert!(page.html.contains(text), "{text} missing: {}", page.html);
        }
        assert_eq!(
            page.html.matches("badge pay-").count(),
            1,
            "one payment: {}",
            page.html
        );
        assert!(!page.html.contains(&bob_key) && !page.html.contains("bob@"));

        // "Manage billing" opens a Stripe Billing Portal session for Ada's Stripe customer,
        // returning to the portal, and sends the browser there.
        let csrf = page.csrf();
        let customer = ada_customer.to_string();
        let opened = ada
            .post(
                "/portal/billing/manage",
                &[("csrf", &csrf), ("customer", &customer)],
            )
            .await;
        assert_eq!(opened.status, 303, "{}", opened.html);
        assert_eq!(
            opened.location.as_deref(),
            Some("https://billing.stripe.test/p/session/bps_test_1")
        );
        {
            let all = recorded.lock().unwrap();
            assert_eq!(all.len(), 1);
            let field = |name: &str| {
                all[0]
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            assert_eq!(field("customer"), ada_cus);
            assert_eq!(field("return_url"), format!("{}/portal/billing", app.base));
            assert!(
                field("authorization").starts_with("Basic "),
                "with the API key"
            );
        }

        // Nothing of another buyer through the form, and no state change without the token.
        let foreign = ada
            .post(
                "/portal/billing/manage",
                &[("csrf", &csrf), ("customer", &bob_customer.to_string())],
            )
            .await;
        assert_eq!(foreign.status, 404, "{}", foreign.html);
        let forged = ada
            .post(
                "/portal/billing/manage",
                &[("csrf", "forged"), ("customer", &customer)],
            )
            .await;
        assert_eq!(forged.status, 403);
        let anonymous = Browser::new(&app)
            .post(
                "/portal/billing/manage",
                &[("csrf", &csrf), ("customer", &customer)],
            )
            .await;
        assert_eq!(anonymous.location.as_deref(), Some("/portal/sign-in"));
        assert_eq!(recorded.lock().unwrap().len(), 1, "Stripe was asked once");

        let mut bob = portal_browser(&app, &bob_key, "bob@example.com").await;
        let page = billing_page(&mut bob).await;
        assert!(page.html.contains(&bob_key));
        assert!(!page.html.contains(&ada_key) && !page.html.contains("ada@"));
        assert_eq!(page.html.matches("badge pay-").count(), 1);

        // A buyer with no Stripe customer: no button, and a plain answer if they post anyway.
        let cy = app
            .post(
                "/v1/customers",
                json!({"name": "Cy", "email": "cy@example.com"}),
            )
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let cy_key = app
            .license(json!({"product_id": product, "customer_id": cy}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut cy_browser = portal_browser(&app, &cy_key, "cy@example.com").await;
        let page = billing_page(&mut cy_browser).await;
        assert!(page.html.contains("You have no subscriptions."));
        assert!(page.html.contains("No payments are on record for you."));
        assert!(!page.html.contains("/portal/billing/manage"), "no button");
        let refused = cy_browser
            .post(
                "/portal/billing/manage",
                &[("csrf", &page.csrf()), ("customer", &cy.to_string())],
            )
            .await;
        assert_eq!(refused.status, 409, "{}", refused.html);
        assert!(refused.html.contains("No Stripe customer is on record"));

        // The opening is in the audit log under the buyer.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM console_events WHERE actor = $1 AND action = 'portal_billing_opened'",
        )
        .bind("customer:ada@example.com")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
        assert_eq!(n, 1);
        pool.close().await;

        if matches!(backend, Backend::Sqlite) {
            billing_in_a_real_browser(&app, &ada_key, "ada@example.com").await;
        }

        app.stop().await;
        db.remove().await;
        drop(ls);
    }
}

/// The billing page in Chromium at desktop and phone size: axe-core finds no serious or
/// critical violation, nothing is wider than the screen, and "Manage billing" takes the
/// browser to the billing portal session's URL. Screenshots are kept under the target
/// directory.
async fn billing_in_a_real_browser(app: &TestApp, key: &str, email: &str) {
    let (chromium, node_dir) = match crate::console::browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("portal-screenshots")
        .join("billing");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let script = format!(
        "{}/tests/browser/portal-billing.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(&script, node_dir.join("portal-billing.mjs")).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("portal-billing.mjs")
        .current_dir(&node_dir)
        .env("BASE", &app.base)
        .env("KEY", key)
        .env("EMAIL", email)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run ends within 3 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("the script's report");
    assert_eq!(
        report["portal"], "https://billing.stripe.test/p/session/bps_test_2",
        "{report}"
    );
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{report}");
    for page in pages {
        assert_eq!(
            page["serious"], 0,
            "serious or critical accessibility violations on {} ({}): {}",
            page["name"], page["size"], page["violations"]
        );
        assert_eq!(page["overflow"], false, "{page}");
        let shot = shots.join(format!(
            "{}-{}.png",
            page["name"].as_str().unwrap(),
            page["size"].as_str().unwrap()
        ));
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 1000,
            "{}",
            shot.display()
        );
    }
}

/// A refund shows on the history, with the provider's receipt where its webhook carried one,
/// and a cancellation at the period's end on the subscription (current Stripe shapes, signed
/// as Stripe signs them: localstripe sends neither receipts nor subscription updates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_billing_history_shows_receipts_and_refunds() {
    const HOOK_SECRET: &str = "whsec_portal_billing";
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![HOOK_SECRET.into()],
                Duration::from_secs(300),
                None,
            )),
            ..Default::default()
        };
        let app = spawn_public(&db, providers, MailSettings::default()).await;
        let product = app.product("Painter", &[]).await;
        let plan = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Painter yearly", "period_days": 365,
                       "stripe_price_ids": ["price_painter"]}),
            )
            .await;
        assert_eq!(plan.status, 201, "{}", plan.body);
        let send = |event: Value| {
            let app = &app;
            async move {
                let body = event.to_string();
                let r = app
                    .http
                    .post(format!("{}/webhooks/stripe", app.base))
                    .header(
                        "stripe-signature",
                        sign(HOOK_SECRET, Utc::now().timestamp(), body.as_bytes()),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        };
        let now = Utc::now().timestamp();
        let period_end = now + 365 * 86_400;
        send(json!({"id": "evt_sub_1", "object": "event", "type": "customer.subscription.created", "created": now,
            "data": {"object": {"id": "sub_paint", "object": "subscription", "customer": "cus_paint", "status": "active",
                "cancel_at_period_end": false,
                "items": {"data": [{"price": {"id": "price_painter", "product": "prod_painter"}, "quantity": 1,
                    "current_period_start": now, "current_period_end": period_end}]}}}}))
        .await;
        send(json!({"id": "evt_inv_1", "object": "event", "type": "invoice.paid", "created": now,
            "data": {"object": {"id": "in_paint_1", "object": "invoice", "customer": "cus_paint",
                "customer_email": "pat@example.com", "customer_name": "Pat", "status": "paid",
                "billing_reason": "subscription_create", "amount_paid": 4900, "currency": "usd",
                "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/paint1",
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_paint", "metadata": {}}},
                "lines": {"object": "list", "data": [{"id": "il_paint", "object": "line_item", "amount": 4900,
                    "quantity": 1, "proration": false, "period": {"start": now, "end": period_end},
                    "pricing": {"type": "price_details", "price_details": {"price": "price_painter", "product": "prod_painter"}}}]},
                "payments": {"object": "list", "data": [{"object": "invoice_payment",
                    "payment": {"type": "payment_intent", "payment_intent": "pi_paint_1"}}]}}}}))
        .await;
        let license = eventually("the license", || async {
            license_of(&app, "sub_paint")
                .await
                .filter(|l| l["customer_id"].is_i64())
        })
        .await;
        let key = license["key"].as_str().unwrap().to_owned();
        let mut pat = portal_browser(&app, &key, "pat@example.com").await;
        let page = billing_page(&mut pat).await;
        assert!(page.html.contains("49.00 USD"), "{}", page.html);
        assert!(
            page.html
                .contains("href=\"https://invoice.stripe.com/i/acct_1/paint1\""),
            "the receipt the invoice carried: {}",
            page.html
        );

        // The charge is refunded: the history says so.
        send(json!({"id": "evt_refund_1", "object": "event", "type": "charge.refunded", "created": now + 60,
            "data": {"object": {"id": "ch_paint_1", "object": "charge", "payment_intent": "pi_paint_1",
                "amount": 4900, "amount_refunded": 4900, "refunded": true, "currency": "usd",
                "receipt_url": "https://pay.stripe.com/receipts/paint1"}}}))
        .await;
        let page = billing_page(&mut pat).await;
        assert!(page.html.contains(">refunded<"), "{}", page.html);
        assert!(page.html.contains("Renews automatically"));

        // The buyer cancelled at the period's end (at Stripe): no next payment, an end date.
        send(json!({"id": "evt_sub_2", "object": "event", "type": "customer.subscription.updated", "created": now + 120,
            "data": {"object": {"id": "sub_paint", "object": "subscription", "customer": "cus_paint", "status": "active",
                "cancel_at_period_end": true,
                "items": {"data": [{"price": {"id": "price_painter", "product": "prod_painter"}, "quantity": 1,
                    "current_period_start": now, "current_period_end": period_end}]}},
                "previous_attributes": {"cancel_at_period_end": false}}}))
        .await;
        let ends = Utc
            .timestamp_opt(period_end, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        let page = billing_page(&mut pat).await;
        assert!(
            page.html.contains("cancelled at the end of the period") && page.html.contains(&ends),
            "{}",
            page.html
        );
        assert!(!page.html.contains("Renews automatically"));
        assert!(
            page.html
                .contains("href=\"https://pay.stripe.com/receipts/paint1\""),
            "the receipt of the refunded charge: {}",
            page.html
        );
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_billing_portal_link_signs_in_and_matches_licenses_by_secret() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_public(&db, Providers::default(), MailSettings::default()).await;
        let product = app.product("Editor", &[]).await;
        let tok = token(
            &app,
            json!({"name": "sdk", "permissions": ["cryptolens:addcustomer",
                "cryptolens:getcustomerlicensesbysecret", "cryptolens:createkey"]}),
        )
        .await;
        let add = |name: &'static str, email: Option<&'static str>, associate: bool| {
            let (app, tok) = (&app, tok.clone());
            async move {
                let mut params = vec![("token", tok.as_str()), ("Name", name)];
                if let Some(e) = email {
                    params.push(("Email", e));
                }
                if associate {
                    params.push(("EnableCustomerAssociation", "true"));
                }
                let r = cl_post(app, "/api/customer/AddCustomer", &params).await;
                assert_eq!(r.body["result"], 0, "{}", r.body);
                r.body
            }
        };
        let lin = add("Lin", Some("lin@example.com"), true).await;
        let secret = lin["secret"].as_str().unwrap().to_owned();
        let link = lin["portalLink"].as_str().unwrap().to_owned();
        assert_eq!(link, format!("{}/portal/secret/{secret}", app.base));
        let plain = add("Mo", Some("mo@example.com"), false).await;
        assert!(plain.get("portalLink").is_none(), "{plain}");

        let pid = product.to_string();
        let mut keys = Vec::new();
        for _ in 0..2 {
            let cid = lin["customerId"].to_string();
            let r = cl_post(
                &app,
                "/api/key/CreateKey",
                &[("token", &tok), ("ProductId", &pid), ("CustomerId", &cid)],
            )
            .await;
            keys.push(r.body["key"].as_str().unwrap().to_owned());
        }
        let mo_key = app
            .license(json!({"product_id": product, "customer_id": plain["customerId"]}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();

        // Following the link: a button (a scanner fetching it starts nothing), then a session.
        let path = link.strip_prefix(&app.base).unwrap().to_owned();
        let mut b = Browser::new(&app);
        let shown = b.get(&path).await;
        assert_eq!(shown.status, 200, "{}", shown.html);
        assert!(!b.cookies.contains_key("keyturn_portal"));
        let signed = b.post(&path, &[("csrf", &shown.csrf())]).await;
        assert_eq!(signed.status, 303, "{}", signed.html);
        assert_eq!(signed.location.as_deref(), Some("/portal/licenses"));
        let page = b.get("/portal/licenses").await;
        assert_eq!(page.status, 200);
        for k in &keys {
            assert!(page.html.contains(k.as_str()), "{k} in the portal");
        }
        assert!(!page.html.contains(&mo_key), "nothing of another customer");

        // The same secret lists the same licenses through the Cryptolens API.
        let r = cl_post(
            &app,
            "/api/customer/GetCustomerLicensesBySecret",
            &[("token", &tok), ("Secret", &secret), ("ModelVersion", "3")],
        )
        .await;
        let mut listed: Vec<String> = r.body["licenseKeys"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|k| k["key"].as_str().unwrap().to_owned())
            .collect();
        listed.sort();
        keys.sort();
        assert_eq!(listed, keys);

        // The link stays usable (a standing credential, like the secret), and works again.
        let mut again = Browser::new(&app);
        let shown = again.get(&path).await;
        assert_eq!(
            again.post(&path, &[("csrf", &shown.csrf())]).await.status,
            303
        );

        // An unknown secret and a customer without an email get the same refusal.
        let no_mail = add("Nameless", None, true).await;
        let no_mail_path = no_mail["portalLink"]
            .as_str()
            .unwrap()
            .strip_prefix(&app.base)
            .unwrap()
            .to_owned();
        let mut other = Browser::new(&app);
        let mut refusals = Vec::new();
        for p in [no_mail_path.as_str(), "/portal/secret/kc_madeup"] {
            let shown = other.get(p).await;
            let r = other.post(p, &[("csrf", &shown.csrf())]).await;
            assert_eq!(r.status, 401, "{}", r.html);
            refusals.push(r.html);
        }
        assert_eq!(refusals[0], refusals[1]);
        assert!(!other.cookies.contains_key("keyturn_portal"));
        // A forged form is refused before the secret is looked at.
        let forged = other.post(&path, &[("csrf", "forged")]).await;
        assert_eq!(forged.status, 403);

        // Attempts are throttled per address: guessing stops, and so does the real link.
        let mut last = 0;
        for i in 0..25 {
            let p = format!("/portal/secret/kc_guess{i}");
            let shown = other.get(&p).await;
            last = other.post(&p, &[("csrf", &shown.csrf())]).await.status;
            if last == 429 {
                break;
            }
        }
        assert_eq!(last, 429);
        let shown = other.get(&path).await;
        assert_eq!(
            other.post(&path, &[("csrf", &shown.csrf())]).await.status,
            429
        );

        // The secret is stored hashed only.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
        let leaked: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM customers WHERE secret_hash = $1 OR secret_hash LIKE 'kc_%'",
        )
        .bind(&secret)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
        assert_eq!(leaked, 0);
        pool.close().await;

        app.stop().await;
        db.remove().await;
    }
}

/// A buyer pays on a form: the done page links into the portal, and so does the key mail that
/// arrives at a real SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_billing_done_page_and_key_mail_link_to_the_portal() {
    const HOOK_SECRET: &str = "whsec_forms_test";
    let (stripe_base, recorded) = stripe_server().await;
    for backend in backends() {
        recorded.lock().unwrap().clear();
        let smtp_port = crate::helpers::free_port();
        let scratch = tempfile::tempdir().unwrap();
        let maildir = scratch.path().join("mail");
        let _sink = start_sink(smtp_port, &maildir);
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![HOOK_SECRET.into()],
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
        let product = app.product("Editor Pro", &[]).await;
        let plan = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Pro", "period_days": 365,
                                      "stripe_price_ids": ["price_once"]}),
            )
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let form = app
            .post("/v1/payment-forms", json!({"name": "Buy Editor Pro", "product_id": product, "offers": [
                {"plan_id": plan, "label": "Pro", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"}]}))
            .await;
        assert_eq!(form.status, 201, "{}", form.body);
        let path = form.body["path"].as_str().unwrap().to_owned();
        let public_id = form.body["public_id"].as_str().unwrap().to_owned();
        let go = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}{path}", app.base))
            .form(&[
                ("offer", "0"),
                ("quantity", "1"),
                ("name", "Ann Lee"),
                ("email", "ann@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(go.status(), 303);
        let request = recorded.lock().unwrap()[0].clone();
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
                "client_reference_id": public_id, "metadata": metadata, "payment_intent": "pi_form_1", "amount_total": 4900, "currency": "eur"}}})
        .to_string();
        let r = app
            .http
            .post(format!("{}/webhooks/stripe", app.base))
            .header(
                "stripe-signature",
                sign(HOOK_SECRET, Utc::now().timestamp(), event.as_bytes()),
            )
            .body(event)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        let portal = format!("{}/portal", app.base);
        let done = app
            .http
            .get(format!("{}{path}/done?session=cs_test_0001", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let key = app.get("/v1/licenses").await.body["data"][0]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(crate::forms::keys_as_text(&done).contains(&key), "{done}");
        assert!(
            done.contains(&format!("<a href=\"{portal}\">")),
            "the done page links to the portal: {done}"
        );

        let mails = eventually("the key mail", || async {
            let mails = delivered(&maildir);
            (!mails.is_empty()).then_some(mails)
        })
        .await;
        assert_eq!(mails.len(), 1);
        assert!(mails[0].contains(&key), "{}", mails[0]);
        assert!(
            mails[0].contains(&format!("    {portal}\n"))
                || mails[0].contains(&format!("    {portal}\r\n")),
            "the key mail links to the portal: {}",
            mails[0]
        );
        app.stop().await;
        db.remove().await;
    }
}
