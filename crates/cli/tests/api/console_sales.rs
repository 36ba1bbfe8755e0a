//! The console's sales pages as a browser without JavaScript uses them: issuing licenses for a
//! new or existing customer (keys shown after the redirect, mailed through the outbox to a
//! real SMTP server), the license and customer lists with their filters and keyset pages,
//! streamed CSV downloads, and what roles, product limits, CSRF and escaping allow.

use std::time::Duration;

use keyturn::config::{MailSettings, SmtpTls};
use keyturn_core::Role;
use serde_json::{json, Value};
use sqlx::Row;

use crate::console::{console_user, signed_in, urlencode, Browser};
use crate::helpers::{backends, free_port, spawn, spawn_full, test_http, TestApp, TestDb};
use crate::mail::{delivered, start_sink};

/// Runs `$scenario(&db, &app)` on every backend, each on a fresh server.
macro_rules! sales_test {
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

pub const EVIL: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
pub const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

/// The rows of a CSV text (RFC 4180: quoted cells may hold commas, quotes and line breaks).
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "CSV ends mid-row"
    );
    rows
}

/// The license keys a page links to, in page order.
pub fn keys_on(html: &str) -> Vec<String> {
    html.split("class=\"key\" href=\"/admin/licenses/")
        .skip(1)
        .map(|s| {
            let start = s.find('>').unwrap() + 1;
            s[start..start + s[start..].find('<').unwrap()].to_owned()
        })
        .collect()
}

/// The first link on a page whose address starts with `prefix` (entities decoded).
pub fn link(html: &str, prefix: &str) -> Option<String> {
    html.split("href=\"")
        .skip(1)
        .find(|s| s.starts_with(prefix))
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
}

