//! The admin console (/admin) as a browser without JavaScript uses it: sign-in, sessions,
//! CSRF, throttling, what each role and product limit may reach, escaping, and the support
//! journey (search, license page, free a machine, change a license).

use std::collections::HashMap;

use keyturn_core::Role;
use reqwest::redirect::Policy;
use serde_json::json;

use crate::helpers::{backends, spawn, test_http, TestApp, TestDb};

pub(crate) const PASSWORD: &str = "a long enough passphrase";

/// Runs `$scenario(&db, &app)` on every backend, each on a fresh server.
macro_rules! console_test {
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

/// Creates a console user directly through the use case (as `keyturn user create` does).
pub async fn console_user(db: &TestDb, email: &str, role: Role, product: Option<i64>) {
    let store = keyturn_store::Store::connect(&db.any_url(), &Default::default())
        .await
        .unwrap();
    keyturn_app::App::new(store.clone())
        .create_console_user(
            &keyturn_app::Principal::cli(),
            email,
            PASSWORD,
            role,
            product,
        )
        .await
        .unwrap();
    store.close(std::time::Duration::from_secs(1)).await;
}

/// A browser without JavaScript: keeps cookies, follows no redirects (tests look at them).
pub struct Browser {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let at = self
            .html
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.html));
        let rest = &self.html[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let r = req.send().await.unwrap();
        for set in r.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            headers: r.headers().clone(),
            html: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// Signs in through the form; the status of the form's answer.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, 200, "{}", form.html);
        let csrf = form.csrf();
        self.post(
            "/admin/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// The CSRF token of the signed-in session (from any page's sign-out form).
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/admin/search").await;
        assert_eq!(page.status, 200, "{:?} {}", page.location, page.html);
        page.csrf()
    }
}

pub(crate) async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let mut b = Browser::new(app);
    let r = b.sign_in(email, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert_eq!(r.location.as_deref(), Some("/admin"));
    b
}

