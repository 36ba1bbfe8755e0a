//! The owner's side of the admin console: the dashboard's numbers against data the test made
//! (licenses, payments through Stripe webhooks and localstripe, validations and activations,
//! expiries, failed events), product limits on it, two-step sign-in (TOTP), password change,
//! the session list, and user management that only owners reach.

use std::time::Duration;

use chrono::Utc;
use keyturn_core::totp::{step_of, TotpSecret};
use keyturn_core::Role;
use serde_json::json;

use crate::console::{console_user, Browser, Page, PASSWORD};
use crate::helpers::{backends, spawn, spawn_with, test_http, TestApp, TestDb};

/// Runs `$scenario(&db, &app)` on every backend, each on a fresh server.
macro_rules! owner_test {
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

const EVIL: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let mut b = Browser::new(app);
    let r = b.sign_in(email, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(r.location.as_deref(), Some("/admin"));
    b
}

/// The number in a dashboard tile: `<span class="big">N</span> <label>`.
fn tile(html: &str, label: &str) -> String {
    let end = html
        .find(&format!("</span> {label}"))
        .unwrap_or_else(|| panic!("no tile {label:?} in {html}"));
    let start = html[..end].rfind('>').unwrap() + 1;
    html[start..end].to_owned()
}

/// The value in row `day` of the table under the chart `id`.
fn table_value(html: &str, id: &str, day: &str) -> Option<String> {
    let chart = &html[html.find(&format!("id=\"{id}\""))?..];
    let chart = &chart[..chart.find("</figure>")?];
    let row = &chart[chart.find(&format!("<th scope=\"row\">{day}</th>"))?..];
    let cell = &row[row.find("<td class=\"num\">")? + 16..];
    Some(cell[..cell.find('<')?].to_owned())
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

/// The dashboard once the counters of the last few seconds are written (every 5 s).
async fn dashboard_when(b: &mut Browser, path: &str, ready: impl Fn(&str) -> bool) -> Page {
    for _ in 0..40 {
        let page = b.get(path).await;
        assert_eq!(page.status, 200, "{:?} {}", page.location, page.html);
        if ready(&page.html) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the dashboard never showed the expected numbers");
}

async fn dashboard_numbers(db: &TestDb, app: &TestApp) {
    let stripe = crate::stripe::world(app, Utc::now().timestamp()).await;
    let editor: i64 = app.get("/v1/products").await.body["data"][0]["id"]
        .as_i64()
        .unwrap();
    let other = app.product(&format!("Other {EVIL}"), &[]).await;
    // Today: three licenses of Editor (one blocked), two of the other product; a payment of
    // 98.00 EUR through a Stripe webhook (two more Editor licenses); one event that fails.
    let soon = app
        .license(json!({"product_id": editor, "period_days": 5, "max_machines": 1}))
        .await;
    app.license(json!({"product_id": editor, "period_days": 5}))
        .await;
    let blocked = app
        .license(json!({"product_id": editor, "period_days": 5}))
        .await;
    let id = blocked["id"].as_i64().unwrap();
    let r = app
        .post(&format!("/v1/licenses/{id}/block"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for _ in 0..2 {
        app.license(json!({"product_id": other, "period_days": 400}))
            .await;
    }
    let r = crate::stripe::deliver(
        app,
        &crate::stripe::fixture("01_checkout_payment", &stripe.vars),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let failing = crate::stripe::fixture("09_invoice_paid_second", &stripe.vars)
        .replace("price_monthly", "price_unknown");
    assert_eq!(crate::stripe::deliver(app, &failing).await.status, 422);

    // Programs: three valid validations, one of an unknown key, one of a blocked license;
    // an activation, and one refused for want of seats.
    let key = soon["key"].as_str().unwrap();
    let on = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "machine-1"}),
        )
        .await;
    assert_eq!(on.status, 201, "{}", on.body);
    let full = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "machine-2"}),
        )
        .await;
    assert_eq!(full.status, 409, "{}", full.body);
    for _ in 0..3 {
        let v = app
            .public(
                "/v1/validate",
                json!({"key": key, "fingerprint": "machine-1"}),
            )
            .await;
        assert_eq!(v.body["valid"], true, "{}", v.body);
    }
    app.public("/v1/validate", json!({"key": "AAAAA-BBBBB-CCCCC-DDDDD"}))
        .await;
    app.public("/v1/validate", json!({"key": blocked["key"]}))
        .await;

    console_user(db, "owner@example.com", Role::Owner, None).await;
    let mut owner = signed_in(app, "owner@example.com").await;
    let page = dashboard_when(&mut owner, "/admin", |html| {
        html.contains("<span class=\"big\">5</span> validations")
    })
    .await;
    let html = &page.html;
    assert!(
        html.contains("aria-current=\"page\">Last 30 days"),
        "{html}"
    );
    assert_eq!(tile(html, "new licenses"), "7");
    assert_eq!(tile(html, "validations"), "5");
    assert_eq!(tile(html, "activation requests"), "2");
    assert_eq!(tile(html, "machines holding a seat"), "1");
    assert_eq!(tile(html, "revenue"), "98.00 EUR");
    assert_eq!(tile(html, "failed provider events"), "1");
    let day = today();
    assert_eq!(
        table_value(html, "new-licenses", &day).as_deref(),
        Some("7")
    );
    assert_eq!(
        table_value(html, "revenue-0", &day).as_deref(),
        Some("98.00 EUR")
    );
    // Validations by result: the table's columns are the codes seen, in chart order.
    let validations = &html[html.find("id=\"validations\"").unwrap()..];
    let validations = &validations[..validations.find("</figure>").unwrap()];
    for (label, total) in [("valid", "3"), ("not found", "1"), ("blocked", "1")] {
        assert!(
            validations.contains(&format!("{label}: <strong>{total}</strong>")),
            "{label} {total} in {validations}"
        );
    }
    let activations = &html[html.find("id=\"activations\"").unwrap()..];
    assert!(activations.contains("valid: <strong>1</strong>"));
    assert!(activations.contains("too many machines: <strong>1</strong>"));
    // Expiring within 30 days: the two unblocked five-day licenses (the blocked one and
    // the 400-day ones do not count); the Stripe licenses run a year.
    let in_five = (Utc::now() + chrono::Duration::days(5))
        .format("%Y-%m-%d")
        .to_string();
    let calendar = &html[html.find("id=\"expiring\"").unwrap()..];
    assert!(
        calendar.contains(&format!(
            "<th scope=\"row\">{in_five}</th><td class=\"num\">2</td>"
        )),
        "{calendar}"
    );
    assert!(calendar.contains("2 in all"));
    assert!(html.contains("href=\"/admin/events?status=failed\""));
    assert!(html.contains("<svg class=\"bars\" role=\"img\""));
    // Today's bar is drawn, and every SVG element is closed (an open one hides the rest).
    assert!(html.contains("<rect class=\"s0\""), "a bar of new licenses");
    for element in ["line", "rect", "text"] {
        assert_eq!(
            html.matches(&format!("<{element} ")).count(),
            html.matches(&format!("</{element}>")).count(),
            "every <{element}> closed"
        );
    }
    assert!(!html.contains("style="), "no inline style");
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/admin/console.js\"").count(),
        "no script but the console's own file"
    );

    // 90 days: the same numbers, a longer window.
    let ninety = owner.get("/admin?days=90").await;
    assert!(ninety.html.contains("aria-current=\"page\">Last 90 days"));
    assert_eq!(tile(&ninety.html, "new licenses"), "7");
    assert!(ninety.html.contains("machines seen in 90 days"));

    // A viewer limited to the other product sees its numbers only, and no money.
    console_user(db, "viewer@example.com", Role::ReadOnly, Some(other)).await;
    let mut viewer = signed_in(app, "viewer@example.com").await;
    let limited = viewer.get("/admin").await;
    assert_eq!(limited.status, 200, "{}", limited.html);
    assert_eq!(tile(&limited.html, "new licenses"), "2");
    assert_eq!(tile(&limited.html, "validations"), "0");
    assert_eq!(tile(&limited.html, "machines holding a seat"), "0");
    assert!(!limited.html.contains("revenue"));
    assert!(!limited.html.contains("failed provider events"));
    assert!(limited
        .html
        .contains("Revenue is shown to users who may read payments of every product."));
    // Support and sales land on the search they work from.
    console_user(db, "support@example.com", Role::Support, None).await;
    let mut support = signed_in(app, "support@example.com").await;
    let home = support.get("/admin").await;
    assert_eq!(home.location.as_deref(), Some("/admin/search"));
    assert!(!support
        .get("/admin/search")
        .await
        .html
        .contains("Dashboard"));
    // The product's name shows as text wherever it appears (the users page lists products).
    let users = owner.get("/admin/users").await;
    assert!(
        users.html.contains(&format!("Other {ESCAPED}")),
        "{}",
        users.html
    );
    assert!(!users.html.contains("<script>") && !users.html.contains("<img"));
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_dashboard_shows_what_happened_and_limits_it_to_the_users_product() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), crate::stripe::providers().await).await;
        dashboard_numbers(&db, &app).await;
        app.stop().await;
        db.remove().await;
    }
}

