//! The customer portal's self-service: the buyer's frees counted from the audit log, the
//! buyer's customer records (name, email) and email changes waiting for confirmation.

use chrono::{DateTime, Utc};
use keyturn_core::TokenHash;
use sqlx::Row;

use crate::time::to_db;
use crate::{Result, Session};

/// An email change a confirmation link carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChange {
    /// Lower-cased.
    pub old_email: String,
    /// Lower-cased.
    pub new_email: String,
}

impl Session {
    /// How many machines of `license_id` buyers freed in the portal since `since`: the
    /// deactivations its audit log holds under a `customer:` actor.
    pub async fn customer_frees_since(
        &mut self,
        license_id: i64,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM license_events WHERE license_id = $1 \
             AND action = 'deactivated' AND actor LIKE 'customer:%' AND at >= $2",
        )
        .bind(license_id)
        .bind(to_db(since))
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The name on the buyer's first customer record with this (lower-cased) email.
    pub async fn portal_customer_name(&mut self, email: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT name FROM customers WHERE lower(email) = $1 ORDER BY id LIMIT 1")
                .bind(email)
                .fetch_optional(self.conn())
                .await?;
        row.map(|r| Ok(r.try_get("name")?)).transpose()
    }

    /// Renames every customer record with this (lower-cased) email.
    pub async fn set_portal_customer_name(&mut self, email: &str, name: &str) -> Result<()> {
        sqlx::query("UPDATE customers SET name = $1 WHERE lower(email) = $2")
            .bind(name)
            .bind(email)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The ids of the licenses of every customer with this (lower-cased) email.
    pub async fn portal_license_ids(&mut self, email: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT id FROM licenses WHERE customer_id IN \
             (SELECT id FROM customers WHERE lower(email) = $1) ORDER BY id",
        )
        .bind(email)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    pub async fn insert_portal_email_change(
        &mut self,
        id_hash: &TokenHash,
        old_email: &str,
        new_email: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO portal_email_changes (id_hash, old_email, new_email, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash.as_str())
        .bind(old_email)
        .bind(new_email)
        .bind(to_db(now))
        .bind(to_db(expires))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Marks an unused, unexpired confirmation used and returns it; `None` when there is no
    /// such one. One statement, so two uses at once cannot both succeed.
    pub async fn use_portal_email_change(
        &mut self,
        id_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<EmailChange>> {
        let row = sqlx::query(
            "UPDATE portal_email_changes SET used_at = $1 \
             WHERE id_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING old_email, new_email",
        )
        .bind(to_db(now))
        .bind(id_hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(EmailChange {
                old_email: r.try_get("old_email")?,
                new_email: r.try_get("new_email")?,
            })
        })
        .transpose()
    }

    /// Forgets confirmations that expired before `before`.
    pub async fn prune_portal_email_changes(&mut self, before: DateTime<Utc>) -> Result<()> {
        sqlx::query("DELETE FROM portal_email_changes WHERE expires_at < $1")
            .bind(to_db(before))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Moves the buyer's customer records and live portal sessions from one (lower-cased)
    /// email to another; the customer ids moved.
    pub async fn move_portal_email(
        &mut self,
        old_email: &str,
        new_email: &str,
    ) -> Result<Vec<i64>> {
        let rows =
            sqlx::query("UPDATE customers SET email = $1 WHERE lower(email) = $2 RETURNING id")
                .bind(new_email)
                .bind(old_email)
                .fetch_all(self.conn())
                .await?;
        sqlx::query("UPDATE portal_sessions SET email = $1 WHERE email = $2 AND ended_at IS NULL")
            .bind(new_email)
            .bind(old_email)
            .execute(self.conn())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }
}
