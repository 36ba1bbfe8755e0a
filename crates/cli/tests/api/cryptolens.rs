//! The Cryptolens Web API v3 on the wire: paths, parameters, replies, signatures and tokens.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyturn_core::{RsaDigest, RsaPublicKey};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestApp;

const ALL_METHODS: &[&str] = &[
    "activate",
    "deactivate",
    "getkey",
    "createkey",
    "createtrialkey",
    "extendlicense",
    "blockkey",
    "unblockkey",
    "addfeature",
    "removefeature",
    "machinelocklimit",
    "changenotes",
    "changecustomer",
    "addcustomer",
    "getcustomerlicenses",
    "getcustomers",
    "getkeys",
    "getproducts",
];

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// A form-encoded POST to `path` (as given, slashes and case included).
pub(crate) async fn post(app: &TestApp, path: &str, params: &[(&str, &str)]) -> Reply {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .form(params)
        .send()
        .await
        .expect("request reaches the server");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

pub(crate) async fn get(app: &TestApp, path_and_query: &str) -> Reply {
    let r = app
        .http
        .get(format!("{}{path_and_query}", app.base))
        .send()
        .await
        .expect("request reaches the server");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

pub(crate) async fn token(app: &TestApp, body: Value) -> String {
    let r = app.post("/v1/tokens", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["token"].as_str().unwrap().to_owned()
}

async fn full_token(app: &TestApp) -> String {
    let permissions: Vec<String> = ALL_METHODS
        .iter()
        .map(|m| format!("cryptolens:{m}"))
        .collect();
    token(app, json!({"name": "sdk", "permissions": permissions})).await
}

pub(crate) async fn rsa_key(app: &TestApp, product: i64) -> RsaPublicKey {
    let r = app
        .http
        .get(format!(
            "{}/v1/products/{product}/public-key?format=rsa-xml",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    RsaPublicKey::from_xml(&r.text().await.unwrap()).unwrap()
}

/// Creates a key through CreateKey and returns it.
pub(crate) async fn create_key(
    app: &TestApp,
    tok: &str,
    product: i64,
    extra: &[(&str, &str)],
) -> String {
    let pid = product.to_string();
    let mut params = vec![("token", tok), ("ProductId", pid.as_str())];
    params.extend_from_slice(extra);
    let r = post(app, "/api/key/CreateKey", &params).await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    r.body["key"].as_str().unwrap().to_owned()
}

pub(crate) fn assert_error(r: &Reply, message: &str) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"], 1, "{}", r.body);
    assert_eq!(r.body["message"], message, "{}", r.body);
}

/// The license JSON inside a SignMethod=1 reply, after checking its signature.
pub(crate) fn verified_license(r: &Reply, key: &RsaPublicKey) -> Value {
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let bytes = B64.decode(r.body["licenseKey"].as_str().unwrap()).unwrap();
    let sig = B64.decode(r.body["signature"].as_str().unwrap()).unwrap();
    assert!(
        key.verify(RsaDigest::Sha256, &bytes, &sig),
        "signature does not verify"
    );
    serde_json::from_slice(&bytes).unwrap()
}

async fn loose_paths_and_parameters(app: &TestApp) {
    let product = app.product("Wire", &["pro", "team"]).await;
    let tok = full_token(app).await;
    let key = create_key(
        app,
        &tok,
        product,
        &[("F2", "True"), ("MaxNoOfMachines", "2")],
    )
    .await;
    let rsa = rsa_key(app, product).await;
    let pid = product.to_string();
    let activate = [
        ("token", tok.as_str()),
        ("ProductId", pid.as_str()),
        ("Key", key.as_str()),
        ("MachineCode", "m1"),
        ("Sign", "True"),
        ("SignMethod", "1"),
        ("FriendlyName", "None"),
        ("FloatingTimeInterval", "null"),
        ("MaxOverdraft", "undefined"),
        ("ModelVersion", "3"),
    ];
    // The same call as the SDKs spell the path.
    for path in [
        "/api/key/Activate",
        "/api/key/activate",
        "/api//key/activate/",
        "//api//KEY/ACTIVATE",
        "/API/key/Activate/",
    ] {
        let r = post(app, path, &activate).await;
        let license = verified_license(&r, &rsa);
        assert_eq!(license["Key"], key, "{path}");
    }
    // Parameter names in any case; `None`/`null`/`undefined` mean "not given".
    let r = post(
        app,
        "/api/key/activate",
        &[
            ("TOKEN", tok.as_str()),
            ("productid", pid.as_str()),
            ("key", key.as_str()),
            ("machinecode", "m1"),
            ("sign", "true"),
            ("signmethod", "StringSign"),
        ],
    )
    .await;
    let license = verified_license(&r, &rsa);
    assert_eq!(license["F1"], false);
    assert_eq!(license["F2"], true);
    assert_eq!(license["ActivatedMachines"][0]["Mid"], "m1");
    // Model version 1 (no ModelVersion): exactly Mid, IP, Time, a bare IP.
    let machine = license["ActivatedMachines"][0].as_object().unwrap();
    assert_eq!(machine.keys().collect::<Vec<_>>(), ["IP", "Mid", "Time"]);
    assert_eq!(machine["IP"], "127.0.0.1");
    assert!(license.get("Reseller").is_none());

    // GET with a query string, as payment-form requests call the API.
    let r = get(
        app,
        &format!(
            "/api/key/GetKey?token={tok}&ProductId={product}&Key={key}&Sign=true&SignMethod=1&ModelVersion=3"
        ),
    )
    .await;
    let license = verified_license(&r, &rsa);
    assert_eq!(license["ActivatedMachines"][0]["FriendlyName"], "");
    assert_eq!(license["Reseller"], Value::Null);
    assert!(license["DataObjects"].as_array().unwrap().is_empty());

    // Unsigned when not asked: no signature, nothing signed.
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &key),
            ("SignMethod", "1"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0);
    assert_eq!(r.body["signature"], Value::Null);

    // Unparsable values are bad input.
    let r = post(
        app,
        "/api/key/Activate",
        &[
            ("token", &tok),
            ("ProductId", "twelve"),
            ("Key", &key),
            ("MachineCode", "m1"),
        ],
    )
    .await;
    assert_error(&r, "The input parameters were incorrect.");
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &key),
            ("Sign", "maybe"),
        ],
    )
    .await;
    assert_error(&r, "The input parameters were incorrect.");
    let r = post(app, "/api/key/GetKey", &[("token", &tok), ("Key", &key)]).await;
    assert_error(&r, "The input parameters were incorrect.");
    let r = post(app, "/api/key/Fly", &[("token", &tok)]).await;
    assert_error(&r, "Keyturn does not support the method \"key/fly\".");
}
on_every_backend!(
    cryptolens_paths_and_parameters_are_read_loosely,
    loose_paths_and_parameters
);

