//! Configuration from flags, then `KEYTURN_*` environment variables, then an optional TOML file,
//! then defaults: the first that sets a value wins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use keyturn_core::MasterKey;
use keyturn_http::{ConnectionLimits, HttpSettings};
use keyturn_providers::paypal::PaypalAdapter;
use keyturn_providers::stripe::{StripeAdapter, StripeApi};
use keyturn_providers::{Providers, StoreSecrets};
use keyturn_store::{StoreOptions, Synchronous};
use serde::Deserialize;

/// Options every command accepts (they say where the data lives).
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "KEYTURN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory of the embedded SQLite database [default: ./keyturn-data].
    #[arg(long, env = "KEYTURN_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of SQLite in the data directory (postgres://… or sqlite://…).
    #[arg(long, env = "KEYTURN_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Connections per pool [default: 16].
    #[arg(long, env = "KEYTURN_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<u32>,
    /// Master key that seals the private signing keys in the database: 32 random bytes as
    /// base64 or hex (`keyturn keys new-master-key` makes one). Prefer the file.
    #[arg(
        long,
        env = "KEYTURN_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// A file holding the master key.
    #[arg(long, env = "KEYTURN_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Milliseconds to wait for a database connection, for each statement, and for another
    /// process's SQLite write lock, before the database counts as unavailable (503) [default: 2000].
    #[arg(long, env = "KEYTURN_DATABASE_TIMEOUT_MS", global = true)]
    pub database_timeout_ms: Option<u64>,
    /// SQLite `synchronous`: `normal` (a process crash loses nothing, a power loss may lose the
    /// last transactions) or `full` (a power loss loses nothing either; one disk sync per
    /// write) [default: normal].
    #[arg(long, env = "KEYTURN_SQLITE_SYNCHRONOUS", global = true, value_enum)]
    pub sqlite_synchronous: Option<SqliteSynchronous>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Normal,
    Full,
}

/// Reads a master key given as text or as a file (not both).
pub fn master_key(
    text: Option<&str>,
    file: Option<&Path>,
    name: &str,
) -> anyhow::Result<Option<MasterKey>> {
    let text = match (text, file) {
        (Some(_), Some(_)) => anyhow::bail!("give {name} or {name}_FILE, not both"),
        (Some(text), None) => text.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the master key file {}", path.display()))?,
        (None, None) => return Ok(None),
    };
    let key = MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {}", e.message))?;
    Ok(Some(key))
}

/// Stripe settings; every command that may apply payment events accepts them.
#[derive(Debug, Clone, Default, Args)]
pub struct StripeArgs {
    /// Webhook signing secret(s), comma-separated while rotating (whsec_…).
    #[arg(
        long,
        env = "KEYTURN_STRIPE_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<String>,
    /// Accepted age of a webhook's signature timestamp in seconds [default: 300].
    #[arg(long, env = "KEYTURN_STRIPE_WEBHOOK_TOLERANCE", global = true)]
    pub stripe_webhook_tolerance: Option<u64>,
    /// Secret API key (sk_…), for fetching missed events and checkout line items.
    #[arg(
        long,
        env = "KEYTURN_STRIPE_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub stripe_api_key: Option<String>,
    /// Stripe API base URL [default: https://api.stripe.com].
    #[arg(long, env = "KEYTURN_STRIPE_API_BASE", global = true)]
    pub stripe_api_base: Option<String>,
    /// Paddle notification secret key(s), comma-separated.
    #[arg(
        long,
        env = "KEYTURN_PADDLE_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub paddle_webhook_secret: Option<String>,
    /// Lemon Squeezy webhook signing secret(s), comma-separated.
    #[arg(
        long,
        env = "KEYTURN_LEMONSQUEEZY_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub lemonsqueezy_webhook_secret: Option<String>,
    /// FastSpring webhook HMAC secret(s), comma-separated.
    #[arg(
        long,
        env = "KEYTURN_FASTSPRING_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub fastspring_webhook_secret: Option<String>,
    /// The secret part of the Gumroad ping URL (/webhooks/gumroad/<secret>).
    #[arg(
        long,
        env = "KEYTURN_GUMROAD_PING_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub gumroad_ping_secret: Option<String>,
    /// PayPal REST app client id (payment forms).
    #[arg(long, env = "KEYTURN_PAYPAL_CLIENT_ID", global = true)]
    pub paypal_client_id: Option<String>,
    #[arg(
        long,
        env = "KEYTURN_PAYPAL_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub paypal_client_secret: Option<String>,
    /// The id of the PayPal webhook that points at /webhooks/paypal.
    #[arg(long, env = "KEYTURN_PAYPAL_WEBHOOK_ID", global = true)]
    pub paypal_webhook_id: Option<String>,
    /// PayPal API base URL [default: https://api-m.paypal.com].
    #[arg(long, env = "KEYTURN_PAYPAL_API_BASE", global = true)]
    pub paypal_api_base: Option<String>,
    /// Mail new keys to the buyers of store sales (Paddle, Lemon Squeezy, FastSpring, Gumroad).
    #[arg(long, env = "KEYTURN_STORE_EMAIL_BUYERS", global = true)]
    pub store_email_buyers: Option<bool>,
}

