//! The console's webhook pages as a browser without JavaScript uses them, against a real HTTP
//! receiver in this process (the one `webhooks_out` checks signatures with): an endpoint made
//! through the form shows its secret once, a delivery that fails then succeeds shows both
//! attempts in the log, retries and test events are delivered, settings, rotation and deletion
//! work, every change is audited under the user; CSRF, roles and escaping hold. And the pages
//! in a real browser with axe-core.

use std::time::Duration;

use keyturn_core::Role;
use serde_json::json;
use sqlx::Row;

use crate::console::{browser_tools, console_user, run_browser_script, signed_in, Page, PASSWORD};
use crate::console_sales::{rows, ESCAPED, EVIL};
use crate::helpers::{backends, spawn_settings, Backend, TestDb};
use crate::webhooks_out::{fast_webhooks, settings, until, Mode, Receiver};

/// The signing secret a page shows, if it shows one.
fn shown_secret(page: &Page) -> Option<String> {
    let at = page.html.find("whsec_")?;
    let rest = &page.html[at..];
    Some(rest[..rest.find('<').unwrap_or(rest.len())].to_owned())
}

/// How many times the receiver answered 200 to event `id`.
fn answered(receiver: &Receiver, id: &str) -> usize {
    receiver.delivered().iter().filter(|g| g.id == id).count()
}

