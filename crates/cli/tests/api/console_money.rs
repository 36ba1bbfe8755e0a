//! The console's money pages as a browser without JavaScript uses them: payments, provider
//! events with their stored payloads, retrying a failed event after its cause is fixed, a sync
//! from Stripe (localstripe), subscriptions, and the mail outbox with resend of a failed mail
//! (a real SMTP server); what roles, product limits, CSRF and escaping allow; and the sales
//! and money journeys in a real browser with axe-core.

use std::time::Duration;

use chrono::Utc;
use keyturn::config::{MailSettings, SmtpTls};
use keyturn_core::{Permission, Role};
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use serde_json::{json, Value};
use sqlx::Row;

use crate::console::{browser_tools, console_user, signed_in, Browser, PASSWORD};
use crate::console_sales::{csv_rows, keys_on, link, rows, ESCAPED, EVIL};
use crate::helpers::{backends, free_port, spawn_full, spawn_with, test_http, Backend, TestDb};
use crate::localstripe::{license_of, Localstripe};
use crate::mail::{delivered, start_sink};
use crate::stripe::{deliver, fixture, providers, world};

/// A Stripe invoice for a price no plan sells: the pipeline records it as failed.
fn unsellable(vars: &std::collections::BTreeMap<&'static str, String>, price: &str) -> String {
    fixture("09_invoice_paid_second", vars).replace("price_monthly", price)
}

/// The address of an event's page.
fn event_page(id: &str) -> String {
    format!("/admin/events/stripe/{id}")
}

