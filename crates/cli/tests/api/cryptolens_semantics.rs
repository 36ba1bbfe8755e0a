//! What the Cryptolens Web API v3 means, beyond its wire format: expired and blocked keys,
//! masked fields, products, customers, methods Keyturn does not serve, and what an activation
//! records.

use chrono::Utc;
use serde_json::json;

use crate::cryptolens::{assert_error, create_key, post, rsa_key, token, verified_license};
use crate::helpers::TestApp;

const BLOCKED: &str = "The key is blocked and cannot be accessed.";

async fn sdk_token(app: &TestApp, methods: &[&str]) -> String {
    let permissions: Vec<String> = methods.iter().map(|m| format!("cryptolens:{m}")).collect();
    token(app, json!({"name": "sdk", "permissions": permissions})).await
}

/// The native license behind a key.
async fn license_id(app: &TestApp, key: &str) -> i64 {
    let r = app.get(&format!("/v1/licenses/by-key/{key}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["id"].as_i64().unwrap()
}

/// Activate (or another key method) as the Python SDK calls it: signed, `SignMethod=1`, model 3.
async fn signed_call(
    app: &TestApp,
    method: &str,
    tok: &str,
    product: i64,
    key: &str,
    extra: &[(&str, &str)],
) -> crate::cryptolens::Reply {
    let pid = product.to_string();
    let mut params = vec![
        ("token", tok),
        ("ProductId", pid.as_str()),
        ("Key", key),
        ("Sign", "True"),
        ("SignMethod", "1"),
        ("ModelVersion", "3"),
    ];
    params.extend_from_slice(extra);
    post(app, &format!("/api/key/{method}"), &params).await
}

async fn expired_keys(app: &TestApp) {
    let product = app.product("Expiring", &["pro"]).await;
    let tok = sdk_token(
        app,
        &[
            "activate",
            "getkey",
            "deactivate",
            "createkey",
            "getkeys",
            "getproducts",
        ],
    )
    .await;
    let rsa = rsa_key(app, product).await;
    let key = create_key(
        app,
        &tok,
        product,
        &[("Period", "30"), ("MaxNoOfMachines", "2")],
    )
    .await;
    let fresh = create_key(app, &tok, product, &[("Period", "30")]).await;
    let id = license_id(app, &key).await;
    let r = app
        .patch(
            &format!("/v1/licenses/{id}"),
            json!({"expires": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Cryptolens returns an expired key's license; the SDK compares `Expires` with its clock.
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[("MachineCode", "m1")],
    )
    .await;
    let license = verified_license(&r, &rsa);
    assert_eq!(license["Expires"], 1_577_836_800);
    assert_eq!(license["Block"], false);
    assert_eq!(license["ActivatedMachines"][0]["Mid"], "m1");
    let r = signed_call(app, "GetKey", &tok, product, &key, &[("Metadata", "true")]).await;
    verified_license(&r, &rsa);
    assert_eq!(r.body["metadata"]["licenseStatus"]["isValid"], false);
    assert_eq!(
        r.body["metadata"]["licenseStatus"]["reasonForInvalidity"],
        1
    );
    // Keyturn's own API keeps refusing it with its own code.
    let r = app
        .public(
            "/v1/validate",
            json!({"key": key, "fingerprint": "m1", "product_id": product}),
        )
        .await;
    assert_eq!(r.body["code"], "EXPIRED", "{}", r.body);
    let r = app
        .public("/v1/activations", json!({"key": key, "fingerprint": "m2"}))
        .await;
    assert_eq!(r.body["error"]["code"], "expired", "{}", r.body);

    // With "block expired licenses", an expired key answers as a blocked one, on every method
    // a program uses it with; a key that has not expired is untouched.
    let r = app
        .patch(
            &format!("/v1/products/{product}"),
            json!({"block_expired_licenses": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["block_expired_licenses"], true);
    for method in ["Activate", "GetKey"] {
        let r = signed_call(app, method, &tok, product, &key, &[("MachineCode", "m1")]).await;
        assert_error(&r, BLOCKED);
    }
    let pid = product.to_string();
    let r = post(
        app,
        "/api/key/Deactivate",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &key),
            ("MachineCode", "m1"),
        ],
    )
    .await;
    assert_error(&r, BLOCKED);
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &fresh,
        &[("MachineCode", "m1")],
    )
    .await;
    assert_eq!(verified_license(&r, &rsa)["Block"], false);
    // Listings show it blocked, as Cryptolens's hourly job leaves it.
    let r = post(
        app,
        "/api/product/GetKeys",
        &[("token", &tok), ("ProductId", &pid)],
    )
    .await;
    let blocks: Vec<(String, bool)> = r.body["licenseKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_owned(),
                k["block"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(blocks, [(key.clone(), true), (fresh.clone(), false)]);
    let r = post(app, "/api/product/GetProducts", &[("token", &tok)]).await;
    let item = r.body["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == product)
        .unwrap()
        .clone();
    assert_eq!(item["featureDefinitions"]["blockExpiredLicenses"], true);
    // The license itself was never blocked: extended, it works again.
    let r = app
        .post(&format!("/v1/licenses/{id}/extend"), json!({"days": 10}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["blocked"], false);
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[("MachineCode", "m1")],
    )
    .await;
    let license = verified_license(&r, &rsa);
    assert!(license["Expires"].as_i64().unwrap() > Utc::now().timestamp());
}
on_every_backend!(
    cryptolens_expired_keys_are_returned_or_blocked_by_product,
    expired_keys
);

async fn blocked_keys(app: &TestApp) {
    let product = app.product("Blocking", &["pro"]).await;
    let tok = sdk_token(
        app,
        &[
            "activate",
            "getkey",
            "deactivate",
            "createkey",
            "blockkey",
            "extendlicense",
            "changenotes",
        ],
    )
    .await;
    let rsa = rsa_key(app, product).await;
    let key = create_key(app, &tok, product, &[("MaxNoOfMachines", "2")]).await;
    let unlimited = create_key(app, &tok, product, &[]).await;
    let pid = product.to_string();
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[("MachineCode", "m1")],
    )
    .await;
    verified_license(&r, &rsa);
    for k in [&key, &unlimited] {
        let r = post(
            app,
            "/api/key/BlockKey",
            &[("token", &tok), ("ProductId", &pid), ("Key", k)],
        )
        .await;
        assert_eq!(r.body["result"], 0, "{}", r.body);
    }
    // The machine that holds a seat, a new machine, a key without a machine limit, GetKey in
    // both sign methods and unsigned, and Deactivate: all answer with Cryptolens's text.
    for (k, machine) in [(&key, "m1"), (&key, "m2"), (&unlimited, "m1")] {
        let r = signed_call(
            app,
            "Activate",
            &tok,
            product,
            k,
            &[("MachineCode", machine)],
        )
        .await;
        assert_error(&r, BLOCKED);
    }
    for sign_method in ["1", "0", "StringSign"] {
        let r = post(
            app,
            "/api/key/GetKey",
            &[
                ("token", &tok),
                ("ProductId", &pid),
                ("Key", &key),
                ("Sign", "true"),
                ("SignMethod", sign_method),
            ],
        )
        .await;
        assert_error(&r, BLOCKED);
    }
    let r = post(
        app,
        "/api/key/GetKey",
        &[("token", &tok), ("ProductId", &pid), ("Key", &unlimited)],
    )
    .await;
    assert_error(&r, BLOCKED);
    for floating in ["false", "true"] {
        let r = post(
            app,
            "/api/key/Deactivate",
            &[
                ("token", &tok),
                ("ProductId", &pid),
                ("Key", &key),
                ("MachineCode", "m1"),
                ("Floating", floating),
            ],
        )
        .await;
        assert_error(&r, BLOCKED);
    }
    // The seat stays; the vendor's methods still reach the key.
    let id = license_id(app, &key).await;
    let r = app.get(&format!("/v1/licenses/{id}/activations")).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.body);
    let r = post(
        app,
        "/api/key/ChangeNotes",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &key),
            ("Notes", "held"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
}
on_every_backend!(
    cryptolens_blocked_keys_answer_blocked_on_activate_getkey_and_deactivate,
    blocked_keys
);

/// Every field of the signed license, as model version 3 has them.
const FIELDS: [&str; 25] = [
    "ProductId",
    "ID",
    "Key",
    "Created",
    "Expires",
    "Period",
    "F1",
    "F2",
    "F3",
    "F4",
    "F5",
    "F6",
    "F7",
    "F8",
    "Notes",
    "Block",
    "GlobalId",
    "Customer",
    "ActivatedMachines",
    "TrialActivation",
    "MaxNoOfMachines",
    "AllowedMachines",
    "DataObjects",
    "Reseller",
    "SignDate",
];

async fn masked_fields(app: &TestApp) {
    use base64::Engine;
    let product = app.product("Masked", &["pro"]).await;
    let tok = sdk_token(app, &["activate", "getkey", "createkey", "addcustomer"]).await;
    let rsa = rsa_key(app, product).await;
    let key = create_key(
        app,
        &tok,
        product,
        &[
            ("Period", "30"),
            ("F1", "true"),
            ("MaxNoOfMachines", "3"),
            ("AllowedMachines", "build-box"),
            ("Notes", "internal"),
            ("NewCustomer", "true"),
            ("Name", "Ann"),
            ("Email", "ann@example.com"),
        ],
    )
    .await;
    let id = license_id(app, &key).await;
    let r = app
        .post(
            &format!("/v1/licenses/{id}/data"),
            json!({"name": "credits", "int_value": 5}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for m in ["m1", "m2"] {
        let r = signed_call(app, "Activate", &tok, product, &key, &[("MachineCode", m)]).await;
        verified_license(&r, &rsa);
    }
    let full = verified_license(
        &signed_call(app, "GetKey", &tok, product, &key, &[]).await,
        &rsa,
    );
    assert_eq!(full["ID"], id);
    assert_eq!(full["Customer"]["Name"], "Ann");
    assert_eq!(full["DataObjects"].as_array().unwrap().len(), 1);

    // Everything that can be hidden (2 + 4 + … + 512): each field stays, neutral, signed.
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[("MachineCode", "m2"), ("FieldsToReturn", "1022")],
    )
    .await;
    let masked = verified_license(&r, &rsa);
    let mut keys: Vec<&str> = masked
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut fields = FIELDS.to_vec();
    keys.sort_unstable();
    fields.sort_unstable();
    assert_eq!(keys, fields, "every field stays");
    assert_eq!(masked["ID"], 0);
    assert_eq!(masked["Key"], "");
    assert_eq!(masked["Notes"], json!(null));
    assert_eq!(masked["GlobalId"], 0);
    assert_eq!(masked["Customer"], json!(null));
    let mids: Vec<&str> = masked["ActivatedMachines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Mid"].as_str().unwrap())
        .collect();
    assert_eq!(mids, ["m2"], "only the calling machine");
    assert_eq!(masked["AllowedMachines"], json!(null));
    assert_eq!(masked["MaxNoOfMachines"], 0);
    assert_eq!(masked["DataObjects"], json!([]));
    for same in ["ProductId", "Created", "Expires", "Period", "F1", "Block"] {
        assert_eq!(masked[same], full[same], "{same}");
    }
    // One field alone; GetKey (no machine) with machines hidden shows none.
    let r = signed_call(
        app,
        "GetKey",
        &tok,
        product,
        &key,
        &[("FieldsToReturn", "32")],
    )
    .await;
    let one = verified_license(&r, &rsa);
    assert_eq!(one["Customer"], json!(null));
    assert_eq!(one["ID"], id);
    assert_eq!(one["Key"], key);
    assert_eq!(one["ActivatedMachines"].as_array().unwrap().len(), 2);
    let r = signed_call(
        app,
        "GetKey",
        &tok,
        product,
        &key,
        &[("FieldsToReturn", "64")],
    )
    .await;
    assert_eq!(verified_license(&r, &rsa)["ActivatedMachines"], json!([]));
    // The legacy object form is masked and signed the same way.
    let pid = product.to_string();
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", tok.as_str()),
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("Sign", "True"),
            ("SignMethod", "LinqSign"),
            ("FieldsToReturn", "42"),
        ],
    )
    .await;
    let object = &r.body["licenseKey"];
    assert_eq!(object["id"], 0);
    assert_eq!(object["notes"], json!(null));
    assert_eq!(object["customer"], json!(null));
    assert_eq!(object["key"], key);
    let text = crate::cryptolens::legacy_text(object);
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(object["signature"].as_str().unwrap())
        .unwrap();
    assert!(
        rsa.verify(keyturn_core::RsaDigest::Sha256, &utf16, &sig),
        "{text}"
    );
    let r = signed_call(
        app,
        "GetKey",
        &tok,
        product,
        &key,
        &[("FieldsToReturn", "-1")],
    )
    .await;
    assert_error(&r, "The input parameters were incorrect.");

    // A token's feature lock hides its fields whatever the caller asks; asking hides more.
    let locked = token(
        app,
        json!({"name": "locked", "permissions": ["cryptolens:getkey", "cryptolens:activate",
               "tokens:manage"], "feature_lock": 32}),
    )
    .await;
    let r = signed_call(
        app,
        "GetKey",
        &locked,
        product,
        &key,
        &[("FieldsToReturn", "0")],
    )
    .await;
    let seen = verified_license(&r, &rsa);
    assert_eq!(seen["Customer"], json!(null));
    assert_eq!(seen["Notes"], "internal");
    let r = signed_call(
        app,
        "GetKey",
        &locked,
        product,
        &key,
        &[("FieldsToReturn", "8")],
    )
    .await;
    let seen = verified_license(&r, &rsa);
    assert_eq!(
        (seen["Customer"].clone(), seen["Notes"].clone()),
        (json!(null), json!(null))
    );
    // It cannot create a token that shows more.
    let create = |lock: i64| {
        let locked = locked.clone();
        async move {
            app.call(
                reqwest::Method::POST,
                "/v1/tokens",
                Some(&locked),
                Some(
                    json!({"name": "child", "permissions": ["cryptolens:getkey"],
                            "feature_lock": lock}),
                ),
            )
            .await
        }
    };
    assert_eq!(create(0).await.status, 403);
    assert_eq!(create(8).await.status, 403);
    let child = create(40).await;
    assert_eq!(child.status, 201, "{}", child.body);
    assert_eq!(child.body["feature_lock"], 40);
    let r = app
        .post(
            "/v1/tokens",
            json!({"name": "x", "permissions": ["cryptolens:getkey"], "feature_lock": -1}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    // Tokens minted with auth/KeyLock keep their minter's lock.
    let minter = token(
        app,
        json!({"name": "minter", "permissions": ["cryptolens:getkey"], "key_lock": -1,
               "feature_lock": 32}),
    )
    .await;
    let r = post(
        app,
        "/api/auth/KeyLock",
        &[("token", &minter), ("ProductId", &pid), ("Key", &key)],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let minted = r.body["token"].as_str().unwrap().to_owned();
    let r = signed_call(app, "GetKey", &minted, product, &key, &[]).await;
    assert_eq!(verified_license(&r, &rsa)["Customer"], json!(null));
}
on_every_backend!(
    cryptolens_fields_to_return_and_feature_locks_mask_fields,
    masked_fields
);

async fn products(app: &TestApp) {
    let product = app.product("Catalogued", &["pro", "team"]).await;
    let other = app.product("Elsewhere", &[]).await;
    for (owner, name, text) in [(product, "latest", "2.1"), (other, "hidden", "x")] {
        let r = app
            .post(
                &format!("/v1/products/{owner}/data"),
                json!({"name": name, "string_value": text, "int_value": 7}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let everything = sdk_token(app, &["getproducts"]).await;
    let r = post(app, "/api/product/GetProducts", &[("token", &everything)]).await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let items = r.body["products"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let item = items.iter().find(|p| p["id"] == product).unwrap();
    assert_eq!(item["name"], "Catalogued");
    assert_eq!(item["description"], "");
    assert_eq!(item["isPublic"], false);
    // SKM15: keys are random, not derived from their fields (SKGL).
    assert_eq!(item["keyAlgorithm"], 1);
    let definitions = &item["featureDefinitions"];
    assert_eq!(definitions["f1"], json!({"name": "pro", "type": 0}));
    assert_eq!(definitions["f2"], json!({"name": "team", "type": 0}));
    assert_eq!(definitions["f8"], json!({"name": "", "type": 0}));
    assert_eq!(definitions["allLicensesTimeLimited"], false);
    assert_eq!(definitions["blockExpiredLicenses"], false);
    let objects = item["dataObjects"].as_array().unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0]["name"], "latest");
    assert_eq!(objects[0]["stringValue"], "2.1");
    assert_eq!(objects[0]["intValue"], 7);
    assert!(objects[0]["id"].as_i64().unwrap() > 0);
    // A product's token sees its product, and only its data objects.
    let scoped = token(
        app,
        json!({"name": "one", "permissions": ["cryptolens:getproducts"], "product_id": other}),
    )
    .await;
    let r = post(app, "/api/product/GetProducts", &[("token", &scoped)]).await;
    let items = r.body["products"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], other);
    assert_eq!(items[0]["dataObjects"][0]["name"], "hidden");
}
on_every_backend!(
    cryptolens_get_products_has_definitions_algorithm_and_data_objects,
    products
);

async fn customers(app: &TestApp, db_url: &str) {
    let product = app.product("Customers", &[]).await;
    let other = app.product("Other customers", &[]).await;
    let tok = sdk_token(
        app,
        &[
            "addcustomer",
            "editcustomer",
            "removecustomer",
            "getcustomerlicensesbysecret",
            "getcustomers",
            "createkey",
            "getkey",
        ],
    )
    .await;
    let r = post(
        app,
        "/api/customer/AddCustomer",
        &[
            ("token", &tok),
            ("Name", "Ada"),
            ("Email", "ada@example.com"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let id = r.body["customerId"].as_i64().unwrap();
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("kc_"), "{secret}");
    let cid = id.to_string();
    let mine = create_key(app, &tok, product, &[("CustomerId", &cid)]).await;
    let theirs = create_key(app, &tok, other, &[("CustomerId", &cid)]).await;
    let by_secret = |tok: String, secret: String| async move {
        post(
            app,
            "/api/customer/GetCustomerLicensesBySecret",
            &[("token", &tok), ("Secret", &secret), ("ModelVersion", "3")],
        )
        .await
    };
    let keys = |r: &crate::cryptolens::Reply| -> Vec<String> {
        r.body["licenseKeys"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|k| k["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = by_secret(tok.clone(), secret.clone()).await;
    assert_eq!(keys(&r), [mine.clone(), theirs.clone()]);
    assert_eq!(r.body["licenseKeys"][0]["customer"]["name"], "Ada");
    // A product's token sees that product's licenses only.
    let scoped = token(
        app,
        json!({"name": "p", "product_id": product,
               "permissions": ["cryptolens:getcustomerlicensesbysecret", "cryptolens:editcustomer",
                               "cryptolens:removecustomer"]}),
    )
    .await;
    let seen = keys(&by_secret(scoped.clone(), secret.clone()).await);
    assert_eq!(seen, [mine.as_str()]);
    assert_error(
        &by_secret(tok.clone(), "kc_not-a-secret".into()).await,
        "Could not find the customer.",
    );
    // The server keeps only the secret's hash.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT secret_hash FROM customers WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let stored = stored.unwrap();
    assert_eq!(stored.len(), 64);
    assert!(!stored.contains(&secret[3..]));

    // EditCustomer: what is given changes, what is empty (as .NET sends a null) stays.
    let r = post(
        app,
        "/api/customer/EditCustomer",
        &[
            ("token", &tok),
            ("CustomerId", &cid),
            ("Name", "Ada King"),
            ("Email", ""),
            ("CompanyName", "Analytical Engines"),
            ("EnableCustomerAssociation", ""),
            ("MaxNoOfDevices", ""),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    assert_eq!(r.body["customerId"], id);
    assert!(r.body.get("secret").is_none());
    let r = app.get(&format!("/v1/customers/{id}")).await;
    assert_eq!(
        (
            r.body["name"].clone(),
            r.body["email"].clone(),
            r.body["company"].clone()
        ),
        (
            json!("Ada King"),
            json!("ada@example.com"),
            json!("Analytical Engines")
        )
    );
    assert!(!r.body.to_string().contains(&secret[3..]));
    // A new secret replaces the old one.
    let r = post(
        app,
        "/api/customer/EditCustomer",
        &[("token", &tok), ("CustomerId", &cid), ("Secret", "True")],
    )
    .await;
    let renewed = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(renewed, secret);
    assert_error(
        &by_secret(tok.clone(), secret.clone()).await,
        "Could not find the customer.",
    );
    assert_eq!(
        by_secret(tok.clone(), renewed.clone()).await.body["result"],
        0
    );
    // And through the native API, shown once.
    let r = app
        .post(&format!("/v1/customers/{id}/secret"), json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let native_secret = r.body["secret"].as_str().unwrap().to_owned();
    assert_error(
        &by_secret(tok.clone(), renewed).await,
        "Could not find the customer.",
    );
    assert_eq!(keys(&by_secret(tok.clone(), native_secret).await).len(), 2);
    assert_eq!(
        app.post("/v1/customers/999999/secret", json!({}))
            .await
            .status,
        404
    );
    // Customers belong to every product: a product's token neither edits nor removes them.
    for (method, extra) in [
        ("EditCustomer", ("Name", "X")),
        ("RemoveCustomer", ("v", "1")),
    ] {
        let r = post(
            app,
            &format!("/api/customer/{method}"),
            &[("token", &scoped), ("CustomerId", &cid), extra],
        )
        .await;
        assert_error(&r, "Access denied.");
    }
    let r = post(
        app,
        "/api/customer/EditCustomer",
        &[("token", &tok), ("CustomerId", "999999"), ("Name", "X")],
    )
    .await;
    assert_error(&r, "Could not find the customer.");
    let getkey_only = sdk_token(app, &["getkey"]).await;
    let r = post(
        app,
        "/api/customer/RemoveCustomer",
        &[("token", &getkey_only), ("CustomerId", &cid)],
    )
    .await;
    assert_error(&r, "Access denied.");

    // RemoveCustomer: the licenses stay, without a customer, and say so in their audit log.
    let r = post(
        app,
        "/api/customer/RemoveCustomer",
        &[("token", &tok), ("CustomerId", &cid)],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    assert_eq!(app.get(&format!("/v1/customers/{id}")).await.status, 404);
    let lid = license_id(app, &mine).await;
    let license = app.get(&format!("/v1/licenses/{lid}")).await;
    assert_eq!(license.body["customer_id"], json!(null));
    assert!(app
        .actions(lid)
        .await
        .contains(&"customer_removed".to_owned()));
    let pid = product.to_string();
    let r = post(
        app,
        "/api/key/GetKey",
        &[("token", &tok), ("ProductId", &pid), ("Key", &mine)],
    )
    .await;
    assert_eq!(r.body["licenseKey"]["customer"], json!(null), "{}", r.body);
    let r = post(
        app,
        "/api/customer/RemoveCustomer",
        &[("token", &tok), ("CustomerId", &cid)],
    )
    .await;
    assert_error(&r, "Could not find the customer.");

    // The native API removes customers too, but not one that payments name.
    let paying = app
        .post("/v1/customers", json!({"name": "Payer"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    sqlx::query(
        "INSERT INTO payments (provider, object_kind, object_id, status, customer_id, event_id, \
         created_at, updated_at) VALUES ('stripe', 'invoice', 'in_1', 'paid', $1, 'evt_1', 0, 0)",
    )
    .bind(paying)
    .execute(&pool)
    .await
    .unwrap();
    let r = app.delete(&format!("/v1/customers/{paying}")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let plain = app
        .post("/v1/customers", json!({"name": "Plain"}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let r = app.delete(&format!("/v1/customers/{plain}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Plain");
    assert_eq!(
        app.delete(&format!("/v1/customers/{plain}")).await.status,
        404
    );
    pool.close().await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cryptolens_customers_are_edited_removed_and_found_by_secret() {
    use crate::helpers::{backends, spawn, test_http, TestDb};
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn(&db, test_http()).await;
        customers(&app, &db.any_url()).await;
        app.stop().await;
        db.remove().await;
    }
}

async fn unsupported_methods(app: &TestApp) {
    let tok = sdk_token(app, &["activate", "getkey", "createkey"]).await;
    let product = app.product("Unsupported", &[]).await.to_string();
    for (path, named) in [
        ("/api/key/ChangeReseller", "key/ChangeReseller"),
        (
            "/api//key/CreateKeyFromTemplate/",
            "key/CreateKeyFromTemplate",
        ),
        ("/api/data/UploadValuesToKey", "data/UploadValuesToKey"),
        ("/api/subscription/RecordUsage/", "subscription/RecordUsage"),
        (
            "/api/paymentform/CreateSession/",
            "paymentform/CreateSession",
        ),
        ("/api/ai/GetWebAPILog", "ai/*"),
        ("/api/userauth/login/", "userauth/*"),
    ] {
        let r = post(
            app,
            path,
            &[
                ("token", &tok),
                ("ProductId", &product),
                ("Key", "AAAAA-BBBBB"),
            ],
        )
        .await;
        assert_eq!(
            (r.status, r.body["result"].clone()),
            (200, json!(1)),
            "{path}"
        );
        let message = r.body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("Keyturn does not support {named}. ")),
            "{path}: {message}"
        );
    }
    // Any other method, with or without a token, named as the caller wrote it (in short).
    for params in [vec![("token", tok.as_str())], vec![]] {
        let r = post(app, "/api/key/Levitate", &params).await;
        assert_error(&r, "Keyturn does not support the method \"key/levitate\".");
    }
    let r = crate::cryptolens::get(app, "/api/nothing").await;
    assert_error(&r, "Keyturn does not support the method \"nothing\".");
}
on_every_backend!(
    cryptolens_methods_keyturn_does_not_serve_answer_in_the_cryptolens_shape,
    unsupported_methods
);

async fn os_info(app: &TestApp) {
    let product = app.product("Machines", &[]).await;
    let tok = sdk_token(app, &["activate", "createkey"]).await;
    let rsa = rsa_key(app, product).await;
    let key = create_key(app, &tok, product, &[("MaxNoOfMachines", "3")]).await;
    let id = license_id(app, &key).await;
    // As the .NET SDK sends it on every Activate.
    let windows = r#"{"OSName":"Windows","OSVersion":"10.0.19045","Is64Bit":true}"#;
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[("MachineCode", "pc"), ("OSInfo", windows)],
    )
    .await;
    let license = verified_license(&r, &rsa);
    // The license's machine objects keep exactly their five keys (Python builds them by name).
    let machine = license["ActivatedMachines"][0].as_object().unwrap();
    assert_eq!(machine.len(), 5, "{machine:?}");
    let os_of = |machines: &serde_json::Value, mc: &str| {
        machines["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["fingerprint"] == mc)
            .unwrap_or_else(|| panic!("{machines}"))["os_info"]
            .clone()
    };
    let machines = app.get(&format!("/v1/licenses/{id}/activations")).await;
    assert_eq!(os_of(&machines.body, "pc"), windows);
    let events = app.get(&format!("/v1/licenses/{id}/events")).await;
    let activated = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "activated")
        .unwrap()
        .clone();
    assert_eq!(activated["details"]["os_info"], windows);
    // The same machine activating again from an upgraded system: the latest is kept. Without
    // OSInfo (or with an SDK's "null"), what is known stays.
    let upgraded = r#"{"OSName":"Windows","OSVersion":"10.0.22631","Is64Bit":true}"#;
    for (sent, kept) in [(upgraded, upgraded), ("null", upgraded), ("", upgraded)] {
        let r = signed_call(
            app,
            "Activate",
            &tok,
            product,
            &key,
            &[("MachineCode", "pc"), ("OSInfo", sent)],
        )
        .await;
        verified_license(&r, &rsa);
        let machines = app.get(&format!("/v1/licenses/{id}/activations")).await;
        assert_eq!(os_of(&machines.body, "pc"), kept, "sent {sent:?}");
    }
    // Floating seats record it too; machines activated without it show none.
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[
            ("MachineCode", "float"),
            ("FloatingTimeInterval", "300"),
            ("OSInfo", "Linux"),
        ],
    )
    .await;
    verified_license(&r, &rsa);
    let r = signed_call(
        app,
        "Activate",
        &tok,
        product,
        &key,
        &[("MachineCode", "bare")],
    )
    .await;
    verified_license(&r, &rsa);
    let machines = app.get(&format!("/v1/licenses/{id}/activations")).await;
    assert_eq!(os_of(&machines.body, "float"), "Linux");
    assert_eq!(os_of(&machines.body, "bare"), json!(null));
    // Bounded, one line.
    for bad in ["a".repeat(2001), "line\nbreak".to_owned()] {
        let r = signed_call(
            app,
            "Activate",
            &tok,
            product,
            &key,
            &[("MachineCode", "pc"), ("OSInfo", &bad)],
        )
        .await;
        assert_error(&r, "The input parameters were incorrect.");
    }
}
on_every_backend!(cryptolens_activate_records_the_os_info, os_info);
