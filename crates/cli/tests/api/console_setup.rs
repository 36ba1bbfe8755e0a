//! The console's set-up pages as a developer uses them (products with their keys and code,
//! plans, access tokens, payment forms, license URLs, provider status), through a browser
//! without JavaScript: what each role and product limit may do, CSRF, escaping, the audit
//! log, and secrets shown exactly once. Then the whole journey in a real browser.

use std::time::Duration;

use keyturn_core::Role;
use keyturn_providers::stripe::{sign, StripeAdapter, StripeApi};
use keyturn_providers::{Providers, StoreSecrets};
use reqwest::Method;
use serde_json::{json, Value};

use crate::console::{console_user, signed_in, Browser, Page};
use crate::helpers::{backends, TestApp, TestDb};

const STRIPE_SECRET: &str = "whsec_console_setup_test";
const PADDLE_SECRET: &str = "pdl_console_setup_secret";

/// Runs `$scenario(&db, &app)` on every backend, each on a fresh server that can take
/// payments (a public address and a Stripe API key, whose server is never called here).
macro_rules! setup_test {
    ($name:ident, $scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in backends() {
                let db = TestDb::create(&backend).await;
                let app = spawn_selling(&db).await;
                $scenario(&db, &app).await;
                app.stop().await;
                db.remove().await;
            }
        }
    };
}

