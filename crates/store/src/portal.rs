//! The customer portal's tables: one-time sign-in links, buyers' sessions, and the buyer's own
//! licenses, found by the email address a session was opened for.

use chrono::{DateTime, Utc};
use keyturn_core::{License, TokenHash};
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{Result, Session};

/// A live portal session row.
#[derive(Debug, Clone)]
pub struct PortalSessionRow {
    /// Lower-cased.
    pub email: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl Session {
    pub async fn insert_portal_link(
        &mut self,
        id_hash: &TokenHash,
        email: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_links (id_hash, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash.as_str())
        .bind(email)
        .bind(to_db(now))
        .bind(to_db(expires))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Marks an unused, unexpired link used and returns its email; `None` when there is no such
    /// link. One statement, so two uses at once cannot both succeed.
    pub async fn use_portal_link(
        &mut self,
        id_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "UPDATE portal_links SET used_at = $1 \
             WHERE id_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING email",
        )
        .bind(to_db(now))
        .bind(id_hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| Ok(r.try_get("email")?)).transpose()
    }

    /// Forgets links that expired before `before`.
    pub async fn prune_portal_links(&mut self, before: DateTime<Utc>) -> Result<()> {
        sqlx::query("DELETE FROM portal_links WHERE expires_at < $1")
            .bind(to_db(before))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_portal_session(
        &mut self,
        id_hash: &TokenHash,
        email: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_sessions (id_hash, email, created_at, last_seen_at, ip) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(id_hash.as_str())
        .bind(email)
        .bind(to_db(now))
        .bind(ip)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A session that has not been ended.
    pub async fn portal_session(
        &mut self,
        id_hash: &TokenHash,
    ) -> Result<Option<PortalSessionRow>> {
        let row = sqlx::query(
            "SELECT email, created_at, last_seen_at FROM portal_sessions \
             WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(PortalSessionRow {
                email: r.try_get("email")?,
                created: from_db(r.try_get("created_at")?),
                last_seen: from_db(r.try_get("last_seen_at")?),
            })
        })
        .transpose()
    }

    pub async fn touch_portal_session(
        &mut self,
        id_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE portal_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(to_db(now))
            .bind(id_hash.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Ends a session; `false` when there was no live one.
    pub async fn end_portal_session(
        &mut self,
        id_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE portal_sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL",
        )
        .bind(to_db(now))
        .bind(id_hash.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether any customer has this (lower-cased) email.
    pub async fn portal_email_known(&mut self, email: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM customers WHERE lower(email) = $1 \
             LIMIT 1) AS c",
        )
        .bind(email)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The licenses of every customer with this (lower-cased) email, in id order after `after`.
    pub async fn portal_licenses(
        &mut self,
        email: &str,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<License>> {
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM licenses WHERE id > $1 AND customer_id IN \
             (SELECT id FROM customers WHERE lower(email) = $2) ORDER BY id LIMIT $3",
            columns = crate::licenses::COLUMNS,
        ))
        .bind(after.unwrap_or(0))
        .bind(email)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(crate::licenses::license).collect()
    }
}
