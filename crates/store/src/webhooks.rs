//! Outgoing webhooks: endpoints, the events written with the changes they report, one delivery
//! per (event, endpoint), the log of attempts, and the sweeps' bookkeeping.
//!
//! Order per license: a delivery is written due (`next_attempt_at` set) only when its
//! (endpoint, license) has no pending delivery yet; otherwise it waits (`NULL`) and is made due
//! when the one before it finishes. So the due set stays small however long an endpoint is down,
//! and the claim never hands out a newer delivery while an older one of its license is pending
//! (checked again in the claim, for deliveries that raced to be first).

use chrono::{DateTime, Utc};
use keyturn_core::webhook::{DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{json_list, parse_json, Result, Session, StoreError};

const ENDPOINT_COLUMNS: &str =
    "id, url, description, events, product_id, enabled, disabled_reason, \
     failing_since, previous_secret_until, created_at, updated_at";

fn endpoint(row: &AnyRow) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: parse_json(
            "webhook_endpoints.events",
            &row.try_get::<String, _>("events")?,
        )?,
        product_id: row.try_get("product_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: row.try_get("disabled_reason")?,
        failing_since: opt_from_db(row.try_get("failing_since")?),
        previous_secret_until: opt_from_db(row.try_get("previous_secret_until")?),
        created: from_db(row.try_get("created_at")?),
        updated: from_db(row.try_get("updated_at")?),
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, v.public_id, v.type, d.license_id, d.state, \
     d.attempts, d.next_attempt_at, d.first_attempt_at, d.finished_at, d.last_status, d.last_error, \
     d.created_at";

fn delivery(row: &AnyRow) -> Result<WebhookDelivery> {
    let state: String = row.try_get("state")?;
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_id: row.try_get("public_id")?,
        event_type: row.try_get("type")?,
        license_id: row.try_get("license_id")?,
        state: DeliveryState::parse(&state).ok_or_else(|| {
            StoreError::Corrupt(format!("webhook_deliveries.state holds {state:?}"))
        })?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: opt_from_db(row.try_get("next_attempt_at")?),
        first_attempt_at: opt_from_db(row.try_get("first_attempt_at")?),
        finished_at: opt_from_db(row.try_get("finished_at")?),
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created: from_db(row.try_get("created_at")?),
    })
}

fn attempt(r: &AnyRow) -> Result<WebhookAttempt> {
    Ok(WebhookAttempt {
        id: r.try_get("id")?,
        delivery_id: r.try_get("delivery_id")?,
        at: from_db(r.try_get("at")?),
        status: r.try_get("status")?,
        error: r.try_get("error")?,
        latency_ms: r.try_get("latency_ms")?,
        response: r.try_get("response")?,
        node: r.try_get("node")?,
    })
}

/// An endpoint's signing secrets as stored (sealed when a master key is configured).
#[derive(Clone)]
pub struct StoredSecrets {
    pub current: String,
    /// The secret a rotation replaced, while it still signs.
    pub previous: Option<(String, DateTime<Utc>)>,
}

impl std::fmt::Debug for StoredSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredSecrets(…)")
    }
}

fn secrets(row: &AnyRow) -> Result<StoredSecrets> {
    let previous: Option<String> = row.try_get("previous_secret")?;
    let until = opt_from_db(row.try_get("previous_secret_until")?);
    Ok(StoredSecrets {
        current: row.try_get("secret")?,
        previous: previous.zip(until),
    })
}

/// What an endpoint is, to be written.
#[derive(Debug, Clone)]
pub struct EndpointFields {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub product_id: Option<i64>,
    pub enabled: bool,
}

/// An enabled endpoint as the fan-out needs it.
#[derive(Debug, Clone)]
pub struct EndpointTarget {
    pub id: i64,
    pub events: Vec<String>,
    pub product_id: Option<i64>,
}

/// A delivery leased for one attempt, with what the attempt sends.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub license_id: Option<i64>,
    pub url: String,
    pub secrets: StoredSecrets,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// The lease's token: the attempt's result counts only while it holds.
    pub claim: String,
}