async fn plan(app: &TestApp, product: i64, name: &str) -> i64 {
    let r = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": name, "period_days": 365,
                   "max_machines": 2, "features": ["pro"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_i64().unwrap()
}

pub async fn rows(db: &TestDb, sql: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
    let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

async fn customer_licenses(app: &TestApp, customer: i64) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/licenses?customer_id={customer}&limit=500"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
}

/// Sales issues three licenses for a new customer and has the keys mailed: the keys show on
/// the page the form leads to, the mail reaches a real SMTP server with all three, and the
/// audit log names the user. More for the same customer, without mail; and a request that
/// cannot be carried out in full changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sales_issues_licenses_for_a_new_customer_and_mails_the_keys() {
    for backend in backends() {
        let port = free_port();
        let scratch = tempfile::tempdir().unwrap();
        let maildir = scratch.path().join("mail");
        let _sink = start_sink(port, &maildir);
        let db = TestDb::create(&backend).await;
        let mail = MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: port,
            tls: SmtpTls::None,
            from: "licenses@editor.example".into(),
            retry_base: Duration::from_millis(300),
            poll: Duration::from_millis(100),
            ..MailSettings::default()
        };
        let app = spawn_full(&db, test_http(), Default::default(), mail).await;
        let product = app.product("Editor", &["pro"]).await;
        let plan = plan(&app, product, "Pro yearly").await.to_string();
        console_user(&db, "sales@example.com", Role::Sales, None).await;
        let mut b = signed_in(&app, "sales@example.com").await;
        let form = b.get("/admin/issue").await;
        assert_eq!(form.status, 200, "{}", form.html);
        assert!(form.html.contains("Editor — Pro yearly"), "{}", form.html);
        assert!(
            form.html.contains("href=\"/admin/issue\""),
            "in the navigation"
        );
        let csrf = form.csrf();
        let fields = [
            ("plan", plan.as_str()),
            ("quantity", "3"),
            ("customer", "new"),
            ("name", "Grace Hopper"),
            ("email", "Grace@Example.com"),
            ("company", "Navy"),
            ("send_mail", "1"),
        ];
        let with = |token: &str| {
            let mut all = vec![("csrf".to_owned(), token.to_owned())];
            all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            all
        };
        let forged = with("forged");
        let forged: Vec<(&str, &str)> = forged
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(b.post("/admin/issue", &forged).await.status, 403);
        assert!(
            app.get("/v1/customers").await.body["data"]
                .as_array()
                .unwrap()
                .is_empty(),
            "a refused form makes nothing"
        );

        let good = with(&csrf);
        let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = b.post("/admin/issue", &good).await;
        assert_eq!(r.status, 303, "{}", r.html);
        let to = r.location.unwrap();
        assert!(to.starts_with("/admin/issued?customer="), "{to}");
        let shown = b.get(&to).await;
        assert_eq!(shown.status, 200, "{}", shown.html);
        assert_eq!(shown.headers["cache-control"], "no-store");
        assert!(shown
            .html
            .contains("3 licenses were issued for Grace Hopper"));
        assert!(shown
            .html
            .contains("The keys are queued for mailing to grace@example.com"));
        let keys = keys_on(&shown.html);
        assert_eq!(keys.len(), 3, "{}", shown.html);

        let customer = app.get("/v1/customers").await.body["data"][0].clone();
        assert_eq!(customer["name"], "Grace Hopper");
        assert_eq!(customer["email"], "grace@example.com");
        let cid = customer["id"].as_i64().unwrap();
        let made = customer_licenses(&app, cid).await;
        let mut stored: Vec<String> = made
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_owned())
            .collect();
        stored.sort();
        let mut shown_keys = keys.clone();
        shown_keys.sort();
        assert_eq!(stored, shown_keys, "the page shows the keys made");
        for l in &made {
            assert_eq!(l["plan_id"].as_i64().unwrap().to_string(), plan);
            assert_eq!(l["features"], json!(["pro"]));
            assert_eq!(l["max_machines"], 2);
        }
        let id = made[0]["id"].as_i64().unwrap();
        let events = app.get(&format!("/v1/licenses/{id}/events")).await;
        assert_eq!(events.body["data"][0]["action"], "created");
        assert_eq!(events.body["data"][0]["actor"], "user:sales@example.com");

        let mut mails = Vec::new();
        for _ in 0..150 {
            mails = delivered(&maildir);
            if !mails.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(mails.len(), 1, "one mail with every key");
        let m = &mails[0];
        assert!(m.contains("To: grace@example.com"), "{m}");
        assert!(m.contains("Subject: Your license key for Editor"), "{m}");
        assert!(m.contains("Hello Grace Hopper"), "{m}");
        for key in &keys {
            assert!(m.contains(key.as_str()), "{key} in {m}");
        }

        // More for the same customer, without mail.
        let cid_text = cid.to_string();
        let r = b
            .post(
                "/admin/issue",
                &[
                    ("csrf", csrf.as_str()),
                    ("plan", &plan),
                    ("quantity", "2"),
                    ("customer", &cid_text),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.html);
        assert!(!r.location.unwrap().contains("mailed"));
        assert_eq!(customer_licenses(&app, cid).await.len(), 5);
        let audit = rows(
            &db,
            "SELECT actor, details FROM console_events WHERE action = 'licenses_issued' ORDER BY id",
        )
        .await;
        assert_eq!(audit.len(), 2);
        assert_eq!(audit[0].get::<String, _>("actor"), "user:sales@example.com");
        let first: Value = serde_json::from_str(&audit[0].get::<String, _>("details")).unwrap();
        assert_eq!(first["mailed"], true);
        assert_eq!(first["customer_created"], true);
        assert_eq!(first["license_ids"].as_array().unwrap().len(), 3);

        // All or none: keys cannot be mailed to a customer without an address, so neither the
        // customer nor a license is made; a quantity out of range makes nothing either.
        let r = b
            .post(
                "/admin/issue",
                &[
                    ("csrf", csrf.as_str()),
                    ("plan", &plan),
                    ("quantity", "2"),
                    ("customer", "new"),
                    ("name", "Nobody Mailable"),
                    ("send_mail", "1"),
                ],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.html);
        assert!(r.html.contains("no email address"), "{}", r.html);
        for quantity in ["0", "1001", "x"] {
            let r = b
                .post(
                    "/admin/issue",
                    &[
                        ("csrf", csrf.as_str()),
                        ("plan", &plan),
                        ("quantity", quantity),
                        ("customer", "new"),
                        ("name", "Too Many"),
                    ],
                )
                .await;
            assert_eq!(r.status, 422, "{quantity}: {}", r.html);
        }
        let customers = app.get("/v1/customers").await.body["data"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(customers, 1, "only Grace");
        assert_eq!(app.license_count().await, 5);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            delivered(&maildir).len(),
            1,
            "mailed once, and only when asked"
        );

        // Read-only sees the lists but issues nothing.
        console_user(&db, "viewer@example.com", Role::ReadOnly, None).await;
        let mut viewer = signed_in(&app, "viewer@example.com").await;
        assert!(!viewer
            .get("/admin/licenses")
            .await
            .html
            .contains("href=\"/admin/issue\""));
        assert_eq!(viewer.get("/admin/issue").await.status, 403);
        let theirs = viewer.csrf().await;
        let tried = with(&theirs);
        let tried: Vec<(&str, &str)> = tried
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(viewer.post("/admin/issue", &tried).await.status, 403);
        assert_eq!(app.license_count().await, 5);
        app.stop().await;
        db.remove().await;
    }
}

