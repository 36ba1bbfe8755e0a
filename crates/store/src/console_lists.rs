//! The lists of the console's sales and money pages: customers by name or email prefix,
//! payments, provider events, subscriptions and the mail outbox, each filtered in the database
//! and read one keyset page at a time (never by offset, never a whole table).
//!
//! Each list's order is a unique key, so a page starts exactly after the last row of the one
//! before however many rows share a time: payments and mail by id (newest first), provider
//! events by (provider time, provider, event id) newest first, subscriptions by (provider,
//! subscription id). Migration 0017 adds the indexes the filters use.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{Payment, PaymentStatus, ProviderEvent, Subscription};
use keyturn_core::provider::ProviderEventStatus;
use keyturn_core::{Customer, MailState, OutboxMail};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{Result, Session};

/// A value bound to a statement built clause by clause.
enum Bind {
    Int(i64),
    Text(String),
}

/// A statement whose `{}` placeholders become the next `$n` as clauses are added.
struct Built {
    sql: String,
    binds: Vec<Bind>,
}

impl Built {
    fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Appends `clause`, each `{}` in it bound to the next of `values`, in order.
    fn push(&mut self, clause: &str, values: Vec<Bind>) {
        let mut parts = clause.split("{}");
        if let Some(first) = parts.next() {
            self.sql.push_str(first);
        }
        let mut values = values.into_iter();
        for part in parts {
            if let Some(v) = values.next() {
                self.binds.push(v);
            }
            self.sql.push_str(&format!("${}", self.binds.len()));
            self.sql.push_str(part);
        }
    }

    /// `n` consecutive parameter numbers for a clause that refers to them itself, bound to
    /// `values`; the first one's number.
    fn reserve(&mut self, values: Vec<Bind>) -> usize {
        let first = self.binds.len() + 1;
        self.binds.extend(values);
        first
    }

    async fn fetch(self, session: &mut Session) -> Result<Vec<AnyRow>> {
        let mut query = sqlx::query(&self.sql);
        for b in self.binds {
            query = match b {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        Ok(query.fetch_all(session.conn()).await?)
    }
}

/// Which customers a console list shows.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Lower-cased: customers whose lower-cased name or email starts with it.
    pub prefix: Option<String>,
    /// Only customers holding a license of this product.
    pub product_id: Option<i64>,
    pub after: Option<i64>,
    pub limit: i64,
}

/// Which payments a console list shows; newest first.
#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub provider: Option<String>,
    pub status: Option<PaymentStatus>,
    pub customer_id: Option<i64>,
    /// Cursor: only payments with a smaller id.
    pub before: Option<i64>,
    pub limit: i64,
}

/// Where a list of provider events goes on from: the last event of the page before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPosition {
    pub created: DateTime<Utc>,
    pub provider: String,
    pub event_id: String,
}

/// Which provider events a console list shows; newest (provider time) first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub provider: Option<String>,
    pub status: Option<ProviderEventStatus>,
    pub event_type: Option<String>,
    pub before: Option<EventPosition>,
    pub limit: i64,
}

/// Which subscriptions a console list shows, by provider and id.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    pub provider: Option<String>,
    /// A status as stored (`active`, `past_due`, …).
    pub status: Option<String>,
    /// Cursor: only subscriptions after this (provider, subscription id).
    pub after: Option<(String, String)>,
    pub limit: i64,
}

/// Which messages a console list of the outbox shows; newest first.
#[derive(Debug, Clone, Default)]
pub struct MailFilter {
    pub state: Option<MailState>,
    /// Cursor: only messages with a smaller id.
    pub before: Option<i64>,
    pub limit: i64,
}

/// The end of the range of texts that start with `prefix`.
fn range_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

fn outbox_mail(row: &AnyRow) -> Result<OutboxMail> {
    Ok(OutboxMail {
        id: row.try_get("id")?,
        to: row.try_get("to_address")?,
        subject: row.try_get("subject")?,
        created: from_db(row.try_get("created_at")?),
        attempts: row.try_get("attempts")?,
        next_attempt: from_db(row.try_get("next_attempt_at")?),
        sent: opt_from_db(row.try_get("sent_at")?),
        last_error: row.try_get("last_error")?,
    })
}

