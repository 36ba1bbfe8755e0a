//! Provider events, payments, subscriptions and reversals.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{
    ObjectKind, Payment, PaymentStatus, ProviderEvent, Reversal, Subscription, SubscriptionStatus,
};
use keyturn_core::provider::ProviderEventStatus;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::plans::setting;
use crate::time::{from_db, opt_from_db, to_db};
use crate::{parse_json, Result, Session};

/// What is known about an event when it arrives.
#[derive(Debug, Clone)]
pub struct IncomingEvent<'a> {
    pub provider: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub created: DateTime<Utc>,
    pub payload: &'a str,
}

/// A payment about to be recorded.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub provider: String,
    pub object_kind: ObjectKind,
    pub object_id: String,
    pub status: PaymentStatus,
    pub customer_id: Option<i64>,
    pub plan_id: Option<i64>,
    pub subscription_id: Option<String>,
    pub payment_intent: Option<String>,
    pub charge: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub event_id: String,
}

pub(crate) const EVENT_COLUMNS: &str =
    "provider, event_id, type, created_at, received_at, status, detail, attempts";

pub(crate) fn provider_event(row: &AnyRow, with_payload: bool) -> Result<ProviderEvent> {
    let payload = if with_payload {
        Some(parse_json(
            "provider_events.payload",
            &row.try_get::<String, _>("payload")?,
        )?)
    } else {
        None
    };
    Ok(ProviderEvent {
        provider: row.try_get("provider")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        created: from_db(row.try_get("created_at")?),
        received: from_db(row.try_get("received_at")?),
        status: setting(
            "provider_events.status",
            row.try_get("status")?,
            ProviderEventStatus::parse,
        )?,
        detail: row.try_get("detail")?,
        attempts: row.try_get("attempts")?,
        payload,
    })
}

pub(crate) const PAYMENT_COLUMNS: &str =
    "id, provider, object_kind, object_id, status, customer_id, plan_id, \
     subscription_id, payment_intent, charge, amount, currency, event_id, created_at, updated_at";

pub(crate) fn payment(row: &AnyRow) -> Result<Payment> {
    Ok(Payment {
        id: row.try_get("id")?,
        provider: row.try_get("provider")?,
        object_kind: setting(
            "payments.object_kind",
            row.try_get("object_kind")?,
            ObjectKind::parse,
        )?,
        object_id: row.try_get("object_id")?,
        status: setting(
            "payments.status",
            row.try_get("status")?,
            PaymentStatus::parse,
        )?,
        customer_id: row.try_get("customer_id")?,
        plan_id: row.try_get("plan_id")?,
        subscription_id: row.try_get("subscription_id")?,
        payment_intent: row.try_get("payment_intent")?,
        charge: row.try_get("charge")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        event_id: row.try_get("event_id")?,
        license_ids: Vec::new(),
        created: from_db(row.try_get("created_at")?),
        updated: from_db(row.try_get("updated_at")?),
    })
}

pub(crate) const SUBSCRIPTION_COLUMNS: &str =
    "provider, subscription_id, license_id, plan_id, customer_id, \
     status, quantity, cancel_at_period_end, period_end, paid_through, paid_at, order_id, \
     dunning_blocked, state_at, state_event, shape_at, shape_event, license_expires";

pub(crate) fn subscription(row: &AnyRow) -> Result<Subscription> {
    Ok(Subscription {
        provider: row.try_get("provider")?,
        subscription_id: row.try_get("subscription_id")?,
        license_id: row.try_get("license_id")?,
        plan_id: row.try_get("plan_id")?,
        customer_id: row.try_get("customer_id")?,
        status: SubscriptionStatus::parse(&row.try_get::<String, _>("status")?),
        quantity: row.try_get("quantity")?,
        cancel_at_period_end: row.try_get::<i64, _>("cancel_at_period_end")? != 0,
        period_end: opt_from_db(row.try_get("period_end")?),
        paid_through: opt_from_db(row.try_get("paid_through")?),
        paid_at: opt_from_db(row.try_get("paid_at")?),
        license_expires: opt_from_db(row.try_get("license_expires")?),
        order_id: row.try_get("order_id")?,
        dunning_blocked: row.try_get::<i64, _>("dunning_blocked")? != 0,
        state_at: from_db(row.try_get("state_at")?),
        state_event: row.try_get("state_event")?,
        shape_at: from_db(row.try_get("shape_at")?),
        shape_event: row.try_get("shape_event")?,
    })
}

