//! A buyer's whole way through, each step on what the one before produced: a payment form in
//! Chromium, the key mail at a real SMTP server, the portal link in it, a sign-in link by mail,
//! the portal's self-service in Chromium freeing a machine, and the vendor's program moving to
//! a new machine — while the plan's limit on frees still holds.

use std::time::Duration;

use keyturn::config::{MailSettings, SmtpTls};
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::Providers;
use serde_json::json;

use crate::console::{run_browser_output, run_browser_script, Browser};
use crate::forms::{checkout_server, SECRET};
use crate::helpers::{backends, free_port, test_http, TestApp, TestDb};
use crate::mail::{delivered, start_sink};
use crate::portal_billing::eventually;

const EMAIL: &str = "ann@example.com";

async fn activate(app: &TestApp, key: &str, machine: &str) -> crate::helpers::Resp {
    app.public(
        "/v1/activations",
        json!({"key": key, "fingerprint": format!("fp-{machine}"), "name": machine}),
    )
    .await
}

/// The license's machines as (activation id, name).
async fn machines(app: &TestApp, license_id: i64) -> Vec<(i64, String)> {
    let list = app
        .get(&format!("/v1/licenses/{license_id}/activations"))
        .await;
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_i64().unwrap(),
                a["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The address around `marker` in a mail, up to the end of its line, as a mail client shows
/// it: a long line may come quoted-printable, folded with soft line breaks.
fn link_after(mail: &str, marker: &str) -> Option<String> {
    let mail = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let at = mail.find(marker)?;
    let start = mail[..at].rfind("http").unwrap_or(at);
    Some(mail[start..].split_whitespace().next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_buys_gets_the_mail_signs_in_frees_a_machine_and_moves() {
    let (chromium, node_dir) = match crate::console::browser_tools() {
        Ok(tools) => tools,
        Err(why) => {
            crate::helpers::skipped_for("the buyer's journey in a browser", &why);
            return;
        }
    };
    let chromium = chromium.to_string_lossy().into_owned();
    // The pages and mails are the same whatever the database: SQLite only.
    let db = TestDb::create(&backends().remove(0)).await;
    let smtp_port = free_port();
    let scratch = tempfile::tempdir().unwrap();
    let maildir = scratch.path().join("mail");
    let _sink = start_sink(smtp_port, &maildir);
    // The checkout page and Keyturn each need the other's address: Keyturn's port comes first.
    let port = free_port();
    let keyturn_base = format!("http://127.0.0.1:{port}");
    let (stripe_base, _) = checkout_server(keyturn_base.clone()).await;
    let providers = Providers {
        stripe: Some(StripeAdapter::new(
            vec![SECRET.into()],
            Duration::from_secs(300),
            Some(StripeApi::new(&stripe_base, "sk_test_journey")),
        )),
        ..Default::default()
    };
    let mail = MailSettings {
        smtp_host: Some("127.0.0.1".into()),
        smtp_port,
        tls: SmtpTls::None,
        poll: Duration::from_millis(100),
        retry_base: Duration::from_millis(200),
        ..MailSettings::default()
    };
    let http = keyturn_http::HttpSettings {
        public_url: Some(keyturn_base.clone()),
        ..test_http()
    };
    let app = crate::helpers::spawn_on(&db, http, providers, mail, port).await;

    let product = app.product("Editor Pro", &["pro"]).await;
    let plan = app
        .post(
            "/v1/plans",
            json!({"product_id": product, "name": "Pro", "period_days": 365, "features": ["pro"],
                   "max_machines": 3, "stripe_price_ids": ["price_once"]}),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let plan_id = plan.body["id"].as_i64().unwrap();
    // Two frees: the browser run frees one machine at each screen size, and a third is refused.
    let limited = app
        .patch(
            &format!("/v1/plans/{plan_id}"),
            json!({"buyer_frees_max": 2}),
        )
        .await;
    assert_eq!(limited.status, 200, "{}", limited.body);
    assert_eq!(limited.body["buyer_frees_max"], 2);
    let form = app
        .post("/v1/payment-forms", json!({"name": "Buy Editor Pro", "product_id": product, "offers": [
            {"plan_id": plan_id, "label": "Pro — one year", "price": "€49", "stripe_price_id": "price_once", "mode": "payment"}]}))
        .await;
    assert_eq!(form.status, 201, "{}", form.body);

    // 1. The buyer pays on the form in Chromium and waits on the done page for the key.
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("portal-screenshots")
        .join("journey");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let done_shot = shots.join("done-phone.png");
    let form_url = format!("{}{}", app.base, form.body["path"].as_str().unwrap());
    let out = run_browser_output(
        &node_dir,
        "checkout.mjs",
        &[
            ("FORM_URL", &form_url),
            ("SCREENSHOT", &done_shot),
            ("CHROMIUM", &chromium),
        ],
    )
    .await;
    let shown = String::from_utf8_lossy(&out).trim().to_owned();
    assert!(std::fs::metadata(&done_shot).unwrap().len() > 1000);

    // 2. The key mail arrives at the SMTP server with the same key and a link to the portal.
    let key_mail = eventually("the key mail", || async {
        delivered(&maildir).into_iter().next()
    })
    .await;
    let key = app.get(&format!("/v1/licenses/by-key/{shown}")).await;
    assert_eq!(key.status, 200, "the done page showed a real key: {shown}");
    let license_id = key.body["id"].as_i64().unwrap();
    let key = key.body["key"].as_str().unwrap().to_owned();
    assert!(key_mail.contains(&key), "{key_mail}");
    let portal = format!("{keyturn_base}/portal");
    let link = key_mail
        .lines()
        .map(str::trim)
        .find(|l| *l == portal)
        .unwrap_or_else(|| panic!("no portal link in the key mail: {key_mail}"));

    // 3. The vendor's program activates the key on as many machines as the plan allows; one
    // more is refused.
    for m in ["ann-laptop", "ann-workstation", "ann-old-tower"] {
        let r = activate(&app, &key, m).await;
        assert!(r.status < 300, "{m}: {}", r.body);
    }
    let refused = activate(&app, &key, "ann-new-pc").await;
    assert!(refused.status >= 400, "{}", refused.body);

    // 4. The portal link leads to the sign-in page, which mails a sign-in link.
    let mut b = Browser::new(&app);
    let home = b.get(link.strip_prefix(&keyturn_base).unwrap()).await;
    assert_eq!(home.status, 303, "{}", home.html);
    assert_eq!(home.location.as_deref(), Some("/portal/sign-in"));
    let sign_in = b.get("/portal/sign-in").await;
    assert_eq!(sign_in.status, 200);
    assert!(sign_in.html.contains("action=\"/portal/sign-in/link\""));
    let sent = b
        .post(
            "/portal/sign-in/link",
            &[("csrf", &sign_in.csrf()), ("email", EMAIL)],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.html);
    let sign_in_link = eventually("the sign-in mail", || async {
        delivered(&maildir)
            .iter()
            .find_map(|m| link_after(m, "/portal/link/"))
    })
    .await;
    assert!(
        sign_in_link.starts_with(&format!("{keyturn_base}/portal/link/")),
        "{sign_in_link}"
    );

    // 5. In Chromium the buyer signs in by the link, opens the license and frees a machine at
    // each screen size; axe-core finds nothing serious and nothing overflows.
    let report = run_browser_script(
        &node_dir,
        "portal.mjs",
        &[
            ("LINK", &sign_in_link),
            ("SHOTS", &shots),
            ("CHROMIUM", &chromium),
        ],
    )
    .await;
    assert_eq!(report["freed"], 2, "{report}");
    let pages = report["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 6, "{report}");
    for page in pages {
        assert_eq!(
            page["serious"], 0,
            "serious or critical accessibility violations on {} ({}): {}",
            page["name"], page["size"], page["violations"]
        );
        assert_eq!(page["overflow"], false, "{page}");
        assert_eq!(page["keyBreaks"], 0, "a key group broke: {page}");
        let shot = shots.join(format!(
            "{}-{}.png",
            page["name"].as_str().unwrap(),
            page["size"].as_str().unwrap()
        ));
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    }
    assert_eq!(machines(&app, license_id).await.len(), 1);

    // 6. The machine refused before the frees now activates.
    let moved = activate(&app, &key, "ann-new-pc").await;
    assert!(moved.status < 300, "{}", moved.body);
    assert_eq!(machines(&app, license_id).await.len(), 2);

    // 7. The plan's two frees are used: the page offers no more, and a third is refused.
    let mut b = Browser::new(&app);
    let sign_in = b.get("/portal/sign-in").await;
    let signed = b
        .post(
            "/portal/sign-in/key",
            &[("csrf", &sign_in.csrf()), ("key", &key), ("email", EMAIL)],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.html);
    let page = b.get(&format!("/portal/licenses/{license_id}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        !page.html.contains("Free this machine"),
        "no button once the frees are used up: {}",
        page.html
    );
    let (new_pc, _) = machines(&app, license_id)
        .await
        .into_iter()
        .find(|(_, name)| name == "ann-new-pc")
        .unwrap();
    let third = b
        .post(
            &format!("/portal/licenses/{license_id}/machines/{new_pc}/free"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(third.status, 409, "{}", third.html);
    assert!(
        third
            .html
            .contains("You have freed 2 machines of this license"),
        "{}",
        third.html
    );
    assert!(third.html.contains("Nothing was freed"), "{}", third.html);
    assert_eq!(machines(&app, license_id).await.len(), 2);

    app.stop().await;
    db.remove().await;
}
