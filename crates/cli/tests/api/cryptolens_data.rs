//! Data objects and messages: the Cryptolens `data/*` and `message/*` methods and the native
//! `/v1/…/data` and `/v1/messages` endpoints.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures::future::join_all;
use keyturn_core::RsaDigest;
use serde_json::{json, Value};

use crate::cryptolens::{
    assert_error, create_key, legacy_text, post, rsa_key, token, verified_license, Reply,
};
use crate::helpers::TestApp;

const KEY_OR_PERMISSION: &str = "Not enough permission and/or key not found.";
const BOUND: &str = "The int value cannot pass the bound.";
const NO_OBJECT: &str = "Could not find the data object.";
const BAD_INPUT: &str = "The input parameters were incorrect.";
const DENIED: &str = "Access denied.";

const DATA_PERMISSIONS: &[&str] = &[
    "cryptolens:adddataobject",
    "cryptolens:listdataobjects",
    "cryptolens:removedataobject",
    "cryptolens:setintvalue",
    "cryptolens:setstringvalue",
    "cryptolens:incrementintvalue",
    "cryptolens:decrementintvalue",
];

/// A token with every data-object permission (and `extra`), with a key lock when given.
async fn data_token(app: &TestApp, key_lock: Option<i64>, extra: &[&str]) -> String {
    let permissions: Vec<&str> = DATA_PERMISSIONS.iter().chain(extra).copied().collect();
    token(
        app,
        json!({"name": "data", "permissions": permissions, "key_lock": key_lock}),
    )
    .await
}

/// Calls `/api/data/<method>` with a token and parameters.
async fn data(app: &TestApp, method: &str, tok: &str, params: &[(&str, &str)]) -> Reply {
    let mut all = vec![("token", tok)];
    all.extend_from_slice(params);
    post(app, &format!("/api/data/{method}"), &all).await
}

fn ok(r: &Reply) -> &Value {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"], 0, "{}", r.body);
    &r.body
}

