use keyturn::config::StoreSettings;
use keyturn::startup::Application;
use keyturn_http::HttpSettings;
use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;

pub const PG_ENV: &str = "KEYTURN_TEST_DATABASE_URL";

/// Python packages the tests run as real peers: a Stripe-compatible server and an SMTP server.
const PYTHON_PACKAGES: [&str; 2] = ["localstripe==1.15.10", "aiosmtpd==1.4.6"];

/// A Python with the test peers installed: `KEYTURN_TEST_PYTHON`, or a virtualenv created once
/// under the target directory.
pub fn test_python() -> std::path::PathBuf {
    use std::process::{Command, Stdio};
    static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Ok(p) = std::env::var("KEYTURN_TEST_PYTHON") {
        return p.into();
    }
    let _once = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let venv = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-python");
    let python = venv.join("bin").join("python");
    let ready = Command::new(&python)
        .args(["-c", "import localstripe, aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap();
        assert!(ok.success(), "python3 -m venv failed");
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(PYTHON_PACKAGES)
            .status()
            .unwrap();
        assert!(ok.success(), "pip install of the test peers failed");
    }
    python
}

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The server URL tests create their databases on.
    Postgres(String),
}

/// SQLite always; PostgreSQL as well when the environment names a server. Without one, the
/// calling test says on the test output that its PostgreSQL part was skipped.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => out.push(Backend::Postgres(url)),
        _ => skipped("its PostgreSQL run"),
    }
    out
}

/// The PostgreSQL server for a test that runs on nothing else; `None` (reported as a skipped
/// test) without one.
pub fn postgres() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped("the whole test (it needs PostgreSQL)");
            None
        }
    }
}

/// Tells the test output that the running test left `what` out for want of PostgreSQL. Written
/// to the process's stderr directly: the test harness hides what a passing test prints, and a
/// skipped run must never read as a full pass.
pub fn skipped(what: &str) {
    skipped_for(what, &format!("{PG_ENV} not set"));
}

/// Tells the test output that the running test left `what` out, and why.
pub fn skipped_for(what: &str, why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "{test}: skipped {what}: {why}");
}

/// Replaces the database name in a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// A database of its own for one test.
pub struct TestDb {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub url: Option<String>,
    /// The master key servers on this database are started with.
    pub master_key: Option<keyturn_core::MasterKey>,
    name: String,
}

impl TestDb {
    pub async fn create(backend: &Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = format!("keyturn_test_{:016x}", rand::random::<u64>());
        let url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(server) => {
                let mut conn = sqlx::PgConnection::connect(server)
                    .await
                    .expect("connect to the PostgreSQL test server");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                Some(with_database(server, &name))
            }
        };
        Self {
            backend: backend.clone(),
            dir,
            url,
            master_key: None,
            name,
        }
    }

    /// An SQLite database under `parent` (e.g. on a filesystem a test controls).
    pub fn sqlite_in(parent: &std::path::Path) -> Self {
        Self {
            backend: Backend::Sqlite,
            dir: tempfile::tempdir_in(parent).expect("temp dir"),
            url: None,
            master_key: None,
            name: String::new(),
        }
    }

    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            data_dir: self.dir.path().join("data"),
            database_url: self.url.clone(),
            options: keyturn_store::StoreOptions::default(),
            master_key: self.master_key.clone(),
        }
    }

    /// The URL the server's store uses, for tests that look at stored rows.
    pub fn any_url(&self) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.dir.path().join("data").join("keyturn.db").display()
            ),
        }
    }

    pub async fn remove(self) {
        if let Backend::Postgres(server) = &self.backend {
            if let Ok(mut conn) = sqlx::PgConnection::connect(server).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut conn)
                .await;
            }
        }
    }
}

/// HTTP settings for tests: no rate limit and no cap on connections per address (every test
/// client is 127.0.0.1) unless a test sets them.
pub fn test_http() -> HttpSettings {
    let mut http = HttpSettings {
        rate_limit_per_minute: 0,
        ..HttpSettings::default()
    };
    http.connections.max_connections_per_ip = 0;
    http
}

pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub raw: Vec<u8>,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    /// The server's store when it runs in this process, for tests that inject faults into it.
    store: Option<keyturn_store::Store>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn(db: &TestDb, http: HttpSettings) -> TestApp {
    spawn_with(db, http, keyturn_providers::Providers::default()).await
}

pub async fn spawn_with(
    db: &TestDb,
    http: HttpSettings,
    providers: keyturn_providers::Providers,
) -> TestApp {
    spawn_full(
        db,
        http,
        providers,
        keyturn::config::MailSettings::default(),
    )
    .await
}

pub async fn spawn_full(
    db: &TestDb,
    http: HttpSettings,
    providers: keyturn_providers::Providers,
    mail: keyturn::config::MailSettings,
) -> TestApp {
    spawn_on(db, http, providers, mail, 0).await
}

/// A second server on a database another one set up (a second node): it has no admin token of
/// its own, so it is given the first one's.
pub async fn spawn_second(db: &TestDb, http: HttpSettings, admin: &str) -> TestApp {
    let settings = test_settings(db, http, Default::default(), Default::default(), 0);
    let (application, _) = Application::build(&settings).await.expect("server starts");
    start(application, admin.to_owned())
}

/// The server again, on a database it set up before, with other settings (a restart).
pub async fn spawn_again(
    db: &TestDb,
    http: HttpSettings,
    providers: keyturn_providers::Providers,
    admin: &str,
) -> TestApp {
    let settings = test_settings(db, http, providers, Default::default(), 0);
    let (application, _) = Application::build(&settings).await.expect("server starts");
    start(application, admin.to_owned())
}

/// A server started again on a database another one set up, or why it would not start.
pub async fn try_spawn_again(db: &TestDb, admin: &str) -> anyhow::Result<TestApp> {
    let settings = test_settings(db, test_http(), Default::default(), Default::default(), 0);
    let (application, _) = Application::build(&settings).await?;
    Ok(start(application, admin.to_owned()))
}

pub fn test_settings(
    db: &TestDb,
    http: HttpSettings,
    providers: keyturn_providers::Providers,
    mail: keyturn::config::MailSettings,
    port: u16,
) -> keyturn::config::Settings {
    keyturn::config::Settings {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        metrics_listen: None,
        tls: None,
        http_redirect_listen: None,
        store: db.store_settings(),
        http,
        providers,
        mail,
        webhooks: Default::default(),
        log_format: keyturn::config::LogFormat::Text,
        signature_reuse: std::time::Duration::from_secs(900),
        license_cache_entries: keyturn_app::DEFAULT_LICENSE_CACHE,
    }
}

/// Starts a server with settings a test made (from [`test_settings`]); it must be a new
/// installation.
pub async fn spawn_settings(settings: &keyturn::config::Settings) -> TestApp {
    let (application, admin) = Application::build(settings).await.expect("server starts");
    let admin = admin.expect("a new installation gets an admin token");
    start(application, admin.expose().to_owned())
}

/// A server with settings a test made, on a database another server set up (a second node, or
/// a restart), given that server's admin token.
pub async fn spawn_node(settings: &keyturn::config::Settings, admin: &str) -> TestApp {
    let (application, _) = Application::build(settings).await.expect("server starts");
    start(application, admin.to_owned())
}

