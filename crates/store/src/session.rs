//! One connection's worth of work, and the rules that keep a connection trustworthy:
//!
//! - A write session is a transaction this module begins and ends itself (`BEGIN IMMEDIATE`
//!   on SQLite, so the write lock is taken at the start and waited for under the busy timeout,
//!   never upgraded half-way and refused at once).
//! - Every statement, and the commit, must answer within the store's timeout; a database that
//!   stops answering (a dropped link, a stopped server) makes the request fail, not hang.
//! - A transaction that did not commit is rolled back before its connection is used again. If
//!   a statement or the commit failed because the database was unavailable (full, I/O error,
//!   timed out), the connection's state is unknown — SQLite may already have rolled back, the
//!   link may be half-way through a reply — so the connection is closed, never reused: the pool
//!   opens a fresh one. A failed write can therefore never leave the write connection inside a
//!   transaction that later requests would appear to commit into.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Describe, Either, Execute, Executor};
use tokio::sync::OwnedSemaphorePermit;

use crate::changes::{payload, CHANNEL};
use crate::error::unavailable;
use crate::{Change, Dialect, Result, Shared, StoreError};

/// One connection's worth of work: plain reads, or a transaction. All queries are methods on it,
/// grouped by table in this crate's modules.
pub struct Session {
    conn: Option<PoolConnection<Any>>,
    /// This session's turn at the pool, given back with the connection.
    turn: Option<OwnedSemaphorePermit>,
    pub(crate) dialect: Dialect,
    /// A transaction is open on `conn` (a write session not yet committed).
    open: bool,
    /// The connection's state is unknown: close it instead of reusing it.
    broken: bool,
    /// What this transaction changed, told on commit.
    touched: Vec<Change>,
    shared: std::sync::Arc<Shared>,
}

impl Session {
    pub(crate) fn new(
        conn: PoolConnection<Any>,
        turn: OwnedSemaphorePermit,
        dialect: Dialect,
        shared: std::sync::Arc<Shared>,
    ) -> Self {
        Self {
            conn: Some(conn),
            turn: Some(turn),
            dialect,
            open: false,
            broken: false,
            touched: Vec::new(),
            shared,
        }
    }

    /// Begins the transaction of a write session.
    pub(crate) async fn begin(&mut self) -> Result<()> {
        let begin = match self.dialect {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        self.open = true;
        let begun = self.conn().execute(begin).await;
        if begun.is_err() {
            self.open = false;
        }
        begun?;
        Ok(())
    }

    /// Begins a read-only transaction whose reads all see one snapshot of the database.
    pub(crate) async fn begin_snapshot(&mut self) -> Result<()> {
        let begin = match self.dialect {
            // Deferred: a read lock at the first read, held (with its WAL snapshot) to the end.
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        self.open = true;
        let begun = self.conn().execute(begin).await;
        if begun.is_err() {
            self.open = false;
        }
        begun?;
        Ok(())
    }

    /// Notes a change that readers holding the row in memory must hear of.
    pub(crate) fn touch(&mut self, change: Change) {
        if !self.touched.contains(&change) {
            self.touched.push(change);
        }
    }

    /// The connection, with every statement bounded by the store's timeout.
    pub(crate) fn conn(&mut self) -> Bounded<'_> {
        Bounded {
            conn: self
                .conn
                .as_mut()
                .expect("a session keeps its connection until it ends"),
            watch: Watch {
                shared: &self.shared,
                broken: &mut self.broken,
                in_transaction: self.open,
            },
        }
    }

    /// Commits a transaction; a no-op for a read session. Only when this returns `Ok` has the
    /// change been stored.
    pub async fn commit(mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        match self.finish().await {
            Ok(()) => {
                self.open = false;
                self.shared.writes.succeeded();
                self.shared.changes.publish(&self.touched);
                Ok(())
            }
            Err(e) => {
                // Whether the transaction is still open is not certain after a failed COMMIT
                // (SQLite rolls back on some errors and not on others): closing the connection
                // ends it either way.
                self.broken = true;
                if let StoreError::Unavailable(reason) = &e {
                    self.shared.writes.failed(reason);
                }
                Err(e)
            }
        }
    }

    async fn finish(&mut self) -> Result<()> {
        #[cfg(feature = "fault-injection")]
        if self.shared.faults.take_commit_failure() {
            return Err(StoreError::Unavailable(
                "injected fault: the commit failed".into(),
            ));
        }
        if self.dialect == Dialect::Postgres && !self.touched.is_empty() {
            // Delivered to every listening node when, and only if, this commits.
            let touched = payload(&self.touched);
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(touched)
                .execute(self.conn())
                .await?;
        }
        self.conn().execute("COMMIT").await?;
        Ok(())
    }

    /// A condition that holds when `column` contains the text bound as `$param`, case-sensitively.
    pub(crate) fn contains(&self, column: &str, param: usize) -> String {
        self.dialect.contains(column, param)
    }

    /// A condition that holds when `expr` starts with the text bound as `$from`, given
    /// `$from + 1` bound to the same text followed by U+10FFFF: a range over the expression's
    /// index in byte order. PostgreSQL compares in the byte order of the "C" collation, which
    /// its search indexes are built in; SQLite compares bytes already.
    pub(crate) fn starts_with(&self, expr: &str, from: usize) -> String {
        let to = from + 1;
        match self.dialect {
            Dialect::Sqlite => format!("({expr} >= ${from} AND {expr} < ${to})"),
            Dialect::Postgres => {
                format!("({expr} COLLATE \"C\" >= ${from} AND {expr} COLLATE \"C\" < ${to})")
            }
        }
    }

    /// The day (days since 1970-01-01, UTC) of the Unix-milliseconds time in `column`: integer
    /// division, which both dialects do alike on their 64-bit integers, so rows group by the
    /// same days as `keyturn_core::dashboard::day_number` computes.
    pub(crate) fn day_of(&self, column: &str) -> String {
        match self.dialect {
            Dialect::Sqlite | Dialect::Postgres => format!("({column} / 86400000)"),
        }
    }

    /// Holds a lock named `name` until commit, for work that must not interleave although it
    /// touches no common row (a refund and the payment it reverses, recorded at once). SQLite
    /// needs none: its write transactions hold the database's write lock from their start.
    pub async fn lock_name(&mut self, name: &str) -> Result<()> {
        if self.dialect == Dialect::Postgres {
            // Selected through a count: the lock function returns `void`, which no driver decodes.
            sqlx::query(
                "SELECT COUNT(*) AS n FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l",
            )
                .bind(name)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    /// The clause that locks the selected row until commit. SQLite needs none: its write
    /// transactions hold the database's write lock from their start.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let turn = self.turn.take();
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.broken {
            // Closes the socket or file handle now; the pool opens a replacement when needed.
            drop(conn.detach());
            return;
        }
        if !self.open {
            return;
        }
        // Ended without a commit: roll back before the pool hands the connection out again
        // (it holds the connection until this task lets go of it).
        let timeout = self.shared.timeout;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let rolled_back = tokio::time::timeout(timeout, conn.execute("ROLLBACK"))
                        .await
                        .is_ok_and(|r| r.is_ok());
                    if !rolled_back {
                        drop(conn.detach());
                    }
                    drop(turn);
                });
            }
            Err(_) => drop(conn.detach()),
        }
    }
}

