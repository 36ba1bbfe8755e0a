//! Measurement 7, the admin console over a large installation: a million licenses (half as
//! many customers, a machine for every tenth license, a payment for every twentieth), written
//! straight into a fresh database with multi-row inserts, then the console's search, license
//! page and dashboard asked through HTTP by a signed-in browser's cookie.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context};
use hyper::StatusCode;
use sqlx::{AnyConnection, Connection, Executor};

use super::{rate, splitmix, throughput, Options, Scratch};
use crate::load::{self, RequestFactory};
use crate::report::Row;
use crate::server::{self, Database, Server};

const DAY_MS: i64 = 86_400_000;
/// Rows per INSERT statement, and per transaction.
const ROWS_PER_INSERT: usize = 1000;
const ROWS_PER_COMMIT: usize = 100_000;
const OWNER: &str = "owner@bench.example";
const PASSWORD: &str = "a long enough bench passphrase";

/// The key of license `i`: four groups of five letters drawn from `i`'s hash (unique: the
/// hash is a bijection and 20 letters hold 94 bits).
fn key(i: u64) -> String {
    let mut x = splitmix(i);
    let mut y = splitmix(i ^ 0xA5A5_A5A5);
    let mut out = String::with_capacity(23);
    for n in 0..20 {
        if n > 0 && (n as usize).is_multiple_of(5) {
            out.push('-');
        }
        let source = if n < 12 { &mut x } else { &mut y };
        out.push(char::from(b'A' + (*source % 26) as u8));
        *source /= 26;
    }
    out
}

fn customer_name(c: u64) -> String {
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Linus", "Margaret",
    ];
    format!("{} Buyer{c}", FIRST[(c % 8) as usize])
}

fn customer_email(c: u64) -> String {
    format!("buyer{c}@shop{}.example", c % 97)
}

async fn insert_rows(
    conn: &mut AnyConnection,
    table_and_columns: &str,
    count: u64,
    row: impl Fn(u64) -> String,
) -> anyhow::Result<()> {
    let mut i = 0u64;
    while i < count {
        conn.execute("BEGIN").await?;
        let end = (i + ROWS_PER_COMMIT as u64).min(count);
        while i < end {
            let stop = (i + ROWS_PER_INSERT as u64).min(end);
            let mut sql = format!("INSERT INTO {table_and_columns} VALUES ");
            for n in i..stop {
                if n > i {
                    sql.push(',');
                }
                sql.push_str(&row(n));
            }
            conn.execute(sql.as_str()).await?;
            i = stop;
        }
        conn.execute("COMMIT").await?;
    }
    Ok(())
}

