//! Outgoing webhooks against a real HTTP receiver in this process, which checks every
//! delivery's signature as a vendor's receiver would (with `keyturn_client::webhook::verify`),
//! can fail or hang on purpose, and records what arrived in which order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::StreamExt;
use keyturn::config::{MailSettings, Settings, SmtpTls, WebhookSettings};
use keyturn_client::webhook::{self, EVENT_ID_HEADER, SIGNATURE_HEADER};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{
    backends, free_port, postgres, skipped_for, spawn_node, spawn_settings, test_http,
    test_settings, Backend, ServerProcess, TestApp, TestDb,
};

/// What the receiver does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 500 to the first `n` attempts at each event, 200 after.
    FailFirst(usize),
    /// 500 to everything.
    AlwaysFail,
    /// A redirect elsewhere on the receiver (which must never be followed).
    Redirect,
    /// Never answers the next delivery (it is told on `arrived`); then 200.
    HangOnce,
}

#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) id: String,
    pub(crate) event_type: String,
    body: Value,
    signature: String,
    pub(crate) status: u16,
}

struct Inner {
    secrets: Vec<String>,
    mode: Mode,
    tries: HashMap<String, usize>,
    got: Vec<Got>,
    /// Requests whose signature did not verify, or whose id header did not match the body.
    bad: Vec<String>,
    /// Requests that reached the redirect's target.
    followed: usize,
    /// How long every answer takes (to interleave two nodes' work).
    delay: Duration,
}

