//! Access tried as an attacker holding a narrow token: a token reaches only what its
//! permissions, product scope and key lock allow, on every API, and what lies beyond looks
//! exactly like what does not exist.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Resp, TestApp};

/// Creates a token with the admin token and returns its secret.
async fn token(app: &TestApp, body: Value) -> String {
    let r = app.post("/v1/tokens", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

async fn as_token(
    app: &TestApp,
    method: Method,
    path: &str,
    tok: &str,
    body: Option<Value>,
) -> Resp {
    app.call(method, path, Some(tok), body).await
}

/// A form-encoded call to the Cryptolens API.
async fn cl(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Value {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .form(params)
        .send()
        .await
        .expect("request reaches the server");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

async fn key_locked_tokens(app: &TestApp) {
    let product = app.product("Locked", &["pro"]).await;
    let other = app.product("Elsewhere", &[]).await;
    let own = app
        .license(json!({"product_id": product, "max_machines": 3}))
        .await;
    let sibling = app.license(json!({"product_id": product})).await;
    let foreign = app.license(json!({"product_id": other})).await;
    let everything = [
        "licenses:read",
        "licenses:write",
        "licenses:delete",
        "activations:read",
        "activations:write",
        "events:read",
        "products:read",
        "plans:read",
        "customers:read",
        "customers:write",
        "payments:read",
        "tokens:manage",
    ];
    let locked = token(
        app,
        json!({"name": "one key", "permissions": everything, "key_lock": id(&own)}),
    )
    .await;

    // Its own license: every license action works.
    let path = format!("/v1/licenses/{}", id(&own));
    assert_eq!(
        as_token(app, Method::GET, &path, &locked, None)
            .await
            .status,
        200
    );
    let patched = as_token(
        app,
        Method::PATCH,
        &path,
        &locked,
        Some(json!({"notes": "mine"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let data = format!("/v1/licenses/{}/data", id(&own));
    assert_eq!(
        as_token(app, Method::GET, &data, &locked, None)
            .await
            .status,
        200
    );
    let by_key = format!("/v1/licenses/by-key/{}", own["key"].as_str().unwrap());
    assert_eq!(
        as_token(app, Method::GET, &by_key, &locked, None)
            .await
            .status,
        200
    );

    // Any other license, of its product or another, is refused, exactly as a license that does
    // not exist.
    for victim in [&sibling, &foreign] {
        let v = id(victim);
        let key = victim["key"].as_str().unwrap();
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/v1/licenses/{v}"), None),
            (Method::GET, format!("/v1/licenses/by-key/{key}"), None),
            (
                Method::PATCH,
                format!("/v1/licenses/{v}"),
                Some(json!({"notes": "pwned"})),
            ),
            (
                Method::POST,
                format!("/v1/licenses/{v}/block"),
                Some(json!({})),
            ),
            (
                Method::POST,
                format!("/v1/licenses/{v}/extend"),
                Some(json!({"days": 365})),
            ),
            (
                Method::POST,
                format!("/v1/licenses/{v}/features"),
                Some(json!({"feature": "pro"})),
            ),
            (Method::GET, format!("/v1/licenses/{v}/events"), None),
            (Method::GET, format!("/v1/licenses/{v}/activations"), None),
            (
                Method::POST,
                format!("/v1/licenses/{v}/file"),
                Some(json!({})),
            ),
            (Method::GET, format!("/v1/licenses/{v}/data"), None),
            (
                Method::POST,
                format!("/v1/licenses/{v}/data"),
                Some(json!({"name": "pwned"})),
            ),
            (Method::DELETE, format!("/v1/licenses/{v}"), None),
        ];
        for (method, path, body) in attempts {
            let r = as_token(app, method.clone(), &path, &locked, body.clone()).await;
            assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
            let missing = path
                .replace(&format!("/{v}"), "/900000000")
                .replace(key, "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ");
            let m = as_token(app, method.clone(), &missing, &locked, body).await;
            assert_eq!(
                (m.status, &m.body),
                (r.status, &r.body),
                "{method} {missing}"
            );
        }
        let after = app.get(&format!("/v1/licenses/{v}")).await;
        assert_eq!(after.status, 200, "the license is still there");
        assert_eq!(after.body["notes"], "");
        assert_eq!(after.body["blocked"], false);
        assert_eq!(after.body["expires"], victim["expires"]);
    }
    // Nothing beyond one license: no listings, no new licenses, no catalogue, customers,
    // payments or tokens.
    for (method, path, body) in [
        (Method::GET, "/v1/licenses".to_owned(), None),
        (
            Method::GET,
            format!("/v1/licenses?product_id={product}"),
            None,
        ),
        (
            Method::POST,
            "/v1/licenses".to_owned(),
            Some(json!({"product_id": product})),
        ),
        (Method::GET, "/v1/products".to_owned(), None),
        (Method::GET, format!("/v1/products/{product}"), None),
        (Method::GET, "/v1/plans".to_owned(), None),
        (Method::GET, "/v1/customers".to_owned(), None),
        (
            Method::POST,
            "/v1/customers".to_owned(),
            Some(json!({"name": "Mallory"})),
        ),
        (Method::GET, "/v1/payments".to_owned(), None),
        (Method::GET, "/v1/tokens".to_owned(), None),
        (
            Method::POST,
            "/v1/tokens".to_owned(),
            Some(json!({"name": "escape", "permissions": ["licenses:read"]})),
        ),
    ] {
        let r = as_token(app, method.clone(), &path, &locked, body).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    assert_eq!(
        app.license_count().await,
        3,
        "nothing was created or deleted"
    );

    // auth/KeyLock mints the caller's Cryptolens methods only, never its native permissions.
    let minter = token(
        app,
        json!({"name": "minter", "permissions": ["cryptolens:getkey", "licenses:read", "licenses:write"], "key_lock": -1}),
    )
    .await;
    let pid = product.to_string();
    let r = cl(
        app,
        "/api/auth/KeyLock",
        &[
            ("token", &minter),
            ("ProductId", &pid),
            ("Key", own["key"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r["result"], 0, "{r}");
    let minted = r["token"].as_str().unwrap().to_owned();
    let r = as_token(
        app,
        Method::GET,
        &format!("/v1/licenses/{}", id(&sibling)),
        &minted,
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let listed = app.get("/v1/tokens").await;
    let minted_row = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key_lock"] == id(&own) && t["name"] != "one key")
        .expect("the minted token is listed")
        .clone();
    assert_eq!(minted_row["permissions"], json!(["cryptolens:getkey"]));
    assert_eq!(minted_row["product_id"], product);

    // An admin token with key lock -1 mints Cryptolens methods, not admin.
    let admin_minter = token(
        app,
        json!({"name": "admin minter", "permissions": ["admin"], "key_lock": -1}),
    )
    .await;
    let r = cl(
        app,
        "/api/auth/KeyLock",
        &[
            ("token", &admin_minter),
            ("ProductId", &pid),
            ("Key", own["key"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(r["result"], 0, "{r}");
    let minted = r["token"].as_str().unwrap().to_owned();
    for path in ["/v1/tokens", "/v1/licenses", "/v1/customers"] {
        let r = as_token(app, Method::GET, path, &minted, None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let r = as_token(
        app,
        Method::GET,
        &format!("/v1/licenses/{}", id(&own)),
        &minted,
        None,
    )
    .await;
    assert_eq!(r.status, 403, "no native permission: {}", r.body);
    let got = cl(
        app,
        "/api/key/GetKey",
        &[
            ("token", &minted),
            ("ProductId", &pid),
            ("Key", own["key"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(got["result"], 0, "the Cryptolens methods work: {got}");
}
on_every_backend!(
    key_locked_tokens_touch_only_their_license_on_every_api,
    key_locked_tokens
);

async fn token_grants(app: &TestApp) {
    let product = app.product("Granted", &[]).await;
    let manager = token(
        app,
        json!({"name": "manager", "permissions": ["tokens:manage"]}),
    )
    .await;
    let create = |tok: String, body: Value| async move {
        as_token(app, Method::POST, "/v1/tokens", &tok, Some(body)).await
    };
    for permissions in [
        json!(["admin"]),
        json!(["licenses:read"]),
        json!(["tokens:manage", "payments:write"]),
    ] {
        let r = create(
            manager.clone(),
            json!({"name": "up", "permissions": permissions}),
        )
        .await;
        assert_eq!(r.status, 403, "{permissions}: {}", r.body);
    }
    let r = create(
        manager.clone(),
        json!({"name": "peer", "permissions": ["tokens:manage"]}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let reader = token(
        app,
        json!({"name": "reader", "permissions": ["tokens:manage", "licenses:read"]}),
    )
    .await;
    let r = create(
        reader.clone(),
        json!({"name": "narrow", "permissions": ["licenses:read"], "product_id": product}),
    )
    .await;
    assert_eq!(r.status, 201, "narrower is fine: {}", r.body);
    let r = create(
        reader.clone(),
        json!({"name": "wider", "permissions": ["licenses:write"]}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Only admin-minted admin tokens exist.
    let listed = app.get("/v1/tokens").await;
    let admins = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["permissions"]
                .as_array()
                .unwrap()
                .contains(&json!("admin"))
        })
        .count();
    assert_eq!(admins, 1, "{}", listed.body);
}
on_every_backend!(
    tokens_never_grant_more_than_their_creator_holds,
    token_grants
);

async fn customers_through_licenses(app: &TestApp) {
    let product = app.product("Ours", &[]).await;
    let other = app.product("Theirs", &[]).await;
    let theirs = app
        .post(
            "/v1/customers",
            json!({"name": "Alice Elsewhere", "email": "alice@example.com"}),
        )
        .await
        .body;
    let ours = app
        .post(
            "/v1/customers",
            json!({"name": "Bob Here", "email": "bob@example.com"}),
        )
        .await
        .body;
    app.license(json!({"product_id": other, "customer_id": id(&theirs)}))
        .await;
    app.license(json!({"product_id": product, "customer_id": id(&ours)}))
        .await;
    let methods: Vec<String> = [
        "getcustomers",
        "addcustomer",
        "createkey",
        "getkey",
        "changecustomer",
        "getcustomerlicenses",
    ]
    .iter()
    .map(|m| format!("cryptolens:{m}"))
    .collect();
    let mut permissions = methods.clone();
    permissions.extend(["licenses:write".to_owned(), "licenses:read".to_owned()]);
    let scoped = token(
        app,
        json!({"name": "shop", "permissions": permissions, "product_id": product}),
    )
    .await;
    let pid = product.to_string();
    let customer_count = async || {
        app.get("/v1/customers?limit=500").await.body["data"]
            .as_array()
            .unwrap()
            .len()
    };

    // GetCustomers: the customers of its product's licenses only.
    let r = cl(app, "/api/customer/GetCustomers", &[("token", &scoped)]).await;
    assert_eq!(r["result"], 0, "{r}");
    let seen: Vec<i64> = r["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, vec![id(&ours)], "{r}");

    // AddCustomer makes a customer outside any license: not for a product's token.
    let before = customer_count().await;
    let r = cl(
        app,
        "/api/customer/AddCustomer",
        &[("token", &scoped), ("Name", "Mallory")],
    )
    .await;
    assert_eq!(r["message"], "Access denied.", "{r}");
    assert_eq!(customer_count().await, before);

    // CreateKey with AddOrUseExistingCustomer reuses only a customer of its product.
    let r = cl(
        app,
        "/api/key/CreateKey",
        &[
            ("token", &scoped),
            ("ProductId", &pid),
            ("AddOrUseExistingCustomer", "true"),
            ("Email", "alice@example.com"),
            ("Name", "Someone"),
        ],
    )
    .await;
    assert_eq!(r["result"], 0, "{r}");
    assert_ne!(
        r["customerId"],
        id(&theirs),
        "another product's customer is not reused: {r}"
    );
    let key = r["key"].as_str().unwrap().to_owned();
    let got = cl(
        app,
        "/api/key/GetKey",
        &[
            ("token", &scoped),
            ("ProductId", &pid),
            ("Key", &key),
            ("SignMethod", "1"),
        ],
    )
    .await;
    assert!(!got.to_string().contains("Alice Elsewhere"), "{got}");
    let r = cl(
        app,
        "/api/key/CreateKey",
        &[
            ("token", &scoped),
            ("ProductId", &pid),
            ("AddOrUseExistingCustomer", "true"),
            ("Email", "bob@example.com"),
        ],
    )
    .await;
    assert_eq!(
        r["customerId"],
        id(&ours),
        "its own product's customer is: {r}"
    );

    // Naming another product's customer is the same as naming none that exists.
    for customer in [id(&theirs).to_string(), "987654".to_owned()] {
        let r = cl(
            app,
            "/api/key/CreateKey",
            &[
                ("token", &scoped),
                ("ProductId", &pid),
                ("CustomerId", &customer),
            ],
        )
        .await;
        assert_eq!(r["message"], "Could not find the customer.", "{r}");
        let r = cl(
            app,
            "/api/customer/GetCustomerLicenses",
            &[("token", &scoped), ("CustomerId", &customer)],
        )
        .await;
        assert_eq!(r["message"], "Could not find the customer.", "{r}");
        let r = cl(
            app,
            "/api/key/ChangeCustomer",
            &[
                ("token", &scoped),
                ("ProductId", &pid),
                ("Key", &key),
                ("CustomerId", &customer),
            ],
        )
        .await;
        assert_eq!(
            r["message"], "Customer not found, so current key no longer references any customer.",
            "{r}"
        );
        let got = cl(
            app,
            "/api/key/GetKey",
            &[
                ("token", &scoped),
                ("ProductId", &pid),
                ("Key", &key),
                ("SignMethod", "1"),
            ],
        )
        .await;
        assert!(!got.to_string().contains("Alice Elsewhere"), "{got}");
        // The native API answers the same for it.
        let r = as_token(
            app,
            Method::POST,
            "/v1/licenses",
            &scoped,
            Some(json!({"product_id": product, "customer_id": customer.parse::<i64>().unwrap()})),
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["error"]["message"], "customer_id: no such customer");
    }
}
on_every_backend!(
    product_tokens_see_customers_only_through_their_licenses,
    customers_through_licenses
);

/// Every answer a token scoped to one product gets about another product's things equals the
/// answer about things that do not exist.
async fn no_existence_oracle(app: &TestApp) {
    let product = app.product("Mine", &["pro"]).await;
    let other = app.product("Not mine", &["pro"]).await;
    let foreign = app
        .license(json!({"product_id": other, "max_machines": 2}))
        .await;
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": other, "name": "Pro", "period_days": 30}),
        )
        .await
        .body;
    let activation = app
        .public(
            "/v1/activations",
            json!({"key": foreign["key"], "fingerprint": "machine-x"}),
        )
        .await
        .body["activation"]
        .clone();
    // Ids far above anything this test creates.
    let missing = 900_000_000i64;
    let scoped = token(
        app,
        json!({
            "name": "mine",
            "permissions": [
                "licenses:read", "licenses:write", "licenses:delete", "activations:read",
                "activations:write", "events:read", "plans:read", "plans:write", "products:read",
                "cryptolens:getkey", "cryptolens:blockkey"
            ],
            "product_id": product
        }),
    )
    .await;
    let l = id(&foreign);
    let key = foreign["key"].as_str().unwrap();
    let pairs: Vec<(Method, String, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/v1/licenses/{l}"),
            format!("/v1/licenses/{missing}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/licenses/by-key/{key}"),
            "/v1/licenses/by-key/ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ".to_owned(),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/licenses/{l}"),
            format!("/v1/licenses/{missing}"),
            Some(json!({"notes": "x"})),
        ),
        (
            Method::POST,
            format!("/v1/licenses/{l}/block"),
            format!("/v1/licenses/{missing}/block"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/licenses/{l}/extend"),
            format!("/v1/licenses/{missing}/extend"),
            Some(json!({"days": 1})),
        ),
        (
            Method::DELETE,
            format!("/v1/licenses/{l}/features/pro"),
            format!("/v1/licenses/{missing}/features/pro"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/licenses/{l}/events"),
            format!("/v1/licenses/{missing}/events"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/licenses/{l}/activations"),
            format!("/v1/licenses/{missing}/activations"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/licenses/{l}/data"),
            format!("/v1/licenses/{missing}/data"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/products/{other}/data"),
            format!("/v1/products/{missing}/data"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/licenses/{l}/file"),
            format!("/v1/licenses/{missing}/file"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/v1/licenses/{l}"),
            format!("/v1/licenses/{missing}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/activations/{}", id(&activation)),
            format!("/v1/activations/{missing}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/plans/{}", id(&plan)),
            format!("/v1/plans/{missing}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/plans/{}", id(&plan)),
            format!("/v1/plans/{missing}"),
            Some(json!({"name": "x"})),
        ),
        (
            Method::GET,
            format!("/v1/products/{other}"),
            format!("/v1/products/{missing}"),
            None,
        ),
    ];
    for (method, elsewhere, nowhere, body) in pairs {
        let a = as_token(app, method.clone(), &elsewhere, &scoped, body.clone()).await;
        let b = as_token(app, method.clone(), &nowhere, &scoped, body).await;
        assert_eq!(
            (a.status, &a.body),
            (b.status, &b.body),
            "{method} {elsewhere} vs {nowhere}"
        );
        assert!(a.status >= 400, "{method} {elsewhere}: {}", a.body);
    }
    // Naming another product's plan for a new license is naming none.
    let a = as_token(
        app,
        Method::POST,
        "/v1/licenses",
        &scoped,
        Some(json!({"plan_id": id(&plan)})),
    )
    .await;
    let b = as_token(
        app,
        Method::POST,
        "/v1/licenses",
        &scoped,
        Some(json!({"plan_id": missing})),
    )
    .await;
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    assert_eq!(a.status, 422, "{}", a.body);

    // On the Cryptolens API too.
    let pid = other.to_string();
    for method in ["/api/key/GetKey", "/api/key/BlockKey"] {
        let a = cl(
            app,
            method,
            &[("token", &scoped), ("ProductId", &pid), ("Key", key)],
        )
        .await;
        let b = cl(
            app,
            method,
            &[
                ("token", &scoped),
                ("ProductId", &pid),
                ("Key", "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ"),
            ],
        )
        .await;
        let c = cl(
            app,
            method,
            &[
                ("token", &scoped),
                ("ProductId", &missing.to_string()),
                ("Key", key),
            ],
        )
        .await;
        assert_eq!(a, b, "{method}");
        assert_eq!(a, c, "{method}");
    }
    let after = app.get(&format!("/v1/licenses/{l}")).await;
    assert_eq!(after.body["blocked"], false);
    assert_eq!(after.body["notes"], "");
}
on_every_backend!(
    other_products_tokens_cannot_tell_foreign_from_missing,
    no_existence_oracle
);

async fn node_locked_validation(app: &TestApp) {
    let product = app.product("Desktop", &["pro"]).await;
    let locked = app
        .license(json!({"product_id": product, "max_machines": 1, "features": ["pro"]}))
        .await;
    let free = app
        .license(json!({"product_id": product, "features": ["pro"]}))
        .await;
    let activated = app
        .public(
            "/v1/activations",
            json!({"key": locked["key"], "fingerprint": "machine-a"}),
        )
        .await;
    assert_eq!(activated.status, 201, "{}", activated.body);

    // Without a fingerprint, a license locked to machines is not valid for "some" machine.
    for body in [
        json!({"key": locked["key"]}),
        json!({"key": locked["key"], "features": ["pro"]}),
        json!({"key": locked["key"], "fingerprint": null}),
    ] {
        let r = app.public("/v1/validate", body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["code"], "NOT_ACTIVATED", "{body}: {}", r.body);
        assert_eq!(r.body["valid"], false);
        assert!(
            r.body["detail"].as_str().unwrap().contains("fingerprint"),
            "the detail says what is missing: {}",
            r.body
        );
    }
    let r = app
        .public(
            "/v1/validate",
            json!({"key": locked["key"], "fingerprint": "machine-a"}),
        )
        .await;
    assert_eq!(r.body["code"], "VALID", "{}", r.body);
    let r = app
        .public("/v1/validate", json!({"key": free["key"]}))
        .await;
    assert_eq!(
        r.body["code"], "VALID",
        "a license without a machine limit: {}",
        r.body
    );
}
on_every_backend!(
    validating_a_node_locked_license_needs_the_machine,
    node_locked_validation
);

/// Checks that a refusal carries the product's signature over its exact bytes and the nonce.
fn assert_signed_refusal(
    client: &keyturn_client::Client,
    r: &Resp,
    status: u16,
    code: &str,
    nonce: &str,
) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
    assert_eq!(r.body["nonce"], nonce, "the nonce comes back: {}", r.body);
    assert!(r.body["time"].is_string(), "{}", r.body);
    let signature = r
        .header(keyturn_http::SIGNATURE_HEADER)
        .unwrap_or_else(|| panic!("a refusal ({code}) is signed"));
    assert!(client.verify(&r.raw, signature), "the signature verifies");
}

async fn signed_refusals(app: &TestApp) {
    let product = app.product("Signed", &["pro"]).await;
    let client =
        keyturn_client::Client::new(&app.base, product, &app.public_key(product).await).unwrap();
    let license = app
        .license(json!({"product_id": product, "max_machines": 1}))
        .await;
    let key = license["key"].as_str().unwrap();
    let ok = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "machine-a", "nonce": "n0"}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);

    let full = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "machine-b", "nonce": "n1"}),
        )
        .await;
    assert_signed_refusal(&client, &full, 409, "too_many_machines", "n1");
    let unknown = app
        .public(
            "/v1/activations/deactivate",
            json!({"key": key, "fingerprint": "machine-z", "nonce": "n2"}),
        )
        .await;
    assert_signed_refusal(&client, &unknown, 404, "not_found", "n2");
    let missing_key = app
        .public(
            "/v1/activations",
            json!({"key": "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ", "fingerprint": "m", "product_id": product, "nonce": "n3"}),
        )
        .await;
    assert_signed_refusal(&client, &missing_key, 404, "not_found", "n3");
    let bad_input = app
        .public(
            "/v1/validate",
            json!({"key": key, "fingerprint": "", "product_id": product, "nonce": "n4"}),
        )
        .await;
    assert_signed_refusal(&client, &bad_input, 422, "invalid_input", "n4");
    let no_trial = app
        .public(
            "/v1/trials",
            json!({"product_id": product, "fingerprint": "machine-t", "nonce": "n5"}),
        )
        .await;
    assert_signed_refusal(&client, &no_trial, 404, "not_found", "n5");
    app.post(&format!("/v1/licenses/{}/block", id(&license)), json!({}))
        .await;
    let blocked = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "machine-a", "nonce": "n6"}),
        )
        .await;
    assert_signed_refusal(&client, &blocked, 403, "blocked", "n6");

    // The SDK reads a signed refusal as the refusal it is.
    match client.activate_machine(key, "machine-a", None).await {
        Err(keyturn_client::Error::Refused { code, .. }) => assert_eq!(code, "blocked"),
        other => panic!("expected BLOCKED, got {other:?}"),
    }
}
on_every_backend!(
    licensee_refusals_are_signed_and_echo_the_nonce,
    signed_refusals
);

async fn public_fields(app: &TestApp) {
    let product = app.product("Private", &["pro"]).await;
    let license = app
        .license(json!({
            "product_id": product,
            "notes": "owes us money; do not renew",
            "metadata": {"tier": "gold", "crm_id": "C-991"},
            "features": ["pro"]
        }))
        .await;
    let key = license["key"].as_str().unwrap();
    let shown = async || {
        let v = app.public("/v1/validate", json!({"key": key})).await;
        assert_eq!(v.body["code"], "VALID", "{}", v.body);
        let a = app
            .public(
                "/v1/activations",
                json!({"key": key, "fingerprint": "machine-a"}),
            )
            .await;
        assert!(a.status < 300, "{}", a.body);
        (v.body["license"].clone(), a.body["license"].clone())
    };
    // A license file goes to the licensee too.
    let client = keyturn_client::Client::new(&app.base, product, &app.public_key(product).await)
        .unwrap()
        .with_fingerprint(keyturn_client::Fingerprint::parse("machine-a"));
    let file_metadata = async || {
        let r = app
            .post(&format!("/v1/licenses/{}/file", id(&license)), json!({}))
            .await;
        assert_eq!(r.status, 201);
        let text = String::from_utf8(r.raw).unwrap();
        let file = client.verify_license_file(&text, key, &[]).unwrap();
        file.license.metadata
    };
    for seen in <[Value; 2]>::from(shown().await) {
        assert_eq!(seen["key"], key);
        assert_eq!(seen["features"], json!(["pro"]));
        assert_eq!(seen["notes"], "", "notes are private by default: {seen}");
        assert_eq!(seen["metadata"], json!({}), "{seen}");
    }
    assert_eq!(file_metadata().await, json!({}));
    // The vendor marks what programs may see.
    let r = app
        .patch(
            &format!("/v1/products/{product}"),
            json!({"public_metadata": ["tier"], "public_notes": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["public_metadata"], json!(["tier"]));
    assert_eq!(r.body["public_notes"], true);
    for seen in <[Value; 2]>::from(shown().await) {
        assert_eq!(seen["notes"], "owes us money; do not renew", "{seen}");
        assert_eq!(seen["metadata"], json!({"tier": "gold"}), "{seen}");
    }
    assert_eq!(file_metadata().await, json!({"tier": "gold"}));
    // The vendor's own API still shows everything.
    let full = app.get(&format!("/v1/licenses/{}", id(&license))).await;
    assert_eq!(full.body["metadata"]["crm_id"], "C-991");
}
on_every_backend!(
    unauthenticated_replies_show_only_public_license_fields,
    public_fields
);

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = crate::helpers::TestDb::create(&crate::helpers::Backend::Sqlite).await;
    let app = crate::helpers::spawn(&db, crate::helpers::test_http()).await;
    // A write, so that the write-ahead log exists too.
    app.product("Private files", &[]).await;
    let data = db.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "the database and its log were looked at");
    app.stop().await;
}

/// Runs `keyturn` on the test's database, with no master key but those in `env`.
pub(crate) fn keyturn_on(
    db: &crate::helpers::TestDb,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command.args(args).env_remove("KEYTURN_CONFIG");
    for name in [
        "KEYTURN_MASTER_KEY",
        "KEYTURN_MASTER_KEY_FILE",
        "KEYTURN_OLD_MASTER_KEY",
        "KEYTURN_OLD_MASTER_KEY_FILE",
    ] {
        command.env_remove(name);
    }
    match &db.url {
        Some(url) => command.env("KEYTURN_DATABASE_URL", url),
        None => command
            .env_remove("KEYTURN_DATABASE_URL")
            .env("KEYTURN_DATA_DIR", db.dir.path().join("data")),
    };
    command.envs(env.iter().copied());
    let out = command.output().expect("run keyturn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The private keys as the database holds them.
pub(crate) async fn stored_keys(db: &crate::helpers::TestDb) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
    let rows = sqlx::query("SELECT private_key FROM signing_keys ORDER BY product_id, algorithm")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| r.get::<String, _>("private_key"))
        .collect()
}

/// What a product's keys sign verifies with the public keys fetched before.
async fn signs_as_before(app: &TestApp, product: i64, public: &str, rsa_xml: &str) {
    let license = app.license(json!({"product_id": product})).await;
    let client = keyturn_client::Client::new(&app.base, product, public).unwrap();
    let v = client
        .validate_machine(license["key"].as_str().unwrap(), None, &[])
        .await
        .expect("a reply signed with the same key");
    assert!(v.valid);
    assert_eq!(rsa_public_key(app, product).await, rsa_xml);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_with_the_master_key_and_rotated() {
    use crate::helpers::{backends, spawn, test_http, try_spawn_again, TestDb};
    use keyturn_core::MasterKey;
    for backend in backends() {
        let mut db = TestDb::create(&backend).await;
        let first = MasterKey::generate();
        db.master_key = Some(first.clone());
        let app = spawn(&db, test_http()).await;
        let admin = app.admin.clone();
        let product = app.product("Sealed", &["pro"]).await;
        let public = app.public_key(product).await;
        let rsa_xml = rsa_public_key(&app, product).await;
        signs_as_before(&app, product, &public, &rsa_xml).await;
        app.stop().await;
        let stored = stored_keys(&db).await;
        assert_eq!(stored.len(), 2);
        for key in &stored {
            assert!(key.starts_with("sealed:v1:"), "{key}");
        }

        // Without the master key, or with another, the server does not start, and says why.
        db.master_key = None;
        let err = format!("{:#}", try_spawn_again(&db, &admin).await.err().unwrap());
        assert!(err.contains("KEYTURN_MASTER_KEY"), "{err}");
        assert!(err.contains("sealed"), "{err}");
        db.master_key = Some(MasterKey::generate());
        let err = format!("{:#}", try_spawn_again(&db, &admin).await.err().unwrap());
        assert!(err.contains("does not open"), "{err}");
        let (ok, _, err) = keyturn_on(&db, &[], &["product", "list"]);
        assert!(!ok && err.contains("KEYTURN_MASTER_KEY"), "{err}");

        // Rotation: from the first master key to a second, in one command.
        let second = MasterKey::generate();
        let (ok, _, err) = keyturn_on(
            &db,
            &[("KEYTURN_MASTER_KEY", &second.to_text())],
            &["keys", "seal"],
        );
        assert!(!ok, "without the old key, sealed keys cannot be opened");
        assert!(err.contains("old master key"), "{err}");
        let (ok, out, err) = keyturn_on(
            &db,
            &[
                ("KEYTURN_MASTER_KEY", &second.to_text()),
                ("KEYTURN_OLD_MASTER_KEY", &first.to_text()),
            ],
            &["keys", "seal"],
        );
        assert!(ok, "{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report, json!({"sealed": 2, "plain": 0}));
        assert_ne!(stored_keys(&db).await, stored, "stored anew");
        db.master_key = Some(first.clone());
        assert!(
            try_spawn_again(&db, &admin).await.is_err(),
            "the old master key no longer opens them"
        );
        db.master_key = Some(second.clone());
        let app = try_spawn_again(&db, &admin)
            .await
            .expect("starts with the new key");
        signs_as_before(&app, product, &public, &rsa_xml).await;
        // New products get sealed keys.
        app.product("Sealed too", &[]).await;
        app.stop().await;
        let stored = stored_keys(&db).await;
        assert_eq!(stored.len(), 4);
        assert!(stored.iter().all(|k| k.starts_with("sealed:v1:")));
        db.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_signing_keys_are_sealed_by_the_command() {
    use crate::helpers::{backends, spawn, test_http, try_spawn_again, TestDb};
    use keyturn_core::MasterKey;
    for backend in backends() {
        let mut db = TestDb::create(&backend).await;
        let app = spawn(&db, test_http()).await;
        let admin = app.admin.clone();
        let product = app.product("Plain first", &[]).await;
        let public = app.public_key(product).await;
        let rsa_xml = rsa_public_key(&app, product).await;
        app.stop().await;
        let plain = stored_keys(&db).await;
        assert!(plain.iter().all(|k| !k.starts_with("sealed:")));

        let (ok, out, _) = keyturn_on(&db, &[], &["keys", "status"]);
        assert!(ok);
        let status: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(status, json!({"sealed": 0, "plain": 2}));
        let (ok, _, err) = keyturn_on(&db, &[], &["keys", "seal"]);
        assert!(!ok && err.contains("KEYTURN_MASTER_KEY"), "{err}");

        let (ok, key_text, _) = keyturn_on(&db, &[], &["keys", "new-master-key"]);
        assert!(ok);
        let master = MasterKey::parse(&key_text).unwrap();
        let file = db.dir.path().join("master.key");
        std::fs::write(&file, &key_text).unwrap();
        let (ok, out, err) = keyturn_on(
            &db,
            &[("KEYTURN_MASTER_KEY_FILE", file.to_str().unwrap())],
            &["keys", "seal"],
        );
        assert!(ok, "{err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report, json!({"sealed": 2, "plain": 0}));
        let sealed = stored_keys(&db).await;
        for (s, p) in sealed.iter().zip(&plain) {
            assert!(s.starts_with("sealed:v1:"));
            assert!(!s.contains(p.as_str()));
        }
        let err = format!("{:#}", try_spawn_again(&db, &admin).await.err().unwrap());
        assert!(err.contains("KEYTURN_MASTER_KEY"), "{err}");
        db.master_key = Some(master);
        let app = try_spawn_again(&db, &admin)
            .await
            .expect("starts with the key");
        signs_as_before(&app, product, &public, &rsa_xml).await;
        app.stop().await;

        // And back to plain text.
        let (ok, out, err) = keyturn_on(
            &db,
            &[("KEYTURN_MASTER_KEY", &key_text)],
            &["keys", "unseal"],
        );
        assert!(ok, "{err}");
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"sealed": 0, "plain": 2})
        );
        assert_eq!(stored_keys(&db).await, plain);
        db.remove().await;
    }
}
