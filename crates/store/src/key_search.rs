//! A product's licenses filtered and ordered as the Cryptolens `GetKeys` method asks
//! ([`keyturn_core::key_search`]), as one parameterised statement on either database.
//!
//! The filter tree becomes SQL built only from this module's fixed column expressions and
//! operators; every value the caller wrote is a bound parameter. Each condition is two-valued
//! (true or false, never SQL's NULL), so a negation means what it says: a license without an
//! end counts as expiring when its replies say (100 years after its creation), a license
//! without a customer has customer id 0 and no customer text equals anything.

use chrono::{DateTime, Utc};
use keyturn_core::key_search::{Comparison, Field, KeyFilter, KeyOrder, Operand, OrderField};
use keyturn_core::License;

use crate::licenses::{license, COLUMNS};
use crate::time::to_db;
use crate::{Dialect, Result, Session};

/// One page of a product's licenses, filtered and ordered.
#[derive(Debug, Clone)]
pub struct KeySearch<'a> {
    pub product_id: i64,
    pub filter: Option<&'a KeyFilter>,
    /// The product's features in order: F1..F8 are the first eight.
    pub features: &'a [String],
    /// Set to the current time when the product answers expired licenses as blocked: an
    /// expired license then counts as blocked, as its replies show it.
    pub expired_blocked_at: Option<DateTime<Utc>>,
    pub order: KeyOrder,
    pub limit: i64,
    pub offset: i64,
}

enum Bind {
    Int(i64),
    Text(String),
}

/// SQL text and the parameters it binds, numbered as they are added.
struct Statement {
    dialect: Dialect,
    sql: String,
    binds: Vec<Bind>,
    /// See [`KeySearch::expired_blocked_at`] (milliseconds).
    expired_blocked_at: Option<i64>,
}

impl Statement {
    fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// The condition that the license has feature F`n` of the product (false when the
    /// product defines fewer features).
    fn feature(&mut self, features: &[String], n: u8) -> String {
        match features.get(usize::from(n).saturating_sub(1)) {
            Some(name) if n >= 1 => {
                self.binds.push(Bind::Text(name.clone()));
                self.dialect.json_list_has("l.features", self.binds.len())
            }
            _ => "(1 = 0)".into(),
        }
    }

    /// Whether the license counts as blocked (1) or not (0), as its replies show it.
    fn block(&mut self) -> String {
        match self.expired_blocked_at {
            None => "l.blocked".into(),
            Some(now) => {
                let p = self.param(Bind::Int(now));
                format!(
                    "(CASE WHEN l.blocked <> 0 OR (l.expires_at IS NOT NULL AND l.expires_at <= {p}) \
                     THEN 1 ELSE 0 END)"
                )
            }
        }
    }

    fn condition(&mut self, f: &KeyFilter, features: &[String]) -> String {
        match f {
            KeyFilter::Not(inner) => format!("NOT ({})", self.condition(inner, features)),
            KeyFilter::All(list) => self.joined(list, " AND ", features),
            KeyFilter::Any(list) => self.joined(list, " OR ", features),
            KeyFilter::Contains { field, text } => {
                let p = self.binds.len() + 1;
                self.binds.push(Bind::Text(text.clone()));
                match customer_column(*field) {
                    Some(column) => format!(
                        "EXISTS (SELECT 1 FROM customers c WHERE c.id = l.customer_id AND {})",
                        self.dialect.contains(&column, p)
                    ),
                    None => self.dialect.contains(license_column(*field), p),
                }
            }
            KeyFilter::Compare { field, op, value } => self.compare(*field, *op, value, features),
        }
    }

    fn joined(&mut self, list: &[KeyFilter], with: &str, features: &[String]) -> String {
        let parts: Vec<String> = list
            .iter()
            .map(|f| format!("({})", self.condition(f, features)))
            .collect();
        parts.join(with)
    }

    fn compare(
        &mut self,
        field: Field,
        op: Comparison,
        value: &Operand,
        features: &[String],
    ) -> String {
        let sql_op = match op {
            Comparison::Eq => "=",
            Comparison::Ne => "<>",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        };
        if let Field::Feature(n) = field {
            let has = self.feature(features, n);
            let wanted = matches!(value, Operand::Flag(true)) == (op == Comparison::Eq);
            return if wanted { has } else { format!("NOT {has}") };
        }
        let bind = match value {
            Operand::Number(n) => Bind::Int(*n),
            Operand::Text(t) => Bind::Text(t.clone()),
            Operand::Flag(b) => Bind::Int(i64::from(*b)),
            Operand::Date(at) => Bind::Int(to_db(*at)),
        };
        match customer_column(field) {
            // The customer's texts and creation: only a license with a customer has them, so
            // "differs" is "has no equal one".
            Some(column) => {
                let (negate, sql_op) = match op {
                    Comparison::Ne => ("NOT ", "="),
                    _ => ("", sql_op),
                };
                let p = self.param(bind);
                format!(
                    "{negate}EXISTS (SELECT 1 FROM customers c WHERE c.id = l.customer_id \
                     AND {column} {sql_op} {p})"
                )
            }
            None => {
                let column = match field {
                    Field::Block => self.block(),
                    _ => license_column(field).to_owned(),
                };
                let p = self.param(bind);
                format!("{column} {sql_op} {p}")
            }
        }
    }
}