/// A purchase made through Stripe itself (localstripe delivering its signed webhooks) shows up
/// in the dashboard's revenue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_dashboard_shows_a_stripe_purchase_in_revenue() {
    use crate::localstripe::{Localstripe, KEY, SECRET};
    use keyturn_providers::stripe::{StripeAdapter, StripeApi};
    for backend in backends() {
        let ls = Localstripe::start().await;
        let db = TestDb::create(&backend).await;
        let providers = keyturn_providers::Providers {
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
        let webhook = format!("{}/webhooks/stripe", app.base);
        ls.post(
            "/_config/webhooks/keyturn",
            &[("url", &webhook), ("secret", SECRET)],
        )
        .await;
        console_user(&db, "owner@example.com", Role::Owner, None).await;
        let mut owner = signed_in(&app, "owner@example.com").await;
        let before = owner.get("/admin").await;
        assert!(before
            .html
            .contains("No payment received in the last 30 days."));

        ls.subscribe("ada@example.com").await;
        // The payment and the license may come with different events of the purchase: wait
        // for both before reading the tiles.
        let page = dashboard_when(&mut owner, "/admin", |html| {
            html.contains("EUR</span> revenue") && tile(html, "new licenses") == "1"
        })
        .await;
        assert_eq!(tile(&page.html, "revenue"), "25.00 EUR");
        assert_eq!(
            table_value(&page.html, "revenue-0", &today()).as_deref(),
            Some("25.00 EUR")
        );
        assert!(page.html.contains("stripe: <strong>25.00 EUR</strong>"));
        assert_eq!(tile(&page.html, "new licenses"), "1");
        app.stop().await;
        db.remove().await;
        drop(ls);
    }
}

