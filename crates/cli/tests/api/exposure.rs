//! What the server lets slip besides its answers: pages that show keys must not be cached,
//! framed or named in a Referer, and no secret may reach the logs at any level.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use keyturn_providers::stripe::{sign, StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use serde_json::{json, Value};

use crate::helpers::{backends, spawn_with, test_http, TestDb};

const STRIPE_SECRET: &str = "whsec_exposure_test";

fn assert_private(headers: &reqwest::header::HeaderMap, what: &str) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name} header"))
            .to_owned()
    };
    assert!(get("cache-control").contains("no-store"), "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    let csp = get("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
}

/// The policy of a page lets exactly its own inline style and script run: each `<style>` and
/// `<script>` is named by its hash, and nothing else is allowed to load.
fn assert_inline_code_allowed(headers: &reqwest::header::HeaderMap, page: &str) {
    use base64::Engine;
    use sha2::Digest;
    let csp = headers["content-security-policy"].to_str().unwrap();
    for tag in ["style", "script"] {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let blocks: Vec<&str> = page
            .split(&open)
            .skip(1)
            .map(|rest| rest.split(&close).next().unwrap())
            .collect();
        assert_eq!(blocks.len(), 1, "one {tag} block: {page}");
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(blocks[0].as_bytes()));
        assert!(
            csp.contains(&format!("{tag}-src 'sha256-{hash}'")),
            "{tag} not allowed by {csp}"
        );
    }
}

