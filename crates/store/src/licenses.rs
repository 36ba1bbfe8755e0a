use chrono::{DateTime, Utc};
use keyturn_core::License;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{json_list, parse_json, Change, Result, Session};

/// Rows per multi-row statement on the bulk path: far below both databases' limits on bound
/// parameters (SQLite 32766, PostgreSQL 65535).
const IMPORT_CHUNK: usize = 1000;

/// `$from, $from+1, …` for `n` values.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A license as the use cases have validated it, before it has an id.
#[derive(Debug, Clone)]
pub struct NewLicense {
    pub key: String,
    pub product_id: i64,
    pub plan_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub expires: Option<DateTime<Utc>>,
    pub period_days: Option<i64>,
    pub features: Vec<String>,
    pub max_machines: i64,
    pub floating_lease_seconds: Option<i64>,
    pub trial: bool,
    pub notes: String,
    pub blocked: bool,
    pub metadata: serde_json::Value,
    pub trial_activation: bool,
    pub allowed_machines: Vec<String>,
}

/// Which licenses a listing returns; every filter that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct LicenseFilter {
    pub product_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub email: Option<String>,
    pub blocked: Option<bool>,
    pub expires_before: Option<DateTime<Utc>>,
    /// Trials only (`Some(true)`) or no trials.
    pub trial: Option<bool>,
    /// Cursor: only licenses with a larger id.
    pub after: Option<i64>,
    pub limit: i64,
    /// Rows to skip (page-numbered listings); cursors are cheaper for deep pages.
    pub offset: i64,
}

/// The columns a new license is written with, in the order both inserts bind them.
const INSERTED: &str = "(key, product_id, plan_id, customer_id, created_at, updated_at, \
     expires_at, period_days, features, max_machines, floating_lease_seconds, trial, notes, \
     blocked, metadata, trial_activation, allowed_machines)";
pub(crate) const COLUMNS: &str =
    "id, key, product_id, plan_id, customer_id, created_at, updated_at, \
                       expires_at, period_days, features, max_machines, floating_lease_seconds, \
                       trial, notes, blocked, metadata, trial_activation, allowed_machines";

pub(crate) fn license(row: &AnyRow) -> Result<License> {
    Ok(License {
        id: row.try_get("id")?,
        key: row.try_get("key")?,
        product_id: row.try_get("product_id")?,
        plan_id: row.try_get("plan_id")?,
        customer_id: row.try_get("customer_id")?,
        created: from_db(row.try_get("created_at")?),
        updated: from_db(row.try_get("updated_at")?),
        expires: opt_from_db(row.try_get("expires_at")?),
        period_days: row.try_get("period_days")?,
        features: parse_json("licenses.features", &row.try_get::<String, _>("features")?)?,
        max_machines: row.try_get("max_machines")?,
        floating_lease_seconds: row.try_get("floating_lease_seconds")?,
        trial: row.try_get::<i64, _>("trial")? != 0,
        notes: row.try_get("notes")?,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        metadata: parse_json("licenses.metadata", &row.try_get::<String, _>("metadata")?)?,
        trial_activation: row.try_get::<i64, _>("trial_activation")? != 0,
        allowed_machines: parse_json(
            "licenses.allowed_machines",
            &row.try_get::<String, _>("allowed_machines")?,
        )?,
    })
}

enum Bind {
    Int(i64),
    Text(String),
}

impl Session {
    /// Inserts a license; `None` when its key is already taken, so the caller can draw another
    /// key without aborting the transaction (a failed INSERT would abort it on PostgreSQL).
    pub async fn insert_license(
        &mut self,
        l: &NewLicense,
        now: DateTime<Utc>,
    ) -> Result<Option<License>> {
        let row = sqlx::query(&format!(
            "INSERT INTO licenses {INSERTED} \
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (key) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(&l.key)
        .bind(l.product_id)
        .bind(l.plan_id)
        .bind(l.customer_id)
        .bind(to_db(now))
        .bind(l.expires.map(to_db))
        .bind(l.period_days)
        .bind(json_list(&l.features))
        .bind(l.max_machines)
        .bind(l.floating_lease_seconds)
        .bind(i64::from(l.trial))
        .bind(&l.notes)
        .bind(i64::from(l.blocked))
        .bind(l.metadata.to_string())
        .bind(i64::from(l.trial_activation))
        .bind(json_list(&l.allowed_machines))
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(license).transpose()
    }

    /// Which of `keys` are taken already.
    pub async fn existing_keys(&mut self, keys: &[String]) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(IMPORT_CHUNK) {
            let list = placeholders(1, chunk.len());
            let sql = format!("SELECT key FROM licenses WHERE key IN ({list})");
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for key in chunk {
                query = query.bind(key);
            }
            found.extend(query.fetch_all(self.conn()).await?);
        }
        Ok(found)
    }

    /// Inserts one license per key, all alike but for the key, with an audit entry each, in
    /// multi-row statements: the bulk path for keys issued elsewhere. A key that is taken fails
    /// the whole call with [`crate::StoreError::Conflict`]. Returns the new licenses' ids.
    pub async fn import_licenses(
        &mut self,
        template: &NewLicense,
        keys: &[String],
        actor: &str,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let features = json_list(&template.features);
        let allowed = json_list(&template.allowed_machines);
        let metadata = template.metadata.to_string();
        let details = details.to_string();
        let mut imported = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(IMPORT_CHUNK) {
            // $1..$15 are the columns every row shares; each row adds its key.
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(${}, $1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                        16 + i
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO licenses {INSERTED} VALUES {} RETURNING id",
                rows.join(", ")
            );
            let mut insert = sqlx::query_scalar::<_, i64>(&sql)
                .bind(template.product_id)
                .bind(template.plan_id)
                .bind(template.customer_id)
                .bind(to_db(now))
                .bind(template.expires.map(to_db))
                .bind(template.period_days)
                .bind(&features)
                .bind(template.max_machines)
                .bind(template.floating_lease_seconds)
                .bind(i64::from(template.trial))
                .bind(&template.notes)
                .bind(i64::from(template.blocked))
                .bind(&metadata)
                .bind(i64::from(template.trial_activation))
                .bind(&allowed);
            for key in chunk {
                insert = insert.bind(key);
            }
            let ids = insert.fetch_all(self.conn()).await?;
            let rows: Vec<String> = (0..ids.len())
                .map(|i| format!("(${}, $1, $2, 'imported', $3)", 4 + i))
                .collect();
            let sql = format!(
                "INSERT INTO license_events (license_id, at, actor, action, details) VALUES {}",
                rows.join(", ")
            );
            let mut events = sqlx::query(&sql)
                .bind(to_db(now))
                .bind(actor)
                .bind(&details);
            for id in &ids {
                events = events.bind(*id);
            }
            events.execute(self.conn()).await?;
            imported.extend(ids);
        }
        Ok(imported)
    }

    pub async fn license(&mut self, id: i64) -> Result<Option<License>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM licenses WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(license).transpose()
    }

