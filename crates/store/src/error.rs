use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint refused the row; the message names the constraint when known.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A foreign key points nowhere.
    #[error("a referenced row does not exist: {0}")]
    MissingReference(String),
    /// The database cannot do the work now, but may soon: it is unreachable, did not answer in
    /// time, is full, failed an I/O, or is locked by another writer. Nothing was committed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The database could not do the work now; the request may succeed if tried again.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Why an error says the database is unavailable rather than the request wrong, if it does.
/// SQLite reports (extended) result codes, PostgreSQL SQLSTATEs; both arrive as the code text.
pub(crate) fn unavailable(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::PoolTimedOut => Some("no database connection became free in time".into()),
        sqlx::Error::PoolClosed => Some("the connection pool is closed".into()),
        sqlx::Error::Io(io) => Some(format!("connection failed: {io}")),
        sqlx::Error::Tls(tls) => Some(format!("TLS failed: {tls}")),
        sqlx::Error::Protocol(p) => Some(format!("protocol error: {p}")),
        sqlx::Error::WorkerCrashed => Some("the database worker stopped".into()),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            let transient = match code.parse::<i64>() {
                // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_NOMEM, SQLITE_READONLY, SQLITE_IOERR,
                // SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL
                Ok(sqlite) => matches!(sqlite & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14 | 15),
                // connection exceptions, serialization failure and deadlock, insufficient
                // resources (disk full, out of memory, too many connections), operator
                // intervention (statement timeout, shutdown, cannot connect now), system error
                Err(_) => {
                    matches!(code.get(..2), Some("08" | "53" | "57" | "58"))
                        || matches!(&*code, "40001" | "40P01" | "55P03")
                }
            };
            transient.then(|| db.message().to_owned())
        }
        _ => None,
    }
}

/// Database errors seen by this process since it started, for the metrics: a conflict or a
/// missing reference is an answer about the data, not an error of the database, and is not
/// counted. A process-wide atomic because errors are made far from any store handle (in
/// `From`), and one relaxed add costs nothing beside the failed call.
static UNAVAILABLE: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);

/// Counts an unavailable database that no `sqlx::Error` reported (no turn at the pool came).
pub(crate) fn count_unavailable() {
    UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
}

/// Database errors counted so far: (unavailable, other).
pub fn database_errors() -> (u64, u64) {
    (
        UNAVAILABLE.load(Ordering::Relaxed),
        OTHER.load(Ordering::Relaxed),
    )
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(reason) = unavailable(&e) {
            UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
            return StoreError::Unavailable(reason);
        }
        if let sqlx::Error::Database(db) = &e {
            let name = db.constraint().unwrap_or_else(|| db.message()).to_owned();
            if db.is_unique_violation() {
                return StoreError::Conflict(name);
            }
            if db.is_foreign_key_violation() {
                return StoreError::MissingReference(name);
            }
        }
        OTHER.fetch_add(1, Ordering::Relaxed);
        StoreError::Database(e)
    }
}
