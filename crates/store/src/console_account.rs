//! The console's own accounts beyond sign-in: the user list, passwords, sessions a user sees
//! and ends, the TOTP second factor and the half-way state of a sign-in awaiting its code.

use chrono::{DateTime, Utc};
use keyturn_core::{ConsoleUser, Role, TokenHash};
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

/// A session as its user sees it in their list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionInfo {
    /// The SHA-256 of the cookie value: names the session without being it.
    pub id_hash: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A user's second factor as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotpRow {
    /// The stored (possibly sealed) secret of an enabled second factor.
    pub secret: Option<String>,
    /// A secret being enrolled, not yet confirmed by a code.
    pub pending: Option<String>,
    /// The step of the last code accepted.
    pub last_step: Option<i64>,
}

/// A sign-in whose password was right, waiting for its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRow {
    pub user_id: i64,
    pub created: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Session {
    pub async fn console_user(&mut self, id: i64) -> Result<Option<ConsoleUser>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(user).transpose()
    }

    /// Locks a user's row until commit (their second factor's last step, their role).
    pub async fn lock_console_user(&mut self, id: i64) -> Result<Option<ConsoleUser>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM console_users WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(user).transpose()
    }

    /// Users in id order after `after`, with whether each has a second factor.
    pub async fn console_users(
        &mut self,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(ConsoleUser, bool)>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS totp \
             FROM console_users WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| Ok((user(r)?, r.try_get::<i64, _>("totp")? != 0)))
            .collect()
    }

    pub async fn console_password_hash(&mut self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM console_users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| Ok(r.try_get("password_hash")?)).transpose()
    }

    pub async fn set_console_password(&mut self, id: i64, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE console_users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn update_console_user(
        &mut self,
        id: i64,
        role: Role,
        product_id: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE console_users SET role = $1, product_id = $2 WHERE id = $3")
            .bind(role.as_str())
            .bind(product_id)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Disables a user (`Some(at)`) or enables them again (`None`).
    pub async fn set_console_user_disabled(
        &mut self,
        id: i64,
        at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        sqlx::query("UPDATE console_users SET disabled_at = $1 WHERE id = $2")
            .bind(at.map(to_db))
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records the browser a new session signed in from.
    pub async fn set_console_session_agent(
        &mut self,
        id_hash: &TokenHash,
        user_agent: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE console_sessions SET user_agent = $1 WHERE id_hash = $2")
            .bind(user_agent)
            .bind(id_hash.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// A user's sessions not ended, not idle since `seen_since`, not started before
    /// `created_since`; the most recently used first.
    pub async fn live_console_sessions(
        &mut self,
        user_id: i64,
        seen_since: DateTime<Utc>,
        created_since: DateTime<Utc>,
    ) -> Result<Vec<ConsoleSessionInfo>> {
        let rows = sqlx::query(
            "SELECT id_hash, created_at, last_seen_at, ip, user_agent FROM console_sessions \
             WHERE user_id = $1 AND ended_at IS NULL AND last_seen_at > $2 AND created_at > $3 \
             ORDER BY last_seen_at DESC, created_at DESC LIMIT 100",
        )
        .bind(user_id)
        .bind(to_db(seen_since))
        .bind(to_db(created_since))
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsoleSessionInfo {
                    id_hash: r.try_get("id_hash")?,
                    created: from_db(r.try_get("created_at")?),
                    last_seen: from_db(r.try_get("last_seen_at")?),
                    ip: r.try_get("ip")?,
                    user_agent: r.try_get("user_agent")?,
                })
            })
            .collect()
    }

    /// Ends one of a user's sessions; `false` when the user has no such live session.
    pub async fn end_console_session_of(
        &mut self,
        user_id: i64,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE console_sessions SET ended_at = $1 \
             WHERE id_hash = $2 AND user_id = $3 AND ended_at IS NULL",
        )
        .bind(to_db(now))
        .bind(id_hash)
        .bind(user_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends every session of a user but `except` (none: all of them); returns how many.
    pub async fn end_console_sessions_of(
        &mut self,
        user_id: i64,
        except: Option<&TokenHash>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE console_sessions SET ended_at = $1 \
             WHERE user_id = $2 AND ended_at IS NULL AND id_hash <> $3",
        )
        .bind(to_db(now))
        .bind(user_id)
        .bind(except.map_or("", |h| h.as_str()))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn console_totp(&mut self, user_id: i64) -> Result<TotpRow> {
        let row = sqlx::query(
            "SELECT totp_secret, totp_pending, totp_last_step FROM console_users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.conn())
        .await?;
        Ok(match row {
            Some(r) => TotpRow {
                secret: r.try_get("totp_secret")?,
                pending: r.try_get("totp_pending")?,
                last_step: r.try_get("totp_last_step")?,
            },
            None => TotpRow::default(),
        })
    }

    /// Stores a secret being enrolled (`None` forgets it).
    pub async fn set_totp_pending(&mut self, user_id: i64, stored: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE console_users SET totp_pending = $1 WHERE id = $2")
            .bind(stored)
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Makes `stored` the user's second factor, with the step of the code that confirmed it.
    pub async fn enable_totp(&mut self, user_id: i64, stored: &str, step: i64) -> Result<()> {
        sqlx::query(
            "UPDATE console_users SET totp_secret = $1, totp_pending = NULL, totp_last_step = $2 \
             WHERE id = $3",
        )
        .bind(stored)
        .bind(step)
        .bind(user_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn set_totp_last_step(&mut self, user_id: i64, step: i64) -> Result<()> {
        sqlx::query("UPDATE console_users SET totp_last_step = $1 WHERE id = $2")
            .bind(step)
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Removes a user's second factor (enrolled or being enrolled). The last step is kept, so
    /// a code of a secret enrolled again can never be one seen before.
    pub async fn disable_totp(&mut self, user_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE console_users SET totp_secret = NULL, totp_pending = NULL WHERE id = $1",
        )
        .bind(user_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Every user's stored second-factor secrets (enabled or being enrolled), for resealing.
    pub async fn console_totp_secrets(&mut self) -> Result<Vec<(i64, TotpRow)>> {
        let rows = sqlx::query(
            "SELECT id, totp_secret, totp_pending, totp_last_step FROM console_users \
             WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL ORDER BY id",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    TotpRow {
                        secret: r.try_get("totp_secret")?,
                        pending: r.try_get("totp_pending")?,
                        last_step: r.try_get("totp_last_step")?,
                    },
                ))
            })
            .collect()
    }

    /// Stores a user's second-factor secrets anew (resealed), leaving the last step alone.
    pub async fn restore_totp_secrets(
        &mut self,
        user_id: i64,
        secret: Option<&str>,
        pending: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE console_users SET totp_secret = $1, totp_pending = $2 WHERE id = $3")
            .bind(secret)
            .bind(pending)
            .bind(user_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_console_challenge(
        &mut self,
        id_hash: &TokenHash,
        user_id: i64,
        ip: Option<&str>,
        user_agent: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_challenges (id_hash, user_id, created_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash.as_str())
        .bind(user_id)
        .bind(to_db(now))
        .bind(ip)
        .bind(user_agent)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    pub async fn console_challenge(&mut self, id_hash: &TokenHash) -> Result<Option<ChallengeRow>> {
        let row = sqlx::query(
            "SELECT user_id, created_at, ip, user_agent FROM console_challenges WHERE id_hash = $1",
        )
        .bind(id_hash.as_str())
        .fetch_optional(self.conn())
        .await?;
        row.map(|r| {
            Ok(ChallengeRow {
                user_id: r.try_get("user_id")?,
                created: from_db(r.try_get("created_at")?),
                ip: r.try_get("ip")?,
                user_agent: r.try_get("user_agent")?,
            })
        })
        .transpose()
    }

    pub async fn delete_console_challenge(&mut self, id_hash: &TokenHash) -> Result<()> {
        sqlx::query("DELETE FROM console_challenges WHERE id_hash = $1")
            .bind(id_hash.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Forgets sign-ins that waited for their code since before `before`.
    pub async fn prune_console_challenges(&mut self, before: DateTime<Utc>) -> Result<()> {
        sqlx::query("DELETE FROM console_challenges WHERE created_at < $1")
            .bind(to_db(before))
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