/// An event fails (no plan sells its price); a retry before the cause is fixed fails again
/// and is recorded; once a plan sells the price, two retries at once apply it once; every
/// retry is in the console's audit log under the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_money_retries_a_failed_event_once_its_cause_is_fixed() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), providers().await).await;
        let w = world(&app, Utc::now().timestamp()).await;
        let r = deliver(&app, &unsellable(&w.vars, "price_unknown")).await;
        assert_eq!(r.status, 422, "{}", r.body);
        console_user(&db, "money@example.com", Role::Admin, None).await;
        console_user(&db, "support@example.com", Role::Support, None).await;
        let mut b = signed_in(&app, "money@example.com").await;

        let failed = b.get("/admin/events?provider=stripe&status=failed").await;
        assert_eq!(failed.status, 200, "{}", failed.html);
        let href = event_page("evt_invoice_paid_cy");
        assert!(failed.html.contains(&href), "{}", failed.html);
        assert!(
            failed.html.contains("price_unknown"),
            "the reason in the list"
        );
        let applied = b.get("/admin/events?status=applied").await;
        assert!(!applied.html.contains(&href));
        let page = b.get(&href).await;
        assert_eq!(page.status, 200);
        assert!(page.html.contains("Why it failed"));
        assert!(page.html.contains("no plan lists any of the purchased ids"));
        assert!(
            page.html.contains("&quot;in_cy_1&quot;"),
            "the payload, as text"
        );
        assert!(page.html.contains("Retry this event"));
        let csrf = page.csrf();
        let retry = format!("{href}/retry");
        assert_eq!(b.post(&retry, &[]).await.status, 403, "CSRF");

        // Retried before the cause is fixed: fails again, recorded.
        let r = b.post(&retry, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 303, "{}", r.html);
        assert_eq!(
            r.location.as_deref(),
            Some(format!("{href}?done=failed").as_str())
        );
        let again = b.get(r.location.as_deref().unwrap()).await;
        assert!(again.html.contains("it failed again"));
        let event = app
            .get("/v1/provider-events/stripe/evt_invoice_paid_cy")
            .await;
        assert_eq!(event.body["status"], "failed");
        assert_eq!(event.body["attempts"], 2);
        assert_eq!(app.license_count().await, 0);

        // Support may look but not retry.
        let mut support = signed_in(&app, "support@example.com").await;
        let seen = support.get(&href).await;
        assert_eq!(seen.status, 200);
        assert!(!seen.html.contains("Retry this event"));
        let theirs = support.csrf().await;
        assert_eq!(support.post(&retry, &[("csrf", &theirs)]).await.status, 403);

        // Fixed: a plan sells the price. Two retries at once apply it once.
        let monthly: i64 = w.vars["PLAN_MONTHLY"].parse().unwrap();
        let patched = app
            .patch(
                &format!("/v1/plans/{monthly}"),
                json!({"stripe_price_ids": ["price_monthly", "price_unknown"]}),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        let mut other = signed_in(&app, "money@example.com").await;
        let other_csrf = other.csrf().await;
        let mine = [("csrf", csrf.as_str())];
        let theirs = [("csrf", other_csrf.as_str())];
        let (one, two) = tokio::join!(b.post(&retry, &mine), other.post(&retry, &theirs));
        let outcomes: Vec<String> = [&one, &two]
            .iter()
            .map(|r| match r.status {
                303 => r.location.clone().unwrap(),
                s => format!("{s}: {}", r.html),
            })
            .collect();
        assert!(
            outcomes
                .iter()
                .filter(|o| o.ends_with("done=applied"))
                .count()
                == 1,
            "one retry applies it: {outcomes:?}"
        );
        for o in &outcomes {
            assert!(
                o.ends_with("done=applied")
                    || o.ends_with("done=duplicate")
                    || (o.starts_with("409") && o.contains("only a failed event is retried")),
                "{o}"
            );
        }
        assert_eq!(app.license_count().await, 1, "applied once");
        let event = app
            .get("/v1/provider-events/stripe/evt_invoice_paid_cy")
            .await;
        assert_eq!(event.body["status"], "applied");
        let shown = b.get(&format!("{href}?done=applied")).await;
        assert!(shown.html.contains("Retried: the event was applied."));
        assert!(
            !shown.html.contains("Retry this event"),
            "nothing left to retry"
        );
        let late = b.post(&retry, &[("csrf", &csrf)]).await;
        assert_eq!(late.status, 409, "{}", late.html);
        assert_eq!(app.license_count().await, 1);

        // The license is the pipeline's (audited under the event); the retries are the user's.
        let license = app.get("/v1/licenses?limit=5").await.body["data"][0].clone();
        let id = license["id"].as_i64().unwrap();
        let events = app.get(&format!("/v1/licenses/{id}/events")).await;
        assert_eq!(
            events.body["data"][0]["actor"],
            "stripe:evt_invoice_paid_cy"
        );
        let audit = rows(
            &db,
            "SELECT actor, details FROM console_events WHERE action = 'provider_event_retried' ORDER BY id",
        )
        .await;
        // The first retry, and each concurrent one that got to apply (a refused one changed
        // nothing and did nothing).
        let tried = 1 + outcomes.iter().filter(|o| o.contains("done=")).count();
        assert_eq!(audit.len(), tried, "every retry: {outcomes:?}");
        let outcomes: Vec<Value> = audit
            .iter()
            .map(|r| {
                assert_eq!(r.get::<String, _>("actor"), "user:money@example.com");
                serde_json::from_str::<Value>(&r.get::<String, _>("details")).unwrap()["outcome"]
                    .clone()
            })
            .collect();
        assert_eq!(outcomes[0], "failed");
        assert!(outcomes.contains(&json!("applied")), "{outcomes:?}");
        app.stop().await;
        db.remove().await;
    }
}

