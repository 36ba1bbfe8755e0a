//! The seller's branding on the buy pages, the portal and in mails; products' own mail
//! templates; reminder mails from the sweep. Real server, real SMTP server (aiosmtpd), every
//! mail parsed by Python's `email` package as a mail program would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyturn::config::{MailSettings, SmtpTls};
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use reqwest::Method;
use serde_json::{json, Value};

use crate::console::run_browser_script;
use crate::helpers::{backends, spawn_full, test_http, test_python, TestApp, TestDb};
use crate::mail::start_sink;

/// A received mail as a mail program reads it: subject, top-level type, and each part's
/// type with its decoded text.
#[derive(Debug)]
struct Received {
    subject: String,
    to: String,
    kind: String,
    parts: Vec<(String, String)>,
}

impl Received {
    fn part(&self, kind: &str) -> &str {
        self.parts
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no {kind} part in {self:?}"))
    }
}

const PARSE: &str = r#"
import email, email.policy, json, os, sys
out = []
d = os.path.join(sys.argv[1], "new")
for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
    with open(os.path.join(d, name), "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    parts = [[p.get_content_type(), p.get_content()] for p in m.walk() if not p.is_multipart()]
    out.append({"subject": str(m["subject"]), "to": str(m["to"]), "kind": m.get_content_type(), "parts": parts})
print(json.dumps(out))
"#;

fn received(maildir: &Path) -> Vec<Received> {
    let out = std::process::Command::new(test_python())
        .args(["-c", PARSE])
        .arg(maildir)
        .output()
        .expect("python parses the mails");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.iter()
        .map(|m| Received {
            subject: m["subject"].as_str().unwrap().to_owned(),
            to: m["to"].as_str().unwrap().to_owned(),
            kind: m["kind"].as_str().unwrap().to_owned(),
            parts: m["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Waits until `done` holds for the mails received, up to 15 seconds.
async fn wait_for(maildir: &Path, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    for _ in 0..150 {
        let mails = received(maildir);
        if done(&mails) {
            return mails;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mails never arrived: {:?}", received(maildir));
}

struct Sink {
    _sink: crate::mail::SmtpSink,
    _scratch: tempfile::TempDir,
    maildir: PathBuf,
    settings: MailSettings,
}

fn sink() -> Sink {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = tempfile::tempdir().unwrap();
    let maildir = scratch.path().join("mail");
    Sink {
        _sink: start_sink(port, &maildir),
        _scratch: scratch,
        maildir,
        settings: MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: port,
            tls: SmtpTls::None,
            from: "licenses@acme.example".into(),
            retry_base: Duration::from_millis(200),
            poll: Duration::from_millis(100),
            reminders: Duration::from_millis(200),
            ..MailSettings::default()
        },
    }
}

fn branding() -> Value {
    json!({
        "display_name": "Acme <Tools>",
        "logo_url": "https://cdn.acme.example/logo.png",
        "accent": "#FFCC00",
        "support_email": "help@acme.example",
        "terms_url": "https://acme.example/terms",
        "privacy_url": "https://acme.example/privacy",
        "refund_url": "https://acme.example/refunds"
    })
}

async fn put(app: &TestApp, path: &str, body: Value) -> crate::helpers::Resp {
    app.call(Method::PUT, path, Some(&app.admin), Some(body))
        .await
}

async fn text(app: &TestApp, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let headers = r.headers().clone();
    (r.status().as_u16(), r.text().await.unwrap(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branding_is_checked_and_shown_on_the_buy_and_portal_pages() {
    let (stripe_base, _) = crate::forms::stripe_server().await;
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec!["whsec_branding".into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&stripe_base, "sk_test_branding")),
            )),
            ..Default::default()
        };
        let app = crate::forms::spawn_public(&db, providers, MailSettings::default()).await;

        // Before any branding: an empty name, nothing else.
        let none = app.get("/v1/branding").await;
        assert_eq!(none.status, 200, "{}", none.body);
        assert_eq!(none.body["display_name"], "");

        // What the API refuses, each with the field to fix.
        for (field, value) in [
            ("accent", json!("#12345")),
            ("accent", json!("yellow")),
            ("logo_url", json!("http://cdn.acme.example/logo.png")),
            ("terms_url", json!("javascript:alert(1)")),
            ("support_email", json!("nobody")),
            ("display_name", json!("  ")),
        ] {
            let mut body = branding();
            body[field] = value;
            let r = put(&app, "/v1/branding", body).await;
            assert_eq!(r.status, 422, "{field}: {}", r.body);
            assert_eq!(r.code(), "invalid_input");
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(field),
                "{}",
                r.body
            );
        }
        // Only an unrestricted admin changes it.
        let reader = app
            .post(
                "/v1/tokens",
                json!({"name": "reader", "permissions": ["products:read", "products:write"]}),
            )
            .await;
        let reader = reader.body["token"].as_str().unwrap().to_owned();
        let refused = app
            .call(Method::PUT, "/v1/branding", Some(&reader), Some(branding()))
            .await;
        assert_eq!(refused.status, 403);
        let refused = app
            .call(Method::GET, "/v1/branding", Some(&reader), None)
            .await;
        assert_eq!(refused.status, 403);

        let saved = put(&app, "/v1/branding", branding()).await;
        assert_eq!(saved.status, 200, "{}", saved.body);
        assert_eq!(saved.body["accent"], "#ffcc00", "normalised");
        assert_eq!(app.get("/v1/branding").await.body, saved.body);

        // A form with a description and a tax note, both with markup that must stay text.
        let product = app.product("Editor Pro", &[]).await;
        let plan = app
            .post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "stripe_price_ids": ["price_pro"]}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let too_long = app
            .post("/v1/payment-forms", json!({"name": "Buy", "product_id": product, "tax_note": "a\nb",
                "offers": [{"plan_id": plan, "label": "Pro", "price": "€49", "stripe_price_id": "price_pro", "mode": "payment"}]}))
            .await;
        assert_eq!(too_long.status, 422, "{}", too_long.body);
        let form = app
            .post("/v1/payment-forms", json!({"name": "Buy <Editor>", "product_id": product,
                "description": "Edit <b>fast</b>.\nEvery feature included.",
                "tax_note": "Prices include VAT & fees",
                "offers": [{"plan_id": plan, "label": "Pro — one year", "price": "€49", "stripe_price_id": "price_pro", "mode": "payment"}]}))
            .await;
        assert_eq!(form.status, 201, "{}", form.body);
        assert_eq!(form.body["tax_note"], "Prices include VAT & fees");
        let path = form.body["path"].as_str().unwrap().to_owned();
        let (status, html, headers) = text(&app, &path).await;
        assert_eq!(status, 200);
        for shown in [
            "Buy &lt;Editor&gt;",
            "Acme &lt;Tools&gt;",
            "Edit &lt;b&gt;fast&lt;/b&gt;.\nEvery feature included.",
            "Prices include VAT &amp; fees",
            "€49",
            "Pro — one year",
            "processed securely by Stripe",
            "src=\"https://cdn.acme.example/logo.png\" alt=\"Acme &lt;Tools&gt;\"",
            "href=\"mailto:help@acme.example\"",
            "href=\"https://acme.example/terms\">Terms",
            "href=\"https://acme.example/privacy\">Privacy",
            "href=\"https://acme.example/refunds\">Refunds",
            "background:#ffcc00;color:#111111",
        ] {
            assert!(html.contains(shown), "{shown} missing from {html}");
        }
        assert!(
            !html.contains("<b>fast") && !html.contains("<Tools>") && !html.contains("<Editor>")
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("img-src https:") && csp.contains("script-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");

        // The portal's pages carry the same branding.
        let (status, signin, headers) = text(&app, "/portal/sign-in").await;
        assert_eq!(status, 200);
        for shown in [
            "alt=\"Acme &lt;Tools&gt;\"",
            "href=\"/portal/brand.css\"",
            "href=\"mailto:help@acme.example\"",
            "href=\"https://acme.example/refunds\"",
        ] {
            assert!(signin.contains(shown), "{shown} missing from {signin}");
        }
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("img-src 'self' https:"));
        let (_, css, _) = text(&app, "/portal/brand.css").await;
        assert!(
            css.contains("header.top{background:#ffcc00;color:#111111}"),
            "{css}"
        );
        assert!(
            css.contains("--accent:#1d4ed8"),
            "yellow is unreadable as link text: {css}"
        );
        app.stop().await;
        db.remove().await;
    }
}

/// A product and a one-time store integration that mails its buyers: (product, plan, path).
async fn shop(app: &TestApp, reminder: Option<i64>) -> (i64, i64, String) {
    let product = app.product("Editor Pro", &[]).await;
    let mut plan = json!({"product_id": product, "name": "Pro", "period_days": 5});
    if let Some(days) = reminder {
        plan["expiry_reminder_days"] = json!(days);
    }
    let plan = app.post("/v1/plans", plan).await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    assert_eq!(plan.body["expiry_reminder_days"], json!(reminder));
    let plan = plan.body["id"].as_i64().unwrap();
    let url = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "shop", "store": "sendowl", "email_buyer": true}),
        )
        .await
        .body["path"]
        .as_str()
        .unwrap()
        .to_owned();
    (product, plan, url)
}

