use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, Transaction};

use crate::{Dialect, Result};

enum Handle {
    Pooled(PoolConnection<Any>),
    Transaction(Transaction<'static, Any>),
}

/// One connection's worth of work: plain reads, or a transaction. All queries are methods on it,
/// grouped by table in this crate's modules.
pub struct Session {
    handle: Handle,
    pub(crate) dialect: Dialect,
}

impl Session {
    pub(crate) fn pooled(conn: PoolConnection<Any>, dialect: Dialect) -> Self {
        Self {
            handle: Handle::Pooled(conn),
            dialect,
        }
    }

    pub(crate) fn transaction(tx: Transaction<'static, Any>, dialect: Dialect) -> Self {
        Self {
            handle: Handle::Transaction(tx),
            dialect,
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
        if let Handle::Transaction(tx) = self.handle {
            tx.commit().await?;
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
