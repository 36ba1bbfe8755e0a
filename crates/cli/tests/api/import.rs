//! `keyturn import cryptolens` against a second real Keyturn server acting as the Cryptolens
//! source: what the source's Web API shows of the product's keys is what the target shows
//! after the import, and importing again updates without duplicating.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::cryptolens::{post, token, Reply};
use crate::helpers::{backends, spawn, test_http, TestApp, TestDb};

/// Runs `keyturn` on `db` as its own process, without blocking the servers of this test.
async fn keyturn(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command
        .args(args)
        .env_remove("KEYTURN_CONFIG")
        .env_remove("KEYTURN_MASTER_KEY")
        .env_remove("KEYTURN_MASTER_KEY_FILE")
        .env_remove("KEYTURN_IMPORT_TOKEN");
    match &db.url {
        Some(url) => command.env("KEYTURN_DATABASE_URL", url),
        None => command
            .env_remove("KEYTURN_DATABASE_URL")
            .env("KEYTURN_DATA_DIR", db.dir.path().join("data")),
    };
    let out = command.output().await.expect("run keyturn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn import(
    target: &TestDb,
    source: &TestApp,
    tok: &str,
    product: i64,
    into: Option<i64>,
) -> (bool, Value, String) {
    let product = product.to_string();
    let into = into.map(|i| i.to_string());
    let mut args = vec![
        "import",
        "cryptolens",
        "--from",
        &source.base,
        "--token",
        tok,
        "--product",
        &product,
    ];
    if let Some(into) = &into {
        args.extend(["--into", into.as_str()]);
    }
    let (ok, out, err) = keyturn(target, &args).await;
    (ok, serde_json::from_str(&out).unwrap_or(Value::Null), err)
}

/// Every key of a product as its `GetKeys` listing shows it, by key string: the terms,
/// customer, node-locked machines and data objects (ids differ between servers).
async fn listing(app: &TestApp, tok: &str, product: i64) -> BTreeMap<String, Value> {
    let pid = product.to_string();
    let mut out = BTreeMap::new();
    for page in 1.. {
        let page = page.to_string();
        let r = post(
            app,
            "/api/product/GetKeys",
            &[
                ("token", tok),
                ("ProductId", &pid),
                ("Page", &page),
                ("ModelVersion", "3"),
            ],
        )
        .await;
        assert_eq!(r.body["result"], 0, "{}", r.body["message"]);
        let keys = r.body["licenseKeys"].as_array().unwrap().clone();
        if keys.is_empty() {
            break;
        }
        for k in keys {
            let mut machines: Vec<Value> = k["activatedMachines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| !m["mid"].as_str().unwrap().starts_with("floating:"))
                .map(|m| json!([m["mid"], m["ip"], m["friendlyName"], m["time"]]))
                .collect();
            machines.sort_by_key(|m| m.to_string());
            let mut data: Vec<Value> = k["dataObjects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| json!([d["name"], d["stringValue"], d["intValue"]]))
                .collect();
            data.sort_by_key(|d| d.to_string());
            let customer = match &k["customer"] {
                Value::Null => Value::Null,
                c => json!([c["name"], c["email"], c["companyName"]]),
            };
            let mut terms = json!({"customer": customer, "machines": machines, "data": data});
            for field in [
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
                "maxNoOfMachines",
                "trialActivation",
                "allowedMachines",
            ] {
                terms[field] = k[field].clone();
            }
            out.insert(k["key"].as_str().unwrap().to_owned(), terms);
        }
    }
    out
}

async fn cl(app: &TestApp, method: &str, params: &[(&str, &str)]) -> Reply {
    let r = post(app, &format!("/api/{method}"), params).await;
    assert_eq!(r.body["result"], 0, "{method}: {}", r.body);
    r
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap()
}

async fn customer(app: &TestApp, body: Value) -> i64 {
    let r = app.post("/v1/customers", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    id(&r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cryptolens_products_are_imported_from_a_compatible_server() {
    for backend in backends() {
        let source_db = TestDb::create(&backend).await;
        let target_db = TestDb::create(&backend).await;
        let source = spawn(&source_db, test_http()).await;
        let target = spawn(&target_db, test_http()).await;

        // The source: a product with customers, keys of every shape, machines and data objects.
        let pid = source.product("Editor", &["pro", "team", "export"]).await;
        let other = source.product("Addon", &["extra"]).await;
        let ann = customer(
            &source,
            json!({"name": "Ann Lee", "email": "ann@example.com", "company": "Ann Ltd"}),
        )
        .await;
        let bob = customer(&source, json!({"name": "Bob", "email": "bob@example.com"})).await;
        customer(
            &source,
            json!({"name": "Carl", "email": "carl@example.com"}),
        )
        .await;
        let a = source
            .license(json!({"product_id": pid, "features": ["pro"], "notes": "from the shop", "customer_id": ann,
                            "expires": "2031-02-03", "max_machines": 2, "allowed_machines": ["build-box"]}))
            .await;
        source
            .license(json!({"product_id": pid, "features": ["pro", "team"], "blocked": true, "customer_id": bob, "period_days": 30}))
            .await;
        let c = source.license(json!({"product_id": pid})).await;
        let d = source
            .license(json!({"product_id": pid, "trial_activation": true, "max_machines": 1, "period_days": 10}))
            .await;
        let e = source
            .license(json!({"product_id": pid, "max_machines": 1, "period_days": 90}))
            .await;
        let bulk = source
            .post(
                "/v1/licenses",
                json!({"product_id": pid, "features": ["export"], "period_days": 365, "quantity": 100}),
            )
            .await;
        assert_eq!(bulk.status, 201, "{}", bulk.body);
        source
            .license(json!({"product_id": other, "features": ["extra"], "notes": "addon"}))
            .await;
        let program = token(
            &source,
            json!({"name": "program", "permissions": [
            "cryptolens:activate", "cryptolens:adddataobject", "cryptolens:setintvalue"]}),
        )
        .await;
        let key = |l: &Value| l["key"].as_str().unwrap().to_owned();
        let spid = pid.to_string();
        for (k, machine, name) in [
            (&a, "machine-1", "Ann's laptop"),
            (&a, "machine-2", ""),
            (&d, "machine-9", ""),
        ] {
            cl(
                &source,
                "key/Activate",
                &[
                    ("token", &program),
                    ("ProductId", &spid),
                    ("Key", &key(k)),
                    ("MachineCode", machine),
                    ("FriendlyName", name),
                ],
            )
            .await;
        }
        cl(
            &source,
            "key/Activate",
            &[
                ("token", &program),
                ("ProductId", &spid),
                ("Key", &key(&e)),
                ("MachineCode", "seat-1"),
                ("FloatingTimeInterval", "300"),
            ],
        )
        .await;
        let a_id = id(&a).to_string();
        let usage = cl(
            &source,
            "data/AddDataObject",
            &[
                ("token", &program),
                ("ReferencerType", "2"),
                ("ReferencerId", &a_id),
                ("Name", "usage"),
                ("IntValue", "41"),
            ],
        )
        .await
        .body["id"]
            .to_string();
        cl(
            &source,
            "data/AddDataObject",
            &[
                ("token", &program),
                ("ReferencerType", "2"),
                ("ReferencerId", &a_id),
                ("Name", "tier"),
                ("StringValue", "gold"),
            ],
        )
        .await;
        cl(
            &source,
            "data/AddDataObject",
            &[
                ("token", &program),
                ("ReferencerType", "1"),
                ("ReferencerId", &spid),
                ("Name", "channel"),
                ("StringValue", "stable"),
            ],
        )
        .await;
        let reader = token(&source, json!({"name": "migration", "permissions": [
            "cryptolens:getproducts", "cryptolens:getkeys", "cryptolens:getcustomers", "cryptolens:listdataobjects"]}))
        .await;
        let before = listing(&source, &reader, pid).await;
        assert_eq!(before.len(), 105);

        // The import, into a server that already knows Ann (from a payment before the move).
        let known_ann = customer(
            &target,
            json!({"name": "A. Lee", "email": "ann@example.com"}),
        )
        .await;
        let (ok, summary, err) = import(&target_db, &source, &reader, pid, None).await;
        assert!(ok, "{err}");
        assert!(
            err.contains("keys: 105 of 105"),
            "progress on stderr: {err}"
        );
        assert!(!err.contains(&reader), "the token is never shown");
        assert_eq!(summary["product"], "created", "{summary}");
        assert_eq!(
            summary["keys"],
            json!({"created": 105, "updated": 0, "unchanged": 0}),
            "{summary}"
        );
        assert_eq!(summary["keys_failed"], 0);
        assert_eq!(
            summary["customers"],
            json!({"created": 2, "updated": 1, "unchanged": 0}),
            "Ann is the customer already here: {summary}"
        );
        assert_eq!(summary["machines_added"], 3);
        assert_eq!(summary["floating_seats_skipped"], 1);
        assert_eq!(
            summary["data_objects"], 3,
            "two of a key, one of the product"
        );
        let local = summary["product_id"].as_i64().unwrap();
        let product = target.get(&format!("/v1/products/{local}")).await.body;
        assert_eq!(product["name"], "Editor");
        assert_eq!(
            product["features"],
            json!(["pro", "team", "export", "f4", "f5", "f6", "f7", "f8"])
        );
        let target_reader = token(
            &target,
            json!({"name": "check", "permissions": [
            "cryptolens:getkeys", "cryptolens:listdataobjects"]}),
        )
        .await;
        assert_eq!(
            listing(&target, &target_reader, local).await,
            before,
            "every key as the source shows it"
        );
        let carl = target
            .get("/v1/customers?email=carl@example.com")
            .await
            .body;
        assert_eq!(
            carl["data"].as_array().unwrap().len(),
            1,
            "customers without keys too"
        );
        let ann = target
            .get(&format!("/v1/licenses/by-key/{}", key(&a)))
            .await
            .body;
        assert_eq!(ann["customer_id"], known_ann);
        let channel = cl(
            &target,
            "data/ListDataObjects",
            &[
                ("token", &target_reader),
                ("ReferencerType", "1"),
                ("ReferencerId", &local.to_string()),
            ],
        )
        .await;
        assert_eq!(channel.body["dataObjects"][0]["stringValue"], "stable");

        // Again: nothing new, nothing twice.
        let (ok, summary, err) = import(&target_db, &source, &reader, pid, None).await;
        assert!(ok, "{err}");
        assert_eq!(summary["product"], "unchanged");
        assert_eq!(summary["product_id"], local);
        assert_eq!(
            summary["keys"],
            json!({"created": 0, "updated": 0, "unchanged": 105}),
            "{summary}"
        );
        assert_eq!(
            summary["customers"],
            json!({"created": 0, "updated": 0, "unchanged": 3})
        );
        assert_eq!(
            (
                summary["machines_added"].clone(),
                summary["data_objects"].clone()
            ),
            (json!(0), json!(0))
        );
        assert_eq!(
            target.get("/v1/customers?limit=100").await.body["data"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(target.license_count().await, 105);

        // Changes on the source are brought over by the next run.
        source
            .post(&format!("/v1/licenses/{}/block", id(&a)), json!({}))
            .await;
        source
            .patch(
                &format!("/v1/licenses/{}", id(&c)),
                json!({"notes": "now with notes"}),
            )
            .await;
        cl(
            &source,
            "data/SetIntValue",
            &[("token", &program), ("Id", &usage), ("IntValue", "50")],
        )
        .await;
        let f = source
            .license(json!({"product_id": pid, "features": ["team"]}))
            .await;
        let (ok, summary, err) = import(&target_db, &source, &reader, pid, None).await;
        assert!(ok, "{err}");
        assert_eq!(
            summary["keys"],
            json!({"created": 1, "updated": 2, "unchanged": 103}),
            "{summary}"
        );
        assert_eq!(summary["data_objects"], 1);
        let after = listing(&source, &reader, pid).await;
        // A server sees writes made by another process into its SQLite file within 5 seconds.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(8);
        while listing(&target, &target_reader, local).await != after
            && std::time::Instant::now() < until
        {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert_eq!(listing(&target, &target_reader, local).await, after);
        assert!(after[&key(&f)]["f2"] == true && after[&key(&a)]["block"] == true);
        let imported_a = target
            .get(&format!("/v1/licenses/by-key/{}", key(&a)))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let actions = target.actions(imported_a).await;
        assert_eq!(actions, ["imported", "imported"], "created, then updated");

        // A product imported before stays where it went.
        let mine = target.product("Mine", &[]).await;
        let (ok, _, err) = import(&target_db, &source, &reader, pid, Some(mine)).await;
        assert!(
            !ok && err.contains(&format!("imported into product {local} before")),
            "{err}"
        );
        // Into an existing product: the slots its keys use are added to its features.
        let (ok, summary, err) = import(&target_db, &source, &reader, other, Some(mine)).await;
        assert!(ok, "{err}");
        assert_eq!(summary["features_added"], json!(["extra"]));
        assert_eq!(
            target.get(&format!("/v1/products/{mine}")).await.body["features"],
            json!(["extra"])
        );

        // What the source refuses, the import says.
        let (ok, _, err) = import(&target_db, &source, "kt_not_a_token", pid, None).await;
        assert!(!ok && err.contains("Unable to authenticate"), "{err}");

        source.stop().await;
        target.stop().await;
        source_db.remove().await;
        target_db.remove().await;
    }
}
