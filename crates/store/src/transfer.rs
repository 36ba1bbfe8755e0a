//! Moving an installation's licensing data between databases (SQLite to PostgreSQL and back),
//! and copying a served SQLite database.
//!
//! Invariants:
//! - The export reads one snapshot (a read transaction), page by page in key order, so rows
//!   written meanwhile are either all in it or all out of it, and memory stays bounded by one
//!   page whatever the size of the installation.
//! - Rows keep their ids. References between them therefore need no remapping, and a license
//!   key, a customer's id or a product's id printed anywhere still points at the same thing.
//! - The import goes into an empty installation, in one transaction: it is all there or none of
//!   it is, and running it again is refused rather than doubling anything.
//! - Signing keys travel as stored: sealed with the master key when one was configured, so the
//!   installation they land in needs that same master key.
//!
//! Only the tables in [`TABLES`] travel: the catalogue, customers, licenses with their machines
//! and their audit log.
//! Payments, subscriptions, tokens, console users, outboxes and logs stay behind (a full copy of
//! a SQLite installation is what [`Store::backup_sqlite_into`] makes).

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Dialect, Result, Session, Store, StoreError};

/// How a column is bound and read: both schemas keep times, flags and ids as integers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
}
use Kind::{Int, Text};

/// One table that travels: its columns, and the columns its rows are ordered and paged by.
pub struct Table {
    pub name: &'static str,
    columns: &'static [(&'static str, Kind)],
    key: &'static [&'static str],
    /// Has an `id` column its database generates (a sequence to move past imported ids).
    generated_id: bool,
}

