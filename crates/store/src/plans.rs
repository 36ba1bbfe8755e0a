use chrono::{DateTime, Utc};
use keyturn_core::payment::{CancelRule, DunningRule, QuantityMode};
use keyturn_core::{BuyerRules, Plan};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, to_db};
use crate::{json_list, parse_json, Result, Session, StoreError};

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
    pub stripe_price_ids: Vec<String>,
    pub store_product_ids: Vec<String>,
    pub quantity_mode: QuantityMode,
    pub dunning: DunningRule,
    pub on_cancel: CancelRule,
    pub buyers: BuyerRules,
}

const COLUMNS: &str = "id, product_id, name, period_days, features, max_machines, \
                       floating_lease_seconds, trial, grace_days, stripe_price_ids, \
                       store_product_ids, quantity_mode, dunning, on_cancel, created_at, \
                       buyers_may_free_machines, buyer_frees_max, buyer_frees_days, \
                       buyers_may_download_files, buyer_file_days, expiry_reminder_days";

pub(crate) fn setting<T>(column: &str, value: String, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(&value).ok_or_else(|| StoreError::Corrupt(format!("{column} holds {value:?}")))
}

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
        stripe_price_ids: parse_json(
            "plans.stripe_price_ids",
            &row.try_get::<String, _>("stripe_price_ids")?,
        )?,
        store_product_ids: parse_json(
            "plans.store_product_ids",
            &row.try_get::<String, _>("store_product_ids")?,
        )?,
        quantity_mode: setting(
            "plans.quantity_mode",
            row.try_get("quantity_mode")?,
            QuantityMode::parse,
        )?,
        dunning: setting("plans.dunning", row.try_get("dunning")?, DunningRule::parse)?,
        on_cancel: setting(
            "plans.on_cancel",
            row.try_get("on_cancel")?,
            CancelRule::parse,
        )?,
        buyers: BuyerRules {
            buyers_may_free_machines: row.try_get::<i64, _>("buyers_may_free_machines")? != 0,
            buyer_frees_max: row.try_get("buyer_frees_max")?,
            buyer_frees_days: row.try_get("buyer_frees_days")?,
            buyers_may_download_files: row.try_get::<i64, _>("buyers_may_download_files")? != 0,
            buyer_file_days: row.try_get("buyer_file_days")?,
        },
        created: from_db(row.try_get("created_at")?),
        expiry_reminder_days: row.try_get("expiry_reminder_days")?,
    })
}

impl Session {
    pub async fn insert_plan(&mut self, p: &NewPlan, now: DateTime<Utc>) -> Result<Plan> {
        let row = sqlx::query(&format!(
            "INSERT INTO plans (product_id, name, period_days, features, max_machines, \
             floating_lease_seconds, trial, grace_days, stripe_price_ids, quantity_mode, dunning, \
             on_cancel, created_at, store_product_ids, buyers_may_free_machines, buyer_frees_max, \
             buyer_frees_days, buyers_may_download_files, buyer_file_days) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19) RETURNING {COLUMNS}"
        ))
        .bind(p.product_id)
        .bind(&p.name)
        .bind(p.period_days)
        .bind(json_list(&p.features))
        .bind(p.max_machines)
        .bind(p.floating_lease_seconds)
        .bind(i64::from(p.trial))
        .bind(p.grace_days)
        .bind(json_list(&p.stripe_price_ids))
        .bind(p.quantity_mode.as_str())
        .bind(p.dunning.as_str())
        .bind(p.on_cancel.as_str())
        .bind(to_db(now))
        .bind(json_list(&p.store_product_ids))
        .bind(i64::from(p.buyers.buyers_may_free_machines))
        .bind(p.buyers.buyer_frees_max)
        .bind(p.buyers.buyer_frees_days)
        .bind(i64::from(p.buyers.buyers_may_download_files))
        .bind(p.buyers.buyer_file_days)
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

    /// One page of plans in id order after `after` (of every product, or of `product_id`,
    /// through its index).
    pub async fn plans_after(
        &mut self,
        product_id: Option<i64>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Plan>> {
        let by_product = if product_id.is_some() {
            " AND product_id = $3"
        } else {
            ""
        };
        let sql =
            format!("SELECT {COLUMNS} FROM plans WHERE id > $1{by_product} ORDER BY id LIMIT $2");
        let mut query = sqlx::query(&sql).bind(after).bind(limit);
        if let Some(id) = product_id {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.conn()).await?;
        rows.iter().map(plan).collect()
    }
}

impl Session {
    /// Sets the days before expiry when buyers are reminded (none: never).
    pub async fn set_plan_expiry_reminder(&mut self, id: i64, days: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE plans SET expiry_reminder_days = $1 WHERE id = $2")
            .bind(days)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Writes a plan's changeable settings.
    pub async fn update_plan(&mut self, p: &Plan) -> Result<()> {
        sqlx::query(
            "UPDATE plans SET name = $1, grace_days = $2, stripe_price_ids = $3, quantity_mode = $4, \
             dunning = $5, on_cancel = $6, store_product_ids = $7, buyers_may_free_machines = $8, \
             buyer_frees_max = $9, buyer_frees_days = $10, buyers_may_download_files = $11, \
             buyer_file_days = $12 WHERE id = $13",
        )
        .bind(&p.name)
        .bind(p.grace_days)
        .bind(json_list(&p.stripe_price_ids))
        .bind(p.quantity_mode.as_str())
        .bind(p.dunning.as_str())
        .bind(p.on_cancel.as_str())
        .bind(json_list(&p.store_product_ids))
        .bind(i64::from(p.buyers.buyers_may_free_machines))
        .bind(p.buyers.buyer_frees_max)
        .bind(p.buyers.buyer_frees_days)
        .bind(i64::from(p.buyers.buyers_may_download_files))
        .bind(p.buyers.buyer_file_days)
        .bind(p.id)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