/// `[(name, intValue, stringValue)]` of a `dataObjects` list.
fn listed(r: &Reply) -> Vec<(String, i64, String)> {
    ok(r)["dataObjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["intValue"].as_i64().unwrap(),
                d["stringValue"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn triple(name: &str, int: i64, text: &str) -> (String, i64, String) {
    (name.to_owned(), int, text.to_owned())
}

async fn key_data_objects(app: &TestApp) {
    let product = app.product("Metered", &["pro"]).await;
    let setup = token(
        app,
        json!({"name": "setup", "permissions": ["cryptolens:createkey", "cryptolens:getkey"]}),
    )
    .await;
    let key = create_key(app, &setup, product, &[("MaxNoOfMachines", "2")]).await;
    let other_key = create_key(app, &setup, product, &[]).await;
    let pid = product.to_string();
    let on_key = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
        let mut p = vec![("ProductId", pid.clone()), ("Key", key.clone())];
        p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        p
    };
    let client = data_token(app, Some(-1), &["cryptolens:getkey"]).await;
    let call = |method: &'static str, tok: String, params: Vec<(&'static str, String)>| async move {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        data(app, method, &tok, &params).await
    };

    // As in Cryptolens, the key forms want a token with a key lock.
    let unlocked = data_token(app, None, &[]).await;
    let r = call(
        "AddDataObjectToKey",
        unlocked.clone(),
        on_key(&[("Name", "credits")]),
    )
    .await;
    assert_error(&r, KEY_OR_PERMISSION);

    let r = call(
        "AddDataObjectToKey",
        client.clone(),
        on_key(&[("Name", "credits"), ("IntValue", "10")]),
    )
    .await;
    let credits = ok(&r)["id"].as_i64().unwrap();
    assert!(credits > 0);
    let r = call(
        "AddDataObjectToKey",
        client.clone(),
        on_key(&[("Name", "credits"), ("CheckForDuplicates", "True")]),
    )
    .await;
    assert_eq!(r.body["result"], 1, "{}", r.body);
    // Parameter names in any case, as the SDKs send them.
    let r = call(
        "adddataobjecttokey",
        client.clone(),
        on_key(&[("name", "note"), ("stringValue", "hello")]),
    )
    .await;
    let note = ok(&r)["id"].as_i64().unwrap();

    let r = call(
        "ListDataObjectsToKey",
        client.clone(),
        on_key(&[("Contains", "cred")]),
    )
    .await;
    assert_eq!(
        ok(&r)["dataObjects"],
        json!([{"id": credits, "name": "credits", "stringValue": "", "intValue": 10}])
    );

    // Increment by name; decrement by id with a lower bound; the sign of IntValue is ignored.
    ok(&call(
        "IncrementIntValueToKey",
        client.clone(),
        on_key(&[("Id", "0"), ("Name", "credits"), ("IntValue", "5")]),
    )
    .await);
    let credits_id = credits.to_string();
    let by_id = |extra: &[(&'static str, &'static str)]| {
        let mut p = on_key(extra);
        p.push(("Id", credits_id.clone()));
        p
    };
    let r = call(
        "DecrementIntValueToKey",
        client.clone(),
        by_id(&[("IntValue", "-20"), ("EnableBound", "True"), ("Bound", "0")]),
    )
    .await;
    assert_error(&r, BOUND);
    ok(&call(
        "DecrementIntValueToKey",
        client.clone(),
        by_id(&[("IntValue", "15"), ("EnableBound", "true"), ("Bound", "0")]),
    )
    .await);
    let r = call("ListDataObjectsToKey", client.clone(), on_key(&[])).await;
    assert_eq!(
        listed(&r),
        vec![triple("credits", 0, ""), triple("note", 0, "hello")]
    );

    let r = call(
        "SetIntValueToKey",
        client.clone(),
        by_id(&[("IntValue", "2147483648")]),
    )
    .await;
    assert_error(&r, BAD_INPUT);
    ok(&call(
        "SetIntValueToKey",
        client.clone(),
        on_key(&[("Name", "credits"), ("IntValue", "-7")]),
    )
    .await);
    ok(&call(
        "SetStringValueToKey",
        client.clone(),
        on_key(&[("Name", "note"), ("StringValue", "Grüße, \"quoted\"")]),
    )
    .await);

    // The license carries its data objects, signed, in both forms.
    let rsa = rsa_key(app, product).await;
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", client.as_str()),
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("Sign", "true"),
            ("SignMethod", "1"),
        ],
    )
    .await;
    let license = verified_license(&r, &rsa);
    assert_eq!(
        license["DataObjects"],
        json!([
            {"Id": credits, "Name": "credits", "StringValue": "", "IntValue": -7},
            {"Id": note, "Name": "note", "StringValue": "Grüße, \"quoted\"", "IntValue": 0},
        ])
    );
    let license_id = license["ID"].as_i64().unwrap();
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", client.as_str()),
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("Sign", "True"),
            ("SignMethod", "LinqSign"),
        ],
    )
    .await;
    let object = &ok(&r)["licenseKey"];
    assert_eq!(
        object["dataObjects"][0],
        json!({"id": credits, "name": "credits", "stringValue": "", "intValue": -7})
    );
    let text = legacy_text(object);
    assert!(
        text.contains(&format!(",[{credits},credits,,-7,{note},note,")),
        "{text}"
    );
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let sig = B64.decode(object["signature"].as_str().unwrap()).unwrap();
    assert!(rsa.verify(RsaDigest::Sha256, &utf16, &sig), "{text}");

    // Key locks: another key's lock does not reach this key; this key's lock does.
    let other_id = app
        .get(&format!("/v1/licenses/by-key/{other_key}"))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let elsewhere = data_token(app, Some(other_id), &[]).await;
    let r = call("ListDataObjectsToKey", elsewhere, on_key(&[])).await;
    assert_error(&r, KEY_OR_PERMISSION);
    let here = data_token(app, Some(license_id), &[]).await;
    let r = call("ListDataObjectsToKey", here, on_key(&[])).await;
    assert_eq!(listed(&r).len(), 2);
    // A key that does not exist reads the same as one out of reach.
    let r = call(
        "ListDataObjectsToKey",
        client.clone(),
        vec![
            ("ProductId", pid.clone()),
            ("Key", "NOPEN-NOPEN-NOPEN-NOPEN".into()),
        ],
    )
    .await;
    assert_error(&r, KEY_OR_PERMISSION);
    // The method's permission and the product lock.
    let list_only = token(
        app,
        json!({"name": "list", "permissions": ["cryptolens:listdataobjects"], "key_lock": -1}),
    )
    .await;
    let r = call(
        "IncrementIntValueToKey",
        list_only.clone(),
        by_id(&[("IntValue", "1")]),
    )
    .await;
    assert_error(&r, DENIED);
    let r = call("ListDataObjectsToKey", list_only, on_key(&[])).await;
    assert_eq!(listed(&r).len(), 2);
    let other_product = app.product("Elsewhere", &[]).await;
    let locked = token(
        app,
        json!({"name": "p", "permissions": DATA_PERMISSIONS, "key_lock": -1,
               "product_id": other_product}),
    )
    .await;
    let r = call("ListDataObjectsToKey", locked, on_key(&[])).await;
    assert_error(&r, DENIED);

    // Removal by name; an object that is not there.
    ok(&call(
        "RemoveDataObjectToKey",
        client.clone(),
        on_key(&[("Name", "note")]),
    )
    .await);
    let r = call(
        "RemoveDataObjectToKey",
        client.clone(),
        on_key(&[("Name", "note")]),
    )
    .await;
    assert_error(&r, NO_OBJECT);
    let r = call(
        "RemoveDataObjectToKey",
        client.clone(),
        on_key(&[("Id", "0")]),
    )
    .await;
    assert_error(&r, BAD_INPUT);
    let r = call("ListDataObjectsToKey", client.clone(), on_key(&[])).await;
    assert_eq!(listed(&r), vec![triple("credits", -7, "")]);

    // Every change is in the license's audit log.
    let actions = app.actions(license_id).await;
    for action in [
        "data_object.added",
        "data_object.incremented",
        "data_object.decremented",
        "data_object.set",
        "data_object.removed",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    // A refused step leaves no trace.
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "data_object.decremented")
            .count(),
        1
    );
}
on_every_backend!(cryptolens_data_objects_of_keys, key_data_objects);

