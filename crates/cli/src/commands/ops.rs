//! `keyturn check-config` and `keyturn doctor`: what an operator runs before (or instead of)
//! starting the server to learn what is wrong, one problem per line.
//!
//! `check-config` reads the configuration exactly as `serve` does (flags, environment, file)
//! and judges it without touching anything outside the process. `doctor` goes further and asks
//! the world: the database, the SMTP server, the public URL; it never creates or changes
//! anything (a missing SQLite database is reported, not made).

use std::time::Duration;

use keyturn_store::Store;

use super::Context;
use crate::config::{ServeArgs, Settings};
use crate::output;

/// How long `doctor` waits for each thing it asks.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct CheckConfig {
    #[command(flatten)]
    args: Box<ServeArgs>,
}

impl CheckConfig {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let problems = crate::config::problems(&ctx.store, &self.args);
        if problems.is_empty() {
            output::line("configuration ok")?;
            return Ok(());
        }
        for p in &problems {
            eprintln!("problem: {p}");
        }
        anyhow::bail!("{} problem(s) in the configuration", problems.len())
    }
}

#[derive(clap::Args)]
pub struct Doctor {
    #[command(flatten)]
    args: Box<ServeArgs>,
}

/// What one check found.
enum Finding {
    Ok(String),
    /// Not set up; the server runs without it.
    Missing(String),
    /// Set up but not working, or required and absent: `doctor` fails.
    Failed(String),
}

impl Doctor {
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let mut findings = Vec::new();
        let problems = crate::config::problems(&ctx.store, &self.args);
        for p in &problems {
            findings.push(Finding::Failed(format!("configuration: {p}")));
        }
        if let Ok(settings) = Settings::resolve(&ctx.store, &self.args) {
            findings.push(database(&settings).await);
            findings.push(smtp(&settings).await);
            findings.push(public_url(&settings).await);
            findings.extend(providers(&self.args));
        }
        let mut failed = 0;
        for f in &findings {
            let line = match f {
                Finding::Ok(m) => format!("ok       {m}"),
                Finding::Missing(m) => format!("missing  {m}"),
                Finding::Failed(m) => {
                    failed += 1;
                    format!("FAILED   {m}")
                }
            };
            output::line(&line)?;
        }
        anyhow::ensure!(failed == 0, "{failed} check(s) failed");
        Ok(())
    }
}

async fn database(settings: &Settings) -> Finding {
    let store = &settings.store;
    let opened = match &store.database_url {
        Some(url) => Store::connect(url, &store.options).await,
        None => {
            let file = Store::sqlite_file(&store.data_dir);
            if !file.exists() {
                return Finding::Failed(format!(
                    "database: no Keyturn database at {} (create it with `keyturn migrate`)",
                    file.display()
                ));
            }
            Store::open_sqlite(&store.data_dir, &store.options).await
        }
    };
    let store = match opened {
        Ok(store) => store,
        Err(e) => return Finding::Failed(format!("database: cannot connect: {e}")),
    };
    let pending = tokio::time::timeout(PROBE_TIMEOUT, store.pending_migrations()).await;
    store.close(Duration::from_secs(1)).await;
    let dialect = format!("{:?}", store.dialect()).to_lowercase();
    match pending {
        Ok(Ok(p)) if p.is_empty() => {
            Finding::Ok(format!("database: {dialect} connected, schema current"))
        }
        Ok(Ok(p)) => Finding::Failed(format!(
            "database: {} migration(s) not applied ({}); run `keyturn migrate`",
            p.len(),
            p.join(", ")
        )),
        Ok(Err(e)) => Finding::Failed(format!("database: cannot read the schema version: {e}")),
        Err(_) => Finding::Failed("database: did not answer in time".into()),
    }
}

async fn smtp(settings: &Settings) -> Finding {
    let mail = &settings.mail;
    let Some(host) = &mail.smtp_host else {
        return Finding::Missing(
            "smtp: no SMTP server (KEYTURN_SMTP_HOST): mail to buyers waits in the outbox".into(),
        );
    };
    let at = format!("{host}:{}", mail.smtp_port);
    let transport = match crate::mail::transport(mail) {
        Ok(Some(t)) => t,
        Ok(None) => return Finding::Missing(format!("smtp: {at}: not configured")),
        Err(e) => return Finding::Failed(format!("smtp: {at}: {e}")),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, transport.test_connection()).await {
        Ok(Ok(true)) => Finding::Ok(format!("smtp: {at} answered EHLO")),
        Ok(Ok(false)) => Finding::Failed(format!("smtp: {at} connected but did not answer")),
        Ok(Err(e)) => Finding::Failed(format!("smtp: {at}: {e}")),
        Err(_) => Finding::Failed(format!("smtp: {at} did not answer in time")),
    }
}

async fn public_url(settings: &Settings) -> Finding {
    let Some(url) = &settings.http.public_url else {
        return Finding::Missing(
            "public url: not set (KEYTURN_PUBLIC_URL): payment forms take no checkout".into(),
        );
    };
    if let Err(e) = crate::config::check_public_url(url) {
        return Finding::Failed(format!("public url: {e}"));
    }
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return Finding::Failed(format!("public url: {e}")),
    };
    match client.get(url).send().await {
        Ok(r) => Finding::Ok(format!(
            "public url: {url} answered {}",
            r.status().as_u16()
        )),
        Err(e) => Finding::Failed(format!("public url: {url} is not reachable: {e}")),
    }
}

/// Which payment providers are set up; none is required.
fn providers(args: &ServeArgs) -> Vec<Finding> {
    let p = args.providers.resolve();
    let s = &p.stores;
    let seen = [
        (
            "stripe webhooks",
            p.stripe.is_some(),
            "KEYTURN_STRIPE_WEBHOOK_SECRET",
        ),
        (
            "stripe api",
            args.providers.stripe.api.stripe_api_key.is_some(),
            "KEYTURN_STRIPE_API_KEY",
        ),
        (
            "paypal",
            p.paypal.is_some(),
            "KEYTURN_PAYPAL_CLIENT_ID and _SECRET",
        ),
        (
            "paddle",
            !s.paddle.is_empty(),
            "KEYTURN_PADDLE_WEBHOOK_SECRET",
        ),
        (
            "lemonsqueezy",
            !s.lemonsqueezy.is_empty(),
            "KEYTURN_LEMONSQUEEZY_WEBHOOK_SECRET",
        ),
        (
            "fastspring",
            !s.fastspring.is_empty(),
            "KEYTURN_FASTSPRING_WEBHOOK_SECRET",
        ),
        (
            "gumroad",
            s.gumroad.is_some(),
            "KEYTURN_GUMROAD_PING_SECRET",
        ),
    ];
    seen.into_iter()
        .map(|(name, set, how)| match set {
            true => Finding::Ok(format!("provider: {name} configured")),
            false => Finding::Missing(format!("provider: {name} not configured ({how})")),
        })
        .collect()
}
