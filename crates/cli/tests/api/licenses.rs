use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::TestApp;

fn expires(license: &Value) -> DateTime<Utc> {
    license["expires"].as_str().unwrap().parse().unwrap()
}

async fn issuing(app: &TestApp) {
    let product = app.product("Editor", &["pro", "export"]).await;
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 30, "max_machines": 2, "features": ["pro"]}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();

    let from_plan = app.license(json!({"plan_id": plan})).await;
    let key = from_plan["key"].as_str().unwrap();
    assert_eq!(key.len(), 23);
    assert!(key
        .split('-')
        .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_uppercase())));
    assert_eq!(from_plan["product_id"], product);
    assert_eq!(from_plan["features"], json!(["pro"]));
    assert_eq!(from_plan["max_machines"], 2);
    assert_eq!(from_plan["blocked"], false);
    let days = (expires(&from_plan) - Utc::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{days} hours");

    let explicit = app
        .license(json!({"product_id": product, "features": ["export"], "max_machines": 0, "notes": "gift", "metadata": {"order": "A-1"}}))
        .await;
    assert_eq!(
        explicit["expires"],
        json!(null),
        "no period means perpetual"
    );
    assert_eq!(explicit["metadata"]["order"], "A-1");

    let overridden = app
        .license(json!({"plan_id": plan, "max_machines": 9}))
        .await;
    assert_eq!(overridden["max_machines"], 9);
    assert_eq!(overridden["features"], json!(["pro"]));

    let batch = app
        .post("/v1/licenses", json!({"plan_id": plan, "quantity": 3}))
        .await;
    assert_eq!(batch.status, 201);
    let keys: std::collections::HashSet<&str> = batch.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3);

    let by_id = app.get(&format!("/v1/licenses/{}", from_plan["id"])).await;
    assert_eq!(by_id.body["key"], key);
    let by_key = app
        .get(&format!("/v1/licenses/by-key/{}", key.to_lowercase()))
        .await;
    assert_eq!(by_key.status, 200, "keys are found however they are typed");
    assert_eq!(by_key.body["id"], from_plan["id"]);

    let mismatch = app
        .post(
            "/v1/licenses",
            json!({"plan_id": plan, "product_id": product + 100}),
        )
        .await;
    assert_eq!(mismatch.status, 422);
    let neither = app.post("/v1/licenses", json!({"notes": "x"})).await;
    assert_eq!(neither.status, 422);
    let too_many = app
        .post("/v1/licenses", json!({"plan_id": plan, "quantity": 1001}))
        .await;
    assert_eq!(too_many.status, 422);
    assert_eq!(app.license_count().await, 6);
}
on_every_backend!(licenses_are_issued_from_plans_and_fields, issuing);

