use chrono::{DateTime, Utc};
use keyturn_core::Customer;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{Result, Session};

const COLUMNS: &str = "id, name, email, company, created_at";

fn customer(row: &AnyRow) -> Result<Customer> {
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

    /// Customers in id order after `after`, optionally only those with `email`.
    pub async fn customers(
        &mut self,
        email: Option<&str>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Customer>> {
        let after = after.unwrap_or(0);
        let rows = match email {
            Some(email) => {
                sqlx::query(&format!(
                "SELECT {COLUMNS} FROM customers WHERE email = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
                .bind(email)
                .bind(after)
                .bind(limit)
                .fetch_all(self.conn())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM customers WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(self.conn())
                .await?
            }
        };
        rows.iter().map(customer).collect()
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
