//! The dashboard's aggregations and the per-day usage counts behind them.
//!
//! Every aggregation is bounded by its window (a range over an index on the time column) and
//! grouped by day in SQL ([`Session::day_of`]), so a dashboard reads a few hundred grouped rows
//! however many licenses, payments or machines there are.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::time::to_db;
use crate::{Result, Session};

/// What the usage counters count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageKind {
    Validation,
    Activation,
}

impl UsageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageKind::Validation => "validation",
            UsageKind::Activation => "activation",
        }
    }
}

/// A count to add to one day's usage of one product and result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub day: i64,
    pub kind: UsageKind,
    /// 0 for a key that matched no license.
    pub product_id: i64,
    pub code: &'static str,
    pub count: i64,
}

/// Machines on the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCounts {
    /// Activations holding a seat now (node-locked, or a lease not lapsed).
    pub holding: i64,
    /// Activations whose program was last heard of within the window.
    pub seen: i64,
}

/// What needs someone's attention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attention {
    pub failed_events: i64,
    /// Mail not sent yet.
    pub unsent_mail: i64,
    /// Of those, mail whose last attempt failed.
    pub failing_mail: i64,
}

/// `AND <column> = $n` when limited to a product.
fn product_clause(column: &str, param: usize, product_id: Option<i64>) -> String {
    match product_id {
        Some(_) => format!(" AND {column} = ${param}"),
        None => String::new(),
    }
}

impl Session {
    /// New licenses per day from day `first_day` to day `last_day`: (day, count), a row for
    /// every day. Each day is its own count over a range of the `created_at` index (which
    /// holds everything the count needs), so no row is read and nothing is sorted: grouping
    /// the window's rows by a computed day instead would sort hundreds of thousands of them
    /// for a busy shop's 90 days.
    pub async fn licenses_created_per_day(
        &mut self,
        first_day: i64,
        last_day: i64,
        product_id: Option<i64>,
    ) -> Result<Vec<(i64, i64)>> {
        let sql = format!(
            "WITH RECURSIVE days (d) AS (SELECT CAST($1 AS BIGINT) UNION ALL \
               SELECT d + 1 FROM days WHERE d < $2) \
             SELECT d AS day, (SELECT COUNT(*) FROM licenses \
               WHERE created_at >= d * 86400000 AND created_at < (d + 1) * 86400000{}) AS n \
             FROM days",
            product_clause("product_id", 3, product_id)
        );
        let mut q = sqlx::query(&sql).bind(first_day).bind(last_day);
        if let Some(p) = product_id {
            q = q.bind(p);
        }
        let rows = q.fetch_all(self.conn()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("day")?, r.try_get("n")?)))
            .collect()
    }

    /// Licenses that expire in `[from, to)` per day, blocked ones left out: (day, count).
    pub async fn licenses_expiring_per_day(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        product_id: Option<i64>,
    ) -> Result<Vec<(i64, i64)>> {
        let day = self.day_of("expires_at");
        let sql = format!(
            "SELECT {day} AS day, COUNT(*) AS n FROM licenses \
             WHERE expires_at >= $1 AND expires_at < $2 AND blocked = 0{} GROUP BY {day}",
            product_clause("product_id", 3, product_id)
        );
        let mut q = sqlx::query(&sql).bind(to_db(from)).bind(to_db(to));
        if let Some(p) = product_id {
            q = q.bind(p);
        }
        let rows = q.fetch_all(self.conn()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("day")?, r.try_get("n")?)))
            .collect()
    }

    /// Money received per day in `[from, to)`, by provider and currency: payments that are
    /// paid now (refunded and disputed ones no longer count), in minor units.
    pub async fn revenue_per_day(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(i64, String, String, i64)>> {
        let day = self.day_of("created_at");
        // SUM of a BIGINT is NUMERIC on PostgreSQL: cast back to a 64-bit integer.
        let sql = format!(
            "SELECT {day} AS day, provider, currency, CAST(SUM(amount) AS BIGINT) AS total \
             FROM payments WHERE created_at >= $1 AND created_at < $2 AND status = 'paid' \
             AND amount IS NOT NULL AND currency IS NOT NULL \
             GROUP BY {day}, provider, currency"
        );
        let rows = sqlx::query(&sql)
            .bind(to_db(from))
            .bind(to_db(to))
            .fetch_all(self.conn())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("day")?,
                    r.try_get("provider")?,
                    r.try_get("currency")?,
                    r.try_get("total")?,
                ))
            })
            .collect()
    }

    /// Usage counts of `kind` per day from day `from_day` on, by result code: (day, code,
    /// count). Limited to a product, keys that matched no license are not counted.
    pub async fn usage_per_day(
        &mut self,
        kind: UsageKind,
        from_day: i64,
        product_id: Option<i64>,
    ) -> Result<Vec<(i64, String, i64)>> {
        let sql = format!(
            "SELECT day, code, CAST(SUM(count) AS BIGINT) AS n FROM usage_daily \
             WHERE day >= $1 AND kind = $2{} GROUP BY day, code",
            product_clause("product_id", 3, product_id)
        );
        let mut q = sqlx::query(&sql).bind(from_day).bind(kind.as_str());
        if let Some(p) = product_id {
            q = q.bind(p);
        }
        let rows = q.fetch_all(self.conn()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("day")?, r.try_get("code")?, r.try_get("n")?)))
            .collect()
    }

    /// Adds counts to the day's usage (every node adds its own; the sum is the count).
    pub async fn add_usage(&mut self, counts: &[UsageCount]) -> Result<()> {
        for c in counts {
            sqlx::query(
                "INSERT INTO usage_daily (day, kind, product_id, code, count) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (day, kind, product_id, code) \
                 DO UPDATE SET count = usage_daily.count + excluded.count",
            )
            .bind(c.day)
            .bind(c.kind.as_str())
            .bind(c.product_id)
            .bind(c.code)
            .bind(c.count)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }

    /// Machines holding a seat at `now`, and machines heard of since `since`.
    pub async fn machine_counts(
        &mut self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        product_id: Option<i64>,
    ) -> Result<MachineCounts> {
        let (from, product) = match product_id {
            Some(_) => (
                "activations a JOIN licenses l ON l.id = a.license_id",
                " AND l.product_id = $3",
            ),
            None => ("activations a", ""),
        };
        let sql = format!(
            "SELECT \
               (SELECT COUNT(*) FROM {from} WHERE (a.lease_expires_at IS NULL OR a.lease_expires_at > $1){product}) AS holding, \
               (SELECT COUNT(*) FROM {from} WHERE a.last_seen_at >= $2{product}) AS seen"
        );
        let mut q = sqlx::query(&sql).bind(to_db(now)).bind(to_db(since));
        if let Some(p) = product_id {
            q = q.bind(p);
        }
        let row = q.fetch_one(self.conn()).await?;
        Ok(MachineCounts {
            holding: row.try_get("holding")?,
            seen: row.try_get("seen")?,
        })
    }

    /// Provider events that failed, and mail not yet sent.
    pub async fn attention(&mut self) -> Result<Attention> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM provider_events WHERE status = 'failed') AS failed_events, \
               (SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL) AS unsent_mail, \
               (SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND last_error IS NOT NULL) AS failing_mail",
        )
        .fetch_one(self.conn())
        .await?;
        Ok(Attention {
            failed_events: row.try_get("failed_events")?,
            unsent_mail: row.try_get("unsent_mail")?,
            failing_mail: row.try_get("failing_mail")?,
        })
    }
}