    pub async fn license_by_key(&mut self, key: &str) -> Result<Option<License>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM licenses WHERE key = $1"))
            .bind(key)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(license).transpose()
    }

    /// Reads a license and holds it until commit, so no other transaction changes it (or its
    /// activations, which are only changed under this lock) meanwhile.
    pub async fn lock_license(&mut self, id: i64) -> Result<Option<License>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM licenses WHERE id = $1{}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(license).transpose()
    }

    pub async fn licenses(&mut self, f: &LicenseFilter) -> Result<Vec<License>> {
        let mut sql = format!("SELECT {COLUMNS} FROM licenses WHERE id > $1");
        let mut binds = vec![Bind::Int(f.after.unwrap_or(0))];
        let mut push = |clause: &str, value: Bind| {
            binds.push(value);
            sql.push_str(&clause.replace("{}", &format!("${}", binds.len())));
        };
        if let Some(p) = f.product_id {
            push(" AND product_id = {}", Bind::Int(p));
        }
        if let Some(c) = f.customer_id {
            push(" AND customer_id = {}", Bind::Int(c));
        }
        if let Some(e) = &f.email {
            push(
                " AND customer_id IN (SELECT id FROM customers WHERE email = {})",
                Bind::Text(e.clone()),
            );
        }
        if let Some(b) = f.blocked {
            push(" AND blocked = {}", Bind::Int(i64::from(b)));
        }
        if let Some(before) = f.expires_before {
            push(
                " AND expires_at IS NOT NULL AND expires_at < {}",
                Bind::Int(to_db(before)),
            );
        }
        if let Some(t) = f.trial {
            push(" AND trial = {}", Bind::Int(i64::from(t)));
        }
        push(" ORDER BY id LIMIT {}", Bind::Int(f.limit));
        push(" OFFSET {}", Bind::Int(f.offset.max(0)));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(self.conn()).await?;
        rows.iter().map(license).collect()
    }

    /// Writes every changeable field of `l` and stamps `updated`.
    pub async fn update_license(&mut self, l: &License, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE licenses SET customer_id = $1, updated_at = $2, expires_at = $3, \
             period_days = $4, features = $5, max_machines = $6, floating_lease_seconds = $7, \
             notes = $8, blocked = $9, metadata = $10, plan_id = $11, trial_activation = $12, \
             allowed_machines = $13 WHERE id = $14",
        )
        .bind(l.customer_id)
        .bind(to_db(now))
        .bind(l.expires.map(to_db))
        .bind(l.period_days)
        .bind(json_list(&l.features))
        .bind(l.max_machines)
        .bind(l.floating_lease_seconds)
        .bind(&l.notes)
        .bind(i64::from(l.blocked))
        .bind(l.metadata.to_string())
        .bind(l.plan_id)
        .bind(i64::from(l.trial_activation))
        .bind(json_list(&l.allowed_machines))
        .bind(l.id)
        .execute(self.conn())
        .await?;
        self.touch(Change::License(l.id));
        Ok(())
    }

    /// How many licenses a product has.
    pub async fn count_licenses(&mut self, product_id: i64) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM licenses WHERE product_id = $1")
            .bind(product_id)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn delete_license(&mut self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM licenses WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        self.touch(Change::License(id));
        Ok(done.rows_affected() > 0)
    }

    /// The license a machine already received as a trial of a product, if any.
    pub async fn trial_license(
        &mut self,
        product_id: i64,
        fingerprint: &str,
    ) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT license_id FROM trials WHERE product_id = $1 AND fingerprint = $2")
                .bind(product_id)
                .bind(fingerprint)
                .fetch_optional(self.conn())
                .await?;
        Ok(row.map(|r| r.try_get("license_id")).transpose()?)
    }

    /// Records a machine's trial; `false` when the machine already has one.
    pub async fn insert_trial(
        &mut self,
        product_id: i64,
        fingerprint: &str,
        license_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO trials (product_id, fingerprint, license_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (product_id, fingerprint) DO NOTHING",
        )
        .bind(product_id)
        .bind(fingerprint)
        .bind(license_id)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
