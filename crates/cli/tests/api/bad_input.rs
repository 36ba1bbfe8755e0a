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

/// Gumroad pings are accepted on this secret path only.
const GUMROAD: &str = "gumroad-ping-secret-for-bad-input";

async fn gumroad() -> keyturn_providers::Providers {
    keyturn_providers::Providers {
        stripe: crate::stripe::providers().await.stripe,
        stores: keyturn_providers::StoreSecrets {
            gumroad: Some(GUMROAD.into()),
            tolerance: std::time::Duration::from_secs(300),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A request sent as raw bytes, so a test controls exactly what reaches the server.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    token: bool,
) -> crate::helpers::Resp {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if token {
        req = req.bearer_auth(&app.admin);
    }
    let response = req.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap().to_vec();
    crate::helpers::Resp {
        status,
        body: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
        raw,
        headers,
    }
}

/// NUL and other control characters, wherever text enters: refused as bad input on both
/// databases (PostgreSQL cannot store NUL at all), with nothing stored; tab and line breaks
/// stay allowed in free text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_wherever_text_enters() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app =
            crate::helpers::spawn_with(&db, crate::helpers::test_http(), gumroad().await).await;
        let product = app.product("Editor", &["pro"]).await;
        let plan = app
            .post(
                "/v1/plans",
                json!({"product_id": product, "name": "Pro", "period_days": 30,
                       "store_product_ids": ["gumroad:gum_pro"]}),
            )
            .await;
        assert_eq!(plan.status, 201, "{}", plan.body);
        let plan = plan.body["id"].as_i64().unwrap();
        let license = app.license(json!({"product_id": product})).await;
        let (id, key) = (
            license["id"].as_i64().unwrap(),
            license["key"].as_str().unwrap().to_owned(),
        );
        let url = app
            .post(
                "/v1/license-urls",
                json!({"plan_id": plan, "name": "shop", "store": "generic"}),
            )
            .await;
        assert_eq!(url.status, 201, "{}", url.body);
        let store_path = url.body["path"].as_str().unwrap().to_owned();
        let cl_token = app
            .post("/v1/tokens", json!({"name": "cl", "permissions": ["cryptolens:activate", "cryptolens:addcustomer", "cryptolens:changenotes"]}))
            .await
            .body["token"]
            .as_str()
            .unwrap()
            .to_owned();

        const JSON: Option<&str> = Some("application/json");
        const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
        let native: Vec<(Method, String, Option<&str>, String, bool)> = vec![
            (
                Method::POST,
                "/v1/customers".into(),
                JSON,
                r#"{"name":"Ann","email":"ann\u0000@example.com"}"#.into(),
                true,
            ),
            (
                Method::POST,
                "/v1/customers".into(),
                JSON,
                r#"{"name":"Ann","company":"Acme\u0000"}"#.into(),
                true,
            ),
            (
                Method::POST,
                "/v1/licenses".into(),
                JSON,
                format!(r#"{{"product_id":{product},"notes":"a\u0000b"}}"#),
                true,
            ),
            (
                Method::POST,
                "/v1/licenses".into(),
                JSON,
                format!(r#"{{"product_id":{product},"notes":"bell\u0007"}}"#),
                true,
            ),
            (
                Method::POST,
                "/v1/licenses".into(),
                JSON,
                format!(r#"{{"product_id":{product},"metadata":{{"k":"v\u0000"}}}}"#),
                true,
            ),
            (
                Method::POST,
                "/v1/licenses".into(),
                JSON,
                format!(r#"{{"product_id":{product},"metadata":{{"k\u0000":1}}}}"#),
                true,
            ),
            (
                Method::PATCH,
                format!("/v1/licenses/{id}"),
                JSON,
                r#"{"notes":"\u001b[31mred"}"#.into(),
                true,
            ),
            (
                Method::POST,
                "/v1/products".into(),
                JSON,
                "{\"name\":\"C1\u{85}\"}".into(),
                true,
            ),
            (
                Method::GET,
                "/v1/licenses?email=ann%00@example.com".into(),
                None,
                String::new(),
                true,
            ),
            (
                Method::GET,
                "/v1/customers?email=ann%00@example.com".into(),
                None,
                String::new(),
                true,
            ),
            (
                Method::GET,
                format!("/v1/licenses/by-key/{key}%00"),
                None,
                String::new(),
                true,
            ),
            (
                Method::GET,
                "/v1/provider-events/stripe/evt%00".into(),
                None,
                String::new(),
                true,
            ),
            (
                Method::GET,
                "/v1/subscriptions/stripe/sub%00".into(),
                None,
                String::new(),
                true,
            ),
            (
                Method::POST,
                "/v1/validate".into(),
                JSON,
                format!(r#"{{"key":"{key}","nonce":"n\u0000"}}"#),
                false,
            ),
            (
                Method::POST,
                "/v1/activations".into(),
                JSON,
                format!(r#"{{"key":"{key}","fingerprint":"m1","name":"pc\u0000"}}"#),
                false,
            ),
            (
                Method::POST,
                format!("/webhooks/gumroad/{GUMROAD}"),
                FORM,
                format!(
                    "sale_id=S1&product_id=gum_pro&email=cy%00@example.com&sale_timestamp={}",
                    chrono::Utc::now().to_rfc3339().replace('+', "%2B")
                ),
                false,
            ),
        ];
        for (method, path, ct, body, token) in native {
            let r = send(&app, method.clone(), &path, ct, &body, token).await;
            assert_eq!(
                r.status,
                422,
                "{method} {path} {body}: {}",
                String::from_utf8_lossy(&r.raw)
            );
            assert_eq!(r.code(), "invalid_input", "{method} {path}: {}", r.body);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("control character"),
                "{method} {path}: {}",
                r.body
            );
        }

        // A signed JSON event is refused the same way.
        let event = json!({"id": "evt_nul", "object": "event", "type": "customer.created",
            "created": chrono::Utc::now().timestamp(),
            "data": {"object": {"id": "cus_nul", "object": "customer", "email": "ann\u{0}@example.com"}}})
        .to_string();
        let r = crate::stripe::deliver(&app, &event).await;
        assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.raw));
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("data.object.email"),
            "{}",
            r.body
        );

        // Stores read plain text.
        let sale = send(
            &app,
            Method::GET,
            &format!("{store_path}?order_id=O1&email=ann%00@example.com"),
            None,
            "",
            false,
        )
        .await;
        assert_eq!(sale.status, 422, "{}", String::from_utf8_lossy(&sale.raw));
        let sale = send(
            &app,
            Method::POST,
            &store_path,
            FORM,
            "order_id=O2&name=Ann%07",
            false,
        )
        .await;
        assert_eq!(sale.status, 422, "{}", String::from_utf8_lossy(&sale.raw));

        // The Cryptolens API answers in its own shape.
        for (path, body) in [
            (format!("/api/key/Activate?token={cl_token}&ProductId={product}&Key={key}&MachineCode=m1&FriendlyName=pc%00"), String::new()),
            ("/api/customer/AddCustomer".to_owned(), format!("token={cl_token}&Name=Ann&Email=ann%00@example.com")),
            ("/api/key/ChangeNotes".to_owned(), format!("token={cl_token}&ProductId={product}&Key={key}&Notes=x%1B")),
        ] {
            let r = send(&app, Method::POST, &path, FORM, &body, false).await;
            assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.raw));
            assert_eq!(r.body["result"], 1, "{path}: {}", r.body);
            assert_eq!(r.body["message"], "The input parameters were incorrect.");
        }

        assert_eq!(app.license_count().await, 1, "no license was created");
        let unchanged = app.get(&format!("/v1/licenses/{id}")).await;
        assert_eq!(unchanged.body["notes"], "", "{}", unchanged.body);
        assert_eq!(
            app.get(&format!("/v1/licenses/{id}/activations"))
                .await
                .body["data"],
            json!([])
        );
        assert_eq!(app.get("/v1/customers").await.body["data"], json!([]));
        assert_eq!(app.get("/v1/provider-events").await.body["data"], json!([]));

        // Free text keeps its tabs and line breaks.
        let notes = app
            .post(
                "/v1/licenses",
                json!({"product_id": product, "notes": "line one\r\nline two\tend"}),
            )
            .await;
        assert_eq!(notes.status, 201, "{}", notes.body);
        assert_eq!(notes.body["notes"], "line one\r\nline two\tend");
        app.stop().await;
        db.remove().await;
    }
}

