//! The customer portal (/portal) as a browser without JavaScript uses it: sign-in by a
//! mailed one-time link or by key and email, what a buyer sees, and what they never see.

use reqwest::redirect::Policy;
use serde_json::json;
use sqlx::Row;

use crate::console::{console_user, Browser, PASSWORD};
use crate::helpers::{backends, spawn, test_http, TestApp, TestDb};

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

/// Mail queued for `to`, oldest first: (subject, body).
async fn mail_to(db: &TestDb, to: &str) -> Vec<(String, String)> {
    let pool = pool(db).await;
    let rows =
        sqlx::query("SELECT subject, body FROM mail_outbox WHERE to_address = $1 ORDER BY id")
            .bind(to)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| (r.get::<String, _>("subject"), r.get::<String, _>("body")))
        .collect()
}

/// The path of the newest sign-in link mailed to `to`.
async fn link_for(db: &TestDb, to: &str) -> String {
    let mail = mail_to(db, to).await;
    let (_, body) = mail
        .iter()
        .rev()
        .find(|(s, _)| s == "Your sign-in link")
        .unwrap_or_else(|| panic!("no sign-in mail to {to} in {mail:?}"));
    let at = body.find("/portal/link/").expect("a link in the mail");
    body[at..].split_whitespace().next().unwrap().to_owned()
}

/// A customer with a license of a new product and one machine on it; the license's key.
async fn buyer(app: &TestApp, email: &str, product: &str, machine: &str) -> String {
    let product = app.product(product, &["pro"]).await;
    let customer = app
        .post("/v1/customers", json!({"name": "Buyer", "email": email}))
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let license = app
        .license(json!({"product_id": product, "customer_id": customer.body["id"], "max_machines": 3, "features": ["pro"]}))
        .await;
    let key = license["key"].as_str().unwrap().to_owned();
    let activated = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": format!("fp-{machine}"), "name": machine}),
        )
        .await;
    assert!(activated.status < 300, "{}", activated.body);
    key
}

async fn ask_for_link(browser: &mut Browser, email: &str) -> crate::console::Page {
    let form = browser.get("/portal/sign-in").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    browser
        .post("/portal/sign-in/link", &[("csrf", &csrf), ("email", email)])
        .await
}

/// Opens a mailed link and presses its button.
async fn follow(browser: &mut Browser, link: &str) -> crate::console::Page {
    let shown = browser.get(link).await;
    assert_eq!(shown.status, 200, "{}", shown.html);
    let csrf = shown.csrf();
    browser.post(link, &[("csrf", &csrf)]).await
}

async fn signs_in_by_link_once(db: &TestDb, app: &TestApp) {
    let key = buyer(app, "Ann@Example.com", "Editor", "ann-laptop").await;
    let mut browser = Browser::new(app);
    let sent = ask_for_link(&mut browser, "ann@example.COM").await;
    assert_eq!(sent.status, 200, "{}", sent.html);
    assert!(sent.html.contains("Check your mail"));
    // Mailed to the address as the buyer typed it, lower-cased.
    let link = link_for(db, "ann@example.com").await;

    // Opening the link (as a mail scanner would) does not use it up.
    let shown = browser.get(&link).await;
    assert_eq!(shown.status, 200);
    let again = browser.get(&link).await;
    assert_eq!(again.status, 200);

    let signed = follow(&mut browser, &link).await;
    assert_eq!(signed.status, 303, "{}", signed.html);
    assert_eq!(signed.location.as_deref(), Some("/portal/licenses"));
    let set = signed
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let session = set
        .iter()
        .find(|c| c.starts_with("keyturn_portal="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/portal"),
        "{session}"
    );

    let page = browser.get("/portal/licenses").await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(&key), "the key is shown");
    assert!(page.html.contains("Editor") && page.html.contains("ann-laptop"));
    assert!(page.html.contains("1 of 3"), "machine count of the limit");
    assert!(page.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));

    // The link works once: a second browser cannot use it again.
    let mut other = Browser::new(app);
    let reused = follow(&mut other, &link).await;
    assert_eq!(reused.status, 410, "{}", reused.html);
    assert!(!other.cookies.contains_key("keyturn_portal"));
    assert_eq!(
        other.get("/portal/licenses").await.location.as_deref(),
        Some("/portal/sign-in")
    );

    // The sign-in is in the audit log under the customer.
    let pool = pool(db).await;
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM console_events WHERE actor = $1 AND action = 'portal_signed_in'",
    )
    .bind("customer:ann@example.com")
    .fetch_one(&pool)
    .await
    .unwrap()
    .get("n");
    assert_eq!(n, 1);
    pool.close().await;

    // Sign-out needs the session's token and ends the session.
    let page = browser.get("/portal/licenses").await;
    let forged = browser.post("/portal/sign-out", &[("csrf", "nope")]).await;
    assert_eq!(forged.status, 403);
    let out = browser
        .post("/portal/sign-out", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        browser.get("/portal/licenses").await.location.as_deref(),
        Some("/portal/sign-in")
    );
}
portal_test!(portal_sign_in_links_work_once, signs_in_by_link_once);

