//! The paths programs call on every start keep licenses in memory and batch check-ins; these
//! tests hold them to the database: every committed change shows at once, on every node, and
//! nothing a check-in records is lost. Also the bulk import that seeds large databases.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Row};

use crate::helpers::{backends, spawn, test_http, Backend, TestApp, TestDb};

async fn validate(app: &TestApp, key: &str) -> Value {
    let r = app.public("/v1/validate", json!({"key": key})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn changes_show_at_once(app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let license = app.license(json!({"product_id": product})).await;
    let (id, key) = (
        license["id"].as_i64().unwrap(),
        license["key"].as_str().unwrap(),
    );
    for _ in 0..3 {
        assert_eq!(validate(app, key).await["code"], "VALID");
    }
    app.post(&format!("/v1/licenses/{id}/block"), json!({}))
        .await;
    assert_eq!(validate(app, key).await["code"], "BLOCKED");
    app.post(&format!("/v1/licenses/{id}/unblock"), json!({}))
        .await;
    assert_eq!(validate(app, key).await["code"], "VALID");
    let deleted = app.delete(&format!("/v1/licenses/{id}")).await;
    assert!(deleted.status < 300, "{}", deleted.body);
    assert_eq!(validate(app, key).await["code"], "NOT_FOUND");
}
on_every_backend!(a_change_shows_in_the_next_validation, changes_show_at_once);

async fn check_ins_are_written(app: TestApp, db: &TestDb) {
    let product = app.product("Editor", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 1}))
        .await;
    let key = license["key"].as_str().unwrap();
    let body = json!({"key": key, "fingerprint": "m1"});
    let first = app.public("/v1/activations", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let activated: chrono::DateTime<chrono::Utc> = first.body["activation"]["last_seen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = app.public("/v1/activations", body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["created"], false);
    let seen: chrono::DateTime<chrono::Utc> = again.body["activation"]["last_seen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seen > activated, "the reply tells the new check-in");
    // A second machine is still refused: answering known machines from memory frees no seat.
    let other = app
        .public("/v1/activations", json!({"key": key, "fingerprint": "m2"}))
        .await;
    assert_eq!(other.status, 409, "{}", other.body);
    // Shutting down writes the check-ins still waiting.
    let id = again.body["activation"]["id"].as_i64().unwrap();
    let mut conn = sqlx::AnyConnection::connect(&db.any_url()).await.unwrap();
    app.stop().await;
    let row = sqlx::query("SELECT last_seen_at FROM activations WHERE id = $1")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let stored: i64 = row.try_get("last_seen_at").unwrap();
    assert_eq!(stored, seen.timestamp_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_machines_check_in_is_written_in_a_batch() {
    sqlx::any::install_default_drivers();
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn(&db, test_http()).await;
        check_ins_are_written(app, &db).await;
        db.remove().await;
    }
}

/// Two nodes on one PostgreSQL database: what one node changes, the other's memory drops as
/// soon as PostgreSQL delivers the commit's notification, well before entries age out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_node_sees_a_change_at_once_on_postgres() {
    let Some(server) = crate::helpers::postgres() else {
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server)).await;
    let a = spawn(&db, test_http()).await;
    let b = crate::helpers::spawn_second(&db, test_http(), &a.admin).await;
    let product = a.product("Editor", &["pro"]).await;
    let license = a.license(json!({"product_id": product})).await;
    let (id, key) = (
        license["id"].as_i64().unwrap(),
        license["key"].as_str().unwrap(),
    );
    // Give node b's notification connection a moment, then let it keep the license.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(validate(&b, key).await["code"], "VALID");
    assert_eq!(validate(&b, key).await["code"], "VALID");
    a.post(&format!("/v1/licenses/{id}/block"), json!({})).await;
    let started = Instant::now();
    loop {
        if validate(&b, key).await["code"] == "BLOCKED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node b still says VALID 2 s after node a blocked the license"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop().await;
    a.stop().await;
    db.remove().await;
}

async fn imports(app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let count = || async {
        let mut n = 0;
        let mut cursor = String::new();
        loop {
            let page = app
                .get(&format!(
                    "/v1/licenses?product_id={product}&limit=500&cursor={cursor}"
                ))
                .await;
            n += page.body["data"].as_array().unwrap().len();
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return n,
            }
        }
    };
    let spec = json!({"product_id": product, "max_machines": 2, "features": ["pro"]});
    let r = app
        .post(
            "/v1/licenses/import",
            json!({"license": spec, "keys": ["OLD-KEY-0001", "old-key-0002", "  OLD-KEY-0003 "]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["imported"], 3);
    let v = validate(app, "OLD-KEY-0002").await;
    // Locked to machines, it is validated per machine: asked for none, it is not activated.
    assert_eq!(v["code"], "NOT_ACTIVATED", "{v}");
    assert_eq!(v["license"]["max_machines"], 2);
    assert_eq!(v["license"]["features"], json!(["pro"]));
    let id = v["license"]["id"].as_i64().unwrap();
    let events = app.get(&format!("/v1/licenses/{id}/events")).await;
    assert_eq!(
        events.body["data"][0]["action"], "imported",
        "{}",
        events.body
    );
    assert_eq!(count().await, 3);

    // All or none: a key taken already, or twice in one import, fails the whole import.
    let taken = app
        .post(
            "/v1/licenses/import",
            json!({"license": spec, "keys": ["NEW-1", "OLD-KEY-0001"]}),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("OLD-KEY-0001"));
    let twice = app
        .post(
            "/v1/licenses/import",
            json!({"license": spec, "keys": ["NEW-1", "new-1"]}),
        )
        .await;
    assert_eq!(twice.status, 422, "{}", twice.body);
    let quantity = app
        .post(
            "/v1/licenses/import",
            json!({"license": {"product_id": product, "quantity": 2}, "keys": ["NEW-1"]}),
        )
        .await;
    assert_eq!(quantity.status, 422, "{}", quantity.body);
    let keys: Vec<String> = (0..10_001).map(|i| format!("K-{i}")).collect();
    let too_many = app
        .post(
            "/v1/licenses/import",
            json!({"license": spec, "keys": keys}),
        )
        .await;
    assert_eq!(too_many.status, 422, "{}", too_many.body);
    assert_eq!(count().await, 3, "nothing of a refused import was kept");

    // The bulk path at its full size, in multi-row statements.
    let keys: Vec<String> = (0..10_000).map(|i| format!("BULK-{i:05}")).collect();
    let bulk = app
        .post(
            "/v1/licenses/import",
            json!({"license": spec, "keys": keys}),
        )
        .await;
    assert_eq!(bulk.status, 201, "{}", bulk.body);
    assert_eq!(bulk.body["imported"], 10_000);
    assert_eq!(count().await, 10_003);
    let last = validate(app, "BULK-09999").await;
    assert_eq!(
        last["code"], "NOT_ACTIVATED",
        "found, and locked to machines"
    );
    assert_eq!(last["license"]["key"], "BULK-09999");
}
on_every_backend!(keys_issued_elsewhere_are_imported_all_or_none, imports);