/// A CSV download of 5,000 filtered licenses is streamed (no length known up front), holds
/// every row once, quotes what must be quoted and neutralises formulas; customers too. A user
/// limited to a product downloads that product's rows only.
async fn csv_downloads_stream_every_row(db: &TestDb, app: &TestApp) {
    const NOTES: &str = "=SUM(A1), \"quoted\"\nsecond line";
    let editor = app.product("Editor", &[]).await;
    let other = app.product("Other", &[]).await;
    for _ in 0..5 {
        let r = app
            .post(
                "/v1/licenses",
                json!({"product_id": editor, "quantity": 1000, "notes": NOTES}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let buyer = app
        .post(
            "/v1/customers",
            json!({"name": "=cmd|' /C calc'!A0", "email": "buyer@example.com", "company": "Comma, Inc"}),
        )
        .await
        .body["id"]
        .clone();
    for name in ["@evil", "-2+3", "+49 30", "Plain Name"] {
        let r = app.post("/v1/customers", json!({"name": name})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app
        .post(
            "/v1/licenses",
            json!({"product_id": other, "quantity": 7, "notes": "+1", "customer_id": buyer}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    console_user(db, "sales@example.com", Role::Sales, None).await;
    console_user(db, "other@example.com", Role::Sales, Some(other)).await;
    let mut b = signed_in(app, "sales@example.com").await;

    let list = b.get(&format!("/admin/licenses?product={editor}")).await;
    assert_eq!(list.status, 200);
    let csv_link = link(&list.html, "/admin/licenses.csv?").expect("a CSV link");
    assert!(
        csv_link.contains(&format!("product={editor}")),
        "{csv_link}"
    );
    let started = std::time::Instant::now();
    let file = b.get(&csv_link).await;
    let took = started.elapsed();
    assert_eq!(file.status, 200, "{}", file.html);
    assert!(file.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"licenses.csv\""));
    assert_eq!(file.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        file.headers.get("content-length").is_none(),
        "streamed, not built first: {:?}",
        file.headers
    );
    assert_eq!(file.headers["transfer-encoding"], "chunked");
    let rows = csv_rows(&file.html);
    assert_eq!(rows[0][..3], ["id", "key", "product_id"]);
    let body = &rows[1..];
    assert_eq!(body.len(), 5000, "every license once");
    let notes_at = rows[0].iter().position(|c| c == "notes").unwrap();
    let mut ids: Vec<i64> = body.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order");
    ids.dedup();
    assert_eq!(ids.len(), 5000);
    for r in body {
        assert_eq!(r.len(), rows[0].len());
        assert_eq!(r[2], editor.to_string());
        assert_eq!(r[notes_at], format!("'{NOTES}"), "quoted and neutralised");
    }
    assert!(
        file.html
            .contains("\"'=SUM(A1), \"\"quoted\"\"\nsecond line\""),
        "the cell as written"
    );
    eprintln!("csv: 5000 licenses in {} ms", took.as_millis());

    let customers = b.get("/admin/customers.csv").await;
    assert_eq!(customers.status, 200);
    let rows = csv_rows(&customers.html);
    let names: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        names,
        [
            "'=cmd|' /C calc'!A0",
            "'@evil",
            "'-2+3",
            "'+49 30",
            "Plain Name"
        ]
    );
    assert_eq!(rows[1][3], "Comma, Inc");
    assert!(customers.html.contains(",\"Comma, Inc\","));
    let searched = csv_rows(&b.get("/admin/customers.csv?q=PLAIN").await.html);
    assert_eq!(searched.len(), 2, "the search holds in the file too");

    // A user limited to the other product gets its seven rows, and its customer only.
    let mut limited = signed_in(app, "other@example.com").await;
    let theirs = csv_rows(&limited.get("/admin/licenses.csv").await.html);
    assert_eq!(theirs.len(), 8);
    assert!(theirs[1..].iter().all(|r| r[2] == other.to_string()));
    assert_eq!(theirs[1][notes_at], "'+1");
    let name_at = theirs[0].iter().position(|c| c == "customer_name").unwrap();
    assert_eq!(
        theirs[1][name_at], "'=cmd|' /C calc'!A0",
        "the customer's name, neutralised"
    );
    assert_eq!(theirs[1][name_at + 1], "buyer@example.com");
    let refused = limited
        .get(&format!("/admin/licenses.csv?product={editor}"))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(!refused.html.contains("SUM"));
    let customers = csv_rows(&limited.get("/admin/customers.csv").await.html);
    assert_eq!(customers.len(), 2, "{customers:?}");
    assert_eq!(customers[1][2], "buyer@example.com");
    let list = limited.get("/admin/licenses").await;
    assert_eq!(keys_on(&list.html).len(), 7);
    assert!(
        !list.html.contains(">Editor<"),
        "only its product to filter by"
    );
}
sales_test!(
    console_csv_exports_stream_filtered_lists,
    csv_downloads_stream_every_row
);

/// Customers are listed in keyset pages and found by a prefix of their name or email in any
/// case; a customer's page shows their licenses. A user limited to a product sees only
/// customers holding one of its licenses, on every list. Names show as text.
async fn customers_are_listed_found_and_limited(db: &TestDb, app: &TestApp) {
    let mine = app.product("Mine", &["pro"]).await;
    let theirs = app.product("Theirs", &["pro"]).await;
    let customer = |name: String, email: String| async move {
        let r = app
            .post("/v1/customers", json!({"name": name, "email": email}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    };
    let ada = customer("Ada Lovelace".into(), "ada@example.com".into()).await;
    let alan = customer("Alan Turing".into(), "alan@example.com".into()).await;
    let evil = customer(format!("N {EVIL}"), "evil@example.com".into()).await;
    for i in 0..55 {
        customer(
            format!("Bulk Buyer {i:02}"),
            format!("bulk{i:02}@example.com"),
        )
        .await;
    }
    let ada_key = app
        .license(json!({"product_id": mine, "customer_id": ada, "trial": true, "period_days": 14}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let alan_key = app
        .license(json!({"product_id": theirs, "customer_id": alan}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.license(json!({"product_id": mine, "customer_id": evil, "blocked": true}))
        .await;

    console_user(db, "sales@example.com", Role::Sales, None).await;
    console_user(db, "mine@example.com", Role::Sales, Some(mine)).await;
    let mut b = signed_in(app, "sales@example.com").await;
    let first = b.get("/admin/customers").await;
    assert_eq!(first.status, 200);
    let count = |html: &str| html.matches("href=\"/admin/customers/").count();
    assert_eq!(count(&first.html), 50);
    let next = link(&first.html, "/admin/customers?q=").expect("a next page");
    assert!(next.contains("&after="), "{next}");
    let second = b.get(&next).await;
    assert_eq!(count(&second.html), 8);
    assert!(!second.html.contains("Next page"));
    assert!(!second.html.contains("Ada Lovelace") && first.html.contains("Ada Lovelace"));

    for (q, found) in [
        ("ADA", vec!["Ada Lovelace"]),
        ("alan@", vec!["Alan Turing"]),
        ("a", vec!["Ada Lovelace", "Alan Turing"]),
        ("bulk buyer 5", vec!["Bulk Buyer 50", "Bulk Buyer 54"]),
    ] {
        let r = b.get(&format!("/admin/customers?q={}", urlencode(q))).await;
        assert_eq!(r.status, 200, "{q}");
        for name in &found {
            assert!(r.html.contains(name), "{q} finds {name}");
        }
        assert!(!r.html.contains("Grace"), "{q}");
        if q == "a" {
            assert!(!r.html.contains("Bulk"), "a prefix, not a substring");
        }
    }
    for q in ["%", "_", "lovelace", "example.com"] {
        let r = b.get(&format!("/admin/customers?q={}", urlencode(q))).await;
        assert_eq!(count(&r.html), 0, "{q} matches no prefix");
    }

    let page = b.get(&format!("/admin/customers/{ada}")).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(&ada_key));
    assert!(page.html.contains("trial"));
    assert!(page
        .html
        .contains("No payment is recorded for this customer."));
    assert!(page.html.contains("/admin/issue?q=ada%40example.com"));

    // The license list's filters: trials, blocked, customer.
    let trials = b.get("/admin/licenses?trial=yes").await;
    assert_eq!(keys_on(&trials.html), vec![ada_key.clone()]);
    let ending = link(
        &b.get("/admin/licenses").await.html,
        "/admin/licenses?trial=yes",
    )
    .expect("a link to trials ending soon");
    assert_eq!(
        keys_on(&b.get(&ending).await.html),
        vec![ada_key.clone()],
        "its 14 days end within 14 days"
    );
    let blocked = b.get("/admin/licenses?blocked=yes").await;
    assert_eq!(keys_on(&blocked.html).len(), 1);
    assert!(!blocked.html.contains(&ada_key));
    let alans = b.get(&format!("/admin/licenses?customer={alan}")).await;
    assert_eq!(keys_on(&alans.html), vec![alan_key.clone()]);
    let bad = b.get("/admin/licenses?expires_before=soon").await;
    assert_eq!(bad.status, 422);

    // Limited to a product: its customers only, everywhere.
    let mut limited = signed_in(app, "mine@example.com").await;
    let list = limited.get("/admin/customers").await;
    assert_eq!(count(&list.html), 2, "{}", list.html);
    assert!(list.html.contains("Ada Lovelace") && !list.html.contains("Alan Turing"));
    assert_eq!(count(&limited.get("/admin/customers?q=alan").await.html), 0);
    assert_eq!(
        limited
            .get(&format!("/admin/customers/{alan}"))
            .await
            .status,
        404,
        "another product's customer looks like none"
    );
    let own = limited.get(&format!("/admin/customers/{ada}")).await;
    assert_eq!(own.status, 200);
    assert!(own
        .html
        .contains("Payments are shown to users not limited to a product."));
    let licenses = limited.get("/admin/licenses").await;
    assert!(!licenses.html.contains(&alan_key));
    assert_eq!(keys_on(&licenses.html).len(), 2);
    let issue = limited.get("/admin/issue?q=alan").await;
    assert!(
        !issue.html.contains("Alan Turing"),
        "not offered on the form"
    );
    let csrf = limited.csrf().await;
    let plan = plan(app, mine, "Mine yearly").await.to_string();
    let alan_text = alan.to_string();
    let r = limited
        .post(
            "/admin/issue",
            &[("csrf", &csrf), ("plan", &plan), ("customer", &alan_text)],
        )
        .await;
    assert_eq!(r.status, 422, "no such customer for this user: {}", r.html);
    let theirs_plan = self::plan(app, theirs, "Theirs yearly").await.to_string();
    let ada_text = ada.to_string();
    let r = limited
        .post(
            "/admin/issue",
            &[
                ("csrf", &csrf),
                ("plan", &theirs_plan),
                ("customer", &ada_text),
            ],
        )
        .await;
    assert_ne!(r.status, 303, "another product's plan: {}", r.html);
    let r = limited
        .post(
            "/admin/issue",
            &[
                ("csrf", &csrf),
                ("plan", &plan),
                ("customer", "new"),
                ("name", "New For Mine"),
            ],
        )
        .await;
    assert_eq!(
        r.status, 303,
        "a new customer with its product's license: {}",
        r.html
    );
    assert!(limited
        .get("/admin/customers?q=new for")
        .await
        .html
        .contains("New For Mine"));

    // Escaped everywhere a customer's name shows.
    for path in [
        "/admin/customers?q=n%20%3C".to_owned(),
        format!("/admin/customers/{evil}"),
        "/admin/issue?q=n%20%3Cs".to_owned(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            !r.html.contains("<script>") && !r.html.contains("<img"),
            "{path}"
        );
        assert!(
            r.html.contains(&format!("N {ESCAPED}")),
            "{path}: {}",
            r.html
        );
    }
}
sales_test!(
    console_customers_are_listed_found_and_limited,
    customers_are_listed_found_and_limited
);

/// The sales pages need a session, and every change its CSRF token.
async fn sales_pages_need_a_session(db: &TestDb, app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let mut anonymous = Browser::new(app);
    for path in [
        "/admin/issue",
        "/admin/licenses",
        "/admin/licenses.csv",
        "/admin/customers",
        "/admin/customers.csv",
        "/admin/customers/1",
        "/admin/issued?customer=1&from=1&to=1",
    ] {
        let r = anonymous.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.location.as_deref(), Some("/admin/login"), "{path}");
    }
    let plan = plan(app, product, "Yearly").await.to_string();
    console_user(db, "admin@example.com", Role::Admin, None).await;
    let mut b = signed_in(app, "admin@example.com").await;
    let other = signed_in(app, "admin@example.com").await.csrf().await;
    let r = b
        .post(
            "/admin/issue",
            &[
                ("csrf", &other),
                ("plan", &plan),
                ("customer", "new"),
                ("name", "Stolen Token"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "another session's token");
    assert_eq!(app.license_count().await, 0);
    let far = b.get("/admin/issued?customer=1&from=1&to=5000").await;
    assert_ne!(far.status, 200, "one issue is at most 1000 licenses");
}
sales_test!(
    console_sales_pages_need_a_session_and_csrf,
    sales_pages_need_a_session
);