async fn error_codes(app: &TestApp) {
    let product = app.product("Errors", &[]).await;
    let other = app.product("Elsewhere", &[]).await;
    let tok = full_token(app).await;
    let key = create_key(app, &tok, product, &[("MaxNoOfMachines", "1")]).await;
    let pid = product.to_string();
    let act = |machine: &'static str, t: String, p: String, k: String| async move {
        post(
            app,
            "/api/key/Activate",
            &[
                ("token", t.as_str()),
                ("ProductId", p.as_str()),
                ("Key", k.as_str()),
                ("MachineCode", machine),
                ("Sign", "true"),
                ("SignMethod", "1"),
            ],
        )
        .await
    };
    assert_error(
        &act("a", "kt_bogus".into(), pid.clone(), key.clone()).await,
        "Unable to authenticate.",
    );
    let r = post(
        app,
        "/api/key/GetKey",
        &[("ProductId", &pid), ("Key", &key)],
    )
    .await;
    assert_error(&r, "Unable to authenticate.");
    let getkey_only = token(
        app,
        json!({"name": "narrow", "permissions": ["cryptolens:GetKey"]}),
    )
    .await;
    assert_error(
        &act("a", getkey_only, pid.clone(), key.clone()).await,
        "Access denied.",
    );
    // Native permissions do not open the Cryptolens API.
    let native = token(
        app,
        json!({"name": "native", "permissions": ["licenses:write", "activations:write"]}),
    )
    .await;
    assert_error(
        &act("a", native, pid.clone(), key.clone()).await,
        "Access denied.",
    );
    assert_error(
        &act("a", tok.clone(), "999999".into(), key.clone()).await,
        "Could not find the product.",
    );
    assert_error(
        &act("a", tok.clone(), other.to_string(), key.clone()).await,
        "Could not find the key.",
    );
    assert_error(
        &act(
            "a",
            tok.clone(),
            pid.clone(),
            "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ".into(),
        )
        .await,
        "Could not find the key.",
    );
    assert_eq!(
        act("a", tok.clone(), pid.clone(), key.clone()).await.body["result"],
        0
    );
    assert_error(
        &act("b", tok.clone(), pid.clone(), key.clone()).await,
        "Cannot activate the new device as the limit has been reached.",
    );
    let r = post(
        app,
        "/api/key/Deactivate",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &key),
            ("MachineCode", "b"),
        ],
    )
    .await;
    assert_error(
        &r,
        "Either the machine code was never activated or key activation feature was never set up.",
    );
    let r = post(
        app,
        "/api/key/BlockKey",
        &[("token", &tok), ("ProductId", &pid), ("Key", &key)],
    )
    .await;
    assert_eq!(r.body["result"], 0);
    assert_error(
        &act("a", tok.clone(), pid.clone(), key.clone()).await,
        "The key is blocked and cannot be accessed.",
    );
    let r = post(
        app,
        "/api/key/CreateTrialKey",
        &[("token", &tok), ("ProductId", &pid), ("MachineCode", "")],
    )
    .await;
    assert_error(&r, "The machine code cannot be null.");

    // A license shortened into the past (negative NoOfDays) is still returned, as Cryptolens
    // returns it: the SDK checks `Expires` (cryptolens_semantics has the rest).
    let short = create_key(
        app,
        &tok,
        product,
        &[("Period", "2"), ("MaxNoOfMachines", "5")],
    )
    .await;
    let r = post(
        app,
        "/api/key/ExtendLicense",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &short),
            ("NoOfDays", "-3"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    assert_eq!(
        act("c", tok.clone(), pid.clone(), short.clone()).await.body["result"],
        0
    );

    // Cryptolens calls are in the audit log under the calling token.
    let license = app.get(&format!("/v1/licenses/by-key/{key}")).await;
    let events = app
        .get(&format!("/v1/licenses/{}/events", license.body["id"]))
        .await;
    let actions: Vec<(String, String)> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["created", "activated", "blocked"]
    );
    assert!(actions.iter().all(|(_, actor)| actor.starts_with("token:")));
}
on_every_backend!(cryptolens_errors_use_the_sdk_messages, error_codes);