/// Options of `keyturn serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KEYTURN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Activation/validation requests per minute per client IP; 0 = unlimited [default: 600].
    #[arg(long, env = "KEYTURN_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// Requests a client may make at once before the per-minute rate applies [default: 60].
    #[arg(long, env = "KEYTURN_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// How many proxies in front of the server append to X-Forwarded-For; the client IP is
    /// the address that many entries from the right [default: 0, the header is ignored].
    #[arg(long, env = "KEYTURN_TRUSTED_PROXY_HOPS")]
    pub trusted_proxy_hops: Option<usize>,
    /// Older form of --trusted-proxy-hops: true means one proxy.
    #[arg(long, env = "KEYTURN_TRUST_FORWARDED_FOR", hide = true)]
    pub trust_forwarded_for: Option<bool>,
    /// Largest accepted request body in bytes [default: 65536].
    #[arg(long, env = "KEYTURN_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// The address buyers reach this server at, for payment providers' return links; payment
    /// forms need it.
    #[arg(long, env = "KEYTURN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP server for mail to buyers; without it, mail waits in the outbox.
    #[arg(long, env = "KEYTURN_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587, or 465 with --smtp-tls tls, 25 with none].
    #[arg(long, env = "KEYTURN_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// none, starttls or tls [default: starttls].
    #[arg(long, env = "KEYTURN_SMTP_TLS", value_enum)]
    pub smtp_tls: Option<SmtpTls>,
    #[arg(long, env = "KEYTURN_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "KEYTURN_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Sender of mail to buyers [default: keyturn@localhost].
    #[arg(long, env = "KEYTURN_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// First retry delay after a failed send, doubling up to an hour [default: 30].
    #[arg(long, env = "KEYTURN_MAIL_RETRY_SECONDS")]
    pub mail_retry_seconds: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "KEYTURN_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Seconds a Cryptolens-API signature of an unchanged license is handed out again (0: sign
    /// every reply afresh).
    #[arg(long, env = "KEYTURN_SIGNATURE_REUSE_SECONDS")]
    pub signature_reuse_seconds: Option<u64>,
    /// Licenses kept in memory for validation and activation (0: read the database each time).
    #[arg(long, env = "KEYTURN_LICENSE_CACHE_ENTRIES")]
    pub license_cache_entries: Option<usize>,
    /// Seconds a client has to send a request's headers; also how long an HTTP/1 connection
    /// may wait idle for its next request [default: 10].
    #[arg(long, env = "KEYTURN_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds without a byte moving either way after which a connection is closed
    /// [default: 60].
    #[arg(long, env = "KEYTURN_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Open connections one IP address may hold; 0 = no cap [default: 256]. Behind a reverse
    /// proxy every connection comes from the proxy: raise it or set 0 there.
    #[arg(long, env = "KEYTURN_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Seconds a shutdown (SIGTERM) lets requests in flight finish before closing their
    /// connections [default: 10].
    #[arg(long, env = "KEYTURN_SHUTDOWN_GRACE_SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