/// An endpoint made through the console, with its secret shown once; a license's event fails
/// once and then arrives, and the log shows both attempts; a retry and a test event arrive;
/// the filtered log, settings, enable/disable, rotation, "retry failed since" and deletion
/// work; CSRF is required; a support user sees no webhooks at all; URL and description show
/// as text; every change is in the audit log under the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_webhooks_manage_endpoints_and_show_deliveries() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_settings(&settings(&db, fast_webhooks())).await;
        let receiver = Receiver::start(Mode::FailFirst(1)).await;
        console_user(&db, "hooks@example.com", Role::Admin, None).await;
        console_user(&db, "support@example.com", Role::Support, None).await;
        let mut b = signed_in(&app, "hooks@example.com").await;

        let list = b.get("/admin/webhooks").await;
        assert_eq!(list.status, 200, "{}", list.html);
        assert!(list.html.contains("href=\"/admin/webhooks\""), "nav entry");
        assert!(list.html.contains("No endpoint yet."));
        let form = b.get("/admin/webhooks/new").await;
        assert_eq!(form.status, 200, "{}", form.html);
        let csrf = form.csrf();

        // A URL and a description that try to be markup.
        let url = format!("{}?a=1&b=<script>x</script>", receiver.url);
        let description = format!("Orders {EVIL}");
        let mut fields = vec![
            ("url", url.as_str()),
            ("description", description.as_str()),
            ("events", "license.*, customer.created"),
            ("product_id", ""),
        ];
        let refused = b.post("/admin/webhooks", &fields).await;
        assert_eq!(refused.status, 403, "CSRF: {}", refused.html);
        let none = app.get("/v1/webhook-endpoints").await;
        assert_eq!(none.body["data"], json!([]), "a refused form makes nothing");
        fields.push(("csrf", &csrf));
        let made = b.post("/admin/webhooks", &fields).await;
        assert_eq!(made.status, 303, "{}", made.html);
        let location = made.location.clone().unwrap();
        assert!(location.ends_with("?done=created"), "{location}");
        assert!(
            !location.contains("whsec_"),
            "the secret never goes in a URL"
        );
        let id: i64 = location
            .trim_start_matches("/admin/webhooks/")
            .trim_end_matches("?done=created")
            .parse()
            .unwrap();
        let page = b.get(&location).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("Endpoint created."));
        assert!(page.html.contains("shown only this once"));
        let secret = shown_secret(&page).expect("the new secret, once");
        receiver.trust(&secret);
        assert!(!page.html.contains(EVIL), "no markup from the description");
        assert!(page.html.contains(ESCAPED), "the description as text");
        assert!(
            page.html.contains("?a=1&amp;b=%3Cscript%3Ex%3C/script%3E"),
            "the URL as text: {}",
            page.html
        );
        assert!(!page.html.contains("<script>x"));
        let again = b.get(&format!("/admin/webhooks/{id}")).await;
        assert_eq!(shown_secret(&again), None, "shown once only");
        let listed = b.get("/admin/webhooks").await;
        assert!(listed
            .html
            .contains(&format!("href=\"/admin/webhooks/{id}\"")));
        assert!(listed.html.contains("license.*, customer.created"));
        assert!(!listed.html.contains(EVIL));

        // A license's event: the receiver fails its first attempt, then takes it.
        let product = app.product("Editor", &[]).await;
        let license = app.license(json!({"product_id": product})).await;
        let license_id = license["id"].as_i64().unwrap();
        assert!(
            until(Duration::from_secs(20), || receiver
                .delivered()
                .iter()
                .any(|g| g.event_type == "license.created"))
            .await,
            "the event arrives after a failed attempt: {:?}",
            receiver.got()
        );
        let event = receiver
            .delivered()
            .into_iter()
            .find(|g| g.event_type == "license.created")
            .unwrap()
            .id;
        let deliveries = app
            .get(&format!("/v1/webhook-endpoints/{id}/deliveries"))
            .await;
        let delivery = deliveries.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["event_id"] == event.as_str())
            .cloned()
            .unwrap();
        let delivery_id = delivery["id"].as_i64().unwrap();
        let mut log = b.get(&format!("/admin/webhooks/{id}")).await;
        for _ in 0..50 {
            if log.html.contains("badge hook-delivered") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            log = b.get(&format!("/admin/webhooks/{id}")).await;
        }
        assert!(log.html.contains("badge hook-delivered"), "{}", log.html);
        assert!(log.html.contains(&event));
        assert!(log.html.contains("HTTP 200"));
        assert!(
            log.html.contains("<code>thanks</code>"),
            "the answer's first bytes"
        );
        assert!(log.html.contains(" ms</td>"), "latency");
        let failed_only = b.get(&format!("/admin/webhooks/{id}?state=failed")).await;
        assert!(failed_only.html.contains("No delivery matches."));
        let delivered_only = b
            .get(&format!("/admin/webhooks/{id}?state=delivered"))
            .await;
        assert!(delivered_only.html.contains(&event));
        let bad_filter = b.get(&format!("/admin/webhooks/{id}?state=lost")).await;
        assert_eq!(bad_filter.status, 422);
        let attempts = b
            .get(&format!("/admin/webhooks/deliveries/{delivery_id}"))
            .await;
        assert_eq!(attempts.status, 200, "{}", attempts.html);
        assert!(attempts.html.contains("HTTP 500"), "{}", attempts.html);
        assert!(attempts.html.contains("failing on purpose"));
        assert!(attempts.html.contains("HTTP 200"));
        assert!(attempts
            .html
            .contains(&format!("/admin/licenses/{license_id}")));

        // Retry of one delivery: sent again, same event id.
        let csrf = attempts.csrf();
        let retry = format!("/admin/webhooks/deliveries/{delivery_id}/retry");
        assert_eq!(b.post(&retry, &[]).await.status, 403, "CSRF");
        let r = b.post(&retry, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 303, "{}", r.html);
        assert_eq!(
            r.location.as_deref(),
            Some(format!("/admin/webhooks/deliveries/{delivery_id}?done=retried").as_str())
        );
        assert!(
            until(Duration::from_secs(20), || answered(&receiver, &event) == 2).await,
            "the retry arrives: {:?}",
            receiver.got()
        );

        // A test event, through the form.
        let r = b
            .post(&format!("/admin/webhooks/{id}/test"), &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        assert!(r.location.as_deref().unwrap().ends_with("?done=test"));
        assert!(
            until(Duration::from_secs(20), || receiver
                .delivered()
                .iter()
                .any(|g| g.event_type == "webhook.test"))
            .await,
            "the test event arrives"
        );

        // Retry everything that failed for good in the last hour: nothing did.
        let since = (chrono::Utc::now() - chrono::Duration::hours(1))
            .format("%Y-%m-%dT%H:%M")
            .to_string();
        let r = b
            .post(
                &format!("/admin/webhooks/{id}/retry-failed"),
                &[("csrf", &csrf), ("since", &since)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        let shown = b.get(r.location.as_deref().unwrap()).await;
        assert!(shown.html.contains("0 failed deliveries are due again."));
        let bad = b
            .post(
                &format!("/admin/webhooks/{id}/retry-failed"),
                &[("csrf", &csrf), ("since", "yesterday")],
            )
            .await;
        assert_eq!(bad.status, 422);

        // Settings, pause and resume.
        let r = b
            .post(
                &format!("/admin/webhooks/{id}"),
                &[
                    ("csrf", &csrf),
                    ("url", &receiver.url),
                    ("description", "Orders"),
                    ("events", "*"),
                    ("product_id", &product.to_string()),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        let saved = app.get(&format!("/v1/webhook-endpoints/{id}")).await;
        assert_eq!(saved.body["events"], json!(["*"]));
        assert_eq!(saved.body["product_id"], product);
        assert_eq!(saved.body["url"], receiver.url.as_str());
        let bad_url = b
            .post(
                &format!("/admin/webhooks/{id}"),
                &[("csrf", &csrf), ("url", "ftp://x"), ("events", "*")],
            )
            .await;
        assert_eq!(bad_url.status, 422, "{}", bad_url.html);
        for (action, enabled) in [("disable", false), ("enable", true)] {
            let r = b
                .post(
                    &format!("/admin/webhooks/{id}/{action}"),
                    &[("csrf", &csrf)],
                )
                .await;
            assert_eq!(r.status, 303, "{}", r.html);
            let now = app.get(&format!("/v1/webhook-endpoints/{id}")).await;
            assert_eq!(now.body["enabled"], enabled);
        }

        // Rotation: a new secret, shown once; the old one keeps signing for the overlap.
        let r = b
            .post(
                &format!("/admin/webhooks/{id}/rotate"),
                &[("csrf", &csrf), ("overlap_hours", "1")],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        let rotated = b.get(r.location.as_deref().unwrap()).await;
        assert!(rotated.html.contains("The signing secret was replaced."));
        let new_secret = shown_secret(&rotated).expect("the new secret, once");
        assert_ne!(new_secret, secret);
        assert!(rotated.html.contains("Previous secret signs until"));
        assert_eq!(
            shown_secret(&b.get(&format!("/admin/webhooks/{id}")).await),
            None
        );

        // Support: no entry in the navigation, no page, no change.
        let mut support = signed_in(&app, "support@example.com").await;
        let theirs = support.csrf().await;
        let home = support.get("/admin/search").await;
        assert!(!home.html.contains("/admin/webhooks"), "no nav entry");
        for path in [
            "/admin/webhooks".to_owned(),
            "/admin/webhooks/new".to_owned(),
            format!("/admin/webhooks/{id}"),
            format!("/admin/webhooks/deliveries/{delivery_id}"),
        ] {
            assert_eq!(support.get(&path).await.status, 403, "{path}");
        }
        for path in [
            format!("/admin/webhooks/{id}/test"),
            format!("/admin/webhooks/{id}/disable"),
            format!("/admin/webhooks/{id}/rotate"),
            format!("/admin/webhooks/deliveries/{delivery_id}/retry"),
        ] {
            let r = support.post(&path, &[("csrf", &theirs)]).await;
            assert_eq!(r.status, 403, "{path}");
        }
        assert_eq!(
            app.get(&format!("/v1/webhook-endpoints/{id}")).await.body["enabled"],
            true
        );

        // Every change, under the user's name.
        let audit = rows(
            &db,
            "SELECT actor, action FROM console_events WHERE action LIKE 'webhook%' ORDER BY id",
        )
        .await;
        let actions: Vec<String> = audit.iter().map(|r| r.get("action")).collect();
        for r in &audit {
            assert_eq!(r.get::<String, _>("actor"), "user:hooks@example.com");
        }
        assert_eq!(
            actions,
            [
                "webhook_endpoint_created",
                "webhook_delivery_retried",
                "webhook_test_sent",
                "webhook_failed_retried",
                "webhook_endpoint_updated",
                "webhook_endpoint_updated",
                "webhook_endpoint_updated",
                "webhook_secret_rotated",
            ],
            "{actions:?}"
        );

        // Deletion asks twice.
        let unconfirmed = b
            .post(&format!("/admin/webhooks/{id}/delete"), &[("csrf", &csrf)])
            .await;
        assert_eq!(unconfirmed.status, 422);
        let r = b
            .post(
                &format!("/admin/webhooks/{id}/delete"),
                &[("csrf", &csrf), ("confirm", "1")],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        assert_eq!(r.location.as_deref(), Some("/admin/webhooks?done=deleted"));
        assert_eq!(
            app.get(&format!("/v1/webhook-endpoints/{id}")).await.status,
            404
        );
        assert!(b
            .get("/admin/webhooks?done=deleted")
            .await
            .html
            .contains("Endpoint deleted"));
        assert!(receiver.bad().is_empty(), "{:?}", receiver.bad());
        app.stop().await;
        db.remove().await;
    }
}

/// The webhook pages in Chromium at desktop and phone size: create an endpoint (its secret
/// shown once), send a test event, see it in the log and its attempts; axe-core finds no
/// serious or critical violation. Screenshots in target/tmp/console-screenshots/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_webhooks_in_a_real_browser() {
    let (chromium, node_dir) = match browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let db = TestDb::create(&Backend::Sqlite).await;
    let app = spawn_settings(&settings(&db, fast_webhooks())).await;
    // The secret is made inside the browser run, so this receiver checks no signature (the
    // test above does): it fails the first request and takes the rest.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0 => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "failing on purpose",
                    ),
                    _ => (axum::http::StatusCode::OK, "thanks"),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    console_user(&db, "hooks@example.com", Role::Admin, None).await;
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let report = run_browser_script(
        &node_dir,
        "console-webhooks.mjs",
        &[
            ("BASE", &app.base),
            ("USER_EMAIL", &"hooks@example.com"),
            ("PASSWORD", &PASSWORD),
            ("RECEIVER", &receiver),
            ("SHOTS", &shots),
            ("CHROMIUM", &chromium),
        ],
    )
    .await;
    let secret = report["secret"].as_str().unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{report}");
    assert_eq!(report["violations"], json!([]), "{report}");
    app.stop().await;
    db.remove().await;
}
