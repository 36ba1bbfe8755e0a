//! keyturn-client as a vendor's program uses it, against the real server: its own machine
//! fingerprint, replies tampered with on the way, offline license files, the offline grace period
//! and clocks turned back.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use keyturn_client::{Client, Clock, Error, Fingerprint};
use keyturn_core::ProductSigner;
use keyturn_http::SIGNATURE_HEADER;
use serde_json::json;

use crate::helpers::TestApp;

/// What the proxy between client and server does to replies.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tamper {
    Pass,
    /// Changes one value in the body, keeping the server's signature.
    Body,
    /// Signs the body with a key of its own, as a forged server would.
    ForeignSignature,
    /// Drops the signature header.
    Unsigned,
    /// Sends the previous reply again.
    Replay,
    /// Answers 502, as a load balancer does when the server is down.
    Down,
}

/// A reply as it passed: status, body and signature.
type Passed = (u16, Vec<u8>, Option<String>);

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    tamper: Arc<Mutex<Tamper>>,
    last: Arc<Mutex<Option<Passed>>>,
}

/// A small HTTP proxy on 127.0.0.1 that sits between the client and the server.
struct Proxy {
    base: String,
    tamper: Arc<Mutex<Tamper>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let state = ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            tamper: Arc::new(Mutex::new(Tamper::Pass)),
            last: Arc::new(Mutex::new(None)),
        };
        let tamper = state.tamper.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, tamper }
    }

    fn set(&self, tamper: Tamper) {
        *self.tamper.lock().unwrap() = tamper;
    }
}

async fn forward(
    State(s): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tamper = *s.tamper.lock().unwrap();
    if tamper == Tamper::Down {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    let mut request = s.http.request(method, format!("{}{}", s.upstream, uri));
    if let Some(ct) = headers.get("content-type") {
        request = request.header("content-type", ct);
    }
    let reply = request.body(body).send().await.expect("server answers");
    let status = reply.status().as_u16();
    let mut signature = reply
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    let mut bytes = reply.bytes().await.unwrap().to_vec();
    let previous = s
        .last
        .lock()
        .unwrap()
        .replace((status, bytes.clone(), signature.clone()));
    let mut status = status;
    match tamper {
        Tamper::Pass | Tamper::Down => {}
        Tamper::Body => {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.contains("\"trial\":false"), "{text}");
            bytes = text
                .replacen("\"trial\":false", "\"trial\":true", 1)
                .into_bytes();
        }
        Tamper::ForeignSignature => signature = Some(ProductSigner::generate().sign(&bytes)),
        Tamper::Unsigned => signature = None,
        Tamper::Replay => {
            let (st, b, sig) = previous.expect("a reply to replay");
            (status, bytes, signature) = (st, b, sig);
        }
    }
    let mut response = (StatusCode::from_u16(status).unwrap(), bytes).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(sig) = signature {
        response
            .headers_mut()
            .insert(SIGNATURE_HEADER, HeaderValue::from_str(&sig).unwrap());
    }
    response
}