const MAIL_COLUMNS: &str =
    "id, to_address, subject, created_at, attempts, next_attempt_at, sent_at, last_error";

impl Session {
    /// Customers in id order after the cursor; with a prefix, only those whose lower-cased
    /// name or email starts with it (two range scans over their indexes).
    pub async fn customer_list(&mut self, f: &CustomerFilter) -> Result<Vec<Customer>> {
        let mut q = Built::new(format!(
            "SELECT {} FROM customers WHERE id > $1",
            crate::customers::COLUMNS
        ));
        q.reserve(vec![Bind::Int(f.after.unwrap_or(0))]);
        if let Some(prefix) = &f.prefix {
            let n = q.reserve(vec![
                Bind::Text(prefix.clone()),
                Bind::Text(range_end(prefix)),
            ]);
            let email = self.starts_with("lower(email)", n);
            let name = self.starts_with("lower(name)", n);
            q.sql.push_str(&format!(
                " AND id IN (SELECT id FROM customers WHERE {email} \
                 UNION SELECT id FROM customers WHERE {name})"
            ));
        }
        if let Some(p) = f.product_id {
            let n = q.reserve(vec![Bind::Int(p)]);
            q.sql
                .push_str(&format!(" AND {}", crate::customers::holds_product(n)));
        }
        q.push(" ORDER BY id LIMIT {}", vec![Bind::Int(f.limit)]);
        let rows = q.fetch(self).await?;
        rows.iter().map(crate::customers::customer).collect()
    }

