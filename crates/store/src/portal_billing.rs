//! The money side of the customer portal: a buyer's subscriptions, payments and the ids the
//! payment providers know them by, all found through the (lower-cased) email a portal session
//! was opened for, as the buyer's licenses are (`portal.rs`).
//!
//! What belongs to a buyer: rows naming a customer with that email, and rows that bought or
//! renew a license of such a customer (a subscription or payment recorded before its customer
//! was known names the license only).

use keyturn_core::payment::{Payment, Subscription};
use keyturn_core::Customer;
use sqlx::Row;

use crate::{Result, Session};

/// The customers with the email `$1`, as SQL.
const OWN_CUSTOMERS: &str = "SELECT id FROM customers WHERE lower(email) = $1";

impl Session {
    /// The customers with this (lower-cased) email, in id order.
    pub async fn portal_customers(&mut self, email: &str) -> Result<Vec<Customer>> {
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM customers WHERE lower(email) = $1 ORDER BY id",
            columns = crate::customers::COLUMNS,
        ))
        .bind(email)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(crate::customers::customer).collect()
    }

    /// The subscriptions of the buyer with this (lower-cased) email: at most `limit`, the
    /// newest first.
    pub async fn portal_subscriptions(
        &mut self,
        email: &str,
        limit: i64,
    ) -> Result<Vec<Subscription>> {
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM subscriptions WHERE customer_id IN ({OWN_CUSTOMERS}) \
             OR license_id IN (SELECT id FROM licenses WHERE customer_id IN ({OWN_CUSTOMERS})) \
             ORDER BY created_at DESC, provider, subscription_id LIMIT $2",
            columns = crate::payments::SUBSCRIPTION_COLUMNS,
        ))
        .bind(email)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(crate::payments::subscription).collect()
    }

    /// The payments of the buyer with this (lower-cased) email, newest first, before the
    /// payment id `before`; each with the body of the provider event that last changed it
    /// (where a receipt link may be).
    pub async fn portal_payments(
        &mut self,
        email: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(Payment, Option<String>)>> {
        let rows = sqlx::query(&format!(
            "SELECT {columns}, (SELECT e.payload FROM provider_events e \
             WHERE e.provider = payments.provider AND e.event_id = payments.event_id) \
             AS event_payload FROM payments WHERE id < $2 AND (customer_id IN ({OWN_CUSTOMERS}) \
             OR id IN (SELECT payment_id FROM payment_licenses WHERE license_id IN \
             (SELECT id FROM licenses WHERE customer_id IN ({OWN_CUSTOMERS})))) \
             ORDER BY id DESC LIMIT $3",
            columns = crate::payments::PAYMENT_COLUMNS,
        ))
        .bind(email)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut p = crate::payments::payment(row)?;
            p.license_ids = self.payment_license_ids(p.id).await?;
            out.push((p, row.try_get("event_payload")?));
        }
        Ok(out)
    }

    /// The id `provider` knows this customer by, if any.
    pub async fn provider_customer_id(
        &mut self,
        customer_id: i64,
        provider: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT external_id FROM customer_provider_ids WHERE customer_id = $1 AND provider = $2",
        )
        .bind(customer_id)
        .bind(provider)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("external_id")).transpose()?)
    }
}