/// The expression a license field is compared as (never NULL).
fn license_column(field: Field) -> &'static str {
    match field {
        Field::Id => "l.id",
        Field::Key => "l.key",
        Field::Notes => "l.notes",
        Field::Block => "l.blocked", // see `Statement::block`
        Field::Created => "l.created_at",
        Field::Expires => EXPIRES,
        Field::Period => "COALESCE(l.period_days, 0)",
        Field::MaxNoOfMachines => "l.max_machines",
        Field::TrialActivation => "l.trial_activation",
        Field::CustomerId => "COALESCE(l.customer_id, 0)",
        // Handled through the customer (or the feature list) before this is asked.
        Field::Feature(_)
        | Field::CustomerName
        | Field::CustomerEmail
        | Field::CustomerCompany
        | Field::CustomerCreated => "l.id",
    }
}

/// What replies show as the expiry: a license without one shows its creation plus 36,500 days
/// (3,153,600,000,000 ms, as times are stored).
const EXPIRES: &str = "COALESCE(l.expires_at, l.created_at + 3153600000000)";

/// The customer column a field reads, as replies show it (a missing email or company is "").
fn customer_column(field: Field) -> Option<String> {
    Some(
        match field {
            Field::CustomerName => "c.name",
            Field::CustomerEmail => "COALESCE(c.email, '')",
            Field::CustomerCompany => "COALESCE(c.company, '')",
            Field::CustomerCreated => "c.created_at",
            _ => return None,
        }
        .to_owned(),
    )
}

impl Session {
    /// A page of a product's licenses matching `s.filter` in `s.order`, and how many match in
    /// all.
    pub async fn search_licenses(&mut self, s: &KeySearch<'_>) -> Result<(Vec<License>, i64)> {
        let mut count = self.key_statement(s, "SELECT COUNT(*) AS n FROM licenses l");
        let total = {
            let mut query = sqlx::query_scalar::<_, i64>(&count.sql);
            for b in std::mem::take(&mut count.binds) {
                query = match b {
                    Bind::Int(v) => query.bind(v),
                    Bind::Text(v) => query.bind(v),
                };
            }
            query.fetch_one(self.conn()).await?
        };
        let mut page = self.key_statement(s, &format!("SELECT {COLUMNS} FROM licenses l"));
        let direction = if s.order.descending { "DESC" } else { "ASC" };
        let by = match s.order.by {
            OrderField::Id => None,
            OrderField::Created => Some("l.created_at".to_owned()),
            OrderField::Expires => Some(EXPIRES.to_owned()),
            OrderField::Customer => Some("COALESCE(l.customer_id, 0)".to_owned()),
            OrderField::Block => Some(page.block()),
            OrderField::Modified => Some("l.updated_at".to_owned()),
            OrderField::Feature(n) => Some(page.feature(s.features, n)),
        };
        if let Some(by) = by {
            page.sql
                .push_str(&format!(" ORDER BY {by} {direction}, l.id {direction}"));
        } else {
            page.sql.push_str(&format!(" ORDER BY l.id {direction}"));
        }
        let limit = page.param(Bind::Int(s.limit.max(0)));
        let offset = page.param(Bind::Int(s.offset.max(0)));
        page.sql
            .push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
        let (sql, binds) = (page.sql, page.binds);
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(self.conn()).await?;
        let licenses = rows.iter().map(license).collect::<Result<Vec<_>>>()?;
        Ok((licenses, total))
    }

    /// `select` restricted to the product and the filter.
    fn key_statement(&self, s: &KeySearch<'_>, select: &str) -> Statement {
        let mut st = Statement {
            dialect: self.dialect,
            sql: String::new(),
            binds: Vec::new(),
            expired_blocked_at: s.expired_blocked_at.map(to_db),
        };
        let product = st.param(Bind::Int(s.product_id));
        st.sql = format!("{select} WHERE l.product_id = {product}");
        if let Some(filter) = s.filter {
            let condition = st.condition(filter, s.features);
            st.sql.push_str(&format!(" AND ({condition})"));
        }
        st
    }
}
