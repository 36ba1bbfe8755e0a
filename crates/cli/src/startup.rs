use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use keyturn_app::App;
use keyturn_core::TokenSecret;
use keyturn_store::Store;
use tokio::net::TcpListener;

use crate::config::{Settings, StoreSettings};
use crate::mail::MailWorker;
use crate::webhooks::WebhookWorker;

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<Store> {
    let store = match &settings.database_url {
        Some(url) => Store::connect(url, &settings.options).await,
        None => Store::open_sqlite(&settings.data_dir, &settings.options).await,
    }
    .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// Opens the database of an existing installation, for commands that work on one: a data
/// directory without a database is a typo or a missing `--data-dir`, not a reason to create an
/// empty installation there.
pub async fn open_existing_store(settings: &StoreSettings) -> anyhow::Result<Store> {
    if settings.database_url.is_none() {
        anyhow::ensure!(
            Store::sqlite_file(&settings.data_dir).exists(),
            "no Keyturn database in {}: give the installation's --data-dir (or \
             KEYTURN_DATA_DIR), or create one there with `keyturn serve` or `keyturn migrate`",
            settings.data_dir.display()
        );
    }
    open_store(settings).await
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    app: App,
    mail: MailWorker,
    webhooks: WebhookWorker,
    check_ins: (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    limits: keyturn_http::ConnectionLimits,
    /// The separate metrics listener, when one is configured.
    metrics: Option<(TcpListener, axum::Router)>,
    /// The certificate of the main listener, and how often its files are looked at.
    tls: Option<(keyturn_http::Tls, Duration)>,
    /// The plain-HTTP listener redirecting to https, when one is configured.
    redirect: Option<(TcpListener, axum::Router)>,
}

/// How often known machines' check-ins are written.
const CHECK_IN_INTERVAL: Duration = Duration::from_secs(5);
/// How long shutdown waits for the last check-ins to be written, and for the mail worker's
/// current pass, each.
const FINAL_WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// Writes check-ins every [`CHECK_IN_INTERVAL`] until `stop` says so; a write in progress is
/// finished first (a batch taken for writing is only put back when the write fails).
async fn write_check_ins(app: App, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_IN_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = app.flush_check_ins().await {
            tracing::warn!(error = %e, "cannot write check-ins; will retry");
        }
    }
}

impl Application {
    /// Opens the store, binds the listener (port 0 picks a free port), and creates the first
    /// admin token on a new installation (returned so the caller can show it once).
    pub async fn build(settings: &Settings) -> anyhow::Result<(Self, Option<TokenSecret>)> {
        let store = open_store(&settings.store).await?;
        store.follow_changes();
        let app = App::new(store)
            .with_master_key(settings.store.master_key.clone())
            .with_signature_reuse(settings.signature_reuse)
            .with_license_cache(settings.license_cache_entries)
            .with_portal_url(settings.http.public_url.as_deref())
            .with_webhook_policy(settings.webhooks.policy());
        let keys = app
            .check_signing_keys()
            .await
            .context("cannot use the signing keys")?;
        if settings.store.master_key.is_some() && keys.plain > 0 {
            tracing::warn!(
                plain = keys.plain,
                "signing keys are stored in plain text; seal them with `keyturn keys seal`"
            );
        }
        // Before binding anything: a certificate that cannot be served stops the start.
        let tls = match &settings.tls {
            Some(tls) => Some((
                keyturn_http::Tls::load(tls.files.clone())
                    .context("cannot serve https with the configured certificate")?,
                tls.poll,
            )),
            None => None,
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let redirect = match settings.http_redirect_listen {
            Some(address) => Some((
                TcpListener::bind(address).await.with_context(|| {
                    format!("cannot listen for the https redirect on {address}")
                })?,
                keyturn_http::redirect_router(
                    settings.http.public_url.as_deref(),
                    listener.local_addr()?.port(),
                ),
            )),
            None => None,
        };
        let metrics = match settings.metrics_listen {
            Some(address) => Some((
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {address}"))?,
                keyturn_http::metrics_router(app.clone(), settings.http.build.clone()),
            )),
            None => None,
        };
        let mail = MailWorker::start(app.clone(), settings.mail.clone())?;
        let webhooks = WebhookWorker::start(app.clone(), settings.webhooks.clone())?;
        // Last of all: a start that fails (a port in use) must not spend the one showing of
        // the token, or the next start would find a token nobody has seen and show none.
        let admin = app.bootstrap_admin_token().await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let check_ins = (stop, tokio::spawn(write_check_ins(app.clone(), stopped)));
        let router = keyturn_http::router(
            app.clone(),
            settings.http.clone(),
            settings.providers.clone(),
        );
        Ok((
            Self {
                listener,
                router,
                app,
                mail,
                webhooks,
                check_ins,
                limits: settings.http.connections.clone(),
                metrics,
                tls,
                redirect,
            },
            admin,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the separate metrics listener listens, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Where the https redirect listener listens, if there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Whether the main listener serves https.
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` resolves, then shuts down within bounded times: requests in
    /// flight get the grace period, the last check-ins and the mail worker's current pass get
    /// [`FINAL_WRITE_DEADLINE`] each; what could not be written is logged.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // The metrics and redirect listeners stop with the main one.
        let (stop_side, side_stopped) = tokio::sync::watch::channel(false);
        let side = |(listener, router): (TcpListener, axum::Router)| {
            let mut stopped = side_stopped.clone();
            tokio::spawn(keyturn_http::serve(
                listener,
                router,
                self.limits.clone(),
                async move {
                    let _ = stopped.changed().await;
                },
            ))
        };
        let side_listeners: Vec<_> = self
            .metrics
            .into_iter()
            .chain(self.redirect)
            .map(side)
            .collect();
        match self.tls {
            Some((tls, poll)) => {
                let reloads = tokio::spawn(tls.clone().reload_on_change(poll));
                keyturn_http::serve_tls(
                    self.listener,
                    self.router,
                    self.limits,
                    tls.acceptor(),
                    shutdown,
                )
                .await;
                reloads.abort();
            }
            None => {
                keyturn_http::serve(self.listener, self.router, self.limits, shutdown).await;
            }
        }
        let _ = stop_side.send(true);
        for task in side_listeners {
            let _ = task.await;
        }
        if tokio::time::timeout(FINAL_WRITE_DEADLINE, self.mail.stop())
            .await
            .is_err()
        {
            tracing::warn!(
                "the mail worker did not stop in time; mail not yet sent stays in the outbox"
            );
        }
        // Waits for the requests in flight (each within the webhook timeout); deliveries not
        // made stay in the outbox for the next start or another node.
        if tokio::time::timeout(FINAL_WRITE_DEADLINE * 3, self.webhooks.stop())
            .await
            .is_err()
        {
            tracing::warn!("the webhook worker did not stop in time; its deliveries are retried after their lease");
        }
        let (stop, writer) = self.check_ins;
        let _ = stop.send(true);
        let flushed = tokio::time::timeout(FINAL_WRITE_DEADLINE, async {
            let _ = writer.await;
            self.app.flush_check_ins().await
        })
        .await;
        let failure = match flushed {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the database did not answer in time".to_owned()),
        };
        if let Some(reason) = failure {
            tracing::warn!(
                check_ins = self.app.pending_check_ins(),
                %reason,
                "machine check-ins not written at exit (their last-seen times are lost; nothing else is)"
            );
        }
        // Closing tells PostgreSQL goodbye; an unreachable one is not waited for.
        self.app.store().close(Duration::from_secs(1)).await;
        Ok(())
    }
}
