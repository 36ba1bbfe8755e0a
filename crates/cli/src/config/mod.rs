//! Configuration. Each setting is declared once, as a field of one of the `clap::Args` groups
//! here and in [`providers`]: the field `rate_limit_burst` is the flag `--rate-limit-burst`, the
//! variable `KEYTURN_RATE_LIMIT_BURST` and the TOML key `rate_limit_burst`, and its default is
//! the argument's (so `--help` shows it). A flag beats the environment, which beats the file
//! (`--config` or `KEYTURN_CONFIG`), which beats the default ([`layers`] says how).
//!
//! A command takes only the groups it uses, so its `--help` lists only those: the store options
//! are global, `serve` takes everything, `stripe sync` and `form create` the provider APIs.
//! Secrets are `SecretString`s from the moment they are parsed: never printed by `Debug`, never
//! shown in `--help` (hidden variable values), exposed only to the adapter that uses them.
//!
//! The `*Settings` types are what the server runs with, resolved from the groups; tests build
//! them directly.

mod layers;
pub mod providers;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keyturn_core::MasterKey;
use keyturn_http::{ConnectionLimits, HttpSettings, MetricsToken, TlsFiles};
use keyturn_providers::Providers;
use keyturn_store::{StoreOptions, Synchronous};
use secrecy::{ExposeSecret, SecretString};

pub use layers::{env_name, file_key, parse_from, secret, settings};
pub use providers::ProviderArgs;

/// Options every command accepts (they say where the data lives).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct StoreArgs {
    /// TOML configuration file, with the settings' names as keys.
    #[arg(long, env = "KEYTURN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite database.
    #[arg(
        long,
        env = "KEYTURN_DATA_DIR",
        global = true,
        default_value = "keyturn-data"
    )]
    pub data_dir: PathBuf,
    /// Use this database instead of SQLite in the data directory (postgres://… or sqlite://…).
    #[arg(long, env = "KEYTURN_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Connections per pool.
    #[arg(
        long,
        env = "KEYTURN_MAX_CONNECTIONS",
        global = true,
        default_value_t = 16
    )]
    pub max_connections: u32,
    /// Master key that seals the private signing keys in the database: 32 random bytes as
    /// base64 or hex (`keyturn keys new-master-key` makes one). Prefer the file.
    #[arg(long, env = "KEYTURN_MASTER_KEY", global = true, hide_env_values = true, value_parser = secret)]
    pub master_key: Option<SecretString>,
    /// A file holding the master key.
    #[arg(long, env = "KEYTURN_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Milliseconds to wait for a database connection, for each statement, and for another
    /// process's SQLite write lock, before the database counts as unavailable (503).
    #[arg(long, env = "KEYTURN_DATABASE_TIMEOUT_MS", global = true,
          default_value_t = millis(keyturn_store::DEFAULT_TIMEOUT))]
    pub database_timeout_ms: u64,
    /// SQLite `synchronous`: `normal` (a process crash loses nothing, a power loss may lose the
    /// last transactions) or `full` (a power loss loses nothing either; one disk sync per write).
    #[arg(long, env = "KEYTURN_SQLITE_SYNCHRONOUS", global = true, value_enum,
          default_value_t = SqliteSynchronous::Normal)]
    pub sqlite_synchronous: SqliteSynchronous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSynchronous {
    Normal,
    Full,
}