async fn expired_links_do_not_work(db: &TestDb, app: &TestApp) {
    buyer(app, "bea@example.com", "Editor", "bea-pc").await;
    let mut browser = Browser::new(app);
    ask_for_link(&mut browser, "bea@example.com").await;
    let link = link_for(db, "bea@example.com").await;
    // Fifteen minutes pass: the link's expiry is moved to just now.
    let pool = pool(db).await;
    let now = chrono::Utc::now().timestamp();
    sqlx::query("UPDATE portal_links SET expires_at = $1")
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    let stored: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM portal_links WHERE id_hash LIKE 'ks_%'")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
    assert_eq!(stored, 0, "links are stored hashed");
    pool.close().await;
    let late = follow(&mut browser, &link).await;
    assert_eq!(late.status, 410, "{}", late.html);
    assert!(!browser.cookies.contains_key("keyturn_portal"));
    // A made-up link is no better.
    let made_up = follow(&mut browser, "/portal/link/ks_madeup").await;
    assert_eq!(made_up.status, 410);
}
portal_test!(portal_sign_in_links_expire, expired_links_do_not_work);

async fn unknown_emails_look_like_known_ones(db: &TestDb, app: &TestApp) {
    buyer(app, "cy@example.com", "Editor", "cy-pc").await;
    let mut browser = Browser::new(app);
    let known = ask_for_link(&mut browser, "cy@example.com").await;
    let unknown = ask_for_link(&mut browser, "nobody@example.com").await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(known.html, unknown.html, "the same answer for both");
    assert_eq!(mail_to(db, "cy@example.com").await.len(), 1);
    assert!(
        mail_to(db, "nobody@example.com").await.is_empty(),
        "no mail to strangers"
    );

    // Throttled per email, known or not, after five requests in the window...
    for _ in 0..4 {
        assert_eq!(
            ask_for_link(&mut browser, "nobody@example.com")
                .await
                .status,
            200
        );
    }
    let throttled = ask_for_link(&mut browser, "nobody@example.com").await;
    assert_eq!(throttled.status, 429);
    for _ in 0..4 {
        assert_eq!(
            ask_for_link(&mut browser, "cy@example.com").await.status,
            200
        );
    }
    assert_eq!(
        ask_for_link(&mut browser, "cy@example.com").await.status,
        429
    );
    assert_eq!(
        mail_to(db, "cy@example.com").await.len(),
        5,
        "no mail once throttled"
    );
    // ...and per address, whatever the email.
    let mut last = 0;
    for i in 0..12 {
        last = ask_for_link(&mut browser, &format!("x{i}@example.com"))
            .await
            .status;
    }
    assert_eq!(last, 429, "twenty requests from one address at most");

    // A form without its cookie's token is refused.
    let mut fresh = Browser::new(app);
    let forged = fresh
        .post(
            "/portal/sign-in/link",
            &[("csrf", "x"), ("email", "cy@example.com")],
        )
        .await;
    assert_eq!(forged.status, 403);
}
portal_test!(
    portal_email_enumeration_gives_nothing,
    unknown_emails_look_like_known_ones
);

async fn buyers_see_only_their_own(db: &TestDb, app: &TestApp) {
    let dana = buyer(app, "dana@example.com", "Editor", "dana-pc").await;
    let eve = buyer(app, "eve@example.com", "Painter", "eve-pc").await;

    // Key and email sign-in: the pair must belong together.
    let mut browser = Browser::new(app);
    let form = browser.get("/portal/sign-in").await;
    let csrf = form.csrf();
    let wrong = browser
        .post(
            "/portal/sign-in/key",
            &[
                ("csrf", &csrf),
                ("key", &eve),
                ("email", "dana@example.com"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(!browser.cookies.contains_key("keyturn_portal"));
    let right = browser
        .post(
            "/portal/sign-in/key",
            &[
                ("csrf", &csrf),
                ("key", &dana.to_lowercase()),
                ("email", "DANA@example.com"),
            ],
        )
        .await;
    assert_eq!(right.status, 303, "{}", right.html);
    let page = browser.get("/portal/licenses").await;
    assert!(page.html.contains(&dana));
    assert!(
        !page.html.contains(&eve) && !page.html.contains("eve-pc"),
        "nothing of another buyer"
    );

    // The portal session is no console session, and a console session is no portal session.
    let portal_secret = browser.cookies["keyturn_portal"].clone();
    let mut admin = Browser::new(app);
    admin
        .cookies
        .insert("keyturn_console".into(), portal_secret);
    assert_eq!(
        admin.get("/admin/search").await.location.as_deref(),
        Some("/admin/login")
    );
    console_user(db, "owner@example.com", keyturn_core::Role::Owner, None).await;
    let mut staff = Browser::new(app);
    assert_eq!(
        staff.sign_in("owner@example.com", PASSWORD).await.status,
        303
    );
    let console_secret = staff.cookies["keyturn_console"].clone();
    let mut mixed = Browser::new(app);
    mixed
        .cookies
        .insert("keyturn_portal".into(), console_secret);
    assert_eq!(
        mixed.get("/portal/licenses").await.location.as_deref(),
        Some("/portal/sign-in")
    );

    // Without a session, nothing but a redirect to sign-in.
    let anonymous = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let r = anonymous
        .get(format!("{}/portal/licenses", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}
portal_test!(
    portal_buyers_see_only_their_own_licenses,
    buyers_see_only_their_own
);
