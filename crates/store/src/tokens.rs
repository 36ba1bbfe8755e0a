use chrono::{DateTime, Utc};
use keyturn_core::{AccessToken, Permission, TokenHash};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{parse_json, Result, Session};

const COLUMNS: &str = "id, name, permissions, product_id, key_lock, feature_lock, expires_at, \
     created_at, revoked_at";

fn token(row: &AnyRow) -> Result<AccessToken> {
    Ok(AccessToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        permissions: parse_json(
            "access_tokens.permissions",
            &row.try_get::<String, _>("permissions")?,
        )?,
        product_id: row.try_get("product_id")?,
        key_lock: row.try_get("key_lock")?,
        feature_lock: row.try_get("feature_lock")?,
        expires: opt_from_db(row.try_get("expires_at")?),
        created: from_db(row.try_get("created_at")?),
        revoked: opt_from_db(row.try_get("revoked_at")?),
    })
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_token(
        &mut self,
        name: &str,
        hash: &TokenHash,
        permissions: &[Permission],
        product_id: Option<i64>,
        key_lock: Option<i64>,
        feature_lock: i64,
        expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<AccessToken> {
        let permissions = serde_json::to_string(permissions).expect("permissions always serialise");
        let row = sqlx::query(&format!(
            "INSERT INTO access_tokens (name, token_hash, permissions, product_id, key_lock, \
             feature_lock, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(hash.as_str())
        .bind(permissions)
        .bind(product_id)
        .bind(key_lock)
        .bind(feature_lock)
        .bind(expires.map(to_db))
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        token(&row)
    }

    pub async fn token_by_hash(&mut self, hash: &TokenHash) -> Result<Option<AccessToken>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE token_hash = $1"
        ))
        .bind(hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(token).transpose()
    }

    pub async fn token(&mut self, id: i64) -> Result<Option<AccessToken>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(token).transpose()
    }

    pub async fn tokens(&mut self) -> Result<Vec<AccessToken>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM access_tokens ORDER BY id"))
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(token).collect()
    }

    /// One page of tokens in id order after `after`.
    pub async fn tokens_after(&mut self, after: i64, limit: i64) -> Result<Vec<AccessToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM access_tokens WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(token).collect()
    }

    pub async fn count_tokens(&mut self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM access_tokens")
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Marks a token revoked; `false` when there is no such token.
    pub async fn revoke_token(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(to_db(now))
        .bind(id)
        .execute(self.conn())
        .await?;
        self.touch(crate::Change::Token(id));
        Ok(done.rows_affected() > 0)
    }
}
