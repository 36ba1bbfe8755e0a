use chrono::{DateTime, Utc};
use keyturn_core::Product;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{json_list, parse_json, Result, Session};

fn product(row: &AnyRow) -> Result<Product> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        features: parse_json("products.features", &row.try_get::<String, _>("features")?)?,
        public_notes: row.try_get::<i64, _>("public_notes")? != 0,
        public_metadata: parse_json(
            "products.public_metadata",
            &row.try_get::<String, _>("public_metadata")?,
        )?,
        block_expired_licenses: row.try_get::<i64, _>("block_expired_licenses")? != 0,
        created: from_db(row.try_get("created_at")?),
    })
}

const COLUMNS: &str = "id, name, description, features, public_notes, public_metadata, \
     block_expired_licenses, created_at";

impl Session {
    /// Inserts a product as `p` describes it (its id and creation time are given here).
    pub async fn insert_product(&mut self, p: &Product, now: DateTime<Utc>) -> Result<Product> {
        let row = sqlx::query(&format!(
            "INSERT INTO products (name, features, public_notes, public_metadata, \
             block_expired_licenses, created_at, description) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING {COLUMNS}"
        ))
        .bind(&p.name)
        .bind(json_list(&p.features))
        .bind(i64::from(p.public_notes))
        .bind(json_list(&p.public_metadata))
        .bind(i64::from(p.block_expired_licenses))
        .bind(to_db(now))
        .bind(&p.description)
        .fetch_one(self.conn())
        .await?;
        product(&row)
    }

    pub async fn product(&mut self, id: i64) -> Result<Option<Product>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(product).transpose()
    }

    /// Reads a product and holds it until commit (see [`Session::lock_license`]).
    pub async fn lock_product(&mut self, id: i64) -> Result<Option<Product>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM products WHERE id = $1{}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(product).transpose()
    }

    /// All products, or the one a restricted token may see.
    pub async fn products(&mut self, only: Option<i64>) -> Result<Vec<Product>> {
        let rows = match only {
            Some(id) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
                    .bind(id)
                    .fetch_all(self.conn())
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM products ORDER BY id"))
                    .fetch_all(self.conn())
                    .await?
            }
        };
        rows.iter().map(product).collect()
    }

    /// One page of products in id order after `after` (all, or only `only`).
    pub async fn products_after(
        &mut self,
        only: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Product>> {
        let by_id = if only.is_some() { " AND id = $3" } else { "" };
        let sql =
            format!("SELECT {COLUMNS} FROM products WHERE id > $1{by_id} ORDER BY id LIMIT $2");
        let mut query = sqlx::query(&sql).bind(after).bind(limit);
        if let Some(id) = only {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.conn()).await?;
        rows.iter().map(product).collect()
    }

    pub async fn update_product(&mut self, p: &Product) -> Result<()> {
        sqlx::query(
            "UPDATE products SET name = $1, features = $2, public_notes = $3, \
             public_metadata = $4, block_expired_licenses = $5, description = $7 WHERE id = $6",
        )
        .bind(&p.name)
        .bind(json_list(&p.features))
        .bind(i64::from(p.public_notes))
        .bind(json_list(&p.public_metadata))
        .bind(i64::from(p.block_expired_licenses))
        .bind(p.id)
        .bind(&p.description)
        .execute(self.conn())
        .await?;
        self.touch(crate::Change::Product(p.id));
        Ok(())
    }

    pub async fn insert_signing_key(
        &mut self,
        product_id: i64,
        algorithm: &str,
        private_key: &str,
        public_key: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (product_id, algorithm, private_key, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(product_id)
        .bind(algorithm)
        .bind(private_key)
        .bind(public_key)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Stores a key unless the product already has one for the algorithm (another node may have
    /// created it first); `false` when one was there.
    pub async fn insert_signing_key_if_absent(
        &mut self,
        product_id: i64,
        algorithm: &str,
        private_key: &str,
        public_key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO signing_keys (product_id, algorithm, private_key, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (product_id, algorithm) DO NOTHING",
        )
        .bind(product_id)
        .bind(algorithm)
        .bind(private_key)
        .bind(public_key)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores `private_key` as the product's key for `algorithm`, in place of any it had (a
    /// key pair brought from elsewhere). Every node drops the key it holds in memory.
    pub async fn replace_signing_key(
        &mut self,
        product_id: i64,
        algorithm: &str,
        private_key: &str,
        public_key: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO signing_keys (product_id, algorithm, private_key, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (product_id, algorithm) DO UPDATE SET \
             private_key = excluded.private_key, public_key = excluded.public_key, \
             created_at = excluded.created_at",
        )
        .bind(product_id)
        .bind(algorithm)
        .bind(private_key)
        .bind(public_key)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        self.touch(crate::Change::Product(product_id));
        Ok(())
    }

    /// The stored private key of a product for an algorithm.
    pub async fn signing_key(
        &mut self,
        product_id: i64,
        algorithm: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT private_key FROM signing_keys WHERE product_id = $1 AND algorithm = $2",
        )
        .bind(product_id)
        .bind(algorithm)
        .fetch_optional(self.conn())
        .await?;
        Ok(row.map(|r| r.try_get("private_key")).transpose()?)
    }

    /// Every stored signing key as (product, algorithm, stored private key), for re-sealing.
    pub async fn signing_keys(&mut self) -> Result<Vec<(i64, String, String)>> {
        let rows = sqlx::query(
            "SELECT product_id, algorithm, private_key FROM signing_keys \
             ORDER BY product_id, algorithm",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("product_id")?,
                    r.try_get("algorithm")?,
                    r.try_get("private_key")?,
                ))
            })
            .collect()
    }

    /// Replaces the stored form of a signing key (the key itself never changes).
    pub async fn restore_signing_key(
        &mut self,
        product_id: i64,
        algorithm: &str,
        private_key: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE signing_keys SET private_key = $1 WHERE product_id = $2 AND algorithm = $3",
        )
        .bind(private_key)
        .bind(product_id)
        .bind(algorithm)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
