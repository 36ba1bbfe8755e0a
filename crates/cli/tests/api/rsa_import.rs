//! A product's existing RSA key pair brought into Keyturn (API and CLI): programs shipped with
//! its public key verify Keyturn's Cryptolens replies, the key is sealed like every other, and
//! every server process signs with it once it is stored.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use keyturn_core::{MasterKey, RsaDigest, RsaPublicKey, RsaSigner};
use reqwest::Method;
use serde_json::json;

use crate::access::{keyturn_on, stored_keys};
use crate::cryptolens::{post, rsa_key, token, verified_license, Reply};
use crate::helpers::{
    backends, spawn, spawn_again, spawn_second, test_http, Backend, TestApp, TestDb,
};

/// (tag, contents, rest) of the first DER element.
fn read_der(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (der[0], der[1] as usize);
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |a, b| a << 8 | *b as usize);
        (len, 2 + n)
    };
    (tag, &der[head..head + len], &der[head + len..])
}

/// A vendor's key pair as the tools they used would export it.
struct Exported {
    public: RsaPublicKey,
    /// .NET `RSA.ToXmlString(true)`.
    xml: String,
    /// PEM, PKCS#1.
    pkcs1_pem: String,
    /// PEM, PKCS#8.
    pkcs8_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn exported() -> Exported {
    let signer = RsaSigner::generate().unwrap();
    let pkcs8 = B64.decode(signer.to_base64_pkcs8()).unwrap();
    let (_, info, _) = read_der(&pkcs8);
    let (_, _version, rest) = read_der(info);
    let (_, _algorithm, rest) = read_der(rest);
    let (_, pkcs1, _) = read_der(rest);
    let (_, mut ints, _) = read_der(pkcs1);
    let mut parts = Vec::new();
    while !ints.is_empty() {
        let (_, value, rest) = read_der(ints);
        // .NET writes the integers without DER's leading zero.
        let start = value.iter().take_while(|b| **b == 0).count();
        parts.push(B64.encode(&value[start..]));
        ints = rest;
    }
    let xml = format!(
        "<RSAKeyValue><Modulus>{}</Modulus><Exponent>{}</Exponent><P>{}</P><Q>{}</Q><DP>{}</DP><DQ>{}</DQ><InverseQ>{}</InverseQ><D>{}</D></RSAKeyValue>",
        parts[1], parts[2], parts[4], parts[5], parts[6], parts[7], parts[8], parts[3]
    );
    Exported {
        public: signer.public_key(),
        xml,
        pkcs1_pem: pem("RSA PRIVATE KEY", pkcs1),
        pkcs8_pem: pem("PRIVATE KEY", &pkcs8),
    }
}

async fn signed(app: &TestApp, tok: &str, pid: i64, key: &str, method: &str) -> Reply {
    let pid = pid.to_string();
    post(
        app,
        &format!("/api/key/{method}"),
        &[
            ("token", tok),
            ("ProductId", &pid),
            ("Key", key),
            ("MachineCode", "machine-1"),
            ("Sign", "true"),
            ("SignMethod", "1"),
        ],
    )
    .await
}

fn signed_with(r: &Reply, key: &RsaPublicKey) -> bool {
    let bytes = B64.decode(r.body["licenseKey"].as_str().unwrap()).unwrap();
    let sig = B64.decode(r.body["signature"].as_str().unwrap()).unwrap();
    key.verify(RsaDigest::Sha256, &bytes, &sig)
}

async fn import(app: &TestApp, token: &str, pid: i64, key: &str) -> crate::helpers::Resp {
    app.call(
        Method::PUT,
        &format!("/v1/products/{pid}/rsa-key"),
        Some(token),
        Some(json!({ "private_key": key })),
    )
    .await
}

/// Waits until `app` publishes `key` for the product.
async fn publishes(app: &TestApp, pid: i64, key: &RsaPublicKey, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if rsa_key(app, pid).await == *key {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_rsa_keys_sign_the_cryptolens_replies() {
    for backend in backends() {
        let mut db = TestDb::create(&backend).await;
        let master = MasterKey::generate();
        db.master_key = Some(master.clone());
        let app = spawn(&db, test_http()).await;
        let admin = app.admin.clone();
        let pid = app.product("Shipped", &["pro"]).await;
        let key = app
            .license(json!({"product_id": pid, "max_machines": 2}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let tok = token(
            &app,
            json!({"name": "sdk", "permissions": ["cryptolens:getkey", "cryptolens:activate"]}),
        )
        .await;
        // A second server process on the same PostgreSQL database hears the change at once.
        let node2 = match backend {
            Backend::Postgres(_) => Some(spawn_second(&db, test_http(), &admin).await),
            Backend::Sqlite => None,
        };
        let generated = rsa_key(&app, pid).await;
        let before = signed(&app, &tok, pid, &key, "GetKey").await;
        verified_license(&before, &generated);
        if let Some(node2) = &node2 {
            verified_license(&signed(node2, &tok, pid, &key, "GetKey").await, &generated);
        }

        // The vendor's key pair, as .NET exports it.
        let vendor = exported();
        let r = import(&app, &admin, pid, &vendor.xml).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["public_key"], vendor.public.to_xml());
        assert_eq!(rsa_key(&app, pid).await, vendor.public);
        // The unchanged license is signed afresh: no reply signed with the old key is reused.
        let after = signed(&app, &tok, pid, &key, "GetKey").await;
        verified_license(&after, &vendor.public);
        assert!(!signed_with(&after, &generated));
        let activated = signed(&app, &tok, pid, &key, "Activate").await;
        assert_eq!(
            verified_license(&activated, &vendor.public)["ActivatedMachines"][0]["Mid"],
            "machine-1"
        );
        if let Some(node2) = &node2 {
            assert!(publishes(node2, pid, &vendor.public, Duration::from_secs(2)).await);
            verified_license(
                &signed(node2, &tok, pid, &key, "GetKey").await,
                &vendor.public,
            );
        }

        // Stored sealed like every other key: nothing of it in plain text.
        let stored = stored_keys(&db).await;
        assert!(
            stored.iter().all(|k| k.starts_with("sealed:v1:")),
            "{stored:?}"
        );
        let body = |pem: &str| pem.lines().nth(1).unwrap().to_owned();
        assert!(!stored.iter().any(|k| k.contains(&body(&vendor.pkcs8_pem))));

        // What cannot sign is refused, and says why; only an administrator may replace a key.
        let public_only = import(&app, &admin, pid, &vendor.public.to_xml()).await;
        assert_eq!(public_only.status, 422, "{}", public_only.body);
        let message = public_only.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("only the public key"), "{message}");
        let r = import(
            &app,
            &admin,
            pid,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        let writer = app
            .post(
                "/v1/tokens",
                json!({"name": "catalog", "permissions": ["products:write"]}),
            )
            .await
            .body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = import(&app, &writer, pid, &exported().xml).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(
            import(&app, &admin, 999_999, &exported().xml).await.status,
            404
        );
        assert_eq!(
            rsa_key(&app, pid).await,
            vendor.public,
            "refusals change nothing"
        );

        // The CLI, into the database the server is serving (PEM, PKCS#1 and PKCS#8).
        let file = db.dir.path().join("vendor.pem");
        for (i, text) in [exported().pkcs1_pem, exported().pkcs8_pem]
            .into_iter()
            .enumerate()
        {
            std::fs::write(&file, &text).unwrap();
            let imported = RsaSigner::import(&text).unwrap().public_key();
            let (ok, out, err) = keyturn_on(
                &db,
                &[("KEYTURN_MASTER_KEY", &master.to_text())],
                &[
                    "product",
                    "import-rsa-key",
                    &pid.to_string(),
                    file.to_str().unwrap(),
                ],
            );
            assert!(ok, "{i}: {err}");
            assert_eq!(out.trim(), imported.to_xml());
            // The serving process signs with it within its recheck time (5 s).
            assert!(
                publishes(&app, pid, &imported, Duration::from_secs(8)).await,
                "{i}: the server still publishes the old key"
            );
            verified_license(&signed(&app, &tok, pid, &key, "GetKey").await, &imported);
        }
        let (ok, _, err) = keyturn_on(
            &db,
            &[("KEYTURN_MASTER_KEY", &master.to_text())],
            &[
                "product",
                "import-rsa-key",
                &pid.to_string(),
                "/nonexistent/key.xml",
            ],
        );
        assert!(!ok && err.contains("cannot read"), "{err}");

        // After a restart, the imported key still signs.
        let last = rsa_key(&app, pid).await;
        if let Some(node2) = node2 {
            node2.stop().await;
        }
        app.stop().await;
        let app = spawn_again(&db, test_http(), Default::default(), &admin).await;
        verified_license(&signed(&app, &tok, pid, &key, "GetKey").await, &last);
        app.stop().await;
        db.remove().await;
    }
}