impl Session {
    /// Records an event's arrival and holds its row until commit, so two deliveries of one event
    /// are handled one after the other. Returns the status it had before, if it was known.
    pub async fn claim_provider_event(
        &mut self,
        e: &IncomingEvent<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<ProviderEventStatus>> {
        let inserted = sqlx::query(
            "INSERT INTO provider_events (provider, event_id, type, created_at, received_at, \
             status, detail, payload, attempts) VALUES ($1, $2, $3, $4, $5, 'processing', '', $6, 1) \
             ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(e.provider)
        .bind(e.event_id)
        .bind(e.event_type)
        .bind(to_db(e.created))
        .bind(to_db(now))
        .bind(e.payload)
        .execute(self.conn())
        .await?
        .rows_affected()
            == 1;
        if inserted {
            return Ok(None);
        }
        let sql = format!(
            "SELECT status FROM provider_events WHERE provider = $1 AND event_id = $2{}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(e.provider)
            .bind(e.event_id)
            .fetch_one(self.conn())
            .await?;
        Ok(Some(setting(
            "provider_events.status",
            row.try_get("status")?,
            ProviderEventStatus::parse,
        )?))
    }

    pub async fn finish_provider_event(
        &mut self,
        provider: &str,
        event_id: &str,
        status: ProviderEventStatus,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE provider_events SET status = $1, detail = $2, \
             attempts = CASE WHEN status = 'processing' THEN attempts ELSE attempts + 1 END \
             WHERE provider = $3 AND event_id = $4",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(provider)
        .bind(event_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Keeps a failed event (and why) so it shows in the API; redelivery applies it again.
    pub async fn record_failed_event(
        &mut self,
        e: &IncomingEvent<'_>,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO provider_events (provider, event_id, type, created_at, received_at, \
             status, detail, payload, attempts) VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7, 1) \
             ON CONFLICT (provider, event_id) DO UPDATE SET detail = excluded.detail, \
             attempts = provider_events.attempts + 1 WHERE provider_events.status = 'failed'",
        )
        .bind(e.provider)
        .bind(e.event_id)
        .bind(e.event_type)
        .bind(to_db(e.created))
        .bind(to_db(now))
        .bind(detail)
        .bind(e.payload)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn provider_event(
        &mut self,
        provider: &str,
        event_id: &str,
    ) -> Result<Option<ProviderEvent>> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS}, payload FROM provider_events WHERE provider = $1 AND event_id = $2"
        ))
        .bind(provider)
        .bind(event_id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(|r| provider_event(r, true)).transpose()
    }

    /// Newest first; `before` is a provider time in ms to page backwards.
    pub async fn provider_events(
        &mut self,
        provider: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ProviderEvent>> {
        let before = before.unwrap_or(i64::MAX);
        let rows = match provider {
            Some(p) => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM provider_events WHERE provider = $1 AND created_at < $2 \
                     ORDER BY created_at DESC, event_id LIMIT $3"
                ))
                .bind(p)
                .bind(before)
                .bind(limit)
                .fetch_all(self.conn())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {EVENT_COLUMNS} FROM provider_events WHERE created_at < $1 \
                     ORDER BY created_at DESC, event_id LIMIT $2"
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(self.conn())
                .await?
            }
        };
        rows.iter().map(|r| provider_event(r, false)).collect()
    }

