use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use keyturn_app::App;
use keyturn_core::TokenSecret;
use keyturn_store::Store;
use tokio::net::TcpListener;

use crate::config::{Settings, StoreSettings};
use crate::mail::MailWorker;

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<Store> {
    let store = match &settings.database_url {
        Some(url) => Store::connect(url, settings.max_connections).await,
        None => Store::open_sqlite(&settings.data_dir).await,
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
    check_ins: tokio::task::JoinHandle<()>,
}

/// How often known machines' check-ins are written.
const CHECK_IN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

async fn write_check_ins(app: App) {
    loop {
        tokio::time::sleep(CHECK_IN_INTERVAL).await;
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
            .with_license_cache(settings.license_cache_entries);
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
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let mail = MailWorker::start(app.clone(), settings.mail.clone())?;
        // Last of all: a start that fails (a port in use) must not spend the one showing of
        // the token, or the next start would find a token nobody has seen and show none.
        let admin = app.bootstrap_admin_token().await?;
        let check_ins = tokio::spawn(write_check_ins(app.clone()));
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
                check_ins,
            },
            admin,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.mail.stop().await;
        self.check_ins.abort();
        if let Err(e) = self.app.flush_check_ins().await {
            tracing::warn!(error = %e, "cannot write the last check-ins");
        }
        self.app.store().close().await;
        Ok(())
    }
}