/// The key shown while enrolling, without its spaces.
fn enrolment_secret(html: &str) -> TotpSecret {
    let at = html
        .find("<code class=\"secret\">")
        .unwrap_or_else(|| panic!("no key on {html}"));
    let rest = &html[at + 21..];
    let text: String = rest[..rest.find('<').unwrap()]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    TotpSecret::from_base32(&text).unwrap()
}

async fn sign_in_with_code(app: &TestApp, code: &str) -> (Browser, Page) {
    let mut b = Browser::new(app);
    let r = b.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(r.location.as_deref(), Some("/admin/login/code"));
    assert!(
        !b.cookies.contains_key("keyturn_console"),
        "no session before the code"
    );
    let form = b.get("/admin/login/code").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    let done = b
        .post("/admin/login/code", &[("csrf", &csrf), ("code", code)])
        .await;
    (b, done)
}

async fn two_step_sign_in(db: &TestDb, app: &TestApp) {
    console_user(db, "owner@example.com", Role::Owner, None).await;
    let mut b = signed_in(app, "owner@example.com").await;
    let csrf = b.csrf().await;
    let r = b
        .post("/admin/account/totp/begin", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    let page = b.get("/admin/account").await;
    assert!(page.html.contains("<svg class=\"qr\""), "a QR code");
    assert!(page
        .html
        .contains("otpauth://totp/Keyturn:owner%40example.com?secret="));
    let secret = enrolment_secret(&page.html);
    let wrong = b
        .post(
            "/admin/account/totp/confirm",
            &[("csrf", &csrf), ("code", "12345x")],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    let step = step_of(Utc::now());
    let on = b
        .post(
            "/admin/account/totp/confirm",
            &[("csrf", &csrf), ("code", &secret.code_at_step(step))],
        )
        .await;
    assert_eq!(on.status, 303, "{}", on.html);
    let page = b.get("/admin/account").await;
    assert!(page.html.contains("Turn off two-step sign-in"));
    assert!(
        !page.html.contains("code class=\"secret\""),
        "the key is never shown again"
    );

    // Signing in now asks for the code; the enrolment's code is spent, the next one works.
    let (_, reused) = sign_in_with_code(app, &secret.code_at_step(step)).await;
    assert_eq!(
        reused.status, 401,
        "the enrolment's code again: {}",
        reused.html
    );
    let next = secret.code_at_step(step + 1);
    let (mut signed, done) = sign_in_with_code(app, &next).await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert_eq!(done.location.as_deref(), Some("/admin"));
    assert_eq!(signed.get("/admin").await.status, 200);
    assert!(
        !signed.cookies.contains_key("keyturn_console_code"),
        "the half-way cookie is cleared"
    );
    // A code used once is refused the second time.
    let (_, again) = sign_in_with_code(app, &next).await;
    assert_eq!(again.status, 401, "{}", again.html);
    // Wrong codes count like wrong passwords: five, then even the right code waits.
    let (mut guesser, first) = sign_in_with_code(app, "000000").await;
    let mut statuses = vec![first.status];
    let form = guesser.get("/admin/login/code").await;
    let csrf = form.csrf();
    for _ in 0..4 {
        let r = guesser
            .post("/admin/login/code", &[("csrf", &csrf), ("code", "000000")])
            .await;
        statuses.push(r.status);
    }
    assert!(statuses.contains(&429), "throttled: {statuses:?}");
    let right = secret.code_at_step(step_of(Utc::now()) + 1);
    let late = guesser
        .post("/admin/login/code", &[("csrf", &csrf), ("code", &right)])
        .await;
    assert_eq!(late.status, 429, "{}", late.html);
    assert!(!guesser.cookies.contains_key("keyturn_console"));
    // A code page without the half-way cookie, or with a forged token, gets nothing.
    let mut stranger = Browser::new(app);
    let r = stranger
        .post("/admin/login/code", &[("csrf", "x"), ("code", &right)])
        .await;
    assert_eq!(r.location.as_deref(), Some("/admin/login"));
}
owner_test!(
    console_two_step_sign_in_asks_for_a_fresh_code_and_throttles_guesses,
    two_step_sign_in
);

/// Turning the second factor off needs a current code too.
async fn two_step_sign_in_turns_off_with_a_code(db: &TestDb, app: &TestApp) {
    console_user(db, "owner@example.com", Role::Owner, None).await;
    let mut b = signed_in(app, "owner@example.com").await;
    let csrf = b.csrf().await;
    b.post("/admin/account/totp/begin", &[("csrf", &csrf)])
        .await;
    let secret = enrolment_secret(&b.get("/admin/account").await.html);
    let step = step_of(Utc::now());
    let on = b
        .post(
            "/admin/account/totp/confirm",
            &[("csrf", &csrf), ("code", &secret.code_at_step(step))],
        )
        .await;
    assert_eq!(on.status, 303);
    let refused = b
        .post(
            "/admin/account/totp/disable",
            &[("csrf", &csrf), ("code", &secret.code_at_step(step))],
        )
        .await;
    assert_eq!(refused.status, 401, "a spent code does not turn it off");
    let off = b
        .post(
            "/admin/account/totp/disable",
            &[("csrf", &csrf), ("code", &secret.code_at_step(step + 1))],
        )
        .await;
    assert_eq!(off.status, 303, "{}", off.html);
    let r = Browser::new(app)
        .sign_in("owner@example.com", PASSWORD)
        .await;
    assert_eq!(
        r.location.as_deref(),
        Some("/admin"),
        "the password alone again"
    );
}
owner_test!(
    console_two_step_sign_in_turns_off_only_with_a_code,
    two_step_sign_in_turns_off_with_a_code
);

async fn password_change_ends_other_sessions(db: &TestDb, app: &TestApp) {
    console_user(db, "admin@example.com", Role::Admin, None).await;
    let mut here = signed_in(app, "admin@example.com").await;
    let mut there = signed_in(app, "admin@example.com").await;
    let csrf = here.csrf().await;
    let new = "another long passphrase";
    let wrong = here
        .post(
            "/admin/account/password",
            &[
                ("csrf", &csrf),
                ("current", "not it at all"),
                ("new", new),
                ("again", new),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.html);
    assert!(wrong.html.contains("The current password is not right."));
    let differ = here
        .post(
            "/admin/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", new),
                ("again", "typo"),
            ],
        )
        .await;
    assert_eq!(differ.status, 422);
    let short = here
        .post(
            "/admin/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", "short"),
                ("again", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 422, "{}", short.html);
    assert_eq!(there.get("/admin").await.status, 200, "nothing changed yet");
    let done = here
        .post(
            "/admin/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", new),
                ("again", new),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert_eq!(
        there.get("/admin").await.location.as_deref(),
        Some("/admin/login"),
        "the other session ended"
    );
    assert_eq!(here.get("/admin").await.status, 200, "this one goes on");
    let old = Browser::new(app)
        .sign_in("admin@example.com", PASSWORD)
        .await;
    assert_eq!(old.status, 401);
    let fresh = Browser::new(app).sign_in("admin@example.com", new).await;
    assert_eq!(fresh.status, 303);
}
owner_test!(
    console_password_change_ends_every_other_session,
    password_change_ends_other_sessions
);

/// The session-end forms of a session list page, by session hash.
fn session_handles(html: &str) -> Vec<String> {
    html.match_indices("name=\"session\" value=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

async fn sessions_are_listed_and_ended(db: &TestDb, app: &TestApp) {
    console_user(db, "ann@example.com", Role::Support, None).await;
    console_user(db, "bob@example.com", Role::Support, None).await;
    let mut laptop = signed_in(app, "ann@example.com").await;
    // The phone signs in with a user agent that tries to inject markup.
    let mut phone = Browser::new(app);
    let form = phone.get("/admin/login").await;
    let req = phone
        .http
        .post(format!("{}/admin/login", phone.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", format!("Phone {EVIL}"))
        .body(
            serde_urlencoded::to_string([
                ("csrf", form.csrf().as_str()),
                ("email", "ann@example.com"),
                ("password", PASSWORD),
            ])
            .unwrap(),
        );
    assert_eq!(phone.send(req).await.status, 303);
    let mut bob = signed_in(app, "bob@example.com").await;

    let list = laptop.get("/admin/account/sessions").await;
    assert_eq!(list.status, 200);
    assert!(list.html.contains("This session"));
    assert!(
        list.html.contains(&format!("Phone {ESCAPED}")),
        "{}",
        list.html
    );
    assert!(!list.html.contains("<script>"));
    let handles = session_handles(&list.html);
    assert_eq!(handles.len(), 1, "the phone's, not this one's: {handles:?}");
    let bobs = session_handles(&bob.get("/admin/account/sessions").await.html);
    assert!(bobs.is_empty(), "bob has one session, this one");
    let bob_list = bob.get("/admin/account/sessions").await.html;
    assert!(!bob_list.contains("Phone"), "only one's own sessions");

    // Bob's session cannot be ended from Ann's account, even by its handle.
    let bob_handle = {
        let mut second = signed_in(app, "bob@example.com").await;
        let h = session_handles(&second.get("/admin/account/sessions").await.html);
        assert_eq!(h.len(), 1);
        h[0].clone()
    };
    let csrf = laptop.csrf().await;
    let refused = laptop
        .post(
            "/admin/account/sessions/end",
            &[("csrf", &csrf), ("session", &bob_handle)],
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.html);
    assert_eq!(bob.get("/admin/search").await.status, 200);

    let ended = laptop
        .post(
            "/admin/account/sessions/end",
            &[("csrf", &csrf), ("session", &handles[0])],
        )
        .await;
    assert_eq!(ended.status, 303, "{}", ended.html);
    assert_eq!(
        phone.get("/admin/search").await.location.as_deref(),
        Some("/admin/login")
    );
    assert_eq!(laptop.get("/admin/search").await.status, 200);
    let again = laptop
        .post(
            "/admin/account/sessions/end",
            &[("csrf", &csrf), ("session", &handles[0])],
        )
        .await;
    assert_eq!(again.status, 404, "an ended session stays ended");

    // Every other session at once.
    let mut tablet = signed_in(app, "ann@example.com").await;
    let r = laptop
        .post("/admin/account/sessions/end-others", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        tablet.get("/admin/search").await.location.as_deref(),
        Some("/admin/login")
    );
    assert_eq!(laptop.get("/admin/search").await.status, 200);
}
owner_test!(
    console_sessions_are_listed_and_ended_by_their_user_only,
    sessions_are_listed_and_ended
);

async fn owners_manage_users(db: &TestDb, app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    console_user(db, "owner@example.com", Role::Owner, None).await;
    console_user(db, "admin@example.com", Role::Admin, None).await;
    console_user(db, "limited-owner@example.com", Role::Owner, Some(product)).await;
    let mut owner = signed_in(app, "owner@example.com").await;
    let list = owner.get("/admin/users").await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert!(list.html.contains("admin@example.com"));
    let csrf = owner.csrf().await;
    let created = owner
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("email", "Help@Example.com"),
                ("role", "support"),
                ("product", ""),
                ("password", "a fresh initial password"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.html);
    let dup = owner
        .post(
            "/admin/users",
            &[
                ("csrf", &csrf),
                ("email", "help@example.com"),
                ("role", "support"),
                ("password", "a fresh initial password"),
            ],
        )
        .await;
    assert_eq!(dup.status, 422, "{}", dup.html);
    assert!(dup.html.contains("exists already"));
    let mut help = Browser::new(app);
    let r = help
        .sign_in("help@example.com", "a fresh initial password")
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        help.get("/admin").await.location.as_deref(),
        Some("/admin/search")
    );
    let id = {
        let html = owner.get("/admin/users").await.html;
        let at = html.find(">help@example.com<").unwrap();
        let href = html[..at].rfind("/admin/users/").unwrap();
        html[href + 13..at - 1].parse::<i64>().unwrap()
    };
    // Change role and product: the user's next request has them.
    let r = owner
        .post(
            &format!("/admin/users/{id}/access"),
            &[
                ("csrf", &csrf),
                ("role", "read_only"),
                ("product", &product.to_string()),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(
        help.get("/admin").await.status,
        200,
        "read-only lands on the dashboard"
    );
    assert!(help
        .get("/admin")
        .await
        .html
        .contains(&format!("product {product} only")));
    // Disable: their session ends and they cannot sign in.
    let r = owner
        .post(&format!("/admin/users/{id}/disable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(
        help.get("/admin").await.location.as_deref(),
        Some("/admin/login")
    );
    assert_eq!(
        Browser::new(app)
            .sign_in("help@example.com", "a fresh initial password")
            .await
            .status,
        401
    );
    let r = owner
        .post(&format!("/admin/users/{id}/enable"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    let mut help = Browser::new(app);
    let r = help
        .sign_in("help@example.com", "a fresh initial password")
        .await;
    assert_eq!(r.status, 303, "enabled again");
    // An owner cannot change or disable themselves.
    let me = owner.get("/admin/users").await.html;
    let at = me.find(">owner@example.com<").unwrap();
    let href = me[..at].rfind("/admin/users/").unwrap();
    let own_id: i64 = me[href + 13..at - 1].parse().unwrap();
    let r = owner
        .post(
            &format!("/admin/users/{own_id}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    // Every change is in the log under the owner's name.
    let log = owner.get("/admin/users").await.html;
    for action in [
        "user_created",
        "user_changed",
        "user_disabled",
        "user_enabled",
    ] {
        assert!(
            log.contains(&format!(
                "<strong>{action}</strong> by <span class=\"actor\">user:owner@example.com</span>"
            )),
            "{action} in {log}"
        );
    }
    // Nobody else reaches any of it.
    let mut admin = signed_in(app, "admin@example.com").await;
    let mut limited = signed_in(app, "limited-owner@example.com").await;
    for b in [&mut admin, &mut limited, &mut help] {
        assert_eq!(b.get("/admin/users").await.status, 403);
        assert_eq!(b.get(&format!("/admin/users/{id}")).await.status, 403);
        let csrf = b.csrf().await;
        let r = b
            .post(
                "/admin/users",
                &[
                    ("csrf", &csrf),
                    ("email", "sneaky@example.com"),
                    ("role", "owner"),
                    ("password", "a sneaky long password"),
                ],
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.html);
        let r = b
            .post(
                &format!("/admin/users/{own_id}/disable"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 403);
        assert!(!b.get("/admin/search").await.html.contains("/admin/users"));
    }
    assert_eq!(
        Browser::new(app)
            .sign_in("sneaky@example.com", "a sneaky long password")
            .await
            .status,
        401,
        "no user was made"
    );
    assert!(owner
        .get("/admin/search")
        .await
        .html
        .contains("/admin/users"));
    // And a form without the token changes nothing.
    let r = owner
        .post(&format!("/admin/users/{id}/disable"), &[("csrf", "forged")])
        .await;
    assert_eq!(r.status, 403);
}
owner_test!(console_only_owners_manage_users, owners_manage_users);

/// The owner's journey in a real browser against the server: the dashboard (over data that
/// fills its charts), 30 and 90 days, two-step sign-in set up and used, a support user added.
/// axe-core checks every page at phone and desktop widths; the screenshots are kept under the
/// target directory (`console-screenshots/owner-*.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_owner_journey_in_a_real_browser() {
    let (chromium, node_dir) = match crate::console::browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let db = TestDb::create(&crate::helpers::Backend::Sqlite).await;
    let app = spawn_with(&db, test_http(), crate::stripe::providers().await).await;
    let stripe = crate::stripe::world(&app, Utc::now().timestamp()).await;
    let r = crate::stripe::deliver(
        &app,
        &crate::stripe::fixture("01_checkout_payment", &stripe.vars),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let product = app.product("Suite", &[]).await;
    for days in [3, 3, 9, 17, 17, 17, 25] {
        let l = app
            .license(json!({"product_id": product, "period_days": days, "max_machines": 2}))
            .await;
        let key = l["key"].as_str().unwrap();
        app.public(
            "/v1/activations",
            json!({"key": key, "fingerprint": format!("m-{days}")}),
        )
        .await;
        for _ in 0..days % 4 + 1 {
            app.public(
                "/v1/validate",
                json!({"key": key, "fingerprint": format!("m-{days}")}),
            )
            .await;
        }
    }
    app.public("/v1/validate", json!({"key": "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ"}))
        .await;
    console_user(&db, "owner@example.com", Role::Owner, None).await;
    // Let the counters reach the database, so the charts have bars.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = format!(
        "{}/tests/browser/console-owner.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(&script, node_dir.join("console-owner.mjs")).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("console-owner.mjs")
        .current_dir(&node_dir)
        .env("BASE", &app.base)
        .env("EMAIL", "owner@example.com")
        .env("PASSWORD", PASSWORD)
        .env("SUPPORT_EMAIL", "helper@example.com")
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser run ends within 4 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("the script's report");
    assert_eq!(report["signedInWithCode"], true, "{report}");
    assert_eq!(report["supportCreated"], true, "{report}");
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 18, "{report}");
    for page in pages {
        assert_eq!(
            page["serious"], 0,
            "serious or critical accessibility violations on {} ({}): {}",
            page["name"], page["size"], page["violations"]
        );
        let shot = shots.join(format!(
            "owner-{}-{}.png",
            page["name"].as_str().unwrap(),
            page["size"].as_str().unwrap()
        ));
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 1000,
            "{}",
            shot.display()
        );
    }
    // The user the browser created signs in, and lands on the search.
    let mut helper = Browser::new(&app);
    let r = helper
        .sign_in("helper@example.com", "a support initial password")
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(
        helper.get("/admin").await.location.as_deref(),
        Some("/admin/search")
    );
    app.stop().await;
    db.remove().await;
}