async fn signatures_are_reused_while_nothing_changes(app: &TestApp) {
    let product = app.product("Signed", &["pro"]).await;
    let tok = full_token(app).await;
    let key = create_key(app, &tok, product, &[("MaxNoOfMachines", "3")]).await;
    let rsa = rsa_key(app, product).await;
    let pid = product.to_string();
    let get_key = || async {
        post(
            app,
            "/api/key/GetKey",
            &[
                ("token", tok.as_str()),
                ("ProductId", pid.as_str()),
                ("Key", key.as_str()),
                ("Sign", "True"),
                ("SignMethod", "1"),
                ("ModelVersion", "3"),
            ],
        )
        .await
    };
    let first = get_key().await;
    let first_license = verified_license(&first, &rsa);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = get_key().await;
    verified_license(&second, &rsa);
    assert_eq!(first.body["signature"], second.body["signature"]);
    assert_eq!(first.body["licenseKey"], second.body["licenseKey"]);

    // Activating the same machine twice changes nothing the reply shows: same signature.
    let activate = || async {
        post(
            app,
            "/api/key/Activate",
            &[
                ("token", tok.as_str()),
                ("ProductId", pid.as_str()),
                ("Key", key.as_str()),
                ("MachineCode", "box"),
                ("Sign", "True"),
                ("SignMethod", "1"),
                ("ModelVersion", "3"),
            ],
        )
        .await
    };
    let a1 = activate().await;
    let a2 = activate().await;
    verified_license(&a2, &rsa);
    assert_eq!(a1.body["signature"], a2.body["signature"]);

    // A change gives a new state and a new signature at once.
    let r = post(
        app,
        "/api/key/ChangeNotes",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &key),
            ("Notes", "renewed"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0);
    let third = get_key().await;
    let third_license = verified_license(&third, &rsa);
    assert_ne!(third.body["signature"], second.body["signature"]);
    assert_eq!(third_license["Notes"], "renewed");
    assert_eq!(first_license["Notes"], Value::Null);
    assert!(third_license["SignDate"].as_i64() >= first_license["SignDate"].as_i64());
}
on_every_backend!(
    cryptolens_signatures_are_made_once_per_state,
    signatures_are_reused_while_nothing_changes
);