async fn csrf_is_required_on_every_change(db: &TestDb, app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    let license = app.license(json!({"product_id": product})).await;
    let id = license["id"].as_i64().unwrap();
    console_user(db, "support@example.com", Role::Support, None).await;
    let mut b = signed_in(app, "support@example.com").await;
    let block = format!("/admin/licenses/{id}/block");

    let missing = b.post(&block, &[("action", "block")]).await;
    assert_eq!(missing.status, 403, "{}", missing.html);
    let wrong = b
        .post(&block, &[("action", "block"), ("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(wrong.status, 403);
    // Another session's token is just as wrong.
    let mut other = signed_in(app, "support@example.com").await;
    let theirs = other.csrf().await;
    let stolen = b
        .post(&block, &[("action", "block"), ("csrf", &theirs)])
        .await;
    assert_eq!(stolen.status, 403);
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}")).await.body["blocked"],
        false,
        "a refused form changes nothing"
    );

    let csrf = b.csrf().await;
    let done = b
        .post(
            &block,
            &[
                ("action", "block"),
                ("csrf", &csrf),
                ("reason", "chargeback"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/admin/licenses/{id}?done=blocked").as_str())
    );
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}")).await.body["blocked"],
        true
    );
    let events = app.get(&format!("/v1/licenses/{id}/events")).await;
    let last = events.body["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor"], "user:support@example.com");
    assert_eq!(last["details"]["reason"], "chargeback");

    // Sign-out is a change too.
    let out = b.post("/admin/logout", &[]).await;
    assert_eq!(out.status, 403);
    // And the sign-in form has a token of its own, bound to its cookie.
    let mut fresh = Browser::new(app);
    let r = fresh
        .post(
            "/admin/login",
            &[("email", "support@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403, "a sign-in without the form's token");
}
console_test!(
    console_refuses_forms_without_the_sessions_csrf_token,
    csrf_is_required_on_every_change
);

async fn sessions_are_fresh_cookies_that_end(db: &TestDb, app: &TestApp) {
    console_user(db, "admin@example.com", Role::Admin, None).await;
    let mut b = Browser::new(app);
    assert_eq!(
        b.get("/admin/search").await.location.as_deref(),
        Some("/admin/login"),
        "signed out, every page leads to sign-in"
    );
    // Someone plants a session id of their choosing before the victim signs in.
    let planted = "ks_planted-by-someone-else";
    b.cookies
        .insert("keyturn_console".into(), planted.to_owned());
    let r = b.sign_in("admin@example.com", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.html);
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("keyturn_console="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "served over http here: {cookie}"
    );
    let issued = b.cookies["keyturn_console"].clone();
    assert_ne!(issued, planted);
    assert!(issued.len() >= 40, "at least 128 random bits: {issued}");
    let mut attacker = Browser::new(app);
    attacker
        .cookies
        .insert("keyturn_console".into(), planted.to_owned());
    assert_eq!(
        attacker.get("/admin/search").await.location.as_deref(),
        Some("/admin/login"),
        "the planted id never became a session"
    );
    let page = b.get("/admin/search").await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers["x-frame-options"], "DENY");

    // Signing in again gives another id; signing out ends the session for good.
    let mut again = signed_in(app, "admin@example.com").await;
    assert_ne!(again.cookies["keyturn_console"], issued);
    let csrf = b.csrf().await;
    let out = b.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!b.cookies.contains_key("keyturn_console"), "cookie cleared");
    let mut replay = Browser::new(app);
    replay.cookies.insert("keyturn_console".into(), issued);
    assert_eq!(
        replay.get("/admin/search").await.location.as_deref(),
        Some("/admin/login"),
        "a signed-out session cannot be used again"
    );
    assert_eq!(
        again.get("/admin/search").await.status,
        200,
        "other sessions go on"
    );
}
console_test!(
    console_sessions_are_fresh_at_sign_in_and_end_at_sign_out,
    sessions_are_fresh_cookies_that_end
);

/// Behind https, the session cookie is only ever sent over https.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_cookies_are_secure_when_served_over_https() {
    let db = TestDb::create(&crate::helpers::Backend::Sqlite).await;
    let http = keyturn_http::HttpSettings {
        public_url: Some("https://licenses.example.com".into()),
        ..test_http()
    };
    let app = spawn(&db, http).await;
    console_user(&db, "admin@example.com", Role::Admin, None).await;
    let mut b = Browser::new(&app);
    let form = b.get("/admin/login").await;
    let r = b.sign_in("admin@example.com", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.html);
    for page in [&form, &r] {
        for cookie in page.headers.get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            assert!(
                cookie.ends_with("; Secure") || cookie.contains("; Secure;"),
                "{cookie}"
            );
        }
    }
    app.stop().await;
    db.remove().await;
}

async fn sign_in_is_throttled(db: &TestDb, app: &TestApp) {
    console_user(db, "owner@example.com", Role::Owner, None).await;
    console_user(db, "sales@example.com", Role::Sales, None).await;
    let mut b = Browser::new(app);
    let wrong = b
        .sign_in("owner@example.com", "not the password at all")
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.html.contains("Wrong email or password."));
    let unknown = b.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown.html.contains("Wrong email or password."),
        "the same answer for an unknown account"
    );
    for _ in 1..5 {
        assert_eq!(
            b.sign_in("owner@example.com", "wrong again!!").await.status,
            401
        );
    }
    let throttled = b.sign_in("owner@example.com", PASSWORD).await;
    assert_eq!(
        throttled.status, 429,
        "after five refusals, even the right password waits"
    );
    assert!(!b.cookies.contains_key("keyturn_console"));
    // Other accounts from this address still sign in until the address itself is throttled.
    let sales = b.sign_in("sales@example.com", PASSWORD).await;
    assert_eq!(sales.status, 303);
    for i in 0..14 {
        let r = b
            .sign_in(&format!("guess{i}@example.com"), "a guessed password")
            .await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // 20 refusals from this address now (6 + 14).
    let blocked = b.sign_in("sales@example.com", PASSWORD).await;
    assert_eq!(blocked.status, 429, "{}", blocked.html);
}
console_test!(
    console_sign_in_is_throttled_per_account_and_per_address,
    sign_in_is_throttled
);

