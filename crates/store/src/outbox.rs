use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::time::to_db;
use crate::{Result, Session};

/// A message taken from the outbox for sending.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The HTML alternative of `body`, when the mail has one.
    pub html_body: Option<String>,
    pub attempts: i64,
}

impl Session {
    pub async fn enqueue_mail(
        &mut self,
        to: &str,
        subject: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        self.enqueue_mail_with_html(to, subject, body, None, now)
            .await
    }

    /// Queues a mail with a text body and, when given, its HTML alternative.
    pub async fn enqueue_mail_with_html(
        &mut self,
        to: &str,
        subject: &str,
        body: &str,
        html: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO mail_outbox (to_address, subject, body, created_at, attempts, next_attempt_at, html_body) \
             VALUES ($1, $2, $3, $4, 0, $4, $5) RETURNING id",
        )
        .bind(to)
        .bind(subject)
        .bind(body)
        .bind(to_db(now))
        .bind(html)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Takes up to `limit` due messages for `lease`; another node skips them until the lease
    /// ends, so a message is sent by one node at a time.
    pub async fn claim_mail(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<QueuedMail>> {
        let due = "sent_at IS NULL AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2)";
        let rows = sqlx::query(&format!(
            "UPDATE mail_outbox SET claimed_until = $1 WHERE {due} AND id IN \
             (SELECT id FROM mail_outbox WHERE {due} ORDER BY id LIMIT $3) \
             RETURNING id, to_address, subject, body, html_body, attempts"
        ))
        .bind(to_db(lease_until))
        .bind(to_db(now))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueuedMail {
                    id: r.try_get("id")?,
                    to: r.try_get("to_address")?,
                    subject: r.try_get("subject")?,
                    body: r.try_get("body")?,
                    html_body: r.try_get("html_body")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    pub async fn mail_sent(&mut self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE mail_outbox SET sent_at = $1, attempts = attempts + 1, claimed_until = NULL, last_error = NULL WHERE id = $2")
            .bind(to_db(now))
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn mail_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $1, claimed_until = NULL, \
             last_error = $2 WHERE id = $3",
        )
        .bind(to_db(retry_at))
        .bind(error)
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Messages not yet taken by an SMTP server.
    pub async fn unsent_mail(&mut self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM mail_outbox WHERE sent_at IS NULL")
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get("n")?)
    }
}
