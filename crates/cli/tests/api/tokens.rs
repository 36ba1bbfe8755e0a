use reqwest::Method;
use serde_json::json;
use sqlx::Row;

use crate::helpers::{spawn, test_http, TestApp, TestDb};

async fn scoped_tokens(app: &TestApp) {
    let editor = app.product("Editor", &[]).await;
    let viewer = app.product("Viewer", &[]).await;
    let editor_license = app.license(json!({"product_id": editor})).await;
    let viewer_license = app.license(json!({"product_id": viewer})).await;

    let reader = app
        .post(
            "/v1/tokens",
            json!({"name": "support", "permissions": ["licenses:read"]}),
        )
        .await;
    assert_eq!(reader.status, 201, "{}", reader.body);
    let reader_token = reader.body["token"].as_str().unwrap().to_owned();
    assert!(reader_token.starts_with("kt_"));
    let read = app
        .call(
            Method::GET,
            &format!("/v1/licenses/{}", editor_license["id"]),
            Some(&reader_token),
            None,
        )
        .await;
    assert_eq!(read.status, 200);
    let write = app
        .call(
            Method::POST,
            "/v1/licenses",
            Some(&reader_token),
            Some(json!({"product_id": editor})),
        )
        .await;
    assert_eq!(write.status, 403);
    assert_eq!(write.code(), "forbidden");
    assert!(write.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("licenses:write"));

    let scoped = app
        .post(
            "/v1/tokens",
            json!({"name": "editor shop", "permissions": ["licenses:read", "licenses:write", "products:read"], "product_id": editor}),
        )
        .await;
    let scoped_token = scoped.body["token"].as_str().unwrap().to_owned();
    let own = app
        .call(
            Method::POST,
            "/v1/licenses",
            Some(&scoped_token),
            Some(json!({"product_id": editor})),
        )
        .await;
    assert_eq!(own.status, 201);
    let foreign = app
        .call(
            Method::POST,
            "/v1/licenses",
            Some(&scoped_token),
            Some(json!({"product_id": viewer})),
        )
        .await;
    assert_eq!(foreign.status, 403);
    let foreign_read = app
        .call(
            Method::GET,
            &format!("/v1/licenses/{}", viewer_license["id"]),
            Some(&scoped_token),
            None,
        )
        .await;
    assert_eq!(
        foreign_read.status, 404,
        "another product's license looks like one that does not exist"
    );
    let listed = app
        .call(Method::GET, "/v1/licenses", Some(&scoped_token), None)
        .await;
    assert!(listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["product_id"] == editor));
    let products = app
        .call(Method::GET, "/v1/products", Some(&scoped_token), None)
        .await;
    assert_eq!(products.body["data"].as_array().unwrap().len(), 1);
    let mint = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(&scoped_token),
            Some(json!({"name": "x", "permissions": ["admin"]})),
        )
        .await;
    assert_eq!(mint.status, 403, "a restricted token cannot mint tokens");

    let unknown = app
        .call(Method::GET, "/v1/licenses", Some("kt_nonsense"), None)
        .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        app.call(Method::GET, "/v1/licenses", None, None)
            .await
            .status,
        401
    );

    let all = app.get("/v1/tokens").await;
    let text = all.body.to_string();
    assert_eq!(all.body["data"].as_array().unwrap().len(), 3);
    assert!(
        !text.contains(&reader_token),
        "listings never show a secret"
    );

    let id = reader.body["id"].as_i64().unwrap();
    let revoked = app.delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.body["revoked"].is_string());
    let after = app
        .call(
            Method::GET,
            &format!("/v1/licenses/{}", editor_license["id"]),
            Some(&reader_token),
            None,
        )
        .await;
    assert_eq!(after.status, 401);
    assert_eq!(app.delete("/v1/tokens/99999").await.status, 404);
    let bad_permission = app
        .post(
            "/v1/tokens",
            json!({"name": "x", "permissions": ["licenses:fly"]}),
        )
        .await;
    assert_eq!(bad_permission.status, 422);
}
on_every_backend!(tokens_are_scoped_by_permission_and_product, scoped_tokens);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_stored_only_as_hashes() {
    for backend in crate::helpers::backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn(&db, test_http()).await;
        let created = app
            .post(
                "/v1/tokens",
                json!({"name": "ci", "permissions": ["admin"]}),
            )
            .await;
        let secret = created.body["token"].as_str().unwrap().to_owned();
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
        let rows = sqlx::query("SELECT token_hash FROM access_tokens")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            let hash: String = row.get("token_hash");
            assert_eq!(hash.len(), 64);
            assert!(!hash.contains(&secret) && !hash.contains(&app.admin));
        }
        pool.close().await;
        app.stop().await;
        db.remove().await;
    }
}
