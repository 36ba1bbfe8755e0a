//! Faults never lose, fake or stall. Each test breaks something for real — a full filesystem,
//! a link to PostgreSQL that resets or silently drops packets, a commit that fails, SIGTERM
//! and kill -9 under load, another process writing the same SQLite file, clients that hold
//! connections — and checks the invariants: nothing acknowledged is lost, nothing unstored is
//! acknowledged, and every answer comes within a bound. Counts and generous bounds are
//! asserted; the measured times are printed (they go to the benchmark notes).

mod proxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    backends, spawn_settings, spawn_with, test_http, test_settings, Backend, Resp, ServerProcess,
    TestApp, TestDb,
};
use proxy::{Link, Proxy};

/// What "fast" means in these tests: far above the configured limits (2 s for the database,
/// 1 s for /health), far below the hangs they guard against (30 s and more).
const BOUND: Duration = Duration::from_secs(10);

fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", String::from_utf8_lossy(&r.raw));
    assert!(r.header("retry-after").is_some(), "{what}: no Retry-After");
}

/// A product and a monthly plan sold by the Stripe price the purchase events name.
async fn paid_plan(app: &TestApp) -> (i64, i64) {
    let product = app.product("Editor", &["pro"]).await;
    let r = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro monthly", "period_days": 30, "max_machines": 2,
                   "features": ["pro"], "grace_days": 5, "stripe_price_ids": ["price_monthly"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (product, r.body["id"].as_i64().unwrap())
}

/// The first paid invoice of a new Stripe subscription: a purchase.
fn purchase(customer: &str, subscription: &str) -> String {
    let now = Utc::now().timestamp();
    json!({
        "id": format!("evt_{subscription}"), "object": "event", "api_version": "2026-10-28.endive",
        "created": now, "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null}, "type": "invoice.paid",
        "data": {"object": {
            "id": format!("in_{subscription}"), "object": "invoice", "billing_reason": "subscription_create",
            "status": "paid", "customer": customer, "customer_email": format!("{customer}@example.com"),
            "customer_name": "Ann Lee", "amount_paid": 1500, "currency": "eur",
            "parent": {"type": "subscription_details", "quote_details": null,
                       "subscription_details": {"subscription": subscription, "metadata": {}}},
            "lines": {"object": "list", "has_more": false, "data": [
                {"id": format!("il_{subscription}"), "object": "line_item", "amount": 1500, "quantity": 1,
                 "proration": false, "period": {"start": now - 60, "end": now + 30 * 86_400},
                 "pricing": {"type": "price_details",
                             "price_details": {"price": "price_monthly", "product": "prod_editor"}}}]},
            "period_start": now - 60, "period_end": now - 60,
            "payments": {"object": "list", "data": [{"object": "invoice_payment",
                "payment": {"type": "payment_intent", "payment_intent": format!("pi_{subscription}")}}]}
        }}
    })
    .to_string()
}

async fn activations(app: &TestApp, license: i64) -> usize {
    let r = app
        .get(&format!("/v1/licenses/{license}/activations"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().len()
}

async fn health(http: &reqwest::Client, base: &str) -> Resp {
    let r = http.get(format!("{base}/health")).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.unwrap().to_vec();
    Resp {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
        headers,
    }
}

/// The licenses whose subscription is `subscription`.
async fn licenses_of(app: &TestApp, subscription: &str) -> usize {
    let all = app.get("/v1/licenses?limit=500").await.body["data"].clone();
    all.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["metadata"]["stripe_subscription_id"] == subscription)
        .count()
}

// ---------------------------------------------------------------------------------------------
// A failed commit is never acknowledged, on any write path.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_path_answers_2xx_without_its_commit() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), crate::stripe::providers().await).await;
        every_write_path(&app).await;
        app.stop().await;
        db.remove().await;
    }
}

