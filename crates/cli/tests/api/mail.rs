//! Keys mailed to buyers through the outbox, received by a real SMTP server (aiosmtpd).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keyturn::config::{MailSettings, SmtpTls};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{backends, spawn_full, test_http, test_python, TestDb};

pub struct SmtpSink(Child);

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_sink(port: u16, maildir: &Path) -> SmtpSink {
    SmtpSink(
        Command::new(test_python())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd"),
    )
}

pub fn delivered(maildir: &Path) -> Vec<String> {
    std::fs::read_dir(maildir.join("new"))
        .map(|d| {
            d.flatten()
                .map(|f| std::fs::read_to_string(f.path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

async fn outbox(db: &TestDb) -> (i64, i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
    let row = sqlx::query("SELECT COUNT(*) AS n, COALESCE(MAX(attempts), 0) AS a FROM mail_outbox WHERE sent_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    let out = (row.get::<i64, _>("n"), row.get::<i64, _>("a"));
    pool.close().await;
    out
}

async fn last_error(db: &TestDb) -> Option<String> {
    let pool = sqlx::AnyPool::connect(&db.any_url()).await.unwrap();
    let row = sqlx::query("SELECT last_error FROM mail_outbox ORDER BY id DESC LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let e = row.get::<Option<String>, _>("last_error");
    pool.close().await;
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_mailed_and_survive_an_smtp_outage() {
    for backend in backends() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let scratch = tempfile::tempdir().unwrap();
        // aiosmtpd lays out a Maildir only in a directory it creates itself.
        let maildir = scratch.path().join("mail");
        let db = TestDb::create(&backend).await;
        let mail = MailSettings {
            smtp_host: Some("127.0.0.1".into()),
            smtp_port: port,
            tls: SmtpTls::None,
            from: "licenses@editor.example".into(),
            retry_base: Duration::from_millis(300),
            poll: Duration::from_millis(100),
            ..MailSettings::default()
        };
        let app = spawn_full(&db, test_http(), Default::default(), mail).await;
        let product = app.product("Editor Pro", &[]).await;
        let plan = app
            .post("/v1/plans", json!({"product_id": product, "name": "Pro"}))
            .await
            .body["id"]
            .as_i64()
            .unwrap();
        let url = app
            .post(
                "/v1/license-urls",
                json!({"plan_id": plan, "name": "shop", "store": "sendowl", "email_buyer": true}),
            )
            .await
            .body["path"]
            .as_str()
            .unwrap()
            .to_owned();
        let quiet = app
            .post(
                "/v1/license-urls",
                json!({"plan_id": plan, "name": "quiet", "store": "sendowl"}),
            )
            .await
            .body["path"]
            .as_str()
            .unwrap()
            .to_owned();

        // The SMTP server is down: the sale still answers with the key at once.
        let sale = app
            .http
            .get(format!("{}{url}", app.base))
            .query(&[
                ("order_id", "SO-1"),
                ("buyer_name", "Ann Lee"),
                ("buyer_email", "ann@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(sale.status(), 200);
        let key = sale.text().await.unwrap().trim().to_owned();
        let silent = app
            .http
            .get(format!("{}{quiet}", app.base))
            .query(&[("order_id", "SO-2"), ("buyer_email", "bo@example.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(silent.status(), 200);

        let mut waited = 0;
        while outbox(&db).await.1 < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
            assert!(waited < 100, "the worker never tried to send");
        }
        assert_eq!(
            outbox(&db).await.0,
            1,
            "one mail waits: the quiet integration mails nobody"
        );

        // The SMTP server comes back: the waiting mail goes out, once.
        let _sink = start_sink(port, &maildir);
        let mut mails = Vec::new();
        for _ in 0..150 {
            mails = delivered(&maildir);
            if !mails.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            mails.len(),
            1,
            "the mail arrived; outbox: {:?}",
            last_error(&db).await
        );
        let m = &mails[0];
        assert!(m.contains("To: ann@example.com"), "{m}");
        assert!(m.contains("From: licenses@editor.example"), "{m}");
        assert!(
            m.contains("Subject: Your license key for Editor Pro"),
            "{m}"
        );
        assert!(m.contains(&key), "the mail holds the key: {m}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(delivered(&maildir).len(), 1, "sent once");
        assert_eq!(outbox(&db).await.0, 0);
        app.stop().await;
        db.remove().await;
    }
}
