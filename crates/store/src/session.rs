use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, Transaction};

use crate::changes::{payload, CHANNEL};
use crate::{Change, Changes, Dialect, Result};

enum Handle {
    Pooled(PoolConnection<Any>),
    Transaction(Transaction<'static, Any>),
}

/// One connection's worth of work: plain reads, or a transaction. All queries are methods on it,
/// grouped by table in this crate's modules.
pub struct Session {
    handle: Handle,
    pub(crate) dialect: Dialect,
    /// What this transaction changed, told on commit.
    touched: Vec<Change>,
    changes: Option<Changes>,
}

impl Session {
    pub(crate) fn pooled(conn: PoolConnection<Any>, dialect: Dialect) -> Self {
        Self {
            handle: Handle::Pooled(conn),
            dialect,
            touched: Vec::new(),
            changes: None,
        }
    }

    pub(crate) fn transaction(
        tx: Transaction<'static, Any>,
        dialect: Dialect,
        changes: Changes,
    ) -> Self {
        Self {
            handle: Handle::Transaction(tx),
            dialect,
            touched: Vec::new(),
            changes: Some(changes),
        }
    }

    /// Notes a change that readers holding the row in memory must hear of.
    pub(crate) fn touch(&mut self, change: Change) {
        if !self.touched.contains(&change) {
            self.touched.push(change);
        }
    }

    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.handle {
            Handle::Pooled(conn) => conn,
            Handle::Transaction(tx) => tx,
        }
    }

    /// Commits a transaction; a no-op for a read session.
    pub async fn commit(self) -> Result<()> {
        if let Handle::Transaction(mut tx) = self.handle {
            if self.dialect == Dialect::Postgres && !self.touched.is_empty() {
                // Delivered to every listening node when, and only if, this commits.
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload(&self.touched))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            if let Some(changes) = &self.changes {
                changes.publish(&self.touched);
            }
        }
        Ok(())
    }

    /// A condition that holds when `column` contains the text bound as `$param`, case-sensitively.
    pub(crate) fn contains(&self, column: &str, param: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("instr({column}, ${param}) > 0"),
            Dialect::Postgres => format!("strpos({column}, ${param}) > 0"),
        }
    }

    /// Holds a lock named `name` until commit, for work that must not interleave although it
    /// touches no common row (a refund and the payment it reverses, recorded at once). SQLite
    /// needs none: its writes are already serialised through the single write connection.
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

    /// The clause that locks the selected row until commit. SQLite needs none: its writes are
    /// already serialised through the single write connection.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}
