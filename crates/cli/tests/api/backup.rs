//! `keyturn backup` / `restore` of a served SQLite installation, and `keyturn export` /
//! `import jsonl` between SQLite and PostgreSQL: what comes back validates the same licenses,
//! signed with the same keys.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use keyturn_client::Client;
use keyturn_core::MasterKey;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{skipped, spawn, spawn_again, test_http, Backend, TestApp, TestDb, PG_ENV};

/// Runs `keyturn` with `args` on the database `url` (PostgreSQL) or data directory `dir`,
/// with exactly the master key given.
async fn keyturn(
    dir: &Path,
    url: Option<&str>,
    master_key: Option<&str>,
    args: &[&str],
) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command
        .args(args)
        .env_remove("KEYTURN_CONFIG")
        .env_remove("KEYTURN_MASTER_KEY_FILE")
        .env_remove("KEYTURN_MASTER_KEY");
    match url {
        Some(url) => command.env("KEYTURN_DATABASE_URL", url),
        None => command
            .env_remove("KEYTURN_DATABASE_URL")
            .env("KEYTURN_DATA_DIR", dir),
    };
    if let Some(key) = master_key {
        command.env("KEYTURN_MASTER_KEY", key);
    }
    let out = command.output().await.expect("run keyturn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data_dir(db: &TestDb) -> std::path::PathBuf {
    db.dir.path().join("data")
}

async fn on(db: &TestDb, master_key: Option<&str>, args: &[&str]) -> (bool, String, String) {
    keyturn(&data_dir(db), db.url.as_deref(), master_key, args).await
}

async fn rsa_public_key(app: &TestApp, product: i64) -> String {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/products/{product}/public-key?format=rsa-xml"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    String::from_utf8(r.raw).unwrap()
}

/// What a product signs with, as its programs know it.
struct Keys {
    product: i64,
    ed25519: String,
    rsa_xml: String,
}

impl Keys {
    async fn of(app: &TestApp, product: i64) -> Self {
        Self {
            product,
            ed25519: app.public_key(product).await,
            rsa_xml: rsa_public_key(app, product).await,
        }
    }

    /// Every license in `keys` validates on `app` on its machine, in replies that verify with
    /// these (old) public keys, and the server publishes the same keys.
    async fn still_sign(&self, app: &TestApp, licenses: &[(String, String)]) {
        assert_eq!(app.public_key(self.product).await, self.ed25519);
        assert_eq!(rsa_public_key(app, self.product).await, self.rsa_xml);
        let client = Client::new(&app.base, self.product, &self.ed25519).unwrap();
        for (key, machine) in licenses {
            let v = client
                .validate_machine(key, Some(machine), &["pro"])
                .await
                .unwrap_or_else(|e| panic!("{key} on {machine}: a reply signed as before: {e}"));
            assert!(v.valid, "{key} on {machine}: {}", v.code);
        }
    }
}