/// The tables, parents before children: a row's references are always imported before it.
pub static TABLES: &[Table] = &[
    Table {
        name: "products",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("features", Text),
            ("created_at", Int),
            ("public_notes", Int),
            ("public_metadata", Text),
            ("block_expired_licenses", Int),
            ("description", Text),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "signing_keys",
        columns: &[
            ("product_id", Int),
            ("algorithm", Text),
            ("private_key", Text),
            ("public_key", Text),
            ("created_at", Int),
        ],
        key: &["product_id", "algorithm"],
        generated_id: false,
    },
    Table {
        name: "plans",
        columns: &[
            ("id", Int),
            ("product_id", Int),
            ("name", Text),
            ("period_days", Int),
            ("features", Text),
            ("max_machines", Int),
            ("floating_lease_seconds", Int),
            ("trial", Int),
            ("grace_days", Int),
            ("created_at", Int),
            ("stripe_price_ids", Text),
            ("quantity_mode", Text),
            ("dunning", Text),
            ("on_cancel", Text),
            ("store_product_ids", Text),
            ("buyers_may_free_machines", Int),
            ("buyer_frees_max", Int),
            ("buyer_frees_days", Int),
            ("buyers_may_download_files", Int),
            ("buyer_file_days", Int),
            ("expiry_reminder_days", Int),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "customers",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("email", Text),
            ("company", Text),
            ("created_at", Int),
            ("secret_hash", Text),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "customer_provider_ids",
        columns: &[
            ("provider", Text),
            ("external_id", Text),
            ("customer_id", Int),
        ],
        key: &["provider", "external_id"],
        generated_id: false,
    },
    Table {
        name: "licenses",
        columns: &[
            ("id", Int),
            ("key", Text),
            ("product_id", Int),
            ("plan_id", Int),
            ("customer_id", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("expires_at", Int),
            ("period_days", Int),
            ("features", Text),
            ("max_machines", Int),
            ("floating_lease_seconds", Int),
            ("trial", Int),
            ("notes", Text),
            ("blocked", Int),
            ("metadata", Text),
            ("trial_activation", Int),
            ("allowed_machines", Text),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "activations",
        columns: &[
            ("id", Int),
            ("license_id", Int),
            ("fingerprint", Text),
            ("name", Text),
            ("ip", Text),
            ("created_at", Int),
            ("last_seen_at", Int),
            ("lease_expires_at", Int),
            ("overdraft", Int),
            ("os_info", Text),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "license_events",
        columns: &[
            ("id", Int),
            ("license_id", Int),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("details", Text),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "data_objects",
        columns: &[
            ("id", Int),
            ("product_id", Int),
            ("license_id", Int),
            ("activation_id", Int),
            ("name", Text),
            ("string_value", Text),
            ("int_value", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        key: &["id"],
        generated_id: true,
    },
    Table {
        name: "trials",
        columns: &[
            ("product_id", Int),
            ("fingerprint", Text),
            ("license_id", Int),
            ("created_at", Int),
        ],
        key: &["product_id", "fingerprint"],
        generated_id: false,
    },
];

/// Rows read per statement of an export.
const PAGE: i64 = 500;

/// Rows per table, in [`TABLES`] order.
pub type Counts = Vec<(&'static str, u64)>;

fn value(row: &AnyRow, index: usize, kind: Kind) -> Result<Value> {
    Ok(match kind {
        Int => row
            .try_get::<Option<i64>, _>(index)?
            .map_or(Value::Null, Value::from),
        Text => row
            .try_get::<Option<String>, _>(index)?
            .map_or(Value::Null, Value::from),
    })
}

fn bind<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    table: &str,
    column: &str,
    kind: Kind,
    v: &Value,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
    let bad = || StoreError::Corrupt(format!("{table}.{column}: unexpected value {v}"));
    Ok(match (kind, v) {
        (Int, Value::Null) => query.bind(None::<i64>),
        (Text, Value::Null) => query.bind(None::<String>),
        (Int, Value::Number(n)) => query.bind(n.as_i64().ok_or_else(bad)?),
        (Text, Value::String(s)) => query.bind(s.clone()),
        _ => return Err(bad()),
    })
}

impl Session {
    /// One page of `table` after the key `after` (the first page when `None`).
    async fn export_page(
        &mut self,
        table: &Table,
        after: Option<&[Value]>,
    ) -> Result<Vec<Map<String, Value>>> {
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let key = table.key.join(", ");
        let mut sql = format!("SELECT {} FROM {}", columns.join(", "), table.name);
        if after.is_some() {
            let params: Vec<String> = (1..=table.key.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" WHERE ({key}) > ({})", params.join(", ")));
        }
        sql.push_str(&format!(" ORDER BY {key} LIMIT {PAGE}"));
        let mut query = sqlx::query(&sql);
        if let Some(after) = after {
            for (name, v) in table.key.iter().zip(after) {
                let kind = table
                    .columns
                    .iter()
                    .find(|(c, _)| c == name)
                    .map_or(Text, |(_, k)| *k);
                query = bind(query, table.name, name, kind, v)?;
            }
        }
        let rows = query.fetch_all(self.conn()).await?;
        rows.iter()
            .map(|row| {
                let mut out = Map::new();
                for (i, (name, kind)) in table.columns.iter().enumerate() {
                    out.insert((*name).to_owned(), value(row, i, *kind)?);
                }
                Ok(out)
            })
            .collect()
    }

    /// Whether any table that travels holds a row.
    async fn holds_data(&mut self) -> Result<Option<&'static str>> {
        for table in TABLES {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM {} LIMIT 1) AS t",
                table.name
            );
            let n: i64 = sqlx::query_scalar(&sql).fetch_one(self.conn()).await?;
            if n > 0 {
                return Ok(Some(table.name));
            }
        }
        Ok(None)
    }

    async fn import_row(&mut self, table: &Table, row: &Map<String, Value>) -> Result<()> {
        let mut names = Vec::with_capacity(row.len());
        for name in row.keys() {
            if !table.columns.iter().any(|(c, _)| c == name) {
                return Err(StoreError::Corrupt(format!(
                    "{}.{name} is not a column this version knows (an export of a newer \
                     Keyturn?)",
                    table.name
                )));
            }
            names.push(name.as_str());
        }
        let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            names.join(", "),
            params.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (name, v) in row {
            let kind = table
                .columns
                .iter()
                .find(|(c, _)| c == name)
                .map_or(Text, |(_, k)| *k);
            query = bind(query, table.name, name, kind, v)?;
        }
        query.execute(self.conn()).await?;
        Ok(())
    }

    /// Moves PostgreSQL's id sequences past the imported ids (SQLite's AUTOINCREMENT does so by
    /// itself when a row is inserted with its id).
    async fn advance_sequences(&mut self) -> Result<()> {
        if self.dialect != Dialect::Postgres {
            return Ok(());
        }
        for table in TABLES.iter().filter(|t| t.generated_id) {
            let sql = format!(
                "SELECT COUNT(setval(pg_get_serial_sequence('{0}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {0}), 0) + 1, false)) AS n",
                table.name
            );
            sqlx::query(&sql).execute(self.conn()).await?;
        }
        Ok(())
    }
}

/// What a SQLite database file holds, as [`Store::check_sqlite_copy`] found it.
#[derive(Debug)]
pub struct CopyCheck {
    /// Migrations applied, newest last.
    pub applied: Vec<i64>,
    /// Migrations this build has that the copy has not applied yet (`serve` applies them).
    pub pending: usize,
    pub products: i64,
    pub licenses: i64,
}

impl Store {
    /// The newest migration this build knows.
    pub fn schema_version(&self) -> i64 {
        crate::migrator(self.dialect)
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }

    /// Writes every row of [`TABLES`] to `each` (table name, row), from one snapshot, table
    /// by table in import order. Returns the rows per table.
    pub async fn export_data(
        &self,
        mut each: impl FnMut(&str, Map<String, Value>) -> std::io::Result<()>,
    ) -> Result<Counts> {
        let mut session = self.read().await?;
        session.begin_snapshot().await?;
        let mut counts = Vec::new();
        for table in TABLES {
            let mut n = 0u64;
            let mut after: Option<Vec<Value>> = None;
            loop {
                let page = session.export_page(table, after.as_deref()).await?;
                let full = page.len() as i64 == PAGE;
                if let Some(last) = page.last() {
                    after = Some(table.key.iter().map(|k| last[*k].clone()).collect());
                }
                for row in page {
                    each(table.name, row)
                        .map_err(|e| StoreError::Config(format!("cannot write the export: {e}")))?;
                    n += 1;
                }
                if !full {
                    break;
                }
            }
            counts.push((table.name, n));
        }
        // Nothing to commit: ending the read transaction is all.
        session.commit().await?;
        Ok(counts)
    }

    /// Imports rows (table name, row) as [`Store::export_data`] wrote them, into an installation
    /// that holds none of these tables' rows yet, in one transaction. `rows` is pulled one row
    /// at a time; an error it yields ends the import with nothing stored.
    pub async fn import_data(
        &self,
        rows: impl Iterator<Item = std::result::Result<(String, Map<String, Value>), String>>,
    ) -> Result<Counts> {
        let mut session = self.write().await?;
        if let Some(table) = session.holds_data().await? {
            return Err(StoreError::Conflict(format!(
                "this database already holds {table}: import into an empty installation \
                 (a fresh --data-dir, or a new PostgreSQL database after `keyturn migrate`)"
            )));
        }
        let mut counts: Counts = TABLES.iter().map(|t| (t.name, 0)).collect();
        for row in rows {
            let (name, row) = row.map_err(StoreError::Corrupt)?;
            let Some(index) = TABLES.iter().position(|t| t.name == name) else {
                return Err(StoreError::Corrupt(format!("unknown table {name}")));
            };
            session.import_row(&TABLES[index], &row).await?;
            counts[index].1 += 1;
        }
        session.advance_sequences().await?;
        session.commit().await?;
        Ok(counts)
    }

    /// Writes a consistent copy of this SQLite database to `target`, which must not exist or be
    /// empty, while the database stays open for writes (`VACUUM INTO` reads one snapshot).
    pub async fn backup_sqlite_into(&self, target: &std::path::Path) -> Result<()> {
        if self.dialect != Dialect::Sqlite {
            return Err(StoreError::Config(
                "a file copy is for SQLite; export a PostgreSQL database instead".into(),
            ));
        }
        let target = target
            .to_str()
            .ok_or_else(|| StoreError::Config("the backup path is not valid UTF-8".into()))?;
        let mut session = self.read().await?;
        sqlx::query("VACUUM INTO $1")
            .bind(target.to_owned())
            .execute(session.conn())
            .await?;
        Ok(())
    }

    /// Checks that the SQLite database this store has open is a sound Keyturn database that
    /// this build can run: intact pages, Keyturn's migrations and none newer than it knows.
    pub async fn check_sqlite_copy(&self) -> Result<CopyCheck> {
        let known: Vec<i64> = crate::migrator(self.dialect)
            .iter()
            .map(|m| m.version)
            .collect();
        let mut session = self.read().await?;
        let checked: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(session.conn())
            .await?;
        if checked != ["ok"] {
            return Err(StoreError::Corrupt(format!(
                "the file is damaged: {}",
                checked.join("; ")
            )));
        }
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
        )
        .fetch_all(session.conn())
        .await
        .map_err(|_| StoreError::Corrupt("not a Keyturn database (no migrations)".into()))?;
        if !applied.contains(&1) {
            return Err(StoreError::Corrupt(
                "not a Keyturn database (its first migration is missing)".into(),
            ));
        }
        if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
            return Err(StoreError::Config(format!(
                "the database has migration {newer}, which this version of Keyturn does not \
                 know: restore it with the version that made it"
            )));
        }
        let count = |t: &str| format!("SELECT COUNT(*) AS n FROM {t}");
        let products: i64 = sqlx::query_scalar(&count("products"))
            .fetch_one(session.conn())
            .await?;
        let licenses: i64 = sqlx::query_scalar(&count("licenses"))
            .fetch_one(session.conn())
            .await?;
        Ok(CopyCheck {
            pending: known.iter().filter(|v| !applied.contains(v)).count(),
            applied,
            products,
            licenses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column of a travelling table is exported: a migration adding one must add it to
    /// [`TABLES`] too, or exports would silently drop it.
    #[tokio::test]
    async fn every_column_travels() {
        let dir = std::env::temp_dir().join(format!("keyturn-transfer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_sqlite(&dir, &crate::StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut session = store.read().await.unwrap();
        for table in TABLES {
            let columns: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT name FROM pragma_table_info('{}')",
                table.name
            ))
            .fetch_all(session.conn())
            .await
            .unwrap();
            let mut have: Vec<String> = columns;
            have.sort();
            let mut listed: Vec<String> =
                table.columns.iter().map(|(c, _)| (*c).to_owned()).collect();
            listed.sort();
            assert_eq!(have, listed, "the columns of {}", table.name);
        }
        drop(session);
        store.close(std::time::Duration::from_secs(1)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