    /// The provider time of the newest event that was applied or ignored (not failed).
    pub async fn latest_handled_event(&mut self, provider: &str) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MAX(created_at) AS latest FROM provider_events \
             WHERE provider = $1 AND status IN ('applied', 'ignored')",
        )
        .bind(provider)
        .fetch_one(self.conn())
        .await?;
        Ok(opt_from_db(row.try_get("latest")?))
    }

    /// Inserts a payment unless one exists for the business object; returns it either way, and
    /// whether it is new.
    pub async fn upsert_payment(
        &mut self,
        p: &NewPayment,
        now: DateTime<Utc>,
    ) -> Result<(Payment, bool)> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO payments (provider, object_kind, object_id, status, customer_id, plan_id, \
             subscription_id, payment_intent, charge, amount, currency, event_id, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
             ON CONFLICT (provider, object_kind, object_id) DO NOTHING RETURNING {PAYMENT_COLUMNS}"
        ))
        .bind(&p.provider)
        .bind(p.object_kind.as_str())
        .bind(&p.object_id)
        .bind(p.status.as_str())
        .bind(p.customer_id)
        .bind(p.plan_id)
        .bind(p.subscription_id.as_deref())
        .bind(p.payment_intent.as_deref())
        .bind(p.charge.as_deref())
        .bind(p.amount)
        .bind(p.currency.as_deref())
        .bind(&p.event_id)
        .bind(to_db(now))
        .fetch_optional(self.conn())
        .await?;
        if let Some(row) = inserted {
            return Ok((payment(&row)?, true));
        }
        let sql = format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE provider = $1 AND object_kind = $2 \
             AND object_id = $3{}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(&p.provider)
            .bind(p.object_kind.as_str())
            .bind(&p.object_id)
            .fetch_one(self.conn())
            .await?;
        let mut existing = payment(&row)?;
        existing.license_ids = self.payment_license_ids(existing.id).await?;
        Ok((existing, false))
    }

    /// Updates what a later event learned about a payment.
    pub async fn update_payment(&mut self, p: &Payment, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE payments SET status = $1, customer_id = $2, plan_id = $3, subscription_id = $4, \
             payment_intent = $5, charge = $6, amount = $7, currency = $8, event_id = $9, \
             updated_at = $10 WHERE id = $11",
        )
        .bind(p.status.as_str())
        .bind(p.customer_id)
        .bind(p.plan_id)
        .bind(p.subscription_id.as_deref())
        .bind(p.payment_intent.as_deref())
        .bind(p.charge.as_deref())
        .bind(p.amount)
        .bind(p.currency.as_deref())
        .bind(&p.event_id)
        .bind(to_db(now))
        .bind(p.id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn link_payment_license(&mut self, payment_id: i64, license_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO payment_licenses (payment_id, license_id) VALUES ($1, $2) \
             ON CONFLICT (payment_id, license_id) DO NOTHING",
        )
        .bind(payment_id)
        .bind(license_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn payment_license_ids(&mut self, payment_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT license_id FROM payment_licenses WHERE payment_id = $1 ORDER BY license_id",
        )
        .bind(payment_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| r.try_get("license_id").map_err(Into::into))
            .collect()
    }

    /// Payments made with a payment intent or charge.
    pub async fn payments_by_money(
        &mut self,
        provider: &str,
        reference: &str,
    ) -> Result<Vec<Payment>> {
        let rows = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE provider = $1 \
             AND (payment_intent = $2 OR charge = $2) ORDER BY id"
        ))
        .bind(provider)
        .bind(reference)
        .fetch_all(self.conn())
        .await?;
        let mut out = rows.iter().map(payment).collect::<Result<Vec<_>>>()?;
        for p in &mut out {
            p.license_ids = self.payment_license_ids(p.id).await?;
        }
        Ok(out)
    }

    pub async fn payment(&mut self, id: i64) -> Result<Option<Payment>> {
        let row = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut p = payment(&row)?;
        p.license_ids = self.payment_license_ids(p.id).await?;
        Ok(Some(p))
    }

    /// Payments in id order after `after`, optionally only those that bought `license_id`.
    pub async fn payments(
        &mut self,
        license_id: Option<i64>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Payment>> {
        let after = after.unwrap_or(0);
        let rows = match license_id {
            Some(l) => {
                sqlx::query(&format!(
                    "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id > $1 AND id IN \
                     (SELECT payment_id FROM payment_licenses WHERE license_id = $2) \
                     ORDER BY id LIMIT $3"
                ))
                .bind(after)
                .bind(l)
                .bind(limit)
                .fetch_all(self.conn())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(self.conn())
                .await?
            }
        };
        let mut out = rows.iter().map(payment).collect::<Result<Vec<_>>>()?;
        for p in &mut out {
            p.license_ids = self.payment_license_ids(p.id).await?;
        }
        Ok(out)
    }

    /// Creates the subscription's record unless it exists, then returns it locked until commit.
    /// A new record's state time is the epoch, so the first report about it always counts.
    pub async fn claim_subscription(
        &mut self,
        provider: &str,
        subscription_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Subscription> {
        sqlx::query(
            "INSERT INTO subscriptions (provider, subscription_id, status, quantity, \
             cancel_at_period_end, dunning_blocked, state_at, created_at, updated_at) \
             VALUES ($1, $2, 'unknown', 1, 0, 0, 0, $3, $3) \
             ON CONFLICT (provider, subscription_id) DO NOTHING",
        )
        .bind(provider)
        .bind(subscription_id)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE provider = $1 \
             AND subscription_id = $2{}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(provider)
            .bind(subscription_id)
            .fetch_one(self.conn())
            .await?;
        subscription(&row)
    }

    pub async fn update_subscription(
        &mut self,
        s: &Subscription,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE subscriptions SET license_id = $1, plan_id = $2, customer_id = $3, status = $4, \
             quantity = $5, cancel_at_period_end = $6, period_end = $7, dunning_blocked = $8, \
             state_at = $9, updated_at = $10, paid_through = $13, paid_at = $14, order_id = $15, \
             state_event = $16, shape_at = $17, shape_event = $18, license_expires = $19 \
             WHERE provider = $11 AND subscription_id = $12",
        )
        .bind(s.license_id)
        .bind(s.plan_id)
        .bind(s.customer_id)
        .bind(s.status.as_str())
        .bind(s.quantity)
        .bind(i64::from(s.cancel_at_period_end))
        .bind(s.period_end.map(to_db))
        .bind(i64::from(s.dunning_blocked))
        .bind(to_db(s.state_at))
        .bind(to_db(now))
        .bind(&s.provider)
        .bind(&s.subscription_id)
        .bind(s.paid_through.map(to_db))
        .bind(s.paid_at.map(to_db))
        .bind(s.order_id.as_deref())
        .bind(&s.state_event)
        .bind(to_db(s.shape_at))
        .bind(&s.shape_event)
        .bind(s.license_expires.map(to_db))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn subscription(
        &mut self,
        provider: &str,
        subscription_id: &str,
    ) -> Result<Option<Subscription>> {
        let row = sqlx::query(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE provider = $1 AND subscription_id = $2"
        ))
        .bind(provider)
        .bind(subscription_id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(subscription).transpose()
    }

    /// The subscriptions that keep a license paid for.
    pub async fn license_subscriptions(&mut self, license_id: i64) -> Result<Vec<Subscription>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE license_id = $1 \
             ORDER BY created_at, subscription_id"
        ))
        .bind(license_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(subscription).collect()
    }

    /// The subscription that adopted a store order's license, if one has reported that order.
    pub async fn subscription_by_order(
        &mut self,
        provider: &str,
        order_id: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT subscription_id FROM subscriptions WHERE provider = $1 AND order_id = $2 \
             ORDER BY subscription_id LIMIT 1",
        )
        .bind(provider)
        .bind(order_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("subscription_id")).transpose()?)
    }

    /// Links every payment made for a subscription (not the failed ones) to its license, for
    /// payments that arrived before the license existed. Returns them.
    pub async fn link_subscription_payments(
        &mut self,
        provider: &str,
        subscription_id: &str,
        license_id: i64,
    ) -> Result<Vec<Payment>> {
        sqlx::query(
            "INSERT INTO payment_licenses (payment_id, license_id) SELECT id, $3 FROM payments \
             WHERE provider = $1 AND subscription_id = $2 AND status <> 'failed' \
             ON CONFLICT (payment_id, license_id) DO NOTHING",
        )
        .bind(provider)
        .bind(subscription_id)
        .bind(license_id)
        .execute(self.conn())
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE provider = $1 AND subscription_id = $2 \
             AND status <> 'failed' ORDER BY id"
        ))
        .bind(provider)
        .bind(subscription_id)
        .fetch_all(self.conn())
        .await?;
        let mut out = rows.iter().map(payment).collect::<Result<Vec<_>>>()?;
        for p in &mut out {
            p.license_ids = self.payment_license_ids(p.id).await?;
        }
        Ok(out)
    }

    /// Whether a payment that bought the license was refunded or disputed.
    pub async fn license_reversed(&mut self, license_id: i64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM payments p JOIN payment_licenses pl ON pl.payment_id = p.id \
             WHERE pl.license_id = $1 AND p.status IN ('refunded', 'disputed')",
        )
        .bind(license_id)
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Remembers which payment intent or charge settled an object (an invoice).
    pub async fn insert_payment_link(
        &mut self,
        provider: &str,
        object_kind: ObjectKind,
        object_id: &str,
        payment_intent: Option<&str>,
        charge: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO payment_links (provider, object_kind, object_id, payment_intent, charge, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, object_kind, object_id) \
             DO UPDATE SET payment_intent = COALESCE(payment_links.payment_intent, excluded.payment_intent), \
             charge = COALESCE(payment_links.charge, excluded.charge)",
        )
        .bind(provider)
        .bind(object_kind.as_str())
        .bind(object_id)
        .bind(payment_intent)
        .bind(charge)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The payment intent and charge that settled an object, when reported apart from it.
    pub async fn payment_link(
        &mut self,
        provider: &str,
        object_kind: ObjectKind,
        object_id: &str,
    ) -> Result<Option<(Option<String>, Option<String>)>> {
        let row = sqlx::query(
            "SELECT payment_intent, charge FROM payment_links WHERE provider = $1 \
             AND object_kind = $2 AND object_id = $3",
        )
        .bind(provider)
        .bind(object_kind.as_str())
        .bind(object_id)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| Ok((r.try_get("payment_intent")?, r.try_get("charge")?)))
            .transpose()
    }

    /// Remembers a refund or dispute; `false` when it was already known.
    pub async fn insert_reversal(
        &mut self,
        provider: &str,
        reference: &str,
        kind: Reversal,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO payment_reversals (provider, reference, kind, event_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, reference) DO NOTHING",
        )
        .bind(provider)
        .bind(reference)
        .bind(kind.as_str())
        .bind(event_id)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A refund or dispute already reported for this payment intent or charge.
    pub async fn reversal(&mut self, provider: &str, reference: &str) -> Result<Option<Reversal>> {
        let row = sqlx::query(
            "SELECT kind FROM payment_reversals WHERE provider = $1 AND reference = $2",
        )
        .bind(provider)
        .bind(reference)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            setting(
                "payment_reversals.kind",
                r.try_get("kind")?,
                Reversal::parse,
            )
        })
        .transpose()
    }

    /// The customer a provider knows by `external_id`.
    pub async fn customer_by_provider_id(
        &mut self,
        provider: &str,
        external_id: &str,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT customer_id FROM customer_provider_ids WHERE provider = $1 AND external_id = $2",
        )
        .bind(provider)
        .bind(external_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("customer_id")).transpose()?)
    }

    pub async fn customer_by_email(&mut self, email: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM customers WHERE email = $1 ORDER BY id LIMIT 1")
            .bind(email)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// Records the id a provider knows a customer by, unless the customer has one from that
    /// provider already. An id another customer holds is a conflict.
    pub async fn set_customer_provider_id(
        &mut self,
        customer_id: i64,
        provider: &str,
        external_id: &str,
    ) -> Result<()> {
        let known = sqlx::query(
            "SELECT external_id FROM customer_provider_ids WHERE customer_id = $1 AND provider = $2",
        )
        .bind(customer_id)
        .bind(provider)
        .fetch_optional(self.conn())
        .await?;
        if known.is_none() {
            sqlx::query(
                "INSERT INTO customer_provider_ids (provider, external_id, customer_id) \
                 VALUES ($1, $2, $3)",
            )
            .bind(provider)
            .bind(external_id)
            .bind(customer_id)
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }
}
