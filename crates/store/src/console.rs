//! The admin console's tables: users, sessions, failed sign-ins and its audit log; and the
//! license search behind its one search box.

use chrono::{DateTime, Utc};
use keyturn_core::{ConsoleUser, License, Role, TokenHash};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_db, opt_from_db, to_db};
use crate::{Result, Session, StoreError};

const USER_COLUMNS: &str = "id, email, role, product_id, created_at, disabled_at";

fn user(row: &AnyRow) -> Result<ConsoleUser> {
    let role: String = row.try_get("role")?;
    Ok(ConsoleUser {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: role
            .parse::<Role>()
            .map_err(|e| StoreError::Corrupt(format!("console_users.role: {e}")))?,
        product_id: row.try_get("product_id")?,
        created: from_db(row.try_get("created_at")?),
        disabled: opt_from_db(row.try_get("disabled_at")?).is_some(),
    })
}

/// A live session row and its user.
#[derive(Debug, Clone)]
pub struct ConsoleSessionRow {
    pub user: ConsoleUser,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// What the search box looks for: every text is a prefix, already in the case its column is
/// compared in.
#[derive(Debug, Clone)]
pub struct LicenseSearch {
    /// Matched against license keys (upper case).
    pub key: String,
    /// Matched against customers' lower-cased email and name, machines' lower-cased name.
    pub lower: String,
    /// Matched as typed against order, subscription and payment ids and machine fingerprints.
    pub exact: String,
    pub product_id: Option<i64>,
    pub after: Option<i64>,
    pub limit: i64,
}

/// The end of the range of texts that start with `prefix`.
fn range_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// The search statement: `$1`–`$6` are the (from, to) ranges of the key, lower-cased and exact
/// texts, `$7` the cursor, `$8` the limit and `$9` the product when `by_product`.
fn search_sql(session: &Session, by_product: bool) -> String {
    let key = session.starts_with("key", 1);
    let email = session.starts_with("lower(email)", 3);
    let name = session.starts_with("lower(name)", 3);
    let fingerprint = session.starts_with("fingerprint", 5);
    let object = session.starts_with("p.object_id", 5);
    let paid_subscription = session.starts_with("p.subscription_id", 5);
    let subscription = session.starts_with("subscription_id", 5);
    let order = session.starts_with("order_id", 5);
    let product = if by_product {
        " AND product_id = $9"
    } else {
        ""
    };
    format!(
        "SELECT {columns} FROM licenses WHERE id > $7{product} AND id IN ( \
           SELECT id FROM licenses WHERE {key} \
           UNION SELECT l.id FROM licenses l WHERE l.customer_id IN \
             (SELECT id FROM customers WHERE {email} UNION SELECT id FROM customers WHERE {name}) \
           UNION SELECT license_id FROM activations WHERE {name} \
           UNION SELECT license_id FROM activations WHERE {fingerprint} \
           UNION SELECT pl.license_id FROM payment_licenses pl JOIN payments p ON p.id = pl.payment_id \
             WHERE {object} \
           UNION SELECT pl.license_id FROM payment_licenses pl JOIN payments p ON p.id = pl.payment_id \
             WHERE {paid_subscription} \
           UNION SELECT license_id FROM subscriptions WHERE {subscription} AND license_id IS NOT NULL \
           UNION SELECT license_id FROM subscriptions WHERE {order} AND license_id IS NOT NULL \
         ) ORDER BY id LIMIT $8",
        columns = crate::licenses::COLUMNS,
    )
}

impl Session {
    pub async fn insert_console_user(
        &mut self,
        email: &str,
        password_hash: &str,
        role: Role,
        product_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<ConsoleUser> {
        let row = sqlx::query(&format!(
            "INSERT INTO console_users (email, password_hash, role, product_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(product_id)
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        user(&row)
    }

    /// A user and their password hash, by email.
    pub async fn console_user_by_email(
        &mut self,
        email: &str,
    ) -> Result<Option<(ConsoleUser, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM console_users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| Ok((user(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn insert_console_session(
        &mut self,
        id_hash: &TokenHash,
        user_id: i64,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_id, created_at, last_seen_at, ip) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(id_hash.as_str())
        .bind(user_id)
        .bind(to_db(now))
        .bind(ip)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A session that has not been ended, with its user.
    pub async fn console_session(
        &mut self,
        id_hash: &TokenHash,
    ) -> Result<Option<ConsoleSessionRow>> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.product_id, u.created_at, u.disabled_at, \
             s.created_at AS s_created, s.last_seen_at FROM console_sessions s \
             JOIN console_users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.ended_at IS NULL",
        )
        .bind(id_hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(ConsoleSessionRow {
                user: user(&r)?,
                created: from_db(r.try_get("s_created")?),
                last_seen: from_db(r.try_get("last_seen_at")?),
            })
        })
        .transpose()
    }

    pub async fn touch_console_session(
        &mut self,
        id_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("UPDATE console_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(to_db(now))
            .bind(id_hash.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Ends a session; `false` when there was no live one.
    pub async fn end_console_session(
        &mut self,
        id_hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE console_sessions SET ended_at = $1 WHERE id_hash = $2 AND ended_at IS NULL",
        )
        .bind(to_db(now))
        .bind(id_hash.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Counts an attempt against `subject`; returns the row's id.
    pub async fn insert_login_failure(&mut self, subject: &str, now: DateTime<Utc>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO console_login_failures (subject, at) VALUES ($1, $2) RETURNING id",
        )
        .bind(subject)
        .bind(to_db(now))
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Takes back an attempt that succeeded.
    pub async fn delete_login_failure(&mut self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM console_login_failures WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Refused sign-ins of `subject` since `since`.
    pub async fn login_failures(&mut self, subject: &str, since: DateTime<Utc>) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM console_login_failures WHERE subject = $1 AND at >= $2",
        )
        .bind(subject)
        .bind(to_db(since))
        .fetch_one(self.conn())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Forgets refused sign-ins older than `before` (they no longer count).
    pub async fn prune_login_failures(&mut self, before: DateTime<Utc>) -> Result<()> {
        sqlx::query("DELETE FROM console_login_failures WHERE at < $1")
            .bind(to_db(before))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_console_event(
        &mut self,
        actor: &str,
        action: &str,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_events (at, actor, action, details) VALUES ($1, $2, $3, $4)",
        )
        .bind(to_db(now))
        .bind(actor)
        .bind(action)
        .bind(details.to_string())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The console's audit log, newest first: (at, actor, action, details).
    pub async fn console_events(
        &mut self,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, String, String, String)>> {
        let rows = sqlx::query(
            "SELECT at, actor, action, details FROM console_events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    from_db(r.try_get("at")?),
                    r.try_get("actor")?,
                    r.try_get("action")?,
                    r.try_get("details")?,
                ))
            })
            .collect()
    }

    /// Licenses that something about starts with the search texts, in id order after
    /// `after`. Each branch is a range scan over one index; their union is a set of ids, so
    /// the licenses are read by primary key and never scanned.
    pub async fn licenses_by_prefix(&mut self, q: &LicenseSearch) -> Result<Vec<License>> {
        let sql = search_sql(self, q.product_id.is_some());
        let mut query = sqlx::query(&sql)
            .bind(&q.key)
            .bind(range_end(&q.key))
            .bind(&q.lower)
            .bind(range_end(&q.lower))
            .bind(&q.exact)
            .bind(range_end(&q.exact))
            .bind(q.after.unwrap_or(0))
            .bind(q.limit);
        if let Some(p) = q.product_id {
            query = query.bind(p);
        }
        let rows = query.fetch_all(self.conn()).await?;
        rows.iter().map(crate::licenses::license).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dialect, Store, StoreOptions};

    /// One license reachable by every kind of thing the search box takes, and one that only
    /// shares a product with it.
    async fn seed(store: &Store) {
        let mut s = store.write().await.unwrap();
        for sql in [
            "INSERT INTO products (id, name, features, created_at) VALUES (1, 'p', '[]', 0), (2, 'q', '[]', 0)",
            "INSERT INTO customers (id, name, email, created_at) VALUES (1, 'Ada Lovelace', 'ada@example.com', 0)",
            "INSERT INTO licenses (id, key, product_id, customer_id, created_at, updated_at, features, \
             max_machines, trial, notes, blocked, metadata, trial_activation, allowed_machines) VALUES \
             (1, 'ABCDE-FGHIJ', 1, 1, 0, 0, '[]', 0, 0, '', 0, '{}', 0, '[]'), \
             (2, 'ZZZZZ-YYYYY', 1, NULL, 0, 0, '[]', 0, 0, '', 0, '{}', 0, '[]'), \
             (3, 'ABCDE-OTHER', 2, NULL, 0, 0, '[]', 0, 0, '', 0, '{}', 0, '[]')",
            "INSERT INTO activations (license_id, fingerprint, name, created_at, last_seen_at) \
             VALUES (1, 'fp-0123', 'Office PC', 0, 0)",
            "INSERT INTO payments (id, provider, object_kind, object_id, status, subscription_id, \
             event_id, created_at, updated_at) VALUES (1, 'stripe', 'checkout_session', 'cs_test_42', \
             'paid', 'sub_pay_7', 'evt_1', 0, 0)",
            "INSERT INTO payment_licenses (payment_id, license_id) VALUES (1, 1)",
            "INSERT INTO subscriptions (provider, subscription_id, license_id, status, quantity, \
             cancel_at_period_end, dunning_blocked, state_at, created_at, updated_at, order_id) \
             VALUES ('paddle', 'sub_ctm_9', 1, 'active', 1, 0, 0, 0, 0, 0, 'ord_5')",
        ] {
            sqlx::query(sql).execute(s.conn()).await.unwrap();
        }
        s.commit().await.unwrap();
    }

    fn search(term: &str, product_id: Option<i64>) -> LicenseSearch {
        LicenseSearch {
            key: term.to_uppercase(),
            lower: term.to_lowercase(),
            exact: term.to_owned(),
            product_id,
            after: None,
            limit: 10,
        }
    }

    async fn found(store: &Store, q: LicenseSearch) -> Vec<i64> {
        let mut s = store.read().await.unwrap();
        s.licenses_by_prefix(&q)
            .await
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect()
    }

    async fn every_kind_of_prefix_finds_its_license(store: &Store) {
        store.migrate().await.unwrap();
        seed(store).await;
        for term in [
            "abcde-f", "ADA@", "ada love", "fp-01", "office", "cs_test", "sub_pay", "sub_ctm",
            "ord_",
        ] {
            assert_eq!(found(store, search(term, None)).await, vec![1], "{term}");
        }
        assert_eq!(found(store, search("ABCDE", None)).await, vec![1, 3]);
        assert_eq!(found(store, search("ABCDE", Some(2))).await, vec![3]);
        let mut after = search("ABCDE", None);
        after.after = Some(1);
        assert_eq!(found(store, after).await, vec![3]);
        // Prefixes only, and wildcards mean themselves.
        for term in ["BCDE", "%", "_", "lovelace", "Fp-01"] {
            assert!(found(store, search(term, None)).await.is_empty(), "{term}");
        }
        if store.dialect() == Dialect::Sqlite {
            // Each branch is a range over an index: no table is read through.
            let mut s = store.read().await.unwrap();
            let sql = format!("EXPLAIN QUERY PLAN {}", search_sql(&s, false));
            let mut q = sqlx::query(&sql);
            for v in ["A", "B", "a", "b", "a", "b"] {
                q = q.bind(v);
            }
            let plan: Vec<String> = q
                .bind(0i64)
                .bind(10i64)
                .fetch_all(s.conn())
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{plan:#?}"
            );
            assert!(plan.len() >= 9, "{plan:#?}");
        }
    }

    #[tokio::test]
    async fn search_finds_by_every_prefix_on_sqlite_and_postgres() {
        let dir = std::env::temp_dir().join(format!("keyturn-search-{}", std::process::id()));
        let store = Store::open_sqlite(&dir, &StoreOptions::default())
            .await
            .unwrap();
        every_kind_of_prefix_finds_its_license(&store).await;
        store.close(std::time::Duration::from_secs(1)).await;
        std::fs::remove_dir_all(&dir).unwrap();

        let Ok(server) = std::env::var("KEYTURN_TEST_DATABASE_URL") else {
            eprintln!(
                "search_finds_by_every_prefix_on_sqlite_and_postgres: skipped its PostgreSQL run: KEYTURN_TEST_DATABASE_URL not set"
            );
            return;
        };
        use sqlx::Connection;
        let name = format!("keyturn_store_search_{}", std::process::id());
        let admin = |sql: String| {
            let server = server.clone();
            async move {
                let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.ok();
            }
        };
        admin(format!("CREATE DATABASE {name}")).await;
        let (base, _) = server.rsplit_once('/').unwrap();
        let store = Store::connect(&format!("{base}/{name}"), &StoreOptions::default())
            .await
            .unwrap();
        every_kind_of_prefix_finds_its_license(&store).await;
        store.close(std::time::Duration::from_secs(1)).await;
        admin(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
}