async fn machine_data_objects(app: &TestApp) {
    let product = app.product("Per machine", &[]).await;
    let setup = token(
        app,
        json!({"name": "setup", "permissions":
            ["cryptolens:createkey", "cryptolens:activate", "cryptolens:deactivate", "cryptolens:getkey"]}),
    )
    .await;
    let key = create_key(app, &setup, product, &[("MaxNoOfMachines", "2")]).await;
    let pid = product.to_string();
    let client = data_token(app, Some(-1), &[]).await;
    let activate = |machine: &'static str, method: &'static str| {
        let (setup, pid, key) = (setup.clone(), pid.clone(), key.clone());
        async move {
            let r = post(
                app,
                &format!("/api/key/{method}"),
                &[
                    ("token", setup.as_str()),
                    ("ProductId", pid.as_str()),
                    ("Key", key.as_str()),
                    ("MachineCode", machine),
                ],
            )
            .await;
            ok(&r);
        }
    };
    activate("m1", "Activate").await;
    let on = |machine: &str, extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut p = vec![
            ("ProductId".to_owned(), pid.clone()),
            ("Key".to_owned(), key.clone()),
            ("MachineCode".to_owned(), machine.to_owned()),
        ];
        p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        p
    };
    let call = |method: &'static str, params: Vec<(String, String)>| {
        let client = client.clone();
        async move {
            let params: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            data(app, method, &client, &params).await
        }
    };

    ok(&call("AddDataObjectToMachineCode", on("m1", &[("Name", "runs")])).await);
    let r = call("AddDataObjectToMachineCode", on("m9", &[("Name", "runs")])).await;
    assert_error(
        &r,
        "Either the machine code was never activated or key activation feature was never set up.",
    );
    ok(&call(
        "IncrementIntValueToMachineCode",
        on("m1", &[("Name", "runs"), ("IntValue", "3")]),
    )
    .await);
    ok(&call(
        "SetStringValueToMachineCode",
        on("m1", &[("Name", "runs"), ("StringValue", "fast")]),
    )
    .await);
    let r = call("ListDataObjectsToMachineCode", on("m1", &[])).await;
    assert_eq!(listed(&r), vec![triple("runs", 3, "fast")]);

    // A machine's objects are not the key's.
    let r = data(
        app,
        "ListDataObjectsToKey",
        &client,
        &[("ProductId", pid.as_str()), ("Key", key.as_str())],
    )
    .await;
    assert!(listed(&r).is_empty());
    let r = post(
        app,
        "/api/key/GetKey",
        &[
            ("token", setup.as_str()),
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("SignMethod", "1"),
        ],
    )
    .await;
    let license: Value =
        serde_json::from_slice(&B64.decode(ok(&r)["licenseKey"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(license["DataObjects"], json!([]));

    // They go with the activation.
    activate("m1", "Deactivate").await;
    let r = call("ListDataObjectsToMachineCode", on("m1", &[])).await;
    assert_error(
        &r,
        "Either the machine code was never activated or key activation feature was never set up.",
    );
    activate("m1", "Activate").await;
    let r = call("ListDataObjectsToMachineCode", on("m1", &[])).await;
    assert!(listed(&r).is_empty());
    let r = call(
        "RemoveDataObjectToMachineCode",
        on("m1", &[("Name", "runs")]),
    )
    .await;
    assert_error(&r, NO_OBJECT);
}
on_every_backend!(cryptolens_data_objects_of_machines, machine_data_objects);

async fn generic_data_objects(app: &TestApp) {
    let product = app.product("Generic", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 1}))
        .await;
    let license_id = license["id"].as_i64().unwrap();
    let key = license["key"].as_str().unwrap().to_owned();
    let activated = app
        .public(
            "/v1/activations",
            json!({"key": key, "fingerprint": "generic-pc"}),
        )
        .await;
    let activation_id = activated.body["activation"]["id"].as_i64().unwrap();
    let server = data_token(app, None, &[]).await;
    let (p, l, a) = (
        product.to_string(),
        license_id.to_string(),
        activation_id.to_string(),
    );

    let add = |kind: &'static str, id: String, name: &'static str| {
        let server = server.clone();
        async move {
            data(
                app,
                "AddDataObject",
                &server,
                &[
                    ("ReferencerType", kind),
                    ("ReferencerId", id.as_str()),
                    ("Name", name),
                    ("StringValue", "2.0"),
                ],
            )
            .await
        }
    };
    let on_product = ok(&add("1", p.clone(), "latest").await)["id"]
        .as_i64()
        .unwrap();
    // The .NET SDK sends the enum's name.
    let on_key = ok(&add("Key", l.clone(), "seats").await)["id"]
        .as_i64()
        .unwrap();
    let on_machine = ok(&add("MachineCode", a.clone(), "runs").await)["id"]
        .as_i64()
        .unwrap();
    assert_error(&add("0", "0".into(), "user").await, BAD_INPUT);
    assert_error(&add("9", p.clone(), "x").await, BAD_INPUT);
    assert_error(
        &add("1", "999999".into(), "x").await,
        "Could not find the product.",
    );

    let r = data(
        app,
        "ListDataObjects",
        &server,
        &[("ReferencerType", "Product"), ("ReferencerId", p.as_str())],
    )
    .await;
    assert_eq!(
        ok(&r)["dataObjects"],
        json!([{"id": on_product, "name": "latest", "stringValue": "2.0", "intValue": 0}])
    );
    let r = data(
        app,
        "ListDataObjects",
        &server,
        &[("ShowAll", "True"), ("ReferencerType", "User")],
    )
    .await;
    let owners: Vec<(i64, i64, i64)> = ok(&r)["dataObjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| [on_product, on_key, on_machine].contains(&d["id"].as_i64().unwrap()))
        .map(|d| {
            (
                d["id"].as_i64().unwrap(),
                d["referencerType"].as_i64().unwrap(),
                d["referencerId"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        owners,
        vec![
            (on_product, 1, product),
            (on_key, 2, license_id),
            (on_machine, 3, activation_id)
        ]
    );

    let by_id = |method: &'static str, tok: String, id: i64, extra: &'static [(&str, &str)]| async move {
        let id = id.to_string();
        let mut params = vec![("Id", id.as_str())];
        params.extend_from_slice(extra);
        data(app, method, &tok, &params).await
    };
    ok(&by_id(
        "SetIntValue",
        server.clone(),
        on_product,
        &[("IntValue", "4")],
    )
    .await);
    assert_error(
        &by_id(
            "IncrementIntValue",
            server.clone(),
            on_key,
            &[("IntValue", "2"), ("EnableBound", "true"), ("Bound", "1")],
        )
        .await,
        BOUND,
    );
    ok(&by_id(
        "DecrementIntValue",
        server.clone(),
        on_machine,
        &[("IntValue", "1")],
    )
    .await);
    ok(&by_id(
        "SetStringValue",
        server.clone(),
        on_key,
        &[("StringValue", "ten")],
    )
    .await);
    assert_error(
        &data(app, "SetIntValue", &server, &[("Name", "seats")]).await,
        BAD_INPUT,
    );

    // A token locked to the license reaches its objects and its machine's, nothing else; a
    // -1 token must name its key.
    let locked = data_token(app, Some(license_id), &[]).await;
    ok(&by_id(
        "IncrementIntValue",
        locked.clone(),
        on_key,
        &[("IntValue", "1")],
    )
    .await);
    ok(&by_id(
        "IncrementIntValue",
        locked.clone(),
        on_machine,
        &[("IntValue", "1")],
    )
    .await);
    assert_error(
        &by_id(
            "IncrementIntValue",
            locked.clone(),
            on_product,
            &[("IntValue", "1")],
        )
        .await,
        KEY_OR_PERMISSION,
    );
    let r = data(app, "ListDataObjects", &locked, &[("ShowAll", "true")]).await;
    assert_eq!(listed(&r), vec![triple("seats", 1, "ten")]);
    let minus_one = data_token(app, Some(-1), &[]).await;
    assert_error(
        &by_id(
            "IncrementIntValue",
            minus_one.clone(),
            on_key,
            &[("IntValue", "1")],
        )
        .await,
        KEY_OR_PERMISSION,
    );
    let elsewhere = app.product("Not this one", &[]).await;
    let other_product = token(
        app,
        json!({"name": "p", "permissions": DATA_PERMISSIONS, "product_id": elsewhere}),
    )
    .await;
    // Another product's object is answered as one that does not exist.
    assert_error(
        &by_id(
            "SetIntValue",
            other_product.clone(),
            on_product,
            &[("IntValue", "1")],
        )
        .await,
        "Could not find the data object.",
    );
    assert_error(
        &by_id("SetIntValue", other_product, 987_654, &[("IntValue", "1")]).await,
        "Could not find the data object.",
    );

    // The native API shows the same objects.
    let r = app.get(&format!("/v1/products/{product}/data")).await;
    assert_eq!(r.body["data"][0]["int_value"], 4, "{}", r.body);
    let r = app.get(&format!("/v1/licenses/{license_id}/data")).await;
    assert_eq!(r.body["data"][0]["string_value"], "ten", "{}", r.body);
    assert_eq!(r.body["data"][0]["int_value"], 1, "{}", r.body);
    let r = app
        .get(&format!("/v1/activations/{activation_id}/data"))
        .await;
    assert_eq!(r.body["data"][0]["int_value"], 0, "{}", r.body);
    assert_eq!(r.body["data"][0]["activation_id"], activation_id);

    ok(&by_id("RemoveDataObject", server.clone(), on_product, &[]).await);
    assert_error(
        &by_id("RemoveDataObject", server.clone(), on_product, &[]).await,
        NO_OBJECT,
    );
}
on_every_backend!(cryptolens_generic_data_object_methods, generic_data_objects);

const INCREMENTS: usize = 1000;
const CEILING: i64 = 700;

async fn concurrent_increments(app: &TestApp) {
    let product = app.product("Counted", &[]).await;
    let license = app.license(json!({"product_id": product})).await;
    let license_id = license["id"].as_i64().unwrap();
    let key = license["key"].as_str().unwrap().to_owned();
    let client = data_token(app, Some(-1), &[]).await;
    let pid = product.to_string();
    let r = data(
        app,
        "AddDataObjectToKey",
        &client,
        &[
            ("ProductId", pid.as_str()),
            ("Key", key.as_str()),
            ("Name", "usage"),
        ],
    )
    .await;
    let id = ok(&r)["id"].as_i64().unwrap().to_string();
    let ceiling = CEILING.to_string();
    let params = [
        ("token", client.as_str()),
        ("ProductId", pid.as_str()),
        ("Key", key.as_str()),
        ("Id", id.as_str()),
        ("IntValue", "1"),
        ("EnableBound", "true"),
        ("Bound", ceiling.as_str()),
    ];
    let url = format!("{}/api/data/IncrementIntValueToKey", app.base);
    let replies = join_all((0..INCREMENTS).map(|_| {
        let request = app.http.post(&url).form(&params);
        async move {
            let r = request.send().await.expect("request reaches the server");
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        }
    }))
    .await;
    let done = replies.iter().filter(|r| r["result"] == 0).count();
    let refused = replies
        .iter()
        .filter(|r| r["result"] == 1 && r["message"] == BOUND)
        .count();
    assert_eq!(
        (done, refused),
        (CEILING as usize, INCREMENTS - CEILING as usize)
    );
    let r = app.get(&format!("/v1/licenses/{license_id}/data")).await;
    assert_eq!(r.body["data"][0]["int_value"], CEILING, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_increments_end_exactly_at_the_bound() {
    for backend in crate::helpers::backends() {
        let db = crate::helpers::TestDb::create(&backend).await;
        let app = crate::helpers::spawn(&db, crate::helpers::test_http()).await;
        concurrent_increments(&app).await;
        app.stop().await;
        db.remove().await;
    }
}

async fn native_data_objects(app: &TestApp) {
    let product = app.product("Native", &[]).await;
    let license = app.license(json!({"product_id": product})).await;
    let id = license["id"].as_i64().unwrap();
    let base = format!("/v1/licenses/{id}/data");

    let r = app
        .post(
            &base,
            json!({"name": "seats", "int_value": 5, "unique": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let seats = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["license_id"], id);
    assert_eq!(r.body["string_value"], "");
    let r = app
        .post(&base, json!({"name": "seats", "unique": true}))
        .await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.body);
    let r = app
        .post(&base, json!({"name": "big", "int_value": 2147483648i64}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.post(&base, json!({"name": "n".repeat(101)})).await;
    assert_eq!(r.status, 422, "{}", r.body);

    let one = format!("{base}/{seats}");
    let r = app
        .patch(&one, json!({"int_value": 9, "string_value": "team"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["int_value"].clone(), r.body["string_value"].clone()),
        (json!(9), json!("team"))
    );
    let r = app.patch(&one, json!({})).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app
        .post(
            &format!("{one}/increment"),
            json!({"amount": 2, "bound": 10}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "bound_reached"), "{}", r.body);
    let r = app
        .post(&format!("{one}/increment"), json!({"bound": 10}))
        .await;
    assert_eq!(r.body["int_value"], 10, "{}", r.body);
    let r = app.post(&format!("{one}/decrement"), json!({})).await;
    assert_eq!(r.body["int_value"], 9, "{}", r.body);
    let r = app
        .post(&format!("{one}/decrement"), json!({"amount": -1}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = app.get(&base).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.body);

    // The path names the owner: another license's object is not found through this one.
    let other = app.license(json!({"product_id": product})).await;
    let other_id = other["id"].as_i64().unwrap();
    let r = app
        .patch(
            &format!("/v1/licenses/{other_id}/data/{seats}"),
            json!({"int_value": 1}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = app.get("/v1/licenses/999999/data").await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Permissions and the product scope.
    let reader = token_for(app, &["licenses:read"], None).await;
    let r = app
        .call(reqwest::Method::GET, &base, Some(&reader), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .call(
            reqwest::Method::POST,
            &base,
            Some(&reader),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let elsewhere = app.product("Elsewhere", &[]).await;
    let scoped = token_for(app, &["licenses:read", "licenses:write"], Some(elsewhere)).await;
    let r = app
        .call(reqwest::Method::GET, &base, Some(&scoped), None)
        .await;
    // Another product's license is answered as one that does not exist.
    assert_eq!(r.status, 404, "{}", r.body);
    let license_writer = token_for(app, &["licenses:write"], None).await;
    let r = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/products/{product}/data"),
            Some(&license_writer),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // At most 100 per owner.
    for i in 1..100 {
        let r = app.post(&base, json!({"name": format!("n{i}")})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app.post(&base, json!({"name": "one too many"})).await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.body);

    let r = app.delete(&one).await;
    assert_eq!(r.status, 204);
    let r = app.delete(&one).await;
    assert_eq!(r.status, 404);
    // Deleting the license takes its data objects along.
    let r = app.delete(&format!("/v1/licenses/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = app.get(&base).await;
    assert_eq!(r.status, 404, "{}", r.body);
}
on_every_backend!(native_license_data_objects, native_data_objects);

async fn token_for(app: &TestApp, permissions: &[&str], product: Option<i64>) -> String {
    token(
        app,
        json!({"name": "scoped", "permissions": permissions, "product_id": product}),
    )
    .await
}

async fn messages(app: &TestApp) {
    let product = app.product("Notified", &[]).await;
    let other = app.product("Other", &[]).await;
    let post_message = |body: Value| async move {
        let r = app.post("/v1/messages", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    };
    let old = post_message(json!({"content": "Welcome", "created": "2020-01-01T00:00:00Z"})).await;
    let stable = post_message(json!({"content": "Version 2 is out", "channel": "stable"})).await;
    let beta =
        post_message(json!({"content": "Beta 3", "channel": "beta", "product_id": product})).await;
    let theirs = post_message(json!({"content": "Not for you", "product_id": other})).await;
    let r = app.post("/v1/messages", json!({"content": "  "})).await;
    assert_eq!(r.status, 422, "{}", r.body);

    let reader = token(
        app,
        json!({"name": "messages", "permissions": ["cryptolens:getmessages"]}),
    )
    .await;
    let get = |tok: String, params: Vec<(&'static str, String)>| async move {
        let mut all = vec![("token", tok)];
        all.extend(params);
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(app, "/api//message/getmessages/", &all).await
    };
    let contents = |r: &Reply| -> Vec<String> {
        ok(r)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = get(reader.clone(), vec![]).await;
    assert_eq!(
        contents(&r),
        ["Welcome", "Version 2 is out", "Beta 3", "Not for you"]
    );
    let first = &r.body["messages"][1];
    assert_eq!(first["id"], stable["id"]);
    assert_eq!(first["channel"], "stable");
    assert!(first["created"].is_i64(), "{first}");
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["channel", "content", "created", "id"]
    );
    let r = get(reader.clone(), vec![("Channel", "stable".into())]).await;
    assert_eq!(contents(&r), ["Version 2 is out"]);
    let r = get(
        reader.clone(),
        vec![("Time", "1600000000".into()), ("Channel", "".into())],
    )
    .await;
    assert_eq!(contents(&r).len(), 3);
    let newest = stable["created"].as_str().unwrap();
    let newest = chrono::DateTime::parse_from_rfc3339(newest)
        .unwrap()
        .timestamp();
    let r = get(reader.clone(), vec![("Time", (newest + 3600).to_string())]).await;
    assert!(contents(&r).is_empty());

    // A token for one product sees its messages and those for every product.
    let scoped = token(
        app,
        json!({"name": "scoped", "permissions": ["cryptolens:getmessages", "cryptolens:editmessages"],
               "product_id": product}),
    )
    .await;
    let r = get(scoped.clone(), vec![]).await;
    assert_eq!(contents(&r), ["Welcome", "Version 2 is out", "Beta 3"]);
    let denied = token(
        app,
        json!({"name": "no", "permissions": ["cryptolens:getkey"]}),
    )
    .await;
    assert_error(&get(denied, vec![]).await, DENIED);

    // CreateMessage / RemoveMessage: the scoped token's messages are its product's.
    let r = post(
        app,
        "/api/message/CreateMessage",
        &[
            ("token", scoped.as_str()),
            ("Content", "Patch 3.1"),
            ("Channel", "beta"),
            ("Time", "0"),
        ],
    )
    .await;
    let created = ok(&r)["messageId"].as_i64().unwrap();
    let r = app.get(&format!("/v1/messages?product_id={other}")).await;
    assert!(r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["id"] != created));
    let r = app
        .get(&format!("/v1/messages?product_id={product}&channel=beta"))
        .await;
    let ids: Vec<&Value> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&beta["id"], &json!(created)], "{}", r.body);
    let remove = |tok: String, id: String| async move {
        post(
            app,
            "/api/message/RemoveMessage",
            &[("token", tok.as_str()), ("Id", id.as_str())],
        )
        .await
    };
    assert_error(
        &remove(scoped.clone(), theirs["id"].to_string()).await,
        DENIED,
    );
    ok(&remove(scoped.clone(), created.to_string()).await);
    assert_error(
        &remove(scoped.clone(), created.to_string()).await,
        "Could not find the message.",
    );

    // The native API: scope and permissions.
    let writer = token_for(app, &["products:write", "products:read"], Some(other)).await;
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&writer),
            Some(json!({"content": "for all"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/messages/{}", beta["id"]),
            Some(&writer),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/messages?product_id={product}"),
            Some(&writer),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app.delete(&format!("/v1/messages/{}", old["id"])).await;
    assert_eq!(r.status, 204);
    let r = app.get("/v1/messages").await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 3, "{}", r.body);
}
on_every_backend!(cryptolens_messages, messages);

/// The `IntValue` of a key's first data object, as its signed license shows it.
async fn first_value(app: &TestApp, client: &str, on_key: &[(&str, &str)]) -> Option<i64> {
    let mut params = vec![("token", client), ("SignMethod", "1")];
    params.extend_from_slice(on_key);
    let r = post(app, "/api/key/GetKey", &params).await;
    let license: Value =
        serde_json::from_slice(&B64.decode(ok(&r)["licenseKey"].as_str().unwrap()).unwrap())
            .unwrap();
    license["DataObjects"][0]["IntValue"].as_i64()
}

/// A node that keeps a license in memory hears of a change of its data objects made on another
/// node, as of any other change of the license.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_shows_changed_data_objects_on_postgres() {
    use crate::helpers::{backends, spawn, spawn_second, test_http, Backend, TestDb};
    let Some(Backend::Postgres(server)) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres(_)))
    else {
        eprintln!(
            "{} is not set: this test needs PostgreSQL",
            crate::helpers::PG_ENV
        );
        return;
    };
    let db = TestDb::create(&Backend::Postgres(server)).await;
    let a = spawn(&db, test_http()).await;
    let b = spawn_second(&db, test_http(), &a.admin).await;
    let product = a.product("Two nodes", &[]).await;
    let license = a.license(json!({"product_id": product})).await;
    let key = license["key"].as_str().unwrap().to_owned();
    let client = data_token(&a, Some(-1), &["cryptolens:getkey"]).await;
    let pid = product.to_string();
    let on_key = [("ProductId", pid.as_str()), ("Key", key.as_str())];
    let mut add = vec![("Name", "usage")];
    add.extend_from_slice(&on_key);
    let id = ok(&data(&a, "AddDataObjectToKey", &client, &add).await)["id"]
        .as_i64()
        .unwrap()
        .to_string();
    // Give node b's notification connection a moment, then let it keep the license.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(first_value(&b, &client, &on_key).await, Some(0));
    assert_eq!(first_value(&b, &client, &on_key).await, Some(0));
    let mut step = vec![("Id", id.as_str()), ("IntValue", "5")];
    step.extend_from_slice(&on_key);
    ok(&data(&a, "IncrementIntValueToKey", &client, &step).await);
    let started = std::time::Instant::now();
    while first_value(&b, &client, &on_key).await != Some(5) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "node b still shows the old value 2 s after node a changed it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    b.stop().await;
    a.stop().await;
    db.remove().await;
}
