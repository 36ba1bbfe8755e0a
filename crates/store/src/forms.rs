use chrono::{DateTime, Utc};
use keyturn_core::payment::{Checkout, Offer, PaymentForm};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{parse_json, Result, Session};

const COLUMNS: &str = "id, public_id, name, product_id, offers, success_text, email_subject, \
                       email_body, created_at, description, tax_note";

fn form(row: &AnyRow) -> Result<PaymentForm> {
    Ok(PaymentForm {
        id: row.try_get("id")?,
        public_id: row.try_get("public_id")?,
        name: row.try_get("name")?,
        product_id: row.try_get("product_id")?,
        offers: parse_json("payment_forms.offers", &row.try_get::<String, _>("offers")?)?,
        description: row.try_get("description")?,
        tax_note: row.try_get("tax_note")?,
        success_text: row.try_get("success_text")?,
        email_subject: row.try_get("email_subject")?,
        email_body: row.try_get("email_body")?,
        created: from_db(row.try_get("created_at")?),
    })
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_form(
        &mut self,
        public_id: &str,
        name: &str,
        product_id: i64,
        offers: &[Offer],
        success_text: &str,
        email: (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<PaymentForm> {
        let row = sqlx::query(&format!(
            "INSERT INTO payment_forms (public_id, name, product_id, offers, success_text, \
             email_subject, email_body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $7, $8, $6) RETURNING {COLUMNS}"
        ))
        .bind(public_id)
        .bind(name)
        .bind(product_id)
        .bind(serde_json::to_string(offers).expect("offers serialise"))
        .bind(success_text)
        .bind(to_db(now))
        .bind(email.0)
        .bind(email.1)
        .fetch_one(self.conn())
        .await?;
        form(&row)
    }

    pub async fn form_by_public_id(&mut self, public_id: &str) -> Result<Option<PaymentForm>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_forms WHERE public_id = $1"
        ))
        .bind(public_id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(form).transpose()
    }

    pub async fn form(&mut self, id: i64) -> Result<Option<PaymentForm>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_forms WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(form).transpose()
    }

    pub async fn forms(&mut self) -> Result<Vec<PaymentForm>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM payment_forms ORDER BY id"))
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(form).collect()
    }

    /// One page of payment forms in id order after `after`.
    pub async fn forms_after(&mut self, after: i64, limit: i64) -> Result<Vec<PaymentForm>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM payment_forms WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(form).collect()
    }

    /// Writes what a vendor may change on a form: everything but its ids, product and age.
    pub async fn update_form(&mut self, f: &PaymentForm) -> Result<()> {
        sqlx::query(
            "UPDATE payment_forms SET name = $1, offers = $2, success_text = $3, \
             email_subject = $4, email_body = $5, description = $7, tax_note = $8 WHERE id = $6",
        )
        .bind(&f.name)
        .bind(serde_json::to_string(&f.offers).expect("offers serialise"))
        .bind(&f.success_text)
        .bind(&f.email_subject)
        .bind(&f.email_body)
        .bind(f.id)
        .bind(&f.description)
        .bind(&f.tax_note)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn insert_checkout(&mut self, c: &Checkout) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkouts (session_id, form_id, provider, plan_id, quantity, buyer_name, \
             buyer_email, created_at, amount, currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.session_id)
        .bind(c.form_id)
        .bind(&c.provider)
        .bind(c.plan_id)
        .bind(c.quantity)
        .bind(&c.buyer_name)
        .bind(&c.buyer_email)
        .bind(to_db(c.created))
        .bind(c.amount)
        .bind(c.currency.as_deref())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn checkout(&mut self, session_id: &str) -> Result<Option<Checkout>> {
        let row = sqlx::query(
            "SELECT session_id, form_id, provider, plan_id, quantity, buyer_name, buyer_email, \
             amount, currency, created_at FROM checkouts WHERE session_id = $1",
        )
        .bind(session_id)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(Checkout {
                session_id: r.try_get("session_id")?,
                form_id: r.try_get("form_id")?,
                provider: r.try_get("provider")?,
                plan_id: r.try_get("plan_id")?,
                quantity: r.try_get("quantity")?,
                buyer_name: r.try_get("buyer_name")?,
                buyer_email: r.try_get("buyer_email")?,
                amount: r.try_get("amount")?,
                currency: r.try_get("currency")?,
                created: from_db(r.try_get("created_at")?),
            })
        })
        .transpose()
    }
}
