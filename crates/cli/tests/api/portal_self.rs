//! The customer portal's self-service, as a browser without JavaScript uses it: a license's
//! page, freeing machines within the plan's limit, offline license files, the account page
//! with an email change confirmed through a real SMTP server, and the audit log that records
//! every one of these under `customer:<email>`.

use std::time::Duration;

use chrono::Utc;
use keyturn::config::{MailSettings, SmtpTls};
use serde_json::{json, Value};
use sqlx::Row;

use crate::console::{console_user, run_browser_script, Browser, PASSWORD};
use crate::forms::spawn_public;
use crate::helpers::{backends, spawn, test_http, TestApp, TestDb};
use crate::mail::{delivered, start_sink};

macro_rules! portal_test {
    ($name:ident, $scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in backends() {
                let db = TestDb::create(&backend).await;
                let app = spawn(&db, test_http()).await;
                $scenario(&db, &app).await;
                app.stop().await;
                db.remove().await;
            }
        }
    };
}

async fn pool(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&db.any_url()).await.unwrap()
}

/// The license's audit entries as (actor, action), oldest first.
async fn audit(db: &TestDb, license_id: i64) -> Vec<(String, String)> {
    let pool = pool(db).await;
    let rows =
        sqlx::query("SELECT actor, action FROM license_events WHERE license_id = $1 ORDER BY id")
            .bind(license_id)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get::<String, _>("actor"), r.get::<String, _>("action")))
        .collect()
}

/// A product with a plan made with `plan` (extra fields of the API's plan), a customer with
/// `email` and a license of the plan; (product id, plan, license).
async fn bought(app: &TestApp, email: &str, plan: Value) -> (i64, Value, Value) {
    let product = app.product(&format!("Editor {email}"), &["pro"]).await;
    let mut body = json!({"product_id": product, "name": "Pro", "period_days": 365,
                          "max_machines": 2, "features": ["pro"]});
    for (k, v) in plan.as_object().unwrap() {
        body[k] = v.clone();
    }
    let plan = app.post("/v1/plans", body).await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let customer = app
        .post("/v1/customers", json!({"name": "Buyer", "email": email}))
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let license = app
        .license(json!({"plan_id": plan.body["id"], "customer_id": customer.body["id"]}))
        .await;
    (product, plan.body, license)
}

async fn activate(app: &TestApp, key: &str, machine: &str) -> crate::helpers::Resp {
    app.public(
        "/v1/activations",
        json!({"key": key, "fingerprint": format!("fp-{machine}"), "name": machine}),
    )
    .await
}

/// The id of the activation of `machine` on the license.
async fn machine_id(app: &TestApp, license_id: i64, machine: &str) -> i64 {
    let list = app
        .get(&format!("/v1/licenses/{license_id}/activations"))
        .await;
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == machine)
        .unwrap_or_else(|| panic!("no {machine} in {}", list.body))["id"]
        .as_i64()
        .unwrap()
}

