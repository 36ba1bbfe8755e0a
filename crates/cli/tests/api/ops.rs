//! What an operator runs: `/metrics`, `/version`, logs as a collector reads them,
//! `keyturn check-config` and `keyturn doctor`.

use std::process::Command;
use std::time::Duration;

use keyturn_http::MetricsToken;
use serde_json::json;

use crate::helpers::{backends, free_port, spawn, test_http, Backend, ServerProcess, TestDb};

const TOKEN: &str = "metrics-token-for-the-tests";

async fn scrape(app: &crate::helpers::TestApp, token: Option<&str>) -> (u16, String) {
    let mut request = app.http.get(format!("{}/metrics", app.base));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The value of the series that starts with `series` (name and labels), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_and_name_routes_by_template() {
    for backend in backends() {
        metrics_on(&backend).await;
    }
}

async fn metrics_on(backend: &Backend) {
    let db = TestDb::create(backend).await;
    // Without a token configured, /metrics does not exist on the main listener.
    let closed = spawn(&db, test_http()).await;
    assert_eq!(scrape(&closed, None).await.0, 404);
    assert_eq!(scrape(&closed, Some(TOKEN)).await.0, 404);
    closed.stop().await;
    db.remove().await;

    let db = TestDb::create(backend).await;
    let mut http = test_http();
    http.metrics_token = Some(MetricsToken::new(TOKEN));
    let app = spawn(&db, http).await;
    assert_eq!(scrape(&app, None).await.0, 401);
    assert_eq!(
        scrape(&app, Some("metrics-token-for-the-test")).await.0,
        401
    );
    let (status, before) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(status, 200);

    let product = app.product("Editor", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 2}))
        .await;
    let key = license["key"].as_str().unwrap().to_owned();
    let id = license["id"].as_i64().unwrap();
    assert_eq!(app.get(&format!("/v1/licenses/{id}")).await.status, 200);
    assert_eq!(
        app.get(&format!("/v1/licenses/by-key/{key}")).await.status,
        200
    );
    let activated = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "machine-a"}),
        )
        .await;
    assert_eq!(activated.status, 201, "{:?}", activated.body);
    for _ in 0..3 {
        let v = app
            .public(
                "/v1/validate",
                json!({"key": key, "fingerprint": "machine-a"}),
            )
            .await;
        assert_eq!(v.body["code"], "VALID", "{:?}", v.body);
    }
    let v = app
        .public("/v1/validate", json!({"key": "AAAAA-BBBBB-CCCCC-DDDDD"}))
        .await;
    assert_eq!(v.body["code"], "NOT_FOUND");
    // A provider webhook that is not configured is refused, and counted as such.
    let refused = app.public("/webhooks/stripe", json!({})).await;
    assert_eq!(refused.status, 404);
    // A path no route knows is counted as unmatched, never by its text.
    app.get("/no-such-route/secret-looking-path").await;

    let (status, text) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(
        text.contains(
            r#"keyturn_http_requests_total{method="GET",route="/v1/licenses/{id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="/v1/licenses/by-key/{key}""#));
    assert!(text.contains(r#"route="unmatched""#));
    assert!(
        !text.contains(&format!("/v1/licenses/{id}\"")),
        "a raw id in a label"
    );
    assert!(!text.contains(&key), "a key in the metrics");
    assert!(!text.contains("secret-looking-path"));
    assert!(
        text.contains(r#"keyturn_http_request_duration_seconds_bucket{le="#)
            || text.contains(r#"keyturn_http_request_duration_seconds_bucket{route="#)
    );

    let valid = r#"keyturn_validations_total{code="VALID"}"#;
    assert_eq!(value(&text, valid) - value(&before, valid), 3.0, "{text}");
    let missing = r#"keyturn_validations_total{code="NOT_FOUND"}"#;
    assert_eq!(value(&text, missing) - value(&before, missing), 1.0);
    assert_eq!(
        value(&text, r#"keyturn_activations_total{code="VALID"}"#),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"keyturn_webhooks_received_total{provider="stripe",outcome="refused"}"#
        ),
        1.0
    );
    assert!(
        value(&text, "keyturn_license_cache_hits_total") >= 1.0,
        "{text}"
    );
    assert!(value(&text, "keyturn_license_cache_misses_total") >= 1.0);
    assert!(text.contains("keyturn_mail_outbox_depth 0"));
    assert!(text.contains("keyturn_webhook_outbox_depth 0"));
    assert!(value(&text, "keyturn_database_pool_max_connections") >= 1.0);
    assert!(text.contains("keyturn_database_pool_idle_connections"));
    assert!(text.contains(r#"keyturn_database_errors_total{outcome="unavailable"}"#));
    assert!(text.contains(&format!(
        r#"keyturn_build_info{{version="{}",commit=""#,
        env!("CARGO_PKG_VERSION")
    )));
    // A database that cannot be reached is counted (the store's counts are the process's,
    // so only growth is asserted), and the scrape still answers.
    let unavailable = r#"keyturn_database_errors_total{outcome="unavailable"}"#;
    app.faults().set_unreachable(true);
    assert_eq!(app.get(&format!("/v1/licenses/{id}")).await.status, 503);
    let (status, during) = scrape(&app, Some(TOKEN)).await;
    app.faults().set_unreachable(false);
    assert_eq!(status, 200);
    assert!(
        value(&during, unavailable) > value(&text, unavailable),
        "{during}"
    );

    // The metrics route counts itself like any other, by its template.
    assert!(text.contains(r#"route="/metrics""#));
    app.stop().await;
    db.remove().await;
}

/// The commit `git` names for the source the tests were built from, if git can say.
fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_listener_serves_metrics_without_a_token_and_version_names_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("serve.log");
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let server = ServerProcess::start(
        &["--metrics-listen", &format!("127.0.0.1:{port}")],
        &[("KEYTURN_DATA_DIR", data), ("KEYTURN_LOG", "info")],
        &log,
    )
    .await;
    let http = reqwest::Client::new();
    let separate = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(separate.status(), 200);
    let text = separate.text().await.unwrap();
    assert!(text.contains("keyturn_build_info"), "{text}");
    // The main listener has no token configured: no metrics there.
    let main = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);

    let version: serde_json::Value = http
        .get(format!("{}/version", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let commit = version["commit"].as_str().unwrap();
    assert!(!commit.is_empty());
    if let Some(expected) = git_commit() {
        assert_eq!(commit, expected, "the commit the binary was built from");
    }
    assert!(text.contains(&format!(r#"commit="{commit}""#)));
    let (code, out, _) = keyturn(dir.path(), &["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("keyturn {} ({commit})", env!("CARGO_PKG_VERSION"))
    );

    // stderr goes to a file: the log has no terminal escape codes.
    let logged = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&logged).contains("keyturn is listening"),
        "{}",
        String::from_utf8_lossy(&logged)
    );
    assert!(!logged.contains(&0x1b), "an ESC byte in a piped log");
}

fn keyturn(
    data_dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command
        .args(args)
        .env("KEYTURN_DATA_DIR", data_dir)
        .env_remove("KEYTURN_DATABASE_URL")
        .env_remove("KEYTURN_CONFIG")
        .env_remove("KEYTURN_SMTP_HOST")
        .env_remove("KEYTURN_PUBLIC_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run keyturn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_names_each_problem_and_passes_a_good_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = keyturn(dir.path(), &["check-config"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("configuration ok"));

    // A value clap refuses, given in the environment.
    let (code, _, err) = keyturn(
        dir.path(),
        &["check-config"],
        &[("KEYTURN_RATE_LIMIT_BURST", "lots")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rate-limit-burst"), "{err}");

    // Values that parse but do not hold: each on a line of its own.
    let (code, _, err) = keyturn(
        dir.path(),
        &[
            "check-config",
            "--public-url",
            "not a url",
            "--mail-from",
            "nobody",
            "--metrics-token",
            "short",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("problem: ")).collect();
    assert_eq!(problems.len(), 3, "{err}");
    assert!(err.contains("KEYTURN_PUBLIC_URL"));
    assert!(err.contains("KEYTURN_MAIL_FROM"));
    assert!(err.contains("KEYTURN_METRICS_TOKEN"));

    // A bad value in the configuration file names its key.
    let file = dir.path().join("keyturn.toml");
    std::fs::write(&file, "max_body_bytes = \"big\"\n").unwrap();
    let (code, _, err) = keyturn(
        dir.path(),
        &["check-config", "--config", file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("max-body-bytes") || err.contains("max_body_bytes"),
        "{err}"
    );
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_database_and_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // No database yet: the required check fails, and nothing is created.
    let (code, out, err) = keyturn(&data, &["doctor"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED   database"), "{out}");
    assert!(out.contains("missing  smtp"), "{out}");
    assert!(out.contains("missing  provider: stripe webhooks"), "{out}");
    assert!(!data.join("keyturn.db").exists());

    let (code, _, err) = keyturn(&data, &["migrate"], &[]);
    assert_eq!(code, 0, "{err}");

    let port = free_port();
    let maildir = dir.path().join("mail");
    let sink = crate::mail::start_sink(port, &maildir);
    wait_for_port(port).await;
    let port_text = port.to_string();
    let smtp = [
        "doctor",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port_text,
        "--smtp-tls",
        "none",
        "--stripe-webhook-secret",
        "whsec_test",
    ];
    let (code, out, err) = keyturn(&data, &smtp, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok       database: sqlite connected, schema current"),
        "{out}"
    );
    assert!(
        out.contains(&format!("ok       smtp: 127.0.0.1:{port} answered EHLO")),
        "{out}"
    );
    assert!(
        out.contains("ok       provider: stripe webhooks configured"),
        "{out}"
    );
    assert!(out.contains("missing  public url"), "{out}");

    // The same server gone: the configured SMTP check fails the doctor.
    drop(sink);
    let (code, out, _) = keyturn(&data, &smtp, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("FAILED   smtp: 127.0.0.1:{port}")),
        "{out}"
    );

    // A public URL that answers passes, whatever its status.
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reachable = format!("http://{}/", web.local_addr().unwrap());
    tokio::spawn(async move {
        let page = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        axum::serve(web, page).await.unwrap()
    });
    let (code, out, _) = keyturn(&data, &["doctor", "--public-url", &reachable], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("ok       public url: {reachable} answered 200")),
        "{out}"
    );

    // A public URL nobody answers at is a failure too.
    let unreachable = format!("http://127.0.0.1:{}/", free_port());
    let (code, out, _) = keyturn(&data, &["doctor", "--public-url", &unreachable], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED   public url"), "{out}");
}

/// The schema check on both databases: a database the migrations have not reached fails the
/// doctor, and passes once `keyturn migrate` ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_tells_a_schema_behind_on_every_backend() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let data = db.dir.path().join("data");
        let mut args = vec!["doctor"];
        match &db.url {
            Some(url) => args.extend(["--database-url", url.as_str()]),
            None => {
                // An SQLite file no migration has touched.
                std::fs::create_dir_all(&data).unwrap();
                std::fs::write(data.join("keyturn.db"), b"").unwrap();
            }
        }
        let (code, out, _) = keyturn(&data, &args, &[]);
        assert_eq!(code, 1, "{backend:?}: {out}");
        assert!(
            out.contains("migration(s) not applied"),
            "{backend:?}: {out}"
        );
        assert!(out.contains("run `keyturn migrate`"), "{out}");

        let mut migrate = vec!["migrate"];
        if let Some(url) = &db.url {
            migrate.extend(["--database-url", url.as_str()]);
        }
        let (code, _, err) = keyturn(&data, &migrate, &[]);
        assert_eq!(code, 0, "{err}");
        let (code, out, _) = keyturn(&data, &args, &[]);
        assert_eq!(code, 0, "{backend:?}: {out}");
        assert!(out.contains("schema current"), "{out}");
        db.remove().await;
    }
}

/// Outgoing webhook attempts are counted by outcome once recorded: a receiver that fails the
/// first attempt and takes the retry moves both counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_webhook_attempts_are_counted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let tries = counted.clone();
            async move {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    _ => axum::http::StatusCode::OK,
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let db = TestDb::create(&Backend::Sqlite).await;
    let mut http = test_http();
    http.metrics_token = Some(MetricsToken::new(TOKEN));
    let mut settings =
        crate::helpers::test_settings(&db, http, Default::default(), Default::default(), 0);
    settings.webhooks = keyturn::config::WebhookSettings {
        allow_private: true,
        first_retry: Duration::from_millis(30),
        poll: Duration::from_millis(100),
        ..Default::default()
    };
    let app = crate::helpers::spawn_settings(&settings).await;
    let r = app
        .post(
            "/v1/webhook-endpoints",
            json!({"url": url, "events": ["license.created"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let product = app.product("Editor", &[]).await;
    app.license(json!({"product_id": product})).await;

    let delivered = r#"keyturn_webhook_deliveries_total{outcome="delivered"}"#;
    let failed = r#"keyturn_webhook_deliveries_total{outcome="failed"}"#;
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&app, Some(TOKEN)).await.1;
        // Settled: the retry counted and nothing left pending. A scrape reads the depth from
        // the database before it writes out the counters, so one scrape may show the attempt
        // counted while its delivery still read as pending.
        if value(&text, delivered) >= 1.0 && text.contains("keyturn_webhook_outbox_depth 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(value(&text, delivered), 1.0, "{text}");
    assert_eq!(value(&text, failed), 1.0, "{text}");
    assert_eq!(tries.load(Ordering::SeqCst), 2);
    assert!(text.contains("keyturn_webhook_outbox_depth 0"), "{text}");
    app.stop().await;
    db.remove().await;
}
