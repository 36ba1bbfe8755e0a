use std::time::Duration;

use chrono::Utc;
use keyturn_client::{Client, Error};
use serde_json::json;

use crate::helpers::TestApp;

async fn node_locked(app: &TestApp) {
    let product = app.product("Editor", &["pro", "export"]).await;
    let other = app.product("Viewer", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 2, "features": ["pro"], "period_days": 30}))
        .await;
    let key = license["key"].as_str().unwrap();
    let client = Client::new(&app.base, product, &app.public_key(product).await).unwrap();

    let first = client
        .activate_machine(key, "machine-a", Some("Ann's laptop"))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.activation.name.as_deref(), Some("Ann's laptop"));
    let again = client
        .activate_machine(key, "machine-a", None)
        .await
        .unwrap();
    assert!(!again.created, "a known machine only checks in");
    assert_eq!(again.activation.id, first.activation.id);
    client
        .activate_machine(key, "machine-b", None)
        .await
        .unwrap();
    match client.activate_machine(key, "machine-c", None).await {
        Err(Error::Refused {
            status: 409, code, ..
        }) => assert_eq!(code, "too_many_machines"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    let v = client
        .validate_machine(key, Some("machine-a"), &["pro"])
        .await
        .unwrap();
    assert!(v.valid);
    assert_eq!(v.code, "VALID");
    assert_eq!(v.license.unwrap().key, key);
    assert_eq!(
        client
            .validate_machine(key, Some("machine-c"), &[])
            .await
            .unwrap()
            .code,
        "NOT_ACTIVATED"
    );
    assert_eq!(
        client
            .validate_machine(key, None, &["export"])
            .await
            .unwrap()
            .code,
        "FEATURE_MISSING"
    );
    assert_eq!(
        client
            .validate_machine("NOPEN-OPENO-PENOP-ENOPE", None, &[])
            .await
            .unwrap()
            .code,
        "NOT_FOUND"
    );

    // Asked as another product, the key is refused, and signed by that product's key.
    let viewer = Client::new(&app.base, other, &app.public_key(other).await).unwrap();
    assert_eq!(
        viewer.validate_machine(key, None, &[]).await.unwrap().code,
        "WRONG_PRODUCT"
    );
    assert!(matches!(
        viewer.activate_machine(key, "machine-z", None).await,
        Err(Error::Refused { status: 403, .. })
    ));

    // A reply is trusted only with the exact bytes the server signed.
    let raw = app.public("/v1/validate", json!({"key": key})).await;
    let signature = raw
        .header(keyturn_http::SIGNATURE_HEADER)
        .unwrap()
        .to_owned();
    assert!(client.verify(&raw.raw, &signature));
    let tampered = String::from_utf8(raw.raw.clone())
        .unwrap()
        .replace("\"blocked\":false", "\"blocked\":true");
    assert!(!client.verify(tampered.as_bytes(), &signature));
    let foreign = Client::new(&app.base, other, &app.public_key(other).await).unwrap();
    assert!(
        !foreign.verify(&raw.raw, &signature),
        "another product's key does not verify it"
    );

    client.deactivate_machine(key, "machine-a").await.unwrap();
    assert_eq!(
        client
            .validate_machine(key, Some("machine-a"), &[])
            .await
            .unwrap()
            .code,
        "NOT_ACTIVATED"
    );
    assert!(
        client
            .activate_machine(key, "machine-c", None)
            .await
            .unwrap()
            .created,
        "the seat was freed"
    );
    assert!(matches!(
        client.deactivate_machine(key, "machine-a").await,
        Err(Error::Refused { status: 404, .. })
    ));

    // The vendor sees the machines and can remove one.
    let id = license["id"].as_i64().unwrap();
    let machines = app.get(&format!("/v1/licenses/{id}/activations")).await;
    let list = machines.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["ip"], "127.0.0.1");
    let machine = list[0]["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/activations/{machine}"))
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete(&format!("/v1/activations/{machine}"))
            .await
            .status,
        404
    );

    // Lowering the limit keeps the oldest machines and refuses the newest.
    client
        .activate_machine(key, "machine-d", None)
        .await
        .unwrap();
    app.patch(&format!("/v1/licenses/{id}"), json!({"max_machines": 1}))
        .await;
    let live = app
        .get(&format!("/v1/licenses/{id}/activations"))
        .await
        .body["data"]
        .clone();
    let oldest = live[0]["fingerprint"].as_str().unwrap().to_owned();
    let newest = live[1]["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .validate_machine(key, Some(&oldest), &[])
            .await
            .unwrap()
            .code,
        "VALID"
    );
    assert_eq!(
        client
            .validate_machine(key, Some(&newest), &[])
            .await
            .unwrap()
            .code,
        "TOO_MANY_MACHINES"
    );

    app.post(&format!("/v1/licenses/{id}/block"), json!({}))
        .await;
    assert_eq!(
        client.validate_machine(key, None, &[]).await.unwrap().code,
        "BLOCKED"
    );
    match client.activate_machine(key, &oldest, None).await {
        Err(Error::Refused {
            status: 403, code, ..
        }) => assert_eq!(code, "blocked"),
        other => panic!("expected BLOCKED, got {other:?}"),
    }
    app.post(&format!("/v1/licenses/{id}/unblock"), json!({}))
        .await;
    let past = Utc::now() - chrono::Duration::minutes(1);
    app.patch(&format!("/v1/licenses/{id}"), json!({"expires": past}))
        .await;
    assert_eq!(
        client.validate_machine(key, None, &[]).await.unwrap().code,
        "EXPIRED"
    );
    assert!(matches!(
        client.activate_machine(key, "machine-e", None).await,
        Err(Error::Refused { status: 403, .. })
    ));

    let actions = app.actions(id).await;
    assert_eq!(actions.iter().filter(|a| *a == "activated").count(), 4);
    assert_eq!(actions.iter().filter(|a| *a == "deactivated").count(), 2);
}
on_every_backend!(node_locked_activation_and_validation, node_locked);