/// Options of `keyturn serve`: the HTTP server, mail, the providers, and the hot paths.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEYTURN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Activation/validation requests per minute per client IP; 0 = unlimited.
    #[arg(long, env = "KEYTURN_RATE_LIMIT_PER_MINUTE", default_value_t = http().rate_limit_per_minute)]
    pub rate_limit_per_minute: u32,
    /// Requests a client may make at once before the per-minute rate applies.
    #[arg(long, env = "KEYTURN_RATE_LIMIT_BURST", default_value_t = http().rate_limit_burst)]
    pub rate_limit_burst: u32,
    /// How many proxies in front of the server append to X-Forwarded-For; the client IP is
    /// the address that many entries from the right [default: 0, the header is ignored].
    #[arg(long, env = "KEYTURN_TRUSTED_PROXY_HOPS")]
    pub trusted_proxy_hops: Option<usize>,
    /// Older form of --trusted-proxy-hops: true means one proxy.
    #[arg(long, env = "KEYTURN_TRUST_FORWARDED_FOR", hide = true)]
    pub trust_forwarded_for: Option<bool>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "KEYTURN_MAX_BODY_BYTES", default_value_t = http().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Log format.
    #[arg(long, env = "KEYTURN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds a Cryptolens-API signature of an unchanged license is handed out again (0: sign
    /// every reply afresh).
    #[arg(long, env = "KEYTURN_SIGNATURE_REUSE_SECONDS", default_value_t = seconds(reuse_for()))]
    pub signature_reuse_seconds: u64,
    /// Licenses kept in memory for validation and activation (0: read the database each time).
    #[arg(long, env = "KEYTURN_LICENSE_CACHE_ENTRIES", default_value_t = keyturn_app::DEFAULT_LICENSE_CACHE)]
    pub license_cache_entries: usize,
    /// Seconds a client has to send a request's headers; also how long an HTTP/1 connection
    /// may wait idle for its next request.
    #[arg(long, env = "KEYTURN_HEADER_READ_TIMEOUT_SECONDS",
          default_value_t = seconds(http().connections.header_read_timeout))]
    pub header_read_timeout_seconds: u64,
    /// Seconds without a byte moving either way after which a connection is closed.
    #[arg(long, env = "KEYTURN_IDLE_TIMEOUT_SECONDS",
          default_value_t = seconds(http().connections.idle_timeout))]
    pub idle_timeout_seconds: u64,
    /// Open connections one IP address may hold; 0 = no cap. Behind a reverse proxy every
    /// connection comes from the proxy: raise it or set 0 there.
    #[arg(long, env = "KEYTURN_MAX_CONNECTIONS_PER_IP",
          default_value_t = http().connections.max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Seconds a shutdown (SIGTERM) lets requests in flight finish before closing their
    /// connections.
    #[arg(long, env = "KEYTURN_SHUTDOWN_GRACE_SECONDS",
          default_value_t = seconds(http().connections.shutdown_grace))]
    pub shutdown_grace_seconds: u64,
    /// Bearer token that opens `/metrics` on the main listener [default: none, /metrics is not
    /// served there].
    #[arg(long, env = "KEYTURN_METRICS_TOKEN", hide_env_values = true, value_parser = secret)]
    pub metrics_token: Option<SecretString>,
    /// A separate address serving `/metrics` (and `/version`) without a token, for a private
    /// network [default: none].
    #[arg(long, env = "KEYTURN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain (the server's certificate first) to serve https with on --listen;
    /// reloaded on SIGHUP and when the file changes [default: none, plain HTTP].
    #[arg(long, env = "KEYTURN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "KEYTURN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Seconds between two looks at the certificate and key files for a change.
    #[arg(long, env = "KEYTURN_TLS_RELOAD_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub tls_reload_seconds: u64,
    /// A plain-HTTP address answering every request with a permanent redirect (308) to the
    /// same path over https; needs --tls-cert [default: none].
    #[arg(long, env = "KEYTURN_HTTP_REDIRECT_LISTEN")]
    pub http_redirect_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub public: PublicUrlArgs,
    #[command(flatten)]
    pub mail: MailArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// The address buyers reach the server at (`serve` and `form create`).
#[derive(Debug, Clone, Default, Args)]
pub struct PublicUrlArgs {
    /// The address buyers reach this server at, for payment providers' return links; payment
    /// forms need it.
    #[arg(long, env = "KEYTURN_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl PublicUrlArgs {
    fn resolve(&self) -> Option<String> {
        self.public_url.clone().filter(|u| !u.trim().is_empty())
    }

    pub fn is_set(&self) -> bool {
        self.resolve().is_some()
    }
}

/// Mail to buyers.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mail")]
pub struct MailArgs {
    /// SMTP server for mail to buyers; without it, mail waits in the outbox.
    #[arg(long, env = "KEYTURN_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587, or 465 with --smtp-tls tls, 25 with none].
    #[arg(long, env = "KEYTURN_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    #[arg(long, env = "KEYTURN_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub smtp_tls: SmtpTls,
    #[arg(long, env = "KEYTURN_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "KEYTURN_SMTP_PASSWORD", hide_env_values = true, value_parser = secret)]
    pub smtp_password: Option<SecretString>,
    /// Sender of mail to buyers.
    #[arg(long, env = "KEYTURN_MAIL_FROM", default_value = "keyturn@localhost")]
    pub mail_from: String,
    /// First retry delay after a failed send, doubling up to an hour.
    #[arg(long, env = "KEYTURN_MAIL_RETRY_SECONDS", default_value_t = 30)]
    pub mail_retry_seconds: u64,
    /// Seconds between two sweeps for reminder mails (license expiring, renewal payment
    /// failed, subscription cancelled).
    #[arg(long, env = "KEYTURN_MAIL_REMINDER_SECONDS", default_value_t = 300)]
    pub mail_reminder_seconds: u64,
}