/// Date arithmetic at the edge of what a date can hold: refused as bad input, never a panic
/// (which would drop the connection without an answer).
async fn dates_at_the_end_of_time(app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    let far = app
        .post(
            "/v1/licenses",
            json!({"product_id": product, "expires": "+262142-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(far.status, 422, "{}", far.body);
    assert!(
        far.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("expires"),
        "{}",
        far.body
    );

    let late = app
        .license(json!({"product_id": product, "expires": "9999-12-01T00:00:00Z"}))
        .await;
    let id = late["id"].as_i64().unwrap();
    let key = late["key"].as_str().unwrap();
    let extended = app
        .post(&format!("/v1/licenses/{id}/extend"), json!({"days": 36500}))
        .await;
    assert_eq!(extended.status, 422, "{}", extended.body);
    assert!(
        extended.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("days"),
        "{}",
        extended.body
    );
    let until = app
        .post(
            &format!("/v1/licenses/{id}/extend"),
            json!({"until": "+100000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(until.status, 422, "{}", until.body);
    let patched = app
        .patch(
            &format!("/v1/licenses/{id}"),
            json!({"expires": "+262142-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(patched.status, 422, "{}", patched.body);

    let token = app
        .post(
            "/v1/tokens",
            json!({"name": "cl", "permissions": ["cryptolens:extendlicense"]}),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .http
        .post(format!("{}/api/key/ExtendLicense", app.base))
        .form(&[
            ("token", token.as_str()),
            ("ProductId", &product.to_string()),
            ("Key", key),
            ("NoOfDays", "36500"),
        ])
        .send()
        .await
        .expect("the server answers");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["result"], 1, "{body}");
    assert_eq!(
        app.get(&format!("/v1/licenses/{id}")).await.body["expires"],
        "9999-12-01T00:00:00Z",
        "nothing changed"
    );
}
on_every_backend!(
    dates_at_the_end_of_time_are_refused_not_a_crash,
    dates_at_the_end_of_time
);

/// A provider reporting a period that ends at the last second a date can hold: the event is
/// recorded as failed with the reason, answered with an error, and the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_period_at_the_end_of_time_fails_the_event_not_the_server() {
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = crate::helpers::spawn_with(
            &db,
            crate::helpers::test_http(),
            crate::stripe::providers().await,
        )
        .await;
        let mut world = crate::stripe::world(&app, chrono::Utc::now().timestamp()).await;
        let last_second = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp();
        world.vars.insert("P1_END", last_second.to_string());
        let event = crate::stripe::fixture("03_invoice_paid_create", &world.vars);
        for _ in 0..2 {
            let r = crate::stripe::deliver(&app, &event).await;
            assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.raw));
        }
        let recorded = app
            .get("/v1/provider-events/stripe/evt_invoice_paid_create")
            .await;
        assert_eq!(recorded.status, 200, "{}", recorded.body);
        assert_eq!(recorded.body["status"], "failed", "{}", recorded.body);
        assert_eq!(app.license_count().await, 0);
        assert_eq!(
            app.get("/health").await.status,
            200,
            "the server is still up"
        );
        app.stop().await;
        db.remove().await;
    }
}

/// Where a date is meant, a plain day is as good as a full RFC 3339 time; a date that is
/// neither is refused with the field's name and the forms it takes, in plain words.
async fn dates_in_either_form(app: &TestApp) {
    let product = app.product("Editor", &[]).await;
    let license = app
        .license(json!({"product_id": product, "expires": "2031-05-01"}))
        .await;
    assert_eq!(license["expires"], "2031-05-01T00:00:00Z");
    let id = license["id"].as_i64().unwrap();
    let extended = app
        .post(
            &format!("/v1/licenses/{id}/extend"),
            json!({"until": "2032-01-31"}),
        )
        .await;
    assert_eq!(extended.status, 200, "{}", extended.body);
    assert_eq!(extended.body["expires"], "2032-01-31T00:00:00Z");
    let patched = app
        .patch(
            &format!("/v1/licenses/{id}"),
            json!({"expires": "2033-02-01"}),
        )
        .await;
    assert_eq!(
        patched.body["expires"], "2033-02-01T00:00:00Z",
        "{}",
        patched.body
    );
    let listed = app.get("/v1/licenses?expires_before=2034-01-01").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    let token = app
        .post(
            "/v1/tokens",
            json!({"name": "t", "permissions": ["licenses:read"], "expires": "2030-01-01"}),
        )
        .await;
    assert_eq!(token.status, 201, "{}", token.body);

    for (path, body, field) in [
        (
            "/v1/licenses".to_owned(),
            json!({"product_id": product, "expires": "tomorrow"}),
            "expires",
        ),
        (
            "/v1/licenses".to_owned(),
            json!({"product_id": product, "expires": "2031-02-30"}),
            "expires",
        ),
        (
            format!("/v1/licenses/{id}/extend"),
            json!({"until": "31/12/2031"}),
            "until",
        ),
        (
            "/v1/tokens".to_owned(),
            json!({"name": "t", "permissions": ["admin"], "expires": 1234}),
            "expires",
        ),
    ] {
        let r = app.post(&path, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
        assert!(
            message.contains("YYYY-MM-DD") && message.contains("RFC 3339"),
            "{message}"
        );
        for internal in [
            "Failed to deserialize",
            "line 1",
            "column",
            "premature",
            "DateTime",
            "invalid type",
        ] {
            assert!(!message.contains(internal), "{internal} in {message:?}");
        }
    }
    let r = app.get("/v1/licenses?expires_before=soon").await;
    assert!(matches!(r.status, 400 | 422), "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("expires_before") && message.contains("YYYY-MM-DD"),
        "{message}"
    );

    let unknown = app
        .post(
            "/v1/tokens",
            json!({"name": "t", "permissions": ["licenses:read", "licenses:fly"]}),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    let message = unknown.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("permissions") && message.contains("\"licenses:fly\""),
        "{message}"
    );
    assert!(
        message.len() < 400,
        "a brief list, not every permission: {message}"
    );
    assert!(
        !message.contains("cryptolens:getcustomerlicenses"),
        "{message}"
    );
    for internal in ["Failed to deserialize", "line 1", "column"] {
        assert!(!message.contains(internal), "{internal} in {message:?}");
    }
}
on_every_backend!(
    dates_take_a_day_or_a_time_and_errors_say_which,
    dates_in_either_form
);

async fn validate_from(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> u16 {
    let mut req = app
        .http
        .post(format!("{}/v1/validate", app.base))
        .json(&json!({"key": key}));
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Behind one trusted proxy, the client is the address that proxy appended (the rightmost);
/// what the client wrote further left cannot buy it a fresh rate-limit bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_read_only_through_the_trusted_hops() {
    let backend = backends().remove(0);
    let db = TestDb::create(&backend).await;
    let app = spawn(
        &db,
        HttpSettings {
            rate_limit_per_minute: 1,
            rate_limit_burst: 2,
            trusted_proxy_hops: 1,
            ..HttpSettings::default()
        },
    )
    .await;
    let product = app.product("Editor", &[]).await;
    let key = app.license(json!({"product_id": product})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The proxy appends the address it saw (203.0.113.7) to whatever the client sent.
    for spoofed in ["198.51.100.1, 203.0.113.7", "198.51.100.2, 203.0.113.7"] {
        assert_eq!(validate_from(&app, &key, Some(spoofed)).await, 200);
    }
    assert_eq!(
        validate_from(&app, &key, Some("198.51.100.3, 203.0.113.7")).await,
        429,
        "a made-up left part does not make a new client"
    );
    assert_eq!(
        validate_from(&app, &key, Some("203.0.113.8")).await,
        200,
        "another client behind the proxy has its own bucket"
    );
    app.stop().await;
    db.remove().await;
}

/// Every entry point anyone can call without a token is rate-limited per client: license
/// URLs, payment forms, webhooks, and every Cryptolens API method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_public_entry_point_is_rate_limited() {
    let backend = backends().remove(0);
    let db = TestDb::create(&backend).await;
    let app = spawn(
        &db,
        HttpSettings {
            rate_limit_per_minute: 1,
            rate_limit_burst: 2,
            trusted_proxy_hops: 1,
            ..HttpSettings::default()
        },
    )
    .await;
    let calls: [(Method, &str); 7] = [
        (Method::GET, "/l/1/kt_not_a_secret"),
        (Method::GET, "/buy/no-such-form"),
        (Method::POST, "/webhooks/paddle"),
        (Method::POST, "/webhooks/gumroad/not-the-secret"),
        (Method::POST, "/api/product/GetProducts"),
        (Method::POST, "/api/key/CreateKey"),
        (Method::POST, "/api/no/SuchMethod"),
    ];
    for (i, (method, path)) in calls.iter().enumerate() {
        let client = format!("192.0.2.{}", i + 1);
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let r = app
                .http
                .request(method.clone(), format!("{}{path}", app.base))
                .header("x-forwarded-for", &client)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("token=kt_wrong")
                .send()
                .await
                .unwrap();
            if path.starts_with("/api/") {
                // The Cryptolens API answers its refusal with HTTP 200, as all its errors,
                // and the wait; counted here as the 429 it stands for.
                assert_eq!(r.status(), 200, "{path}");
                let waits = r.headers().contains_key("retry-after");
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["result"], 1, "{path}: {body}");
                statuses.push(if waits { 429 } else { 200 });
                continue;
            }
            statuses.push(r.status().as_u16());
            if r.status() == 429 {
                assert!(r.headers().contains_key("retry-after"), "{path}");
            }
        }
        assert!(
            statuses[..2].iter().all(|s| *s != 429),
            "{path}: {statuses:?}"
        );
        assert_eq!(statuses[2], 429, "{path}: {statuses:?}");
    }
    app.stop().await;
    db.remove().await;
}