/// What an attempt found, and what becomes of the delivery.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub delivery: &'a ClaimedDelivery,
    pub at: DateTime<Utc>,
    pub status: Option<i64>,
    pub error: Option<&'a str>,
    pub latency_ms: i64,
    pub response: &'a str,
    pub node: &'a str,
    pub next: NextStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// No attempts left.
    Failed,
}

/// How an endpoint has been doing, for the console's list of endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointActivity {
    pub endpoint_id: i64,
    /// Its newest delivery: state, last HTTP status, when it finished (or was written).
    pub last: Option<(DeliveryState, Option<i64>, DateTime<Utc>)>,
    /// Deliveries that had all their attempts and failed.
    pub failed: i64,
    pub pending: i64,
}

/// A lifecycle sweep's position: everything up to (`at`, `id`) is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepMark {
    pub at: DateTime<Utc>,
    pub id: i64,
}

impl Session {
    /// The enabled endpoints, for matching an event against them in the transaction that
    /// writes it (a handful of rows, read by primary key order).
    pub async fn webhook_targets(&mut self) -> Result<Vec<EndpointTarget>> {
        let rows =
            sqlx::query("SELECT id, events, product_id FROM webhook_endpoints WHERE enabled = 1")
                .fetch_all(self.conn())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(EndpointTarget {
                    id: r.try_get("id")?,
                    events: parse_json(
                        "webhook_endpoints.events",
                        &r.try_get::<String, _>("events")?,
                    )?,
                    product_id: r.try_get("product_id")?,
                })
            })
            .collect()
    }

    /// Writes an event and its deliveries to `endpoints`; returns the event's row id.
    pub async fn insert_webhook_event(
        &mut self,
        public_id: &str,
        event_type: &str,
        license_id: Option<i64>,
        body: &str,
        endpoints: &[i64],
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let event: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_events (public_id, type, license_id, created_at, body) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(public_id)
        .bind(event_type)
        .bind(license_id)
        .bind(to_db(now))
        .bind(body)
        .fetch_one(self.conn())
        .await?;
        for endpoint in endpoints {
            match license_id {
                // Due at once unless an earlier delivery of this license is still pending.
                Some(license) => {
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (endpoint_id, event_id, license_id, state, \
                         attempts, next_attempt_at, created_at) \
                         SELECT $1, $2, $3, 'pending', 0, CASE WHEN EXISTS (SELECT 1 FROM \
                         webhook_deliveries o WHERE o.endpoint_id = $1 AND o.license_id = $3 \
                         AND o.state = 'pending') THEN NULL ELSE $4 END, $4",
                    )
                    .bind(endpoint)
                    .bind(event)
                    .bind(license)
                    .bind(to_db(now))
                    .execute(self.conn())
                    .await?;
                }
                None => {
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (endpoint_id, event_id, state, attempts, \
                         next_attempt_at, created_at) VALUES ($1, $2, 'pending', 0, $3, $3)",
                    )
                    .bind(endpoint)
                    .bind(event)
                    .bind(to_db(now))
                    .execute(self.conn())
                    .await?;
                }
            }
        }
        Ok(event)
    }

    /// Leases up to `limit` due deliveries until `lease_until` under `claim`, oldest due first,
    /// at most `per_endpoint` in flight per endpoint across all nodes (so an endpoint that hangs
    /// holds only that many), never a delivery with an older pending one of its license.
    ///
    /// Its cost is a few index reads per enabled endpoint plus the rows it claims, however many
    /// deliveries are queued: a backlog of thousands must not slow every claim down (one query
    /// ranking the whole due set, with a count per row, once delivered a few events a second).
    pub async fn claim_webhook_deliveries(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        per_endpoint: i64,
        claim: &str,
    ) -> Result<Vec<ClaimedDelivery>> {
        // Claims from every node take turns (PostgreSQL; SQLite's write transaction is already
        // alone), so what one counts as in flight below is what the others have committed.
        self.lock_name("webhook deliveries claim").await?;
        // In flight per endpoint, counted once: the leased deliveries are at most `per_endpoint`
        // per endpoint, found through webhook_deliveries_leased whatever the backlog.
        let busy_rows = sqlx::query(
            "SELECT endpoint_id, COUNT(*) AS n FROM webhook_deliveries \
             WHERE state = 'pending' AND claimed_until >= $1 GROUP BY endpoint_id",
        )
        .bind(to_db(now))
        .fetch_all(self.conn())
        .await?;
        let mut busy = std::collections::HashMap::new();
        for r in &busy_rows {
            busy.insert(
                r.try_get::<i64, _>("endpoint_id")?,
                r.try_get::<i64, _>("n")?,
            );
        }
        let endpoints: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM webhook_endpoints WHERE enabled = 1 ORDER BY id")
                .fetch_all(self.conn())
                .await?;
        // Each endpoint offers only as many of its oldest due deliveries as it has room for,
        // read in due order from webhook_deliveries_ready: a backlog costs nothing beyond them.
        // Only the head of a license's chain qualifies; the others normally wait undue, and the
        // check catches the ones that raced to be first.
        let mut candidates: Vec<(i64, i64)> = Vec::new();
        for endpoint in endpoints {
            let room = per_endpoint
                .saturating_sub(busy.get(&endpoint).copied().unwrap_or(0))
                .min(limit);
            if room <= 0 {
                continue;
            }
            let rows = sqlx::query(
                "SELECT d.id, d.next_attempt_at FROM webhook_deliveries d \
                 WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2 \
                 AND (d.claimed_until IS NULL OR d.claimed_until < $2) \
                 AND (d.license_id IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries o \
                   WHERE o.endpoint_id = d.endpoint_id AND o.license_id = d.license_id \
                   AND o.state = 'pending' AND o.id < d.id)) \
                 ORDER BY d.next_attempt_at, d.id LIMIT $3",
            )
            .bind(endpoint)
            .bind(to_db(now))
            .bind(room)
            .fetch_all(self.conn())
            .await?;
            for r in &rows {
                let due: Option<i64> = r.try_get("next_attempt_at")?;
                candidates.push((due.unwrap_or(0), r.try_get("id")?));
            }
        }
        // Oldest due first across endpoints, as many as asked.
        candidates.sort_unstable();
        candidates.truncate(usize::try_from(limit.max(0)).unwrap_or(0));
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let list = candidates
            .iter()
            .map(|(_, id)| id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE webhook_deliveries SET claimed_until = $1, claim = $3 \
             WHERE id IN ({list}) AND state = 'pending' \
             AND (claimed_until IS NULL OR claimed_until < $2) RETURNING id"
        ))
        .bind(to_db(lease_until))
        .bind(to_db(now))
        .bind(claim)
        .fetch_all(self.conn())
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT d.id, d.endpoint_id, d.license_id, d.attempts, d.first_attempt_at, d.claim, \
             e.url, e.secret, e.previous_secret, e.previous_secret_until, v.public_id, v.type, v.body \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN webhook_events v ON v.id = d.event_id WHERE d.id IN ({list}) ORDER BY d.id"
        ))
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedDelivery {
                    id: r.try_get("id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    license_id: r.try_get("license_id")?,
                    url: r.try_get("url")?,
                    secrets: secrets(r)?,
                    event_id: r.try_get("public_id")?,
                    event_type: r.try_get("type")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                    first_attempt_at: opt_from_db(r.try_get("first_attempt_at")?),
                    claim: r.try_get::<Option<String>, _>("claim")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Logs an attempt and, while its lease holds, moves the delivery on: delivered, due again
    /// later, or failed; a finished delivery makes the next one of its license due. Returns
    /// whether the lease held (a result that comes after the lease ran out is only logged: the
    /// delivery is another attempt's now).
    pub async fn record_webhook_attempt(&mut self, a: &AttemptRecord<'_>) -> Result<bool> {
        let d = a.delivery;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, at, status, error, latency_ms, response, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(d.id)
        .bind(to_db(a.at))
        .bind(a.status)
        .bind(a.error)
        .bind(a.latency_ms)
        .bind(a.response)
        .bind(a.node)
        .execute(self.conn())
        .await?;
        let (state, next, finished) = match a.next {
            NextStep::Delivered => (DeliveryState::Delivered, None, Some(a.at)),
            NextStep::RetryAt(at) => (DeliveryState::Pending, Some(at), None),
            NextStep::Failed => (DeliveryState::Failed, None, Some(a.at)),
        };
        let held = sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
             claimed_until = NULL, claim = NULL, first_attempt_at = COALESCE(first_attempt_at, $3), \
             finished_at = $4, last_status = $5, last_error = $6 \
             WHERE id = $7 AND claim = $8 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(next.map(to_db))
        .bind(to_db(a.at))
        .bind(finished.map(to_db))
        .bind(a.status)
        .bind(a.error)
        .bind(d.id)
        .bind(&d.claim)
        .execute(self.conn())
        .await?
        .rows_affected()
            == 1;
        if !held {
            return Ok(false);
        }
        if let (Some(license), Some(at)) = (d.license_id, finished) {
            self.next_webhook_turn(d.endpoint_id, license, at).await?;
        }
        let failing = match a.next {
            NextStep::Delivered => {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1")
                    .bind(d.endpoint_id)
            }
            _ => sqlx::query(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1",
            )
            .bind(d.endpoint_id)
            .bind(to_db(a.at)),
        };
        failing.execute(self.conn()).await?;
        Ok(true)
    }

    /// Makes the oldest waiting delivery of (endpoint, license) due at `at`.
    async fn next_webhook_turn(
        &mut self,
        endpoint_id: i64,
        license_id: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $3 WHERE id = \
             (SELECT MIN(id) FROM webhook_deliveries WHERE endpoint_id = $1 AND license_id = $2 \
              AND state = 'pending' AND next_attempt_at IS NULL)",
        )
        .bind(endpoint_id)
        .bind(license_id)
        .bind(to_db(at))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Makes due every waiting delivery that no longer has an older pending one of its
    /// license, and returns how many. The turn is normally passed on when a delivery finishes
    /// ([`Session::record_webhook_attempt`]); on PostgreSQL a delivery written while the one
    /// before it was finishing can miss it (neither transaction sees the other's row), and this
    /// catches it.
    /// Whether any delivery may be due for an attempt or waits for its turn: the delivery
    /// worker asks this on a read before it takes the write lock, so an idle outbox costs the
    /// writers nothing (and a commit failing on purpose in a test is never the worker's).
    pub async fn webhook_work_waiting(&mut self, now: DateTime<Utc>) -> Result<bool> {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_deliveries WHERE state = 'pending' \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $1) LIMIT 1) AS w",
        )
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        Ok(waiting > 0)
    }

    pub async fn repair_webhook_turns(&mut self, now: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE state = 'pending' \
             AND next_attempt_at IS NULL AND NOT EXISTS (SELECT 1 FROM webhook_deliveries o \
             WHERE o.endpoint_id = webhook_deliveries.endpoint_id \
             AND o.license_id = webhook_deliveries.license_id AND o.state = 'pending' \
             AND o.id < webhook_deliveries.id)",
        )
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn insert_webhook_endpoint(
        &mut self,
        f: &EndpointFields,
        now: DateTime<Utc>,
    ) -> Result<WebhookEndpoint> {
        let row = sqlx::query(&format!(
            "INSERT INTO webhook_endpoints (url, description, events, product_id, enabled, secret, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, '', $6, $6) \
             RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(&f.url)
        .bind(&f.description)
        .bind(json_list(&f.events))
        .bind(f.product_id)
        .bind(i64::from(f.enabled))
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        endpoint(&row)
    }

    /// Replaces an endpoint's secret; with `previous`, the old one keeps signing until then.
    pub async fn set_webhook_secret(
        &mut self,
        id: i64,
        secret: &str,
        previous: Option<(&str, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2, \
             previous_secret_until = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(secret)
        .bind(previous.map(|(s, _)| s))
        .bind(previous.map(|(_, until)| to_db(until)))
        .bind(to_db(now))
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores secrets anew as they are (resealing), without touching anything else.
    pub async fn restore_webhook_secrets(
        &mut self,
        id: i64,
        current: &str,
        previous: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_endpoints SET secret = $1, previous_secret = COALESCE($2, previous_secret) \
             WHERE id = $3",
        )
        .bind(current)
        .bind(previous)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn webhook_endpoint(&mut self, id: i64) -> Result<Option<WebhookEndpoint>> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(endpoint).transpose()
    }

    /// An endpoint's stored secrets.
    pub async fn webhook_secrets(&mut self, id: i64) -> Result<Option<StoredSecrets>> {
        let row = sqlx::query(
            "SELECT secret, previous_secret, previous_secret_until FROM webhook_endpoints WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(secrets).transpose()
    }

    /// Every endpoint's stored secrets, for resealing.
    pub async fn all_webhook_secrets(&mut self) -> Result<Vec<(i64, StoredSecrets)>> {
        let rows = sqlx::query(
            "SELECT id, secret, previous_secret, previous_secret_until FROM webhook_endpoints ORDER BY id",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, secrets(r)?)))
            .collect()
    }

    pub async fn webhook_endpoints(
        &mut self,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WebhookEndpoint>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(endpoint).collect()
    }

    /// Saves an endpoint's settings; enabling it again clears why it was disabled and its
    /// failure streak.
    pub async fn update_webhook_endpoint(
        &mut self,
        id: i64,
        f: &EndpointFields,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>> {
        let row = sqlx::query(&format!(
            "UPDATE webhook_endpoints SET url = $1, description = $2, events = $3, product_id = $4, \
             disabled_reason = CASE WHEN $5 = 1 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $5 = 1 AND enabled = 0 THEN NULL ELSE failing_since END, \
             enabled = $5, updated_at = $6 WHERE id = $7 RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(&f.url)
        .bind(&f.description)
        .bind(json_list(&f.events))
        .bind(f.product_id)
        .bind(i64::from(f.enabled))
        .bind(to_db(now))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(endpoint).transpose()
    }

    /// Disables an endpoint, saying why; `false` if it was disabled already.
    pub async fn disable_webhook_endpoint(
        &mut self,
        id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 \
             WHERE id = $3 AND enabled = 1",
        )
        .bind(reason)
        .bind(to_db(now))
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes an endpoint with its deliveries and their log.
    pub async fn delete_webhook_endpoint(&mut self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// An endpoint's deliveries, newest first, after the cursor `before` (an id).
    pub async fn webhook_deliveries(
        &mut self,
        endpoint_id: i64,
        state: Option<DeliveryState>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WebhookDelivery>> {
        let filter = if state.is_some() {
            "AND d.state = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
             JOIN webhook_events v ON v.id = d.event_id \
             WHERE d.endpoint_id = $1 AND d.id < $2 {filter} ORDER BY d.id DESC LIMIT $3"
        );
        let mut query = sqlx::query(&sql)
            .bind(endpoint_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit);
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        let rows = query.fetch_all(self.conn()).await?;
        rows.iter().map(delivery).collect()
    }

    pub async fn webhook_delivery(&mut self, id: i64) -> Result<Option<WebhookDelivery>> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
             JOIN webhook_events v ON v.id = d.event_id WHERE d.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(delivery).transpose()
    }

    /// The event a delivery sends, as sent.
    pub async fn webhook_delivery_body(&mut self, id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT v.body FROM webhook_deliveries d JOIN webhook_events v ON v.id = d.event_id \
             WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(self.conn())
        .await?)
    }

    /// How each of `ids` has been doing: two short index reads per endpoint (a page of them).
    pub async fn webhook_endpoint_activity(
        &mut self,
        ids: &[i64],
    ) -> Result<Vec<EndpointActivity>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let last = sqlx::query(
                "SELECT state, last_status, COALESCE(finished_at, created_at) AS at \
                 FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
            let last = match last {
                Some(r) => {
                    let state: String = r.try_get("state")?;
                    let state = DeliveryState::parse(&state).ok_or_else(|| {
                        StoreError::Corrupt(format!("webhook_deliveries.state holds {state:?}"))
                    })?;
                    Some((state, r.try_get("last_status")?, from_db(r.try_get("at")?)))
                }
                None => None,
            };
            let count = |state: &'static str| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND state = $2",
                )
                .bind(id)
                .bind(state)
            };
            let failed = count("failed").fetch_one(self.conn()).await?;
            let pending = count("pending").fetch_one(self.conn()).await?;
            out.push(EndpointActivity {
                endpoint_id: id,
                last,
                failed,
                pending,
            });
        }
        Ok(out)
    }

    /// The newest attempt of each of `deliveries` (those that had one).
    pub async fn last_webhook_attempts(
        &mut self,
        deliveries: &[i64],
    ) -> Result<Vec<WebhookAttempt>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let list = deliveries
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT id, delivery_id, at, status, error, latency_ms, response, node \
             FROM webhook_attempts WHERE id IN (SELECT MAX(id) FROM webhook_attempts \
             WHERE delivery_id IN ({list}) GROUP BY delivery_id)"
        ))
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(attempt).collect()
    }

    /// A delivery's attempts, oldest first (at most `limit`).
    pub async fn webhook_attempts(
        &mut self,
        delivery_id: i64,
        limit: i64,
    ) -> Result<Vec<WebhookAttempt>> {
        let rows = sqlx::query(
            "SELECT id, delivery_id, at, status, error, latency_ms, response, node \
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id LIMIT $2",
        )
        .bind(delivery_id)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(attempt).collect()
    }

    /// Makes a finished delivery pending and due at `now` (one more attempt), or a pending one
    /// that is not waiting for its turn due now. `false` when it waits for an older delivery.
    pub async fn retry_webhook_delivery(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, finished_at = NULL \
             WHERE id = $2 AND NOT (state = 'pending' AND next_attempt_at IS NULL)",
        )
        .bind(to_db(now))
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes every delivery of an endpoint that failed for good at or after `since` pending
    /// again, due now; returns how many.
    pub async fn retry_failed_webhook_deliveries(
        &mut self,
        endpoint_id: i64,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, finished_at = NULL \
             WHERE endpoint_id = $2 AND state = 'failed' AND finished_at >= $3",
        )
        .bind(to_db(now))
        .bind(endpoint_id)
        .bind(to_db(since))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Since when an endpoint has failed every attempt (none if it has not).
    pub async fn webhook_failing_since(&mut self, id: i64) -> Result<Option<DateTime<Utc>>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT failing_since FROM webhook_endpoints WHERE id = $1")
                .bind(id)
                .fetch_optional(self.conn())
                .await?;
        Ok(opt_from_db(at.flatten()))
    }

    /// Deliveries waiting for an attempt or their turn.
    pub async fn pending_webhook_deliveries(&mut self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
                .fetch_one(self.conn())
                .await?,
        )
    }

    /// Leases the lifecycle sweep named `name` until `lease_until` and returns how far it got
    /// (`None`: another node holds it). A sweep seen for the first time starts at `now`: what
    /// expired before Keyturn had webhooks is not announced.
    pub async fn claim_webhook_sweep(
        &mut self,
        name: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SweepMark>> {
        sqlx::query(
            "INSERT INTO webhook_sweeps (name, done_until, done_id) VALUES ($1, $2, 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        let row = sqlx::query(
            "UPDATE webhook_sweeps SET claimed_until = $1 WHERE name = $2 \
             AND (claimed_until IS NULL OR claimed_until < $3) RETURNING done_until, done_id",
        )
        .bind(to_db(lease_until))
        .bind(name)
        .bind(to_db(now))
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(SweepMark {
                at: from_db(r.try_get("done_until")?),
                id: r.try_get("done_id")?,
            })
        })
        .transpose()
    }

    /// Records how far a sweep got and lets go of its lease.
    pub async fn finish_webhook_sweep(&mut self, name: &str, mark: SweepMark) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_sweeps SET done_until = $1, done_id = $2, claimed_until = NULL \
             WHERE name = $3",
        )
        .bind(to_db(mark.at))
        .bind(mark.id)
        .bind(name)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Licenses whose expiry lies after `from` (by expiry, then id) and at or before `until`,
    /// in that order: (id, expiry).
    pub async fn licenses_expiring_between(
        &mut self,
        from: SweepMark,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT id, expires_at FROM licenses WHERE expires_at >= $1 AND expires_at <= $3 \
             AND (expires_at > $1 OR id > $2) ORDER BY expires_at, id LIMIT $4",
        )
        .bind(to_db(from.at))
        .bind(from.id)
        .bind(to_db(until))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, from_db(r.try_get("expires_at")?))))
            .collect()
    }

    /// Licenses that expire after `now` and by `until` whose notice of `kind` for that expiry
    /// has not been written: (id, expiry).
    pub async fn licenses_expiring_unnoticed(
        &mut self,
        kind: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT l.id, l.expires_at FROM licenses l WHERE l.expires_at > $1 AND l.expires_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM webhook_notices n WHERE n.kind = $3 \
             AND n.object_id = l.id AND n.at = l.expires_at) ORDER BY l.expires_at, l.id LIMIT $4",
        )
        .bind(to_db(now))
        .bind(to_db(until))
        .bind(kind)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, from_db(r.try_get("expires_at")?))))
            .collect()
    }

    /// Floating activations whose lease ended after `from` and at or before `until`, in that
    /// order: (activation id, lease end).
    pub async fn leases_lapsed_between(
        &mut self,
        from: SweepMark,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT id, lease_expires_at FROM activations WHERE lease_expires_at IS NOT NULL \
             AND lease_expires_at >= $1 AND lease_expires_at <= $3 \
             AND (lease_expires_at > $1 OR id > $2) ORDER BY lease_expires_at, id LIMIT $4",
        )
        .bind(to_db(from.at))
        .bind(from.id)
        .bind(to_db(until))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, from_db(r.try_get("lease_expires_at")?))))
            .collect()
    }

    /// Notes that the notice of `kind` about `object_id` at `at` is written; `false` if it was
    /// already (by another sweep, or by the change that removed the object).
    pub async fn insert_webhook_notice(
        &mut self,
        kind: &str,
        object_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_notices (kind, object_id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (kind, object_id, at) DO NOTHING",
        )
        .bind(kind)
        .bind(object_id)
        .bind(to_db(at))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets finished deliveries, their attempts and events, and notices, older than
    /// `cutoff`, at most `limit` of each; returns how many deliveries went.
    pub async fn prune_webhooks(&mut self, cutoff: DateTime<Utc>, limit: i64) -> Result<u64> {
        let cutoff = to_db(cutoff);
        let gone = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE finished_at < $1 AND state <> 'pending' ORDER BY finished_at LIMIT $2)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(self.conn())
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM webhook_events WHERE id IN (SELECT v.id FROM webhook_events v \
             WHERE v.created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
             WHERE d.event_id = v.id) ORDER BY v.created_at LIMIT $2)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(self.conn())
        .await?;
        sqlx::query("DELETE FROM webhook_notices WHERE at < $1")
            .bind(cutoff)
            .execute(self.conn())
            .await?;
        Ok(gone)
    }

    /// The addresses of the console's owners, who hear when an endpoint is disabled.
    pub async fn owner_emails(&mut self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT email FROM console_users WHERE role = 'owner' AND disabled_at IS NULL ORDER BY id",
        )
        .fetch_all(self.conn())
        .await?)
    }
}
