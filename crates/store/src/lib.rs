//! Keyturn's persistence. One set of queries serves SQLite and PostgreSQL: both schemas store
//! times as Unix milliseconds and flags as 0/1 integers, and the few places where the dialects
//! differ (row locks) ask [`Dialect`].
//!
//! Reads go through [`Store::read`]; every change goes through [`Store::write`], a transaction
//! committed with [`Session::commit`].

mod activations;
mod branding;
mod changes;
mod console;
mod console_account;
mod console_lists;
mod customers;
mod dashboard;
mod data_objects;
mod error;
mod events;
mod forms;
mod health;
mod imported;
mod key_search;
mod license_urls;
mod licenses;
mod messages;
mod outbox;
mod payments;
mod plans;
mod portal;
mod portal_billing;
mod portal_self;
mod products;
mod provider_status;
mod session;
mod tokens;
mod transfer;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

pub use activations::Seat;
pub use branding::ExpiryReminder;
pub use changes::{Change, Changes};
pub use console::{ConsoleSessionRow, LicenseSearch};
pub use console_account::{ChallengeRow, ConsoleSessionInfo, TotpRow};
pub use console_lists::{
    CustomerFilter, EventFilter, EventPosition, MailFilter, PaymentFilter, SubscriptionFilter,
};
pub use dashboard::{Attention, MachineCounts, UsageCount, UsageKind};
pub use data_objects::DataOwnerRow;
pub use error::{database_errors, StoreError};
#[cfg(feature = "fault-injection")]
pub use health::Faults;
pub use health::WriteFailure;
pub use imported::ImportOrigin;
pub use key_search::KeySearch;
pub use licenses::{LicenseFilter, NewLicense};
pub use messages::MessageFilter;
pub use outbox::QueuedMail;
pub use payments::{IncomingEvent, NewPayment};
pub use plans::NewPlan;
pub use portal::PortalSessionRow;
pub use portal_self::EmailChange;
pub use provider_status::{ProviderActivity, RefusalCount};
pub use session::Session;
pub use transfer::{CopyCheck, Counts, TABLES};
pub use webhooks::{
    AttemptRecord, ClaimedDelivery, EndpointActivity, EndpointFields, EndpointTarget, NextStep,
    StoredSecrets, SweepMark,
};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// SQLite's `synchronous` setting: when a commit is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// The WAL is synced at checkpoints: a process crash loses nothing committed, a power loss
    /// may lose the last transactions (the database itself stays intact).
    #[default]
    Normal,
    /// The WAL is synced at every commit: a power loss loses nothing committed either, at the
    /// cost of one sync per write.
    Full,
}

/// How a store talks to its database.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections per pool (PostgreSQL; SQLite's readers).
    pub max_connections: u32,
    /// How long a request waits for a connection, for each statement and for the commit, and
    /// on SQLite for another process's write lock, before the database counts as unavailable.
    pub timeout: Duration,
    pub sqlite_synchronous: Synchronous,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            timeout: DEFAULT_TIMEOUT,
            sqlite_synchronous: Synchronous::Normal,
        }
    }
}

/// The default [`StoreOptions::timeout`]: a request that needs an unreachable database answers
/// within about this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// What every session of a store shares.
pub(crate) struct Shared {
    pub timeout: Duration,
    pub changes: Changes,
    pub writes: health::WriteHealth,
    /// The last database call failed as unavailable (and none succeeded since).
    down: std::sync::atomic::AtomicBool,
    #[cfg(feature = "fault-injection")]
    pub faults: Faults,
}

