//! License URLs as SendOwl-style (GET, query) and DPD-style (POST, form) stores call them.

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::json;

use crate::helpers::TestApp;

struct Called {
    status: u16,
    body: String,
    content_type: String,
}

async fn call_get(app: &TestApp, path: &str, query: &[(&str, &str)]) -> Called {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .query(query)
        .send()
        .await
        .unwrap();
    Called {
        status: r.status().as_u16(),
        content_type: r.headers()["content-type"].to_str().unwrap().to_owned(),
        body: r.text().await.unwrap(),
    }
}

async fn call_post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Called {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .form(form)
        .send()
        .await
        .unwrap();
    Called {
        status: r.status().as_u16(),
        content_type: r.headers()["content-type"].to_str().unwrap().to_owned(),
        body: r.text().await.unwrap(),
    }
}

fn keys(body: &str) -> Vec<String> {
    body.lines().map(str::to_owned).collect()
}

async fn setup(app: &TestApp, store: &str) -> (i64, String) {
    let product = app.product("Editor", &["pro"]).await;
    let plan = app
        .post("/v1/plans", json!({"product_id": product, "name": "Pro", "period_days": 365, "max_machines": 2, "features": ["pro"]}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let created = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": store, "store": store}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = created.body["path"].as_str().unwrap().to_owned();
    assert!(
        path.starts_with(&format!("/l/{}/kt_", created.body["id"])),
        "{path}"
    );
    (created.body["id"].as_i64().unwrap(), path)
}

async fn sendowl(app: &TestApp) {
    let (id, path) = setup(app, "sendowl").await;
    let sale = [
        ("order_id", "SO-1001"),
        ("buyer_name", "Ann Lee"),
        ("buyer_email", "ann@example.com"),
    ];
    let first = call_get(app, &path, &sale).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.content_type.starts_with("text/plain"));
    let key = keys(&first.body);
    assert_eq!(key.len(), 1);
    assert_eq!(key[0].len(), 23);

    let license = app
        .get(&format!("/v1/licenses/by-key/{}", key[0]))
        .await
        .body;
    assert_eq!(license["features"], json!(["pro"]));
    let customer = app
        .get(&format!("/v1/customers/{}", license["customer_id"]))
        .await
        .body;
    assert_eq!(customer["email"], "ann@example.com");
    assert_eq!(customer["name"], "Ann Lee");

    let again = call_get(app, &path, &sale).await;
    assert_eq!(again.body, first.body, "the same order gets the same key");
    let copies = call_get(
        app,
        &path,
        &[
            ("order_id", "SO-1002"),
            ("buyer_email", "bo@example.com"),
            ("quantity", "3"),
        ],
    )
    .await;
    assert_eq!(keys(&copies.body).len(), 3);
    assert_eq!(app.license_count().await, 4);

    // Wrong secret, unknown id and a malformed id all look the same.
    let wrong = call_get(app, &format!("/l/{id}/kt_wrong"), &sale).await;
    let unknown = call_get(app, &path.replace(&format!("/l/{id}/"), "/l/999/"), &sale).await;
    let garbage = call_get(app, &path.replace(&format!("/l/{id}/"), "/l/x/"), &sale).await;
    for r in [&wrong, &unknown, &garbage] {
        assert_eq!((r.status, r.body.as_str()), (404, "not found\n"));
    }
    let no_order = call_get(app, &path, &[("buyer_email", "x@example.com")]).await;
    assert_eq!(no_order.status, 422);
    assert!(no_order.body.contains("order_id"), "{}", no_order.body);
    let bad_quantity = call_get(app, &path, &[("order_id", "SO-9"), ("quantity", "0")]).await;
    assert_eq!(bad_quantity.status, 422);
    assert_eq!(app.license_count().await, 4, "refused calls issue nothing");

    // Rotation: the old URL stops working, the new one knows the old orders.
    let rotated = app
        .post(&format!("/v1/license-urls/{id}/rotate"), json!({}))
        .await;
    let new_path = rotated.body["path"].as_str().unwrap().to_owned();
    assert_ne!(new_path, path);
    assert_eq!(call_get(app, &path, &sale).await.status, 404);
    assert_eq!(call_get(app, &new_path, &sale).await.body, first.body);

    // The sale is on record like any payment.
    let payments = app.get("/v1/payments").await.body["data"].clone();
    assert_eq!(payments.as_array().unwrap().len(), 2);
    let event = app
        .get(&format!("/v1/provider-events/license_url/{id}:SO-1001"))
        .await;
    assert_eq!(event.body["status"], "applied");
    let listed = app.get("/v1/license-urls").await.body.to_string();
    assert!(
        !listed.contains(new_path.rsplit('/').next().unwrap()),
        "secrets are never listed"
    );
}
on_every_backend!(sendowl_style_calls_get_keys_as_text, sendowl);

async fn dpd(app: &TestApp) {
    let (_, path) = setup(app, "dpd").await;
    let form = [
        ("txn_id", "DPD-77"),
        ("payer_email", "cy@example.com"),
        ("name", "Cy Diaz"),
        ("quantity", "2"),
    ];
    let first = call_post(app, &path, &form).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(keys(&first.body).len(), 2);
    assert_eq!(call_post(app, &path, &form).await.body, first.body);

    // Fifty stores' retries at once: still one sale.
    let racing = join_all((0..50).map(|_| {
        call_post(
            app,
            &path,
            &[("txn_id", "DPD-78"), ("payer_email", "dee@example.com")],
        )
    }))
    .await;
    let answers: HashSet<String> = racing
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            r.body.clone()
        })
        .collect();
    assert_eq!(answers.len(), 1, "every call got the same key");
    assert_eq!(app.license_count().await, 3);
}
on_every_backend!(dpd_style_posts_are_idempotent_under_concurrency, dpd);

async fn custom_parameters(app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    let plan = app
        .post("/v1/plans", json!({"product_id": product, "name": "P"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let bad = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "x", "store": "paypal"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let bad = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": 999, "name": "x", "store": "generic"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    let created = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "shop", "store": "generic", "order_id_param": "ref"}),
        )
        .await;
    let path = created.body["path"].as_str().unwrap().to_owned();
    let r = call_get(app, &path, &[("ref", "A-1"), ("item", "2")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let other_item = call_get(app, &path, &[("ref", "A-1"), ("item", "3")]).await;
    assert_ne!(
        r.body, other_item.body,
        "each item of an order is its own key"
    );
    assert_eq!(
        call_get(app, &path, &[("ref", "A-1"), ("item", "2")])
            .await
            .body,
        r.body
    );
}
on_every_backend!(parameter_names_are_configurable, custom_parameters);

/// A license URL whose parameters collide could never read a sale right (the order id taken
/// for a quantity): refused when created, with the parameter to change.
async fn colliding_parameters(app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 365}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(
            "/v1/license-urls",
            json!({"plan_id": plan, "name": "shop", "store": "generic", "order_id_param": "quantity"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quantity"),
        "{}",
        r.body
    );
    assert_eq!(app.get("/v1/license-urls").await.body["data"], json!([]));
}
on_every_backend!(
    a_license_url_whose_parameters_collide_is_refused,
    colliding_parameters
);
