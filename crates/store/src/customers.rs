use chrono::{DateTime, Utc};
use keyturn_core::{Customer, TokenHash};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{Result, Session};

pub(crate) const COLUMNS: &str = "id, name, email, company, created_at";

pub(crate) fn customer(row: &AnyRow) -> Result<Customer> {
    Ok(Customer {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        company: row.try_get("company")?,
        created: from_db(row.try_get("created_at")?),
    })
}

impl Session {
    pub async fn insert_customer(
        &mut self,
        name: &str,
        email: Option<&str>,
        company: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Customer> {
        let row = sqlx::query(&format!(
            "INSERT INTO customers (name, email, company, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(email)
        .bind(company)
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        customer(&row)
    }

    pub async fn customer(&mut self, id: i64) -> Result<Option<Customer>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(customer).transpose()
    }

    /// Customers in id order after `after`, optionally only those with `email`, and only those
    /// holding a license of `product_id`.
    pub async fn customers(
        &mut self,
        email: Option<&str>,
        product_id: Option<i64>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Customer>> {
        let mut sql = format!("SELECT {COLUMNS} FROM customers WHERE id > $1");
        if email.is_some() {
            sql.push_str(" AND email = $2");
        }
        if product_id.is_some() {
            let n = if email.is_some() { 3 } else { 2 };
            sql.push_str(&format!(" AND {}", holds_product(n)));
        }
        sql.push_str(&format!(
            " ORDER BY id LIMIT ${}",
            2 + usize::from(email.is_some()) + usize::from(product_id.is_some())
        ));
        let mut query = sqlx::query(&sql).bind(after.unwrap_or(0));
        if let Some(email) = email {
            query = query.bind(email);
        }
        if let Some(product_id) = product_id {
            query = query.bind(product_id);
        }
        let rows = query.bind(limit).fetch_all(self.conn()).await?;
        rows.iter().map(customer).collect()
    }

    /// Whether customer `id` holds a license of `product_id`.
    pub async fn customer_holds_product(&mut self, id: i64, product_id: i64) -> Result<bool> {
        let row = sqlx::query(&format!(
            "SELECT id FROM customers WHERE id = $1 AND {}",
            holds_product(2)
        ))
        .bind(id)
        .bind(product_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.is_some())
    }

    /// Replaces a customer's secret with the one hashed as `hash` (`None` removes it).
    pub async fn set_customer_secret(&mut self, id: i64, hash: Option<&TokenHash>) -> Result<()> {
        sqlx::query("UPDATE customers SET secret_hash = $1 WHERE id = $2")
            .bind(hash.map(TokenHash::as_str))
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The customer whose secret hashes to `hash`.
    pub async fn customer_by_secret(&mut self, hash: &TokenHash) -> Result<Option<Customer>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM customers WHERE secret_hash = $1"
        ))
        .bind(hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(customer).transpose()
    }

    /// Whether a payment or a subscription names the customer (records that keep it).
    pub async fn customer_has_payments(&mut self, id: i64) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM payments WHERE customer_id = $1 \
             UNION ALL SELECT 1 AS found FROM subscriptions WHERE customer_id = $1 LIMIT 1",
        )
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.is_some())
    }

    /// Leaves the customer's licenses without a customer; returns their ids.
    pub async fn detach_customer(&mut self, id: i64, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE licenses SET customer_id = NULL, updated_at = $2 WHERE customer_id = $1 \
             RETURNING id",
        )
        .bind(id)
        .bind(to_db(now))
        .fetch_all(self.conn())
        .await?;
        for license in &ids {
            self.touch(crate::Change::License(*license));
        }
        Ok(ids)
    }

    /// Deletes a customer that nothing names any more; `false` when there was none.
    pub async fn delete_customer(&mut self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM customers WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        self.touch(crate::Change::Customer(id));
        Ok(done.rows_affected() > 0)
    }

    pub async fn update_customer(&mut self, c: &Customer) -> Result<()> {
        sqlx::query("UPDATE customers SET name = $1, email = $2, company = $3 WHERE id = $4")
            .bind(&c.name)
            .bind(c.email.as_deref())
            .bind(c.company.as_deref())
            .bind(c.id)
            .execute(self.conn())
            .await?;
        self.touch(crate::Change::Customer(c.id));
        Ok(())
    }
}

/// The condition that a `customers` row holds a license of the product bound as `$n`.
pub(crate) fn holds_product(n: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM licenses WHERE licenses.customer_id = customers.id \
         AND licenses.product_id = ${n})"
    )
}
