//! A console user's own account — password, sessions, second factor — and the owners'
//! management of every account.
//!
//! Invariants:
//!
//! * Everything here acts for a signed-in [`ConsoleSession`] and is recorded in the console's
//!   audit log under that user's name (`user:<email>`).
//! * A secret typed here (the current password, a second-factor code) is counted against the
//!   account and the address before it is checked, with the same limits as sign-in
//!   ([`App::count_attempt`]): a stolen session cannot guess its way to the password, and
//!   wrong codes are throttled like wrong passwords.
//! * Changing the password ends every other session of the user; disabling a user ends all
//!   of theirs. A session ends for good: nothing makes an ended session live again.
//! * A TOTP secret is stored sealed with the master key when one is configured (as the signing
//!   keys are), bound to its user's row; it is shown only while being enrolled, and never
//!   logged. A code is accepted once: its step is stored in the transaction that accepts it,
//!   with the user's row locked, so two requests cannot both use it.
//! * Only owners who are not limited to a product manage users, and none changes, disables or
//!   resets themselves (another owner must), so the console never loses its last owner by a
//!   slip.

use chrono::{DateTime, Duration, Utc};
use keyturn_core::totp::{accepted_step, TotpSecret};
use keyturn_core::{seal, ConsoleUser, MasterKey, Password, Role, TokenHash, TokenSecret};
use keyturn_store::{ConsoleSessionInfo, Session};
use serde_json::json;

use crate::console::{
    audit, hash_password, password_matches, ConsoleSession, SignIn, ABSOLUTE, IDLE,
};
use crate::{App, AppError, Entity, Page, PageRequest, Result};

/// How long a sign-in waits for its second-factor code.
pub const CHALLENGE_TTL: Duration = Duration::minutes(5);
/// Users per page of the user list.
const USERS_PAGE: i64 = 50;

/// What checking a typed secret came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Accepted,
    /// Wrong (which part is not said).
    Refused,
    /// Too many wrong attempts for the account or address; nothing was checked.
    Throttled,
}

/// A live session of the signed-in user, as their session list shows it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub info: ConsoleSessionInfo,
    /// The session this list is shown in.
    pub current: bool,
}

/// The second factor as the account page shows it.
#[derive(Debug, Clone, Default)]
pub struct SecondFactor {
    pub enabled: bool,
    /// A secret being enrolled: shown until a code confirms it.
    pub enrolling: Option<Enrolment>,
}

/// What an authenticator app is given.
#[derive(Clone)]
pub struct Enrolment {
    pub secret: String,
    pub uri: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(…)")
    }
}

/// A user in the owners' list.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub user: ConsoleUser,
    pub second_factor: bool,
}

/// Where a user's second-factor secret is stored: the seal is bound to it.
fn totp_place(user_id: i64) -> String {
    format!("console-user:{user_id}:totp")
}

