//! The lists of the console's sales and money pages: customers by name or email prefix,
//! payments, provider events, subscriptions and the mail outbox, each filtered in the database
//! and read one keyset page at a time (never by offset, never a whole table).
//!
//! Each list's order is a unique key, so a page starts exactly after the last row of the one
//! before however many rows share a time: payments and mail by id (newest first), provider
//! events by (provider time, provider, event id) newest first, subscriptions by (provider,
//! subscription id). Migration 0018 adds the indexes the filters use.

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
        let rows = self.customer_list_query(f).fetch(self).await?;
        rows.iter().map(crate::customers::customer).collect()
    }

    fn customer_list_query(&self, f: &CustomerFilter) -> Built {
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
        q
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
        let rows = self.payment_list_query(f).fetch(self).await?;
        let mut out = rows
            .iter()
            .map(crate::payments::payment)
            .collect::<Result<Vec<_>>>()?;
        for p in &mut out {
            p.license_ids = self.payment_license_ids(p.id).await?;
        }
        Ok(out)
    }

    fn payment_list_query(&self, f: &PaymentFilter) -> Built {
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
        q
    }

    /// Provider events (without their payloads), newest first by the provider's time.
    pub async fn provider_event_list(&mut self, f: &EventFilter) -> Result<Vec<ProviderEvent>> {
        let rows = self.provider_event_list_query(f).fetch(self).await?;
        rows.iter()
            .map(|r| crate::payments::provider_event(r, false))
            .collect()
    }

    fn provider_event_list_query(&self, f: &EventFilter) -> Built {
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
            // A row-value comparison: a range over the index in its order, however deep the page.
            q.push(
                " AND (created_at, provider, event_id) < ({}, {}, {})",
                vec![
                    Bind::Int(to_db(at.created)),
                    Bind::Text(at.provider.clone()),
                    Bind::Text(at.event_id.clone()),
                ],
            );
        }
        q.push(
            " ORDER BY created_at DESC, provider DESC, event_id DESC LIMIT {}",
            vec![Bind::Int(f.limit)],
        );
        q
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
        let rows = self.subscription_list_query(f).fetch(self).await?;
        rows.iter().map(crate::payments::subscription).collect()
    }

    fn subscription_list_query(&self, f: &SubscriptionFilter) -> Built {
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
                " AND (provider, subscription_id) > ({}, {})",
                vec![Bind::Text(provider.clone()), Bind::Text(id.clone())],
            );
        }
        q.push(
            " ORDER BY provider, subscription_id LIMIT {}",
            vec![Bind::Int(f.limit)],
        );
        q
    }

    /// Messages of the outbox, newest first, without their bodies.
    pub async fn mail_list(&mut self, f: &MailFilter) -> Result<Vec<OutboxMail>> {
        let rows = self.mail_list_query(f).fetch(self).await?;
        rows.iter().map(outbox_mail).collect()
    }

    fn mail_list_query(&self, f: &MailFilter) -> Built {
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
        q
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
    use crate::{Dialect, Store, StoreOptions};
    use chrono::TimeZone;

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

    /// Customers, payments, events at one time, subscriptions and mail in every state.
    async fn seed(store: &Store) {
        let mut s = store.write().await.unwrap();
        let mut sql = vec![
            "INSERT INTO products (id, name, features, created_at) VALUES (1, 'p', '[]', 0), (2, 'q', '[]', 0)".to_owned(),
            "INSERT INTO customers (id, name, email, created_at) VALUES (1, 'Ada Lovelace', 'ada@example.com', 0), \
             (2, 'Alan Turing', 'turing@example.com', 0), (3, 'Grace', NULL, 0)".to_owned(),
            "INSERT INTO licenses (id, key, product_id, customer_id, created_at, updated_at, features, \
             max_machines, trial, notes, blocked, metadata, trial_activation, allowed_machines) VALUES \
             (1, 'A', 1, 1, 0, 0, '[]', 0, 0, '', 0, '{}', 0, '[]'), \
             (2, 'B', 2, 2, 0, 0, '[]', 0, 0, '', 0, '{}', 0, '[]')".to_owned(),
            "INSERT INTO payments (id, provider, object_kind, object_id, status, customer_id, event_id, \
             created_at, updated_at) VALUES (1, 'stripe', 'order', 'cs_1', 'paid', 1, 'e1', 0, 0), \
             (2, 'paddle', 'order', 'txn_2', 'refunded', 2, 'e2', 0, 0), \
             (3, 'stripe', 'invoice', 'in_3', 'paid', 2, 'e3', 0, 0)".to_owned(),
            "INSERT INTO subscriptions (provider, subscription_id, status, quantity, cancel_at_period_end, \
             dunning_blocked, state_at, created_at, updated_at) VALUES \
             ('stripe', 'sub_a', 'active', 1, 0, 0, 0, 0, 0), ('stripe', 'sub_b', 'canceled', 1, 1, 0, 0, 0, 0), \
             ('paddle', 'sub_c', 'active', 1, 0, 0, 0, 0, 0)".to_owned(),
            "INSERT INTO mail_outbox (id, to_address, subject, body, created_at, attempts, next_attempt_at, \
             sent_at, last_error) VALUES (1, 'a@x', 's', 'KEY-1', 0, 1, 0, 5, NULL), \
             (2, 'b@x', 's', 'KEY-2', 0, 2, 99, NULL, 'refused'), (3, 'c@x', 's', 'KEY-3', 0, 0, 0, NULL, NULL)".to_owned(),
        ];
        // Seven events at one and the same time, two of them failed, and one later.
        for i in 0..7 {
            let status = if i % 3 == 0 { "failed" } else { "applied" };
            sql.push(format!(
                "INSERT INTO provider_events (provider, event_id, type, created_at, received_at, status, \
                 detail, payload, attempts) VALUES ('stripe', 'evt_{i}', 'invoice.paid', 1000, 0, '{status}', '', '{{}}', 1)"
            ));
        }
        sql.push("INSERT INTO provider_events (provider, event_id, type, created_at, received_at, status, \
                  detail, payload, attempts) VALUES ('paddle', 'evt_late', 'transaction.completed', 2000, 0, \
                  'ignored', '', '{\"k\": 1}', 1)".to_owned());
        for q in sql {
            sqlx::query(&q).execute(s.conn()).await.unwrap();
        }
        s.commit().await.unwrap();
    }

    /// Every page of events after the one before, `limit` at a time.
    async fn all_events(s: &mut Session, mut f: EventFilter) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let page = s.provider_event_list(&f).await.unwrap();
            let Some(last) = page.last() else { break };
            f.before = Some(EventPosition {
                created: last.created,
                provider: last.provider.clone(),
                event_id: last.event_id.clone(),
            });
            out.extend(page.iter().map(|e| e.event_id.clone()));
        }
        out
    }

    async fn lists_filter_and_page(store: &Store) {
        store.migrate().await.unwrap();
        seed(store).await;
        let mut s = store.read().await.unwrap();
        let names = |c: Vec<Customer>| c.into_iter().map(|c| c.name).collect::<Vec<_>>();
        let customers =
            |prefix: Option<&str>, product_id: Option<i64>, after: Option<i64>| CustomerFilter {
                prefix: prefix.map(str::to_owned),
                product_id,
                after,
                limit: 10,
            };
        assert_eq!(
            names(
                s.customer_list(&customers(Some("a"), None, None))
                    .await
                    .unwrap()
            ),
            ["Ada Lovelace", "Alan Turing"]
        );
        assert_eq!(
            names(
                s.customer_list(&customers(Some("turing@"), None, None))
                    .await
                    .unwrap()
            ),
            ["Alan Turing"]
        );
        assert_eq!(
            names(
                s.customer_list(&customers(Some("a"), Some(1), None))
                    .await
                    .unwrap()
            ),
            ["Ada Lovelace"]
        );
        assert_eq!(
            names(
                s.customer_list(&customers(None, None, Some(1)))
                    .await
                    .unwrap()
            ),
            ["Alan Turing", "Grace"]
        );
        for nothing in ["%", "_", "lovelace"] {
            assert!(
                s.customer_list(&customers(Some(nothing), None, None))
                    .await
                    .unwrap()
                    .is_empty(),
                "{nothing}"
            );
        }
        assert_eq!(
            names(s.customers_by_ids(&[3, 1, 9]).await.unwrap()),
            ["Ada Lovelace", "Grace"]
        );

        let payments = |f: PaymentFilter| async move { f };
        let ids = |p: Vec<Payment>| p.into_iter().map(|p| p.id).collect::<Vec<_>>();
        let all = payments(PaymentFilter {
            limit: 10,
            ..Default::default()
        })
        .await;
        assert_eq!(
            ids(s.payment_list(&all).await.unwrap()),
            [3, 2, 1],
            "newest first"
        );
        let stripe = PaymentFilter {
            provider: Some("stripe".into()),
            limit: 1,
            before: Some(3),
            ..Default::default()
        };
        assert_eq!(ids(s.payment_list(&stripe).await.unwrap()), [1]);
        let paid = PaymentFilter {
            status: Some(PaymentStatus::Refunded),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(s.payment_list(&paid).await.unwrap()), [2]);
        let theirs = PaymentFilter {
            customer_id: Some(2),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(s.payment_list(&theirs).await.unwrap()), [3, 2]);

        // Seven events share a time: pages of two still give each once, in order.
        let every = all_events(
            &mut s,
            EventFilter {
                limit: 2,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            every,
            ["evt_late", "evt_6", "evt_5", "evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]
        );
        let failed = all_events(
            &mut s,
            EventFilter {
                status: Some(ProviderEventStatus::Failed),
                limit: 1,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(failed, ["evt_6", "evt_3", "evt_0"]);
        let typed = all_events(
            &mut s,
            EventFilter {
                event_type: Some("transaction.completed".into()),
                limit: 5,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(typed, ["evt_late"]);
        let by = all_events(
            &mut s,
            EventFilter {
                provider: Some("stripe".into()),
                limit: 3,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(by.len(), 7);
        assert_eq!(
            s.provider_event_payload("paddle", "evt_late")
                .await
                .unwrap()
                .as_deref(),
            Some("{\"k\": 1}"),
            "the text as stored"
        );

        let subs = |f: SubscriptionFilter| f;
        let sub_ids =
            |v: Vec<Subscription>| v.into_iter().map(|s| s.subscription_id).collect::<Vec<_>>();
        let first = subs(SubscriptionFilter {
            limit: 2,
            ..Default::default()
        });
        assert_eq!(
            sub_ids(s.subscription_list(&first).await.unwrap()),
            ["sub_c", "sub_a"]
        );
        let rest = SubscriptionFilter {
            after: Some(("stripe".into(), "sub_a".into())),
            limit: 2,
            ..Default::default()
        };
        assert_eq!(
            sub_ids(s.subscription_list(&rest).await.unwrap()),
            ["sub_b"]
        );
        let active = SubscriptionFilter {
            status: Some("active".into()),
            limit: 5,
            ..Default::default()
        };
        assert_eq!(
            sub_ids(s.subscription_list(&active).await.unwrap()),
            ["sub_c", "sub_a"]
        );

        let mail = |state: Option<MailState>| MailFilter {
            state,
            before: None,
            limit: 10,
        };
        let mail_ids =
            |m: Vec<OutboxMail>| m.into_iter().map(|m| (m.id, m.state())).collect::<Vec<_>>();
        assert_eq!(
            mail_ids(s.mail_list(&mail(None)).await.unwrap()),
            [
                (3, MailState::Pending),
                (2, MailState::Failed),
                (1, MailState::Sent)
            ]
        );
        for state in MailState::ALL {
            let only = s.mail_list(&mail(Some(state))).await.unwrap();
            assert_eq!(only.len(), 1, "{state:?}");
            assert_eq!(only[0].state(), state);
        }
        drop(s);

        // Only a failed mail goes back in the queue.
        let mut w = store.write().await.unwrap();
        let now = Utc.timestamp_millis_opt(50).unwrap();
        assert!(!w.requeue_mail(1, now).await.unwrap(), "sent");
        assert!(!w.requeue_mail(3, now).await.unwrap(), "pending");
        assert!(w.requeue_mail(2, now).await.unwrap());
        w.commit().await.unwrap();
        let mut s = store.read().await.unwrap();
        let again = s.outbox_mail(2).await.unwrap().unwrap();
        assert_eq!(again.next_attempt, now);
        assert_eq!(
            again.last_error.as_deref(),
            Some("refused"),
            "kept until sent"
        );

        if store.dialect() == Dialect::Sqlite {
            // Each list, with each filter, reads by an index in its order: no table is read
            // through and no result sorted whole.
            let queries = [
                (
                    "customers",
                    s.customer_list_query(&customers(None, None, None)),
                ),
                (
                    "customers by prefix",
                    s.customer_list_query(&customers(Some("a"), None, None)),
                ),
                (
                    "customers of a product",
                    s.customer_list_query(&customers(Some("a"), Some(1), None)),
                ),
                (
                    "payments",
                    s.payment_list_query(&PaymentFilter {
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "payments by provider",
                    s.payment_list_query(&PaymentFilter {
                        provider: Some("x".into()),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "payments by status",
                    s.payment_list_query(&PaymentFilter {
                        status: Some(PaymentStatus::Paid),
                        before: Some(9),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "payments of a customer",
                    s.payment_list_query(&PaymentFilter {
                        customer_id: Some(1),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "events",
                    s.provider_event_list_query(&EventFilter {
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "events after",
                    s.provider_event_list_query(&EventFilter {
                        limit: 5,
                        before: Some(EventPosition {
                            created: now,
                            provider: "p".into(),
                            event_id: "e".into(),
                        }),
                        ..Default::default()
                    }),
                ),
                (
                    "events by status",
                    s.provider_event_list_query(&EventFilter {
                        status: Some(ProviderEventStatus::Failed),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "events by status after",
                    s.provider_event_list_query(&EventFilter {
                        status: Some(ProviderEventStatus::Failed),
                        before: Some(EventPosition {
                            created: now,
                            provider: "p".into(),
                            event_id: "e".into(),
                        }),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "events by type",
                    s.provider_event_list_query(&EventFilter {
                        event_type: Some("t".into()),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "events by provider",
                    s.provider_event_list_query(&EventFilter {
                        provider: Some("p".into()),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "subscriptions",
                    s.subscription_list_query(&SubscriptionFilter {
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                (
                    "subscriptions by status after",
                    s.subscription_list_query(&SubscriptionFilter {
                        status: Some("active".into()),
                        after: Some(("a".into(), "b".into())),
                        limit: 5,
                        ..Default::default()
                    }),
                ),
                ("mail", s.mail_list_query(&mail(None))),
                (
                    "failed mail",
                    s.mail_list_query(&mail(Some(MailState::Failed))),
                ),
                (
                    "pending mail",
                    s.mail_list_query(&mail(Some(MailState::Pending))),
                ),
                ("sent mail", s.mail_list_query(&mail(Some(MailState::Sent)))),
            ];
            for (what, mut q) in queries {
                q.sql = format!("EXPLAIN QUERY PLAN {}", q.sql);
                let plan: Vec<String> = q
                    .fetch(&mut s)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.try_get::<String, _>("detail").unwrap())
                    .collect();
                for step in &plan {
                    let whole_table = step.starts_with("SCAN ") && !step.contains(" USING ");
                    assert!(!whole_table, "{what}: {plan:#?}");
                    assert!(
                        !step.contains("TEMP B-TREE FOR ORDER BY"),
                        "{what}: {plan:#?}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn console_lists_filter_and_page_on_sqlite_and_postgres() {
        let dir = std::env::temp_dir().join(format!("keyturn-lists-{}", std::process::id()));
        let store = Store::open_sqlite(&dir, &StoreOptions::default())
            .await
            .unwrap();
        lists_filter_and_page(&store).await;
        store.close(std::time::Duration::from_secs(1)).await;
        std::fs::remove_dir_all(&dir).unwrap();

        let Ok(server) = std::env::var("KEYTURN_TEST_DATABASE_URL") else {
            eprintln!(
                "console_lists_filter_and_page_on_sqlite_and_postgres: skipped its PostgreSQL run: KEYTURN_TEST_DATABASE_URL not set"
            );
            return;
        };
        use sqlx::Connection;
        let name = format!("keyturn_store_lists_{}", std::process::id());
        let admin = |sql: String| {
            let server = server.clone();
            async move {
                let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.ok();
            }
        };
        admin(format!("CREATE DATABASE {name}")).await;
        let (base, _) = server.rsplit_once('/').unwrap();
        let store = Store::connect(&format!("{base}/{name}"), &StoreOptions::default())
            .await
            .unwrap();
        lists_filter_and_page(&store).await;
        store.close(std::time::Duration::from_secs(1)).await;
        admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
}
