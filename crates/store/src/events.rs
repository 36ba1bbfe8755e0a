use chrono::{DateTime, Utc};
use keyturn_core::LicenseEvent;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{parse_json, Result, Session};

fn event(row: &AnyRow) -> Result<LicenseEvent> {
    Ok(LicenseEvent {
        id: row.try_get("id")?,
        license_id: row.try_get("license_id")?,
        at: from_db(row.try_get("at")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        details: parse_json(
            "license_events.details",
            &row.try_get::<String, _>("details")?,
        )?,
    })
}

impl Session {
    pub async fn insert_license_event(
        &mut self,
        license_id: i64,
        actor: &str,
        action: &str,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO license_events (license_id, at, actor, action, details) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(license_id)
        .bind(to_db(now))
        .bind(actor)
        .bind(action)
        .bind(details.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The reason for the buyer written with the license's latest block, if that block gave
    /// one: read from the audit log, where the block and its reasons are written together.
    pub async fn public_block_reason(&mut self, license_id: i64) -> Result<Option<String>> {
        let details: Option<String> = sqlx::query_scalar(
            "SELECT details FROM license_events WHERE license_id = $1 AND action = 'blocked' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(license_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(details
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|d| d.get("public_reason")?.as_str().map(str::to_owned)))
    }

    /// A license's audit log in the order it was written.
    pub async fn license_events(
        &mut self,
        license_id: i64,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<LicenseEvent>> {
        let rows = sqlx::query(
            "SELECT id, license_id, at, actor, action, details FROM license_events \
             WHERE license_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(license_id)
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(event).collect()
    }
}