async fn every_write_path(app: &TestApp) {
    let faults = app.faults();

    // The API: a product, a license, a change to a license.
    faults.fail_commits(1);
    let r = app.post("/v1/products", json!({"name": "Lost"})).await;
    assert_unavailable(&r, "product");
    assert!(!app
        .get("/v1/products")
        .await
        .raw
        .windows(4)
        .any(|w| w == b"Lost"));
    let (product, plan) = paid_plan(app).await;
    faults.fail_commits(1);
    let r = app
        .post("/v1/licenses", json!({"product_id": product}))
        .await;
    assert_unavailable(&r, "license");
    assert_eq!(app.license_count().await, 0);
    let license = app
        .license(json!({"product_id": product, "max_machines": 2, "notes": "kept"}))
        .await;
    let id = license["id"].as_i64().unwrap();
    let key = license["key"].as_str().unwrap().to_owned();
    faults.fail_commits(1);
    let r = app
        .patch(&format!("/v1/licenses/{id}"), json!({"notes": "lost"}))
        .await;
    assert_unavailable(&r, "license change");
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}")).await.body["notes"],
        "kept"
    );

    // What programs do: activate (native and Cryptolens), deactivate.
    let machine = |m: &str| json!({"key": key, "fingerprint": m});
    faults.fail_commits(1);
    let r = app.public("/v1/activations", machine("machine-1")).await;
    assert_unavailable(&r, "activation");
    assert_eq!(activations(app, id).await, 0);
    let r = app.public("/v1/activations", machine("machine-1")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    faults.fail_commits(1);
    let r = app
        .public("/v1/activations/deactivate", machine("machine-1"))
        .await;
    assert_unavailable(&r, "deactivation");
    assert_eq!(activations(app, id).await, 1);
    let sdk = app
        .post(
            "/v1/tokens",
            json!({"name": "sdk", "permissions": ["cryptolens:activate"]}),
        )
        .await;
    assert_eq!(sdk.status, 201, "{}", sdk.body);
    let sdk = sdk.body["token"].as_str().unwrap().to_owned();
    faults.fail_commits(1);
    let r = app
        .http
        .post(format!("{}/api/key/Activate", app.base))
        .form(&[
            ("token", sdk.as_str()),
            ("ProductId", &product.to_string()),
            ("Key", &key),
            ("MachineCode", "machine-2"),
            ("Sign", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "Cryptolens Activate");
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"], 1, "{body}");
    assert_eq!(activations(app, id).await, 1);

    // A store calling its license URL after a sale.
    let url = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "shop", "store": "sendowl"}),
        )
        .await;
    assert_eq!(url.status, 201, "{}", url.body);
    let sale = format!(
        "{}{}?order_id=SO-1&buyer_email=ann@example.com",
        app.base,
        url.body["path"].as_str().unwrap()
    );
    faults.fail_commits(1);
    let r = app.http.get(&sale).send().await.unwrap();
    assert_eq!(r.status(), 503, "license URL");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(app.license_count().await, 1);
    let r = app.http.get(&sale).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().lines().count(), 1);
    assert_eq!(app.license_count().await, 2);

    // A payment provider's webhook: answered non-2xx, so the provider delivers it again.
    let event = purchase("cus_ann", "sub_first");
    faults.fail_commits(1);
    let r = crate::stripe::deliver(app, &event).await;
    assert_unavailable(&r, "webhook");
    assert_eq!(licenses_of(app, "sub_first").await, 0);
    let r = crate::stripe::deliver(app, &event).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "applied", "{}", r.body);
    assert_eq!(licenses_of(app, "sub_first").await, 1);

    // A failed write shows in /health with its reason until a write commits again (the
    // second failure is the probe write /health makes).
    faults.fail_commits(2);
    let r = app.post("/v1/customers", json!({"name": "Lost"})).await;
    assert_unavailable(&r, "customer");
    let h = health(&app.http, &app.base).await;
    assert_eq!(h.status, 503, "{}", h.body);
    assert_eq!(h.body["writes"]["status"], "failing", "{}", h.body);
    assert!(
        h.body["writes"]["reason"]
            .as_str()
            .unwrap()
            .contains("injected"),
        "{}",
        h.body
    );
    let h = health(&app.http, &app.base).await;
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.body["writes"]["status"], "ok");
}

// ---------------------------------------------------------------------------------------------
// A real full filesystem.

