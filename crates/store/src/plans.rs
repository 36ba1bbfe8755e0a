use chrono::{DateTime, Utc};
use keyturn_core::Plan;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{json_list, parse_json, Result, Session};

/// A plan as the use cases have validated it.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub product_id: i64,
    pub name: String,
    pub period_days: Option<i64>,
    pub features: Vec<String>,
    pub max_machines: i64,
    pub floating_lease_seconds: Option<i64>,
    pub trial: bool,
    pub grace_days: i64,
}

const COLUMNS: &str = "id, product_id, name, period_days, features, max_machines, \
                       floating_lease_seconds, trial, grace_days, created_at";

fn plan(row: &AnyRow) -> Result<Plan> {
    Ok(Plan {
        id: row.try_get("id")?,
        product_id: row.try_get("product_id")?,
        name: row.try_get("name")?,
        period_days: row.try_get("period_days")?,
        features: parse_json("plans.features", &row.try_get::<String, _>("features")?)?,
        max_machines: row.try_get("max_machines")?,
        floating_lease_seconds: row.try_get("floating_lease_seconds")?,
        trial: row.try_get::<i64, _>("trial")? != 0,
        grace_days: row.try_get("grace_days")?,
        created: from_db(row.try_get("created_at")?),
    })
}

impl Session {
    pub async fn insert_plan(&mut self, p: &NewPlan, now: DateTime<Utc>) -> Result<Plan> {
        let row = sqlx::query(&format!(
            "INSERT INTO plans (product_id, name, period_days, features, max_machines, \
             floating_lease_seconds, trial, grace_days, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
        ))
        .bind(p.product_id)
        .bind(&p.name)
        .bind(p.period_days)
        .bind(json_list(&p.features))
        .bind(p.max_machines)
        .bind(p.floating_lease_seconds)
        .bind(i64::from(p.trial))
        .bind(p.grace_days)
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        plan(&row)
    }

    pub async fn plan(&mut self, id: i64) -> Result<Option<Plan>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(plan).transpose()
    }

    pub async fn plans(&mut self, product_id: Option<i64>) -> Result<Vec<Plan>> {
        let rows = match product_id {
            Some(id) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM plans WHERE product_id = $1 ORDER BY id"
                ))
                .bind(id)
                .fetch_all(self.conn())
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM plans ORDER BY id"))
                    .fetch_all(self.conn())
                    .await?
            }
        };
        rows.iter().map(plan).collect()
    }
}