async fn machines(app: &TestApp, license_id: i64) -> Vec<String> {
    let list = app
        .get(&format!("/v1/licenses/{license_id}/activations"))
        .await;
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A browser signed in to the portal with a key and the email it was sold to.
async fn signed_in(app: &TestApp, key: &str, email: &str) -> Browser {
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

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

async fn frees_within_the_plans_limit(db: &TestDb, app: &TestApp) {
    let (_, plan, license) = bought(
        app,
        "ann@example.com",
        json!({"buyer_frees_max": 2, "buyer_frees_days": 7}),
    )
    .await;
    // The API shows the plan's self-service settings, the unset ones at their defaults.
    assert_eq!(plan["buyers_may_free_machines"], true, "{plan}");
    assert_eq!(plan["buyer_frees_max"], 2);
    assert_eq!(plan["buyer_frees_days"], 7);
    assert_eq!(plan["buyers_may_download_files"], false);
    assert_eq!(plan["buyer_file_days"], 30);
    let lid = id(&license);
    let key = license["key"].as_str().unwrap().to_owned();
    assert!(activate(app, &key, "laptop").await.status < 300);
    assert!(activate(app, &key, "desktop").await.status < 300);
    // The machine limit holds: a third machine is refused.
    let third = activate(app, &key, "new-pc").await;
    assert!(third.status >= 400, "{}", third.body);

    let mut b = signed_in(app, &key, "ann@example.com").await;
    let page = b.get(&format!("/portal/licenses/{lid}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    for group in key.split('-') {
        assert!(page.html.contains(group), "the key's groups are shown");
    }
    assert!(page.html.contains("laptop") && page.html.contains("desktop"));
    assert!(page.html.contains("2 of 2"), "machines of the limit");
    assert!(page.html.contains("valid") && page.html.contains("pro"));
    assert!(page.html.contains("free 2 more machines"), "{}", page.html);
    let laptop = machine_id(app, lid, "laptop").await;
    let free_laptop = format!("/portal/licenses/{lid}/machines/{laptop}/free");
    assert!(page.html.contains(&free_laptop));

    // Without the session's token nothing is freed.
    let forged = b.post(&free_laptop, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(machines(app, lid).await.len(), 2);

    let freed = b.post(&free_laptop, &[("csrf", &page.csrf())]).await;
    assert_eq!(freed.status, 303, "{}", freed.html);
    assert_eq!(
        freed.location.as_deref(),
        Some(format!("/portal/licenses/{lid}?done=freed").as_str())
    );
    assert_eq!(machines(app, lid).await, vec!["desktop".to_owned()]);
    // The vendor's program can now activate on another machine.
    let moved = activate(app, &key, "new-pc").await;
    assert!(moved.status < 300, "{}", moved.body);

    // A second free is still within the limit of two...
    let desktop = machine_id(app, lid, "desktop").await;
    let page = b.get(&format!("/portal/licenses/{lid}")).await;
    assert!(page.html.contains("free 1 more machine "), "{}", page.html);
    let freed = b
        .post(
            &format!("/portal/licenses/{lid}/machines/{desktop}/free"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(freed.status, 303, "{}", freed.html);
    // ...a third is refused with a clear message, and nothing is freed.
    let new_pc = machine_id(app, lid, "new-pc").await;
    let page = b.get(&format!("/portal/licenses/{lid}")).await;
    assert!(
        !page.html.contains("Free this machine"),
        "no button once the frees are used up"
    );
    let refused = b
        .post(
            &format!("/portal/licenses/{lid}/machines/{new_pc}/free"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.html);
    assert!(
        refused
            .html
            .contains("You have freed 2 machines of this license in the last 7 days"),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("Nothing was freed"));
    assert_eq!(machines(app, lid).await, vec!["new-pc".to_owned()]);

    // The frees are in the license's audit log under the customer, next to the program's
    // own activations...
    let log = audit(db, lid).await;
    let frees: Vec<_> = log
        .iter()
        .filter(|(actor, action)| actor == "customer:ann@example.com" && action == "deactivated")
        .collect();
    assert_eq!(frees.len(), 2, "{log:?}");
    // ...and the console's audit timeline shows them.
    console_user(db, "owner@example.com", keyturn_core::Role::Owner, None).await;
    let mut staff = Browser::new(app);
    assert_eq!(
        staff.sign_in("owner@example.com", PASSWORD).await.status,
        303
    );
    let timeline = staff.get(&format!("/admin/licenses/{lid}")).await;
    assert_eq!(timeline.status, 200);
    assert!(
        timeline.html.contains("customer:ann@example.com"),
        "{}",
        timeline.html
    );

    // A plan that does not let buyers free machines: no button, and a post is refused.
    let off = app
        .patch(
            &format!("/v1/plans/{}", id(&plan)),
            json!({"buyers_may_free_machines": false, "buyer_frees_max": 5}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["buyers_may_free_machines"], false);
    assert_eq!(off.body["buyer_frees_max"], 5);
    let page = b.get(&format!("/portal/licenses/{lid}")).await;
    assert!(!page.html.contains("Free this machine"));
    let refused = b
        .post(
            &format!("/portal/licenses/{lid}/machines/{new_pc}/free"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.html.contains("does not let you"),
        "{}",
        refused.html
    );
    assert_eq!(machines(app, lid).await, vec!["new-pc".to_owned()]);
    // Bad settings are refused by the API.
    let bad = app
        .patch(
            &format!("/v1/plans/{}", id(&plan)),
            json!({"buyer_frees_days": 0}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
}
portal_test!(
    portal_self_frees_machines_within_the_limit,
    frees_within_the_plans_limit
);

async fn other_customers_ids_are_unknown(_db: &TestDb, app: &TestApp) {
    let (_, _, dana) = bought(
        app,
        "dana@example.com",
        json!({"buyers_may_download_files": true}),
    )
    .await;
    let (_, _, eve) = bought(
        app,
        "eve@example.com",
        json!({"buyers_may_download_files": true}),
    )
    .await;
    let dana_key = dana["key"].as_str().unwrap().to_owned();
    let eve_key = eve["key"].as_str().unwrap().to_owned();
    assert!(activate(app, &dana_key, "dana-pc").await.status < 300);
    assert!(activate(app, &eve_key, "eve-pc").await.status < 300);
    let dana_pc = machine_id(app, id(&dana), "dana-pc").await;
    let eve_pc = machine_id(app, id(&eve), "eve-pc").await;

    let mut b = signed_in(app, &dana_key, "dana@example.com").await;
    let own = b.get(&format!("/portal/licenses/{}", id(&dana))).await;
    assert_eq!(own.status, 200);
    let csrf = own.csrf();
    let unknown = b.get("/portal/licenses/999999").await;
    assert_eq!(unknown.status, 404);
    let other = b.get(&format!("/portal/licenses/{}", id(&eve))).await;
    assert_eq!(other.status, 404);
    assert_eq!(other.html, unknown.html, "another's license looks unknown");
    assert!(!other.html.contains(&eve_key));
    assert_eq!(b.get("/portal/licenses/abc").await.status, 404);

    // Another's machine, on their license or named under one's own: 404, nothing freed.
    for path in [
        format!("/portal/licenses/{}/machines/{eve_pc}/free", id(&eve)),
        format!("/portal/licenses/{}/machines/{eve_pc}/free", id(&dana)),
        format!("/portal/licenses/{}/machines/{dana_pc}/free", id(&eve)),
        format!("/portal/licenses/{}/machines/x/free", id(&dana)),
    ] {
        let r = b.post(&path, &[("csrf", &csrf)]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.html);
    }
    assert_eq!(machines(app, id(&eve)).await, vec!["eve-pc".to_owned()]);
    assert_eq!(machines(app, id(&dana)).await, vec!["dana-pc".to_owned()]);
    // Nor a license file of another's license.
    let file = b
        .post(
            &format!("/portal/licenses/{}/file", id(&eve)),
            &[("csrf", &csrf), ("machine_code", "fp-x")],
        )
        .await;
    assert_eq!(file.status, 404);
    assert!(!file.html.contains("BEGIN LICENSE FILE"));
    // Without a session: to sign-in.
    let anonymous = Browser::new(app)
        .get(&format!("/portal/licenses/{}", id(&dana)))
        .await;
    assert_eq!(anonymous.location.as_deref(), Some("/portal/sign-in"));
}
portal_test!(
    portal_self_other_customers_ids_are_404,
    other_customers_ids_are_unknown
);

async fn license_files_when_the_plan_allows(db: &TestDb, app: &TestApp) {
    let (product, plan, license) = bought(app, "flo@example.com", json!({})).await;
    let lid = id(&license);
    let key = license["key"].as_str().unwrap().to_owned();
    let mut b = signed_in(app, &key, "flo@example.com").await;
    let page = b.get(&format!("/portal/licenses/{lid}")).await;
    assert!(
        !page.html.contains("Download license file"),
        "off by default"
    );
    let path = format!("/portal/licenses/{lid}/file");
    let refused = b
        .post(
            &path,
            &[("csrf", &page.csrf()), ("machine_code", "machine-x")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(refused.html.contains("does not let you"));
    assert!(!refused.html.contains("BEGIN LICENSE FILE"));

    let on = app
        .patch(
            &format!("/v1/plans/{}", id(&plan)),
            json!({"buyers_may_download_files": true, "buyer_file_days": 10}),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.body);
    let page = b.get(&format!("/portal/licenses/{lid}")).await;
    assert!(page.html.contains("Download license file"));
    let bad = b
        .post(&path, &[("csrf", &page.csrf()), ("machine_code", "  ")])
        .await;
    assert_eq!(bad.status, 422, "{}", bad.html);
    let forged = b
        .post(&path, &[("csrf", "nope"), ("machine_code", "machine-x")])
        .await;
    assert_eq!(forged.status, 403);

    let got = b
        .post(
            &path,
            &[("csrf", &page.csrf()), ("machine_code", "machine-x")],
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.html);
    assert!(got.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    // The file verifies with the product's public key, for that machine, as the API's do.
    let client = keyturn_client::Client::new(&app.base, product, &app.public_key(product).await)
        .unwrap()
        .with_fingerprint(keyturn_client::Fingerprint::parse("machine-x"));
    let file = client
        .verify_license_file(&got.html, &key, &["pro"])
        .unwrap();
    assert_eq!(file.fingerprint.as_deref(), Some("machine-x"));
    let days = (file.valid_until - Utc::now()).num_hours();
    assert!((239..=240).contains(&days), "ten days: {days} hours");
    let elsewhere = keyturn_client::Client::new(&app.base, product, &app.public_key(product).await)
        .unwrap()
        .with_fingerprint(keyturn_client::Fingerprint::parse("machine-y"));
    assert!(elsewhere.verify_license_file(&got.html, &key, &[]).is_err());

    // A license that ends sooner: the file ends with it (rounded up to whole days).
    let soon = (Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let short = app
        .patch(&format!("/v1/licenses/{lid}"), json!({"expires": soon}))
        .await;
    assert_eq!(short.status, 200, "{}", short.body);
    let got = b
        .post(
            &path,
            &[("csrf", &page.csrf()), ("machine_code", "machine-x")],
        )
        .await;
    assert_eq!(got.status, 200);
    let file = client.verify_license_file(&got.html, &key, &[]).unwrap();
    let hours = (file.valid_until - Utc::now()).num_hours();
    assert!((71..=72).contains(&hours), "three days: {hours} hours");

    let log = audit(db, lid).await;
    let issued = log
        .iter()
        .filter(|(actor, action)| {
            actor == "customer:flo@example.com" && action == "license_file_issued"
        })
        .count();
    assert_eq!(issued, 2, "{log:?}");
}
portal_test!(
    portal_self_license_files,
    license_files_when_the_plan_allows
);

/// The name changes at once; the email only when the link mailed to the new address (through
/// a real SMTP server) is followed, and that link works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_self_email_change_by_link() {
    for backend in backends() {
        let smtp_port = crate::helpers::free_port();
        let scratch = tempfile::tempdir().unwrap();
        let maildir = scratch.path().join("mail");
        let _sink = start_sink(smtp_port, &maildir);
        let db = TestDb::create(&backend).await;
        let mail = MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port,
            tls: SmtpTls::None,
            poll: Duration::from_millis(100),
            retry_base: Duration::from_millis(200),
            ..MailSettings::default()
        };
        let app = spawn_public(&db, Default::default(), mail).await;
        let (_, _, license) = bought(&app, "gus@example.com", json!({})).await;
        let lid = id(&license);
        let key = license["key"].as_str().unwrap().to_owned();
        let customer = license["customer_id"].as_i64().unwrap();
        let mut b = signed_in(&app, &key, "gus@example.com").await;

        let page = b.get("/portal/account").await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("gus@example.com") && page.html.contains("Buyer"));
        let renamed = b
            .post(
                "/portal/account/name",
                &[("csrf", &page.csrf()), ("name", "Gus Grant")],
            )
            .await;
        assert_eq!(renamed.status, 303, "{}", renamed.html);
        let c = app.get(&format!("/v1/customers/{customer}")).await;
        assert_eq!(c.body["name"], "Gus Grant", "{}", c.body);

        let asked = b
            .post(
                "/portal/account/email",
                &[("csrf", &page.csrf()), ("email", "Gus.New@Example.com")],
            )
            .await;
        assert_eq!(asked.status, 200, "{}", asked.html);
        assert!(asked
            .html
            .contains("We mailed a confirmation link to gus.new@example.com"));
        // Nothing changes until the link is followed.
        let c = app.get(&format!("/v1/customers/{customer}")).await;
        assert_eq!(c.body["email"], "gus@example.com");

        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let message = loop {
            if let Some(m) = delivered(&maildir)
                .into_iter()
                .find(|m| m.contains("Confirm your new email address"))
            {
                break m;
            }
            assert!(std::time::Instant::now() < deadline, "no confirmation mail");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(message.contains("gus.new@example.com"), "{message}");
        // The body is quoted-printable: undo its soft line breaks (the secret has no `=`).
        let message = message.replace("=\r\n", "").replace("=\n", "");
        let at = message.find("/portal/account/email/").expect("a link");
        let link = message[at..].split_whitespace().next().unwrap().to_owned();
        // Stored hashed only.
        let pool = pool(&db).await;
        let secret = link.rsplit('/').next().unwrap().to_owned();
        let plain: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM portal_email_changes WHERE id_hash = $1")
                .bind(&secret)
                .fetch_one(&pool)
                .await
                .unwrap()
                .get("n");
        assert_eq!(plain, 0);
        pool.close().await;

        // Opening the link (as a mail scanner would) changes nothing; its button does.
        let mut other = Browser::new(&app);
        let shown = other.get(&link).await;
        assert_eq!(shown.status, 200, "{}", shown.html);
        let c = app.get(&format!("/v1/customers/{customer}")).await;
        assert_eq!(c.body["email"], "gus@example.com");
        let done = other.post(&link, &[("csrf", &shown.csrf())]).await;
        assert_eq!(done.status, 200, "{}", done.html);
        assert!(done.html.contains("gus.new@example.com"));
        let c = app.get(&format!("/v1/customers/{customer}")).await;
        assert_eq!(c.body["email"], "gus.new@example.com");
        // The session goes on under the new address.
        let page = b.get("/portal/account").await;
        assert_eq!(page.status, 200);
        assert!(page.html.contains("gus.new@example.com"));
        let list = b.get("/portal/licenses").await;
        assert!(list.html.contains(&key));

        // The link works once.
        let mut third = Browser::new(&app);
        let shown = third.get(&link).await;
        let again = third.post(&link, &[("csrf", &shown.csrf())]).await;
        assert_eq!(again.status, 410, "{}", again.html);
        // The old address no longer signs in with the key; the new one does.
        let form = third.get("/portal/sign-in").await;
        let old = third
            .post(
                "/portal/sign-in/key",
                &[
                    ("csrf", &form.csrf()),
                    ("key", &key),
                    ("email", "gus@example.com"),
                ],
            )
            .await;
        assert_eq!(old.status, 401);
        signed_in(&app, &key, "gus.new@example.com").await;

        let log = audit(&db, lid).await;
        let changes = log
            .iter()
            .filter(|(actor, action)| {
                actor == "customer:gus@example.com" && action == "customer_changed"
            })
            .count();
        assert_eq!(changes, 3, "name, request, change: {log:?}");
        app.stop().await;
        db.remove().await;
    }
}

/// The self-service pages in Chromium at desktop and phone size (tests/browser/portal.mjs):
/// sign in by a mailed link, open a license, free a machine on each size, the account page.
/// axe-core finds no serious or critical violation, nothing is wider than the screen, and no
/// key group breaks across lines. Screenshots are kept under the target directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_self_in_a_real_browser() {
    let (chromium, node_dir) = match crate::console::browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    // The pages are the same whatever the database: SQLite only.
    let backend = backends().remove(0);
    let db = TestDb::create(&backend).await;
    let app = spawn(&db, test_http()).await;
    let (_, _, license) = bought(
        &app,
        "hal@example.com",
        json!({"max_machines": 3, "buyers_may_download_files": true}),
    )
    .await;
    let key = license["key"].as_str().unwrap().to_owned();
    for m in ["hal-laptop", "hal-workstation", "hal-old-tower"] {
        assert!(activate(&app, &key, m).await.status < 300);
    }
    let mut b = Browser::new(&app);
    let form = b.get("/portal/sign-in").await;
    let sent = b
        .post(
            "/portal/sign-in/link",
            &[("csrf", &form.csrf()), ("email", "hal@example.com")],
        )
        .await;
    assert_eq!(sent.status, 200);
    let pool = pool(&db).await;
    let body: String =
        sqlx::query("SELECT body FROM mail_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT 1")
            .bind("hal@example.com")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("body");
    pool.close().await;
    let at = body.find("/portal/link/").expect("a link in the mail");
    let link = format!(
        "{}{}",
        app.base,
        body[at..].split_whitespace().next().unwrap()
    );

    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("portal-screenshots")
        .join("self-service");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let report = run_browser_script(
        &node_dir,
        "portal.mjs",
        &[("LINK", &link), ("SHOTS", &shots), ("CHROMIUM", &chromium)],
    )
    .await;
    assert_eq!(report["freed"], 2, "{report}");
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 6, "{report}");
    for page in pages {
        assert_eq!(
            page["serious"], 0,
            "serious or critical accessibility violations on {} ({}): {}",
            page["name"], page["size"], page["violations"]
        );
        assert_eq!(page["overflow"], false, "{page}");
        assert_eq!(page["keyBreaks"], 0, "a key group broke: {page}");
        let shot = shots.join(format!(
            "{}-{}.png",
            page["name"].as_str().unwrap(),
            page["size"].as_str().unwrap()
        ));
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    }
    assert_eq!(machines(&app, id(&license)).await.len(), 1);
    app.stop().await;
    db.remove().await;
}

/// `keyturn plan create` sets the plan's portal settings; unset ones take their defaults.
#[test]
fn portal_self_plan_flags_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
            .args(args)
            .env("KEYTURN_DATA_DIR", dir.path())
            .env_remove("KEYTURN_DATABASE_URL")
            .env_remove("KEYTURN_CONFIG")
            .output()
            .expect("run keyturn");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    run(&["migrate"]);
    let product = run(&["product", "create", "--name", "Editor"]);
    let product = product["id"].to_string();
    let plan = run(&[
        "plan",
        "create",
        "--product",
        &product,
        "--name",
        "Pro",
        "--buyers-may-free-machines",
        "false",
        "--buyer-frees-max",
        "4",
        "--buyers-may-download-files",
        "true",
        "--buyer-file-days",
        "14",
    ]);
    assert_eq!(plan["buyers_may_free_machines"], false, "{plan}");
    assert_eq!(plan["buyer_frees_max"], 4);
    assert_eq!(plan["buyer_frees_days"], 30);
    assert_eq!(plan["buyers_may_download_files"], true);
    assert_eq!(plan["buyer_file_days"], 14);
}

async fn floating_seats_free_themselves(_db: &TestDb, app: &TestApp) {
    let (_, _, license) = bought(
        app,
        "ida@example.com",
        json!({"floating_lease_seconds": 600}),
    )
    .await;
    let key = license["key"].as_str().unwrap().to_owned();
    assert!(activate(app, &key, "ida-pc").await.status < 300);
    let mut b = signed_in(app, &key, "ida@example.com").await;
    let page = b.get(&format!("/portal/licenses/{}", id(&license))).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("ida-pc"));
    assert!(
        page.html.contains("floating: frees itself at"),
        "{}",
        page.html
    );
    assert!(
        !page.html.contains("Free this machine"),
        "a floating seat needs no freeing"
    );
}
portal_test!(
    portal_self_floating_seats_free_themselves,
    floating_seats_free_themselves
);

/// The console's plan form shows and saves what buyers may do in the portal.
async fn the_console_sets_the_portal_rules(db: &TestDb, app: &TestApp) {
    let (_, plan, _) = bought(app, "jo@example.com", json!({})).await;
    let plan_id = id(&plan);
    console_user(db, "owner@example.com", keyturn_core::Role::Owner, None).await;
    let mut staff = Browser::new(app);
    assert_eq!(
        staff.sign_in("owner@example.com", PASSWORD).await.status,
        303
    );
    let page = staff.get(&format!("/admin/plans/{plan_id}")).await;
    assert_eq!(page.status, 200);
    assert!(page
        .html
        .contains("What buyers may do in the customer portal"));
    assert!(
        page.html.contains("3 per license in 30 days"),
        "{}",
        page.html
    );
    let saved = staff
        .post(
            &format!("/admin/plans/{plan_id}"),
            &[
                ("csrf", &page.csrf()),
                ("name", "Pro"),
                ("buyer_frees_max", "1"),
                ("buyer_frees_days", "14"),
                ("buyers_may_download_files", "1"),
                ("buyer_file_days", "12"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let api = app.get(&format!("/v1/plans/{plan_id}")).await.body;
    assert_eq!(api["buyers_may_free_machines"], false, "an unticked box");
    assert_eq!(api["buyer_frees_max"], 1);
    assert_eq!(api["buyer_frees_days"], 14);
    assert_eq!(api["buyers_may_download_files"], true);
    assert_eq!(api["buyer_file_days"], 12);
    let bad = staff
        .post(
            &format!("/admin/plans/{plan_id}"),
            &[
                ("csrf", &page.csrf()),
                ("name", "Pro"),
                ("buyer_file_days", "0"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.html);
    assert!(bad.html.contains("buyer_file_days"));
}
portal_test!(
    portal_self_console_plan_form,
    the_console_sets_the_portal_rules
);

/// A blocked license tells its buyer why when the vendor gave a reason for the buyer: the
/// console's and the API's block take one beside the reason kept for the vendor's people,
/// which the buyer never sees; the reason goes with the block.
async fn a_block_shows_the_vendors_reason_for_the_buyer(db: &TestDb, app: &TestApp) {
    let (_, _, license) = bought(app, "kim@example.com", json!({})).await;
    let (_, _, other) = bought(app, "kim@example.com", json!({})).await;
    let key = license["key"].as_str().unwrap().to_owned();
    let (lid, oid) = (id(&license), id(&other));
    console_user(db, "support@example.com", keyturn_core::Role::Support, None).await;
    let mut staff = Browser::new(app);
    assert_eq!(
        staff.sign_in("support@example.com", PASSWORD).await.status,
        303
    );
    let page = staff.get(&format!("/admin/licenses/{lid}")).await;
    assert!(
        page.html.contains("Reason shown to the buyer"),
        "{}",
        page.html
    );
    let blocked = staff
        .post(
            &format!("/admin/licenses/{lid}/block"),
            &[
                ("csrf", &page.csrf()),
                ("action", "block"),
                ("reason", "chargeback 4411, suspected fraud"),
                ("public_reason", "Payment reversed <b>by your bank</b>"),
            ],
        )
        .await;
    assert_eq!(blocked.status, 303, "{}", blocked.html);
    // Through the API, with a reason for the buyer only; and a bad body is refused.
    let r = app
        .post(
            &format!("/v1/licenses/{oid}/block"),
            json!({"public_reason": "Seat count exceeded, write to sales"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(&format!("/v1/licenses/{oid}/block"), json!({"why": "x"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    let mut buyer = signed_in(app, &key, "kim@example.com").await;
    let list = buyer.get("/portal/licenses").await;
    assert_eq!(list.status, 200);
    for page in [
        list.html.clone(),
        buyer.get(&format!("/portal/licenses/{lid}")).await.html,
    ] {
        assert!(
            page.contains("Payment reversed &lt;b&gt;by your bank&lt;/b&gt;"),
            "{page}"
        );
        assert!(
            !page.contains("chargeback"),
            "the vendor's own reason stays inside"
        );
    }
    assert!(list.html.contains("Seat count exceeded, write to sales"));

    // Unblocked, the reason goes; blocked again without one, none shows.
    let page = staff.get(&format!("/admin/licenses/{lid}")).await;
    let r = staff
        .post(
            &format!("/admin/licenses/{lid}/block"),
            &[
                ("csrf", &page.csrf()),
                ("action", "unblock"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let r = app
        .post(&format!("/v1/licenses/{lid}/block"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let detail = buyer.get(&format!("/portal/licenses/{lid}")).await.html;
    assert!(!detail.contains("Payment reversed"), "{detail}");
    assert!(!detail.contains("Why it is blocked"), "{detail}");
}
portal_test!(
    portal_self_a_block_shows_the_vendors_reason_for_the_buyer,
    a_block_shows_the_vendors_reason_for_the_buyer
);