/// Outgoing webhooks.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookArgs {
    #[command(flatten)]
    pub guard: WebhookGuardArgs,
    /// Seconds before the first retry of a failed delivery (fractions allowed); later retries
    /// double it, up to 720 times it, for 21 attempts in all (about three days at 30).
    #[arg(long, env = "KEYTURN_WEBHOOK_RETRY_SECONDS", default_value_t = 30.0, value_parser = retry_seconds)]
    pub webhook_retry_seconds: f64,
    /// Seconds a receiver has to answer a delivery with 2xx.
    #[arg(long, env = "KEYTURN_WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub webhook_timeout_seconds: u64,
    /// Days before its expiry that a license is announced as expiring soon.
    #[arg(long, env = "KEYTURN_WEBHOOK_EXPIRING_SOON_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..=365))]
    pub webhook_expiring_soon_days: u64,
    /// Seconds between two sweeps for licenses that expire and floating leases that lapse
    /// (fractions allowed).
    #[arg(long, env = "KEYTURN_WEBHOOK_SWEEP_SECONDS", default_value_t = 60.0, value_parser = sweep_seconds)]
    pub webhook_sweep_seconds: f64,
    /// Who is mailed when an endpoint is disabled after failing for the whole retry period
    /// [default: the console's owners].
    #[arg(long, env = "KEYTURN_WEBHOOK_ALERT_EMAIL")]
    pub webhook_alert_email: Option<String>,
}

/// Where outgoing webhooks may go (`serve`, and `webhooks` for the endpoints it creates).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookGuardArgs {
    /// Deliver webhooks to loopback, private, link-local and unique-local addresses too (a
    /// receiver inside the vendor's own network). Off, such targets are refused, however their
    /// names resolve.
    #[arg(long, env = "KEYTURN_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,
}

fn seconds_between(text: &str, low: f64, high: f64) -> Result<f64, String> {
    let s: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(low..=high).contains(&s) {
        return Err(format!("must be between {low} and {high}"));
    }
    Ok(s)
}

fn retry_seconds(text: &str) -> Result<f64, String> {
    seconds_between(text, 0.001, 3600.0)
}

fn sweep_seconds(text: &str) -> Result<f64, String> {
    seconds_between(text, 0.05, 3600.0)
}

/// How outgoing webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub allow_private: bool,
    pub first_retry: Duration,
    pub timeout: Duration,
    pub expiring_soon: Duration,
    pub sweep: Duration,
    pub alert_email: Option<String>,
    /// How often the worker looks for due deliveries when nothing woke it.
    pub poll: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            first_retry: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            expiring_soon: Duration::from_secs(7 * 86_400),
            sweep: Duration::from_secs(60),
            alert_email: None,
            poll: Duration::from_secs(1),
        }
    }
}

impl WebhookSettings {
    /// What the app needs of them.
    pub fn policy(&self) -> keyturn_app::WebhookPolicy {
        keyturn_app::WebhookPolicy {
            allow_private: self.allow_private,
            first_retry: self.first_retry,
            expiring_soon: self.expiring_soon,
            alert_email: self.alert_email.clone(),
            ..Default::default()
        }
    }
}

