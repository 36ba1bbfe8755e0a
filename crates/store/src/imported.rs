//! What was brought in from another licensing server, by its id there (see the `imported`
//! table): the key that makes importing again update rather than duplicate.

use crate::{Result, Session};

/// Where imported rows came from: the kind of server and its address.
#[derive(Debug, Clone, Copy)]
pub struct ImportOrigin<'a> {
    pub origin: &'a str,
    pub server: &'a str,
}

impl Session {
    /// The local row that a source's `kind` row `source_id` became, if it was imported before.
    pub async fn imported_id(
        &mut self,
        from: ImportOrigin<'_>,
        kind: &str,
        source_id: &str,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT local_id FROM imported WHERE origin = $1 AND server = $2 AND kind = $3 \
             AND source_id = $4",
        )
        .bind(from.origin)
        .bind(from.server)
        .bind(kind)
        .bind(source_id)
        .fetch_optional(self.conn())
        .await?)
    }

    /// Records (or moves) what a source row became here.
    pub async fn record_imported(
        &mut self,
        from: ImportOrigin<'_>,
        kind: &str,
        source_id: &str,
        local_id: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO imported (origin, server, kind, source_id, local_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (origin, server, kind, source_id) \
             DO UPDATE SET local_id = excluded.local_id",
        )
        .bind(from.origin)
        .bind(from.server)
        .bind(kind)
        .bind(source_id)
        .bind(local_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The local rows a `kind` row `source_id` of any server of `origin` became, in id order.
    pub async fn imported_from_any(
        &mut self,
        origin: &str,
        kind: &str,
        source_id: &str,
    ) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT local_id FROM imported WHERE origin = $1 AND kind = $2 \
             AND source_id = $3 ORDER BY local_id",
        )
        .bind(origin)
        .bind(kind)
        .bind(source_id)
        .fetch_all(self.conn())
        .await?)
    }
}