/// Where mail to buyers goes.
#[derive(Clone)]
pub struct MailSettings {
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub retry_base: Duration,
    pub poll: Duration,
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
        }
    }
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The TOML file: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    max_connections: Option<u32>,
    database_timeout_ms: Option<u64>,
    sqlite_synchronous: Option<SqliteSynchronous>,
    header_read_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_connections_per_ip: Option<usize>,
    shutdown_grace_seconds: Option<u64>,
    master_key_file: Option<PathBuf>,
    rate_limit_per_minute: Option<u32>,
    rate_limit_burst: Option<u32>,
    trusted_proxy_hops: Option<usize>,
    trust_forwarded_for: Option<bool>,
    max_body_bytes: Option<usize>,
    log_format: Option<LogFormat>,
    signature_reuse_seconds: Option<u64>,
    license_cache_entries: Option<usize>,
    stripe_webhook_secret: Option<String>,
    stripe_webhook_tolerance: Option<u64>,
    stripe_api_key: Option<String>,
    stripe_api_base: Option<String>,
    paddle_webhook_secret: Option<String>,
    lemonsqueezy_webhook_secret: Option<String>,
    fastspring_webhook_secret: Option<String>,
    gumroad_ping_secret: Option<String>,
    store_email_buyers: Option<bool>,
    paypal_client_id: Option<String>,
    paypal_client_secret: Option<String>,
    paypal_webhook_id: Option<String>,
    paypal_api_base: Option<String>,
    public_url: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<SmtpTls>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    mail_from: Option<String>,
    mail_retry_seconds: Option<u64>,
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
    pub store: StoreSettings,
    pub http: HttpSettings,
    pub providers: Providers,
    pub mail: MailSettings,
    pub log_format: LogFormat,
    /// How long a signature of an unchanged license state is reused.
    pub signature_reuse: Duration,
    /// How many licenses the hot paths keep in memory.
    pub license_cache_entries: usize,
}

