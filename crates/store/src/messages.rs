use chrono::{DateTime, Utc};
use keyturn_core::Message;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{Result, Session};

const COLUMNS: &str = "id, product_id, channel, content, created_at";

fn message(row: &AnyRow) -> Result<Message> {
    Ok(Message {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        channel: row.try_get("channel")?,
        content: row.try_get("content")?,
        created: from_db(row.try_get("created_at")?),
    })
}

/// Which messages a listing returns.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only what this product's programs see: its messages and those for every product.
    pub product_id: Option<i64>,
    pub channel: Option<String>,
    /// Only those published strictly after this.
    pub after: Option<DateTime<Utc>>,
    /// The newest this many.
    pub limit: i64,
}

impl Session {
    pub async fn insert_message(
        &mut self,
        product_id: Option<i64>,
        channel: &str,
        content: &str,
        created: DateTime<Utc>,
    ) -> Result<Message> {
        let row = sqlx::query(&format!(
            "INSERT INTO messages (product_id, channel, content, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        ))
        .bind(product_id)
        .bind(channel)
        .bind(content)
        .bind(to_db(created))
        .fetch_one(self.conn())
        .await?;
        message(&row)
    }

    pub async fn message(&mut self, id: i64) -> Result<Option<Message>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM messages WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(message).transpose()
    }

    /// The newest messages that pass `f`, oldest first.
    pub async fn messages(&mut self, f: &MessageFilter) -> Result<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM messages WHERE created_at > $1 \
             AND ($2 IS NULL OR product_id IS NULL OR product_id = $2) \
             AND ($3 IS NULL OR channel = $3) ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(f.after.map_or(i64::MIN, to_db))
        .bind(f.product_id)
        .bind(f.channel.as_deref())
        .bind(f.limit)
        .fetch_all(self.conn())
        .await?;
        let mut newest: Vec<Message> = rows.iter().map(message).collect::<Result<_>>()?;
        newest.reverse();
        Ok(newest)
    }

    pub async fn delete_message(&mut self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM messages WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