#[derive(Clone)]
pub(crate) struct Receiver {
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<tokio::sync::Notify>,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) async fn start(mode: Mode) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            secrets: Vec::new(),
            mode,
            tries: HashMap::new(),
            got: Vec::new(),
            bad: Vec::new(),
            followed: 0,
            delay: Duration::ZERO,
        }));
        let receiver = Receiver {
            inner,
            arrived: Arc::new(tokio::sync::Notify::new()),
            url: String::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .route(
                "/elsewhere",
                axum::routing::any(|State(r): State<Receiver>| async move {
                    r.inner.lock().unwrap().followed += 1;
                    StatusCode::OK
                }),
            )
            .with_state(receiver.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            ..receiver
        }
    }

    pub(crate) fn trust(&self, secret: &str) {
        self.inner.lock().unwrap().secrets.push(secret.to_owned());
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = mode;
    }

    pub(crate) fn got(&self) -> Vec<Got> {
        self.inner.lock().unwrap().got.clone()
    }

    /// The events answered 200, in the order they were answered.
    pub(crate) fn delivered(&self) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.status == 200).collect()
    }

    pub(crate) fn bad(&self) -> Vec<String> {
        self.inner.lock().unwrap().bad.clone()
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let signature = header(SIGNATURE_HEADER);
    let event_id = header(EVENT_ID_HEADER);
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (mode, delay, status) = {
        let mut inner = r.inner.lock().unwrap();
        let now = Utc::now().timestamp();
        let verified = inner.secrets.iter().any(|s| {
            webhook::verify(
                &signature,
                &body,
                s,
                now,
                webhook::DEFAULT_TOLERANCE_SECONDS,
            )
            .is_ok()
        });
        if !verified || parsed["id"] != event_id.as_str() {
            inner.bad.push(format!("{event_id}: {signature}"));
            return StatusCode::BAD_REQUEST.into_response();
        }
        let key = format!("{event_id}?{}", uri.query().unwrap_or(""));
        let tries = inner.tries.entry(key).or_default();
        *tries += 1;
        let tries = *tries;
        let status = match inner.mode {
            Mode::FailFirst(n) if tries <= n => 500,
            Mode::AlwaysFail => 500,
            Mode::Redirect => 302,
            _ => 200,
        };
        let mode = inner.mode;
        if mode == Mode::HangOnce {
            inner.mode = Mode::FailFirst(0);
        } else {
            inner.got.push(Got {
                id: event_id,
                event_type: parsed["type"].as_str().unwrap_or("").to_owned(),
                body: parsed,
                signature,
                status,
            });
        }
        (mode, inner.delay, status)
    };
    if mode == Mode::HangOnce {
        r.arrived.notify_one();
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(delay).await;
    match status {
        302 => (StatusCode::FOUND, [("location", "/elsewhere")], "moved").into_response(),
        500 => (StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose").into_response(),
        _ => (StatusCode::OK, "thanks").into_response(),
    }
}

/// Waits up to `within` for `done`; false if it never held.
pub(crate) async fn until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Webhook settings for tests: the local receiver allowed, retries within tens of
/// milliseconds, sweeps several times a second.
pub(crate) fn fast_webhooks() -> WebhookSettings {
    WebhookSettings {
        allow_private: true,
        first_retry: Duration::from_millis(30),
        timeout: Duration::from_secs(2),
        sweep: Duration::from_millis(200),
        poll: Duration::from_millis(100),
        ..WebhookSettings::default()
    }
}

pub(crate) fn settings(db: &TestDb, webhooks: WebhookSettings) -> Settings {
    let mut s = test_settings(db, test_http(), Default::default(), Default::default(), 0);
    s.webhooks = webhooks;
    s
}

/// Creates an endpoint; returns its id and secret.
async fn endpoint(app: &TestApp, body: Value) -> (i64, String) {
    let r = app.post("/v1/webhook-endpoints", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (r.body["id"].as_i64().unwrap(), secret)
}

/// The types of the events delivered about one license, in delivery order, each event once.
fn per_license(delivered: &[Got]) -> BTreeMap<i64, Vec<String>> {
    let mut seen = HashSet::new();
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for g in delivered {
        if !seen.insert(g.id.clone()) {
            continue;
        }
        let object = &g.body["data"]["object"];
        let license = if g.event_type.starts_with("activation.") {
            object["license_id"].as_i64()
        } else if g.event_type.starts_with("license.") {
            object["id"].as_i64()
        } else {
            None
        };
        if let Some(l) = license {
            out.entry(l).or_default().push(g.event_type.clone());
        }
    }
    out
}

async fn changes_of_a_license(app: &TestApp, product: i64, n: usize) -> i64 {
    let license = app
        .license(
            json!({"product_id": product, "period_days": 30, "max_machines": 2,
                        "notes": format!("license {n}")}),
        )
        .await;
    let id = license["id"].as_i64().unwrap();
    let key = license["key"].as_str().unwrap().to_owned();
    let ok = |r: crate::helpers::Resp| assert!(r.status < 300, "{}", r.body);
    ok(app
        .post(&format!("/v1/licenses/{id}/extend"), json!({"days": 10}))
        .await);
    ok(app
        .post(&format!("/v1/licenses/{id}/block"), json!({}))
        .await);
    ok(app
        .post(&format!("/v1/licenses/{id}/unblock"), json!({}))
        .await);
    ok(app
        .post(
            &format!("/v1/licenses/{id}/features"),
            json!({"feature": "pro"}),
        )
        .await);
    ok(app
        .patch(&format!("/v1/licenses/{id}"), json!({"max_machines": 5}))
        .await);
    ok(app
        .patch(&format!("/v1/licenses/{id}"), json!({"notes": "changed"}))
        .await);
    ok(app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": format!("machine-{n}")}),
        )
        .await);
    ok(app
        .public(
            "/v1/activations/deactivate",
            json!({"key": key, "fingerprint": format!("machine-{n}")}),
        )
        .await);
    ok(app.delete(&format!("/v1/licenses/{id}")).await);
    id
}

const LIFE: [&str; 10] = [
    "license.created",
    "license.extended",
    "license.blocked",
    "license.unblocked",
    "license.features_changed",
    "license.machine_limit_changed",
    "license.updated",
    "activation.created",
    "activation.deleted",
    "license.deleted",
];

/// Every change of five licenses, made concurrently, reaches a receiver that fails each event's
/// first two attempts: every event arrives signed, is answered 200 exactly once, and each
/// license's events arrive in the order they happened. The delivery log shows each attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_arrives_once_in_license_order_through_failures() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_settings(&settings(&db, fast_webhooks())).await;
        let receiver = Receiver::start(Mode::FailFirst(2)).await;
        let (hook, secret) = endpoint(&app, json!({"url": receiver.url})).await;
        receiver.trust(&secret);
        let product = app.product("Editor", &["pro"]).await;
        let other = app.product("Viewer", &[]).await;
        // A second endpoint, scoped to the other product and to one event type.
        let (scoped, scoped_secret) = endpoint(
            &app,
            json!({"url": format!("{}?scoped", receiver.url), "events": ["license.created"],
                   "product_id": other}),
        )
        .await;
        receiver.trust(&scoped_secret);

        let customer = app
            .post(
                "/v1/customers",
                json!({"name": "Ann", "email": "ann@example.com"}),
            )
            .await;
        let customer_id = customer.body["id"].as_i64().unwrap();
        app.patch(
            &format!("/v1/customers/{customer_id}"),
            json!({"company": "Ann's"}),
        )
        .await;
        let runs = (0..5).map(|n| {
            let app = &app;
            async move { changes_of_a_license(app, product, n).await }
        });
        let licenses = futures::future::join_all(runs).await;
        let viewer = app.license(json!({"product_id": other})).await;

        let expected = licenses.len() * LIFE.len() + 2 + 2; // customers, viewer ×2 endpoints
        let all_arrived = until(Duration::from_secs(60), || {
            receiver
                .delivered()
                .iter()
                .map(|g| g.id.clone())
                .collect::<HashSet<_>>()
                .len()
                >= expected - 1
                && receiver.delivered().len() >= expected
        })
        .await;
        let delivered = receiver.delivered();
        assert!(
            all_arrived,
            "{backend:?}: {} of {expected} deliveries arrived: {:?}",
            delivered.len(),
            delivered.iter().map(|g| &g.event_type).collect::<Vec<_>>()
        );
        assert!(
            receiver.bad().is_empty(),
            "bad signatures: {:?}",
            receiver.bad()
        );
        // Each (event, endpoint) answered 200 once: the viewer's license.created twice (one
        // delivery per endpoint, same event id), everything else once.
        let mut answered: HashMap<&str, usize> = HashMap::new();
        for g in &delivered {
            *answered.entry(&g.id).or_default() += 1;
        }
        let viewer_created = delivered
            .iter()
            .find(|g| g.body["data"]["object"]["id"] == viewer["id"])
            .unwrap();
        assert_eq!(answered[viewer_created.id.as_str()], 2);
        assert_eq!(
            answered.values().filter(|n| **n != 1).count(),
            1,
            "{answered:?}"
        );
        // Per-license order, for every license changed concurrently.
        let order = per_license(&delivered);
        for id in &licenses {
            assert_eq!(order[id], LIFE, "{backend:?}: license {id}");
        }
        // The objects are what the API shows.
        let extended = delivered
            .iter()
            .find(|g| g.event_type == "license.extended")
            .unwrap();
        assert!(extended.body["data"]["object"]["key"].is_string());
        assert!(extended.body["data"]["details"]["to"].is_string());
        let deleted = delivered
            .iter()
            .find(|g| g.event_type == "license.deleted")
            .unwrap();
        assert!(
            deleted.body["data"]["object"]["key"].is_string(),
            "the license as it was"
        );
        let activation = delivered
            .iter()
            .find(|g| g.event_type == "activation.deleted")
            .unwrap();
        assert!(activation.body["data"]["object"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("machine-"));
        let types: HashSet<&str> = delivered.iter().map(|g| g.event_type.as_str()).collect();
        assert!(types.contains("customer.created") && types.contains("customer.updated"));
        assert!(delivered[0].signature.starts_with("t="));

        // The scoped endpoint got the viewer's license.created only.
        let scoped_log = app
            .get(&format!("/v1/webhook-endpoints/{scoped}/deliveries"))
            .await;
        let scoped_rows = scoped_log.body["data"].as_array().unwrap();
        assert_eq!(scoped_rows.len(), 1, "{}", scoped_log.body);
        assert_eq!(scoped_rows[0]["event_type"], "license.created");
        assert_eq!(scoped_rows[0]["license_id"], viewer["id"]);

        // The delivery log: every delivery delivered at its third attempt, each attempt with
        // its status, latency and the answer's first bytes.
        let mut rows = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = app
                .get(&format!(
                    "/v1/webhook-endpoints/{hook}/deliveries?limit=20{cursor}"
                ))
                .await;
            assert_eq!(page.status, 200, "{}", page.body);
            rows.extend(page.body["data"].as_array().unwrap().clone());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(rows.len(), expected - 1);
        assert!(rows
            .iter()
            .all(|d| d["state"] == "delivered" && d["attempts"] == 3));
        let one = rows[0]["id"].as_i64().unwrap();
        let log = app.get(&format!("/v1/webhook-deliveries/{one}")).await;
        assert_eq!(log.status, 200, "{}", log.body);
        let attempts = log.body["attempts_log"].as_array().unwrap();
        assert_eq!(
            attempts
                .iter()
                .map(|a| a["status"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [500, 500, 200]
        );
        assert_eq!(attempts[0]["response"], "failing on purpose");
        assert_eq!(attempts[0]["error"], "answered 500");
        assert_eq!(attempts[2]["response"], "thanks");
        assert!(attempts
            .iter()
            .all(|a| a["latency_ms"].as_i64().unwrap() >= 0));
        assert_eq!(log.body["event"]["id"], log.body["event_id"]);

        app.stop().await;
        db.remove().await;
    }
}

/// Endpoints through the API: validated, the secret shown once and rotated with an overlap in
/// which both secrets sign, the test event, permissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_managed_with_secrets_shown_once() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_settings(&settings(&db, fast_webhooks())).await;
        let receiver = Receiver::start(Mode::FailFirst(0)).await;

        for (body, field) in [
            (json!({"url": "ftp://example.com/"}), "url"),
            (json!({"url": "https://u:p@example.com/"}), "url"),
            (
                json!({"url": "https://example.com/", "events": ["license.flown"]}),
                "events",
            ),
            (
                json!({"url": "https://example.com/", "events": []}),
                "events",
            ),
            (
                json!({"url": "https://example.com/", "product_id": 999}),
                "product_id",
            ),
        ] {
            let r = app.post("/v1/webhook-endpoints", body.clone()).await;
            assert_eq!(r.status, 422, "{body}: {}", r.body);
            assert!(
                r.body["error"]["message"].as_str().unwrap().contains(field),
                "{}",
                r.body
            );
        }
        let (id, secret) = endpoint(
            &app,
            json!({"url": receiver.url, "events": ["license.*", "customer.created"],
                   "description": "CRM"}),
        )
        .await;
        receiver.trust(&secret);
        let shown = app.get(&format!("/v1/webhook-endpoints/{id}")).await;
        assert_eq!(shown.status, 200);
        assert!(shown.body.get("secret").is_none(), "shown only once");
        assert!(!shown.raw.windows(6).any(|w| w == b"whsec_"));
        assert_eq!(
            shown.body["events"],
            json!(["license.*", "customer.created"])
        );
        let listed = app.get("/v1/webhook-endpoints").await;
        assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
        assert!(!listed.raw.windows(6).any(|w| w == b"whsec_"));

        // The test event reaches the endpoint whatever it subscribes to.
        let test = app
            .post(&format!("/v1/webhook-endpoints/{id}/test"), json!({}))
            .await;
        assert_eq!(test.status, 201, "{}", test.body);
        assert!(
            until(Duration::from_secs(10), || receiver
                .delivered()
                .iter()
                .any(|g| g.event_type == "webhook.test"))
            .await
        );

        // Rotation with an overlap: the new secret and the old one both sign.
        let rotated = app
            .post(
                &format!("/v1/webhook-endpoints/{id}/rotate"),
                json!({"overlap_hours": 2}),
            )
            .await;
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        assert!(rotated.body["previous_secret_until"].is_string());
        let product = app.product("Editor", &[]).await;
        app.license(json!({"product_id": product})).await;
        assert!(
            until(Duration::from_secs(10), || receiver
                .delivered()
                .iter()
                .any(|g| g.event_type == "license.created"))
            .await
        );
        let created = receiver
            .delivered()
            .into_iter()
            .find(|g| g.event_type == "license.created")
            .unwrap();
        assert_eq!(created.signature.matches("v1=").count(), 2);
        // Without an overlap the old secret stops signing at once.
        let again = app
            .post(
                &format!("/v1/webhook-endpoints/{id}/rotate"),
                json!({"overlap_hours": 0}),
            )
            .await;
        let newest = again.body["secret"].as_str().unwrap().to_owned();
        receiver.trust(&newest);
        app.license(json!({"product_id": product})).await;
        assert!(
            until(Duration::from_secs(10), || receiver
                .delivered()
                .iter()
                .filter(|g| g.event_type == "license.created")
                .count()
                == 2)
            .await
        );
        let last = receiver
            .delivered()
            .into_iter()
            .rfind(|g| g.event_type == "license.created")
            .unwrap();
        assert_eq!(last.signature.matches("v1=").count(), 1);
        assert!(receiver.bad().is_empty(), "{:?}", receiver.bad());

        // Unsubscribed types are not sent; a patch changes what is.
        app.post(
            "/v1/customers",
            json!({"name": "Bo", "email": "bo@example.com"}),
        )
        .await;
        let patched = app
            .patch(
                &format!("/v1/webhook-endpoints/{id}"),
                json!({"events": ["license.deleted"], "description": "CRM (deletions)"}),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        assert_eq!(patched.body["events"], json!(["license.deleted"]));
        app.post(
            "/v1/customers",
            json!({"name": "Cy", "email": "cy@example.com"}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let customers: Vec<String> = receiver
            .delivered()
            .iter()
            .filter(|g| g.event_type.starts_with("customer."))
            .map(|g| {
                g.body["data"]["object"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(customers, ["Bo"]);

        // A redirect is an answer that is not 2xx, and is never followed.
        receiver.set_mode(Mode::Redirect);
        let test = app
            .post(&format!("/v1/webhook-endpoints/{id}/test"), json!({}))
            .await;
        let delivery = test.body["id"].as_i64().unwrap();
        assert!(
            until(Duration::from_secs(10), || receiver
                .got()
                .iter()
                .any(|g| g.status == 302))
            .await
        );
        receiver.set_mode(Mode::FailFirst(0));
        assert!(
            until(Duration::from_secs(10), || receiver
                .delivered()
                .iter()
                .filter(|g| g.event_type == "webhook.test")
                .count()
                == 2)
            .await
        );
        let log = app.get(&format!("/v1/webhook-deliveries/{delivery}")).await;
        assert_eq!(log.body["attempts_log"][0]["status"], 302, "{}", log.body);
        assert_eq!(receiver.inner.lock().unwrap().followed, 0);

        // Permissions: webhooks:read and webhooks:write, on an unrestricted token.
        let token = |perms: Value, product: Option<i64>| {
            let app = &app;
            async move {
                let r = app
                    .post(
                        "/v1/tokens",
                        json!({"name": "t", "permissions": perms, "product_id": product}),
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.body);
                r.body["token"].as_str().unwrap().to_owned()
            }
        };
        let licenses_only = token(json!(["licenses:read"]), None).await;
        let reader = token(json!(["webhooks:read"]), None).await;
        let scoped = token(json!(["webhooks:read", "webhooks:write"]), Some(product)).await;
        let get = |t: String| {
            let app = &app;
            async move {
                app.call(Method::GET, "/v1/webhook-endpoints", Some(&t), None)
                    .await
                    .status
            }
        };
        assert_eq!(get(licenses_only).await, 403);
        assert_eq!(get(scoped.clone()).await, 403, "endpoints span products");
        assert_eq!(get(reader.clone()).await, 200);
        let write = app
            .call(
                Method::POST,
                "/v1/webhook-endpoints",
                Some(&reader),
                Some(json!({"url": "https://example.com/"})),
            )
            .await;
        assert_eq!(write.status, 403);

        // Deleting removes it with its log.
        assert_eq!(
            app.delete(&format!("/v1/webhook-endpoints/{id}"))
                .await
                .status,
            204
        );
        assert_eq!(
            app.get(&format!("/v1/webhook-endpoints/{id}")).await.status,
            404
        );
        app.stop().await;
        db.remove().await;
    }
}

/// A receiver that never answers 2xx: each delivery gets its attempts (21) with growing,
/// jittered delays, is marked failed, and the endpoint, having answered nothing right for the
/// whole retry period, is disabled and the vendor mailed. The mail cannot be sent (no SMTP
/// server answers), which another endpoint hears as `mail.failed`. Redirects are not followed.
/// Enabled again, a retry of the failed deliveries since a time delivers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_then_disabled_and_the_vendor_told() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let mut s = settings(
            &db,
            WebhookSettings {
                first_retry: Duration::from_millis(1),
                alert_email: Some("ops@vendor.example".into()),
                ..fast_webhooks()
            },
        );
        s.mail = MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: free_port(),
            tls: SmtpTls::None,
            retry_base: Duration::from_secs(60),
            poll: Duration::from_millis(100),
            ..MailSettings::default()
        };
        let app = spawn_settings(&s).await;
        let failing = Receiver::start(Mode::AlwaysFail).await;
        let watcher = Receiver::start(Mode::FailFirst(0)).await;
        let (down, down_secret) =
            endpoint(&app, json!({"url": failing.url, "events": ["license.*"]})).await;
        failing.trust(&down_secret);
        let (_, watch_secret) =
            endpoint(&app, json!({"url": watcher.url, "events": ["mail.failed"]})).await;
        watcher.trust(&watch_secret);
        let started = Utc::now();
        let product = app.product("Editor", &[]).await;
        let license = app.license(json!({"product_id": product})).await;

        assert!(
            until(Duration::from_secs(40), || watcher
                .delivered()
                .iter()
                .any(|g| g.event_type == "mail.failed"))
            .await,
            "{backend:?}: the vendor's mail was never attempted"
        );
        let endpoint_now = app.get(&format!("/v1/webhook-endpoints/{down}")).await.body;
        assert_eq!(endpoint_now["enabled"], false, "{endpoint_now}");
        assert!(endpoint_now["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("every attempt has failed"));
        let mail = watcher
            .delivered()
            .into_iter()
            .find(|g| g.event_type == "mail.failed")
            .unwrap();
        assert_eq!(mail.body["data"]["object"]["to"], "ops@vendor.example");
        assert_eq!(
            mail.body["data"]["object"]["subject"],
            "Keyturn disabled a webhook endpoint"
        );
        let failed = app
            .get(&format!(
                "/v1/webhook-endpoints/{down}/deliveries?state=failed"
            ))
            .await;
        let rows = failed.body["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{}", failed.body);
        assert_eq!(rows[0]["attempts"], 21);
        assert_eq!(rows[0]["license_id"], license["id"]);
        let attempts = failing
            .got()
            .iter()
            .filter(|g| g.event_type == "license.created")
            .count();
        assert_eq!(
            attempts, 21,
            "every attempt reached the receiver, none more"
        );
        // While disabled, it gets no new events.
        let rows_before = app
            .get(&format!("/v1/webhook-endpoints/{down}/deliveries"))
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len();
        app.post(
            &format!("/v1/licenses/{}/extend", license["id"]),
            json!({"days": 1}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows_after = app
            .get(&format!("/v1/webhook-endpoints/{down}/deliveries"))
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(rows_after, rows_before);

        // The receiver is back: enabled again, retrying the failed ones since the start
        // delivers them.
        failing.set_mode(Mode::FailFirst(0));
        let enabled = app
            .patch(
                &format!("/v1/webhook-endpoints/{down}"),
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(enabled.body["enabled"], true);
        assert!(enabled.body["disabled_reason"].is_null());
        assert!(enabled.body["failing_since"].is_null());
        let retried = app
            .post(
                &format!("/v1/webhook-endpoints/{down}/retry"),
                json!({"since": started.to_rfc3339()}),
            )
            .await;
        assert_eq!(retried.status, 200, "{}", retried.body);
        assert_eq!(retried.body["retried"], 1);
        assert!(until(Duration::from_secs(10), || failing.delivered().len() == 1).await);
        assert_eq!(failing.delivered()[0].event_type, "license.created");
        // One delivery retried by hand: sent again under the same event id.
        let mut first = Value::Null;
        for _ in 0..100 {
            let rows = app
                .get(&format!("/v1/webhook-endpoints/{down}/deliveries"))
                .await
                .body["data"]
                .clone();
            first = rows.as_array().unwrap().last().unwrap().clone();
            if first["state"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(first["state"], "delivered", "{first}");
        let again = app
            .post(
                &format!("/v1/webhook-deliveries/{}/retry", first["id"]),
                json!({}),
            )
            .await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert!(until(Duration::from_secs(10), || failing.delivered().len() == 2).await);
        assert_eq!(
            failing.delivered()[1].id,
            first["event_id"].as_str().unwrap()
        );
        assert!(failing.bad().is_empty() && watcher.bad().is_empty());

        let mut conn = sqlx::AnyConnection::connect(&db.any_url()).await.unwrap();
        let queued = sqlx::query("SELECT to_address, body FROM mail_outbox")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            queued[0].get::<String, _>("to_address"),
            "ops@vendor.example"
        );
        assert!(queued[0].get::<String, _>("body").contains(&failing.url));
        conn.close().await.ok();
        app.stop().await;
        db.remove().await;
    }
}

/// Licenses nobody touches are announced as expiring soon and then as expired, once each per
/// expiry value; an extension is a new value, announced again. A floating lease that runs out
/// is announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_lapsed_leases_are_announced_once_by_the_sweep() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn_settings(&settings(&db, fast_webhooks())).await;
        let receiver = Receiver::start(Mode::FailFirst(0)).await;
        let (_, secret) = endpoint(
            &app,
            json!({"url": receiver.url, "events": ["license.expired", "license.expiring_soon",
                                                     "floating.lease_lapsed"]}),
        )
        .await;
        receiver.trust(&secret);
        let product = app.product("Editor", &[]).await;
        let soon = (Utc::now() + chrono::TimeDelta::milliseconds(1500)).to_rfc3339();
        let license = app
            .license(json!({"product_id": product, "expires": soon}))
            .await;
        let id = license["id"].as_i64().unwrap();
        let far = app
            .license(json!({"product_id": product, "period_days": 30}))
            .await;
        let floating = app
            .license(json!({"product_id": product, "floating_lease_seconds": 1}))
            .await;
        let r = app
            .public(
                "/v1/activations",
                json!({"key": floating["key"], "fingerprint": "float-1"}),
            )
            .await;
        assert!(r.status < 300, "{}", r.body);

        let types_of = |id: i64| {
            let receiver = receiver.clone();
            move || -> Vec<String> {
                receiver
                    .delivered()
                    .iter()
                    .filter(|g| {
                        let object = &g.body["data"]["object"];
                        if g.event_type.starts_with("license.") {
                            object["id"] == id
                        } else {
                            object["license_id"] == id
                        }
                    })
                    .map(|g| g.event_type.clone())
                    .collect()
            }
        };
        let of_license = types_of(id);
        assert!(
            until(Duration::from_secs(15), || of_license().len() == 2).await,
            "{backend:?}: {:?}",
            of_license()
        );
        assert_eq!(of_license(), ["license.expiring_soon", "license.expired"]);
        let lapsed = types_of(floating["id"].as_i64().unwrap());
        assert!(until(Duration::from_secs(15), || !lapsed().is_empty()).await);
        // Several more sweeps announce nothing again.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(of_license(), ["license.expiring_soon", "license.expired"]);
        assert_eq!(lapsed(), ["floating.lease_lapsed"]);
        assert!(
            types_of(far["id"].as_i64().unwrap())().is_empty(),
            "30 days away is not soon"
        );
        let lapse = receiver
            .delivered()
            .into_iter()
            .find(|g| g.event_type == "floating.lease_lapsed")
            .unwrap();
        assert_eq!(lapse.body["data"]["object"]["fingerprint"], "float-1");

        // Extended to a new expiry (still soon): announced again, once.
        let later = (Utc::now() + chrono::TimeDelta::milliseconds(1500)).to_rfc3339();
        let patched = app
            .patch(&format!("/v1/licenses/{id}"), json!({"expires": later}))
            .await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        assert!(until(Duration::from_secs(15), || of_license().len() == 4).await);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            of_license(),
            [
                "license.expiring_soon",
                "license.expired",
                "license.expiring_soon",
                "license.expired"
            ]
        );
        assert!(receiver.bad().is_empty());
        app.stop().await;
        db.remove().await;
    }
}

/// Payments, subscriptions, customers and a provider event that fails, from signed Stripe
/// events: each change announces its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_pipeline_changes_are_announced() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let mut s = test_settings(
            &db,
            test_http(),
            crate::stripe::providers().await,
            Default::default(),
            0,
        );
        s.webhooks = fast_webhooks();
        let app = spawn_settings(&s).await;
        let receiver = Receiver::start(Mode::FailFirst(0)).await;
        let (_, secret) = endpoint(&app, json!({"url": receiver.url})).await;
        receiver.trust(&secret);
        let w = crate::stripe::world(&app, Utc::now().timestamp()).await;
        // Sold by no plan: fails, kept as failed (before the real invoice, which would make a
        // report of the same invoice a duplicate).
        let unsellable = crate::stripe::fixture("09_invoice_paid_second", &w.vars)
            .replace("price_monthly", "price_unknown")
            .replace("evt_invoice_paid_cy", "evt_invoice_unsellable");
        assert_eq!(crate::stripe::deliver(&app, &unsellable).await.status, 422);
        for name in [
            "01_checkout_payment",
            "02_checkout_subscription",
            "03_invoice_paid_create",
            "04_invoice_paid_cycle",
            "05_subscription_updated_upgrade",
            "06_invoice_payment_failed",
            "08_subscription_created_second",
            "09_invoice_paid_second",
            "10_dispute_created",
            "07_charge_refunded",
            "11_subscription_deleted",
        ] {
            let r = crate::stripe::deliver(&app, &crate::stripe::fixture(name, &w.vars)).await;
            assert_eq!(r.status, 200, "{name}: {}", r.body);
        }

        let wanted = [
            "customer.created",
            "license.created",
            "license.renewed",
            "license.blocked",
            "payment.succeeded",
            "payment.failed",
            "payment.disputed",
            "payment.refunded",
            "subscription.updated",
            "subscription.cancelled",
            "provider_event.failed",
        ];
        let arrived = until(Duration::from_secs(20), || {
            let got: HashSet<String> = receiver
                .delivered()
                .iter()
                .map(|g| g.event_type.clone())
                .collect();
            wanted.iter().all(|t| got.contains(*t))
        })
        .await;
        let got: Vec<String> = receiver
            .delivered()
            .iter()
            .map(|g| g.event_type.clone())
            .collect();
        assert!(arrived, "{backend:?}: {got:?}");
        let refund = receiver
            .delivered()
            .into_iter()
            .find(|g| g.event_type == "payment.refunded")
            .unwrap();
        assert_eq!(refund.body["data"]["object"]["object_id"], "cs_test_once");
        assert_eq!(
            refund.body["data"]["object"]["license_ids"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let failed = receiver
            .delivered()
            .into_iter()
            .find(|g| g.event_type == "provider_event.failed")
            .unwrap();
        assert_eq!(
            failed.body["data"]["object"]["event_id"],
            "evt_invoice_unsellable"
        );
        let cancelled: Vec<_> = got
            .iter()
            .filter(|t| *t == "subscription.cancelled")
            .collect();
        assert_eq!(cancelled.len(), 1);
        assert!(receiver.bad().is_empty());
        app.stop().await;
        db.remove().await;
    }
}

/// The SSRF guard: without KEYTURN_WEBHOOK_ALLOW_PRIVATE an internal address is refused when
/// the endpoint is made, and at delivery on resolution: a name that resolves to loopback, and
/// a literal address stored while allowed, are never connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_targets_are_refused_unless_allowed() {
    let db = TestDb::create(&Backend::Sqlite).await;
    let strict = WebhookSettings {
        allow_private: false,
        ..fast_webhooks()
    };
    let app = spawn_settings(&settings(&db, strict.clone())).await;
    let receiver = Receiver::start(Mode::FailFirst(0)).await;
    for url in [
        receiver.url.clone(),
        "http://localhost:9/".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://[::1]:9/".into(),
    ] {
        let r = app.post("/v1/webhook-endpoints", json!({"url": url})).await;
        assert_eq!(r.status, 422, "{url}: {}", r.body);
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("KEYTURN_WEBHOOK_ALLOW_PRIVATE"));
    }
    // A name that is not an address: allowed as text, refused on resolution.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let internal = match tokio::net::lookup_host((host.as_str(), 80)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty()
                && addrs
                    .iter()
                    .all(|a| !keyturn_core::webhook::public_address(a.ip()))
        }
        Err(_) => false,
    };
    if internal {
        let port = receiver.url.rsplit(':').next().unwrap().to_owned();
        let (id, secret) = endpoint(
            &app,
            json!({"url": format!("http://{host}:{port}"), "events": ["license.created"]}),
        )
        .await;
        receiver.trust(&secret);
        let sent = app
            .post(&format!("/v1/webhook-endpoints/{id}/test"), json!({}))
            .await;
        let delivery = sent.body["id"].as_i64().unwrap();
        let mut log = Value::Null;
        for _ in 0..100 {
            log = app
                .get(&format!("/v1/webhook-deliveries/{delivery}"))
                .await
                .body;
            if !log["attempts_log"].as_array().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let error = log["attempts_log"][0]["error"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            error.contains("refused") && error.contains("loopback"),
            "{log}"
        );
        assert!(log["attempts_log"][0]["status"].is_null());
        // Gone before a server that allows internal targets runs on this database.
        assert_eq!(
            app.delete(&format!("/v1/webhook-endpoints/{id}"))
                .await
                .status,
            204
        );
    } else {
        skipped_for(
            "the name-resolution part",
            &format!("this host's name {host:?} does not resolve to an internal address"),
        );
    }
    let admin = app.admin.clone();
    app.stop().await;

    // Stored while allowed, refused once the server no longer allows it.
    let allowed = spawn_node(&settings(&db, fast_webhooks()), &admin).await;
    let (id, secret) = endpoint(&allowed, json!({"url": receiver.url})).await;
    receiver.trust(&secret);
    allowed.stop().await;
    let app = spawn_node(&settings(&db, strict), &admin).await;
    let sent = app
        .post(&format!("/v1/webhook-endpoints/{id}/test"), json!({}))
        .await;
    let delivery = sent.body["id"].as_i64().unwrap();
    let mut log = Value::Null;
    for _ in 0..100 {
        log = app
            .get(&format!("/v1/webhook-deliveries/{delivery}"))
            .await
            .body;
        if !log["attempts_log"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log["attempts_log"][0]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("refused"),
        "{log}"
    );
    assert!(
        receiver.got().is_empty(),
        "nothing reached the internal address"
    );
    app.stop().await;
    db.remove().await;
}

/// The admin token of a new installation, made with the CLI before the server starts.
fn admin_token(env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command
        .args(["token", "create", "--admin", "--name", "test"])
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
        .arg("migrate")
        .env_remove("KEYTURN_DATABASE_URL")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// kill -9 while a delivery is in flight (committed, sent, not answered): after a restart the
/// event is delivered, once, when the dead node's lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_survives_kill_9_between_commit_and_delivery() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let dir = tempfile::tempdir().unwrap();
        let data = db.dir.path().join("data");
        let data = data.to_str().unwrap().to_owned();
        let mut env = vec![
            ("KEYTURN_DATA_DIR", data.as_str()),
            ("KEYTURN_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("KEYTURN_WEBHOOK_TIMEOUT_SECONDS", "1"),
            ("KEYTURN_WEBHOOK_RETRY_SECONDS", "0.05"),
        ];
        if let Some(url) = &db.url {
            env.push(("KEYTURN_DATABASE_URL", url));
        }
        let admin = admin_token(&env);
        let args = ["--rate-limit-per-minute", "0"];
        let server = ServerProcess::start(&args, &env, &dir.path().join("serve.log")).await;
        let app = TestApp::attach(server.base.clone(), admin.clone());
        let receiver = Receiver::start(Mode::HangOnce).await;
        let (_, secret) = endpoint(&app, json!({"url": receiver.url})).await;
        receiver.trust(&secret);
        let product = app.product("Editor", &[]).await;
        let arrived = receiver.arrived.notified();
        let license = app.license(json!({"product_id": product})).await;
        tokio::time::timeout(Duration::from_secs(10), arrived)
            .await
            .expect("the delivery was sent");
        server.signal("KILL");
        drop(server);
        assert!(
            receiver.delivered().is_empty(),
            "the hung attempt never answered"
        );

        let again = ServerProcess::start(&args, &env, &dir.path().join("again.log")).await;
        assert!(
            until(Duration::from_secs(30), || !receiver.delivered().is_empty()).await,
            "{backend:?}: not delivered after the restart: {}",
            again.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let delivered = receiver.delivered();
        assert_eq!(delivered.len(), 1, "delivered once");
        assert_eq!(delivered[0].event_type, "license.created");
        assert_eq!(delivered[0].body["data"]["object"]["id"], license["id"]);
        drop(again);
        db.remove().await;
    }
}

/// Two nodes on one PostgreSQL database deliver side by side: every delivery has exactly one
/// attempt, made by one node, and the receiver gets every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_never_make_the_same_attempt() {
    let Some(server) = postgres() else {
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server)).await;
    let first = spawn_settings(&settings(&db, fast_webhooks())).await;
    let second = spawn_node(&settings(&db, fast_webhooks()), &first.admin).await;
    let receiver = Receiver::start(Mode::FailFirst(0)).await;
    receiver.inner.lock().unwrap().delay = Duration::from_millis(10);
    let (hook, secret) = endpoint(&first, json!({"url": receiver.url})).await;
    receiver.trust(&secret);
    let product = first.product("Editor", &[]).await;
    let made = (0..120).map(|n| {
        let node = if n % 2 == 0 { &first } else { &second };
        async move {
            let l = node
                .license(json!({"product_id": product, "period_days": 30}))
                .await;
            let r = node
                .post(
                    &format!("/v1/licenses/{}/extend", l["id"]),
                    json!({"days": 1}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    });
    futures::stream::iter(made)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let expected = 240;
    assert!(
        until(Duration::from_secs(60), || receiver.got().len() >= expected).await,
        "{} of {expected}",
        receiver.got().len()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = receiver.got();
    assert_eq!(got.len(), expected, "no event sent twice");
    let ids: HashSet<&str> = got.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids.len(), expected);
    assert!(receiver.bad().is_empty());

    let mut conn = sqlx::AnyConnection::connect(&db.any_url()).await.unwrap();
    let per_delivery = sqlx::query(
        "SELECT d.id, COUNT(a.id) AS n FROM webhook_deliveries d \
         LEFT JOIN webhook_attempts a ON a.delivery_id = d.id WHERE d.endpoint_id = $1 GROUP BY d.id",
    )
    .bind(hook)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(per_delivery.len(), expected);
    assert!(per_delivery.iter().all(|r| r.get::<i64, _>("n") == 1));
    let nodes = sqlx::query("SELECT node, COUNT(*) AS n FROM webhook_attempts GROUP BY node")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let by_node: Vec<(String, i64)> = nodes
        .iter()
        .map(|r| (r.get::<String, _>("node"), r.get::<i64, _>("n")))
        .collect();
    eprintln!("two nodes: attempts per node {by_node:?}");
    assert_eq!(by_node.len(), 2, "both nodes delivered: {by_node:?}");
    conn.close().await.ok();
    second.stop().await;
    first.stop().await;
    db.remove().await;
}

/// `keyturn webhooks …` as an operator uses it, on an installation whose secrets `keyturn keys
/// seal` then seals with the master key: the server opens them and signs with both the
/// rotated secret and the one it replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_endpoints_and_sealed_secrets_sign() {
    sqlx::any::install_default_drivers();
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let dir = tempfile::tempdir().unwrap();
        let data = db.dir.path().join("data");
        let data = data.to_str().unwrap().to_owned();
        let master = keyturn_core::MasterKey::generate().to_text();
        let mut env = vec![("KEYTURN_DATA_DIR", data.as_str())];
        if let Some(url) = &db.url {
            env.push(("KEYTURN_DATABASE_URL", url));
        }
        let run = |args: &[&str], extra: &[(&str, &str)]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
                .args(args)
                .env_remove("KEYTURN_DATABASE_URL")
                .env_remove("KEYTURN_CONFIG")
                .envs(env.iter().copied())
                .envs(extra.iter().copied())
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let admin = admin_token(&env);
        let receiver = Receiver::start(Mode::FailFirst(0)).await;

        let (ok, _, err) = run(&["webhooks", "create", "--url", &receiver.url], &[]);
        assert!(
            !ok && err.contains("KEYTURN_WEBHOOK_ALLOW_PRIVATE"),
            "{err}"
        );
        let (ok, out, err) = run(
            &[
                "webhooks",
                "create",
                "--url",
                &receiver.url,
                "--event",
                "license.*",
                "--event",
                "webhook.test",
                "--webhook-allow-private",
                "true",
            ],
            &[],
        );
        assert!(!ok && err.contains("unknown event type"), "{out}{err}");
        let (ok, out2, err) = run(
            &[
                "webhooks",
                "create",
                "--url",
                &receiver.url,
                "--event",
                "license.*",
                "--description",
                "CRM bridge",
                "--webhook-allow-private",
                "true",
            ],
            &[],
        );
        assert!(ok, "{err}");
        assert!(err.contains("shown only now"), "{err}");
        let created: Value = serde_json::from_str(&out2).unwrap();
        let id = created["id"].as_i64().unwrap().to_string();
        let first_secret = created["secret"].as_str().unwrap().to_owned();
        receiver.trust(&first_secret);
        let (ok, listed, _) = run(&["webhooks", "list"], &[]);
        assert!(ok && listed.contains(&receiver.url) && listed.contains("license.*"));
        assert!(!listed.contains("whsec_"));

        // Sealed by `keys seal`, with the products' keys.
        let sealing = [("KEYTURN_MASTER_KEY", master.as_str())];
        let (ok, _, err) = run(&["keys", "seal"], &sealing);
        assert!(ok, "{err}");
        let mut conn = sqlx::AnyConnection::connect(&db.any_url()).await.unwrap();
        let stored: String = sqlx::query("SELECT secret FROM webhook_endpoints")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get("secret");
        assert!(stored.starts_with("sealed:v1:"), "{stored}");
        assert!(!stored.contains(&first_secret[6..]));
        let (ok, _, err) = run(&["webhooks", "rotate", &id, "--overlap-hours", "1"], &[]);
        assert!(
            !ok && err.contains("master key"),
            "sealed secrets need the key: {err}"
        );
        let (ok, rotated, err) = run(
            &["webhooks", "rotate", &id, "--overlap-hours", "1"],
            &sealing,
        );
        assert!(ok, "{err}");
        let second_secret = rotated.trim().to_owned();
        assert!(second_secret.starts_with("whsec_") && second_secret != first_secret);
        let stored: Vec<Option<String>> =
            sqlx::query("SELECT secret, previous_secret FROM webhook_endpoints")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .flat_map(|r| [r.get("secret"), r.get("previous_secret")])
                .collect();
        assert!(stored
            .iter()
            .all(|s| s.as_deref().unwrap().starts_with("sealed:v1:")));
        conn.close().await.ok();

        let mut serve_env = env.clone();
        serve_env.push(("KEYTURN_MASTER_KEY", master.as_str()));
        serve_env.push(("KEYTURN_WEBHOOK_ALLOW_PRIVATE", "true"));
        let server = ServerProcess::start(
            &["--rate-limit-per-minute", "0"],
            &serve_env,
            &dir.path().join("serve.log"),
        )
        .await;
        let (ok, queued, err) = run(&["webhooks", "test", &id], &sealing);
        assert!(ok, "{err}");
        let delivery: Value = serde_json::from_str(&queued).unwrap();
        assert!(
            until(Duration::from_secs(20), || !receiver.delivered().is_empty()).await,
            "{}",
            server.log_text()
        );
        let test = &receiver.delivered()[0];
        assert_eq!(test.event_type, "webhook.test");
        assert_eq!(test.signature.matches("v1=").count(), 2);
        // The receiver that knows only the first secret verified it; one that knows only the
        // new secret verifies the next.
        assert!(receiver.bad().is_empty());
        let only_new = Receiver::start(Mode::FailFirst(0)).await;
        only_new.trust(&second_secret);
        let (ok, _, err) = run(
            &[
                "webhooks",
                "update",
                &id,
                "--url",
                &only_new.url,
                "--webhook-allow-private",
                "true",
            ],
            &sealing,
        );
        assert!(ok, "{err}");
        run(&["webhooks", "test", &id], &sealing);
        assert!(until(Duration::from_secs(20), || !only_new.delivered().is_empty()).await);
        assert!(only_new.bad().is_empty());

        let (ok, rows, _) = run(
            &["webhooks", "deliveries", &id, "--output", "json"],
            &sealing,
        );
        assert!(ok);
        let rows: Value = serde_json::from_str(&rows).unwrap();
        assert_eq!(rows["data"].as_array().unwrap().len(), 2);
        let (ok, log, _) = run(
            &["webhooks", "delivery", &delivery["id"].to_string()],
            &sealing,
        );
        assert!(ok);
        let log: Value = serde_json::from_str(&log).unwrap();
        assert_eq!(log["state"], "delivered");
        assert_eq!(log["attempts_log"][0]["status"], 200);
        let (ok, disabled, _) = run(&["webhooks", "disable", &id], &sealing);
        assert!(ok && disabled.contains("\"enabled\": false"));
        let (ok, _, _) = run(&["webhooks", "delete", &id], &sealing);
        assert!(ok);
        let app = TestApp::attach(server.base.clone(), admin);
        assert_eq!(
            app.get(&format!("/v1/webhook-endpoints/{id}")).await.status,
            404
        );
        drop(server);
        db.remove().await;
    }
}