impl WebhookArgs {
    fn resolve(&self) -> anyhow::Result<WebhookSettings> {
        let alert_email = match self.webhook_alert_email.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(e) => Some(
                keyturn_core::Email::parse(e)
                    .map_err(|e| anyhow::anyhow!("KEYTURN_WEBHOOK_ALERT_EMAIL: {}", e.message))?
                    .into_string(),
            ),
        };
        Ok(WebhookSettings {
            allow_private: self.guard.webhook_allow_private,
            first_retry: Duration::from_secs_f64(self.webhook_retry_seconds),
            timeout: Duration::from_secs(self.webhook_timeout_seconds),
            expiring_soon: Duration::from_secs(self.webhook_expiring_soon_days * 86_400),
            sweep: Duration::from_secs_f64(self.webhook_sweep_seconds),
            alert_email,
            poll: WebhookSettings::default().poll,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where mail to buyers goes.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub from: String,
    pub retry_base: Duration,
    pub poll: Duration,
    /// Between two reminder sweeps.
    pub reminders: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 25,
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "keyturn@localhost".into(),
            retry_base: Duration::from_secs(30),
            poll: Duration::from_secs(2),
            reminders: Duration::from_secs(300),
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub options: StoreOptions,
    /// Seals the private signing keys stored in the database.
    pub master_key: Option<MasterKey>,
}

/// Everything `keyturn serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// A second listener serving only `/metrics` and `/version`, without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve https on `listen` with these files.
    pub tls: Option<TlsSettings>,
    /// A plain-HTTP listener redirecting to https (only with `tls`).
    pub http_redirect_listen: Option<SocketAddr>,
    pub store: StoreSettings,
    pub http: HttpSettings,
    pub providers: Providers,
    pub mail: MailSettings,
    pub webhooks: WebhookSettings,
    pub log_format: LogFormat,
    /// How long a signature of an unchanged license state is reused.
    pub signature_reuse: Duration,
    /// How many licenses the hot paths keep in memory.
    pub license_cache_entries: usize,
}

fn http() -> HttpSettings {
    HttpSettings::default()
}

fn reuse_for() -> Duration {
    keyturn_app::REUSE_FOR.to_std().unwrap_or_default()
}

fn seconds(d: Duration) -> u64 {
    d.as_secs()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a master key given as text or as a file (not both).
pub fn master_key(
    text: Option<&SecretString>,
    file: Option<&Path>,
    name: &str,
) -> anyhow::Result<Option<MasterKey>> {
    let read;
    let text = match (text, file) {
        (Some(_), Some(_)) => anyhow::bail!("give {name} or {name}_FILE, not both"),
        (Some(text), None) => text.expose_secret(),
        (None, Some(path)) => {
            read =
                SecretString::from(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the master key file {}", path.display())
                })?);
            read.expose_secret()
        }
        (None, None) => return Ok(None),
    };
    let key = MasterKey::parse(text).map_err(|e| anyhow::anyhow!("{name}: {}", e.message))?;
    Ok(Some(key))
}

impl StoreArgs {
    pub fn resolve(&self) -> anyhow::Result<StoreSettings> {
        Ok(StoreSettings {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            options: StoreOptions {
                max_connections: self.max_connections,
                timeout: Duration::from_millis(self.database_timeout_ms),
                sqlite_synchronous: match self.sqlite_synchronous {
                    SqliteSynchronous::Normal => Synchronous::Normal,
                    SqliteSynchronous::Full => Synchronous::Full,
                },
            },
            master_key: master_key(
                self.master_key.as_ref(),
                self.master_key_file.as_deref(),
                "KEYTURN_MASTER_KEY",
            )?,
        })
    }
}

impl MailArgs {
    fn resolve(&self) -> MailSettings {
        MailSettings {
            smtp_host: self.smtp_host.clone(),
            smtp_port: self.smtp_port.unwrap_or(match self.smtp_tls {
                SmtpTls::None => 25,
                SmtpTls::Starttls => 587,
                SmtpTls::Tls => 465,
            }),
            tls: self.smtp_tls,
            username: self.smtp_username.clone(),
            password: self.smtp_password.clone(),
            from: self.mail_from.clone(),
            retry_base: Duration::from_secs(self.mail_retry_seconds),
            poll: MailSettings::default().poll,
            reminders: Duration::from_secs(self.mail_reminder_seconds.max(1)),
        }
    }
}

/// The certificate served on the main listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub files: TlsFiles,
    /// Between two looks at the files for a change.
    pub poll: Duration,
}

/// The TLS settings, if any; the flags that only make sense together are checked here.
fn tls(serve: &ServeArgs) -> anyhow::Result<Option<TlsSettings>> {
    let tls = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => Some(TlsSettings {
            files: TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
            poll: Duration::from_secs(serve.tls_reload_seconds),
        }),
        (None, None) => None,
        _ => anyhow::bail!("KEYTURN_TLS_CERT and KEYTURN_TLS_KEY go together: set both or neither"),
    };
    if let Some(redirect) = serve.http_redirect_listen {
        anyhow::ensure!(
            tls.is_some(),
            "KEYTURN_HTTP_REDIRECT_LISTEN redirects to https: it needs KEYTURN_TLS_CERT and KEYTURN_TLS_KEY"
        );
        anyhow::ensure!(
            redirect != serve.listen && Some(redirect) != serve.metrics_listen,
            "KEYTURN_HTTP_REDIRECT_LISTEN must differ from KEYTURN_LISTEN and KEYTURN_METRICS_LISTEN"
        );
    }
    Ok(tls)
}

