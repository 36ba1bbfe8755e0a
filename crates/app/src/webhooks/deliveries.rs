//! The delivery side: leasing due deliveries to the worker of one node, and recording what each
//! attempt found. The HTTP request itself is the worker's (the `keyturn` binary's), which keeps
//! this crate free of network code; the rules (retry schedule, when an endpoint is disabled)
//! are `keyturn_core::webhook`'s.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_core::webhook::{response_head, retry_delay, should_disable};
use keyturn_store::{AttemptRecord, ClaimedDelivery, NextStep, Session};
use rand::Rng;

use crate::{now, App, Result};

/// A delivery leased for one attempt, with the secrets that sign it (opened).
#[derive(Clone)]
pub struct Outgoing {
    pub delivery: ClaimedDelivery,
    /// The current secret first, then the one a rotation replaced while its overlap lasts.
    /// Empty when the stored secret does not open (the attempt fails with that reason).
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("delivery", &self.delivery.id)
            .field("event", &self.delivery.event_id)
            .finish_non_exhaustive()
    }
}

/// What one attempt found.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery: ClaimedDelivery,
    pub at: DateTime<Utc>,
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// Why it failed, if it did (no answer, a refused address…); a non-2xx status fails too.
    pub error: Option<String>,
    pub latency: Duration,
    /// The first bytes of the answer.
    pub response: Vec<u8>,
}

impl AttemptResult {
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

const DISABLED_SUBJECT: &str = "Keyturn disabled a webhook endpoint";

impl App {
    /// Leases up to `limit` due deliveries to this node for `lease` (which must outlast the
    /// request timeout), at most `per_endpoint` in flight per endpoint across all nodes.
    pub async fn claim_webhooks(
        &self,
        limit: i64,
        per_endpoint: i64,
        lease: Duration,
    ) -> Result<Vec<Outgoing>> {
        let at = now();
        let until = at + chrono::Duration::from_std(lease).unwrap_or_default();
        if !self.store.read().await?.webhook_work_waiting(at).await? {
            return Ok(Vec::new());
        }
        let claim = format!("{:016x}", rand::thread_rng().gen::<u64>());
        let mut s = self.store.write().await?;
        let claimed = s
            .claim_webhook_deliveries(at, until, limit, per_endpoint, &claim)
            .await?;
        s.commit().await?;
        Ok(claimed
            .into_iter()
            .map(|delivery| {
                let secrets = self
                    .signing_secrets(delivery.endpoint_id, &delivery.secrets, at)
                    .unwrap_or_else(|e| {
                        tracing::error!(endpoint = delivery.endpoint_id, error = %e, "cannot open a webhook signing secret");
                        Vec::new()
                    });
                Outgoing { delivery, secrets }
            })
            .collect())
    }

    /// Passes the turn to deliveries whose predecessor finished without handing it on (see
    /// `Session::repair_webhook_turns`); returns how many.
    pub async fn repair_webhook_turns(&self) -> Result<u64> {
        if !self.store.read().await?.webhook_work_waiting(now()).await? {
            return Ok(0);
        }
        let mut s = self.store.write().await?;
        let repaired = s.repair_webhook_turns(now()).await?;
        s.commit().await?;
        if repaired > 0 {
            tracing::debug!(repaired, "webhook deliveries given their turn");
        }
        Ok(repaired)
    }

    /// Records what attempts found, all in one transaction: each delivery is delivered, due
    /// again after the retry delay, or failed for good; an endpoint that has answered nothing
    /// right for a whole retry period is disabled and its vendor told by mail. `node` names
    /// this server in the log.
    pub async fn record_webhook_attempts(
        &self,
        results: &[AttemptResult],
        node: &str,
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut s = self.store.write().await?;
        for r in results {
            self.record_one(&mut s, r, node).await?;
        }
        s.commit().await?;
        for r in results {
            self.metrics.webhook_attempt(r.delivered());
        }
        Ok(())
    }

    async fn record_one(&self, s: &mut Session, r: &AttemptResult, node: &str) -> Result<()> {
        let d = &r.delivery;
        let delivered = r.delivered();
        let failed_attempts = d.attempts.saturating_add(1);
        let next = if delivered {
            NextStep::Delivered
        } else {
            let jitter: f64 = rand::thread_rng().gen();
            match retry_delay(self.webhooks.first_retry, failed_attempts, jitter) {
                Some(wait) => {
                    NextStep::RetryAt(r.at + chrono::Duration::from_std(wait).unwrap_or_default())
                }
                None => NextStep::Failed,
            }
        };
        let error = match (&r.error, r.status) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(status)) if !delivered => Some(format!("answered {status}")),
            _ => None,
        };
        let response = response_head(&r.response);
        let latency_ms = i64::try_from(r.latency.as_millis()).unwrap_or(i64::MAX);
        let held = s
            .record_webhook_attempt(&AttemptRecord {
                delivery: d,
                at: r.at,
                status: r.status.map(i64::from),
                error: error.as_deref(),
                latency_ms,
                response: &response,
                node,
                next,
            })
            .await?;
        if !held {
            tracing::warn!(
                delivery = d.id,
                "a webhook attempt finished after its lease ran out; only its log entry is kept"
            );
            return Ok(());
        }
        if next == NextStep::Failed {
            let first = d.first_attempt_at.unwrap_or(r.at);
            let failing_since = s.webhook_failing_since(d.endpoint_id).await?;
            if should_disable(failing_since, first) {
                self.disable_failing_endpoint(s, d, failing_since.unwrap_or(first), r.at)
                    .await?;
            }
        }
        Ok(())
    }

    async fn disable_failing_endpoint(
        &self,
        s: &mut Session,
        d: &ClaimedDelivery,
        since: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let reason = format!(
            "every attempt has failed since {} (delivery {} of event {} had all its attempts)",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            d.id,
            d.event_id
        );
        if !s
            .disable_webhook_endpoint(d.endpoint_id, &reason, at)
            .await?
        {
            return Ok(());
        }
        tracing::warn!(endpoint = d.endpoint_id, %reason, "webhook endpoint disabled");
        let recipients = match &self.webhooks.alert_email {
            Some(to) => vec![to.clone()],
            None => s.owner_emails().await?,
        };
        if recipients.is_empty() {
            tracing::warn!(
                endpoint = d.endpoint_id,
                "no one to tell that a webhook endpoint was disabled: set KEYTURN_WEBHOOK_ALERT_EMAIL"
            );
        }
        let body = format!(
            "Keyturn disabled the webhook endpoint {id} ({url}) after its deliveries failed for \
             the whole retry period: {reason}.\n\nNo further events are delivered to it. Its pending \
             deliveries wait; once the receiver answers again, enable the endpoint \
             (`keyturn webhooks enable {id}` or PATCH /v1/webhook-endpoints/{id} with \
             {{\"enabled\": true}}) and retry the failed ones \
             (`keyturn webhooks retry-failed {id} --since …`).\n",
            id = d.endpoint_id,
            url = d.url,
        );
        for to in recipients {
            s.enqueue_mail(&to, DISABLED_SUBJECT, &body, at).await?;
        }
        Ok(())
    }
}