/// Fills a migrated database with `licenses` licenses across products 1–3 and what hangs
/// off them. Every value is generated here (numbers and letters), so it is written as SQL text.
async fn seed(url: &str, licenses: u64, now_ms: i64) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url)
        .await
        .context("connect to seed")?;
    let customers = licenses.div_ceil(2);
    insert_rows(
        &mut conn,
        "customers (id, name, email, company, created_at)",
        customers,
        |c| {
            format!(
                "({}, '{}', '{}', NULL, {})",
                c + 1,
                customer_name(c),
                customer_email(c),
                now_ms - 200 * DAY_MS
            )
        },
    )
    .await?;
    insert_rows(
        &mut conn,
        "licenses (id, key, product_id, customer_id, created_at, updated_at, expires_at, features, \
         max_machines, trial, notes, blocked, metadata)",
        licenses,
        |i| {
            let h = splitmix(i ^ 0x5EED);
            // Created over the last 120 days, expiring from 30 days ago to 400 days ahead.
            let created = now_ms - (h % (120 * DAY_MS as u64)) as i64;
            let expires = now_ms + ((h >> 20) % (430 * DAY_MS as u64)) as i64 - 30 * DAY_MS;
            format!(
                "({}, '{}', {}, {}, {created}, {created}, {expires}, '[]', 3, 0, '', {}, '{{}}')",
                i + 1,
                key(i),
                i % 3 + 1,
                i / 2 + 1,
                i32::from(h.is_multiple_of(200)),
            )
        },
    )
    .await?;
    insert_rows(
        &mut conn,
        "activations (id, license_id, fingerprint, name, ip, created_at, last_seen_at)",
        licenses / 10,
        |a| {
            let seen = now_ms - (splitmix(a) % (100 * DAY_MS as u64)) as i64;
            format!(
                "({}, {}, 'bench-machine-{a}', 'Machine {a}', '192.0.2.1', {seen}, {seen})",
                a + 1,
                a * 10 + 1
            )
        },
    )
    .await?;
    insert_rows(
        &mut conn,
        "payments (id, provider, object_kind, object_id, status, customer_id, amount, currency, \
         event_id, created_at, updated_at)",
        licenses / 20,
        |p| {
            let at = now_ms - (splitmix(p ^ 0xCAFE) % (100 * DAY_MS as u64)) as i64;
            let provider = ["stripe", "paddle", "paypal"][(p % 3) as usize];
            format!(
                "({}, '{provider}', 'invoice', 'in_bench_{p}', 'paid', {}, {}, 'eur', 'evt_bench_{p}', {at}, {at})",
                p + 1,
                p * 10 + 1,
                900 + (p % 7) * 500
            )
        },
    )
    .await?;
    let codes = ["VALID", "NOT_FOUND", "EXPIRED", "NOT_ACTIVATED", "BLOCKED"];
    let today = now_ms / DAY_MS;
    insert_rows(
        &mut conn,
        "usage_daily (day, kind, product_id, code, count)",
        100 * 3 * codes.len() as u64 * 2,
        |u| {
            let (day, rest) = (u % 100, u / 100);
            let (product, rest) = (rest % 3 + 1, rest / 3);
            let (code, kind) = (rest % codes.len() as u64, rest / codes.len() as u64);
            let kind = ["validation", "activation"][kind as usize];
            format!(
                "({}, '{kind}', {product}, '{}', {})",
                today - day as i64,
                codes[code as usize],
                splitmix(u) % 5000
            )
        },
    )
    .await?;
    if url.starts_with("postgres") {
        // The ids were given, not drawn: move the sequences past them; and fresh statistics.
        for table in ["customers", "licenses", "activations", "payments"] {
            conn.execute(
                format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                )
                .as_str(),
            )
            .await?;
        }
        // VACUUM as autovacuum does after a bulk load: until the visibility map is set, every
        // index-only count (the dashboard's per-day counts) visits the table's rows, which is
        // the state of the first minutes after an import, not of a running installation.
        conn.execute("VACUUM ANALYZE").await?;
    } else {
        conn.execute("ANALYZE").await?;
    }
    conn.close().await?;
    Ok(())
}

/// Signs in through the form as a browser does; returns the session cookie.
async fn sign_in(base: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = http.get(format!("{base}/admin/login")).send().await?;
    let login_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("keyturn_console_login="))
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| anyhow!("no sign-in cookie"))?
        .to_owned();
    let html = form.text().await?;
    let at = html
        .find("name=\"csrf\" value=\"")
        .ok_or_else(|| anyhow!("no CSRF field"))?;
    let csrf = &html[at + 19..];
    let csrf = &csrf[..csrf.find('"').unwrap_or(0)];
    let done = http
        .post(format!("{base}/admin/login"))
        .header("cookie", login_cookie)
        .form(&[("csrf", csrf), ("email", OWNER), ("password", PASSWORD)])
        .send()
        .await?;
    ensure!(
        done.status() == StatusCode::SEE_OTHER.as_u16(),
        "sign-in: {}",
        done.status()
    );
    done.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("keyturn_console="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no session cookie"))
}

/// GETs of `paths`, spread over the connections.
fn pages(addr: std::net::SocketAddr, cookie: String, paths: Vec<String>) -> RequestFactory {
    let paths = std::sync::Arc::new(paths);
    std::sync::Arc::new(move |conn, n| {
        let i = splitmix(((conn as u64) << 40) ^ n) as usize % paths.len();
        load::get(addr, &paths[i], &cookie)
    })
}

pub(super) async fn console_figures(
    o: &Options,
    scratch: &mut Scratch,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!(
        "7. the admin console with {} licenses",
        rate(o.console_licenses as f64)
    );
    let mut databases = vec![scratch.sqlite("console")];
    if let Some(db) = scratch.postgres().await? {
        databases.push(db);
    }
    for db in &databases {
        console_at_size(o, db, rows).await?;
    }
    Ok(())
}