fn start(application: Application, admin: String) -> TestApp {
    let base = format!("http://{}", application.local_addr());
    let store = application.app().store().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        admin,
        http: reqwest::Client::new(),
        store: Some(store),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// Starts the server on `port` (0 picks a free one).
pub async fn spawn_on(
    db: &TestDb,
    http: HttpSettings,
    providers: keyturn_providers::Providers,
    mail: keyturn::config::MailSettings,
    port: u16,
) -> TestApp {
    let settings = test_settings(db, http, providers, mail, port);
    let (application, admin) = Application::build(&settings).await.expect("server starts");
    let admin = admin.expect("a new installation gets an admin token");
    start(application, admin.expose().to_owned())
}

impl TestApp {
    /// A server started some other way (a `keyturn serve` process), reached at `base`.
    pub fn attach(base: String, admin: String) -> Self {
        TestApp {
            base,
            admin,
            http: reqwest::Client::new(),
            store: None,
            shutdown: None,
            server: None,
        }
    }

    /// The faults to inject into the server's store (it must run in this process).
    pub fn faults(&self) -> &keyturn_store::Faults {
        self.store
            .as_ref()
            .expect("faults are injected into a server in this process")
            .faults()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.bytes().await.expect("body").to_vec();
        let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            raw,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&self.admin), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&self.admin), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&self.admin), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(&self.admin), None)
            .await
    }

    /// A call without a token, as a vendor's program makes it.
    pub async fn public(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, None, Some(body)).await
    }

    /// Creates a product and returns its id.
    pub async fn product(&self, name: &str, features: &[&str]) -> i64 {
        let r = self
            .post(
                "/v1/products",
                serde_json::json!({"name": name, "features": features}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_i64().unwrap()
    }

    /// Creates a license from the given JSON spec and returns it.
    pub async fn license(&self, spec: Value) -> Value {
        let r = self.post("/v1/licenses", spec).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// A product's base64 public key, fetched as anyone may.
    pub async fn public_key(&self, product: i64) -> String {
        let r = self
            .call(
                Method::GET,
                &format!("/v1/products/{product}/public-key"),
                None,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["public_key"].as_str().unwrap().to_owned()
    }

    /// The actions in a license's audit log, oldest first.
    pub async fn actions(&self, license_id: i64) -> Vec<String> {
        let events = self.get(&format!("/v1/licenses/{license_id}/events")).await;
        assert_eq!(events.status, 200, "{}", events.body);
        events.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn license_count(&self) -> usize {
        let r = self.get("/v1/licenses?limit=500").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"].as_array().unwrap().len()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `keyturn serve` as a process of its own, killed when dropped. Its log goes to a file.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl ServerProcess {
    /// Starts `keyturn serve` with `args` and `env` and waits until `/health` answers 200.
    pub async fn start(args: &[&str], env: &[(&str, &str)], log: &std::path::Path) -> Self {
        let port = free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
        command
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("KEYTURN_DATABASE_URL")
            .env_remove("KEYTURN_CONFIG")
            .env("KEYTURN_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"));
        for (k, v) in env {
            command.env(k, v);
        }
        let process = Self {
            child: command.spawn().expect("start keyturn serve"),
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        };
        let http = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = http.get(format!("{}/health", process.base)).send().await {
                if r.status().is_success() {
                    return process;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "keyturn serve did not come up on {}: {}",
            process.base,
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal}");
    }

    /// Waits up to `within` for the process to exit; its exit status, if it did.
    pub async fn exited(
        &mut self,
        within: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Declares a test that runs `scenario(&TestApp)` against a fresh server on every backend.
macro_rules! on_every_backend {
    ($name:ident, $scenario:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in crate::helpers::backends() {
                let db = crate::helpers::TestDb::create(&backend).await;
                let app = crate::helpers::spawn(&db, crate::helpers::test_http()).await;
                $scenario(&app).await;
                app.stop().await;
                db.remove().await;
            }
        }
    };
}

#[test]
fn database_names_are_swapped_in_urls() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5432/test", "x"),
        "postgres://u@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}

/// Run without PostgreSQL, a test that runs on every backend says on the output (not only in
/// its captured output) that its PostgreSQL part was skipped.
#[test]
fn a_run_without_postgres_names_the_skipped_part() {
    let test = "catalog::products_plans_and_customers_round_trip";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads", "1"])
        .env_remove(PG_ENV)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{test}: skipped its PostgreSQL run: {PG_ENV} not set"
        )),
        "{stderr}"
    );
}
