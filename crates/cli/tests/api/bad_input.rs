use keyturn_http::HttpSettings;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{backends, spawn, TestApp, TestDb};

async fn refused_without_change(app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = app
            .http
            .post(format!("{}/v1/licenses", app.base))
            .bearer_auth(&app.admin)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body)
        }
    };
    let (status, body) = raw("{\"product_id\": ", Some("application/json")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "malformed_json");
    assert!(body["error"]["message"].is_string());
    let (status, body) = raw("{\"product_id\": \"one\"}", Some("application/json")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );
    let (status, body) = raw(
        "{\"product_id\": 1, \"colour\": \"red\"}",
        Some("application/json"),
    )
    .await;
    assert_eq!(status, 422, "unknown fields are refused");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let (status, body) = raw("{\"product_id\": 1}", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    let huge = "x".repeat(70 * 1024);
    let r = app
        .post(
            "/v1/licenses",
            json!({"product_id": product, "notes": huge}),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "payload_too_large");

    for (spec, field) in [
        (
            json!({"product_id": product, "period_days": 0}),
            "period_days",
        ),
        (
            json!({"product_id": product, "max_machines": -1}),
            "max_machines",
        ),
        (
            json!({"product_id": product, "features": ["gold"]}),
            "features",
        ),
        (json!({"product_id": product, "metadata": "x"}), "metadata"),
        (
            json!({"product_id": product, "customer_id": 4242}),
            "customer_id",
        ),
        (json!({"product_id": 4242}), "product_id"),
        (
            json!({"product_id": product, "floating_lease_seconds": 0}),
            "floating_lease_seconds",
        ),
    ] {
        let r = app.post("/v1/licenses", spec).await;
        assert_eq!(r.status, 422, "{field}: {}", r.body);
        assert_eq!(r.code(), "invalid_input");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{}",
            r.body
        );
    }

    assert_eq!(app.get("/v1/licenses/4242").await.status, 404);
    assert_eq!(app.get("/v1/licenses/4242").await.code(), "not_found");
    assert_eq!(app.get("/v1/licenses/abc").await.status, 400);
    assert_eq!(app.get("/v1/plans/4242").await.status, 404);
    assert_eq!(
        app.post("/v1/licenses/4242/block", json!({})).await.status,
        404
    );
    assert_eq!(app.get("/v1/products/4242/public-key").await.status, 404);
    assert_eq!(app.get("/v1/nowhere").await.status, 404);
    let wrong_method = app
        .call(Method::PUT, "/v1/licenses", Some(&app.admin), None)
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.code(), "method_not_allowed");
    let activation = app
        .public(
            "/v1/activations",
            json!({"key": "AAAAA-AAAAA-AAAAA-AAAAA", "fingerprint": "m"}),
        )
        .await;
    assert_eq!(activation.status, 404);
    let empty = app
        .public("/v1/activations", json!({"key": "  ", "fingerprint": "m"}))
        .await;
    assert_eq!(empty.status, 422);
    let no_fp = app
        .public("/v1/activations", json!({"key": "AAAAA-AAAAA-AAAAA-AAAAA"}))
        .await;
    assert_eq!(no_fp.status, 422);

    assert_eq!(
        app.license_count().await,
        0,
        "nothing was created by any refused request"
    );
    assert_eq!(
        app.get("/v1/products").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
on_every_backend!(
    bad_input_gets_a_clear_error_and_changes_nothing,
    refused_without_change
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licensee_endpoints_are_rate_limited_per_ip() {
    let backend = backends().remove(0);
    let db = TestDb::create(&backend).await;
    let app = spawn(
        &db,
        HttpSettings {
            rate_limit_per_minute: 60,
            rate_limit_burst: 3,
            ..HttpSettings::default()
        },
    )
    .await;
    let product = app.product("Editor", &[]).await;
    let key = app.license(json!({"product_id": product})).await["key"].clone();
    for _ in 0..2 {
        assert_eq!(
            app.public("/v1/validate", json!({"key": key})).await.status,
            200
        );
    }
    assert_eq!(
        app.public("/v1/activations", json!({"key": key, "fingerprint": "m"}))
            .await
            .status,
        201
    );
    let limited = app.public("/v1/validate", json!({"key": key})).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    for _ in 0..10 {
        assert_eq!(
            app.get("/v1/licenses").await.status,
            200,
            "the admin API is not limited"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.public("/v1/validate", json!({"key": key})).await.status,
        200,
        "the bucket refills"
    );
    app.stop().await;
    db.remove().await;
}