async fn floating(app: &TestApp) {
    let product = app.product("Render farm", &[]).await;
    let license = app
        .license(json!({"product_id": product, "max_machines": 1, "floating_lease_seconds": 2}))
        .await;
    let key = license["key"].as_str().unwrap();
    let client = Client::new(&app.base, product, &app.public_key(product).await).unwrap();

    let lease = client.activate_machine(key, "node-1", None).await.unwrap();
    assert!(lease.activation.lease_expires.is_some());
    assert!(matches!(
        client.activate_machine(key, "node-2", None).await,
        Err(Error::Refused { status: 409, .. })
    ));
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        client
            .validate_machine(key, Some("node-1"), &[])
            .await
            .unwrap()
            .code,
        "NOT_ACTIVATED",
        "a lapsed lease stops counting"
    );
    assert!(
        client
            .activate_machine(key, "node-2", None)
            .await
            .unwrap()
            .created
    );
    // A heartbeat well within the interval keeps the seat.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !client
                .activate_machine(key, "node-2", None)
                .await
                .unwrap()
                .created
        );
    }
    assert_eq!(
        client
            .validate_machine(key, Some("node-2"), &[])
            .await
            .unwrap()
            .code,
        "VALID"
    );
}
on_every_backend!(floating_leases_lapse_unless_renewed, floating);

async fn trials(app: &TestApp) {
    let product = app.product("Editor", &["pro"]).await;
    let no_plan = app
        .public(
            "/v1/trials",
            json!({"product_id": product, "fingerprint": "m1"}),
        )
        .await;
    assert_eq!(no_plan.status, 404);
    app.post(
        "/v1/plans",
        json!({"product_id": product, "name": "Trial", "period_days": 14, "trial": true, "max_machines": 1, "features": ["pro"]}),
    )
    .await;

    let first = app
        .public(
            "/v1/trials",
            json!({"product_id": product, "fingerprint": "m1"}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(first.header(keyturn_http::SIGNATURE_HEADER).is_some());
    let license = &first.body["license"];
    assert_eq!(license["trial"], true);
    assert_eq!(license["features"], json!(["pro"]));
    let again = app
        .public(
            "/v1/trials",
            json!({"product_id": product, "fingerprint": "m1"}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body["license"]["key"], license["key"],
        "one trial per machine"
    );
    let other = app
        .public(
            "/v1/trials",
            json!({"product_id": product, "fingerprint": "m2"}),
        )
        .await;
    assert_ne!(other.body["license"]["key"], license["key"]);

    let v = app
        .public(
            "/v1/validate",
            json!({"key": license["key"], "fingerprint": "m1", "features": ["pro"]}),
        )
        .await;
    assert_eq!(v.body["code"], "VALID", "the trial machine is activated");

    let racing = futures::future::join_all((0..10).map(|_| {
        app.public(
            "/v1/trials",
            json!({"product_id": product, "fingerprint": "m3"}),
        )
    }))
    .await;
    let keys: std::collections::HashSet<String> = racing
        .iter()
        .map(|r| {
            assert!(r.status == 200 || r.status == 201, "{}", r.body);
            r.body["license"]["key"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 1, "concurrent requests still give one trial");
    assert_eq!(app.license_count().await, 3);
}
on_every_backend!(one_trial_per_machine_and_product, trials);