/// A license of `product` with one machine activated on it; (key, machine).
async fn license_on_a_machine(
    app: &TestApp,
    client: &Client,
    product: i64,
    n: usize,
) -> (String, String) {
    let license = app
        .license(json!({"product_id": product, "max_machines": 2, "features": ["pro"]}))
        .await;
    let key = license["key"].as_str().unwrap().to_owned();
    let machine = format!("machine-{n}");
    client
        .activate_machine(&key, &machine, None)
        .await
        .expect("activates");
    (key, machine)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A master key, as text for the command line and as the server takes it.
async fn new_master_key() -> (String, MasterKey) {
    let (ok, master, err) = keyturn(Path::new("."), None, None, &["keys", "new-master-key"]).await;
    assert!(ok, "{err}");
    let master = master.trim().to_owned();
    let key = MasterKey::parse(&master).unwrap();
    (master, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_to_a_server_signing_as_before() {
    let (master, key) = new_master_key().await;
    let mut db = TestDb::create(&Backend::Sqlite).await;
    db.master_key = Some(key);
    let app = Arc::new(spawn(&db, test_http()).await);
    let admin = app.admin.clone();
    let product = app.product("Editor", &["pro"]).await;
    let keys = Keys::of(&app, product).await;
    let client = Arc::new(Client::new(&app.base, product, &keys.ed25519).unwrap());
    let mut before = Vec::new();
    for n in 0..15 {
        before.push(license_on_a_machine(&app, &client, product, n).await);
    }

    // Licenses and machines keep being made while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let load = {
        let (app, client, stop, made) = (app.clone(), client.clone(), stop.clone(), made.clone());
        tokio::spawn(async move {
            let mut n = 1000;
            while !stop.load(Ordering::Relaxed) {
                license_on_a_machine(&app, &client, product, n).await;
                made.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        })
    };
    while made.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("keyturn.backup");
    let file_arg = file.to_str().unwrap();
    let (ok, out, err) = on(&db, None, &["backup", file_arg]).await;
    assert!(ok, "{out}{err}");
    let during = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let after = made.load(Ordering::Relaxed);
    assert!(after > 3, "the load kept writing");
    assert!(err.contains("same master key"), "{err}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600, "the backup holds the signing keys");
    let (ok, _, err) = on(&db, None, &["backup", file_arg]).await;
    assert!(
        !ok && err.contains("exists already"),
        "never overwritten: {err}"
    );
    Arc::try_unwrap(app)
        .ok()
        .expect("the load is over")
        .stop()
        .await;

    // Restored without the master key, the sealed keys are unusable, and the command says so.
    let keyless = TestDb::create(&Backend::Sqlite).await;
    let (ok, _, err) = on(&keyless, None, &["restore", file_arg]).await;
    assert!(!ok && err.contains("master key"), "{err}");

    let mut restored = TestDb::create(&Backend::Sqlite).await;
    restored.master_key = db.master_key.clone();
    let (ok, out, err) = on(&restored, Some(&master), &["restore", file_arg]).await;
    assert!(ok, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let copied = summary["licenses"].as_u64().unwrap() as usize;
    assert!(
        (before.len() + 3..=before.len() + after).contains(&copied),
        "a snapshot: {copied} licenses, {} before the backup began and {during} made while it ran",
        before.len()
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&data_dir(&restored)), 0o700);
        assert_eq!(mode(&data_dir(&restored).join("keyturn.db")), 0o600);
    }
    // A restore never lands in an installation that has data.
    let (ok, _, err) = on(&restored, Some(&master), &["restore", file_arg]).await;
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, _, err) = on(&db, Some(&master), &["restore", file_arg]).await;
    assert!(!ok && err.contains("not empty"), "{err}");
    // Nor is anything but a Keyturn database restored.
    let junk = backups.path().join("junk.db");
    std::fs::write(&junk, b"SQLite format 3\0 but not really").unwrap();
    let empty = TestDb::create(&Backend::Sqlite).await;
    let (ok, _, err) = on(&empty, None, &["restore", junk.to_str().unwrap()]).await;
    assert!(!ok, "{err}");
    assert!(
        !data_dir(&empty).exists(),
        "a refused restore leaves nothing behind"
    );

    // The restored server: every license made before the backup validates, signed as before,
    // and the old admin token still works (the copy is the whole installation).
    let app = spawn_again(&restored, test_http(), Default::default(), &admin).await;
    keys.still_sign(&app, &before).await;
    assert_eq!(app.license_count().await, copied);
    app.stop().await;
    for db in [db, keyless, restored, empty] {
        db.remove().await;
    }
}

/// Rows of an export, without its header, in a stable order.
fn rows(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
    lines.sort();
    lines
}

/// Imports `file` into the new installation `db`, starts a server on it, and checks that
/// every license validates there as before; then exports it to `out`.
async fn import_and_check(
    db: &TestDb,
    file: &Path,
    keys: &Keys,
    licenses: &[(String, String)],
    unchecked: usize,
    out: &Path,
) {
    let file = file.to_str().unwrap();
    let (ok, stdout, err) = on(db, None, &["import", "jsonl", file]).await;
    assert!(ok, "{stdout}{err}");
    let counts: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(counts["licenses"], licenses.len() + unchecked, "{stdout}");
    assert_eq!(counts["activations"], licenses.len(), "{stdout}");
    assert_eq!(counts["plans"], 1, "{stdout}");
    assert!(counts["license_events"].as_u64().unwrap() > 0, "{stdout}");
    // Again: refused, nothing doubled.
    let (ok, _, err) = on(db, None, &["import", "jsonl", file]).await;
    assert!(!ok && err.contains("already holds"), "{err}");

    let app = spawn(db, test_http()).await;
    keys.still_sign(&app, licenses).await;
    let customers = app.get("/v1/customers").await;
    assert_eq!(
        customers.body["data"][0]["email"], "ann@example.com",
        "{}",
        customers.body
    );
    // New rows get new ids after the imported ones.
    let fresh = app.license(json!({"product_id": keys.product})).await;
    assert!(
        fresh["id"].as_i64().unwrap() > (licenses.len() + unchecked) as i64,
        "{fresh}"
    );
    app.stop().await;
    let (ok, _, err) = on(
        db,
        None,
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_moves_licenses_between_sqlite_and_postgresql_and_back() {
    // Sealed keys travel sealed: each is bound to its product's id, which the move keeps.
    let (master, sealing) = new_master_key().await;
    let mut source = TestDb::create(&Backend::Sqlite).await;
    source.master_key = Some(sealing.clone());
    let app = spawn(&source, test_http()).await;
    let product = app.product("Editor", &["pro"]).await;
    let keys = Keys::of(&app, product).await;
    let client = Client::new(&app.base, product, &keys.ed25519).unwrap();
    let customer = app
        .post(
            "/v1/customers",
            json!({"name": "Ann", "email": "ann@example.com"}),
        )
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let mut licenses = Vec::new();
    for n in 0..6 {
        licenses.push(license_on_a_machine(&app, &client, product, n).await);
    }
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 30, "max_machines": 2,
                   "features": ["pro"]}),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let from_plan = app.license(json!({"plan_id": plan.body["id"]})).await;
    let key = from_plan["key"].as_str().unwrap().to_owned();
    client
        .activate_machine(&key, "machine-plan", None)
        .await
        .expect("activates");
    licenses.push((key, "machine-plan".to_owned()));
    // One license that nothing validates: blocked, and it must stay so.
    let blocked = app
        .license(
            json!({"product_id": product, "customer_id": customer.body["id"], "blocked": true}),
        )
        .await;
    app.stop().await;

    let files = tempfile::tempdir().unwrap();
    let first = files.path().join("from-sqlite.jsonl");
    let (ok, _, err) = on(&source, None, &["export", "--out", first.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    #[cfg(unix)]
    assert_eq!(mode(&first), 0o600, "the export holds the signing keys");
    let (ok, _, err) = on(&source, None, &["export", "--out", first.to_str().unwrap()]).await;
    assert!(!ok && err.contains("exists already"), "{err}");

    // What this version cannot take is refused, and a refused import stores nothing: the
    // same installation takes the good file afterwards.
    let refusing = TestDb::create(&Backend::Sqlite).await;
    let text = std::fs::read_to_string(&first).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let bad = [
        (
            header.replace("\"schema\":", "\"schema\":9") + "\n" + body,
            "newer Keyturn",
        ),
        (
            format!("{text}{{\"table\":\"licenses\",\"row\":{{\"id\":99,\"colour\":\"red\"}}}}\n"),
            "not a column",
        ),
        (format!("{text}{{\"table\":\"licenses\""), "line"),
        ("{\"hello\":1}\n".to_owned(), "not a Keyturn export"),
    ];
    for (n, (content, why)) in bad.iter().enumerate() {
        let file = files.path().join(format!("bad-{n}.jsonl"));
        std::fs::write(&file, content).unwrap();
        let (ok, _, err) = on(
            &refusing,
            None,
            &["import", "jsonl", file.to_str().unwrap()],
        )
        .await;
        assert!(!ok && err.contains(why), "{why}: {err}");
    }
    let (ok, _, err) = on(
        &refusing,
        None,
        &["import", "jsonl", first.to_str().unwrap()],
    )
    .await;
    assert!(ok, "nothing was left of the refused imports: {err}");
    refusing.remove().await;

    let mut middle = match std::env::var(PG_ENV) {
        Ok(server) if !server.is_empty() => TestDb::create(&Backend::Postgres(server)).await,
        _ => {
            skipped("the move into PostgreSQL (SQLite to SQLite instead)");
            TestDb::create(&Backend::Sqlite).await
        }
    };
    middle.master_key = Some(sealing.clone());
    let second = files.path().join("from-middle.jsonl");
    import_and_check(&middle, &first, &keys, &licenses, 1, &second).await;
    let mut back = TestDb::create(&Backend::Sqlite).await;
    back.master_key = Some(sealing.clone());
    let third = files.path().join("back-in-sqlite.jsonl");
    import_and_check(&back, &second, &keys, &licenses, 2, &third).await;

    // Each hop kept every row as it was (the checks above each added a license, with its
    // audit entry, on top).
    let (original, returned, again) = (rows(&first), rows(&second), rows(&third));
    assert!(original.len() < returned.len() && returned.len() < again.len());
    assert!(
        original.iter().all(|row| returned.contains(row)),
        "every row exported from SQLite came back unchanged"
    );
    assert!(
        returned.iter().all(|row| again.contains(row)),
        "every row exported from the other database came back unchanged"
    );

    let (ok, out, err) = on(
        &back,
        Some(&master),
        &["license", "show", blocked["key"].as_str().unwrap()],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("\"blocked\": true"), "{out}");
    for db in [source, middle, back] {
        db.remove().await;
    }
}

/// On PostgreSQL `keyturn backup` writes an export, and `keyturn restore` brings it into an
/// empty database (and refuses one with data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_backup_is_an_export_that_restores_into_an_empty_database() {
    let Some(server) = crate::helpers::postgres() else {
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server.clone())).await;
    let app = spawn(&db, test_http()).await;
    let product = app.product("Editor", &["pro"]).await;
    let keys = Keys::of(&app, product).await;
    let client = Client::new(&app.base, product, &keys.ed25519).unwrap();
    let mut licenses = Vec::new();
    for n in 0..4 {
        licenses.push(license_on_a_machine(&app, &client, product, n).await);
    }
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("pg.backup");
    let file = file.to_str().unwrap();
    let (ok, out, err) = on(&db, None, &["backup", file]).await;
    assert!(ok, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["kind"], "export", "{out}");
    assert_eq!(summary["rows"]["licenses"], 4, "{out}");
    app.stop().await;

    let (ok, _, err) = on(&db, None, &["restore", file]).await;
    assert!(!ok && err.contains("already holds"), "{err}");
    let target = TestDb::create(&Backend::Postgres(server)).await;
    let (ok, out, err) = on(&target, None, &["restore", file]).await;
    assert!(ok, "{out}{err}");
    let app = spawn(&target, test_http()).await;
    keys.still_sign(&app, &licenses).await;
    app.stop().await;
    db.remove().await;
    target.remove().await;
}
