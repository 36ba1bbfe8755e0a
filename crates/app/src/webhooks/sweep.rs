//! Events no change reports: a license passing its expiry (or coming near it) and a floating
//! lease running out happen with nobody touching anything. A periodic sweep finds them; any node
//! may run it, one at a time (each sweep holds a lease), and each is announced once per value
//! (expiry, lease end), by a notice row written with the event.
//!
//! `license.expired` and `floating.lease_lapsed` follow a watermark (expiry or lease end, then
//! id) that only moves forward, so each pass reads only what passed since the last one, however
//! many licenses expired long ago. `license.expiring_soon` looks at the licenses expiring within
//! the window that have no notice for their current expiry, so a license created or extended
//! into the window is announced too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_core::webhook::EventType;
use keyturn_store::SweepMark;

use crate::webhooks::emit;
use crate::{now, App, Result};

/// Rows one transaction of a sweep handles: short transactions leave SQLite's single writer
/// to the requests between them.
const BATCH: i64 = 200;
/// Batches one pass of a sweep handles at most; the rest waits for the next pass.
const MAX_BATCHES: usize = 50;
/// How long a sweep's lease lasts: more than one batch takes.
const LEASE: Duration = Duration::from_secs(60);
/// Finished deliveries pruned per pass.
const PRUNE: i64 = 1000;

/// What one pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    pub expiring_soon: usize,
    pub leases_lapsed: usize,
    pub pruned: u64,
}

impl App {
    /// One pass of every lifecycle sweep, and the pruning of old deliveries.
    pub async fn sweep_webhooks(&self) -> Result<SweepReport> {
        Ok(SweepReport {
            expired: self.sweep_expired().await?,
            expiring_soon: self.sweep_expiring_soon().await?,
            leases_lapsed: self.sweep_lapsed_leases().await?,
            pruned: self.prune_webhooks().await?,
        })
    }

    fn lease_until(at: DateTime<Utc>) -> DateTime<Utc> {
        at + chrono::Duration::from_std(LEASE).unwrap_or_default()
    }

    async fn sweep_expired(&self) -> Result<usize> {
        let mut announced = 0;
        for _ in 0..MAX_BATCHES {
            let at = now();
            let mut s = self.store.write().await?;
            let Some(mark) = s
                .claim_webhook_sweep("expired", at, Self::lease_until(at))
                .await?
            else {
                return Ok(announced);
            };
            let rows = s.licenses_expiring_between(mark, at, BATCH).await?;
            let wanting = emit::wanting(&mut s, EventType::LicenseExpired).await?;
            for (id, expires) in &rows {
                if !wanting.is_empty()
                    && emit::expiry(
                        &mut s,
                        EventType::LicenseExpired,
                        "expired",
                        *id,
                        *expires,
                        &wanting,
                        at,
                    )
                    .await?
                {
                    announced += 1;
                }
            }
            let full = rows.len() as i64 == BATCH;
            let next = match rows.last() {
                Some((id, expires)) if full => SweepMark {
                    at: *expires,
                    id: *id,
                },
                _ => SweepMark { at, id: i64::MAX },
            };
            s.finish_webhook_sweep("expired", next).await?;
            s.commit().await?;
            if !full {
                break;
            }
        }
        Ok(announced)
    }

    async fn sweep_expiring_soon(&self) -> Result<usize> {
        let mut announced = 0;
        let window = chrono::Duration::from_std(self.webhooks.expiring_soon).unwrap_or_default();
        for _ in 0..MAX_BATCHES {
            let at = now();
            let mut s = self.store.write().await?;
            let Some(mark) = s
                .claim_webhook_sweep("expiring_soon", at, Self::lease_until(at))
                .await?
            else {
                return Ok(announced);
            };
            let wanting = emit::wanting(&mut s, EventType::LicenseExpiringSoon).await?;
            // Nobody wants it: nothing is noted either, so an endpoint added later hears of the
            // licenses then within the window.
            let rows = if wanting.is_empty() {
                Vec::new()
            } else {
                s.licenses_expiring_unnoticed("expiring_soon", at, at + window, BATCH)
                    .await?
            };
            for (id, expires) in &rows {
                if emit::expiry(
                    &mut s,
                    EventType::LicenseExpiringSoon,
                    "expiring_soon",
                    *id,
                    *expires,
                    &wanting,
                    at,
                )
                .await?
                {
                    announced += 1;
                }
            }
            s.finish_webhook_sweep("expiring_soon", mark).await?;
            s.commit().await?;
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        Ok(announced)
    }

    async fn sweep_lapsed_leases(&self) -> Result<usize> {
        let mut announced = 0;
        for _ in 0..MAX_BATCHES {
            let at = now();
            let mut s = self.store.write().await?;
            let Some(mark) = s
                .claim_webhook_sweep("lease_lapsed", at, Self::lease_until(at))
                .await?
            else {
                return Ok(announced);
            };
            let rows = s.leases_lapsed_between(mark, at, BATCH).await?;
            for (id, _) in &rows {
                let Some(activation) = s.activation(*id).await? else {
                    continue;
                };
                let Some(license) = s.license(activation.license_id).await? else {
                    continue;
                };
                emit::lease_lapsed(&mut s, &activation, license.product_id, at).await?;
                announced += 1;
            }
            let full = rows.len() as i64 == BATCH;
            let next = match rows.last() {
                Some((id, until)) if full => SweepMark {
                    at: *until,
                    id: *id,
                },
                _ => SweepMark { at, id: i64::MAX },
            };
            s.finish_webhook_sweep("lease_lapsed", next).await?;
            s.commit().await?;
            if !full {
                break;
            }
        }
        Ok(announced)
    }

    async fn prune_webhooks(&self) -> Result<u64> {
        let at = now();
        let cutoff = at - chrono::Duration::from_std(self.webhooks.retention).unwrap_or_default();
        let mut s = self.store.write().await?;
        let Some(mark) = s
            .claim_webhook_sweep("prune", at, Self::lease_until(at))
            .await?
        else {
            return Ok(0);
        };
        let pruned = s.prune_webhooks(cutoff, PRUNE).await?;
        s.finish_webhook_sweep("prune", mark).await?;
        s.commit().await?;
        Ok(pruned)
    }
}