impl Shared {
    pub fn down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_down(&self, down: bool) {
        // Read first: calls succeed all the time, and a store to a shared line is not free.
        if self.down() != down {
            self.down.store(down, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How long a request may wait for its turn at a pool while the database answers: a burst of
/// requests queues rather than failing.
const QUEUE_WAIT: Duration = Duration::from_secs(15);

/// A pool and the turns at it. Waiting for a turn is not waiting for the database: while the
/// database answers, a request may queue behind others for up to [`QUEUE_WAIT`]; once calls
/// to it fail as unavailable, only for the store's timeout, so a queue drains at once instead
/// of each request in it waiting out a dead database in turn. Holding a turn, a request's
/// wait for a connection is only the database's (connecting, or checking an idle
/// connection), which the pool bounds by the store's timeout.
#[derive(Clone)]
struct Gate {
    pool: AnyPool,
    turns: Arc<tokio::sync::Semaphore>,
    turns_total: usize,
}

impl Gate {
    fn new(pool: AnyPool, size: u32) -> Self {
        Self {
            pool,
            turns: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            turns_total: size as usize,
        }
    }

    async fn enter(
        &self,
        shared: &Shared,
    ) -> Result<(
        sqlx::pool::PoolConnection<sqlx::Any>,
        tokio::sync::OwnedSemaphorePermit,
    )> {
        let started = tokio::time::Instant::now();
        let turn = self.turns.clone().acquire_owned();
        tokio::pin!(turn);
        let turn = loop {
            let limit = if shared.down() {
                shared.timeout
            } else {
                QUEUE_WAIT
            };
            let deadline = started + limit;
            // Look again now and then: the database may go away while this request queues.
            let look = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
            tokio::select! {
                turn = &mut turn => break turn.expect("the turns are never closed"),
                _ = tokio::time::sleep_until(look) => {
                    if tokio::time::Instant::now() >= deadline {
                        error::count_unavailable();
                        return Err(StoreError::Unavailable(format!(
                            "no database connection became free within {} ms",
                            limit.as_millis()
                        )));
                    }
                }
            }
        };
        match self.pool.acquire().await {
            Ok(conn) => Ok((conn, turn)),
            Err(e) => {
                let e = StoreError::from(e);
                if e.is_unavailable() {
                    shared.set_down(true);
                }
                Err(e)
            }
        }
    }
}

/// What [`Store::pool_stats`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Open connections no request holds.
    pub idle: u32,
    /// Connections the pools may open.
    pub max: u32,
}

/// Connection pools to one database.
#[derive(Clone)]
pub struct Store {
    read: Gate,
    /// On SQLite a single connection: SQLite admits one writer at a time anyway, and funnelling
    /// writes through one connection means a transaction that reads before it writes can never
    /// lose its snapshot to another writer of this process.
    write: Gate,
    dialect: Dialect,
    shared: Arc<Shared>,
    /// For the migration connection and the change listener.
    options: AnyConnectOptions,
    settings: Arc<str>,
    url: Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// This build's migrations for `dialect`.
pub(crate) fn migrator(dialect: Dialect) -> &'static sqlx::migrate::Migrator {
    match dialect {
        Dialect::Sqlite => &SQLITE_MIGRATIONS,
        Dialect::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// What every connection is set to when it opens. On PostgreSQL the server gives up on a
/// statement when the client would (so it stops holding locks for a request that already
/// failed), ends a transaction left idle by a client that vanished, and probes quiet client
/// links, so that locks held by a node cut off from the network are released.
fn connection_settings(dialect: Dialect, options: &StoreOptions) -> String {
    let ms = options.timeout.as_millis();
    match dialect {
        Dialect::Sqlite => {
            let synchronous = match options.sqlite_synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            };
            format!(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {ms}; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous};"
            )
        }
        Dialect::Postgres => format!(
            "SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = 60000; \
             SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
             SET tcp_keepalives_count = 3;"
        ),
    }
}

impl Store {
    /// The SQLite database file of the installation in `data_dir`.
    pub fn sqlite_file(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("keyturn.db")
    }

    /// Opens (creating if needed) the SQLite database `keyturn.db` in `data_dir`. The directory
    /// is created readable by its owner only (0700) and the database file is kept so (0600):
    /// it holds the signing keys, and SQLite gives its log files the database's permissions.
    pub async fn open_sqlite(data_dir: &Path, options: &StoreOptions) -> Result<Self> {
        let path = Self::sqlite_file(data_dir);
        private_files(data_dir, &path).map_err(|e| {
            StoreError::Config(format!("cannot prepare {}: {e}", data_dir.display()))
        })?;
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display()), options).await
    }

    /// Connects to `sqlite://…` or `postgres://…`.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let connect = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad database URL: {e}")))?;
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::Config(
                "the database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        let settings: Arc<str> = connection_settings(dialect, options).into();
        let pool = |size: u32| {
            let settings = settings.clone();
            AnyPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(options.timeout)
                .after_connect(move |conn, _| {
                    let settings = settings.clone();
                    Box::pin(async move {
                        conn.execute(&*settings).await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(connect.clone())
        };
        let gate = |size: u32| Gate::new(pool(size), size);
        let (read, write, changes) = match dialect {
            Dialect::Sqlite => {
                // One process owns an SQLite database's writes (see `follow_changes`).
                (
                    gate(options.max_connections.max(1)),
                    gate(1),
                    Changes::new(true),
                )
            }
            Dialect::Postgres => {
                let gate = gate(options.max_connections.max(2));
                (gate.clone(), gate, Changes::new(false))
            }
        };
        let store = Self {
            read,
            write,
            dialect,
            shared: Arc::new(Shared {
                timeout: options.timeout,
                changes,
                writes: Default::default(),
                down: Default::default(),
                #[cfg(feature = "fault-injection")]
                faults: Faults::default(),
            }),
            options: connect,
            settings,
            url: url.into(),
        };
        // Fail at start, not at the first request, when the database cannot be opened.
        store.read().await?;
        Ok(store)
    }

    /// Brings the schema up to date. Safe to run from several nodes at once on PostgreSQL
    /// (the migrator holds an advisory lock). Runs on a connection of its own, free of the
    /// per-statement timeout that requests have.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut conn = AnyConnection::connect_with(&self.options).await?;
        if self.dialect == Dialect::Sqlite {
            conn.execute(&*self.settings).await?;
        }
        migrator.run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Migrations this build knows that the database has not applied (successfully), by
    /// description; empty when the schema is current. A database never migrated has them all.
    pub async fn pending_migrations(&self) -> Result<Vec<String>> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        let mut session = self.read().await?;
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(session.conn())
                .await
            {
                Ok(v) => v,
                // No migration table: nothing was ever applied.
                Err(sqlx::Error::Database(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect())
    }

    /// Connections open in the pools, and how many of them are idle. On PostgreSQL reads and
    /// writes share one pool, counted once.
    pub fn pool_stats(&self) -> PoolStats {
        let mut stats = PoolStats {
            size: self.read.pool.size(),
            idle: u32::try_from(self.read.pool.num_idle()).unwrap_or(u32::MAX),
            max: u32::try_from(self.read.turns_total).unwrap_or(u32::MAX),
        };
        if self.dialect == Dialect::Sqlite {
            stats.size = stats.size.saturating_add(self.write.pool.size());
            stats.idle = stats
                .idle
                .saturating_add(u32::try_from(self.write.pool.num_idle()).unwrap_or(u32::MAX));
            stats.max = stats
                .max
                .saturating_add(u32::try_from(self.write.turns_total).unwrap_or(u32::MAX));
        }
        stats
    }

    /// Where committed changes are told.
    pub fn changes(&self) -> &Changes {
        &self.shared.changes
    }

    /// Why writes are failing, if the last one that reached the database failed.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.shared.writes.failure()
    }

    /// The faults a test injects.
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Starts following the changes other nodes commit (PostgreSQL); until then, and whenever
    /// the notification connection is down, [`Changes::healthy`] is false. SQLite needs
    /// nothing: its writes come from this process (the CLI writing to a served SQLite file
    /// is the exception, which caches bound by age).
    pub fn follow_changes(&self) {
        if self.dialect == Dialect::Postgres {
            self.shared
                .changes
                .follow(self.url.to_string(), self.shared.timeout);
        }
    }

    fn reachable(&self) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        if self.shared.faults.unreachable() {
            error::count_unavailable();
            return Err(StoreError::Unavailable(
                "injected fault: the database is unreachable".into(),
            ));
        }
        Ok(())
    }

    /// A connection for reads outside any transaction.
    pub async fn read(&self) -> Result<Session> {
        self.reachable()?;
        let (conn, turn) = self.read.enter(&self.shared).await?;
        Ok(Session::new(conn, turn, self.dialect, self.shared.clone()))
    }

    /// A transaction for changes; dropped without [`Session::commit`], it rolls back.
    pub async fn write(&self) -> Result<Session> {
        self.reachable()?;
        let (conn, turn) = match self.write.enter(&self.shared).await {
            Ok(entered) => entered,
            Err(e) => {
                if let StoreError::Unavailable(reason) = &e {
                    self.shared.writes.failed(reason);
                }
                return Err(e);
            }
        };
        let mut session = Session::new(conn, turn, self.dialect, self.shared.clone());
        session.begin().await?;
        Ok(session)
    }

    /// Writes one row and commits, to learn whether the database accepts writes (again).
    pub async fn probe_write(&self) -> Result<()> {
        let mut session = self.write().await?;
        session.write_probe(chrono::Utc::now()).await?;
        session.commit().await
    }

    /// Closes the pools, waiting at most `within` for connections in use to come back.
    pub async fn close(&self, within: Duration) {
        let closed = async {
            self.write.pool.close().await;
            self.read.pool.close().await;
        };
        if tokio::time::timeout(within, closed).await.is_err() {
            tracing::warn!("database connections still busy at exit were dropped");
        }
    }
}

/// Creates `dir` (owner only) and the database file `db` in it (owner read and write), or
/// narrows an existing database file to its owner.
#[cfg(unix)]
fn private_files(dir: &Path, db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)?;
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn private_files(dir: &Path, _db: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

pub(crate) mod time {
    use chrono::{DateTime, TimeZone, Utc};

    pub fn to_db(at: DateTime<Utc>) -> i64 {
        at.timestamp_millis()
    }

    pub fn from_db(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn opt_from_db(ms: Option<i64>) -> Option<DateTime<Utc>> {
        ms.map(from_db)
    }
}

pub(crate) fn json_list(values: &[String]) -> String {
    serde_json::to_string(values).expect("a list of strings always serialises")
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("column {column} holds bad JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both dialects have the same migrations, each version once: two with one version would
    /// leave one of them unapplied on some installations.
    #[test]
    fn migrations_have_one_version_each_and_match_across_dialects() {
        let versions = |m: &sqlx::migrate::Migrator| {
            let mut v: Vec<(i64, String)> = m
                .iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect();
            v.sort();
            v
        };
        let sqlite = versions(&SQLITE_MIGRATIONS);
        let mut unique: Vec<i64> = sqlite.iter().map(|(v, _)| *v).collect();
        unique.dedup();
        assert_eq!(
            unique.len(),
            sqlite.len(),
            "a version used twice: {sqlite:?}"
        );
        assert_eq!(sqlite, versions(&POSTGRES_MIGRATIONS));
    }

    /// An installation made before migration 14 keeps its customers' Stripe ids, now under the
    /// provider; licenses no longer carry a subscription of their own.
    async fn provider_links_survive_the_upgrade(url: &str, dialect: Dialect) {
        let all = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        let before = sqlx::migrate::Migrator {
            migrations: all.iter().filter(|m| m.version < 14).cloned().collect(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        let store = Store::connect(url, &StoreOptions::default()).await.unwrap();
        let mut conn = AnyConnection::connect_with(&store.options).await.unwrap();
        before.run(&mut conn).await.unwrap();
        for (id, stripe) in [(1, Some("cus_ann")), (2, None)] {
            sqlx::query(
                "INSERT INTO customers (id, name, created_at, stripe_customer_id) VALUES ($1, 'c', 0, $2)",
            )
            .bind(id)
            .bind(stripe)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
        store.migrate().await.unwrap();
        let mut s = store.write().await.unwrap();
        assert_eq!(
            s.customer_by_provider_id("stripe", "cus_ann")
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            s.customer_by_provider_id("paddle", "cus_ann")
                .await
                .unwrap(),
            None
        );
        s.set_customer_provider_id(2, "paddle", "cus_ann")
            .await
            .unwrap();
        s.set_customer_provider_id(1, "stripe", "cus_other")
            .await
            .unwrap();
        assert_eq!(
            s.customer_by_provider_id("paddle", "cus_ann")
                .await
                .unwrap(),
            Some(2),
            "one id per provider"
        );
        assert_eq!(
            s.customer_by_provider_id("stripe", "cus_other")
                .await
                .unwrap(),
            None,
            "a customer keeps the id a provider gave first"
        );
        assert!(
            matches!(
                s.set_customer_provider_id(2, "stripe", "cus_ann").await,
                Err(StoreError::Conflict(_))
            ),
            "an id names one customer"
        );
        drop(s);
        let gone = sqlx::query("SELECT stripe_subscription_id FROM licenses")
            .fetch_all(&store.read.pool)
            .await;
        assert!(gone.is_err(), "the column is gone");
        store.close(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn provider_links_survive_the_upgrade_on_sqlite_and_postgres() {
        let dir = std::env::temp_dir().join(format!("keyturn-upgrade-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("keyturn.db").display());
        provider_links_survive_the_upgrade(&url, Dialect::Sqlite).await;
        std::fs::remove_dir_all(&dir).unwrap();

        let Ok(server) = std::env::var("KEYTURN_TEST_DATABASE_URL") else {
            eprintln!(
                "provider_links_survive_the_upgrade_on_sqlite_and_postgres: skipped its PostgreSQL run: KEYTURN_TEST_DATABASE_URL not set"
            );
            return;
        };
        let name = format!("keyturn_store_upgrade_{}", std::process::id());
        let admin = |sql: String| {
            let server = server.clone();
            async move {
                let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.ok();
            }
        };
        admin(format!("CREATE DATABASE {name}")).await;
        let (base, _) = server.rsplit_once('/').unwrap();
        provider_links_survive_the_upgrade(&format!("{base}/{name}"), Dialect::Postgres).await;
        admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }

    #[tokio::test]
    async fn sqlite_synchronous_follows_the_option() {
        for (synchronous, expected) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let dir = std::env::temp_dir().join(format!(
                "keyturn-synchronous-{}-{expected}",
                std::process::id()
            ));
            let options = StoreOptions {
                sqlite_synchronous: synchronous,
                ..StoreOptions::default()
            };
            let store = Store::open_sqlite(&dir, &options).await.unwrap();
            for pool in [&store.read.pool, &store.write.pool] {
                let set: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert_eq!(set, expected, "{synchronous:?}");
            }
            store.close(Duration::from_secs(1)).await;
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