/// A clock the test sets by hand.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Utc::now())))
    }

    fn shift(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A product with a license for it: (product id, license id, key, public key).
async fn licensed(app: &TestApp, spec: serde_json::Value) -> (i64, i64, String, String) {
    let product = app.product("Editor", &["pro", "export"]).await;
    let mut spec = spec;
    spec["product_id"] = json!(product);
    let license = app.license(spec).await;
    (
        product,
        license["id"].as_i64().unwrap(),
        license["key"].as_str().unwrap().to_owned(),
        app.public_key(product).await,
    )
}

/// This machine's real fingerprint, with its fallback identity kept in `dir`.
fn this_machine(dir: &tempfile::TempDir) -> Fingerprint {
    Fingerprint::current_with_identity_file(&dir.path().join("machine-id"))
}

async fn issue_file(app: &TestApp, id: i64, body: serde_json::Value) -> String {
    let r = app.post(&format!("/v1/licenses/{id}/file"), body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    String::from_utf8(r.raw).unwrap()
}

async fn this_machine_online(app: &TestApp) {
    let (product, id, key, public) =
        licensed(app, json!({"max_machines": 1, "features": ["pro"]})).await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(&app.base, product, &public)
        .unwrap()
        .with_fingerprint(this_machine(&dir))
        .with_machine_name("build box")
        .with_state_file(dir.path().join("state.json"));
    let code = client.machine_code().unwrap();
    assert!(code.starts_with("ktfp1:"), "{code}");

    let activation = client.activate(&key).await.unwrap();
    assert!(activation.created);
    assert_eq!(activation.activation.fingerprint, code);
    assert_eq!(activation.activation.name.as_deref(), Some("build box"));
    assert!(!client.activate(&key).await.unwrap().created);
    let v = client.validate(&key, &["pro"]).await.unwrap();
    assert!(v.valid && !v.offline, "{v:?}");
    assert_eq!(
        client.validate(&key, &["export"]).await.unwrap().code,
        "FEATURE_MISSING"
    );

    // One changed component (say, a new network card) keeps the machine's activation.
    let mut parts: Vec<(String, String)> = this_machine(&dir).components().to_vec();
    let changed = parts.iter().position(|(n, _)| n != "mid").unwrap_or(0);
    parts[changed].1 = "0123456789abcdef".into();
    let drifted = Fingerprint::parse(&format!(
        "ktfp1:{}",
        parts
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    ));
    if parts.len() > 2 {
        // Without a state file the server itself recognises the machine.
        let stateless_box = Client::new(&app.base, product, &public)
            .unwrap()
            .with_fingerprint(drifted.clone());
        assert_ne!(stateless_box.machine_code().unwrap(), code);
        assert!(stateless_box.validate(&key, &["pro"]).await.unwrap().valid);
        let again = stateless_box.activate(&key).await.unwrap();
        assert!(!again.created, "no second seat for the same machine");
        assert_eq!(again.activation.fingerprint, code);
        let same_box = Client::new(&app.base, product, &public)
            .unwrap()
            .with_fingerprint(drifted)
            .with_state_file(dir.path().join("state.json"));
        assert_eq!(same_box.machine_code().unwrap(), code);
        assert!(same_box.validate(&key, &["pro"]).await.unwrap().valid);
    }

    // Another machine is a second machine: refused by the limit of one.
    let other = Client::new(&app.base, product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse("ktfp1:mid=1111;mac=2222;hst=3333"));
    match other.activate(&key).await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, "too_many_machines"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        other.validate(&key, &[]).await.unwrap().code,
        "NOT_ACTIVATED"
    );

    client.deactivate(&key).await.unwrap();
    let v = client.validate(&key, &[]).await.unwrap();
    assert_eq!(v.code, "NOT_ACTIVATED");
    assert!(matches!(
        client.deactivate(&key).await,
        Err(Error::Refused { status: 404, .. })
    ));
    assert!(
        other.activate(&key).await.unwrap().created,
        "the seat is free"
    );

    assert_eq!(
        app.actions(id).await,
        ["created", "activated", "deactivated", "activated"]
    );
}
on_every_backend!(
    sdk_activates_validates_and_deactivates_this_machine,
    this_machine_online
);

async fn floating_seats(app: &TestApp) {
    let (product, _, key, public) = licensed(
        app,
        json!({"max_machines": 1, "floating_lease_seconds": 600}),
    )
    .await;
    let node = |fp: &str| {
        Client::new(&app.base, product, &public)
            .unwrap()
            .with_fingerprint(Fingerprint::parse(fp))
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let lease = a.checkout(&key).await.unwrap();
    let expires = lease.expires.expect("a floating seat lapses");
    assert!(expires > Utc::now() + Duration::seconds(500));
    let renew = lease.renew_at(Utc::now()).unwrap();
    assert!(renew < expires);
    match b.checkout(&key).await {
        Err(Error::Refused { code, .. }) => assert_eq!(code, "too_many_machines"),
        other => panic!("expected the seat to be taken, got {other:?}"),
    }
    let renewed = a.heartbeat(&key).await.unwrap();
    assert!(!renewed.activation.created);
    assert!(renewed.expires.unwrap() >= expires);
    a.release(&key).await.unwrap();
    assert!(b.checkout(&key).await.unwrap().activation.created);
    assert_eq!(b.validate(&key, &[]).await.unwrap().code, "VALID");

    // A node-locked license holds its seat until released.
    let (product, _, key, public) = licensed(app, json!({"max_machines": 1})).await;
    let fixed = Client::new(&app.base, product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse("node-c"));
    assert_eq!(fixed.checkout(&key).await.unwrap().expires, None);
}
on_every_backend!(
    floating_seats_are_checked_out_renewed_and_released,
    floating_seats
);

async fn tampered_replies(app: &TestApp) {
    let (product, _, key, public) = licensed(app, json!({"features": ["pro"]})).await;
    let proxy = Proxy::start(&app.base).await;
    let client = Client::new(&proxy.base, product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse("machine-1"));
    client.activate(&key).await.unwrap();
    assert!(client.validate(&key, &["pro"]).await.unwrap().valid);

    proxy.set(Tamper::Body);
    assert!(matches!(
        client.validate(&key, &["pro"]).await,
        Err(Error::BadSignature)
    ));
    assert!(matches!(
        client.activate(&key).await,
        Err(Error::BadSignature)
    ));
    proxy.set(Tamper::ForeignSignature);
    assert!(matches!(
        client.validate(&key, &[]).await,
        Err(Error::BadSignature)
    ));
    assert!(matches!(
        client.deactivate(&key).await,
        Err(Error::BadSignature)
    ));
    // The server did free the seat; the program just could not trust the answer.
    proxy.set(Tamper::Pass);
    assert!(client.activate(&key).await.unwrap().created);
    proxy.set(Tamper::Unsigned);
    assert!(matches!(
        client.validate(&key, &[]).await,
        Err(Error::Unsigned)
    ));
    proxy.set(Tamper::Pass);
    assert!(client.validate(&key, &[]).await.unwrap().valid);
    proxy.set(Tamper::Replay);
    assert!(matches!(
        client.validate(&key, &[]).await,
        Err(Error::Replayed)
    ));
    proxy.set(Tamper::Pass);
    client.deactivate(&key).await.unwrap();
}
on_every_backend!(tampered_or_replayed_replies_are_errors, tampered_replies);

async fn license_files(app: &TestApp) {
    let (product, id, key, public) = licensed(
        app,
        json!({"features": ["pro"], "period_days": 365, "max_machines": 1}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let client = Client::new("http://127.0.0.1:9", product, &public)
        .unwrap()
        .with_fingerprint(this_machine(&dir))
        .with_clock(clock.clone())
        .with_state_file(dir.path().join("state.json"));
    let machine = client.machine_code().unwrap();

    for encrypt in [false, true] {
        let text = issue_file(
            app,
            id,
            json!({"fingerprint": machine, "ttl_days": 7, "encrypt": encrypt}),
        )
        .await;
        assert!(text.starts_with("-----BEGIN LICENSE FILE-----\n"));
        assert!(text.trim_end().ends_with("-----END LICENSE FILE-----"));
        assert!(!text.contains(&key), "the key is not in clear text");
        let file = client.verify_license_file(&text, &key, &["pro"]).unwrap();
        assert_eq!(file.license.key, key);
        assert_eq!(file.license.features, ["pro"]);
        assert_eq!(file.fingerprint.as_deref(), Some(machine.as_str()));
        assert!((file.valid_until - file.issued - Duration::days(7)).is_zero());
        // Lower-case keys as users type them work too.
        client
            .verify_license_file(&text, &key.to_lowercase(), &[])
            .unwrap();
        assert!(matches!(
            client.verify_license_file(&text, &key, &["export"]),
            Err(Error::FeatureMissing(f)) if f == "export"
        ));
        // A changed byte breaks the signature.
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let body = &mut lines[4];
        let flipped = if body.starts_with('A') { "B" } else { "A" };
        body.replace_range(0..1, flipped);
        assert!(matches!(
            client.verify_license_file(&lines.join("\n"), &key, &[]),
            Err(Error::BadSignature)
        ));
        // Only this product's key vouches for a file.
        let stranger = Client::new(
            "http://127.0.0.1:9",
            product,
            &ProductSigner::generate().public_key().to_base64(),
        )
        .unwrap()
        .with_fingerprint(this_machine(&dir));
        assert!(matches!(
            stranger.verify_license_file(&text, &key, &[]),
            Err(Error::BadSignature)
        ));
    }

    // A file for another machine is refused, encrypted or not.
    let elsewhere = "ktfp1:mid=00000000000000aa;mac=00000000000000bb;hst=00000000000000cc";
    for encrypt in [false, true] {
        let text = issue_file(
            app,
            id,
            json!({"fingerprint": elsewhere, "encrypt": encrypt}),
        )
        .await;
        assert!(
            matches!(
                client.verify_license_file(&text, &key, &[]),
                Err(Error::WrongMachine)
            ),
            "encrypt {encrypt}"
        );
    }
    // ...but a machine that changed one component still opens its file.
    let drifted = Client::new("http://127.0.0.1:9", product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse(
            "ktfp1:mid=00000000000000aa;mac=00000000000000ff;hst=00000000000000cc",
        ));
    let text = issue_file(app, id, json!({"fingerprint": elsewhere, "encrypt": true})).await;
    drifted.verify_license_file(&text, &key, &["pro"]).unwrap();
    // An unbound file works on any machine; encryption needs a machine.
    let unbound = issue_file(app, id, json!({})).await;
    drifted.verify_license_file(&unbound, &key, &[]).unwrap();
    let r = app
        .post(&format!("/v1/licenses/{id}/file"), json!({"encrypt": true}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    // A file names its key: another license's key does not open it.
    let (_, _, other_key, _) = licensed(app, json!({})).await;
    assert!(matches!(
        drifted.verify_license_file(&unbound, &other_key, &[]),
        Err(Error::WrongKey)
    ));

    // Expired files are refused.
    let text = issue_file(app, id, json!({"fingerprint": machine, "ttl_days": 1})).await;
    client.verify_license_file(&text, &key, &[]).unwrap();
    clock.shift(Duration::days(2));
    match client.verify_license_file(&text, &key, &[]) {
        Err(Error::FileExpired { valid_until }) => assert!(valid_until < clock.now()),
        other => panic!("expected an expired file, got {other:?}"),
    }
    // Turning the clock back is noticed: before the latest time seen...
    clock.shift(Duration::days(-1) - Duration::hours(12));
    assert!(matches!(
        client.verify_license_file(&text, &key, &[]),
        Err(Error::ClockRolledBack { .. })
    ));
    // ...and, even without a state file, before the file was issued.
    let stateless = Client::new("http://127.0.0.1:9", product, &public)
        .unwrap()
        .with_fingerprint(this_machine(&dir))
        .with_clock(clock.clone());
    clock.shift(Duration::days(-2));
    assert!(matches!(
        stateless.verify_license_file(&text, &key, &[]),
        Err(Error::ClockRolledBack { .. })
    ));

    // The license's own expiry counts too, and blocked or expired licenses get no file.
    let after_expiry = Utc::now() + Duration::days(400);
    let long = issue_file(app, id, json!({"fingerprint": machine, "ttl_days": 500})).await;
    let later = Client::new("http://127.0.0.1:9", product, &public)
        .unwrap()
        .with_fingerprint(this_machine(&dir))
        .with_clock(Arc::new(TestClock(Mutex::new(after_expiry))));
    assert!(matches!(
        later.verify_license_file(&long, &key, &[]),
        Err(Error::LicenseExpired { .. })
    ));
    app.post(&format!("/v1/licenses/{id}/block"), json!({}))
        .await;
    let r = app
        .post(&format!("/v1/licenses/{id}/file"), json!({}))
        .await;
    assert_eq!((r.status, r.code()), (403, "blocked"));

    let actions = app.actions(id).await;
    let issued = actions.iter().filter(|a| *a == "license_file_issued");
    assert_eq!(issued.count(), 8);
}
on_every_backend!(
    license_files_round_trip_and_are_refused_when_they_should_be,
    license_files
);

async fn file_permissions(app: &TestApp) {
    let (_, id, _, _) = licensed(app, json!({})).await;
    let reader = app
        .post(
            "/v1/tokens",
            json!({"name": "support", "permissions": ["licenses:read"]}),
        )
        .await;
    let token = reader.body["token"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/v1/licenses/{id}/file"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .call(
            Method::POST,
            &format!("/v1/licenses/{id}/file"),
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 401);
    for bad in [
        json!({"ttl_days": 0}),
        json!({"ttl_days": 4000}),
        json!({"fingerprint": ""}),
    ] {
        let r = app.post(&format!("/v1/licenses/{id}/file"), bad).await;
        assert_eq!(r.status, 422, "{}", r.body);
    }
    assert_eq!(
        app.post("/v1/licenses/999999/file", json!({})).await.status,
        404
    );
}
on_every_backend!(license_files_need_licenses_write, file_permissions);

async fn grace_period(app: &TestApp) {
    let (product, id, key, public) = licensed(app, json!({"features": ["pro"]})).await;
    let proxy = Proxy::start(&app.base).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let clock = TestClock::new();
    let client = Client::new(&proxy.base, product, &public)
        .unwrap()
        .with_fingerprint(Fingerprint::parse("machine-1"))
        .with_state_file(&state)
        .with_clock(clock.clone())
        .with_grace_period(std::time::Duration::from_secs(24 * 3600));
    client.activate(&key).await.unwrap();

    // Offline with nothing kept: the outage is the error.
    proxy.set(Tamper::Down);
    assert!(matches!(
        client.validate(&key, &["pro"]).await,
        Err(Error::Refused { status: 502, .. })
    ));
    proxy.set(Tamper::Pass);
    assert!(client.validate(&key, &["pro"]).await.unwrap().valid);
    // Asking for a feature the license lacks keeps the good verdict for offline use.
    assert_eq!(
        client.validate(&key, &["export"]).await.unwrap().code,
        "FEATURE_MISSING"
    );

    proxy.set(Tamper::Down);
    clock.shift(Duration::hours(20));
    let offline = client.validate(&key, &["pro"]).await.unwrap();
    assert!(offline.valid && offline.offline, "{offline:?}");
    let missing = client.validate(&key, &["export"]).await.unwrap();
    assert_eq!(
        (missing.valid, missing.code.as_str()),
        (false, "FEATURE_MISSING")
    );

    // A cached reply edited on disk no longer carries the server's signature.
    let saved = std::fs::read(&state).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    let cached = edited["validations"][&key]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = base64_decode(&cached).replace("\"trial\":false", "\"trial\":true");
    edited["validations"][&key]["body"] = json!(base64_encode(body.as_bytes()));
    std::fs::write(&state, serde_json::to_vec(&edited).unwrap()).unwrap();
    assert!(matches!(
        client.validate(&key, &["pro"]).await,
        Err(Error::BadSignature)
    ));
    std::fs::write(&state, &saved).unwrap();

    // Past the grace period the program must go online again.
    clock.shift(Duration::hours(6));
    match client.validate(&key, &["pro"]).await {
        Err(Error::GraceExpired { last_validated }) => {
            assert!(last_validated < clock.now() - Duration::hours(24))
        }
        other => panic!("expected the grace period to be over, got {other:?}"),
    }
    // Turning the clock back into the grace period does not help.
    clock.shift(Duration::hours(-12));
    assert!(matches!(
        client.validate(&key, &["pro"]).await,
        Err(Error::ClockRolledBack { .. })
    ));

    // Online again; a blocked license leaves nothing to run on offline.
    clock.shift(Duration::hours(14));
    proxy.set(Tamper::Pass);
    app.post(&format!("/v1/licenses/{id}/block"), json!({}))
        .await;
    assert_eq!(client.validate(&key, &[]).await.unwrap().code, "BLOCKED");
    proxy.set(Tamper::Down);
    assert!(matches!(
        client.validate(&key, &[]).await,
        Err(Error::Refused { status: 502, .. })
    ));
}
on_every_backend!(offline_grace_is_honoured_then_refused, grace_period);

fn base64_decode(text: &str) -> String {
    use base64::Engine;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap(),
    )
    .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