/// The comma-joined value text .NET's legacy check signs, built from the object form.
pub(crate) fn legacy_text(o: &Value) -> String {
    let s = |v: &Value| match v {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut parts: Vec<String> = [
        "productId",
        "id",
        "key",
        "created",
        "expires",
        "period",
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
        "f6",
        "f7",
        "f8",
        "notes",
        "block",
        "globalId",
        "customer",
    ]
    .iter()
    .map(|f| s(&o[*f]))
    .collect();
    let machines: String = o["activatedMachines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{},{},{},", s(&m["mid"]), s(&m["ip"]), s(&m["time"])))
        .collect();
    parts.push(format!("[{machines}]"));
    for f in ["trialActivation", "maxNoOfMachines", "allowedMachines"] {
        parts.push(s(&o[f]));
    }
    let data_objects: String = o["dataObjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let fields = ["id", "name", "stringValue", "intValue"].map(|f| s(&d[f]));
            format!("{},", fields.join(","))
        })
        .collect();
    parts.push(format!("[{data_objects}]"));
    parts.push(s(&o["signDate"]));
    parts.push(String::new());
    parts.join(",")
}

async fn legacy_and_metadata_signatures(app: &TestApp) {
    let product = app.product("Legacy", &["a", "b"]).await;
    let tok = full_token(app).await;
    let key = create_key(
        app,
        &tok,
        product,
        &[("F1", "True"), ("Period", "30"), ("MaxNoOfMachines", "1")],
    )
    .await;
    let rsa = rsa_key(app, product).await;
    let pid = product.to_string();
    // The .NET SDK's default: SignMethod=LinqSign, object form with ISO dates.
    let r = post(
        app,
        "/api//key/activate/",
        &[
            ("token", tok.as_str()),
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("MachineCode", "pc"),
            ("Sign", "True"),
            ("SignMethod", "LinqSign"),
            ("modelversion", "1"),
            ("v", "1"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let object = &r.body["licenseKey"];
    assert_eq!(object["key"], key);
    assert_eq!(object["f1"], true);
    let created = object["created"].as_str().unwrap();
    assert_eq!(created.len(), 19, "{created}");
    assert_eq!(&created[10..11], "T");
    let text = legacy_text(object);
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let sig = B64.decode(object["signature"].as_str().unwrap()).unwrap();
    assert!(rsa.verify(RsaDigest::Sha256, &utf16, &sig), "{text}");
    assert!(!rsa.verify(RsaDigest::Sha256, text.as_bytes(), &sig));

    // Metadata: signed with SHA-512 inside a base64 JSON wrapper.
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", tok.as_str()),
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("Sign", "true"),
            ("SignMethod", "1"),
            ("Metadata", "true"),
        ],
    )
    .await;
    verified_license(&r, &rsa);
    let metadata = &r.body["metadata"];
    assert_eq!(metadata["activatedMachines"], 1);
    assert_eq!(metadata["licenseStatus"]["isValid"], true);
    let wrapper: Value =
        serde_json::from_slice(&B64.decode(metadata["signature"].as_str().unwrap()).unwrap())
            .unwrap();
    let data = B64.decode(wrapper["Data"].as_str().unwrap()).unwrap();
    let sig = B64.decode(wrapper["Signature"].as_str().unwrap()).unwrap();
    assert!(rsa.verify(RsaDigest::Sha512, &data, &sig));
    let signed: Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(signed["licenseStatus"], metadata["licenseStatus"]);
}
on_every_backend!(
    cryptolens_legacy_and_metadata_signatures_verify,
    legacy_and_metadata_signatures
);

async fn token_scopes(app: &TestApp) {
    let product = app.product("Scoped", &[]).await;
    let other = app.product("Unscoped", &[]).await;
    let tok = full_token(app).await;
    let key = create_key(app, &tok, product, &[]).await;
    let second = create_key(app, &tok, product, &[]).await;
    let foreign = create_key(app, &tok, other, &[]).await;
    let pid = product.to_string();
    let get_key = |t: String, p: String, k: String| async move {
        post(
            app,
            "/api/key/GetKey",
            &[
                ("token", t.as_str()),
                ("ProductId", p.as_str()),
                ("Key", k.as_str()),
            ],
        )
        .await
    };

    // Product lock.
    let locked = token(
        app,
        json!({"name": "one product", "permissions": ["cryptolens:getkey", "cryptolens:createkey"], "product_id": product}),
    )
    .await;
    assert_eq!(
        get_key(locked.clone(), pid.clone(), key.clone()).await.body["result"],
        0
    );
    assert_error(
        &get_key(locked.clone(), other.to_string(), foreign.clone()).await,
        "Access denied.",
    );

    // Key lock by id.
    let license_id = app
        .get(&format!("/v1/licenses?product_id={product}"))
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == key.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let key_locked = token(
        app,
        json!({"name": "one key", "permissions": ["cryptolens:getkey", "cryptolens:createkey"], "key_lock": license_id}),
    )
    .await;
    assert_eq!(
        get_key(key_locked.clone(), pid.clone(), key.clone())
            .await
            .body["result"],
        0
    );
    assert_error(
        &get_key(key_locked.clone(), pid.clone(), second.clone()).await,
        "Access denied.",
    );
    let r = post(
        app,
        "/api/key/CreateKey",
        &[("token", &key_locked), ("ProductId", &pid)],
    )
    .await;
    assert_error(&r, "Access denied.");
    let bad = app
        .post(
            "/v1/tokens",
            json!({"name": "x", "permissions": ["cryptolens:getkey"], "key_lock": -5}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);

    // auth/KeyLock: a token with key lock -1 mints tokens locked to one key.
    let minter = token(
        app,
        json!({"name": "minter", "permissions": ["cryptolens:getkey"], "key_lock": -1}),
    )
    .await;
    let r = post(
        app,
        "/api/auth/KeyLock",
        &[("token", &minter), ("ProductId", &pid), ("Key", &second)],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let minted = r.body["token"].as_str().unwrap().to_owned();
    assert!(r.body["keyId"].as_i64().unwrap() > 0);
    assert_eq!(
        get_key(minted.clone(), pid.clone(), second.clone())
            .await
            .body["result"],
        0
    );
    assert_error(
        &get_key(minted.clone(), pid.clone(), key.clone()).await,
        "Access denied.",
    );
    let r = post(
        app,
        "/api/auth/KeyLock",
        &[("token", &tok), ("ProductId", &pid), ("Key", &second)],
    )
    .await;
    assert_error(&r, "Access denied.");

    // Tokens list their key lock.
    let listed = app.get("/v1/tokens").await;
    assert!(listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key_lock"] == license_id));
}
on_every_backend!(
    cryptolens_tokens_have_method_product_and_key_locks,
    token_scopes
);

async fn create_key_fields_and_bad_input(app: &TestApp) {
    let product = app.product("Catalogue", &["one", "two", "three"]).await;
    let tok = full_token(app).await;
    let pid = product.to_string();
    let before = app.license_count().await;
    // F4 does not exist on a product with three features: nothing is created.
    let r = post(
        app,
        "/api/key/CreateKey",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("F4", "true"),
            ("NoOfKeys", "3"),
            ("NewCustomer", "true"),
            ("Name", "Nobody"),
        ],
    )
    .await;
    assert_error(&r, "The input parameters were incorrect.");
    assert_eq!(app.license_count().await, before);
    let customers = app.get("/v1/customers").await;
    assert!(customers.body["data"].as_array().unwrap().is_empty());

    let r = post(
        app,
        "/api/key/CreateKey",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Period", "14"),
            ("F1", "True"),
            ("F3", "true"),
            ("Notes", "batch"),
            ("NoOfKeys", "3"),
            ("MaxNoOfMachines", "4"),
            ("AllowedMachines", "a\nb"),
            ("TrialActivation", "False"),
            ("NewCustomer", "True"),
            ("Name", "Grace"),
            ("Email", "grace@example.com"),
            ("CustomerId", "null"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 0, "{}", r.body);
    let keys = r.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(r.body["key"], keys[0]);
    let customer_id = r.body["customerId"].as_i64().unwrap();
    let lic = app
        .get(&format!(
            "/v1/licenses/by-key/{}",
            keys[1].as_str().unwrap()
        ))
        .await;
    assert_eq!(lic.status, 200, "{}", lic.body);
    assert_eq!(lic.body["features"], json!(["one", "three"]));
    assert_eq!(lic.body["allowed_machines"], json!(["a", "b"]));
    let r = post(
        app,
        "/api/customer/GetCustomerLicenses",
        &[("token", &tok), ("CustomerId", &customer_id.to_string())],
    )
    .await;
    let listed = r.body["licenseKeys"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["f1"], true);
    assert_eq!(listed[0]["f2"], false);
    assert_eq!(listed[0]["period"], 14);
    assert_eq!(listed[0]["maxNoOfMachines"], 4);
    assert_eq!(listed[0]["allowedMachines"], "a\nb");
    assert_eq!(listed[0]["customer"]["name"], "Grace");

    // AddOrUseExistingCustomer finds the customer by email instead of adding another.
    let r = post(
        app,
        "/api/key/CreateKey",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("AddOrUseExistingCustomer", "true"),
            ("Email", "GRACE@example.com"),
        ],
    )
    .await;
    assert_eq!(r.body["customerId"], customer_id, "{}", r.body);

    // CreateKey with a new customer needs AddCustomer too.
    let create_only = token(
        app,
        json!({"name": "create only", "permissions": ["cryptolens:createkey"]}),
    )
    .await;
    let r = post(
        app,
        "/api/key/CreateKey",
        &[
            ("token", &create_only),
            ("ProductId", &pid),
            ("NewCustomer", "true"),
            ("Name", "X"),
        ],
    )
    .await;
    assert_error(&r, "Access denied.");

    // GetKeys pages 99 at a time and reports totals.
    let r = post(
        app,
        "/api//product/getkeys/",
        &[("token", &tok), ("ProductId", &pid)],
    )
    .await;
    assert_eq!(r.body["total"], 4, "{}", r.body);
    assert_eq!(r.body["returned"], 4);
    assert_eq!(r.body["pageCount"], 1);
    let r = post(
        app,
        "/api/product/GetKeys",
        &[("token", &tok), ("ProductId", &pid), ("Page", "2")],
    )
    .await;
    assert_eq!(r.body["returned"], 0);
    let r = post(
        app,
        "/api/product/GetKeys",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("SearchQuery", "F1 == maybe"),
        ],
    )
    .await;
    assert_eq!(r.body["result"], 1, "{}", r.body);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .starts_with("The input parameters were incorrect. SearchQuery:"));
    let r = post(app, "/api/product/GetProducts", &[("token", &tok)]).await;
    let products = r.body["products"].as_array().unwrap();
    assert!(products
        .iter()
        .any(|p| p["id"] == product && p["featureDefinitions"]["f2"]["name"] == "two"));
}
on_every_backend!(
    cryptolens_create_key_fields_and_bad_input,
    create_key_fields_and_bad_input
);

async fn public_key_forms(app: &TestApp) {
    let product = app.product("Keys", &[]).await;
    let r = app
        .http
        .get(format!(
            "{}/v1/products/{product}/public-key?format=rsa-xml",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let xml = r.text().await.unwrap();
    assert!(xml.starts_with("<RSAKeyValue><Modulus>"), "{xml}");
    assert!(xml.ends_with("</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>"));
    let key = RsaPublicKey::from_xml(&xml).unwrap();
    assert_eq!(key.modulus().len(), 256);
    // The same key every time (stored, not regenerated).
    assert_eq!(rsa_key(app, product).await, key);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/products/{product}/public-key?format=pgp"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .call(
            Method::GET,
            "/v1/products/424242/public-key?format=rsa-xml",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}
on_every_backend!(cryptolens_public_key_as_rsa_xml, public_key_forms);

#[test]
fn cli_creates_cryptolens_tokens_and_prints_the_rsa_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyturn"))
            .args(args)
            .env("KEYTURN_DATA_DIR", dir.path())
            .env_remove("KEYTURN_DATABASE_URL")
            .env_remove("KEYTURN_CONFIG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = run(&["migrate"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["product", "create", "--name", "Cli"]);
    assert!(ok, "{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let (ok, xml, err) = run(&["product", "public-key", &id, "--format", "rsa-xml"]);
    assert!(ok, "{err}");
    assert!(RsaPublicKey::from_xml(xml.trim()).is_ok(), "{xml}");
    let (ok, again, _) = run(&["product", "public-key", &id, "--format", "rsa-xml"]);
    assert!(ok);
    assert_eq!(xml, again);
    let (ok, token, err) = run(&[
        "token",
        "create",
        "--name",
        "sdk",
        "--cryptolens",
        "Activate",
        "--cryptolens",
        "getkey",
        "--product",
        &id,
        "--key-lock",
        "-1",
    ]);
    assert!(ok, "{err}");
    assert!(token.trim().starts_with("kt_"));
    let (ok, list, _) = run(&["token", "list", "--output", "json"]);
    assert!(ok);
    let tokens: Value = serde_json::from_str(&list).unwrap();
    let sdk = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sdk")
        .unwrap();
    assert_eq!(
        sdk["permissions"],
        json!(["cryptolens:activate", "cryptolens:getkey"])
    );
    assert_eq!(sdk["key_lock"], -1);
    let (ok, _, err) = run(&["token", "create", "--cryptolens", "Fly"]);
    assert!(!ok);
    assert!(err.contains("Fly"), "{err}");
}

async fn concurrent_activations_keep_the_limit(app: &TestApp) {
    let product = app.product("Crowded", &[]).await;
    let tok = full_token(app).await;
    let node = create_key(app, &tok, product, &[("MaxNoOfMachines", "3")]).await;
    let floating = create_key(app, &tok, product, &[("MaxNoOfMachines", "2")]).await;
    let pid = product.to_string();
    let race = |key: String, interval: &'static str, overdraft: &'static str| {
        let tok = tok.clone();
        let pid = pid.clone();
        async move {
            let replies = futures::future::join_all((0..30).map(|i| {
                let machine = format!("machine-{i}");
                let (tok, pid, key) = (tok.clone(), pid.clone(), key.clone());
                async move {
                    post(
                        app,
                        "/api/key/Activate",
                        &[
                            ("token", tok.as_str()),
                            ("ProductId", pid.as_str()),
                            ("Key", key.as_str()),
                            ("MachineCode", machine.as_str()),
                            ("FloatingTimeInterval", interval),
                            ("MaxOverdraft", overdraft),
                        ],
                    )
                    .await
                }
            }))
            .await;
            let ok = replies.iter().filter(|r| r.body["result"] == 0).count();
            let full = replies
                .iter()
                .filter(|r| {
                    r.body["message"]
                        == "Cannot activate the new device as the limit has been reached."
                })
                .count();
            assert_eq!(ok + full, 30);
            ok
        }
    };
    assert_eq!(race(node.clone(), "0", "0").await, 3);
    assert_eq!(race(floating.clone(), "600", "1").await, 3);
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", &tok),
            ("ProductId", &pid),
            ("Key", &floating),
            ("SignMethod", "1"),
        ],
    )
    .await;
    let license: Value =
        serde_json::from_slice(&B64.decode(r.body["licenseKey"].as_str().unwrap()).unwrap())
            .unwrap();
    let mids: Vec<&str> = license["ActivatedMachines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Mid"].as_str().unwrap())
        .collect();
    assert_eq!(mids.len(), 3);
    assert_eq!(
        mids.iter()
            .filter(|m| m.starts_with("floating:overdraft:"))
            .count(),
        1,
        "{mids:?}"
    );
}
on_every_backend!(
    cryptolens_activations_keep_the_machine_limit_under_concurrency,
    concurrent_activations_keep_the_limit
);

/// Every method is limited per client IP, back-office ones too: their token travels as a
/// request parameter, where guessing costs nothing else.
#[tokio::test]
async fn cryptolens_calls_are_rate_limited_per_ip() {
    use crate::helpers::{backends, spawn, TestDb};
    let db = TestDb::create(&backends().remove(0)).await;
    let app = spawn(
        &db,
        keyturn_http::HttpSettings {
            rate_limit_per_minute: 60,
            rate_limit_burst: 2,
            ..keyturn_http::HttpSettings::default()
        },
    )
    .await;
    let product = app.product("Limited", &[]).await;
    let tok = full_token(&app).await;
    // The native API's vendor endpoints are not limited.
    let key = app.license(json!({"product_id": product})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = product.to_string();
    let params = [("token", tok.as_str()), ("ProductId", &pid), ("Key", &key)];
    assert_eq!(
        post(&app, "/api/key/GetKey", &params).await.body["result"],
        0
    );
    assert_eq!(
        post(&app, "/api/key/CreateKey", &params[..2]).await.body["result"],
        0
    );
    for method in [
        "/api/key/GetKey",
        "/api/key/CreateKey",
        "/api/product/GetProducts",
    ] {
        // HTTP 200, as every Cryptolens error (the Java SDK reads no other), with the wait.
        let r = app
            .http
            .post(format!("{}{method}", app.base))
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method}");
        assert!(r.headers().get("retry-after").is_some(), "{method}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["result"], 1, "{method}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Too many requests"),
            "{body}"
        );
    }
    app.stop().await;
    db.remove().await;
}

/// Products from before the Cryptolens API get their RSA key on first use, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_products_get_an_rsa_key_on_first_use() {
    use crate::helpers::{backends, spawn, test_http, TestDb};
    use sqlx::Row;
    for backend in backends() {
        let db = TestDb::create(&backend).await;
        let app = spawn(&db, test_http()).await;
        let product = app.product("Old", &[]).await;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
        let count = |pool: sqlx::AnyPool| async move {
            sqlx::query(
                "SELECT COUNT(*) AS n FROM signing_keys WHERE product_id = $1 AND algorithm = 'rsa2048'",
            )
            .bind(product)
            .fetch_one(&pool)
            .await
            .unwrap()
            .get::<i64, _>("n")
        };
        sqlx::query("DELETE FROM signing_keys WHERE product_id = $1 AND algorithm = 'rsa2048'")
            .bind(product)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(count(pool.clone()).await, 0);
        let first = rsa_key(&app, product).await;
        assert_eq!(count(pool.clone()).await, 1);
        assert_eq!(rsa_key(&app, product).await, first);
        // Licenses it signs verify with that key.
        let tok = full_token(&app).await;
        let key = create_key(&app, &tok, product, &[]).await;
        let pid = product.to_string();
        let r = post(
            &app,
            "/api/key/GetKey",
            &[
                ("token", tok.as_str()),
                ("ProductId", pid.as_str()),
                ("Key", key.as_str()),
                ("Sign", "true"),
                ("SignMethod", "1"),
            ],
        )
        .await;
        verified_license(&r, &first);
        pool.close().await;
        app.stop().await;
        db.remove().await;
    }
}
