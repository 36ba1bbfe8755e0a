use chrono::{DateTime, Utc};
use keyturn_core::data_object::Step;
use keyturn_core::{DataObject, DataOwner};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{Change, Result, Session, StoreError};

const COLUMNS: &str = "id, product_id, license_id, activation_id, name, string_value, int_value, \
                       created_at, updated_at";

fn data_object(row: &AnyRow) -> Result<DataObject> {
    let int_value: i64 = row.try_get("int_value")?;
    Ok(DataObject {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        license_id: row.try_get("license_id")?,
        activation_id: row.try_get("activation_id")?,
        name: row.try_get("name")?,
        string_value: row.try_get("string_value")?,
        int_value: i32::try_from(int_value).map_err(|_| {
            StoreError::Corrupt(format!("data_objects.int_value {int_value} is not 32-bit"))
        })?,
        created: from_db(row.try_get("created_at")?),
        updated: from_db(row.try_get("updated_at")?),
    })
}

/// The condition that selects exactly one owner's data objects, and the id it binds.
fn owned_by(owner: DataOwner) -> (&'static str, i64) {
    match owner {
        DataOwner::Product(id) => ("product_id = $1 AND license_id IS NULL", id),
        DataOwner::License(id) => ("license_id = $1 AND activation_id IS NULL", id),
        DataOwner::Machine(id) => ("activation_id = $1", id),
    }
}

/// Where the references of a new data object of `owner` come from.
#[derive(Debug, Clone, Copy)]
pub struct DataOwnerRow {
    pub owner: DataOwner,
    pub product_id: i64,
    pub license_id: Option<i64>,
}

impl Session {
    /// An owner's data objects in id order, optionally only those whose name contains
    /// `contains`.
    pub async fn data_objects(
        &mut self,
        owner: DataOwner,
        contains: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DataObject>> {
        let (condition, id) = owned_by(owner);
        let contains_sql = self.contains("name", 2);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM data_objects WHERE {condition} \
             AND ($2 = '' OR {contains_sql}) ORDER BY id LIMIT $3"
        ))
        .bind(id)
        .bind(contains.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(data_object).collect()
    }

    /// Every data object (of one product, if given) in id order.
    pub async fn all_data_objects(
        &mut self,
        product_id: Option<i64>,
        contains: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DataObject>> {
        let contains_sql = self.contains("name", 2);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM data_objects WHERE ($1 = 0 OR product_id = $1) \
             AND ($2 = '' OR {contains_sql}) ORDER BY id LIMIT $3"
        ))
        .bind(product_id.unwrap_or(0))
        .bind(contains.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(data_object).collect()
    }

    /// The ids of an owner's data objects called exactly `name`.
    pub async fn data_objects_named(&mut self, owner: DataOwner, name: &str) -> Result<Vec<i64>> {
        let (condition, id) = owned_by(owner);
        Ok(sqlx::query_scalar(&format!(
            "SELECT id FROM data_objects WHERE {condition} AND name = $2 ORDER BY id LIMIT 2"
        ))
        .bind(id)
        .bind(name)
        .fetch_all(self.conn())
        .await?)
    }

    pub async fn count_data_objects(&mut self, owner: DataOwner) -> Result<i64> {
        let (condition, id) = owned_by(owner);
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM data_objects WHERE {condition}"
        ))
        .bind(id)
        .fetch_one(self.conn())
        .await?)
    }

    pub async fn data_object(&mut self, id: i64) -> Result<Option<DataObject>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM data_objects WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(data_object).transpose()
    }

    pub async fn insert_data_object(
        &mut self,
        owner: DataOwnerRow,
        name: &str,
        string_value: &str,
        int_value: i32,
        now: DateTime<Utc>,
    ) -> Result<DataObject> {
        let activation_id = match owner.owner {
            DataOwner::Machine(id) => Some(id),
            _ => None,
        };
        let row = sqlx::query(&format!(
            "INSERT INTO data_objects (product_id, license_id, activation_id, name, string_value, \
             int_value, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             RETURNING {COLUMNS}"
        ))
        .bind(owner.product_id)
        .bind(owner.license_id)
        .bind(activation_id)
        .bind(name)
        .bind(string_value)
        .bind(i64::from(int_value))
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        let created = data_object(&row)?;
        self.touch_owner(&created);
        Ok(created)
    }

    /// Sets the values given; `None` when the object does not exist.
    pub async fn set_data_values(
        &mut self,
        id: i64,
        string_value: Option<&str>,
        int_value: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<Option<DataObject>> {
        let row = sqlx::query(&format!(
            "UPDATE data_objects SET string_value = COALESCE($1, string_value), \
             int_value = COALESCE($2, int_value), updated_at = $3 WHERE id = $4 RETURNING {COLUMNS}"
        ))
        .bind(string_value)
        .bind(int_value.map(i64::from))
        .bind(to_db(now))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        self.changed(row)
    }

    /// Moves a counter by `step` in one conditional statement, so concurrent steps serialise
    /// on the row and none passes the bounds; `None` when the object does not exist or the
    /// step would leave the bounds (then nothing changed).
    pub async fn step_data_int(
        &mut self,
        id: i64,
        step: Step,
        now: DateTime<Utc>,
    ) -> Result<Option<DataObject>> {
        let row = sqlx::query(&format!(
            "UPDATE data_objects SET int_value = int_value + $1, updated_at = $2 \
             WHERE id = $3 AND int_value + $1 BETWEEN $4 AND $5 RETURNING {COLUMNS}"
        ))
        .bind(step.delta)
        .bind(to_db(now))
        .bind(id)
        .bind(step.min)
        .bind(step.max)
        .fetch_optional(self.conn())
        .await?;
        self.changed(row)
    }

    pub async fn delete_data_object(&mut self, id: i64) -> Result<Option<DataObject>> {
        let row = sqlx::query(&format!(
            "DELETE FROM data_objects WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        self.changed(row)
    }

    fn changed(&mut self, row: Option<AnyRow>) -> Result<Option<DataObject>> {
        let object = row.as_ref().map(data_object).transpose()?;
        if let Some(object) = &object {
            self.touch_owner(object);
        }
        Ok(object)
    }

    /// A license's own data objects are part of what its replies show.
    fn touch_owner(&mut self, object: &DataObject) {
        if let DataOwner::License(id) = object.owner() {
            self.touch(Change::License(id));
        }
    }
}
