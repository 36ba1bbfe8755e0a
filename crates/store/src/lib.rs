//! Keyturn's persistence. One set of queries serves SQLite and PostgreSQL: both schemas store
//! times as Unix milliseconds and flags as 0/1 integers, and the few places where the dialects
//! differ (row locks) ask [`Dialect`].
//!
//! Reads go through [`Store::read`]; every change goes through [`Store::write`], a transaction
//! committed with [`Session::commit`].

mod activations;
mod changes;
mod customers;
mod data_objects;
mod error;
mod events;
mod forms;
mod license_urls;
mod licenses;
mod messages;
mod outbox;
mod payments;
mod plans;
mod products;
mod session;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use changes::{Change, Changes};
pub use data_objects::DataOwnerRow;
pub use error::StoreError;
pub use licenses::{LicenseFilter, NewLicense};
pub use messages::MessageFilter;
pub use outbox::QueuedMail;
pub use payments::{IncomingEvent, NewPayment};
pub use plans::NewPlan;
pub use session::Session;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Connection pools to one database.
#[derive(Clone)]
pub struct Store {
    read: AnyPool,
    /// On SQLite a single connection: SQLite admits one writer at a time anyway, and funnelling
    /// writes through one connection means a transaction that reads before it writes can never
    /// lose its snapshot to another writer of this process.
    write: AnyPool,
    dialect: Dialect,
    changes: Changes,
    url: std::sync::Arc<str>,
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

impl Store {
    /// The SQLite database file of the installation in `data_dir`.
    pub fn sqlite_file(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("keyturn.db")
    }

    /// Opens (creating if needed) the SQLite database `keyturn.db` in `data_dir`. The directory
    /// is created readable by its owner only (0700) and the database file is kept so (0600):
    /// it holds the signing keys, and SQLite gives its log files the database's permissions.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self> {
        let path = Self::sqlite_file(data_dir);
        private_files(data_dir, &path).map_err(|e| {
            StoreError::Config(format!("cannot prepare {}: {e}", data_dir.display()))
        })?;
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display()), 8).await
    }

    /// Connects to `sqlite://…` or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad database URL: {e}")))?;
        if url.starts_with("sqlite:") {
            let pool = |size: u32| {
                AnyPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                                 PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
            };
            let write = pool(1).await?;
            let read = pool(max_connections.max(1)).await?;
            Ok(Self {
                read,
                write,
                dialect: Dialect::Sqlite,
                // One process owns an SQLite database's writes (see `follow_changes`).
                changes: Changes::new(true),
                url: url.into(),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Self {
                read: pool.clone(),
                write: pool,
                dialect: Dialect::Postgres,
                changes: Changes::new(false),
                url: url.into(),
            })
        } else {
            Err(StoreError::Config(
                "the database URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    /// Brings the schema up to date. Safe to run from several nodes at once on PostgreSQL
    /// (the migrator holds an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Where committed changes are told.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Starts following the changes other nodes commit (PostgreSQL); until then, and whenever
    /// the notification connection is down, [`Changes::healthy`] is false. SQLite needs
    /// nothing: its writes come from this process (the CLI writing to a served SQLite file
    /// is the exception, which caches bound by age).
    pub fn follow_changes(&self) {
        if self.dialect == Dialect::Postgres {
            self.changes.follow(self.url.to_string());
        }
    }

    /// A connection for reads outside any transaction.
    pub async fn read(&self) -> Result<Session> {
        Ok(Session::pooled(self.read.acquire().await?, self.dialect))
    }

    /// A transaction for changes; dropped without [`Session::commit`], it rolls back.
    pub async fn write(&self) -> Result<Session> {
        Ok(Session::transaction(
            self.write.begin().await?,
            self.dialect,
            self.changes.clone(),
        ))
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
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