async fn sell(app: &TestApp, url: &str, order: &str, name: &str, email: &str) -> String {
    let sale = app
        .http
        .get(format!("{}{url}", app.base))
        .query(&[
            ("order_id", order),
            ("buyer_name", name),
            ("buyer_email", email),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(sale.status(), 200);
    sale.text().await.unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mails_are_branded_multipart_overridable_and_reminders_go_once() {
    for backend in backends() {
        let sink = sink();
        let db = TestDb::create(&backend).await;
        let app = spawn_full(&db, test_http(), Default::default(), sink.settings.clone()).await;
        assert_eq!(put(&app, "/v1/branding", branding()).await.status, 200);
        let (product, plan, url) = shop(&app, Some(7)).await;
        let wrong = app
            .patch(
                &format!("/v1/plans/{plan}"),
                json!({"expiry_reminder_days": 400}),
            )
            .await;
        assert_eq!(wrong.status, 422, "{}", wrong.body);

        // The key mail: text and HTML, both with the key and the branding.
        let key = sell(&app, &url, "SO-1", "Ann <Lee>", "ann@example.com").await;
        let mails = wait_for(&sink.maildir, |m| m.len() >= 2).await;
        let keymail = mails
            .iter()
            .find(|m| m.subject == "Your license key for Editor Pro")
            .unwrap_or_else(|| panic!("{mails:?}"));
        assert_eq!(keymail.kind, "multipart/alternative");
        assert_eq!(keymail.to, "ann@example.com");
        let (plain, html) = (keymail.part("text/plain"), keymail.part("text/html"));
        assert!(
            plain.contains(&key) && plain.contains("Hello Ann <Lee>,"),
            "{plain}"
        );
        assert!(
            plain.contains("Acme <Tools>") && plain.contains("help@acme.example"),
            "{plain}"
        );
        assert!(
            plain.contains("Terms: https://acme.example/terms"),
            "{plain}"
        );
        assert!(html.contains(&key), "{html}");
        assert!(
            html.contains("Hello Ann &lt;Lee&gt;,") && !html.contains("<Lee>"),
            "{html}"
        );
        assert!(
            html.contains("src=\"https://cdn.acme.example/logo.png\""),
            "{html}"
        );
        assert!(html.contains("background:#ffcc00;color:#111111"), "{html}");
        assert!(
            html.contains("href=\"https://acme.example/privacy\""),
            "{html}"
        );

        // The license runs 5 days and its plan reminds 7 days ahead: one reminder, however
        // many sweeps pass.
        let reminder = |m: &Received| m.subject == "Your license for Editor Pro expires in 5 days";
        wait_for(&sink.maildir, |m| m.iter().any(reminder)).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mails = received(&sink.maildir);
        let reminders: Vec<&Received> = mails.iter().filter(|m| reminder(m)).collect();
        assert_eq!(reminders.len(), 1, "{mails:?}");
        let r = reminders[0];
        assert_eq!(r.kind, "multipart/alternative");
        assert!(r.part("text/plain").contains(&key), "{r:?}");
        assert!(r.part("text/html").contains("Acme &lt;Tools&gt;"), "{r:?}");

        // The product's own key mail: placeholders it does not know are refused.
        let tpl = format!("/v1/products/{product}/mail-templates/key_delivered");
        let default = app.get(&tpl).await;
        assert_eq!(default.status, 200, "{}", default.body);
        assert_eq!(default.body["custom"], false);
        let bad = put(
            &app,
            &tpl,
            json!({"subject": "Keys", "text": "{{key}} {{secret}}", "html": "{{key}}"}),
        )
        .await;
        assert_eq!(bad.status, 422, "{}", bad.body);
        assert_eq!(
            app.get(&format!("/v1/products/{product}/mail-templates/nope"))
                .await
                .status,
            404
        );
        let own = put(
            &app,
            &tpl,
            json!({
                "subject": "Keys for {{product}} from {{seller}}",
                "text": "Dear {{name}}, here: {{key}}",
                "html": "<p class=\"own\">Dear {{name}}, here: <b>{{key}}</b></p>"
            }),
        )
        .await;
        assert_eq!(own.status, 200, "{}", own.body);
        assert_eq!(app.get(&tpl).await.body["custom"], true);
        let key2 = sell(&app, &url, "SO-2", "Bo <script>", "bo@example.com").await;
        let mails = wait_for(&sink.maildir, |m| {
            m.iter()
                .any(|m| m.to == "bo@example.com" && m.subject.starts_with("Keys"))
        })
        .await;
        let bo = mails
            .iter()
            .find(|m| m.to == "bo@example.com" && m.subject.starts_with("Keys"))
            .unwrap();
        assert_eq!(bo.subject, "Keys for Editor Pro from Acme <Tools>");
        assert!(bo
            .part("text/plain")
            .contains(&format!("Dear Bo <script>, here: {key2}")));
        let html = bo.part("text/html");
        assert!(
            html.contains(&format!(
                "<p class=\"own\">Dear Bo &lt;script&gt;, here: <b>{key2}</b></p>"
            )),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        // Back to the default.
        let reset = app.delete(&tpl).await;
        assert_eq!(reset.status, 204);
        assert_eq!(app.get(&tpl).await.body["custom"], false);
        app.stop().await;
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_and_a_cancellation_are_mailed_once() {
    for backend in backends() {
        let sink = sink();
        let db = TestDb::create(&backend).await;
        let app = spawn_full(
            &db,
            test_http(),
            crate::stripe::providers().await,
            sink.settings.clone(),
        )
        .await;
        assert_eq!(put(&app, "/v1/branding", branding()).await.status, 200);
        let w = crate::stripe::world(&app, chrono::Utc::now().timestamp()).await;
        for name in [
            "02_checkout_subscription",
            "03_invoice_paid_create",
            "06_invoice_payment_failed",
        ] {
            let r = crate::stripe::deliver(&app, &crate::stripe::fixture(name, &w.vars)).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
        }
        let failed = |m: &Received| m.subject.contains("did not go through");
        let mails = wait_for(&sink.maildir, |m| m.iter().any(failed)).await;
        let mail = mails.iter().find(|m| failed(m)).unwrap();
        assert_eq!(mail.to, "bo@example.com");
        assert_eq!(mail.kind, "multipart/alternative");
        assert!(mail.part("text/html").contains("Acme &lt;Tools&gt;"));
        // Stripe reports the same failed invoice again (its retry, a new event): no second mail.
        let again = crate::stripe::fixture("06_invoice_payment_failed", &w.vars)
            .replace("evt_invoice_failed", "evt_invoice_failed_retry");
        assert_eq!(crate::stripe::deliver(&app, &again).await.status, 200);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mails = received(&sink.maildir);
        assert_eq!(mails.iter().filter(|m| failed(m)).count(), 1, "{mails:?}");

        // The subscription is cancelled: its customer hears of it once.
        let deleted = crate::stripe::fixture("11_subscription_deleted", &w.vars);
        assert_eq!(crate::stripe::deliver(&app, &deleted).await.status, 200);
        let cancelled = |m: &Received| m.subject == "Your subscription for Editor was cancelled";
        wait_for(&sink.maildir, |m| m.iter().any(cancelled)).await;
        let again = deleted.replace("evt_subscription_deleted", "evt_subscription_deleted_again");
        assert_eq!(crate::stripe::deliver(&app, &again).await.status, 200);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mails = received(&sink.maildir);
        let told: Vec<&Received> = mails.iter().filter(|m| cancelled(m)).collect();
        assert_eq!(told.len(), 1, "{mails:?}");
        assert_eq!(told[0].to, "bo@example.com");
        assert!(
            told[0].part("text/plain").contains("was cancelled"),
            "{told:?}"
        );
        app.stop().await;
        db.remove().await;
    }
}

/// The buy page, the done page and the portal's sign-in page in Chromium at desktop and
/// phone size with the branding: axe-core finds no serious or critical violation, nothing is
/// wider than the screen, and on the phone the key wraps between its groups, never inside
/// one. Screenshots are kept under the target directory (`branding-screenshots`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branded_pages_in_a_real_browser() {
    let (chromium, node_dir) = match crate::console::browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let backend = backends().remove(0);
    let db = TestDb::create(&backend).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let (stripe_base, _) = crate::forms::checkout_server(base.clone()).await;
    let providers = Providers {
        stripe: Some(StripeAdapter::new(
            vec![crate::forms::SECRET.into()],
            Duration::from_secs(300),
            Some(StripeApi::new(&stripe_base, "sk_test_branding")),
        )),
        ..Default::default()
    };
    let http = keyturn_http::HttpSettings {
        public_url: Some(base.clone()),
        ..test_http()
    };
    let app = crate::helpers::spawn_on(&db, http, providers, MailSettings::default(), port).await;
    assert_eq!(put(&app, "/v1/branding", branding()).await.status, 200);
    let product = app.product("Editor Pro", &[]).await;
    let plan = app
        .post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "stripe_price_ids": ["price_once"]}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let form = app
        .post("/v1/payment-forms", json!({"name": "Editor Pro", "product_id": product,
            "description": "The editor for people who write every day.\nOne license, two machines, a year of updates.",
            "tax_note": "Prices include VAT.",
            "offers": [{"plan_id": plan, "label": "Pro — one year", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"}]}))
        .await;
    assert_eq!(form.status, 201, "{}", form.body);
    let url = format!("{base}{}", form.body["path"].as_str().unwrap());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("branding-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let report = run_browser_script(
        &node_dir,
        "branding.mjs",
        &[
            ("BASE", &base),
            ("FORM_URL", &url),
            ("SHOTS", &shots),
            ("CHROMIUM", &chromium),
        ],
    )
    .await;
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 6, "{report}");
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
    for shown in report["keys"].as_array().unwrap() {
        let key = shown["key"].as_str().unwrap();
        assert_eq!(
            app.get(&format!("/v1/licenses/by-key/{key}")).await.status,
            200,
            "{shown}"
        );
        let groups = shown["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 4, "{shown}");
        for g in groups {
            assert_eq!(g["boxes"], 1, "a group of the key was broken: {shown}");
        }
        if shown["size"] == "phone" {
            assert!(
                shown["lines"].as_u64().unwrap() > 1,
                "on the phone the key wraps, between groups: {shown}"
            );
        }
    }
    app.stop().await;
    db.remove().await;
}

fn pairs<'a>(f: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    f.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The console's branding page and mail template editor: an owner saves the branding and a
/// product's own mail, previews a draft (served sandboxed, values escaped); support staff see
/// neither page's forms work for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_edits_branding_and_mail_templates() {
    use keyturn_core::Role;
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = crate::helpers::spawn(&db, test_http()).await;
        let product = app.product("Editor <Pro>", &[]).await;
        crate::console::console_user(&db, "owner@example.com", Role::Owner, None).await;
        crate::console::console_user(&db, "support@example.com", Role::Support, None).await;
        let mut owner = crate::console::signed_in(&app, "owner@example.com").await;

        let page = owner.get("/admin/branding").await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(
            page.html.contains("href=\"/admin/branding\""),
            "in the navigation"
        );
        let csrf = page.csrf();
        let bad = owner
            .post(
                "/admin/branding",
                &[
                    ("csrf", &csrf),
                    ("display_name", "Acme"),
                    ("accent", "#zzzzzz"),
                ],
            )
            .await;
        assert_eq!(bad.status, 422, "{}", bad.html);
        assert!(bad.html.contains("accent"), "{}", bad.html);
        let saved = owner
            .post(
                "/admin/branding",
                &[
                    ("csrf", &csrf),
                    ("display_name", "Acme <Tools>"),
                    ("accent", "#123456"),
                    ("logo_url", ""),
                    ("support_email", "help@acme.example"),
                    ("terms_url", "https://acme.example/terms"),
                ],
            )
            .await;
        assert_eq!(saved.status, 303, "{}", saved.html);
        assert_eq!(
            saved.location.as_deref(),
            Some("/admin/branding?done=saved")
        );
        let b = app.get("/v1/branding").await.body;
        assert_eq!(b["display_name"], "Acme <Tools>");
        assert_eq!(b["logo_url"], Value::Null, "blank is none");
        let page = owner.get("/admin/branding?done=saved").await;
        assert!(
            page.html.contains("value=\"Acme &lt;Tools&gt;\""),
            "{}",
            page.html
        );
        let editor = format!("/admin/products/{product}/mails/expiring");
        assert!(
            page.html.contains(&format!("href=\"{editor}\"")),
            "{}",
            page.html
        );

        let page = owner.get(&editor).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("Editor &lt;Pro&gt;") && page.html.contains("{{days}}"));
        assert_eq!(
            owner
                .get(&format!("/admin/products/{product}/mails/sign_in_link"))
                .await
                .status,
            404
        );
        let text = "{{name}}: {{key}} ends {{expires}}";
        let html = "<p class=\"own\">{{name}}: {{key}}</p>";
        let fields = |subject: &'static str| {
            [
                ("csrf", csrf.clone()),
                ("subject", subject.into()),
                ("text", text.into()),
                ("html", html.into()),
            ]
        };
        let as_refs =
            |f: &[(&'static str, String); 4]| -> Vec<(&'static str, String)> { f.to_vec() };
        let preview = owner
            .post(
                &format!("{editor}/preview"),
                &pairs(&as_refs(&fields("Soon: {{product}}"))),
            )
            .await;
        assert_eq!(preview.status, 200, "{}", preview.html);
        let csp = preview.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("sandbox;") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        assert!(
            preview
                .html
                .contains("<p class=\"own\">Ann Lee: ABCDE-FGHIJ-KLMNO-PQRST</p>"),
            "{}",
            preview.html
        );
        assert!(
            preview.html.contains("Soon: Editor Pro") && preview.html.contains("ends 2030-01-31")
        );
        assert!(
            preview.html.contains("background:#123456;color:#ffffff"),
            "{}",
            preview.html
        );
        let wrong = owner
            .post(
                &format!("{editor}/preview"),
                &pairs(&as_refs(&fields("{{password}}"))),
            )
            .await;
        assert_eq!(wrong.status, 422, "{}", wrong.html);

        let saved = owner
            .post(&editor, &pairs(&as_refs(&fields("Soon: {{product}}"))))
            .await;
        assert_eq!(saved.status, 303, "{}", saved.html);
        let t = app
            .get(&format!("/v1/products/{product}/mail-templates/expiring"))
            .await
            .body;
        assert_eq!(t["custom"], true);
        assert_eq!(t["subject"], "Soon: {{product}}");
        let reset = owner
            .post(&format!("{editor}/reset"), &[("csrf", &csrf)])
            .await;
        assert_eq!(reset.status, 303);
        let t = app
            .get(&format!("/v1/products/{product}/mail-templates/expiring"))
            .await
            .body;
        assert_eq!(t["custom"], false);

        // Support staff: no branding page, no template changes, and no form without CSRF.
        let mut support = crate::console::signed_in(&app, "support@example.com").await;
        let csrf = support.csrf().await;
        assert!(!support
            .get("/admin/search")
            .await
            .html
            .contains("href=\"/admin/branding\""));
        assert_eq!(support.get("/admin/branding").await.status, 403);
        let refused = support
            .post(
                "/admin/branding",
                &[("csrf", &csrf), ("display_name", "Mine")],
            )
            .await;
        assert_eq!(refused.status, 403);
        let forged = owner
            .post("/admin/branding", &[("display_name", "Forged")])
            .await;
        assert_eq!(forged.status, 403);
        assert_eq!(
            app.get("/v1/branding").await.body["display_name"],
            "Acme <Tools>"
        );
        app.stop().await;
        db.remove().await;
    }
}