/// "Sync from Stripe" fetches what localstripe reported while no webhook arrived and shows
/// the counts; a second sync applies nothing. Without Stripe configured the page says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_money_syncs_from_stripe_and_shows_the_result() {
    for backend in backends() {
        let ls = Localstripe::start().await;
        let db = TestDb::create(&backend).await;
        let providers = Providers {
            stripe: Some(StripeAdapter::new(
                vec![crate::localstripe::SECRET.into()],
                Duration::from_secs(300),
                Some(StripeApi::new(&ls.base, crate::localstripe::KEY)),
            )),
            ..Default::default()
        };
        let app = spawn_with(&db, test_http(), providers).await;
        let product = app.product("Editor", &["pro"]).await;
        let plan = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Pro monthly", "period_days": 30,
                       "max_machines": 1, "features": ["pro"], "stripe_price_ids": ["plan_pro_m"]}),
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
        let (_, missed) = ls.subscribe("missed@example.com").await;
        let missed = missed["id"].as_str().unwrap().to_owned();

        console_user(&db, "money@example.com", Role::Admin, None).await;
        console_user(&db, "sales@example.com", Role::Sales, None).await;
        let mut b = signed_in(&app, "money@example.com").await;
        let page = b.get("/admin/sync").await;
        assert_eq!(page.status, 200);
        assert!(page.html.contains("Sync from Stripe now"));
        let csrf = page.csrf();
        let mut sales = signed_in(&app, "sales@example.com").await;
        let seen = sales.get("/admin/sync").await;
        assert!(!seen.html.contains("Sync from Stripe now"));
        let theirs = sales.csrf().await;
        assert_eq!(
            sales.post("/admin/sync", &[("csrf", &theirs)]).await.status,
            403
        );
        assert!(license_of(&app, &missed).await.is_none());
        assert_eq!(b.post("/admin/sync", &[]).await.status, 403, "CSRF");
        assert!(
            license_of(&app, &missed).await.is_none(),
            "a refused sync fetches nothing"
        );

        let r = b.post("/admin/sync", &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 303, "{}", r.html);
        let to = r.location.unwrap();
        let result = b.get(&to).await;
        assert_eq!(result.status, 200);
        assert!(result.html.contains("Sync done:"), "{}", result.html);
        let applied: usize = to
            .split("applied=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(applied >= 2, "{to}");
        assert!(result.html.contains(&format!("{applied} applied")));
        assert!(
            license_of(&app, &missed).await.is_some(),
            "the sync made the subscription's license"
        );
        let second = b.post("/admin/sync", &[("csrf", &csrf)]).await;
        assert!(
            second.location.as_deref().unwrap().contains("&applied=0&"),
            "{:?}",
            second.location
        );
        let audit = rows(
            &db,
            "SELECT actor, details FROM console_events WHERE action = 'payments_synced' ORDER BY id",
        )
        .await;
        assert_eq!(audit.len(), 2);
        assert_eq!(audit[0].get::<String, _>("actor"), "user:money@example.com");
        let subscriptions = b.get("/admin/subscriptions?provider=stripe").await;
        assert!(
            subscriptions.html.contains(&missed),
            "{}",
            subscriptions.html
        );
        app.stop().await;
        db.remove().await;

        // A server without Stripe says so, and a sync there changes nothing.
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), Providers::default()).await;
        console_user(&db, "money@example.com", Role::Admin, None).await;
        let mut b = signed_in(&app, "money@example.com").await;
        let page = b.get("/admin/sync").await;
        assert!(page
            .html
            .contains("Stripe is not configured on this server."));
        assert!(!page.html.contains("Sync from Stripe now"));
        let csrf = page.csrf();
        let r = b.post("/admin/sync", &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 409);
        assert!(r.html.contains("Stripe is not configured"));
        app.stop().await;
        db.remove().await;
    }
}

