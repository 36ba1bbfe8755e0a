use chrono::{DateTime, Utc};
use keyturn_core::payment::{LicenseUrl, LicenseUrlParams};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{parse_json, Result, Session};

const COLUMNS: &str =
    "id, plan_id, name, store, params, secret_hash, email_buyer, created_at, rotated_at";

/// A license URL with the hash of its secret.
fn license_url(row: &AnyRow) -> Result<(LicenseUrl, String)> {
    Ok((
        LicenseUrl {
            id: row.try_get("id")?,
            plan_id: row.try_get("plan_id")?,
            name: row.try_get("name")?,
            store: row.try_get("store")?,
            params: parse_json("license_urls.params", &row.try_get::<String, _>("params")?)?,
            email_buyer: row.try_get::<i64, _>("email_buyer")? != 0,
            created: from_db(row.try_get("created_at")?),
            rotated: from_db(row.try_get("rotated_at")?),
        },
        row.try_get("secret_hash")?,
    ))
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_license_url(
        &mut self,
        plan_id: i64,
        name: &str,
        store: &str,
        params: &LicenseUrlParams,
        secret_hash: &str,
        email_buyer: bool,
        now: DateTime<Utc>,
    ) -> Result<LicenseUrl> {
        let row = sqlx::query(&format!(
            "INSERT INTO license_urls (plan_id, name, store, params, secret_hash, email_buyer, \
             created_at, rotated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
        ))
        .bind(plan_id)
        .bind(name)
        .bind(store)
        .bind(serde_json::to_string(params).expect("params serialise"))
        .bind(secret_hash)
        .bind(i64::from(email_buyer))
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        Ok(license_url(&row)?.0)
    }

    /// A license URL and the hash of its secret.
    pub async fn license_url(&mut self, id: i64) -> Result<Option<(LicenseUrl, String)>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM license_urls WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(license_url).transpose()
    }

    pub async fn license_urls(&mut self) -> Result<Vec<LicenseUrl>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM license_urls ORDER BY id"))
            .fetch_all(self.conn())
            .await?;
        rows.iter()
            .map(|r| license_url(r).map(|(u, _)| u))
            .collect()
    }

    /// One page of license URLs in id order after `after`.
    pub async fn license_urls_after(&mut self, after: i64, limit: i64) -> Result<Vec<LicenseUrl>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM license_urls WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| license_url(r).map(|(u, _)| u))
            .collect()
    }

    /// Writes a license URL's name, plan, parameter names and mail setting (its secret changes
    /// only by rotation).
    pub async fn update_license_url(&mut self, u: &LicenseUrl) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE license_urls SET name = $1, plan_id = $2, params = $3, email_buyer = $4 \
             WHERE id = $5",
        )
        .bind(&u.name)
        .bind(u.plan_id)
        .bind(serde_json::to_string(&u.params).expect("params serialise"))
        .bind(i64::from(u.email_buyer))
        .bind(u.id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn rotate_license_url(
        &mut self,
        id: i64,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE license_urls SET secret_hash = $1, rotated_at = $2 WHERE id = $3")
                .bind(secret_hash)
                .bind(to_db(now))
                .bind(id)
                .execute(self.conn())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_license_url(&mut self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM license_urls WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The payment recorded for a provider's business object, with the licenses it bought.
    pub async fn payment_for(
        &mut self,
        provider: &str,
        object_kind: keyturn_core::payment::ObjectKind,
        object_id: &str,
    ) -> Result<Option<keyturn_core::payment::Payment>> {
        let row = sqlx::query(
            "SELECT id FROM payments WHERE provider = $1 AND object_kind = $2 AND object_id = $3",
        )
        .bind(provider)
        .bind(object_kind.as_str())
        .bind(object_id)
        .fetch_optional(self.conn())
        .await?;
        match row {
            Some(r) => self.payment(r.try_get("id")?).await,
            None => Ok(None),
        }
    }
}
