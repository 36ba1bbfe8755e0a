use chrono::{DateTime, Utc};
use keyturn_core::Activation;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{Change, Result, Session};

const COLUMNS: &str = "id, license_id, fingerprint, name, ip, os_info, created_at, last_seen_at, \
     lease_expires_at, overdraft";

fn activation(row: &AnyRow) -> Result<Activation> {
    Ok(Activation {
        id: row.try_get("id")?,
        license_id: row.try_get("license_id")?,
        fingerprint: row.try_get("fingerprint")?,
        name: row.try_get("name")?,
        ip: row.try_get("ip")?,
        os_info: row.try_get("os_info")?,
        created: from_db(row.try_get("created_at")?),
        last_seen: from_db(row.try_get("last_seen_at")?),
        lease_expires: opt_from_db(row.try_get("lease_expires_at")?),
        overdraft: row.try_get::<i64, _>("overdraft")? != 0,
    })
}

/// What an activation records about the machine holding the seat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seat<'a> {
    pub name: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub os_info: Option<&'a str>,
    /// For floating seats: when the seat is given up unless renewed.
    pub lease_expires: Option<DateTime<Utc>>,
    /// A floating seat beyond the machine limit.
    pub overdraft: bool,
}

impl Session {
    /// A license's activations whose leases have not lapsed, oldest first.
    pub async fn live_activations(
        &mut self,
        license_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Activation>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM activations WHERE license_id = $1 \
             AND (lease_expires_at IS NULL OR lease_expires_at > $2) ORDER BY created_at, id"
        ))
        .bind(license_id)
        .bind(to_db(now))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(activation).collect()
    }

    /// All of a license's activations, lapsed leases included, oldest first: for a caller
    /// that filters by time itself, later.
    pub async fn all_activations(&mut self, license_id: i64) -> Result<Vec<Activation>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM activations WHERE license_id = $1 ORDER BY created_at, id"
        ))
        .bind(license_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(activation).collect()
    }

    pub async fn activation(&mut self, id: i64) -> Result<Option<Activation>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM activations WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(activation).transpose()
    }

    pub async fn activation_of(
        &mut self,
        license_id: i64,
        fingerprint: &str,
    ) -> Result<Option<Activation>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM activations WHERE license_id = $1 AND fingerprint = $2"
        ))
        .bind(license_id)
        .bind(fingerprint)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(activation).transpose()
    }

    pub async fn insert_activation(
        &mut self,
        license_id: i64,
        fingerprint: &str,
        name: Option<&str>,
        ip: Option<&str>,
        lease_expires: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Activation> {
        self.insert_seat(
            license_id,
            fingerprint,
            Seat {
                name,
                ip,
                os_info: None,
                lease_expires,
                overdraft: false,
            },
            now,
        )
        .await
    }

    /// Inserts an activation, marking a floating seat taken beyond the limit as overdraft.
    pub async fn insert_seat(
        &mut self,
        license_id: i64,
        fingerprint: &str,
        seat: Seat<'_>,
        now: DateTime<Utc>,
    ) -> Result<Activation> {
        let row = sqlx::query(&format!(
            "INSERT INTO activations (license_id, fingerprint, name, ip, os_info, created_at, \
             last_seen_at, lease_expires_at, overdraft) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8) \
             RETURNING {COLUMNS}"
        ))
        .bind(license_id)
        .bind(fingerprint)
        .bind(seat.name)
        .bind(seat.ip)
        .bind(seat.os_info)
        .bind(to_db(now))
        .bind(seat.lease_expires.map(to_db))
        .bind(i64::from(seat.overdraft))
        .fetch_one(self.conn())
        .await?;
        self.touch(Change::License(license_id));
        activation(&row)
    }

    /// A known machine checked in again: renew its lease and remember where it came from
    /// (what is not given stays as it was; the lease is always replaced).
    pub async fn renew_activation(
        &mut self,
        id: i64,
        seat: Seat<'_>,
        now: DateTime<Utc>,
    ) -> Result<Activation> {
        let row = sqlx::query(&format!(
            "UPDATE activations SET name = COALESCE($1, name), ip = COALESCE($2, ip), \
             os_info = COALESCE($3, os_info), last_seen_at = $4, lease_expires_at = $5 \
             WHERE id = $6 RETURNING {COLUMNS}"
        ))
        .bind(seat.name)
        .bind(seat.ip)
        .bind(seat.os_info)
        .bind(to_db(now))
        .bind(seat.lease_expires.map(to_db))
        .bind(id)
        .fetch_one(self.conn())
        .await?;
        let renewed = activation(&row)?;
        self.touch(Change::License(renewed.license_id));
        Ok(renewed)
    }

    /// A known machine was seen again. Not told as a change: nothing a reply is built from
    /// depends on it beyond what readers may show a few seconds late.
    pub async fn record_check_in(
        &mut self,
        id: i64,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE activations SET ip = COALESCE($1, ip), last_seen_at = $2 \
             WHERE id = $3 AND last_seen_at < $2",
        )
        .bind(ip)
        .bind(to_db(at))
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn delete_activation(&mut self, id: i64) -> Result<bool> {
        let license = sqlx::query_scalar::<_, i64>(
            "DELETE FROM activations WHERE id = $1 RETURNING license_id",
        )
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        if let Some(license) = license {
            self.touch(Change::License(license));
        }
        Ok(license.is_some())
    }

    /// Forgets floating activations whose lease has lapsed; they no longer hold a seat.
    /// Returns them as they were.
    pub async fn delete_lapsed_activations(
        &mut self,
        license_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Activation>> {
        let rows = sqlx::query(&format!(
            "DELETE FROM activations WHERE license_id = $1 \
             AND lease_expires_at IS NOT NULL AND lease_expires_at <= $2 RETURNING {COLUMNS}"
        ))
        .bind(license_id)
        .bind(to_db(now))
        .fetch_all(self.conn())
        .await?;
        if !rows.is_empty() {
            self.touch(Change::License(license_id));
        }
        rows.iter().map(activation).collect()
    }
}