impl Settings {
    pub fn resolve(store: &StoreArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let secs = Duration::from_secs;
        let tls = tls(serve)?;
        Ok(Self {
            listen: serve.listen,
            metrics_listen: serve.metrics_listen,
            http_redirect_listen: serve.http_redirect_listen,
            store: store.resolve()?,
            http: HttpSettings {
                rate_limit_per_minute: serve.rate_limit_per_minute,
                rate_limit_burst: serve.rate_limit_burst,
                trusted_proxy_hops: serve
                    .trusted_proxy_hops
                    .or(serve.trust_forwarded_for.map(usize::from))
                    .unwrap_or(http().trusted_proxy_hops),
                max_body_bytes: serve.max_body_bytes,
                public_url: serve.public.resolve(),
                tls: tls.is_some(),
                connections: ConnectionLimits {
                    header_read_timeout: secs(serve.header_read_timeout_seconds),
                    idle_timeout: secs(serve.idle_timeout_seconds),
                    max_connections_per_ip: serve.max_connections_per_ip,
                    shutdown_grace: secs(serve.shutdown_grace_seconds),
                },
                metrics_token: metrics_token(serve)?,
                build: crate::build_info(),
            },
            providers: serve.providers.resolve(),
            tls,
            mail: serve.mail.resolve(),
            webhooks: serve.webhooks.resolve()?,
            log_format: serve.log_format,
            signature_reuse: secs(serve.signature_reuse_seconds),
            license_cache_entries: serve.license_cache_entries,
        })
    }
}

/// Checks that a public URL is an absolute http(s) address with a host.
pub fn check_public_url(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| anyhow::anyhow!("KEYTURN_PUBLIC_URL {url:?} is not a URL: {e}"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
        "KEYTURN_PUBLIC_URL {url:?} must be an http:// or https:// address with a host"
    );
    Ok(())
}

/// Everything wrong with a configuration as `serve` would read it, one problem per entry,
/// found without touching the database or the network (`keyturn check-config`). Values clap
/// refuses (a number that is not one) never get here: parsing reports them first.
pub fn problems(store: &StoreArgs, serve: &ServeArgs) -> Vec<String> {
    let mut out = Vec::new();
    let check = |out: &mut Vec<String>, result: anyhow::Result<()>| {
        if let Err(e) = result {
            out.push(format!("{e:#}"));
        }
    };
    check(&mut out, store.resolve().map(drop));
    if let Some(url) = &store.database_url {
        check(
            &mut out,
            (url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
            .then_some(())
            .ok_or_else(|| {
                anyhow::anyhow!("KEYTURN_DATABASE_URL must start with sqlite:// or postgres://")
            }),
        );
    }
    check(&mut out, serve.webhooks.resolve().map(drop));
    if let Some(url) = serve.public.resolve() {
        check(&mut out, check_public_url(&url));
    }
    // Read as the mail sender reads it.
    check(
        &mut out,
        serve
            .mail
            .mail_from
            .parse::<lettre::message::Mailbox>()
            .map(drop)
            .map_err(|e| anyhow::anyhow!("KEYTURN_MAIL_FROM {:?}: {e}", serve.mail.mail_from)),
    );
    if serve.mail.smtp_username.is_some() != serve.mail.smtp_password.is_some() {
        out.push(
            "KEYTURN_SMTP_USERNAME and KEYTURN_SMTP_PASSWORD go together: set both or neither"
                .into(),
        );
    }
    if serve.metrics_listen.is_some() && serve.metrics_listen == Some(serve.listen) {
        out.push("KEYTURN_METRICS_LISTEN must differ from KEYTURN_LISTEN".into());
    }
    check(&mut out, metrics_token(serve).map(drop));
    // The files are read as `serve` would read them: a wrong path or a key that does not
    // match the certificate is found before a restart.
    match tls(serve) {
        Ok(Some(tls)) => check(
            &mut out,
            keyturn_http::Tls::load(tls.files)
                .map(drop)
                .map_err(anyhow::Error::from),
        ),
        Ok(None) => {}
        Err(e) => out.push(format!("{e:#}")),
    }
    out
}

/// The metrics token, if one is set: a short one would be guessed.
fn metrics_token(serve: &ServeArgs) -> anyhow::Result<Option<MetricsToken>> {
    match serve
        .metrics_token
        .as_ref()
        .map(|t| t.expose_secret().trim())
    {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() < 16 => {
            anyhow::bail!("KEYTURN_METRICS_TOKEN must be at least 16 characters")
        }
        Some(t) => Ok(Some(MetricsToken::new(t))),
    }
}
