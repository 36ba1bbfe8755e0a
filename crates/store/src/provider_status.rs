//! What the console's provider status page reads: per provider, the newest event received,
//! its failed events, and the deliveries refused before anything was recorded. Each figure
//! is one index range (see the `0017_console_setup` migration), never a scan of the events.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{Result, Session};

/// A provider's events as the status page counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderActivity {
    /// When the newest event (of any outcome) arrived.
    pub last_received: Option<DateTime<Utc>>,
    /// Events kept as failed (applying them went wrong), and when the newest of them arrived.
    pub failed: i64,
    pub last_failed: Option<DateTime<Utc>>,
}

/// Deliveries of one provider refused for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalCount {
    pub provider: String,
    /// `bad_signature` or `not_configured`.
    pub reason: String,
    pub count: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub last_detail: String,
}

impl Session {
    pub async fn provider_activity(&mut self, provider: &str) -> Result<ProviderActivity> {
        let last = sqlx::query(
            "SELECT MAX(received_at) AS latest FROM provider_events WHERE provider = $1",
        )
        .bind(provider)
        .fetch_one(self.conn())
        .await?;
        let failed = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(received_at) AS latest FROM provider_events \
             WHERE provider = $1 AND status = 'failed'",
        )
        .bind(provider)
        .fetch_one(self.conn())
        .await?;
        Ok(ProviderActivity {
            last_received: opt_from_db(last.try_get("latest")?),
            failed: failed.try_get("n")?,
            last_failed: opt_from_db(failed.try_get("latest")?),
        })
    }

    /// Counts one refused delivery: a single row per provider and reason, so a flood of
    /// forged requests costs an update each and no space.
    pub async fn count_refusal(
        &mut self,
        provider: &str,
        reason: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_refusals (provider, reason, count, first_at, last_at, last_detail) \
             VALUES ($1, $2, 1, $3, $3, $4) ON CONFLICT (provider, reason) DO UPDATE SET \
             count = webhook_refusals.count + 1, last_at = excluded.last_at, \
             last_detail = excluded.last_detail",
        )
        .bind(provider)
        .bind(reason)
        .bind(to_db(now))
        .bind(detail)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Every provider's refusals (a handful of rows: one per provider and reason).
    pub async fn refusal_counts(&mut self) -> Result<Vec<RefusalCount>> {
        let rows = sqlx::query(
            "SELECT provider, reason, count, first_at, last_at, last_detail FROM webhook_refusals \
             ORDER BY provider, reason",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RefusalCount {
                    provider: r.try_get("provider")?,
                    reason: r.try_get("reason")?,
                    count: r.try_get("count")?,
                    first_at: from_db(r.try_get("first_at")?),
                    last_at: from_db(r.try_get("last_at")?),
                    last_detail: r.try_get("last_detail")?,
                })
            })
            .collect()
    }
}
