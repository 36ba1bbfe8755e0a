//! The machine limit holds under any concurrency, on one server and on several sharing a database.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{backends, spawn, test_http, Backend, ServerProcess, TestApp, TestDb};

const ATTEMPTS: usize = 100;
const LIMIT: i64 = 5;

/// Fires `ATTEMPTS` activations of one key from distinct machines at once, spread over `bases`.
async fn race(http: &reqwest::Client, bases: &[String], key: &str) -> (usize, usize) {
    let results = join_all((0..ATTEMPTS).map(|i| {
        let url = format!("{}/v1/activations", bases[i % bases.len()]);
        let body = json!({"key": key, "fingerprint": format!("machine-{i}")});
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    }))
    .await;
    let ok = results.iter().filter(|s| **s == 201).count();
    let refused = results.iter().filter(|s| **s == 409).count();
    assert_eq!(
        ok + refused,
        ATTEMPTS,
        "every attempt either succeeds or is refused: {results:?}"
    );
    (ok, refused)
}

async fn limited_license(app: &TestApp) -> (i64, String) {
    let product = app.product("Editor", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": LIMIT}))
        .await;
    (
        license["id"].as_i64().unwrap(),
        license["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_activations_never_exceed_the_limit() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn(&db, test_http()).await;
        let (id, key) = limited_license(&app).await;
        let (ok, _) = race(&app.http, std::slice::from_ref(&app.base), &key).await;
        assert_eq!(ok, LIMIT as usize, "{backend:?}");
        let live = app.get(&format!("/v1/licenses/{id}/activations")).await;
        assert_eq!(live.body["data"].as_array().unwrap().len(), LIMIT as usize);
        app.stop().await;
        db.remove().await;
    }
}

async fn start_process(database_url: &str, log: &std::path::Path) -> ServerProcess {
    ServerProcess::start(
        &["--rate-limit-per-minute", "0"],
        &[("KEYTURN_DATABASE_URL", database_url)],
        log,
    )
    .await
}

/// Two server processes on one PostgreSQL database: the limit is enforced by the database, not
/// by any one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_share_one_limit_on_postgres() {
    let Some(server) = crate::helpers::postgres() else {
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server)).await;
    let url = db.url.clone().unwrap();
    // The in-process app migrates the database and provides the admin token.
    let app = spawn(&db, test_http()).await;
    let (id, key) = limited_license(&app).await;
    let a = start_process(&url, &db.dir.path().join("a.log")).await;
    let b = start_process(&url, &db.dir.path().join("b.log")).await;
    let (ok, _) = race(&app.http, &[a.base.clone(), b.base.clone()], &key).await;
    assert_eq!(ok, LIMIT as usize);
    let live = app.get(&format!("/v1/licenses/{id}/activations")).await;
    assert_eq!(live.body["data"].as_array().unwrap().len(), LIMIT as usize);
    app.stop().await;
    drop((a, b));
    db.remove().await;
}