/// The user agent worth keeping: printable, at most 200 characters.
pub(crate) fn agent(user_agent: Option<&str>) -> Option<String> {
    user_agent
        .map(|a| {
            a.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .filter(|a| !a.trim().is_empty())
}

fn label(user: &ConsoleUser) -> String {
    format!("user:{}", user.email)
}

impl App {
    fn seal_totp(&self, user_id: i64, secret: &TotpSecret) -> String {
        seal::store(
            &secret.to_base32(),
            self.master_key.as_ref(),
            &totp_place(user_id),
        )
    }

    fn open_totp(&self, user_id: i64, stored: &str) -> Result<TotpSecret> {
        let plain =
            seal::open(stored, self.master_key.as_ref(), &totp_place(user_id)).map_err(|e| {
                AppError::Conflict(format!(
                    "the second factor of this account cannot be read ({e}); an owner can reset it"
                ))
            })?;
        Ok(TotpSecret::from_base32(&plain)?)
    }

    /// Seals every stored second-factor secret anew with `to` (none: plain), opening each with
    /// `from`, `to` or as plain text; part of [`App::reseal_signing_keys`]'s transaction, so a
    /// new master key never leaves a secret only the old one opens.
    pub(crate) async fn reseal_second_factors(
        session: &mut Session,
        from: Option<&MasterKey>,
        to: Option<&MasterKey>,
    ) -> Result<usize> {
        let rows = session.console_totp_secrets().await?;
        for (user_id, row) in &rows {
            let place = totp_place(*user_id);
            let reseal = |stored: &Option<String>| -> Result<Option<String>> {
                let Some(stored) = stored else {
                    return Ok(None);
                };
                let plain = [from, to]
                    .into_iter()
                    .flatten()
                    .find_map(|master| seal::open(stored, Some(master), &place).ok())
                    .or_else(|| seal::open(stored, None, &place).ok())
                    .ok_or_else(|| {
                        AppError::invalid(
                            "master_key",
                            format!(
                                "the second factor of console user {user_id} is sealed with another \
                                 master key: give the one it was sealed with as the old master key"
                            ),
                        )
                    })?;
                Ok(Some(seal::store(&plain, to, &place)))
            };
            let (secret, pending) = (reseal(&row.secret)?, reseal(&row.pending)?);
            session
                .restore_totp_secrets(*user_id, secret.as_deref(), pending.as_deref())
                .await?;
        }
        Ok(rows.len())
    }

    /// Takes back counted attempts that turned out right.
    async fn uncount(session: &mut Session, counted: Vec<i64>) -> Result<()> {
        for id in counted {
            session.delete_login_failure(id).await?;
        }
        Ok(())
    }

    /// The second step of a sign-in: the code for the account whose password was right
    /// (`challenge`, the secret [`SignIn::SecondFactor`] handed out). An unknown or expired
    /// challenge, or a disabled user, is unauthenticated: start again.
    pub async fn console_sign_in_code(
        &self,
        challenge: &str,
        code: &str,
        ip: Option<&str>,
    ) -> Result<SignIn> {
        let now = self.now();
        let hash = TokenHash::of(challenge);
        let (row, user) = {
            let mut session = self.store.read().await?;
            let row = session
                .console_challenge(&hash)
                .await?
                .filter(|r| now - r.created < CHALLENGE_TTL)
                .ok_or(AppError::Unauthenticated)?;
            let user = session
                .console_user(row.user_id)
                .await?
                .filter(|u| !u.disabled)
                .ok_or(AppError::Unauthenticated)?;
            (row, user)
        };
        let Some(counted) = self.count_attempt(&user.email, ip).await? else {
            return Ok(SignIn::Throttled);
        };
        let mut session = self.store.write().await?;
        session
            .lock_console_user(user.id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let totp = session.console_totp(user.id).await?;
        let stored = totp.secret.ok_or(AppError::Unauthenticated)?;
        let secret = self.open_totp(user.id, &stored)?;
        let Some(step) = accepted_step(&secret, code, now, totp.last_step) else {
            audit(
                &mut session,
                &label(&user),
                "second_factor_refused",
                json!({"ip": ip}),
                now,
            )
            .await?;
            session.commit().await?;
            return Ok(SignIn::Refused);
        };
        session.set_totp_last_step(user.id, step).await?;
        Self::uncount(&mut session, counted).await?;
        session.delete_console_challenge(&hash).await?;
        session
            .prune_console_challenges(now - CHALLENGE_TTL)
            .await?;
        let secret = TokenSecret::generate_session();
        session
            .insert_console_session(&secret.hash(), user.id, row.ip.as_deref(), now)
            .await?;
        session
            .set_console_session_agent(&secret.hash(), row.user_agent.as_deref())
            .await?;
        audit(
            &mut session,
            &label(&user),
            "signed_in",
            json!({"ip": ip, "second_factor": true}),
            now,
        )
        .await?;
        session.commit().await?;
        Ok(SignIn::Started(secret))
    }

    /// Changes the signed-in user's password, given the current one; every other session of
    /// theirs ends.
    pub async fn change_console_password(
        &self,
        signed: &ConsoleSession,
        presented: &str,
        current: &str,
        new: &str,
        ip: Option<&str>,
    ) -> Result<Checked> {
        let new = Password::parse(new)?;
        let user = &signed.user;
        let Some(counted) = self.count_attempt(&user.email, ip).await? else {
            return Ok(Checked::Throttled);
        };
        let hash = self
            .store
            .read()
            .await?
            .console_password_hash(user.id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let typed = current.to_owned();
        let right = tokio::task::spawn_blocking(move || password_matches(&hash, &typed))
            .await
            .unwrap_or(false);
        let now = self.now();
        if !right {
            let mut session = self.store.write().await?;
            audit(
                &mut session,
                &label(user),
                "password_change_refused",
                json!({"ip": ip}),
                now,
            )
            .await?;
            session.commit().await?;
            return Ok(Checked::Refused);
        }
        let hashed = tokio::task::spawn_blocking(move || hash_password(&new))
            .await
            .map_err(|e| AppError::Conflict(format!("hashing failed: {e}")))??;
        let mut session = self.store.write().await?;
        Self::uncount(&mut session, counted).await?;
        session.set_console_password(user.id, &hashed).await?;
        let ended = session
            .end_console_sessions_of(user.id, Some(&TokenHash::of(presented)), now)
            .await?;
        audit(
            &mut session,
            &label(user),
            "password_changed",
            json!({"ended_sessions": ended}),
            now,
        )
        .await?;
        session.commit().await?;
        Ok(Checked::Accepted)
    }

    /// The signed-in user's live sessions, the most recently used first.
    pub async fn console_sessions_of(
        &self,
        signed: &ConsoleSession,
        presented: &str,
    ) -> Result<Vec<SessionView>> {
        let now = self.now();
        let current = TokenHash::of(presented);
        let rows = self
            .store
            .read()
            .await?
            .live_console_sessions(signed.user.id, now - IDLE, now - ABSOLUTE)
            .await?;
        Ok(rows
            .into_iter()
            .map(|info| SessionView {
                current: info.id_hash == current.as_str(),
                info,
            })
            .collect())
    }

    /// Ends one of the signed-in user's own sessions, named by its hash. Anyone else's, or
    /// one that has ended, is not found.
    pub async fn end_console_session(&self, signed: &ConsoleSession, id_hash: &str) -> Result<()> {
        let now = self.now();
        let mut session = self.store.write().await?;
        if !session
            .end_console_session_of(signed.user.id, id_hash, now)
            .await?
        {
            return Err(AppError::NotFound(Entity::ConsoleSession));
        }
        audit(
            &mut session,
            &label(&signed.user),
            "session_ended",
            json!({"session": &id_hash[..id_hash.len().min(12)]}),
            now,
        )
        .await?;
        session.commit().await?;
        Ok(())
    }

    /// Ends every session of the signed-in user but the current one; returns how many.
    pub async fn end_other_console_sessions(
        &self,
        signed: &ConsoleSession,
        presented: &str,
    ) -> Result<u64> {
        let now = self.now();
        let mut session = self.store.write().await?;
        let ended = session
            .end_console_sessions_of(signed.user.id, Some(&TokenHash::of(presented)), now)
            .await?;
        audit(
            &mut session,
            &label(&signed.user),
            "other_sessions_ended",
            json!({"ended_sessions": ended}),
            now,
        )
        .await?;
        session.commit().await?;
        Ok(ended)
    }

    /// The signed-in user's second factor, with the secret while it is being enrolled.
    pub async fn second_factor(&self, signed: &ConsoleSession) -> Result<SecondFactor> {
        let totp = self
            .store
            .read()
            .await?
            .console_totp(signed.user.id)
            .await?;
        let enrolling = match totp.pending.as_deref() {
            Some(stored) if totp.secret.is_none() => {
                let secret = self.open_totp(signed.user.id, stored)?;
                Some(Enrolment {
                    secret: secret.to_base32(),
                    uri: secret.otpauth_uri(&signed.user.email),
                })
            }
            _ => None,
        };
        Ok(SecondFactor {
            enabled: totp.secret.is_some(),
            enrolling,
        })
    }

    /// Starts enrolling a second factor: a new secret, shown until a code confirms it.
    pub async fn begin_second_factor(&self, signed: &ConsoleSession) -> Result<()> {
        let user = &signed.user;
        let now = self.now();
        let mut session = self.store.write().await?;
        session.lock_console_user(user.id).await?;
        if session.console_totp(user.id).await?.secret.is_some() {
            return Err(AppError::Conflict(
                "a second factor is on already; turn it off first to enrol another".into(),
            ));
        }
        let stored = self.seal_totp(user.id, &TotpSecret::generate());
        session.set_totp_pending(user.id, Some(&stored)).await?;
        audit(
            &mut session,
            &label(user),
            "second_factor_enrolling",
            json!({}),
            now,
        )
        .await?;
        session.commit().await?;
        Ok(())
    }

    /// Gives up an enrolment that was not confirmed.
    pub async fn cancel_second_factor(&self, signed: &ConsoleSession) -> Result<()> {
        let mut session = self.store.write().await?;
        session.set_totp_pending(signed.user.id, None).await?;
        session.commit().await?;
        Ok(())
    }

    /// Confirms the secret being enrolled with a code from the app, which turns it on.
    pub async fn confirm_second_factor(
        &self,
        signed: &ConsoleSession,
        code: &str,
        ip: Option<&str>,
    ) -> Result<Checked> {
        self.with_code(signed, code, ip, true).await
    }

    /// Turns the second factor off, given a current code.
    pub async fn disable_second_factor(
        &self,
        signed: &ConsoleSession,
        code: &str,
        ip: Option<&str>,
    ) -> Result<Checked> {
        self.with_code(signed, code, ip, false).await
    }

    /// Checks a code against the secret being enrolled (`enrol`) or the enabled one, and on
    /// success turns the second factor on or off.
    async fn with_code(
        &self,
        signed: &ConsoleSession,
        code: &str,
        ip: Option<&str>,
        enrol: bool,
    ) -> Result<Checked> {
        let user = &signed.user;
        let Some(counted) = self.count_attempt(&user.email, ip).await? else {
            return Ok(Checked::Throttled);
        };
        let now = self.now();
        let mut session = self.store.write().await?;
        session.lock_console_user(user.id).await?;
        let totp = session.console_totp(user.id).await?;
        let stored = match (enrol, &totp.secret, &totp.pending) {
            (true, None, Some(pending)) => pending.clone(),
            (false, Some(secret), _) => secret.clone(),
            (true, _, _) => {
                return Err(AppError::Conflict(
                    "no second factor is being enrolled".into(),
                ))
            }
            (false, None, _) => return Err(AppError::Conflict("no second factor is on".into())),
        };
        let secret = self.open_totp(user.id, &stored)?;
        let Some(step) = accepted_step(&secret, code, now, totp.last_step) else {
            audit(
                &mut session,
                &label(user),
                "second_factor_refused",
                json!({"ip": ip}),
                now,
            )
            .await?;
            session.commit().await?;
            return Ok(Checked::Refused);
        };
        Self::uncount(&mut session, counted).await?;
        let action = if enrol {
            session.enable_totp(user.id, &stored, step).await?;
            "second_factor_enabled"
        } else {
            session.set_totp_last_step(user.id, step).await?;
            session.disable_totp(user.id).await?;
            "second_factor_disabled"
        };
        audit(&mut session, &label(user), action, json!({}), now).await?;
        session.commit().await?;
        Ok(Checked::Accepted)
    }

    /// Refuses anyone but an owner who is not limited to a product.
    fn require_owner(signed: &ConsoleSession) -> Result<()> {
        if signed.user.role.manages_users() && signed.user.product_id.is_none() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "only owners manage the console's users".into(),
            ))
        }
    }

    /// The console's users, in the order they were created.
    pub async fn console_users(
        &self,
        signed: &ConsoleSession,
        page: &PageRequest,
    ) -> Result<Page<UserRow>> {
        Self::require_owner(signed)?;
        let page = PageRequest {
            limit: Some(page.limit.unwrap_or(USERS_PAGE)),
            ..page.clone()
        };
        let (after, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .console_users(after, limit + 1)
            .await?;
        let rows = rows
            .into_iter()
            .map(|(user, second_factor)| UserRow {
                user,
                second_factor,
            })
            .collect();
        Ok(Page::from_rows(rows, limit, |r| r.user.id))
    }

    /// One user, for the owners' edit form.
    pub async fn console_user(&self, signed: &ConsoleSession, id: i64) -> Result<ConsoleUser> {
        Self::require_owner(signed)?;
        self.store
            .read()
            .await?
            .console_user(id)
            .await?
            .ok_or(AppError::NotFound(Entity::ConsoleUser))
    }

    /// Creates a user, as an owner.
    pub async fn add_console_user(
        &self,
        signed: &ConsoleSession,
        email: &str,
        password: &str,
        role: Role,
        product_id: Option<i64>,
    ) -> Result<ConsoleUser> {
        Self::require_owner(signed)?;
        self.create_console_user(&signed.principal, email, password, role, product_id)
            .await
    }

    /// Locks another user's row for an owner's change; refuses the owner's own.
    async fn other_user(
        session: &mut Session,
        signed: &ConsoleSession,
        id: i64,
    ) -> Result<ConsoleUser> {
        Self::require_owner(signed)?;
        if id == signed.user.id {
            return Err(AppError::Forbidden(
                "you cannot change your own role or access; another owner can".into(),
            ));
        }
        session
            .lock_console_user(id)
            .await?
            .ok_or(AppError::NotFound(Entity::ConsoleUser))
    }

    /// Changes another user's role and product limit. The change holds from their next
    /// request on: every request reads the user afresh.
    pub async fn change_console_user(
        &self,
        signed: &ConsoleSession,
        id: i64,
        role: Role,
        product_id: Option<i64>,
    ) -> Result<ConsoleUser> {
        Self::require_owner(signed)?;
        let now = self.now();
        let mut session = self.store.write().await?;
        let before = Self::other_user(&mut session, signed, id).await?;
        if let Some(p) = product_id {
            session
                .product(p)
                .await?
                .ok_or(AppError::invalid("product", "no such product"))?;
        }
        session.update_console_user(id, role, product_id).await?;
        audit(
            &mut session,
            &label(&signed.user),
            "user_changed",
            json!({
                "user_id": id,
                "email": before.email,
                "from": {"role": before.role.as_str(), "product_id": before.product_id},
                "to": {"role": role.as_str(), "product_id": product_id},
            }),
            now,
        )
        .await?;
        let after = session
            .console_user(id)
            .await?
            .ok_or(AppError::NotFound(Entity::ConsoleUser))?;
        session.commit().await?;
        Ok(after)
    }

    /// Disables another user, ending every session of theirs, or enables them again.
    pub async fn set_console_user_disabled(
        &self,
        signed: &ConsoleSession,
        id: i64,
        disabled: bool,
    ) -> Result<ConsoleUser> {
        Self::require_owner(signed)?;
        let now = self.now();
        let mut session = self.store.write().await?;
        let user = Self::other_user(&mut session, signed, id).await?;
        let (at, action) = match disabled {
            true => (Some(now), "user_disabled"),
            false => (None, "user_enabled"),
        };
        session.set_console_user_disabled(id, at).await?;
        let ended = match disabled {
            true => session.end_console_sessions_of(id, None, now).await?,
            false => 0,
        };
        audit(
            &mut session,
            &label(&signed.user),
            action,
            json!({"user_id": id, "email": user.email, "ended_sessions": ended}),
            now,
        )
        .await?;
        let after = session
            .console_user(id)
            .await?
            .ok_or(AppError::NotFound(Entity::ConsoleUser))?;
        session.commit().await?;
        Ok(after)
    }

    /// Removes another user's second factor (a lost phone): they sign in with their password
    /// and may enrol again.
    pub async fn reset_console_user_second_factor(
        &self,
        signed: &ConsoleSession,
        id: i64,
    ) -> Result<()> {
        Self::require_owner(signed)?;
        let now = self.now();
        let mut session = self.store.write().await?;
        let user = Self::other_user(&mut session, signed, id).await?;
        session.disable_totp(id).await?;
        audit(
            &mut session,
            &label(&signed.user),
            "user_second_factor_reset",
            json!({"user_id": id, "email": user.email}),
            now,
        )
        .await?;
        session.commit().await?;
        Ok(())
    }

    /// The console's audit log entries about users and sessions, newest first (for owners).
    pub async fn console_audit_log(
        &self,
        signed: &ConsoleSession,
        limit: i64,
    ) -> Result<Vec<(DateTime<Utc>, String, String, String)>> {
        Self::require_owner(signed)?;
        Ok(self
            .store
            .read()
            .await?
            .console_events(limit.clamp(1, 200))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_kept_short_and_printable() {
        assert_eq!(
            agent(Some("Mozilla/5.0\n\u{7}x")).as_deref(),
            Some("Mozilla/5.0x")
        );
        assert_eq!(agent(Some("   ")), None);
        assert_eq!(agent(Some(&"a".repeat(500))).unwrap().len(), 200);
        assert_eq!(agent(None), None);
    }
}