/// A connection whose every statement must answer within the store's timeout. A statement that
/// does not, or that fails because the database is unavailable, marks the connection broken
/// (and, inside a transaction, the write path failing).
#[derive(Debug)]
pub(crate) struct Bounded<'c> {
    conn: &'c mut AnyConnection,
    watch: Watch<'c>,
}

struct Watch<'c> {
    shared: &'c Shared,
    broken: &'c mut bool,
    /// A failing call in a transaction is a failing write.
    in_transaction: bool,
}

impl std::fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Watch<'_> {
    /// Runs one database call under the deadline and notes what its outcome says.
    async fn call<T>(
        &mut self,
        call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let timeout = self.shared.timeout;
        let out = tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| Err(timed_out(timeout)));
        match &out {
            Ok(_) => self.shared.set_down(false),
            Err(e) => self.note(e),
        }
        out
    }

    fn note(&mut self, e: &sqlx::Error) {
        if let Some(reason) = unavailable(e) {
            *self.broken = true;
            self.shared.set_down(true);
            if self.in_transaction {
                self.shared.writes.failed(&reason);
            }
        }
    }
}

fn timed_out(timeout: Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the database did not answer within {} ms",
            timeout.as_millis()
        ),
    ))
}

impl<'c> Executor<'c> for Bounded<'c> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let Bounded { conn, mut watch } = self;
        // Statements here return a handful of rows: collecting them under one deadline is
        // simpler than a deadline per row and costs nothing.
        futures::stream::once(async move {
            let rows = watch
                .call(async { Ok(conn.fetch_many(query).collect::<Vec<_>>().await) })
                .await
                .unwrap_or_else(|e| vec![Err(e)]);
            if let Some(Err(e)) = rows.iter().find(|r| r.is_err()) {
                watch.note(e);
            }
            futures::stream::iter(rows)
        })
        .flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let Bounded { conn, mut watch } = self;
        async move { watch.call(conn.fetch_optional(query)).await }.boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        let Bounded { conn, mut watch } = self;
        async move { watch.call(conn.prepare_with(sql, parameters)).await }.boxed()
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        let Bounded { conn, mut watch } = self;
        async move { watch.call(conn.describe(sql)).await }.boxed()
    }
}

impl Dialect {
    /// A condition that holds when `column` contains the text bound as `$param`, case-sensitively.
    pub(crate) fn contains(self, column: &str, param: usize) -> String {
        match self {
            Dialect::Sqlite => format!("instr({column}, ${param}) > 0"),
            Dialect::Postgres => format!("strpos({column}, ${param}) > 0"),
        }
    }

    /// A condition that holds when the JSON list of texts in `column` (stored as text) holds
    /// the text bound as `$param`.
    pub(crate) fn json_list_has(self, column: &str, param: usize) -> String {
        match self {
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each({column}) AS j WHERE j.value = ${param})")
            }
            Dialect::Postgres => {
                format!("(CAST({column} AS jsonb) @> jsonb_build_array(CAST(${param} AS text)))")
            }
        }
    }
}
