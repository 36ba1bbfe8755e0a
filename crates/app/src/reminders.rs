//! Mails nobody's request sends: a license about to expire, a renewal payment that failed, a
//! subscription that was cancelled. A periodic sweep finds them (any node may run it, one at a
//! time: each part holds a lease in `webhook_sweeps`, as the webhook sweeps do) and queues
//! each mail in the outbox once, with a `mail_notices` row written in the same transaction:
//!
//! * expiring: once per license and expiry (a renewed license is reminded again before its
//!   new expiry), only for plans with `expiry_reminder_days`, licenses not blocked, with a
//!   customer address, and not renewed by a subscription that renews itself;
//! * renewal failed: once per failed invoice (payment row);
//! * cancelled: once per subscription.
//!
//! Failed renewals and cancellations are mailed only while they are news (`NEWS`): a server
//! that starts sending these mails does not mail every buyer whose payment ever failed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_core::branding::MailKind;
use keyturn_core::Email;
use keyturn_store::Session;

use crate::branding::compose_in;
use crate::{now, App, Result};

/// Rows one transaction handles: short transactions leave SQLite's writer to requests.
const BATCH: i64 = 100;
/// Batches one pass handles at most; the rest waits for the next pass.
const MAX_BATCHES: usize = 20;
const LEASE: Duration = Duration::from_secs(60);
/// How long after it happened a failed renewal or a cancellation is still mailed.
const NEWS_DAYS: i64 = 3;

/// What one pass queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReminderReport {
    pub expiring: usize,
    pub renewal_failed: usize,
    pub cancelled: usize,
}

/// What a mail about a license says of it and where it goes.
struct About {
    to: String,
    values: Vec<(&'static str, String)>,
    product_id: i64,
}

/// The buyer, product and key of a license, or none when it has no valid address.
async fn about(s: &mut Session, license_id: i64, portal: Option<&str>) -> Result<Option<About>> {
    let Some(license) = s.license(license_id).await? else {
        return Ok(None);
    };
    let customer = match license.customer_id {
        Some(id) => s.customer(id).await?,
        None => None,
    };
    let Some(customer) = customer else {
        return Ok(None);
    };
    let Some(to) = customer.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
        return Ok(None);
    };
    let product = s
        .product(license.product_id)
        .await?
        .map(|p| p.name)
        .unwrap_or_default();
    Ok(Some(About {
        to: to.into_string(),
        values: vec![
            ("name", customer.name.clone()),
            ("product", product),
            ("key", license.key.clone()),
            ("portal_link", portal.unwrap_or("").to_owned()),
        ],
        product_id: license.product_id,
    }))
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

impl App {
    /// One pass of every reminder sweep.
    pub async fn sweep_mail_reminders(&self) -> Result<ReminderReport> {
        Ok(ReminderReport {
            expiring: self.remind_expiring().await?,
            renewal_failed: self.mail_failed_renewals().await?,
            cancelled: self.mail_cancellations().await?,
        })
    }

    fn reminder_lease(at: DateTime<Utc>) -> DateTime<Utc> {
        at + chrono::Duration::from_std(LEASE).unwrap_or_default()
    }

    async fn queue_about(
        &self,
        s: &mut Session,
        kind: MailKind,
        about: About,
        extra: Vec<(&'static str, String)>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut values = about.values;
        values.extend(extra);
        let m = compose_in(s, kind, Some(about.product_id), &values).await?;
        s.enqueue_mail_with_html(&about.to, &m.subject, &m.text, Some(&m.html), at)
            .await?;
        Ok(())
    }

    async fn remind_expiring(&self) -> Result<usize> {
        let mut queued = 0;
        for _ in 0..MAX_BATCHES {
            let at = now();
            let mut s = self.store.write().await?;
            let Some(mark) = s
                .claim_webhook_sweep("mail_expiring", at, Self::reminder_lease(at))
                .await?
            else {
                return Ok(queued);
            };
            let rows = s.licenses_due_reminder(at, BATCH).await?;
            for r in &rows {
                // Noted even when nothing can be sent, so the row is not read again.
                if !s
                    .insert_mail_notice("expiring", r.license_id, r.expires)
                    .await?
                {
                    continue;
                }
                let Some(about) = about(&mut s, r.license_id, self.portal_url()).await? else {
                    continue;
                };
                let left = (r.expires - at).num_seconds().max(0);
                let days = (left + 86_399) / 86_400;
                let extra = vec![("days", days.to_string()), ("expires", day(r.expires))];
                self.queue_about(&mut s, MailKind::Expiring, about, extra, at)
                    .await?;
                queued += 1;
            }
            s.finish_webhook_sweep("mail_expiring", mark).await?;
            s.commit().await?;
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        Ok(queued)
    }

    async fn mail_failed_renewals(&self) -> Result<usize> {
        let mut queued = 0;
        for _ in 0..MAX_BATCHES {
            let at = now();
            let mut s = self.store.write().await?;
            let Some(mark) = s
                .claim_webhook_sweep("mail_renewal_failed", at, Self::reminder_lease(at))
                .await?
            else {
                return Ok(queued);
            };
            let since = at - chrono::Duration::days(NEWS_DAYS);
            let rows = s.failed_renewals_unmailed(since, BATCH).await?;
            let zero = DateTime::<Utc>::UNIX_EPOCH;
            for (payment_id, license_id) in &rows {
                if !s
                    .insert_mail_notice("renewal_failed", *payment_id, zero)
                    .await?
                {
                    continue;
                }
                let Some(about) = about(&mut s, *license_id, self.portal_url()).await? else {
                    continue;
                };
                self.queue_about(&mut s, MailKind::RenewalFailed, about, Vec::new(), at)
                    .await?;
                queued += 1;
            }
            s.finish_webhook_sweep("mail_renewal_failed", mark).await?;
            s.commit().await?;
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        Ok(queued)
    }

    async fn mail_cancellations(&self) -> Result<usize> {
        let mut queued = 0;
        for _ in 0..MAX_BATCHES {
            let at = now();
            let mut s = self.store.write().await?;
            let Some(mark) = s
                .claim_webhook_sweep("mail_cancelled", at, Self::reminder_lease(at))
                .await?
            else {
                return Ok(queued);
            };
            let since = at - chrono::Duration::days(NEWS_DAYS);
            let rows = s.cancellations_unmailed(since, BATCH).await?;
            for (license_id, created, period_end) in &rows {
                if !s
                    .insert_mail_notice("cancelled", *license_id, *created)
                    .await?
                {
                    continue;
                }
                let Some(about) = about(&mut s, *license_id, self.portal_url()).await? else {
                    continue;
                };
                let until = match period_end {
                    Some(end) if *end > at => {
                        format!("Your license keeps working until {}.", day(*end))
                    }
                    _ => String::new(),
                };
                self.queue_about(
                    &mut s,
                    MailKind::Cancelled,
                    about,
                    vec![("expires", until)],
                    at,
                )
                .await?;
                queued += 1;
            }
            s.finish_webhook_sweep("mail_cancelled", mark).await?;
            s.commit().await?;
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        Ok(queued)
    }
}
