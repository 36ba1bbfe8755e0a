use serde_json::json;

use crate::helpers::TestApp;

async fn products_plans_and_customers(app: &TestApp) {
    let health = app.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");

    let product = app.product("Editor", &["Pro", "export", "team"]).await;
    let shown = app.get(&format!("/v1/products/{product}")).await;
    assert_eq!(shown.body["features"], json!(["pro", "export", "team"]));

    let renamed = app
        .patch(
            &format!("/v1/products/{product}"),
            json!({"name": "Editor 2", "features": ["pro", "export", "team", "cloud"]}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["name"], "Editor 2");
    assert_eq!(renamed.body["features"][3], "cloud");

    let listed = app.get("/v1/products").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);

    let key = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/products/{product}/public-key"),
            None,
            None,
        )
        .await;
    assert_eq!(key.status, 200);
    assert_eq!(key.body["algorithm"], "ed25519");
    assert!(key.body["pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    keyturn_core::PublicKey::from_base64(key.body["public_key"].as_str().unwrap()).unwrap();

    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro yearly", "period_days": 365,
                   "max_machines": 3, "features": ["pro"], "grace_days": 7}),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    assert_eq!(plan.body["grace_days"], 7);
    assert_eq!(plan.body["trial"], false);
    let plan_id = plan.body["id"].as_i64().unwrap();
    let defaults = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Perpetual"}),
        )
        .await;
    assert_eq!(defaults.body["period_days"], json!(null));
    assert_eq!(defaults.body["grace_days"], 5, "grace days default to 5");
    assert_eq!(
        app.get(&format!("/v1/plans/{plan_id}")).await.body["name"],
        "Pro yearly"
    );
    let plans = app.get(&format!("/v1/plans?product_id={product}")).await;
    assert_eq!(plans.body["data"].as_array().unwrap().len(), 2);

    let bad_feature = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "X", "features": ["nope"]}),
        )
        .await;
    assert_eq!(bad_feature.status, 422);
    let trial_without_period = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "T", "trial": true}),
        )
        .await;
    assert_eq!(trial_without_period.status, 422);

    let customer = app
        .post(
            "/v1/customers",
            json!({"name": "Ann Lee", "email": "Ann@Example.com", "company": "Acme"}),
        )
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    assert_eq!(customer.body["email"], "ann@example.com");
    let id = customer.body["id"].as_i64().unwrap();
    let cleared = app
        .patch(&format!("/v1/customers/{id}"), json!({"company": null}))
        .await;
    assert_eq!(cleared.body["company"], json!(null));
    assert_eq!(
        cleared.body["email"], "ann@example.com",
        "absent fields stay"
    );
    let found = app.get("/v1/customers?email=ANN@example.com").await;
    assert_eq!(found.body["data"][0]["id"], id);
    let bad = app
        .post(
            "/v1/customers",
            json!({"name": "B", "email": "not-an-email"}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.code(), "invalid_input");
}
on_every_backend!(
    products_plans_and_customers_round_trip,
    products_plans_and_customers
);
