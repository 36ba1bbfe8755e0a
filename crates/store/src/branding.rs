//! The seller's branding (one row), products' mail templates, and what the reminder sweep
//! reads: licenses due a reminder and failed renewals not yet mailed.

use chrono::{DateTime, Utc};
use keyturn_core::branding::{Branding, MailKind, MailTemplate};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{Result, Session, StoreError};

/// A license due an expiry reminder.
#[derive(Debug, Clone)]
pub struct ExpiryReminder {
    pub license_id: i64,
    pub expires: DateTime<Utc>,
    /// The plan's reminder days.
    pub days: i64,
}

fn template(row: &AnyRow) -> Result<MailTemplate> {
    let kind: String = row.try_get("kind")?;
    Ok(MailTemplate {
        kind: MailKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("mail_templates.kind holds {kind:?}")))?,
        subject: row.try_get("subject")?,
        text: row.try_get("text_body")?,
        html: row.try_get("html_body")?,
    })
}

impl Session {
    pub async fn branding(&mut self) -> Result<Option<Branding>> {
        let row = sqlx::query(
            "SELECT display_name, logo_url, accent, support_email, terms_url, privacy_url, \
             refund_url FROM branding WHERE id = 1",
        )
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(Branding {
                display_name: r.try_get("display_name")?,
                logo_url: r.try_get("logo_url")?,
                accent: r.try_get("accent")?,
                support_email: r.try_get("support_email")?,
                terms_url: r.try_get("terms_url")?,
                privacy_url: r.try_get("privacy_url")?,
                refund_url: r.try_get("refund_url")?,
            })
        })
        .transpose()
    }

    pub async fn put_branding(&mut self, b: &Branding, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO branding (id, display_name, logo_url, accent, support_email, terms_url, \
             privacy_url, refund_url, updated_at) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
             logo_url = excluded.logo_url, accent = excluded.accent, \
             support_email = excluded.support_email, terms_url = excluded.terms_url, \
             privacy_url = excluded.privacy_url, refund_url = excluded.refund_url, \
             updated_at = excluded.updated_at",
        )
        .bind(&b.display_name)
        .bind(&b.logo_url)
        .bind(&b.accent)
        .bind(&b.support_email)
        .bind(&b.terms_url)
        .bind(&b.privacy_url)
        .bind(&b.refund_url)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn mail_template(
        &mut self,
        product_id: i64,
        kind: MailKind,
    ) -> Result<Option<MailTemplate>> {
        let row = sqlx::query(
            "SELECT kind, subject, text_body, html_body FROM mail_templates \
             WHERE product_id = $1 AND kind = $2",
        )
        .bind(product_id)
        .bind(kind.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(template).transpose()
    }

    pub async fn mail_templates(&mut self, product_id: i64) -> Result<Vec<MailTemplate>> {
        let rows = sqlx::query(
            "SELECT kind, subject, text_body, html_body FROM mail_templates \
             WHERE product_id = $1 ORDER BY kind",
        )
        .bind(product_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(template).collect()
    }

    pub async fn put_mail_template(
        &mut self,
        product_id: i64,
        t: &MailTemplate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mail_templates (product_id, kind, subject, text_body, html_body, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (product_id, kind) DO UPDATE SET \
             subject = excluded.subject, text_body = excluded.text_body, \
             html_body = excluded.html_body, updated_at = excluded.updated_at",
        )
        .bind(product_id)
        .bind(t.kind.as_str())
        .bind(&t.subject)
        .bind(&t.text)
        .bind(&t.html)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Removes a product's template of `kind`; whether there was one.
    pub async fn delete_mail_template(&mut self, product_id: i64, kind: MailKind) -> Result<bool> {
        let done = sqlx::query("DELETE FROM mail_templates WHERE product_id = $1 AND kind = $2")
            .bind(product_id)
            .bind(kind.as_str())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Notes that the mail `kind` about `object_id` (and `at`) was queued; false when it was
    /// before.
    pub async fn insert_mail_notice(
        &mut self,
        kind: &str,
        object_id: i64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO mail_notices (kind, object_id, at) VALUES ($1, $2, $3) \
             ON CONFLICT (kind, object_id, at) DO NOTHING",
        )
        .bind(kind)
        .bind(object_id)
        .bind(to_db(at))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Licenses whose plan asks for an expiry reminder, now within its days of their expiry,
    /// not blocked, with a customer who has a mail address, not renewed by a running
    /// subscription that renews itself, and not yet reminded of this expiry.
    pub async fn licenses_due_reminder(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ExpiryReminder>> {
        let rows = sqlx::query(
            "SELECT l.id, l.expires_at, p.expiry_reminder_days FROM licenses l \
             JOIN plans p ON p.id = l.plan_id \
             JOIN customers c ON c.id = l.customer_id \
             WHERE p.expiry_reminder_days IS NOT NULL AND l.expires_at IS NOT NULL \
             AND l.expires_at > $1 AND l.expires_at <= $1 + p.expiry_reminder_days * 86400000 \
             AND l.blocked = 0 AND c.email IS NOT NULL AND c.email <> '' \
             AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.license_id = l.id \
                 AND s.status IN ('active', 'trialing', 'past_due') AND s.cancel_at_period_end = 0) \
             AND NOT EXISTS (SELECT 1 FROM mail_notices n WHERE n.kind = 'expiring' \
                 AND n.object_id = l.id AND n.at = l.expires_at) \
             ORDER BY l.expires_at, l.id LIMIT $2",
        )
        .bind(to_db(now))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExpiryReminder {
                    license_id: r.try_get("id")?,
                    expires: from_db(r.try_get("expires_at")?),
                    days: r.try_get("expiry_reminder_days")?,
                })
            })
            .collect()
    }

    /// Failed subscription invoices recorded since `since` whose buyer has not been told:
    /// (payment id, the subscription's license id).
    pub async fn failed_renewals_unmailed(
        &mut self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT p.id, s.license_id FROM payments p \
             JOIN subscriptions s ON s.provider = p.provider AND s.subscription_id = p.subscription_id \
             WHERE p.status = 'failed' AND p.object_kind = 'invoice' AND p.created_at >= $1 \
             AND s.license_id IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM mail_notices n WHERE n.kind = 'renewal_failed' \
                 AND n.object_id = p.id AND n.at = 0) \
             ORDER BY p.id LIMIT $2",
        )
        .bind(to_db(since))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("license_id")?)))
            .collect()
    }

    /// Subscriptions that ended by cancellation, changed since `since`, whose buyer has not
    /// been told: (license id, the subscription's creation, its period end).
    pub async fn cancellations_unmailed(
        &mut self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(i64, DateTime<Utc>, Option<DateTime<Utc>>)>> {
        let rows = sqlx::query(
            "SELECT s.license_id, s.created_at, s.period_end FROM subscriptions s \
             WHERE s.status = 'canceled' AND s.license_id IS NOT NULL AND s.updated_at >= $1 \
             AND NOT EXISTS (SELECT 1 FROM mail_notices n WHERE n.kind = 'cancelled' \
                 AND n.object_id = s.license_id AND n.at = s.created_at) \
             ORDER BY s.updated_at LIMIT $2",
        )
        .bind(to_db(since))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("license_id")?,
                    from_db(r.try_get("created_at")?),
                    r.try_get::<Option<i64>, _>("period_end")?.map(from_db),
                ))
            })
            .collect()
    }
}