/// A key mail that the SMTP server refused shows as failed with the server's error; "resend"
/// puts it back in the queue and it goes out at once, although the sender would otherwise
/// wait an hour before trying again. A mail that went out is not resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_money_resends_a_failed_mail() {
    for backend in backends() {
        let port = free_port();
        let scratch = tempfile::tempdir().unwrap();
        let maildir = scratch.path().join("mail");
        let db = TestDb::create(&backend).await;
        let mail = MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: port,
            tls: SmtpTls::None,
            from: "licenses@editor.example".into(),
            retry_base: Duration::from_secs(3600),
            poll: Duration::from_millis(100),
            ..MailSettings::default()
        };
        let app = spawn_full(&db, test_http(), Default::default(), mail).await;
        let product = app.product("Editor", &[]).await;
        let plan = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Yearly", "period_days": 365}),
            )
            .await
            .body["id"]
            .to_string();
        console_user(&db, "sales@example.com", Role::Sales, None).await;
        console_user(&db, "money@example.com", Role::Admin, None).await;
        let mut sales = signed_in(&app, "sales@example.com").await;
        let csrf = sales.csrf().await;
        let r = sales
            .post(
                "/admin/issue",
                &[
                    ("csrf", &csrf),
                    ("plan", &plan),
                    ("quantity", "2"),
                    ("customer", "new"),
                    ("name", "Ann Lee"),
                    ("email", "ann@example.com"),
                    ("send_mail", "1"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        let keys = keys_on(&sales.get(r.location.as_deref().unwrap()).await.html);
        assert_eq!(keys.len(), 2);

        // No SMTP server listens yet: the attempt fails and the next one is an hour away.
        let mut b = signed_in(&app, "money@example.com").await;
        let mut failed = String::new();
        for _ in 0..100 {
            failed = b.get("/admin/outbox?state=failed").await.html;
            if failed.contains("ann@example.com") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(failed.contains("ann@example.com"), "{failed}");
        assert!(failed.contains("Your license key for Editor"));
        assert!(failed.contains("Resend"), "{failed}");
        let error = rows(&db, "SELECT last_error FROM mail_outbox").await[0]
            .get::<Option<String>, _>("last_error")
            .expect("the SMTP error is kept");
        assert!(!error.is_empty());
        let shown_error = error
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(failed.contains(&shown_error), "the error shows: {error}");
        for key in &keys {
            assert!(
                !failed.contains(key.as_str()),
                "the list shows no mail body"
            );
        }
        let id = rows(&db, "SELECT id FROM mail_outbox").await[0].get::<i64, _>("id");
        let resend = format!("/admin/outbox/{id}/resend");

        // Sales may not resend; without the token nobody may.
        let theirs = sales.csrf().await;
        assert_eq!(
            sales.get("/admin/outbox").await.status,
            200,
            "sales reads payments"
        );
        assert_eq!(sales.post(&resend, &[("csrf", &theirs)]).await.status, 403);
        assert_eq!(b.post(&resend, &[]).await.status, 403);

        let _sink = start_sink(port, &maildir);
        let mut listening = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                listening = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(listening, "the SMTP server started");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(delivered(&maildir).is_empty(), "not before the resend");
        let csrf = b.csrf().await;
        let r = b.post(&resend, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 303, "{}", r.html);
        let after = b.get(r.location.as_deref().unwrap()).await;
        assert!(after.html.contains("The mail is back in the queue"));
        let mut mails = Vec::new();
        for _ in 0..100 {
            mails = delivered(&maildir);
            if !mails.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(mails.len(), 1, "the resent mail arrived");
        for key in &keys {
            assert!(mails[0].contains(key.as_str()));
        }
        let mut sent = String::new();
        for _ in 0..50 {
            sent = b.get("/admin/outbox?state=sent").await.html;
            if sent.contains("ann@example.com") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(sent.contains("ann@example.com"), "{sent}");
        assert!(!sent.contains(">Resend<"));
        let again = b.post(&resend, &[("csrf", &csrf)]).await;
        assert_eq!(
            again.status, 409,
            "a sent mail is not resent: {}",
            again.html
        );
        let audit = rows(
            &db,
            "SELECT actor FROM console_events WHERE action = 'mail_requeued'",
        )
        .await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].get::<String, _>("actor"), "user:money@example.com");
        app.stop().await;
        db.remove().await;
    }
}

/// Who sees the money pages: users who may read payments without a product limit. Sales (its
/// role reads payments, for its customers' pages) sees them and changes nothing; a user
/// limited to a product is refused every one and has no link to them; read-only sees.
/// Payments and provider events filter by provider and status; payloads and reasons with
/// markup show as text; events page by keyset without gaps although they share a time.
async fn money_pages_follow_roles_limits_and_filters(backend: &Backend) {
    let db = TestDb::create(backend).await;
    let app = spawn_with(&db, test_http(), providers().await).await;
    let base = Utc::now().timestamp();
    let w = world(&app, base).await;
    let named = serde_json::to_string(&format!("N {EVIL}")).unwrap();
    let sale = fixture("01_checkout_payment", &w.vars).replace("\"Ann Lee\"", &named);
    let r = deliver(&app, &sale).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = deliver(&app, &unsellable(&w.vars, "price_<script>x")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    // Sixty ignored events at one and the same time.
    for i in 0..60 {
        let body = fixture("12_customer_created", &w.vars)
            .replace("evt_customer_created", &format!("evt_same_time_{i:02}"));
        let r = deliver(&app, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let other = app.product("Other", &[]).await;
    for (email, role, product) in [
        ("admin@example.com", Role::Admin, None),
        ("sales@example.com", Role::Sales, None),
        ("viewer@example.com", Role::ReadOnly, None),
        ("limited@example.com", Role::Sales, Some(other)),
        ("limited-admin@example.com", Role::Admin, Some(other)),
    ] {
        console_user(&db, email, role, product).await;
    }
    let pages = [
        "/admin/payments",
        "/admin/events",
        "/admin/events/stripe/evt_checkout_payment",
        "/admin/subscriptions",
        "/admin/outbox",
        "/admin/sync",
    ];
    assert!(
        Role::Sales
            .permissions()
            .contains(&Permission::PaymentsRead),
        "sales reads payments (its customers' pages show them)"
    );
    for who in [
        "admin@example.com",
        "sales@example.com",
        "viewer@example.com",
    ] {
        let mut b = signed_in(&app, who).await;
        let nav = b.get("/admin/search").await;
        assert!(nav.html.contains("href=\"/admin/payments\""), "{who}");
        for page in pages {
            let r = b.get(page).await;
            assert_eq!(r.status, 200, "{who} {page}: {}", r.html);
            if who != "admin@example.com" {
                assert!(
                    !r.html.contains("Retry this event")
                        && !r.html.contains("Sync from Stripe now")
                );
            }
        }
    }
    for who in ["limited@example.com", "limited-admin@example.com"] {
        let mut b = signed_in(&app, who).await;
        let nav = b.get("/admin/search").await;
        assert!(!nav.html.contains("href=\"/admin/payments\""), "{who}");
        for page in pages {
            let r = b.get(page).await;
            assert_eq!(r.status, 403, "{who} {page}");
            assert!(!r.html.contains("evt_"), "{who} {page}");
        }
        let csrf = b.csrf().await;
        for post in [
            "/admin/sync",
            "/admin/events/stripe/evt_invoice_paid_cy/retry",
            "/admin/outbox/1/resend",
        ] {
            assert_eq!(
                b.post(post, &[("csrf", &csrf)]).await.status,
                403,
                "{who} {post}"
            );
        }
    }

    let mut b = signed_in(&app, "admin@example.com").await;
    let payments = b.get("/admin/payments").await;
    assert!(payments.html.contains("cs_test_once"), "{}", payments.html);
    assert!(payments.html.contains("98.00 eur"));
    let customer = link(&payments.html, "/admin/customers/").expect("the buyer");
    assert!(b
        .get("/admin/payments?status=refunded")
        .await
        .html
        .contains("No payment matches"));
    assert!(b
        .get("/admin/payments?provider=paddle")
        .await
        .html
        .contains("No payment matches"));
    assert!(b
        .get("/admin/payments?provider=stripe&status=paid")
        .await
        .html
        .contains("cs_test_once"));
    assert_eq!(b.get("/admin/payments?status=lost").await.status, 422);
    let buyer = b.get(&customer).await;
    assert!(
        buyer.html.contains("cs_test_once"),
        "the customer's payments"
    );
    assert!(buyer.html.contains(&format!("N {ESCAPED}")));

    // Markup in payloads and reasons shows as text.
    for page in [
        "/admin/events?status=failed".to_owned(),
        "/admin/events/stripe/evt_invoice_paid_cy".to_owned(),
        "/admin/events/stripe/evt_checkout_payment".to_owned(),
        "/admin/payments".to_owned(),
        customer.clone(),
    ] {
        let r = b.get(&page).await;
        assert_eq!(r.status, 200, "{page}");
        assert!(
            !r.html.contains("<script>") && !r.html.contains("<img"),
            "{page}: {}",
            r.html
        );
    }
    let failed = b.get("/admin/events/stripe/evt_invoice_paid_cy").await;
    assert!(
        failed.html.contains("price_&lt;script&gt;x"),
        "{}",
        failed.html
    );
    let sale_page = b.get("/admin/events/stripe/evt_checkout_payment").await;
    assert!(sale_page.html.contains(ESCAPED), "{}", sale_page.html);

    // Keyset pages: 60 events at one time, then the others, each once.
    let mut seen = Vec::new();
    let mut next = Some("/admin/events?provider=stripe".to_owned());
    while let Some(page) = next {
        let r = b.get(&page).await;
        assert_eq!(r.status, 200, "{page}");
        seen.extend(
            r.html
                .split("href=\"/admin/events/stripe/")
                .skip(1)
                .map(|s| s[..s.find('"').unwrap()].to_owned()),
        );
        next = link(&r.html, "/admin/events?provider=stripe&");
    }
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "no event twice");
    assert_eq!(total, 62, "every event: {seen:?}");
    let typed = b.get("/admin/events?type=customer.created").await;
    assert_eq!(
        typed.html.matches("href=\"/admin/events/stripe/").count(),
        50
    );
    assert!(!typed.html.contains("evt_checkout_payment"));
    assert_eq!(b.get("/admin/events?after=garbage").await.status, 422);

    // CSV of the license list and the other lists need a session too.
    let mut anonymous = Browser::new(&app);
    for page in pages {
        assert_eq!(
            anonymous.get(page).await.location.as_deref(),
            Some("/admin/login")
        );
    }
    app.stop().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_money_pages_follow_roles_limits_and_filters() {
    for backend in backends() {
        money_pages_follow_roles_limits_and_filters(&backend).await;
    }
}

/// Sales issues licenses for a new customer and downloads their CSV; a money user finds the
/// failed event, retries it once its cause is fixed, and opens the outbox with the failed key
/// mail — in Chromium, at desktop and phone sizes, axe-core on every page, screenshots kept in
/// target/tmp/console-screenshots/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sales_and_money_journeys_in_a_real_browser() {
    let (chromium, node_dir) = match browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let db = TestDb::create(&Backend::Sqlite).await;
    let mail = MailSettings {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port: free_port(),
        tls: SmtpTls::None,
        from: "licenses@editor.example".into(),
        retry_base: Duration::from_secs(3600),
        poll: Duration::from_millis(100),
        ..MailSettings::default()
    };
    let app = spawn_full(&db, test_http(), providers().await, mail).await;
    let w = world(&app, Utc::now().timestamp()).await;
    assert_eq!(
        deliver(&app, &fixture("01_checkout_payment", &w.vars))
            .await
            .status,
        200
    );
    let r = deliver(&app, &unsellable(&w.vars, "price_unknown")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let monthly: i64 = w.vars["PLAN_MONTHLY"].parse().unwrap();
    app.patch(
        &format!("/v1/plans/{monthly}"),
        json!({"stripe_price_ids": ["price_monthly", "price_unknown"]}),
    )
    .await;
    console_user(&db, "sales@example.com", Role::Sales, None).await;
    console_user(&db, "money@example.com", Role::Admin, None).await;

    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = format!(
        "{}/tests/browser/console-money.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(&script, node_dir.join("console-money.mjs")).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("console-money.mjs")
        .current_dir(&node_dir)
        .env("BASE", &app.base)
        .env("SALES", "sales@example.com")
        .env("MONEY", "money@example.com")
        .env("PASSWORD", PASSWORD)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser run ends within 5 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("the script's report");
    let keys = report["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3, "{report}");
    let csv = csv_rows(report["csv"].as_str().unwrap());
    assert_eq!(csv.len(), 4, "the customer's three licenses: {csv:?}");
    for key in keys {
        assert!(
            csv.iter().any(|r| r[1] == key.as_str().unwrap()),
            "{key} in the CSV"
        );
    }
    assert_eq!(report["retried"], true);
    assert_eq!(report["outboxFailed"], true);
    assert_eq!(
        app.license_count().await,
        2 + 1 + 3,
        "the sale's two, the retried one, three issued"
    );
    let pages = report["pages"].as_array().unwrap();
    assert!(pages.len() >= 20, "{report}");
    for page in pages {
        assert_eq!(
            page["serious"], 0,
            "serious or critical accessibility violations on {} ({}): {}",
            page["name"], page["size"], page["violations"]
        );
        assert_eq!(
            page["overflow"], false,
            "{} ({}) is wider than the window",
            page["name"], page["size"]
        );
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
    let event = app
        .get("/v1/provider-events/stripe/evt_invoice_paid_cy")
        .await;
    assert_eq!(event.body["status"], "applied");
    app.stop().await;
    db.remove().await;
}