async fn roles_and_product_limits_hold(db: &TestDb, app: &TestApp) {
    let mine = app.product("Mine", &[]).await;
    let theirs = app.product("Theirs", &[]).await;
    let own = app.license(json!({"product_id": mine})).await;
    let other = app.license(json!({"product_id": theirs})).await;
    console_user(db, "support@example.com", Role::Support, None).await;
    console_user(db, "limited@example.com", Role::Support, Some(mine)).await;
    console_user(db, "admin@example.com", Role::Admin, None).await;

    let mut support = signed_in(app, "support@example.com").await;
    let tokens = support.get("/admin/tokens").await;
    assert_eq!(tokens.status, 403, "support cannot reach tokens");
    assert!(!support
        .get("/admin/search")
        .await
        .html
        .contains("/admin/tokens"));
    // Nor make one, with the session's own form token or otherwise.
    assert_eq!(support.get("/admin/tokens/new").await.status, 403);
    let csrf = support.csrf().await;
    let made = support
        .post(
            "/admin/tokens",
            &[
                ("csrf", &csrf),
                ("name", "mine"),
                ("permissions", "licenses:read"),
            ],
        )
        .await;
    assert_eq!(made.status, 403, "{}", made.html);
    let mut admin = signed_in(app, "admin@example.com").await;
    let tokens = admin.get("/admin/tokens").await;
    assert_eq!(tokens.status, 200);
    assert!(tokens.html.contains("initial admin"));
    assert!(tokens.html.contains("New access token"));
    assert_eq!(
        app.get("/v1/tokens").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "only the initial admin token"
    );

    let mut limited = signed_in(app, "limited@example.com").await;
    let other_id = other["id"].as_i64().unwrap();
    let own_id = own["id"].as_i64().unwrap();
    assert_eq!(
        limited
            .get(&format!("/admin/licenses/{other_id}"))
            .await
            .status,
        404,
        "another product's license looks like none"
    );
    assert_eq!(
        limited
            .get(&format!("/admin/licenses/{own_id}"))
            .await
            .status,
        200
    );
    let key = other["key"].as_str().unwrap();
    let found = limited.get(&format!("/admin/search?q={key}")).await;
    assert_eq!(found.status, 200);
    assert!(
        !found.html.contains(&format!("/admin/licenses/{other_id}"))
            && found.html.contains("No license matches"),
        "not found by its key either"
    );
    let own_key = own["key"].as_str().unwrap();
    let found = limited.get(&format!("/admin/search?q={own_key}")).await;
    assert!(found.html.contains(&format!("/admin/licenses/{own_id}")));
    let csrf = limited.csrf().await;
    let r = limited
        .post(
            &format!("/admin/licenses/{other_id}/block"),
            &[("csrf", &csrf), ("action", "block")],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        app.get(&format!("/v1/licenses/{other_id}")).await.body["blocked"],
        false
    );
    // Read-only sees, and changes nothing.
    console_user(db, "viewer@example.com", Role::ReadOnly, None).await;
    let mut viewer = signed_in(app, "viewer@example.com").await;
    let page = viewer.get(&format!("/admin/licenses/{own_id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("Block license"));
    let csrf = viewer.csrf().await;
    let r = viewer
        .post(
            &format!("/admin/licenses/{own_id}/extend"),
            &[("csrf", &csrf), ("days", "30")],
        )
        .await;
    assert_eq!(r.status, 403);
}
console_test!(
    console_roles_and_product_limits_are_the_apis,
    roles_and_product_limits_hold
);

const EVIL: &str = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>";

async fn injected_html_shows_as_text(db: &TestDb, app: &TestApp) {
    let product = app.product(&format!("P {EVIL}"), &[]).await;
    let customer = app
        .post(
            "/v1/customers",
            json!({"name": format!("N {EVIL}"), "email": "evil@example.com", "company": format!("C {EVIL}")}),
        )
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let license = app
        .license(json!({
            "product_id": product,
            "customer_id": customer.body["id"],
            "notes": format!("notes {EVIL}"),
            "metadata": {"k": EVIL, EVIL: 1},
        }))
        .await;
    let key = license["key"].as_str().unwrap();
    let machine = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": format!("fp{EVIL}"), "name": format!("m {EVIL}")}),
        )
        .await;
    assert_eq!(machine.status, 201, "{}", machine.body);
    console_user(db, "admin@example.com", Role::Admin, None).await;
    let mut b = signed_in(app, "admin@example.com").await;
    let id = license["id"].as_i64().unwrap();
    let csrf = b.csrf().await;
    let r = b
        .post(
            &format!("/admin/licenses/{id}/block"),
            &[("csrf", &csrf), ("action", "block"), ("reason", EVIL)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);

    let page = b.get(&format!("/admin/licenses/{id}")).await;
    assert_eq!(page.status, 200);
    let search = b.get(&format!("/admin/search?q={}", urlencode(EVIL))).await;
    let by_name = b.get("/admin/search?q=N%20%3Cscript").await;
    assert!(by_name.html.contains(key), "found by the customer's name");
    for (what, html) in [("license", &page.html), ("search", &search.html)] {
        assert!(!html.contains("<script>"), "{what}: {html}");
        assert!(!html.contains("<img"), "{what}: {html}");
    }
    // Every field is there, as text: product, customer name and company, notes, metadata,
    // machine name and fingerprint, and the audit log's reason.
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    for field in [
        format!("P {escaped}"),
        format!("N {escaped}"),
        format!("C {escaped}"),
        format!("notes {escaped}"),
        format!("m {escaped}"),
        format!("fp{escaped}"),
    ] {
        assert!(page.html.contains(&field), "{field} missing from the page");
    }
    assert!(page.html.matches(escaped).count() >= 9, "{}", page.html);
    assert!(search.html.contains(escaped), "the search term, as text");
}
console_test!(
    console_shows_injected_html_as_text,
    injected_html_shows_as_text
);

pub(crate) fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("q", text)]).unwrap()[2..].to_owned()
}