fn secrets(flag: &Option<String>, file: &Option<String>) -> Vec<String> {
    flag.clone()
        .or(file.clone())
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl StripeArgs {
    fn paypal(&self, file: &FileConfig) -> Option<PaypalAdapter> {
        let id = self
            .paypal_client_id
            .clone()
            .or(file.paypal_client_id.clone())?;
        let secret = self
            .paypal_client_secret
            .clone()
            .or(file.paypal_client_secret.clone())?;
        let base = self
            .paypal_api_base
            .clone()
            .or(file.paypal_api_base.clone())
            .unwrap_or_else(|| "https://api-m.paypal.com".into());
        let webhook = self
            .paypal_webhook_id
            .clone()
            .or(file.paypal_webhook_id.clone());
        Some(PaypalAdapter::new(&base, &id, &secret, webhook))
    }

    fn stores(&self, file: &FileConfig) -> StoreSecrets {
        StoreSecrets {
            paddle: secrets(&self.paddle_webhook_secret, &file.paddle_webhook_secret),
            lemonsqueezy: secrets(
                &self.lemonsqueezy_webhook_secret,
                &file.lemonsqueezy_webhook_secret,
            ),
            fastspring: secrets(
                &self.fastspring_webhook_secret,
                &file.fastspring_webhook_secret,
            ),
            gumroad: self
                .gumroad_ping_secret
                .clone()
                .or(file.gumroad_ping_secret.clone())
                .filter(|s| s.len() >= 16),
            tolerance: Duration::from_secs(
                self.stripe_webhook_tolerance
                    .or(file.stripe_webhook_tolerance)
                    .unwrap_or(300),
            ),
            email_buyers: self
                .store_email_buyers
                .or(file.store_email_buyers)
                .unwrap_or(false),
        }
    }

    fn merge(&self, file: &FileConfig) -> Option<StripeAdapter> {
        let secrets: Vec<String> = self
            .stripe_webhook_secret
            .clone()
            .or(file.stripe_webhook_secret.clone())
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let key = self.stripe_api_key.clone().or(file.stripe_api_key.clone());
        if secrets.is_empty() && key.is_none() {
            return None;
        }
        let base = self
            .stripe_api_base
            .clone()
            .or(file.stripe_api_base.clone())
            .unwrap_or_else(|| "https://api.stripe.com".into());
        let tolerance = self
            .stripe_webhook_tolerance
            .or(file.stripe_webhook_tolerance)
            .unwrap_or(300);
        Some(StripeAdapter::new(
            secrets,
            Duration::from_secs(tolerance),
            key.map(|k| StripeApi::new(&base, &k)),
        ))
    }

    /// The configured providers, for commands other than `serve`.
    pub fn resolve(&self, store: &StoreArgs) -> anyhow::Result<Providers> {
        let file = read_file(store.config.as_deref())?;
        Ok(Providers {
            stripe: self.merge(&file),
            paypal: self.paypal(&file),
            stores: self.stores(&file),
        })
    }
}

/// The address `serve` tells payment providers, for commands other than `serve` (creating a
/// payment form checks that there is one).
pub fn public_url(store: &StoreArgs) -> anyhow::Result<Option<String>> {
    let file = read_file(store.config.as_deref())?;
    Ok(std::env::var("KEYTURN_PUBLIC_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or(file.public_url))
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("bad configuration file {}", path.display()))
}

impl StoreArgs {
    pub fn resolve(&self) -> anyhow::Result<StoreSettings> {
        let file = read_file(self.config.as_deref())?;
        Self::merge(self, &file)
    }

    fn merge(&self, file: &FileConfig) -> anyhow::Result<StoreSettings> {
        Ok(StoreSettings {
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from("keyturn-data")),
            database_url: self.database_url.clone().or(file.database_url.clone()),
            options: StoreOptions {
                max_connections: self.max_connections.or(file.max_connections).unwrap_or(16),
                timeout: self
                    .database_timeout_ms
                    .or(file.database_timeout_ms)
                    .map(Duration::from_millis)
                    .unwrap_or(keyturn_store::DEFAULT_TIMEOUT),
                sqlite_synchronous: match self
                    .sqlite_synchronous
                    .or(file.sqlite_synchronous)
                    .unwrap_or_default()
                {
                    SqliteSynchronous::Normal => Synchronous::Normal,
                    SqliteSynchronous::Full => Synchronous::Full,
                },
            },
            master_key: master_key(
                self.master_key.as_deref(),
                self.master_key_file
                    .as_deref()
                    .or(file.master_key_file.as_deref()),
                "KEYTURN_MASTER_KEY",
            )?,
        })
    }
}

impl Settings {
    pub fn resolve(
        store: &StoreArgs,
        stripe: &StripeArgs,
        serve: &ServeArgs,
    ) -> anyhow::Result<Self> {
        let file = read_file(store.config.as_deref())?;
        let defaults = HttpSettings::default();
        Ok(Self {
            listen: serve
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            store: store.merge(&file)?,
            http: HttpSettings {
                rate_limit_per_minute: serve
                    .rate_limit_per_minute
                    .or(file.rate_limit_per_minute)
                    .unwrap_or(defaults.rate_limit_per_minute),
                rate_limit_burst: serve
                    .rate_limit_burst
                    .or(file.rate_limit_burst)
                    .unwrap_or(defaults.rate_limit_burst),
                trusted_proxy_hops: serve
                    .trusted_proxy_hops
                    .or(file.trusted_proxy_hops)
                    .or(serve
                        .trust_forwarded_for
                        .or(file.trust_forwarded_for)
                        .map(usize::from))
                    .unwrap_or(defaults.trusted_proxy_hops),
                max_body_bytes: serve
                    .max_body_bytes
                    .or(file.max_body_bytes)
                    .unwrap_or(defaults.max_body_bytes),
                public_url: serve.public_url.clone().or(file.public_url.clone()),
                connections: {
                    let d = defaults.connections.clone();
                    let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
                        flag.or(file).map(Duration::from_secs).unwrap_or(default)
                    };
                    ConnectionLimits {
                        header_read_timeout: secs(
                            serve.header_read_timeout_seconds,
                            file.header_read_timeout_seconds,
                            d.header_read_timeout,
                        ),
                        idle_timeout: secs(
                            serve.idle_timeout_seconds,
                            file.idle_timeout_seconds,
                            d.idle_timeout,
                        ),
                        max_connections_per_ip: serve
                            .max_connections_per_ip
                            .or(file.max_connections_per_ip)
                            .unwrap_or(d.max_connections_per_ip),
                        shutdown_grace: secs(
                            serve.shutdown_grace_seconds,
                            file.shutdown_grace_seconds,
                            d.shutdown_grace,
                        ),
                    }
                },
            },
            providers: Providers {
                stripe: stripe.merge(&file),
                paypal: stripe.paypal(&file),
                stores: stripe.stores(&file),
            },
            mail: {
                let tls = serve.smtp_tls.or(file.smtp_tls).unwrap_or_default();
                MailSettings {
                    smtp_host: serve.smtp_host.clone().or(file.smtp_host.clone()),
                    smtp_port: serve.smtp_port.or(file.smtp_port).unwrap_or(match tls {
                        SmtpTls::None => 25,
                        SmtpTls::Starttls => 587,
                        SmtpTls::Tls => 465,
                    }),
                    tls,
                    username: serve.smtp_username.clone().or(file.smtp_username.clone()),
                    password: serve.smtp_password.clone().or(file.smtp_password.clone()),
                    from: serve
                        .mail_from
                        .clone()
                        .or(file.mail_from.clone())
                        .unwrap_or_else(|| "keyturn@localhost".into()),
                    retry_base: Duration::from_secs(
                        serve
                            .mail_retry_seconds
                            .or(file.mail_retry_seconds)
                            .unwrap_or(30),
                    ),
                    poll: Duration::from_secs(2),
                }
            },
            log_format: serve.log_format.or(file.log_format).unwrap_or_default(),
            license_cache_entries: serve
                .license_cache_entries
                .or(file.license_cache_entries)
                .unwrap_or(keyturn_app::DEFAULT_LICENSE_CACHE),
            signature_reuse: match serve
                .signature_reuse_seconds
                .or(file.signature_reuse_seconds)
            {
                Some(seconds) => Duration::from_secs(seconds),
                None => keyturn_app::REUSE_FOR
                    .to_std()
                    .expect("the default reuse time is positive"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("keyturn.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "keyturn-config-{}-{}",
                    std::process::id(),
                    rand_suffix()
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        fn rand_suffix() -> u128 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        }
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let (_dir, path) = file(
            "listen = \"127.0.0.1:9000\"\nrate_limit_per_minute = 5\ndata_dir = \"/srv/kt\"\n",
        );
        let store = StoreArgs {
            config: Some(path),
            ..Default::default()
        };
        let serve = ServeArgs {
            rate_limit_per_minute: Some(7),
            ..Default::default()
        };
        let s = Settings::resolve(&store, &StripeArgs::default(), &serve).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.http.rate_limit_per_minute, 7);
        assert_eq!(s.store.data_dir, PathBuf::from("/srv/kt"));
        assert_eq!(s.http.rate_limit_burst, 60);
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let s = Settings::resolve(
            &StoreArgs::default(),
            &StripeArgs::default(),
            &ServeArgs::default(),
        )
        .unwrap();
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(s.store.data_dir, PathBuf::from("keyturn-data"));
        assert!(s.store.database_url.is_none());
        assert!(
            s.providers.stripe.is_none(),
            "Stripe is off until configured"
        );
        assert_eq!(s.store.options.timeout, Duration::from_secs(2));
        assert_eq!(s.store.options.sqlite_synchronous, Synchronous::Normal);
        assert_eq!(s.http.connections.shutdown_grace, Duration::from_secs(10));
        assert_eq!(s.http.connections.max_connections_per_ip, 256);
    }

    #[test]
    fn fault_limits_come_from_flags_and_the_file() {
        let (_dir, path) = file(
            "database_timeout_ms = 500\nsqlite_synchronous = \"full\"\nshutdown_grace_seconds = 3\n\
             header_read_timeout_seconds = 4\nidle_timeout_seconds = 5\nmax_connections_per_ip = 0\n",
        );
        let store = StoreArgs {
            config: Some(path),
            ..Default::default()
        };
        let serve = ServeArgs {
            shutdown_grace_seconds: Some(1),
            ..Default::default()
        };
        let s = Settings::resolve(&store, &StripeArgs::default(), &serve).unwrap();
        assert_eq!(s.store.options.timeout, Duration::from_millis(500));
        assert_eq!(s.store.options.sqlite_synchronous, Synchronous::Full);
        let c = &s.http.connections;
        assert_eq!(c.shutdown_grace, Duration::from_secs(1));
        assert_eq!(c.header_read_timeout, Duration::from_secs(4));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.max_connections_per_ip, 0);
    }

    #[test]
    fn several_stripe_secrets_are_read_from_one_setting() {
        let (_dir, path) = file("stripe_webhook_secret = \"whsec_a, whsec_b\"\n");
        let store = StoreArgs {
            config: Some(path),
            ..Default::default()
        };
        let s = Settings::resolve(&store, &StripeArgs::default(), &ServeArgs::default()).unwrap();
        let stripe = format!("{:?}", s.providers.stripe.unwrap());
        assert!(stripe.contains("secrets: 2"), "{stripe}");
        assert!(!stripe.contains("whsec_a"), "secrets are never printed");
    }

    #[test]
    fn the_master_key_comes_from_a_flag_or_a_file_and_must_be_a_key() {
        let key = MasterKey::generate();
        let (_dir, path) = file(&format!("{}\n", key.to_text()));
        let (_cdir, config) = file(&format!("master_key_file = {:?}\n", path));
        let from_file = StoreArgs {
            config: Some(config),
            ..Default::default()
        };
        assert_eq!(from_file.resolve().unwrap().master_key, Some(key.clone()));
        let both = StoreArgs {
            master_key: Some(key.to_text()),
            master_key_file: Some(path),
            ..Default::default()
        };
        assert!(format!("{:#}", both.resolve().unwrap_err()).contains("not both"));
        let weak = StoreArgs {
            master_key: Some("hunter2".into()),
            ..Default::default()
        };
        let err = format!("{:#}", weak.resolve().unwrap_err());
        assert!(err.contains("32 random bytes"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the rejected key is not echoed: {err}"
        );
        let settings = StoreArgs {
            master_key: Some(key.to_text()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert!(!format!("{settings:?}").contains(&key.to_text()));
    }

    #[test]
    fn proxy_hops_and_the_older_boolean() {
        let resolve = |text: &str, serve: ServeArgs| {
            let (_dir, path) = file(text);
            let store = StoreArgs {
                config: Some(path),
                ..Default::default()
            };
            Settings::resolve(&store, &StripeArgs::default(), &serve)
                .unwrap()
                .http
                .trusted_proxy_hops
        };
        assert_eq!(resolve("", ServeArgs::default()), 0);
        assert_eq!(
            resolve("trust_forwarded_for = true\n", ServeArgs::default()),
            1
        );
        assert_eq!(
            resolve("trust_forwarded_for = false\n", ServeArgs::default()),
            0
        );
        assert_eq!(
            resolve(
                "trust_forwarded_for = true\ntrusted_proxy_hops = 2\n",
                ServeArgs::default()
            ),
            2
        );
        let flag = ServeArgs {
            trusted_proxy_hops: Some(3),
            ..Default::default()
        };
        assert_eq!(resolve("trusted_proxy_hops = 2\n", flag), 3);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let (_dir, path) = file("lisen = \"127.0.0.1:9000\"\n");
        let store = StoreArgs {
            config: Some(path),
            ..Default::default()
        };
        let err =
            Settings::resolve(&store, &StripeArgs::default(), &ServeArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }
}