fn selling_providers() -> Providers {
    Providers {
        stripe: Some(StripeAdapter::new(
            vec![STRIPE_SECRET.into()],
            Duration::from_secs(300),
            Some(StripeApi::new(
                "http://127.0.0.1:9",
                "sk_test_console_setup",
            )),
        )),
        stores: StoreSecrets {
            paddle: vec![PADDLE_SECRET.into()],
            tolerance: Duration::from_secs(300),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A server that knows the address buyers reach it at and can start Stripe checkouts.
pub(crate) async fn spawn_selling(db: &TestDb) -> TestApp {
    crate::forms::spawn_public(db, selling_providers(), Default::default()).await
}

/// The console's audit log as (actor, action, details), newest first.
async fn audit_log(db: &TestDb) -> Vec<(String, String, Value)> {
    let store = keyturn_store::Store::connect(&db.any_url(), &Default::default())
        .await
        .unwrap();
    let rows = store
        .read()
        .await
        .unwrap()
        .console_events(500)
        .await
        .unwrap();
    store.close(Duration::from_secs(1)).await;
    rows.into_iter()
        .map(|(_, actor, action, details)| (actor, action, serde_json::from_str(&details).unwrap()))
        .collect()
}

/// The audit entry of `action` by `actor` whose details hold `key: id`.
async fn audited(db: &TestDb, actor: &str, action: &str, key: &str, id: i64) -> Value {
    let log = audit_log(db).await;
    log.iter()
        .find(|(a, act, d)| a == actor && act == action && d[key] == id)
        .map(|(_, _, d)| d.clone())
        .unwrap_or_else(|| panic!("no {action} of {key} {id} by {actor} in {log:?}"))
}

/// The id in a redirect to `/admin/<what>/<id>…`.
fn id_in(page: &Page, prefix: &str) -> i64 {
    let location = page
        .location
        .as_deref()
        .unwrap_or_else(|| panic!("no redirect ({}): {}", page.status, page.html));
    let rest = location
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{location} is not under {prefix}"));
    rest.split(['/', '?']).next().unwrap().parse().unwrap()
}

/// Posts a form with the session's CSRF token added.
async fn submit(b: &mut Browser, path: &str, fields: &[(&str, &str)]) -> Page {
    let csrf = b.csrf().await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post(path, &all).await
}

/// Posts owned fields with the session's CSRF token added.
async fn submit_owned(b: &mut Browser, path: &str, fields: &[(String, String)]) -> Page {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    submit(b, path, &borrowed).await
}

/// A developer sets up a product and its plans: the pages show the keys and the code, the
/// changes reach the API, the audit log names the user, and HTML in names shows as text.
async fn developer_sets_up_a_product_and_plans(db: &TestDb, app: &TestApp) {
    console_user(db, "dev@example.com", Role::Admin, None).await;
    let mut b = signed_in(app, "dev@example.com").await;
    let list = b.get("/admin/products").await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert!(list.html.contains("No product yet."));
    assert!(list.html.contains("href=\"/admin/products/new\""));
    for nav in [
        "/admin/plans",
        "/admin/tokens",
        "/admin/forms",
        "/admin/providers",
    ] {
        assert!(
            list.html.contains(&format!("href=\"{nav}\"")),
            "{nav} in the nav"
        );
    }

    // CSRF: a form without the session's token changes nothing.
    let forged = b
        .post("/admin/products", &[("name", "Forged"), ("csrf", "0")])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        app.get("/v1/products").await.body["data"],
        json!([]),
        "no product from a forged form"
    );

    let name = "<b>Editor</b> & \"Co\"";
    let made = submit(
        &mut b,
        "/admin/products",
        &[
            ("name", name),
            (
                "description",
                "For <script>alert(1)</script> writers\r\nline two",
            ),
            ("features", "pro\r\nexport\r\n"),
            ("block_expired_licenses", "1"),
        ],
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let id = id_in(&made, "/admin/products/");
    let api = app.get(&format!("/v1/products/{id}")).await.body;
    assert_eq!(api["name"], name);
    assert_eq!(api["features"], json!(["pro", "export"]));
    assert_eq!(
        api["description"],
        "For <script>alert(1)</script> writers\nline two"
    );
    assert_eq!(api["block_expired_licenses"], true);

    let page = b.get(made.location.as_deref().unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("Created."));
    assert!(page
        .html
        .contains("&lt;b&gt;Editor&lt;/b&gt; &amp; &quot;Co&quot;"));
    assert!(!page.html.contains("<b>Editor</b>"));
    assert!(!page.html.contains("<script>alert(1)</script>"));
    assert!(page.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The keys programs verify with, as the public endpoints give them.
    let ed = app.public_key(id).await;
    assert!(page.html.contains(&ed), "the Ed25519 key");
    let pem = app
        .call(
            Method::GET,
            &format!("/v1/products/{id}/public-key"),
            None,
            None,
        )
        .await
        .body["pem"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(page.html.contains(pem.trim()), "the PEM");
    let xml = String::from_utf8(
        app.call(
            Method::GET,
            &format!("/v1/products/{id}/public-key?format=rsa-xml"),
            None,
            None,
        )
        .await
        .raw,
    )
    .unwrap();
    let xml_shown = xml.trim().replace('<', "&lt;").replace('>', "&gt;");
    assert!(page.html.contains(&xml_shown), "the RSA key as XML");
    // Code for each SDK, with this server, this product and its key.
    let server = &app.base;
    for snippet in [
        format!("HelperMethods.server_address = &quot;{server}/api/&quot;"),
        format!("const SERVER = '{server}';"),
        format!("LicenseServerUrl = &quot;{server}&quot;"),
        format!("const SERVER: &amp;str = &quot;{server}&quot;;"),
        format!("const PRODUCT_ID: i64 = {id};"),
        format!("product_id={id},"),
        format!("const PUBLIC_KEY: &amp;str = &quot;{ed}&quot;;"),
        format!("RSA_PUB_KEY = &quot;{xml_shown}&quot;"),
    ] {
        assert!(page.html.contains(&snippet), "{snippet} in the snippets");
    }
    assert!(page.html.contains("data-copy=\"snippet-python\""));
    assert!(page.html.contains("src=\"/admin/console.js\""));
    let script = b.get("/admin/console.js").await;
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.html.contains("navigator.clipboard"));

    // Editing.
    let edit = b.get(&format!("/admin/products/{id}/edit")).await;
    assert_eq!(edit.status, 200);
    assert!(edit.html.contains("pro\nexport"), "{}", edit.html);
    let saved = submit(
        &mut b,
        &format!("/admin/products/{id}"),
        &[
            ("name", "Editor"),
            ("description", "The editor"),
            ("features", "pro\nexport\nteam"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let api = app.get(&format!("/v1/products/{id}")).await.body;
    assert_eq!(api["name"], "Editor");
    assert_eq!(api["description"], "The editor");
    assert_eq!(api["features"], json!(["pro", "export", "team"]));
    assert_eq!(api["block_expired_licenses"], false, "an unticked box");

    // A plan with every term.
    let new_plan = b.get(&format!("/admin/plans/new?product={id}")).await;
    assert_eq!(new_plan.status, 200, "{}", new_plan.html);
    assert!(new_plan.html.contains("value=\"team\""));
    let plan_name = "<i>Pro</i> yearly";
    let made = submit(
        &mut b,
        "/admin/plans",
        &[
            ("product_id", &id.to_string()),
            ("name", plan_name),
            ("period_days", "365"),
            ("features", "pro"),
            ("features", "team"),
            ("max_machines", "3"),
            ("floating_lease_seconds", "600"),
            ("grace_days", "7"),
            ("stripe_price_ids", "price_year\r\nprice_year_eur"),
            ("paddle_ids", "pri_01"),
            ("gumroad_ids", "gumroad:editor"),
            ("quantity_mode", "seats"),
            ("dunning", "block"),
            ("on_cancel", "expire"),
        ],
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let plan = id_in(&made, "/admin/plans/");
    let api = app.get(&format!("/v1/plans/{plan}")).await.body;
    assert_eq!(api["name"], plan_name);
    assert_eq!(api["product_id"], id);
    assert_eq!(api["period_days"], 365);
    assert_eq!(api["features"], json!(["pro", "team"]));
    assert_eq!(api["max_machines"], 3);
    assert_eq!(api["floating_lease_seconds"], 600);
    assert_eq!(api["trial"], false);
    assert_eq!(api["grace_days"], 7);
    assert_eq!(
        api["stripe_price_ids"],
        json!(["price_year", "price_year_eur"])
    );
    assert_eq!(
        api["store_product_ids"],
        json!(["paddle:pri_01", "gumroad:editor"])
    );
    assert_eq!(api["quantity_mode"], "seats");
    assert_eq!(api["dunning"], "block");
    assert_eq!(api["on_cancel"], "expire");
    let page = b.get(&format!("/admin/plans/{plan}")).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains("&lt;i&gt;Pro&lt;/i&gt; yearly"));
    assert!(!page.html.contains("<i>Pro</i>"));
    assert!(
        page.html.contains(">pri_01</textarea>"),
        "the Paddle ids in their field"
    );

    // The validated terms refuse what they must, with the field named.
    for (field, value) in [
        ("period_days", "0"),
        ("max_machines", "-1"),
        ("grace_days", "366"),
        ("floating_lease_seconds", "2592001"),
        ("period_days", "ten"),
    ] {
        let bad = submit(
            &mut b,
            "/admin/plans",
            &[
                ("product_id", &id.to_string()),
                ("name", "Bad"),
                (field, value),
            ],
        )
        .await;
        assert_eq!(bad.status, 422, "{field}={value}: {}", bad.html);
        assert!(bad.html.contains(field), "{field} named: {}", bad.html);
    }
    let trial_without_period = submit(
        &mut b,
        "/admin/plans",
        &[
            ("product_id", &id.to_string()),
            ("name", "Trial"),
            ("trial", "1"),
        ],
    )
    .await;
    assert_eq!(trial_without_period.status, 422);

    // What can change on a plan: its payment settings.
    let saved = submit(
        &mut b,
        &format!("/admin/plans/{plan}"),
        &[
            ("name", "Pro yearly"),
            ("grace_days", "9"),
            ("stripe_price_ids", "price_year"),
            ("lemonsqueezy_ids", "42"),
            ("quantity_mode", "keys"),
            ("dunning", "keep"),
            ("on_cancel", "block"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let api = app.get(&format!("/v1/plans/{plan}")).await.body;
    assert_eq!(api["name"], "Pro yearly");
    assert_eq!(api["grace_days"], 9);
    assert_eq!(api["stripe_price_ids"], json!(["price_year"]));
    assert_eq!(api["store_product_ids"], json!(["lemonsqueezy:42"]));
    assert_eq!(api["quantity_mode"], "keys");
    assert_eq!(api["period_days"], 365, "the license shape stays");

    let products = b.get("/admin/products").await;
    assert!(products
        .html
        .contains(&format!("href=\"/admin/products/{id}\"")));
    let plans = b.get(&format!("/admin/plans?product={id}")).await;
    assert!(plans.html.contains("Pro yearly"), "{}", plans.html);

    let actor = "user:dev@example.com";
    audited(db, actor, "product_created", "product_id", id).await;
    audited(db, actor, "product_updated", "product_id", id).await;
    audited(db, actor, "plan_created", "plan_id", plan).await;
    audited(db, actor, "plan_updated", "plan_id", plan).await;
}
setup_test!(
    console_developer_sets_up_a_product_and_plans,
    developer_sets_up_a_product_and_plans
);

/// Plans page by keyset, 25 at a time, without repeats.
async fn plans_page_by_keyset(db: &TestDb, app: &TestApp) {
    let product = app.product("Bulk", &[]).await;
    let other = app.product("Other", &[]).await;
    for i in 0..30 {
        let r = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": format!("Plan {i:02}")}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app
        .post(
            "/v1/plans",
            json!({"product_id": other, "name": "Elsewhere"}),
        )
        .await;
    assert_eq!(r.status, 201);
    console_user(db, "viewer@example.com", Role::ReadOnly, None).await;
    let mut b = signed_in(app, "viewer@example.com").await;
    let first = b.get(&format!("/admin/plans?product={product}")).await;
    assert_eq!(first.status, 200, "{}", first.html);
    let next = first
        .html
        .split("href=\"")
        .find(|s| s.starts_with("/admin/plans?product="))
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .expect("a next page link");
    let second = b.get(&next).await;
    let rows = |html: &str| html.matches(">Plan ").count();
    assert_eq!(rows(&first.html), 25);
    assert_eq!(rows(&second.html), 5);
    assert!(second.html.contains("Plan 29"));
    assert!(!second.html.contains("Plan 00<"));
    assert!(!first.html.contains("Elsewhere") && !second.html.contains("Elsewhere"));
    assert!(!second.html.contains("Next page"));
    assert!(
        !first.html.contains("href=\"/admin/plans/new"),
        "read-only users get no New plan link"
    );
}
setup_test!(console_plans_page_by_keyset, plans_page_by_keyset);

/// Who may set up what: support and read-only users make no tokens or plans, a user limited
/// to one product sees only its products and plans.
async fn roles_and_product_limits_hold_on_set_up(db: &TestDb, app: &TestApp) {
    let mine = app.product("Mine", &[]).await;
    let theirs = app.product("Theirs", &[]).await;
    let plan_of = |product: i64, name: &'static str| async move {
        let r = app
            .post("/v1/plans", json!({"product_id": product, "name": name}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    };
    let my_plan = plan_of(mine, "My plan").await;
    let their_plan = plan_of(theirs, "Their plan").await;
    let tokens_before = app.get("/v1/tokens").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    let plans_before = app.get("/v1/plans").await.body["data"]
        .as_array()
        .unwrap()
        .len();

    for (email, role) in [
        ("support@example.com", Role::Support),
        ("viewer@example.com", Role::ReadOnly),
    ] {
        console_user(db, email, role, None).await;
        let mut b = signed_in(app, email).await;
        let nav = b.get("/admin/search").await;
        assert!(!nav.html.contains("href=\"/admin/tokens\""), "{email}");
        assert!(nav.html.contains("href=\"/admin/products\""), "{email}");
        assert_eq!(b.get("/admin/tokens").await.status, 403, "{email}");
        assert_eq!(b.get("/admin/tokens/new").await.status, 403, "{email}");
        let token = submit(
            &mut b,
            "/admin/tokens",
            &[("name", "sneaky"), ("permissions", "products:read")],
        )
        .await;
        assert_eq!(token.status, 403, "{email}: {}", token.html);
        assert_eq!(b.get("/admin/plans/new").await.status, 403, "{email}");
        let plan = submit(
            &mut b,
            "/admin/plans",
            &[("product_id", &mine.to_string()), ("name", "sneaky")],
        )
        .await;
        assert_eq!(plan.status, 403, "{email}: {}", plan.html);
        let product = submit(&mut b, "/admin/products", &[("name", "sneaky")]).await;
        assert_eq!(product.status, 403, "{email}");
        let edit = submit(
            &mut b,
            &format!("/admin/plans/{my_plan}"),
            &[("name", "renamed")],
        )
        .await;
        assert_eq!(edit.status, 403, "{email}");
        // They read plans and products.
        let page = b.get(&format!("/admin/plans/{my_plan}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.html.contains("Save plan"), "no edit form");
        let page = b.get(&format!("/admin/products/{mine}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.html.contains("Edit product"));
    }
    assert_eq!(
        app.get("/v1/tokens").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        tokens_before
    );
    assert_eq!(
        app.get("/v1/plans").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        plans_before
    );
    assert_eq!(
        app.get(&format!("/v1/plans/{my_plan}")).await.body["name"],
        "My plan"
    );

    console_user(db, "limited@example.com", Role::Admin, Some(mine)).await;
    let mut b = signed_in(app, "limited@example.com").await;
    let products = b.get("/admin/products").await;
    assert_eq!(products.status, 200);
    assert!(products.html.contains(">Mine<"));
    assert!(!products.html.contains("Theirs"));
    assert!(
        !products.html.contains("/admin/products/new"),
        "products span products: a limited user creates none"
    );
    let plans = b.get("/admin/plans").await;
    assert!(plans.html.contains("My plan"));
    assert!(!plans.html.contains("Their plan"));
    assert_ne!(
        b.get(&format!("/admin/plans?product={theirs}"))
            .await
            .status,
        200
    );
    let theirs_page = b.get(&format!("/admin/plans/{their_plan}")).await;
    assert_eq!(
        theirs_page.status, 404,
        "another product's plan looks like none"
    );
    let theirs_product = b.get(&format!("/admin/products/{theirs}")).await;
    assert_ne!(theirs_product.status, 200);
    assert!(!theirs_product.html.contains("Theirs"));
    // Tokens, forms and providers span products.
    let nav = b.get("/admin/search").await;
    for hidden in ["/admin/tokens", "/admin/forms", "/admin/providers"] {
        assert!(
            !nav.html.contains(&format!("href=\"{hidden}\"")),
            "{hidden}"
        );
    }
    assert_eq!(b.get("/admin/tokens").await.status, 403);
    assert_eq!(b.get("/admin/providers").await.status, 403);
    let elsewhere = submit(
        &mut b,
        "/admin/plans",
        &[("product_id", &theirs.to_string()), ("name", "Not mine")],
    )
    .await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.html);
    let own = submit(
        &mut b,
        "/admin/plans",
        &[("product_id", &mine.to_string()), ("name", "Mine too")],
    )
    .await;
    assert_eq!(own.status, 303, "{}", own.html);
    let edit_theirs = submit(
        &mut b,
        &format!("/admin/plans/{their_plan}"),
        &[("name", "taken")],
    )
    .await;
    assert_eq!(edit_theirs.status, 404);
    assert_eq!(
        app.get(&format!("/v1/plans/{their_plan}")).await.body["name"],
        "Their plan"
    );
}
setup_test!(
    console_roles_and_product_limits_hold_on_set_up,
    roles_and_product_limits_hold_on_set_up
);

/// The secret of a new token is on the page the creation leads to, once; never in a URL,
/// the list or the audit log. Revoking it ends it.
async fn token_secret_is_shown_once(db: &TestDb, app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    console_user(db, "dev@example.com", Role::Owner, None).await;
    let mut b = signed_in(app, "dev@example.com").await;
    let form = b.get("/admin/tokens/new").await;
    assert_eq!(form.status, 200, "{}", form.html);
    assert!(form.html.contains("value=\"cryptolens:activate\""));
    assert!(form.html.contains("value=\"products:read\""));
    let count = || async {
        app.get("/v1/tokens").await.body["data"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = count().await;
    let forged = b
        .post(
            "/admin/tokens",
            &[("name", "x"), ("permissions", "admin"), ("csrf", "nope")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(count().await, before);

    let name = "<img src=x onerror=alert(1)> app";
    let made = submit(
        &mut b,
        "/admin/tokens",
        &[
            ("name", name),
            ("permissions", "products:read"),
            ("permissions", "cryptolens:activate"),
            ("product_id", &product.to_string()),
            ("expires_days", "30"),
        ],
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let location = made.location.clone().unwrap();
    assert!(
        !location.contains("kt_"),
        "no secret in the URL: {location}"
    );
    let id = id_in(&made, "/admin/tokens/");
    assert!(location.ends_with("/created"));
    let shown = b.get(&location).await;
    assert_eq!(shown.status, 200, "{}", shown.html);
    assert_eq!(shown.headers["cache-control"], "no-store");
    let at = shown.html.find("kt_").expect("the secret on the page");
    let secret: String = shown.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert!(secret.len() > 40, "{secret}");
    assert!(shown
        .html
        .contains("&lt;img src=x onerror=alert(1)&gt; app"));
    assert!(!shown.html.contains("<img src=x"));
    assert!(
        !b.cookies.contains_key("keyturn_console_reveal"),
        "the page took the secret out of the browser"
    );

    // The token works, as limited as it was made.
    let works = app
        .call(Method::GET, "/v1/products", Some(&secret), None)
        .await;
    assert_eq!(works.status, 200, "{}", works.body);
    assert_eq!(works.body["data"].as_array().unwrap().len(), 1);
    let not_granted = app
        .call(Method::GET, "/v1/licenses", Some(&secret), None)
        .await;
    assert_eq!(not_granted.status, 403);

    let again = b.get(&location).await;
    assert_eq!(again.status, 200);
    assert!(!again.html.contains(&secret), "shown once only");
    assert!(again.html.contains("cannot be shown again"));
    let list = b.get("/admin/tokens").await;
    assert!(list.html.contains("&lt;img src=x onerror=alert(1)&gt; app"));
    assert!(!list.html.contains(&secret));
    let entry = audited(db, "user:dev@example.com", "token_created", "token_id", id).await;
    assert!(!entry.to_string().contains(&secret), "{entry}");
    assert_eq!(entry["product_id"], product);

    // Another token's page never shows this one's secret, even with the cookie sent along.
    let second = submit(
        &mut b,
        "/admin/tokens",
        &[("name", "second"), ("permissions", "plans:read")],
    )
    .await;
    let second_id = id_in(&second, "/admin/tokens/");
    let pending = b.cookies["keyturn_console_reveal"].clone();
    let elsewhere = b.get(&format!("/admin/tokens/{id}/created")).await;
    assert!(!elsewhere.html.contains(pending.rsplit('.').next().unwrap()));
    let _ = second_id;

    let bad = submit(&mut b, "/admin/tokens", &[("name", "no permissions")]).await;
    assert_eq!(bad.status, 422, "{}", bad.html);

    let revoked = submit(&mut b, &format!("/admin/tokens/{id}/revoke"), &[]).await;
    assert_eq!(revoked.status, 303, "{}", revoked.html);
    assert_eq!(
        revoked.location.as_deref(),
        Some("/admin/tokens?done=revoked")
    );
    let after = app
        .call(Method::GET, "/v1/products", Some(&secret), None)
        .await;
    assert_eq!(after.status, 401, "a revoked token authenticates no more");
    audited(db, "user:dev@example.com", "token_revoked", "token_id", id).await;
    let list = b.get("/admin/tokens?done=revoked").await;
    assert!(list.html.contains("Token revoked"));
}
setup_test!(
    console_token_secret_is_shown_once,
    token_secret_is_shown_once
);

/// Payment forms and license URLs: made, edited, previewed and rotated from the console,
/// every change through the same checks as the API and in the audit log.
async fn payment_forms_and_license_urls(db: &TestDb, app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 365, "stripe_price_ids": ["price_pro"]}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    console_user(db, "dev@example.com", Role::Admin, None).await;
    let mut b = signed_in(app, "dev@example.com").await;
    let choose = b.get("/admin/forms/new").await;
    assert_eq!(choose.status, 200);
    assert!(choose.html.contains(&format!("value=\"{product}\"")));
    let new = b.get(&format!("/admin/forms/new?product={product}")).await;
    assert_eq!(new.status, 200, "{}", new.html);
    assert!(new.html.contains("name=\"offer0_plan\""));

    let name = "<script>x()</script> Buy Editor";
    let label = "Pro <em>yearly</em>";
    let offer = |label: &'static str, price_id: &'static str| {
        vec![
            ("offer0_plan", plan.to_string()),
            ("offer0_label", label.to_owned()),
            ("offer0_price", "€49".to_owned()),
            ("offer0_stripe_price_id", price_id.to_owned()),
            ("offer0_mode", "payment".to_owned()),
        ]
    };
    let fields = |name: &str, offer: &[(&'static str, String)]| {
        let mut f: Vec<(String, String)> = vec![
            ("product_id".into(), product.to_string()),
            ("name".into(), name.to_owned()),
        ];
        f.extend(offer.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        f
    };
    let refused = submit_owned(
        &mut b,
        "/admin/forms",
        &fields(name, &offer(label, "price_not_in_the_plan")),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.html);
    assert!(
        refused.html.contains("stripe_price_ids"),
        "{}",
        refused.html
    );
    let made = submit_owned(
        &mut b,
        "/admin/forms",
        &fields(name, &offer(label, "price_pro")),
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let id = id_in(&made, "/admin/forms/");
    let listed = app.get("/v1/payment-forms").await.body["data"][0].clone();
    assert_eq!(listed["name"], name);
    let public_id = listed["public_id"].as_str().unwrap().to_owned();

    let page = b.get(made.location.as_deref().unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page
        .html
        .contains("&lt;script&gt;x()&lt;/script&gt; Buy Editor"));
    assert!(!page.html.contains("<script>x()"));
    assert!(page.html.contains("Pro &lt;em&gt;yearly&lt;/em&gt;"));
    assert!(
        page.html.contains(&format!("{}/buy/{public_id}", app.base)),
        "the link to copy"
    );
    assert!(
        page.html.contains(&format!("href=\"/buy/{public_id}\"")),
        "the preview"
    );
    assert!(page.html.contains("data-copy=\"buy-link\""));
    let buy = reqwest::get(format!("{}/buy/{public_id}", app.base))
        .await
        .unwrap();
    assert_eq!(buy.status(), 200);
    let buy = buy.text().await.unwrap();
    assert!(buy.contains("Pro &lt;em&gt;yearly&lt;/em&gt;"), "{buy}");

    let mut edited = fields("Buy Editor", &offer("Pro, one year", "price_pro"));
    edited.push(("email_subject".into(), "Your {product} key".into()));
    edited.push(("email_body".into(), "Hello {name}\r\n{keys}".into()));
    edited.push(("success_text".into(), "Thanks!".into()));
    let saved = submit_owned(&mut b, &format!("/admin/forms/{id}"), &edited).await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let listed = app.get("/v1/payment-forms").await.body["data"][0].clone();
    assert_eq!(listed["name"], "Buy Editor");
    assert_eq!(listed["offers"][0]["label"], "Pro, one year");
    assert_eq!(listed["email_body"], "Hello {name}\n{keys}");
    assert_eq!(
        listed["public_id"],
        public_id.as_str(),
        "links handed out keep working"
    );
    let mut no_keys = fields("Buy Editor", &offer("Pro, one year", "price_pro"));
    no_keys.push(("email_body".into(), "no placeholder".into()));
    let bad = submit_owned(&mut b, &format!("/admin/forms/{id}"), &no_keys).await;
    assert_eq!(bad.status, 422);
    let forms = b.get("/admin/forms").await;
    assert!(forms.html.contains("Buy Editor"));
    audited(
        db,
        "user:dev@example.com",
        "payment_form_created",
        "form_id",
        id,
    )
    .await;
    audited(
        db,
        "user:dev@example.com",
        "payment_form_updated",
        "form_id",
        id,
    )
    .await;

    // A license URL: its secret shown once, then used by the store.
    let new = b.get("/admin/license-urls/new").await;
    assert_eq!(new.status, 200, "{}", new.html);
    let made = submit(
        &mut b,
        "/admin/license-urls",
        &[
            ("name", "<u>SendOwl</u>"),
            ("store", "sendowl"),
            ("plan_id", &plan.to_string()),
        ],
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let location = made.location.clone().unwrap();
    assert!(!location.contains("kt_"), "{location}");
    let url_id = id_in(&made, "/admin/license-urls/");
    let page = b.get(&location).await;
    assert_eq!(page.status, 200);
    let prefix = format!("{}/l/{url_id}/", app.base);
    let at = page.html.find(&prefix).expect("the URL on the page") + prefix.len();
    let secret: String = page.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert!(page.html.contains("&lt;u&gt;SendOwl&lt;/u&gt;"));
    assert!(page.html.contains("{{order.id}}"), "SendOwl's placeholders");
    let again = b.get(&format!("/admin/license-urls/{url_id}")).await;
    assert!(!again.html.contains(&secret), "shown once only");
    let sale = |path: String, query: &'static str| async move {
        let r = reqwest::get(format!("{}{path}?{query}", app.base))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let (status, key) = sale(
        format!("/l/{url_id}/{secret}"),
        "order_id=A1&buyer_email=a@example.com&buyer_name=Ada",
    )
    .await;
    assert_eq!(status, 200, "{key}");
    assert_eq!(key.trim().len(), 23, "a key: {key}");

    let saved = submit(
        &mut b,
        &format!("/admin/license-urls/{url_id}"),
        &[
            ("name", "SendOwl"),
            ("plan_id", &plan.to_string()),
            ("order_id_param", "txn"),
            ("email_buyer", "1"),
        ],
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let (status, _) = sale(
        format!("/l/{url_id}/{secret}"),
        "txn=A2&buyer_email=b@example.com&buyer_name=Bo",
    )
    .await;
    assert_eq!(status, 200, "the new parameter name is read");
    let clash = submit(
        &mut b,
        &format!("/admin/license-urls/{url_id}"),
        &[("name", "SendOwl"), ("name_param", "txn")],
    )
    .await;
    assert_eq!(clash.status, 422, "two fields from one parameter");

    let rotated = submit(&mut b, &format!("/admin/license-urls/{url_id}/rotate"), &[]).await;
    assert_eq!(rotated.status, 303, "{}", rotated.html);
    let page = b.get(rotated.location.as_deref().unwrap()).await;
    let at = page.html.find(&prefix).expect("the new URL") + prefix.len();
    let fresh: String = page.html[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert_ne!(fresh, secret);
    let (old, _) = sale(
        format!("/l/{url_id}/{secret}"),
        "txn=A3&buyer_email=c@example.com&buyer_name=Cy",
    )
    .await;
    assert_eq!(old, 404, "the old URL stops working");
    let (new, _) = sale(
        format!("/l/{url_id}/{fresh}"),
        "txn=A3&buyer_email=c@example.com&buyer_name=Cy",
    )
    .await;
    assert_eq!(new, 200);
    let list = b.get("/admin/license-urls").await;
    assert!(list.html.contains("SendOwl"));
    assert!(!list.html.contains(&fresh));
    for action in [
        "license_url_created",
        "license_url_updated",
        "license_url_rotated",
    ] {
        let entry = audited(db, "user:dev@example.com", action, "license_url_id", url_id).await;
        assert!(!entry.to_string().contains(&fresh) && !entry.to_string().contains(&secret));
    }
    let deleted = submit(&mut b, &format!("/admin/license-urls/{url_id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303);
    assert_eq!(
        b.get(&format!("/admin/license-urls/{url_id}")).await.status,
        404
    );

    // Support reads forms, changes none.
    console_user(db, "support@example.com", Role::Support, None).await;
    let mut support = signed_in(app, "support@example.com").await;
    let page = support.get(&format!("/admin/forms/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("Save payment form"));
    let refused = submit(
        &mut support,
        &format!("/admin/forms/{id}"),
        &[("name", "taken over")],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(support.get("/admin/forms/new").await.status, 403);
}
setup_test!(
    console_payment_forms_and_license_urls,
    payment_forms_and_license_urls
);

/// The provider page says what is set up (never a secret), the last event received, and
/// deliveries refused for a wrong signature or a missing set-up.
async fn provider_status_shows_deliveries(db: &TestDb, app: &TestApp) {
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: &'static str| async move {
        let mut r = app.http.post(format!("{}{path}", app.base)).body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send().await.unwrap().status().as_u16()
    };
    let body = r#"{"id":"evt_console_1","object":"event","type":"customer.created","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer"}}}"#;
    let now = chrono::Utc::now().timestamp();
    let good = post(
        "/webhooks/stripe",
        vec![(
            "stripe-signature",
            sign(STRIPE_SECRET, now, body.as_bytes()),
        )],
        body,
    )
    .await;
    assert_eq!(good, 200, "a verified, ignored event");
    for _ in 0..2 {
        let bad = post(
            "/webhooks/stripe",
            vec![(
                "stripe-signature",
                sign("whsec_wrong", now, body.as_bytes()),
            )],
            body,
        )
        .await;
        assert_eq!(bad, 400);
    }
    assert_eq!(post("/webhooks/paddle", vec![], "{}").await, 400);
    let unset = post(
        "/webhooks/lemonsqueezy",
        vec![("x-signature", "00".into())],
        "{}",
    )
    .await;
    assert_ne!(unset, 200);

    console_user(db, "dev@example.com", Role::Admin, None).await;
    let mut b = signed_in(app, "dev@example.com").await;
    let page = b.get("/admin/providers").await;
    assert_eq!(page.status, 200, "{}", page.html);
    for secret in [STRIPE_SECRET, PADDLE_SECRET, "sk_test_console_setup"] {
        assert!(!page.html.contains(secret), "{secret} shown");
    }
    let row = |name: &str| {
        let at = page
            .html
            .find(&format!(">{name}</th>"))
            .unwrap_or_else(|| panic!("{name} row"));
        let end = page.html[at..].find("</tr>").unwrap() + at;
        page.html[at..end].to_owned()
    };
    let stripe = row("Stripe");
    assert!(stripe.contains("webhook secret set"), "{stripe}");
    assert!(stripe.contains("API key set"), "{stripe}");
    assert!(
        stripe.contains(&format!("{}/webhooks/stripe", app.base)),
        "{stripe}"
    );
    assert!(!stripe.contains("none yet"), "the verified event: {stripe}");
    assert!(
        stripe.contains("2 with a wrong signature or secret"),
        "{stripe}"
    );
    let paddle = row("Paddle");
    assert!(
        paddle.contains("1 with a wrong signature or secret"),
        "{paddle}"
    );
    let lemon = row("Lemon Squeezy");
    assert!(lemon.contains("while not set up"), "{lemon}");
    assert!(lemon.contains("none yet"), "{lemon}");
    let gumroad = row("Gumroad");
    assert!(gumroad.contains("none"), "{gumroad}");
    assert!(
        gumroad.contains("/webhooks/gumroad/&lt;the secret&gt;"),
        "{gumroad}"
    );

    // A license URL called with a wrong secret counts too.
    let product = app.product("Editor", &[]).await;
    let plan = app
        .post("/v1/plans", json!({"product_id": product, "name": "Pro"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let url = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "DPD", "store": "dpd"}),
        )
        .await;
    let url_id = url.body["id"].as_i64().unwrap();
    let wrong = reqwest::get(format!("{}/l/{url_id}/kt_wrong?txn_id=1", app.base))
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    let page = b.get("/admin/providers").await;
    assert!(page.html.contains(&format!(
        "a call to license URL {url_id} had a wrong secret"
    )));
}
setup_test!(
    console_provider_status_shows_deliveries,
    provider_status_shows_deliveries
);

/// The developer's journey in a real browser: sign in, create a product, a plan, a token and
/// a payment form, copy a snippet, open the buy page. axe-core checks every page at desktop
/// and phone sizes; the screenshots are kept under the target directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_developer_journey_in_a_real_browser() {
    let (chromium, node_dir) = match crate::console::browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the browser run", &why);
            return;
        }
    };
    let db = TestDb::create(&crate::helpers::Backend::Sqlite).await;
    let app = spawn_selling(&db).await;
    console_user(&db, "dev@example.com", Role::Admin, None).await;

    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("console-screenshots")
        .join("setup");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let script = format!(
        "{}/tests/browser/console-setup.mjs",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(&script, node_dir.join("console-setup.mjs")).unwrap();
    let run = tokio::process::Command::new("node")
        .arg("console-setup.mjs")
        .current_dir(&node_dir)
        .env("BASE", &app.base)
        .env("EMAIL", "dev@example.com")
        .env("PASSWORD", crate::console::PASSWORD)
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
        "the browser run failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value =
        serde_json::from_slice(out.stdout.trim_ascii()).expect("the script's report");
    let pages = report["pages"].as_array().unwrap();
    assert!(pages.len() >= 20, "{report}");
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

    // What the browser made exists, through the API.
    let product = report["product"].as_i64().expect("a product id");
    let api = app.get(&format!("/v1/products/{product}")).await.body;
    assert_eq!(api["name"], "Journey Editor");
    let plans = app
        .get(&format!("/v1/plans?product_id={product}"))
        .await
        .body;
    assert_eq!(plans["data"][0]["name"], "Journey Pro", "{plans}");
    let forms = app.get("/v1/payment-forms").await.body;
    assert_eq!(forms["data"][0]["name"], "Journey form");
    // The copied snippet is the product's Python code, with its key.
    let copied = report["copied"].as_str().unwrap();
    assert!(
        copied.contains(&format!("product_id={product}")),
        "{copied}"
    );
    assert!(copied.contains(&format!(
        "HelperMethods.server_address = \"{}/api/\"",
        app.base
    )));
    assert!(
        copied.contains("<RSAKeyValue>"),
        "copied as text, not as HTML: {copied}"
    );
    // The token the page showed once authenticates.
    let token = report["token"].as_str().unwrap();
    let r = app
        .call(Method::GET, "/v1/products", Some(token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(report["buy_page"]
        .as_str()
        .unwrap()
        .contains("Journey Pro yearly"));
    app.stop().await;
    db.remove().await;
}