/// A tmpfs of a few megabytes, unmounted when dropped. Mounting needs root (or
/// CAP_SYS_ADMIN); without it the test that needs one is skipped, and says so.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    /// Writes a file until the filesystem is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // The last partial chunk may still fit in smaller writes.
        while file.write_all(&chunk[..512]).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_acknowledges_only_what_it_stored() {
    let Some(disk) = SmallDisk::mount(4) else {
        crate::helpers::skipped_for(
            "the whole test",
            "cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN); \
             no_write_path_answers_2xx_without_its_commit still injects commit failures",
        );
        return;
    };
    let db = TestDb::sqlite_in(disk.dir.path());
    let app = spawn_with(&db, test_http(), crate::stripe::providers().await).await;
    let (product, _) = paid_plan(&app).await;
    let filler = disk.fill();

    // Licenses big enough to need new pages, and purchases, while the disk is full.
    let notes = "x".repeat(3000);
    let mut acknowledged_keys = Vec::new();
    let mut acknowledged_subscriptions = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        let r = app
            .post(
                "/v1/licenses",
                json!({"product_id": product, "notes": notes}),
            )
            .await;
        match r.status {
            201 => acknowledged_keys.push(r.body["key"].as_str().unwrap().to_owned()),
            _ => {
                assert_unavailable(&r, "license on a full disk");
                refused += 1;
            }
        }
        let subscription = format!("sub_full_{i}");
        let r = crate::stripe::deliver(&app, &purchase("cus_full", &subscription)).await;
        match r.status {
            200 => acknowledged_subscriptions.push(subscription),
            _ => {
                assert_unavailable(&r, "webhook on a full disk");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the disk never filled up");
    let h = health(&app.http, &app.base).await;
    assert_eq!(h.status, 503, "{}", h.body);
    assert_eq!(h.body["writes"]["status"], "failing", "{}", h.body);
    assert!(
        h.body["writes"]["reason"]
            .as_str()
            .unwrap()
            .contains("full"),
        "{}",
        h.body
    );

    // Space comes back: writes succeed again without a restart, and /health says so.
    std::fs::remove_file(filler).unwrap();
    let r = app
        .post(
            "/v1/licenses",
            json!({"product_id": product, "notes": "after"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    acknowledged_keys.push(r.body["key"].as_str().unwrap().to_owned());
    let r = crate::stripe::deliver(&app, &purchase("cus_full", "sub_after")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    acknowledged_subscriptions.push("sub_after".into());
    let h = health(&app.http, &app.base).await;
    assert_eq!(h.status, 200, "{}", h.body);

    // Everything acknowledged is there, and nothing else — also after a restart.
    let admin = app.admin.clone();
    app.stop().await;
    let app = crate::helpers::spawn_second(&db, test_http(), &admin).await;
    for key in &acknowledged_keys {
        let r = app.get(&format!("/v1/licenses/by-key/{key}")).await;
        assert_eq!(r.status, 200, "acknowledged license {key} is lost");
    }
    let total = app.license_count().await;
    let mut from_purchases = 0;
    for s in &acknowledged_subscriptions {
        let n = licenses_of(&app, s).await;
        assert_eq!(n, 1, "acknowledged purchase {s}");
        from_purchases += n;
    }
    assert_eq!(
        total,
        acknowledged_keys.len() + from_purchases,
        "only acknowledged writes are stored"
    );
    eprintln!(
        "full disk: {refused} writes refused with 503, {} acknowledged and all stored",
        acknowledged_keys.len() + acknowledged_subscriptions.len()
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL away: a reset link and a black hole.

/// The host and port a PostgreSQL URL names.
fn upstream(url: &str) -> SocketAddr {
    let after = url.split_once("://").unwrap().1;
    let host_port = after.split(['/', '?']).next().unwrap();
    let host_port = host_port.rsplit('@').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .expect("a PostgreSQL URL with an IP address")
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let (scheme, after) = url.split_once("://").unwrap();
    let (authority, rest) = after.split_at(after.find(['/', '?']).unwrap_or(after.len()));
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}{rest}")
}

/// Runs `f`, returning its result and how long it took.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_away_answers_503_fast_and_heals() {
    let Some(server) = crate::helpers::postgres() else {
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server)).await;
    let url = db.url.clone().unwrap();
    let proxy = Proxy::start(upstream(&url)).await;
    let mut http = test_http();
    http.public_url = Some("https://shop.example".into());
    let mut settings = test_settings(
        &db,
        http,
        crate::stripe::providers().await,
        Default::default(),
        0,
    );
    settings.store.database_url = Some(via(&url, proxy.addr));
    let app = spawn_settings(&settings).await;
    let (product, plan) = paid_plan(&app).await;
    let form = app
        .post("/v1/payment-forms", json!({"name": "Buy Editor", "product_id": product, "offers": [
            {"plan_id": plan, "label": "Pro", "price": "€15 a month", "stripe_price_id": "price_monthly", "mode": "subscription"}]}))
        .await;
    assert_eq!(form.status, 201, "{}", form.body);
    let buy_page = form.body["path"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&buy_page).await.status, 200);
    let license = app.license(json!({"product_id": product})).await;
    let key = license["key"].as_str().unwrap().to_owned();
    let r = app
        .public("/v1/activations", json!({"key": key, "fingerprint": "m-0"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut acknowledged = 1;
    let validate = json!({"key": key, "fingerprint": "m-0"});

    for (round, link) in [Link::Reset, Link::BlackHole].into_iter().enumerate() {
        proxy.set(link);
        // Several senders at once, each needing the database.
        let answers = join_all((0..4).map(|i| {
            let app = &app;
            let key = key.clone();
            let buy_page = &buy_page;
            async move {
                vec![
                    (
                        "write",
                        timed(app.post("/v1/licenses", json!({"product_id": product}))).await,
                    ),
                    ("read", timed(app.get("/v1/licenses?limit=5")).await),
                    (
                        "activation",
                        timed(app.public(
                            "/v1/activations",
                            json!({"key": key, "fingerprint": format!("m-{round}-{i}")}),
                        ))
                        .await,
                    ),
                    (
                        "webhook",
                        timed(crate::stripe::deliver(
                            app,
                            &purchase("cus_away", &format!("sub_away_{round}_{i}")),
                        ))
                        .await,
                    ),
                    ("health", timed(health(&app.http, &app.base)).await),
                    ("buy page", timed(app.get(buy_page)).await),
                ]
            }
        }))
        .await;
        let mut slowest = std::collections::BTreeMap::<&str, Duration>::new();
        for (what, (r, took)) in answers.into_iter().flatten() {
            assert!(took < BOUND, "{link:?}: {what} took {took:?}");
            let slot = slowest.entry(what).or_default();
            *slot = (*slot).max(took);
            if what == "health" {
                assert_eq!(r.status, 503, "{link:?}: {}", r.body);
            } else {
                assert_unavailable(&r, &format!("{link:?}: {what}"));
            }
        }
        eprintln!("PostgreSQL {link:?}: slowest answers {slowest:?}");
        // Once it notices it cannot hear other nodes (a dropped link only shows when a
        // heartbeat goes unanswered), a node serves nothing from memory, not even a license
        // it validated a moment ago.
        let (deaf, took) = timed(async {
            for _ in 0..100 {
                if health(&app.http, &app.base).await.body["changes"]["status"] != "heard" {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        })
        .await;
        assert!(
            deaf,
            "{link:?}: the node never noticed it cannot hear changes"
        );
        eprintln!("PostgreSQL {link:?}: stopped trusting memory {took:?} after the answers above");
        let r = app.public("/v1/validate", validate.clone()).await;
        assert_unavailable(&r, &format!("{link:?}: validation while deaf"));

        // The link comes back: the same server serves again, without a restart.
        proxy.set(Link::Up);
        let (healed, took) = timed(async {
            for _ in 0..300 {
                if health(&app.http, &app.base).await.status == 200 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        })
        .await;
        assert!(healed, "{link:?}: /health never recovered");
        eprintln!("PostgreSQL {link:?}: healthy again {took:?} after the link came back");
        let r = app
            .post("/v1/licenses", json!({"product_id": product}))
            .await;
        assert_eq!(r.status, 201, "{link:?}: {}", r.body);
        acknowledged += 1;
        let r = app.public("/v1/validate", validate.clone()).await;
        assert_eq!(r.body["code"], "VALID", "{link:?}: {}", r.body);
    }
    assert_eq!(
        app.license_count().await,
        acknowledged,
        "nothing answered 503 was stored"
    );
    app.stop().await;
    db.remove().await;
}

// ---------------------------------------------------------------------------------------------
// What a node answers from memory while the database is away.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_licenses_answer_while_the_database_is_away() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = crate::helpers::spawn(&db, test_http()).await;
        from_memory(&app).await;
        app.stop().await;
        db.remove().await;
    }
}

async fn from_memory(app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 3, "features": ["pro"]}))
        .await;
    let key = license["key"].as_str().unwrap().to_owned();
    let other = app.license(json!({"product_id": product})).await;
    let machine = |m: &str| json!({"key": key, "fingerprint": m});
    let validate = json!({"key": key, "fingerprint": "machine-1", "features": ["pro"]});
    assert_eq!(
        app.public("/v1/activations", machine("machine-1"))
            .await
            .status,
        201
    );
    let sdk = app
        .post(
            "/v1/tokens",
            json!({"name": "sdk", "permissions": ["cryptolens:activate"]}),
        )
        .await;
    let sdk = sdk.body["token"].as_str().unwrap().to_owned();
    let cryptolens_activate = || {
        app.http
            .post(format!("{}/api/key/Activate", app.base))
            .form(&[
                ("token", sdk.as_str()),
                ("ProductId", &product.to_string()),
                ("Key", &key),
                ("MachineCode", "machine-1"),
                ("Sign", "true"),
            ])
            .send()
    };
    let hearing_since =
        || async { health(&app.http, &app.base).await.body["changes"]["since"].clone() };

    // A node that stops hearing for a moment (on PostgreSQL, a heartbeat answered too late
    // on a loaded machine) rightly forgets what it held; the outage is then tried again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let heard = hearing_since().await;
        assert!(heard.is_string(), "the node hears every change");
        let r = app.public("/v1/validate", validate.clone()).await;
        assert_eq!(r.body["code"], "VALID", "{}", r.body);
        let r: Value = cryptolens_activate().await.unwrap().json().await.unwrap();
        assert_eq!(r["result"], 0, "{r}");

        app.faults().set_unreachable(true);
        // Past the age at which entries are normally read again (5 s).
        tokio::time::sleep(Duration::from_millis(5500)).await;
        let validated = app.public("/v1/validate", validate.clone()).await;
        let again = app.public("/v1/activations", machine("machine-1")).await;
        let cryptolens = cryptolens_activate().await.unwrap();
        let cryptolens_status = cryptolens.status();
        let cryptolens: Value = cryptolens.json().await.unwrap();
        if hearing_since().await != heard && attempts < 3 {
            eprintln!("the node stopped hearing changes during the outage; trying again");
            app.faults().set_unreachable(false);
            continue;
        }
        assert_eq!(validated.status, 200, "{}", validated.body);
        assert_eq!(validated.body["code"], "VALID");
        assert!(validated.header(keyturn_http::SIGNATURE_HEADER).is_some());
        assert!(again.status < 300, "re-activation: {}", again.body);
        assert_eq!(cryptolens_status, 200);
        assert_eq!(
            cryptolens["result"], 0,
            "Cryptolens re-activation: {cryptolens}"
        );
        break;
    }
    // What memory does not hold needs the database.
    let r = app
        .public(
            "/v1/validate",
            json!({"key": other["key"], "fingerprint": "machine-1"}),
        )
        .await;
    assert_unavailable(&r, "validation of a license not in memory");
    let r = app.public("/v1/activations", machine("machine-2")).await;
    assert_unavailable(&r, "a new activation");

    app.faults().set_unreachable(false);
    let r = app.public("/v1/activations", machine("machine-2")).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

// ---------------------------------------------------------------------------------------------
// Concurrent writers.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchases_by_one_customer_at_once_all_succeed() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_with(&db, test_http(), crate::stripe::providers().await).await;
        paid_plan(&app).await;
        const N: usize = 8;
        let answers = join_all((0..N).map(|i| {
            let app = &app;
            async move {
                crate::stripe::deliver(app, &purchase("cus_many", &format!("sub_many_{i}"))).await
            }
        }))
        .await;
        for r in &answers {
            assert_eq!(r.status, 200, "{backend:?}: {}", r.body);
            assert_eq!(r.body["status"], "applied", "{backend:?}: {}", r.body);
        }
        assert_eq!(app.license_count().await, N, "{backend:?}");
        let customers = app.get("/v1/customers?email=cus_many@example.com").await;
        assert_eq!(
            customers.body["data"].as_array().unwrap().len(),
            1,
            "{backend:?}: {}",
            customers.body
        );
        let events = app.get("/v1/provider-events?limit=50").await;
        let events = events.body["data"].as_array().unwrap().clone();
        assert_eq!(events.len(), N);
        assert!(
            events.iter().all(|e| e["status"] == "applied"),
            "{backend:?}: {events:?}"
        );
        app.stop().await;
        db.remove().await;
    }
}

/// Runs the `keyturn` CLI on a data directory; whether it succeeded, and its stderr.
fn cli(data_dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .args(args)
        .env("KEYTURN_DATA_DIR", data_dir)
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .output()
        .expect("run keyturn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_and_the_server_share_an_sqlite_file_without_lock_errors() {
    let db = TestDb::create(&Backend::Sqlite).await;
    let app = crate::helpers::spawn(&db, test_http()).await;
    let product = app.product("Editor", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 0}))
        .await;
    let key = license["key"].as_str().unwrap().to_owned();
    let data_dir = db.dir.path().join("data");

    let commands = {
        let data_dir = data_dir.clone();
        let product = product.to_string();
        tokio::task::spawn_blocking(move || {
            (0..12)
                .map(|i| {
                    cli(
                        &data_dir,
                        &[
                            "license",
                            "create",
                            "--product",
                            &product,
                            "--notes",
                            &format!("cli {i}"),
                        ],
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    let requests = async {
        let mut statuses = Vec::new();
        for round in 0..15 {
            let batch = join_all((0..4).map(|i| {
                let (app, key) = (&app, &key);
                async move {
                    let m = format!("machine-{round}-{i}");
                    let a = app
                        .public("/v1/activations", json!({"key": key, "fingerprint": m}))
                        .await
                        .status;
                    let l = app
                        .post("/v1/licenses", json!({"product_id": product}))
                        .await
                        .status;
                    [a, l]
                }
            }))
            .await;
            statuses.extend(batch.into_iter().flatten());
        }
        statuses
    };
    let (commands, statuses) = tokio::join!(commands, requests);
    let failed: Vec<String> = commands
        .unwrap()
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, err)| err)
        .collect();
    assert!(failed.is_empty(), "CLI writes failed: {failed:?}");
    let refused: Vec<&u16> = statuses.iter().filter(|s| **s >= 300).collect();
    assert!(refused.is_empty(), "requests refused: {refused:?}");
    assert_eq!(app.license_count().await, 1 + 12 + 60);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The real binary: SIGTERM and kill -9 under load.

/// An admin token made with the CLI before the server starts (a server that is not a new
/// installation prints none).
fn admin_token(env: &[(&str, &str)]) -> String {
    let keyturn = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
        command
            .args(args)
            .env_remove("KEYTURN_DATABASE_URL")
            .env_remove("KEYTURN_CONFIG");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().expect("run keyturn");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    keyturn(&["migrate"]);
    let out = keyturn(&["token", "create", "--admin"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("kt_"))
        .expect("a token")
        .to_owned()
}

/// What senders were told was stored: license keys (API) and subscriptions (webhooks).
#[derive(Default)]
struct Acknowledged {
    keys: Vec<String>,
    subscriptions: Vec<String>,
}

/// Senders that create licenses and deliver purchases until the server stops answering.
async fn load(base: &str, admin: &str, product: i64, senders: usize) -> Acknowledged {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let per_sender = join_all((0..senders).map(|s| {
        let http = http.clone();
        async move {
            let mut mine = Acknowledged::default();
            for i in 0.. {
                let created = http
                    .post(format!("{base}/v1/licenses"))
                    .bearer_auth(admin)
                    .json(&json!({"product_id": product}))
                    .send()
                    .await;
                let Ok(created) = created else { break };
                if created.status() == 201 {
                    let Ok(body) = created.json::<Value>().await else {
                        break;
                    };
                    mine.keys.push(body["key"].as_str().unwrap().to_owned());
                }
                let subscription = format!("sub_load_{s}_{i}");
                let body = purchase("cus_load", &subscription);
                let signature = keyturn_providers::stripe::sign(
                    crate::stripe::SECRET,
                    Utc::now().timestamp(),
                    body.as_bytes(),
                );
                let delivered = http
                    .post(format!("{base}/webhooks/stripe"))
                    .header("stripe-signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let Ok(delivered) = delivered else { break };
                if delivered.status() == 200 {
                    let Ok(_) = delivered.bytes().await else {
                        break;
                    };
                    mine.subscriptions.push(subscription);
                }
            }
            mine
        }
    }))
    .await;
    let mut all = Acknowledged::default();
    for mine in per_sender {
        all.keys.extend(mine.keys);
        all.subscriptions.extend(mine.subscriptions);
    }
    all
}

/// Checks on a fresh server that everything acknowledged is stored.
async fn all_stored(base: &str, admin: &str, acknowledged: &Acknowledged) {
    let http = reqwest::Client::new();
    for key in &acknowledged.keys {
        let r = http
            .get(format!("{base}/v1/licenses/by-key/{key}"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged license {key} is lost");
    }
    let mut subscriptions = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page: Value = http
            .get(format!(
                "{base}/v1/licenses?limit=500{}",
                cursor
                    .as_deref()
                    .map(|c| format!("&cursor={c}"))
                    .unwrap_or_default()
            ))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for l in page["data"].as_array().unwrap() {
            if let Some(s) = l["metadata"]["stripe_subscription_id"].as_str() {
                subscriptions.insert(s.to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    for s in &acknowledged.subscriptions {
        assert!(
            subscriptions.contains(s),
            "acknowledged purchase {s} is lost"
        );
    }
}

/// A product made through the API of a running server.
async fn product_on(base: &str, admin: &str) -> i64 {
    let r: Value = reqwest::Client::new()
        .post(format!("{base}/v1/products"))
        .bearer_auth(admin)
        .json(&json!({"name": "Editor", "features": ["pro"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product = r["id"].as_i64().unwrap();
    let plan = reqwest::Client::new()
        .post(format!("{base}/v1/plans"))
        .bearer_auth(admin)
        .json(
            &json!({"product_id": product, "name": "Pro monthly", "period_days": 30,
                      "features": ["pro"], "stripe_price_ids": ["price_monthly"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(plan.status(), 201);
    product
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_finishes_within_the_grace_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let env = [
        ("KEYTURN_DATA_DIR", data),
        ("KEYTURN_STRIPE_WEBHOOK_SECRET", crate::stripe::SECRET),
    ];
    let admin = admin_token(&env);
    let args = [
        "--shutdown-grace-seconds",
        "2",
        "--rate-limit-per-minute",
        "0",
    ];
    let log = dir.path().join("serve.log");
    let mut server = ServerProcess::start(&args, &env, &log).await;
    let product = product_on(&server.base, &admin).await;

    let base = server.base.clone();
    let senders = tokio::spawn({
        let (base, admin) = (base.clone(), admin.clone());
        async move { load(&base, &admin, product, 4).await }
    });
    // Clients that hold a connection with half a request: headers cut off, and a body cut off.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut half_headers = TcpStream::connect(&addr).await.unwrap();
    half_headers
        .write_all(b"GET /health HTTP/1.1\r\nHost: keyturn\r\nX-Slow: ")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(&addr).await.unwrap();
    half_body
        .write_all(
            format!(
                "POST /v1/licenses HTTP/1.1\r\nHost: keyturn\r\nAuthorization: Bearer {admin}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"product_id\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopping = Instant::now();
    server.signal("TERM");
    let status = server.exited(Duration::from_secs(30)).await;
    let took = stopping.elapsed();
    let acknowledged = senders.await.unwrap();
    assert!(
        status.is_some(),
        "the server still runs {took:?} after SIGTERM: {}",
        server.log_text()
    );
    assert!(status.unwrap().success(), "{}", server.log_text());
    assert!(took < BOUND + Duration::from_secs(5), "exit took {took:?}");
    eprintln!(
        "SIGTERM under load with two half-sent requests: exited after {took:?} (grace 2 s); {} licenses and {} purchases acknowledged",
        acknowledged.keys.len(),
        acknowledged.subscriptions.len()
    );
    assert!(!acknowledged.keys.is_empty(), "the load never ran");
    drop((half_headers, half_body));

    let again = ServerProcess::start(&args, &env, &dir.path().join("again.log")).await;
    all_stored(&again.base, &admin, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::create(&backend).await;
        let data = dir.path().join("data");
        let data = data.to_str().unwrap().to_owned();
        let mut env = vec![
            ("KEYTURN_DATA_DIR", data.as_str()),
            ("KEYTURN_STRIPE_WEBHOOK_SECRET", crate::stripe::SECRET),
        ];
        if let Some(url) = &db.url {
            env.push(("KEYTURN_DATABASE_URL", url));
        }
        let admin = admin_token(&env);
        let args = ["--rate-limit-per-minute", "0"];
        let server = ServerProcess::start(&args, &env, &dir.path().join("serve.log")).await;
        let product = product_on(&server.base, &admin).await;
        let senders = tokio::spawn({
            let (base, admin) = (server.base.clone(), admin.clone());
            async move { load(&base, &admin, product, 4).await }
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.signal("KILL");
        let acknowledged = senders.await.unwrap();
        drop(server);
        assert!(
            !acknowledged.keys.is_empty(),
            "{backend:?}: the load never ran"
        );
        let again = ServerProcess::start(&args, &env, &dir.path().join("again.log")).await;
        all_stored(&again.base, &admin, &acknowledged).await;
        eprintln!(
            "kill -9 under load ({backend:?}): {} licenses and {} purchases acknowledged, all stored",
            acknowledged.keys.len(),
            acknowledged.subscriptions.len()
        );
        drop(again);
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_with_the_database_away_is_bounded_and_says_what_was_not_written() {
    let Some(server_url) = crate::helpers::postgres() else {
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server_url)).await;
    let url = db.url.clone().unwrap();
    let proxy = Proxy::start(upstream(&url)).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = admin_token(&[("KEYTURN_DATABASE_URL", &url)]);
    let proxied = via(&url, proxy.addr);
    let mut server = ServerProcess::start(
        &["--shutdown-grace-seconds", "1"],
        &[("KEYTURN_DATABASE_URL", &proxied)],
        &dir.path().join("serve.log"),
    )
    .await;
    let http = reqwest::Client::new();
    let product = product_on(&server.base, &admin).await;
    let license: Value = http
        .post(format!("{}/v1/licenses", server.base))
        .bearer_auth(&admin)
        .json(&json!({"product_id": product}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let activate = || {
        http.post(format!("{}/v1/activations", server.base))
            .json(&json!({"key": license["key"], "fingerprint": "machine-1"}))
            .send()
    };
    assert_eq!(activate().await.unwrap().status(), 201);
    // Known again: answered from memory, its check-in time waits to be written.
    assert!(activate().await.unwrap().status().is_success());

    proxy.set(Link::BlackHole);
    let stopping = Instant::now();
    server.signal("TERM");
    let status = server.exited(Duration::from_secs(40)).await;
    let took = stopping.elapsed();
    assert!(
        status.is_some(),
        "still running {took:?} after SIGTERM with the database away"
    );
    assert!(took < BOUND + Duration::from_secs(5), "exit took {took:?}");
    let log = server.log_text();
    assert!(log.contains("check-ins not written"), "{log}");
    eprintln!("SIGTERM with PostgreSQL black-holed: exited after {took:?}");
    proxy.set(Link::Up);
    db.remove().await;
}

// ---------------------------------------------------------------------------------------------
// Clients that hold connections.

/// Reads until the server closes the connection (true) or `within` passes (false).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_cannot_hold_the_server() {
    let db = TestDb::create(&Backend::Sqlite).await;
    let mut http = test_http();
    // Long enough that the slow connections are all still open when the fifth one comes,
    // however slow the machine.
    http.connections.header_read_timeout = Duration::from_secs(3);
    http.connections.idle_timeout = Duration::from_secs(4);
    http.connections.max_connections_per_ip = 4;
    let settings = test_settings(&db, http, Default::default(), Default::default(), 0);
    let app = spawn_settings(&settings).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Three connections with half their headers, one with half its body: the cap is reached.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: keyturn\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let mut stalled_body = TcpStream::connect(&addr).await.unwrap();
    stalled_body
        .write_all(
            format!(
                "POST /v1/products HTTP/1.1\r\nHost: keyturn\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\"",
                app.admin
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fifth connection from the same address is turned away at once.
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    let _ = fifth
        .write_all(b"GET /health HTTP/1.1\r\nHost: keyturn\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(BOUND, fifth.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");

    // The slow ones are closed by the server: headers after the header timeout, the stalled
    // body after the idle timeout.
    let mut closed = 0;
    for s in slow.iter_mut().chain(std::iter::once(&mut stalled_body)) {
        if closed_within(s, BOUND).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 4, "connections left open by the server");
    // Their slots are free again.
    let h = health(&app.http, &app.base).await;
    assert_eq!(h.status, 200);
    app.stop().await;
}