async fn listing(app: &TestApp) {
    let editor = app.product("Editor", &[]).await;
    let viewer = app.product("Viewer", &[]).await;
    let ann = app
        .post(
            "/v1/customers",
            json!({"name": "Ann", "email": "ann@example.com"}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    for _ in 0..5 {
        app.license(json!({"product_id": editor, "period_days": 10}))
            .await;
    }
    let anns = app
        .license(json!({"product_id": viewer, "customer_id": ann, "period_days": 100}))
        .await;
    let blocked = app
        .license(json!({"product_id": viewer, "blocked": true}))
        .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/licenses?product_id={editor}&limit=2&cursor={c}"),
            None => format!("/v1/licenses?product_id={editor}&limit=2"),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for l in page.body["data"].as_array().unwrap() {
            assert_eq!(l["product_id"], editor);
            seen.push(l["id"].as_i64().unwrap());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages neither repeat nor skip");

    let by_email = app.get("/v1/licenses?email=ann@example.com").await;
    assert_eq!(by_email.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_email.body["data"][0]["id"], anns["id"]);
    let by_customer = app.get(&format!("/v1/licenses?customer_id={ann}")).await;
    assert_eq!(by_customer.body["data"][0]["id"], anns["id"]);
    let only_blocked = app.get("/v1/licenses?blocked=true").await;
    assert_eq!(only_blocked.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(only_blocked.body["data"][0]["id"], blocked["id"]);
    let soon = (Utc::now() + Duration::days(20)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expiring = app
        .get(&format!("/v1/licenses?expires_before={soon}"))
        .await;
    assert_eq!(expiring.status, 200, "{}", expiring.body);
    assert_eq!(expiring.body["data"].as_array().unwrap().len(), 5);
    let bad_cursor = app.get("/v1/licenses?cursor=zzz").await;
    assert_eq!(bad_cursor.status, 422);
}
on_every_backend!(licenses_are_listed_with_filters_and_cursors, listing);

async fn changes_are_audited(app: &TestApp) {
    let product = app.product("Editor", &["pro", "export"]).await;
    let customer = app.post("/v1/customers", json!({"name": "Bo"})).await.body["id"]
        .as_i64()
        .unwrap();
    let license = app
        .license(json!({"product_id": product, "period_days": 10, "features": ["pro"]}))
        .await;
    let id = license["id"].as_i64().unwrap();
    let path = |s: &str| format!("/v1/licenses/{id}{s}");

    let extended = app.post(&path("/extend"), json!({"days": 5})).await;
    assert_eq!(extended.status, 200, "{}", extended.body);
    assert_eq!(
        expires(&extended.body) - expires(&license),
        Duration::days(5)
    );
    let target = Utc::now() + Duration::days(400);
    let until = app.post(&path("/extend"), json!({"until": target})).await;
    assert_eq!(expires(&until.body).timestamp(), target.timestamp());
    let shorter = app
        .post(&path("/extend"), json!({"until": Utc::now()}))
        .await;
    assert_eq!(shorter.status, 422, "extend never shortens");
    let both = app
        .post(&path("/extend"), json!({"days": 1, "until": target}))
        .await;
    assert_eq!(both.status, 422);

    assert_eq!(
        app.post(&path("/block"), json!({})).await.body["blocked"],
        true
    );
    assert_eq!(
        app.post(&path("/unblock"), json!({})).await.body["blocked"],
        false
    );

    let added = app
        .post(&path("/features"), json!({"feature": "export"}))
        .await;
    assert_eq!(added.body["features"], json!(["pro", "export"]));
    let unknown = app
        .post(&path("/features"), json!({"feature": "nope"}))
        .await;
    assert_eq!(unknown.status, 422);
    let removed = app.delete(&path("/features/pro")).await;
    assert_eq!(removed.body["features"], json!(["export"]));
    assert_eq!(app.delete(&path("/features/pro")).await.status, 404);

    let patched = app
        .patch(&path(""), json!({"max_machines": 4, "notes": "vip", "metadata": {"seat": 1}, "customer_id": customer}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["max_machines"], 4);
    assert_eq!(patched.body["notes"], "vip");
    assert_eq!(patched.body["customer_id"], customer);
    let detached = app
        .patch(&path(""), json!({"customer_id": null, "expires": null}))
        .await;
    assert_eq!(detached.body["customer_id"], json!(null));
    assert_eq!(detached.body["expires"], json!(null));
    assert_eq!(
        app.patch(&path(""), json!({"customer_id": 999_999}))
            .await
            .status,
        422
    );
    assert_eq!(
        app.patch(&path(""), json!({"metadata": [1]})).await.status,
        422
    );

    let events = app.get(&path("/events")).await;
    assert_eq!(events.status, 200);
    let actions: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "created",
            "extended",
            "extended",
            "blocked",
            "unblocked",
            "feature_added",
            "feature_removed",
            "updated",
            "updated"
        ]
    );
    let first = &events.body["data"][0];
    assert!(first["actor"].as_str().unwrap().starts_with("token:"));
    let update = &events.body["data"][7]["details"]["changes"];
    assert_eq!(update["max_machines"]["to"], 4);
    assert_eq!(update["notes"]["from"], "");

    assert_eq!(app.delete(&path("")).await.status, 204);
    assert_eq!(app.get(&path("")).await.status, 404);
    let after = app.get(&path("/events")).await;
    let last = after.body["data"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["action"], "deleted",
        "the audit log outlives the license"
    );
    assert_eq!(app.delete(&path("")).await.status, 404);
}
on_every_backend!(
    every_license_change_is_in_the_audit_log,
    changes_are_audited
);