async fn support_finds_and_fixes_a_license(db: &TestDb, app: &TestApp) {
    let product = app.product("Editor", &["pro", "export"]).await;
    let customer = app
        .post(
            "/v1/customers",
            json!({"name": "Ada Lovelace", "email": "ada@example.com"}),
        )
        .await;
    let license = app
        .license(
            json!({"product_id": product, "max_machines": 1, "period_days": 30,
                        "customer_id": customer.body["id"]}),
        )
        .await;
    let others: Vec<_> =
        futures::future::join_all((0..3).map(|_| app.license(json!({"product_id": product}))))
            .await;
    let key = license["key"].as_str().unwrap();
    let id = license["id"].as_i64().unwrap();
    let on = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "old-laptop-1234", "name": "Ada's old laptop"}),
        )
        .await;
    assert_eq!(on.status, 201, "{}", on.body);
    let refused = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "new-laptop-5678"}),
        )
        .await;
    assert_eq!(refused.status, 409, "the one seat is taken");

    console_user(db, "support@example.com", Role::Support, None).await;
    let mut b = signed_in(app, "support@example.com").await;
    // One box finds it by key prefix, email, name, machine fingerprint and machine name.
    for q in [
        &key[..7],
        &key.to_lowercase()[..11],
        "ada@exa",
        "ADA LOVE",
        "old-laptop",
        "ada's",
    ] {
        let r = b.get(&format!("/admin/search?q={}", urlencode(q))).await;
        assert_eq!(r.status, 200, "{q}");
        assert!(r.html.contains(key), "{q} finds the license");
        for other in &others {
            assert!(
                !r.html.contains(other["key"].as_str().unwrap()),
                "{q} finds only it"
            );
        }
    }
    assert!(!b
        .get("/admin/search?q=zzz-nothing")
        .await
        .html
        .contains(key));

    let page = b.get(&format!("/admin/licenses/{id}")).await;
    assert_eq!(page.status, 200);
    for shown in [
        "Ada&#39;s old laptop",
        "old-laptop-1234",
        "Ada Lovelace",
        "valid",
        "created",
    ] {
        let shown = shown.replace("&#39;", "'");
        assert!(
            page.html.contains(&shown) || page.html.contains(&shown.replace('\'', "&#39;")),
            "{shown} on the license page"
        );
    }
    let machines = app.get(&format!("/v1/licenses/{id}/activations")).await;
    let machine = machines.body["data"][0]["id"].as_i64().unwrap();
    let csrf = page.csrf();
    let freed = b
        .post(
            &format!("/admin/licenses/{id}/machines/{machine}/free"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(freed.status, 303, "{}", freed.html);
    let after = b.get(freed.location.as_deref().unwrap()).await;
    assert!(after.html.contains("The machine was freed"));
    assert!(after.html.contains("No machine uses this license."));
    let elsewhere = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "new-laptop-5678"}),
        )
        .await;
    assert_eq!(elsewhere.status, 201, "the program activates elsewhere");

    // Features, expiry, notes and metadata.
    let post = |path: &'static str| format!("/admin/licenses/{id}/{path}");
    let r = b
        .post(
            &post("features"),
            &[("csrf", &csrf), ("feature", "pro"), ("on", "1")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    let before = app.get(&format!("/v1/licenses/{id}")).await.body;
    assert_eq!(before["features"], json!(["pro"]));
    let r = b
        .post(&post("extend"), &[("csrf", &csrf), ("days", "10")])
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    let r = b
        .post(&post("extend"), &[("csrf", &csrf), ("until", "2999-12-31")])
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    let r = b
        .post(
            &post("notes"),
            &[
                ("csrf", &csrf),
                ("notes", "called on Monday"),
                ("metadata", "{\"seat\": 2}"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    let bad = b
        .post(
            &post("notes"),
            &[("csrf", &csrf), ("metadata", "{not json")],
        )
        .await;
    assert_eq!(bad.status, 422);
    let now = app.get(&format!("/v1/licenses/{id}")).await.body;
    assert_eq!(now["notes"], "called on Monday");
    assert_eq!(now["metadata"], json!({"seat": 2}));
    assert!(now["expires"]
        .as_str()
        .unwrap()
        .starts_with("2999-12-31T23:59:59"));
    let actions = app.actions(id).await;
    for a in ["deactivated", "feature_added", "extended", "updated"] {
        assert!(actions.contains(&a.to_owned()), "{a} in {actions:?}");
    }
    let page = b.get(&format!("/admin/licenses/{id}")).await;
    assert!(
        page.html.contains("user:support@example.com"),
        "the timeline names the user"
    );
}
console_test!(
    console_support_finds_a_license_and_frees_its_machine,
    support_finds_and_fixes_a_license
);

/// Search pages through many matches by keyset, without repeats.
async fn search_pages_by_keyset(db: &TestDb, app: &TestApp) {
    let product = app.product("Bulk", &[]).await;
    let customer = app
        .post(
            "/v1/customers",
            json!({"name": "Bulk Buyer", "email": "bulk@example.com"}),
        )
        .await;
    let made = app
        .post(
            "/v1/licenses",
            json!({"product_id": product, "customer_id": customer.body["id"], "quantity": 30}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    console_user(db, "support@example.com", Role::Support, None).await;
    let mut b = signed_in(app, "support@example.com").await;
    let first = b.get("/admin/search?q=bulk%40").await;
    let next = first
        .html
        .split("href=\"")
        .find(|s| s.starts_with("/admin/search?q="))
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .expect("a next page link");
    let second = b.get(&next).await;
    let keys = |html: &str| html.matches("class=\"key\" href").count();
    assert_eq!(keys(&first.html), 25);
    assert_eq!(keys(&second.html), 5);
    assert!(!second.html.contains("Next page"));
}
console_test!(console_search_pages_by_keyset, search_pages_by_keyset);

/// Runs `tests/browser/<script>` with node in `node_dir` (where [`browser_tools`] installed
/// playwright-core and axe-core), with `env` set, and returns the JSON report the script prints;
/// a script that fails or runs past 5 minutes fails the test with its stderr.
pub(crate) async fn run_browser_script(
    node_dir: &std::path::Path,
    script: &str,
    env: &[(&str, &dyn AsRef<std::ffi::OsStr>)],
) -> serde_json::Value {
    let out = run_browser_output(node_dir, script, env).await;
    serde_json::from_slice(out.trim_ascii()).expect("the script's report")
}

/// [`run_browser_script`] for a script whose output is not a JSON report: what it printed.
pub(crate) async fn run_browser_output(
    node_dir: &std::path::Path,
    script: &str,
    env: &[(&str, &dyn AsRef<std::ffi::OsStr>)],
) -> Vec<u8> {
    let source = format!("{}/tests/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(&source, node_dir.join(script)).unwrap();
    let mut command = tokio::process::Command::new("node");
    command.arg(script).current_dir(node_dir).kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} ends within 5 minutes"))
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Chromium and an npm-installed Playwright and axe-core, or why the browser run is skipped.
pub(crate) fn browser_tools() -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    use std::process::Command;
    let chromium = std::path::PathBuf::from(
        std::env::var("KEYTURN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if !chromium.exists() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
    // Browser tests run at once share the directory: one installs, the others wait.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let ready = ["playwright-core", "axe-core"]
        .iter()
        .all(|m| dir.join("node_modules").join(m).exists());
    if !ready {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let ok = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund"])
            .args(["playwright-core@1", "axe-core@4"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("npm install of playwright-core and axe-core failed".into());
        }
    }
    Ok((chromium, dir))
}

/// The first console user made with `keyturn user create`, then the support journey in a real
/// browser against the server: sign in, search, open the license, free its machine — after
/// which the program activates on another machine. axe-core checks every page at desktop and
/// phone sizes; the screenshots are kept under the target directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_support_journey_in_a_real_browser() {
    let (chromium, node_dir) = match browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let db = TestDb::create(&crate::helpers::Backend::Sqlite).await;
    let app = spawn(&db, test_http()).await;
    let product = app.product("Editor", &["pro"]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 1, "period_days": 10}))
        .await;
    let key = license["key"].as_str().unwrap().to_owned();
    let on = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "old-laptop", "name": "Old laptop"}),
        )
        .await;
    assert_eq!(on.status, 201, "{}", on.body);

    let mut create = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args([
            "user",
            "create",
            "--email",
            "help@example.com",
            "--role",
            "support",
        ])
        .arg("--password-stdin")
        .env("KEYTURN_DATA_DIR", db.dir.path().join("data"))
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = create.stdin.take().unwrap();
        writeln!(stdin, "{PASSWORD}").unwrap();
    }
    let created = create.wait_with_output().unwrap();
    assert!(
        created.status.success(),
        "keyturn user create: {}",
        String::from_utf8_lossy(&created.stderr)
    );

    // Each journey has a directory of its own: they run at once.
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("console-screenshots")
        .join("support");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let script = format!("{}/tests/browser/console.mjs", env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(&script, node_dir.join("console.mjs")).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(&node_dir)
        .env("BASE", &app.base)
        .env("EMAIL", "help@example.com")
        .env("PASSWORD", PASSWORD)
        .env("KEY", &key)
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run ends within 3 minutes")
        .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("the script's report");
    assert_eq!(report["freed"], true);
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 9, "{report}");
    for page in pages {
        assert_eq!(
            page["serious"], 0,
            "serious or critical accessibility violations on {} ({}): {}",
            page["name"], page["size"], page["violations"]
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
    let elsewhere = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "new-laptop"}),
        )
        .await;
    assert_eq!(
        elsewhere.status, 201,
        "the program activates on another machine"
    );
    let actions = app.actions(license["id"].as_i64().unwrap()).await;
    assert!(actions.contains(&"deactivated".to_owned()), "{actions:?}");
    app.stop().await;
    db.remove().await;
}

/// Guesses sent all at once get no more tries than guesses sent one by one.
async fn parallel_guesses_are_throttled_too(db: &TestDb, app: &TestApp) {
    console_user(db, "owner@example.com", Role::Owner, None).await;
    let guesses = (0..12).map(|i| async move {
        let mut b = Browser::new(app);
        b.sign_in("owner@example.com", &format!("guess number {i}"))
            .await
            .status
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        checked, 5,
        "five guesses checked, the rest throttled: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 7);
}
console_test!(
    console_sign_in_throttles_parallel_guesses,
    parallel_guesses_are_throttled_too
);

/// Support issues the offline license file for a machine that cannot reach the server: a
/// download the program verifies with the product's key, encrypted on request so only that
/// machine reads it; a user who may not change licenses gets none.
async fn support_downloads_an_offline_license_file(db: &TestDb, app: &TestApp) {
    use keyturn_client::{Client, Fingerprint};
    let product = app.product("Editor", &["pro"]).await;
    let license = app
        .license(json!({"product_id": product, "features": ["pro"], "period_days": 30}))
        .await;
    let (id, key) = (
        license["id"].as_i64().unwrap(),
        license["key"].as_str().unwrap().to_owned(),
    );
    let machine = "ktfp1:mid=0a1b2c3d;mac=4e5f6a7b;hst=1234abcd";
    console_user(db, "support@example.com", Role::Support, None).await;
    let mut b = signed_in(app, "support@example.com").await;
    let page = b.get(&format!("/admin/licenses/{id}")).await;
    assert!(page.html.contains("Download license file"), "{}", page.html);
    let csrf = b.csrf().await;
    let path = format!("/admin/licenses/{id}/file");
    let refused = b
        .post(
            &path,
            &[("csrf", "forged"), ("machine", machine), ("days", "10")],
        )
        .await;
    assert_eq!(refused.status, 403);

    let file = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("machine", machine),
                ("days", "10"),
                ("encrypt", "1"),
            ],
        )
        .await;
    assert_eq!(file.status, 200, "{}", file.html);
    assert!(file.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(file.headers["cache-control"], "no-store");
    let public = app.public_key(product).await;
    let on_the_machine = Client::new(&app.base, product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse(machine));
    let terms = on_the_machine
        .verify_license_file(&file.html, &key, &["pro"])
        .expect("the bound machine reads and trusts the file");
    assert_eq!(terms.license.id, id);
    assert!(terms.valid_until <= chrono::Utc::now() + chrono::Duration::days(10));
    let elsewhere = Client::new(&app.base, product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse("ktfp1:mid=ffffffff;mac=eeeeeeee"));
    assert!(elsewhere
        .verify_license_file(&file.html, &key, &[])
        .is_err());
    let events = app.get(&format!("/v1/licenses/{id}/events")).await;
    let issued = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "license_file_issued")
        .unwrap_or_else(|| panic!("no audit entry: {}", events.body))
        .clone();
    assert_eq!(issued["actor"], "user:support@example.com");
    assert_eq!(issued["details"]["encrypted"], true);

    // Bad input is a message on a page, never a file.
    let bad = b
        .post(
            &path,
            &[("csrf", &csrf), ("machine", machine), ("days", "0")],
        )
        .await;
    assert_ne!(bad.status, 200);
    assert!(!bad.html.contains("BEGIN LICENSE FILE"));

    console_user(db, "viewer@example.com", Role::ReadOnly, None).await;
    let mut viewer = signed_in(app, "viewer@example.com").await;
    let page = viewer.get(&format!("/admin/licenses/{id}")).await;
    assert!(!page.html.contains("Download license file"));
    let csrf = viewer.csrf().await;
    let refused = viewer
        .post(&path, &[("csrf", &csrf), ("machine", machine)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);
}

console_test!(
    console_support_downloads_an_offline_license_file,
    support_downloads_an_offline_license_file
);