    /// The customers with these ids (those that exist), for naming them in a list.
    pub async fn customers_by_ids(&mut self, ids: &[i64]) -> Result<Vec<Customer>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Built::new(format!(
            "SELECT {} FROM customers WHERE id IN (",
            crate::customers::COLUMNS
        ));
        for (i, id) in ids.iter().enumerate() {
            let sep = if i == 0 { "{}" } else { ", {}" };
            q.push(sep, vec![Bind::Int(*id)]);
        }
        q.sql.push_str(") ORDER BY id");
        let rows = q.fetch(self).await?;
        rows.iter().map(crate::customers::customer).collect()
    }

    /// Payments, newest first, with the licenses each bought.
    pub async fn payment_list(&mut self, f: &PaymentFilter) -> Result<Vec<Payment>> {
        let mut q = Built::new(format!(
            "SELECT {} FROM payments WHERE id < $1",
            crate::payments::PAYMENT_COLUMNS
        ));
        q.reserve(vec![Bind::Int(f.before.unwrap_or(i64::MAX))]);
        if let Some(p) = &f.provider {
            q.push(" AND provider = {}", vec![Bind::Text(p.clone())]);
        }
        if let Some(s) = f.status {
            q.push(" AND status = {}", vec![Bind::Text(s.as_str().to_owned())]);
        }
        if let Some(c) = f.customer_id {
            q.push(" AND customer_id = {}", vec![Bind::Int(c)]);
        }
        q.push(" ORDER BY id DESC LIMIT {}", vec![Bind::Int(f.limit)]);
        let rows = q.fetch(self).await?;
        let mut out = rows
            .iter()
            .map(crate::payments::payment)
            .collect::<Result<Vec<_>>>()?;
        for p in &mut out {
            p.license_ids = self.payment_license_ids(p.id).await?;
        }
        Ok(out)
    }

    /// Provider events (without their payloads), newest first by the provider's time.
    pub async fn provider_event_list(&mut self, f: &EventFilter) -> Result<Vec<ProviderEvent>> {
        let mut q = Built::new(format!(
            "SELECT {} FROM provider_events WHERE 1 = 1",
            crate::payments::EVENT_COLUMNS
        ));
        if let Some(p) = &f.provider {
            q.push(" AND provider = {}", vec![Bind::Text(p.clone())]);
        }
        if let Some(s) = f.status {
            q.push(" AND status = {}", vec![Bind::Text(s.as_str().to_owned())]);
        }
        if let Some(t) = &f.event_type {
            q.push(" AND type = {}", vec![Bind::Text(t.clone())]);
        }
        if let Some(at) = &f.before {
            q.push(
                " AND (created_at < {} OR (created_at = {} AND (provider < {} OR \
                 (provider = {} AND event_id < {}))))",
                vec![
                    Bind::Int(to_db(at.created)),
                    Bind::Int(to_db(at.created)),
                    Bind::Text(at.provider.clone()),
                    Bind::Text(at.provider.clone()),
                    Bind::Text(at.event_id.clone()),
                ],
            );
        }
        q.push(
            " ORDER BY created_at DESC, provider DESC, event_id DESC LIMIT {}",
            vec![Bind::Int(f.limit)],
        );
        let rows = q.fetch(self).await?;
        rows.iter()
            .map(|r| crate::payments::provider_event(r, false))
            .collect()
    }

    /// A provider event's payload as it was received (the text, byte for byte).
    pub async fn provider_event_payload(
        &mut self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT payload FROM provider_events WHERE provider = $1 AND event_id = $2",
        )
        .bind(provider)
        .bind(event_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("payload")).transpose()?)
    }

    /// Subscriptions by (provider, subscription id) after the cursor.
    pub async fn subscription_list(&mut self, f: &SubscriptionFilter) -> Result<Vec<Subscription>> {
        let mut q = Built::new(format!(
            "SELECT {} FROM subscriptions WHERE 1 = 1",
            crate::payments::SUBSCRIPTION_COLUMNS
        ));
        if let Some(p) = &f.provider {
            q.push(" AND provider = {}", vec![Bind::Text(p.clone())]);
        }
        if let Some(s) = &f.status {
            q.push(" AND status = {}", vec![Bind::Text(s.clone())]);
        }
        if let Some((provider, id)) = &f.after {
            q.push(
                " AND (provider > {} OR (provider = {} AND subscription_id > {}))",
                vec![
                    Bind::Text(provider.clone()),
                    Bind::Text(provider.clone()),
                    Bind::Text(id.clone()),
                ],
            );
        }
        q.push(
            " ORDER BY provider, subscription_id LIMIT {}",
            vec![Bind::Int(f.limit)],
        );
        let rows = q.fetch(self).await?;
        rows.iter().map(crate::payments::subscription).collect()
    }

    /// Messages of the outbox, newest first, without their bodies.
    pub async fn mail_list(&mut self, f: &MailFilter) -> Result<Vec<OutboxMail>> {
        let mut q = Built::new(format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE id < $1"
        ));
        q.reserve(vec![Bind::Int(f.before.unwrap_or(i64::MAX))]);
        q.sql.push_str(match f.state {
            None => "",
            Some(MailState::Sent) => " AND sent_at IS NOT NULL",
            Some(MailState::Failed) => " AND sent_at IS NULL AND last_error IS NOT NULL",
            Some(MailState::Pending) => " AND sent_at IS NULL AND last_error IS NULL",
        });
        q.push(" ORDER BY id DESC LIMIT {}", vec![Bind::Int(f.limit)]);
        let rows = q.fetch(self).await?;
        rows.iter().map(outbox_mail).collect()
    }

    pub async fn outbox_mail(&mut self, id: i64) -> Result<Option<OutboxMail>> {
        let row = sqlx::query(&format!(
            "SELECT {MAIL_COLUMNS} FROM mail_outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(outbox_mail).transpose()
    }

    /// Moves the next attempt at an unsent message whose last attempt failed to `now`; `false`
    /// when there is no such message. A lease a sender holds on it stays: the message is never
    /// handed to two senders at once.
    pub async fn requeue_mail(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = $1 \
             WHERE id = $2 AND sent_at IS NULL AND last_error IS NOT NULL",
        )
        .bind(to_db(now))
        .bind(id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_statements_number_their_parameters_in_order() {
        let mut q = Built::new("SELECT 1 WHERE a < $1");
        q.reserve(vec![Bind::Int(1)]);
        q.push(" AND b = {}", vec![Bind::Text("x".into())]);
        q.push(" AND (c < {} OR d = {})", vec![Bind::Int(2), Bind::Int(3)]);
        let n = q.reserve(vec![Bind::Int(4), Bind::Int(5)]);
        assert_eq!(n, 5);
        q.push(" LIMIT {}", vec![Bind::Int(6)]);
        assert_eq!(
            q.sql,
            "SELECT 1 WHERE a < $1 AND b = $2 AND (c < $3 OR d = $4) LIMIT $7"
        );
        assert_eq!(q.binds.len(), 7);
    }
}