/// The checkout a buyer completes on a payment form: the form's path, and the Stripe event
/// that reports the payment of its first checkout session (`cs_test_0001`).
async fn paid_form(app: &crate::helpers::TestApp, recorded: &crate::forms::Recorded) -> String {
    let product = app.product("Editor", &["pro"]).await;
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 365,
                                  "features": ["pro"], "stripe_price_ids": ["price_once"]}),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let form = app
        .post("/v1/payment-forms", json!({"name": "Buy Editor", "product_id": product, "offers": [
            {"plan_id": plan.body["id"], "label": "Pro", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"}]}))
        .await;
    assert_eq!(form.status, 201, "{}", form.body);
    let path = form.body["path"].as_str().unwrap().to_owned();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let go = no_redirect
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
    let metadata: Value = recorded.lock().unwrap()[0]
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), json!(v)))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let event = json!({"id": "evt_exposure_1", "object": "event", "type": "checkout.session.completed", "created": Utc::now().timestamp(),
        "data": {"object": {"id": "cs_test_0001", "object": "checkout.session", "mode": "payment", "payment_status": "paid",
            "status": "complete", "customer": "cus_ann", "customer_details": {"email": "ann@example.com", "name": "Ann Lee"},
            "metadata": metadata, "payment_intent": "pi_exposure_1", "amount_total": 4900, "currency": "eur"}}})
    .to_string();
    let r = app
        .http
        .post(format!("{}/webhooks/stripe", app.base))
        .header(
            "stripe-signature",
            sign(STRIPE_SECRET, Utc::now().timestamp(), event.as_bytes()),
        )
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_show_keys_are_not_cached_framed_or_referred() {
    let (stripe_base, recorded) = crate::forms::stripe_server().await;
    let db = TestDb::create(&backends().remove(0)).await;
    let providers = Providers {
        stripe: Some(StripeAdapter::new(
            vec![STRIPE_SECRET.into()],
            Duration::from_secs(300),
            Some(StripeApi::new(&stripe_base, "sk_test_exposure")),
        )),
        ..Default::default()
    };
    let mut http = test_http();
    http.public_url = Some("https://shop.example".into());
    let app = spawn_with(&db, http, providers).await;
    let form = paid_form(&app, &recorded).await;

    let done = app
        .http
        .get(format!("{}{form}/done?session=cs_test_0001", app.base))
        .send()
        .await
        .unwrap();
    let headers = done.headers().clone();
    let page = done.text().await.unwrap();
    let key = app.get("/v1/licenses").await.body["data"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        crate::forms::keys_as_text(&page).contains(&key),
        "the done page shows the key"
    );
    assert_private(&headers, "the done page");
    assert_inline_code_allowed(&headers, &page);
    let form_page = app
        .http
        .get(format!("{}{form}", app.base))
        .send()
        .await
        .unwrap();
    assert_private(form_page.headers(), "the form page");

    let plan = app.get("/v1/plans").await.body["data"][0]["id"]
        .as_i64()
        .unwrap();
    let url = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "shop", "store": "generic"}),
        )
        .await;
    let sale = app
        .http
        .get(format!(
            "{}{}?order_id=O-1",
            app.base,
            url.body["path"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(sale.status(), 200);
    assert_private(sale.headers(), "a license URL's answer");
    let validated = app
        .http
        .post(format!("{}/v1/validate", app.base))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert!(
        validated.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store"),
        "a validation reply is never served from a cache"
    );
    app.stop().await;
    db.remove().await;
}

/// Runs `keyturn serve` logging everything (`trace`), drives every path that carries a secret
/// (a license URL, the Gumroad ping URL, a license looked up by key, a paid checkout and its
/// done page), and reads the whole log: none of the secrets is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_at_any_level() {
    let (stripe_base, recorded) = crate::forms::stripe_server().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gumroad = "gumroad-ping-secret-never-logged";
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("KEYTURN_DATA_DIR", dir.path())
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .env("KEYTURN_LOG", "trace")
        .env("KEYTURN_RATE_LIMIT_PER_MINUTE", "0")
        .env("KEYTURN_PUBLIC_URL", "https://shop.example")
        .env("KEYTURN_GUMROAD_PING_SECRET", gumroad)
        .env("KEYTURN_STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
        .env("KEYTURN_STRIPE_API_KEY", "sk_test_exposure")
        .env("KEYTURN_STRIPE_API_BASE", &stripe_base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all);
        all
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut admin = String::new();
    while !admin.starts_with("kt_") {
        admin.clear();
        assert!(
            stdout.read_line(&mut admin).unwrap() > 0,
            "no admin token printed"
        );
    }
    let app = crate::helpers::TestApp::attach(
        format!("http://127.0.0.1:{port}"),
        admin.trim().to_owned(),
    );

    let form = paid_form(&app, &recorded).await;
    let done = app
        .http
        .get(format!("{}{form}/done?session=cs_test_0001", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let plan = app.get("/v1/plans").await.body["data"][0]["id"]
        .as_i64()
        .unwrap();
    let patched = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/plans/{plan}"),
            Some(&app.admin),
            Some(json!({"store_product_ids": ["gumroad:gum_pro"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let url = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "shop", "store": "generic"}),
        )
        .await;
    let store_path = url.body["path"].as_str().unwrap().to_owned();
    let secret = store_path.rsplit('/').next().unwrap().to_owned();
    let sold = app
        .http
        .get(format!("{}{store_path}?order_id=O-1", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = sold.trim().to_owned();
    assert_eq!(
        app.get(&format!("/v1/licenses/by-key/{key}")).await.status,
        200
    );
    let ping = app
        .http
        .post(format!("{}/webhooks/gumroad/{gumroad}", app.base))
        .form(&[
            ("sale_id", "G1"),
            ("product_id", "gum_pro"),
            ("email", "cy@example.com"),
            ("sale_timestamp", &Utc::now().to_rfc3339()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200, "{}", ping.text().await.unwrap());

    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(
        log.contains("/l/") && log.contains("/webhooks/gumroad/") && log.contains("provider event"),
        "the log covers the requests: {log}"
    );
    for (what, secret) in [
        ("license URL secret", secret.as_str()),
        ("Gumroad ping secret", gumroad),
        ("checkout session id", "cs_test_0001"),
        ("license key", key.as_str()),
        ("admin token", app.admin.as_str()),
    ] {
        assert!(!log.contains(secret), "the {what} is in the log");
    }
}