async fn console_at_size(o: &Options, db: &Database, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let n = o.console_licenses as u64;
    let Server { process, admin } = server::keyturn(&o.server, db, &[]).await?;
    for name in ["Editor", "Suite", "Viewer"] {
        admin.product(name).await?;
    }
    process.stop().await;
    let url = match db {
        Database::Sqlite(dir) => format!("sqlite://{}", dir.join("keyturn.db").display()),
        Database::Postgres(url) => url.clone(),
    };
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    seed(&url, n, now_ms).await?;
    let seeding = started.elapsed();
    eprintln!(
        "   seeded {} licenses ({}) in {:.1} s",
        rate(n as f64),
        db.label(),
        seeding.as_secs_f64()
    );
    let mut create = tokio::process::Command::new(&o.server);
    create
        .args([
            "user",
            "create",
            "--email",
            OWNER,
            "--role",
            "owner",
            "--password",
            PASSWORD,
        ])
        .stdout(std::process::Stdio::null());
    match db {
        Database::Sqlite(dir) => create
            .env("KEYTURN_DATA_DIR", dir)
            .env_remove("KEYTURN_DATABASE_URL"),
        Database::Postgres(url) => create.env("KEYTURN_DATABASE_URL", url),
    };
    let status = create.status().await?;
    ensure!(status.success(), "keyturn user create: {status}");
    let Server { process, .. } = server::keyturn_again(&o.server, db, &[], &admin).await?;
    let base = format!("http://{}", process.addr);
    let cookie = sign_in(&base).await?;
    let addr = process.addr;

    // What is asked: prefixes long enough to narrow a million rows to a page, of keys,
    // emails and names that exist; license pages of random licenses; the dashboard.
    let sample = 500u64.min(n);
    let pick = |s: u64| splitmix(s ^ 0xB0B) % n;
    let by_key: Vec<String> = (0..sample)
        .map(|s| format!("/admin/search?q={}", &key(pick(s))[..8]))
        .collect();
    let by_email: Vec<String> = (0..sample)
        .map(|s| {
            let email = customer_email(pick(s) / 2);
            format!(
                "/admin/search?q={}",
                &email[..email.find('@').unwrap_or(email.len())]
            )
        })
        .collect();
    let by_name: Vec<String> = (0..sample)
        .map(|s| {
            format!(
                "/admin/search?q={}",
                customer_name(pick(s) / 2).replace(' ', "+")
            )
        })
        .collect();
    let license_pages: Vec<String> = (0..sample)
        .map(|s| format!("/admin/licenses/{}", pick(s) + 1))
        .collect();
    let loads: [(&str, Vec<String>, &'static str); 6] = [
        ("console search by key prefix", by_key, "class=\"key\""),
        (
            "console search by customer email prefix",
            by_email,
            "class=\"key\"",
        ),
        (
            "console search by customer name prefix",
            by_name,
            "class=\"key\"",
        ),
        ("console license page", license_pages, "Audit timeline"),
        (
            "dashboard, 30 days",
            vec!["/admin".into()],
            "Validations per day",
        ),
        (
            "dashboard, 90 days",
            vec!["/admin?days=90".into()],
            "Validations per day",
        ),
    ];
    let mut spec = o.spec(o.latency_connections, StatusCode::OK, "");
    spec.duration = Duration::from_secs(o.seconds.min(5)).max(Duration::from_secs(1));
    for (name, paths, must_contain) in loads {
        spec.must_contain = must_contain;
        let stats = load::run(
            addr,
            &spec.clone().watching(process.pid()),
            pages(addr, cookie.clone(), paths),
        )
        .await?;
        stats.ensure_clean(name)?;
        rows.push(
            Row::new(
                "7",
                format!("{name}, {} licenses ({})", rate(n as f64), db.label()),
                throughput(&stats, "req"),
            )
            .note(format!(
                "signed-in owner, {} connections, whole HTML page checked for `{must_contain}`; \
                 server {:.0} µs of CPU per request; seeded by multi-row inserts in {:.0} s",
                o.latency_connections,
                stats.server_cpu_us.unwrap_or(f64::NAN),
                seeding.as_secs_f64()
            )),
        );
    }
    process.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_well_formed() {
        let keys: std::collections::HashSet<String> = (0..10_000).map(key).collect();
        assert_eq!(keys.len(), 10_000);
        let k = key(7);
        assert_eq!(k.len(), 23);
        assert!(k
            .split('-')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_uppercase())));
    }
}
