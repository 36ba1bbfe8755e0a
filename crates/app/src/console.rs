//! The admin console's people and sessions, and the views its pages show.
//!
//! Invariants:
//!
//! * A console user acts as a [`Principal`] made from their role's permissions and product
//!   limit, so every page goes through the same use cases and scope checks as the API; the
//!   audit log names them `user:<email>`.
//! * Passwords are stored as argon2id hashes only. A sign-in with an unknown email costs the
//!   same hash as one with a known email, and says the same thing, so the form tells no one
//!   which accounts exist.
//! * Sign-in attempts are throttled per account and per client address by counting attempts
//!   in the database (every node sees the same count). An attempt is counted before its
//!   password is checked and taken back if it was right, so parallel guesses get no more
//!   tries than sequential ones. A throttled attempt is not checked at all: its password may
//!   be right, and saying so would undo the throttle.
//! * A session is a random 256-bit secret in a cookie; the database holds its SHA-256 only
//!   (a fast hash suffices for 256 random bits). Each sign-in makes a new one, so an id that
//!   someone planted before sign-in never becomes a signed-in session. A session ends at sign
//!   out, after [`IDLE`] without use and [`ABSOLUTE`] after sign-in, whichever comes first.
//! * The CSRF token of a session is derived from its secret, so it needs no storage and dies
//!   with the session; it is compared in constant time by whoever checks it.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use keyturn_core::names::display_name;
use keyturn_core::payment::{Payment, Subscription};
use keyturn_core::{
    Activation, ConsoleUser, Customer, Email, License, LicenseEvent, LicenseStatus, Password,
    Permission, Product, Role, TokenHash, TokenSecret,
};
use keyturn_store::{LicenseSearch, Session};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, Entity, Page, PageRequest, Principal, Result};

/// A session unused this long has ended.
pub const IDLE: Duration = Duration::hours(1);
/// A session this old has ended, however busy.
pub const ABSOLUTE: Duration = Duration::hours(12);
/// How often a session's last use is written (not at every page).
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The window in which refused sign-ins count.
pub const THROTTLE_WINDOW: Duration = Duration::minutes(15);
/// Refused sign-ins of one account within the window after which it is throttled.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// Refused sign-ins from one address within the window after which it is throttled.
pub const MAX_FAILURES_PER_IP: i64 = 20;

/// The most licenses one search page shows.
pub const SEARCH_PAGE: i64 = 25;
/// The longest search text.
const MAX_SEARCH_CHARS: usize = 200;
/// The most audit entries a license page shows.
const EVENTS_SHOWN: i64 = 200;

/// A signed-in console user, as a page needs them.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub user: ConsoleUser,
    pub principal: Principal,
    /// The token every state-changing form of this session carries.
    pub csrf: String,
}

/// What a sign-in attempt came to.
#[derive(Debug)]
pub enum SignIn {
    /// A new session: its cookie value, handed out once.
    Started(TokenSecret),
    /// Wrong email or password (which of the two is not said).
    Refused,
    /// Too many refused attempts for this account or address; try again later.
    Throttled,
    /// The password was right and the account has a second factor: the code is asked for
    /// next, under this secret (a cookie of its own, never a session).
    SecondFactor(TokenSecret),
}

/// Everything the license page shows, each part only as far as the user may see it
/// (`None`: not theirs to see).
#[derive(Debug, Clone)]
pub struct LicenseOverview {
    pub license: License,
    pub status: LicenseStatus,
    pub product: Product,
    pub customer: Option<Customer>,
    pub machines: Option<Vec<Activation>>,
    /// Newest first.
    pub events: Option<Vec<LicenseEvent>>,
    pub payments: Option<Vec<Payment>>,
    pub subscriptions: Option<Vec<Subscription>>,
    pub now: DateTime<Utc>,
}

/// The CSRF token of the session (or sign-in form) whose secret is `secret`.
pub fn csrf_token(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"keyturn console csrf\0");
    h.update(secret.as_bytes());
    hex_string(&h.finalize())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hash_password(password: &Password) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::invalid("password", format!("cannot be hashed: {e}")))
}

/// A hash of nothing anyone knows, verified against when the email is unknown so that both
/// cases cost the same.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(TokenSecret::generate().expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

pub(crate) fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

pub(crate) fn principal_of(user: &ConsoleUser) -> Principal {
    Principal::new(
        Actor::User {
            id: user.id,
            email: user.email.clone(),
        },
        user.role.permissions(),
        user.product_id,
    )
}

pub(crate) async fn audit(
    session: &mut Session,
    actor: &str,
    action: &str,
    details: Value,
    at: DateTime<Utc>,
) -> Result<()> {
    session
        .insert_console_event(actor, action, &details, at)
        .await?;
    Ok(())
}

impl App {
    /// Creates a console user (from the command line, or by an unrestricted admin).
    pub async fn create_console_user(
        &self,
        principal: &Principal,
        email: &str,
        password: &str,
        role: Role,
        product_id: Option<i64>,
    ) -> Result<ConsoleUser> {
        principal.require_unrestricted(Permission::Admin)?;
        let email = Email::parse(email)?.into_string();
        let password = Password::parse(password)?;
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| AppError::Conflict(format!("hashing failed: {e}")))??;
        let mut session = self.store.write().await?;
        if let Some(p) = product_id {
            session
                .product(p)
                .await?
                .ok_or(AppError::invalid("product", "no such product"))?;
        }
        if session.console_user_by_email(&email).await?.is_some() {
            return Err(AppError::Conflict(format!(
                "a console user with email {email} exists already"
            )));
        }
        let user = session
            .insert_console_user(&email, &hash, role, product_id, self.now())
            .await?;
        audit(
            &mut session,
            &principal.actor.label(),
            "user_created",
            json!({"user_id": user.id, "email": user.email, "role": role.as_str(), "product_id": product_id}),
            self.now(),
        )
        .await?;
        session.commit().await?;
        Ok(user)
    }

    /// Signs a user in with email and password from `ip`.
    pub async fn console_sign_in(
        &self,
        email: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<SignIn> {
        self.console_sign_in_from(email, password, ip, None).await
    }

    /// Counts an attempt at a secret of `email`'s account (a password or a second-factor
    /// code) from `ip`, before it is checked; `None` when the account or the address is
    /// throttled. The rows returned are taken back when the attempt turns out right.
    pub(crate) async fn count_attempt(
        &self,
        email: &str,
        ip: Option<&str>,
    ) -> Result<Option<Vec<i64>>> {
        let now = self.now();
        let account = format!("email:{email}");
        let address = ip.map(|ip| format!("ip:{ip}"));
        let since = now - THROTTLE_WINDOW;
        // The attempt counts before its secret is checked, in a transaction that holds the
        // account's and the address's names: guesses sent at once are counted one by one.
        let mut session = self.store.write().await?;
        session.lock_name(&account).await?;
        if let Some(address) = &address {
            session.lock_name(address).await?;
        }
        if session.login_failures(&account, since).await? >= MAX_FAILURES_PER_ACCOUNT {
            return Ok(None);
        }
        if let Some(address) = &address {
            if session.login_failures(address, since).await? >= MAX_FAILURES_PER_IP {
                return Ok(None);
            }
        }
        session.prune_login_failures(since).await?;
        let mut counted = vec![session.insert_login_failure(&account, now).await?];
        if let Some(address) = &address {
            counted.push(session.insert_login_failure(address, now).await?);
        }
        session.commit().await?;
        Ok(Some(counted))
    }

    /// [`App::console_sign_in`], recording the browser (`user_agent`) the session is for.
    pub async fn console_sign_in_from(
        &self,
        email: &str,
        password: &str,
        ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<SignIn> {
        let now = self.now();
        let user_agent = crate::console_account::agent(user_agent);
        let user_agent = user_agent.as_deref();
        // Anything that is not an email matches no account, but is throttled like one.
        let email = Email::parse(email)
            .map(Email::into_string)
            .unwrap_or_else(|_| email.trim().to_lowercase());
        let Some(counted) = self.count_attempt(&email, ip).await? else {
            return Ok(SignIn::Throttled);
        };
        let found = self
            .store
            .read()
            .await?
            .console_user_by_email(&email)
            .await?;
        let hash = found
            .as_ref()
            .map_or_else(|| decoy_hash().to_owned(), |(_, h)| h.clone());
        let typed = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || password_matches(&hash, &typed))
            .await
            .unwrap_or(false);
        let mut session = self.store.write().await?;
        match found {
            Some((user, _)) if matches && !user.disabled => {
                for id in counted {
                    session.delete_login_failure(id).await?;
                }
                let secret = TokenSecret::generate_session();
                if session.console_totp(user.id).await?.secret.is_some() {
                    // Not signed in yet: the code comes next, and counts like a password.
                    session
                        .insert_console_challenge(&secret.hash(), user.id, ip, user_agent, now)
                        .await?;
                    session.commit().await?;
                    return Ok(SignIn::SecondFactor(secret));
                }
                session
                    .insert_console_session(&secret.hash(), user.id, ip, now)
                    .await?;
                session
                    .set_console_session_agent(&secret.hash(), user_agent)
                    .await?;
                audit(
                    &mut session,
                    &principal_of(&user).actor.label(),
                    "signed_in",
                    json!({"ip": ip}),
                    now,
                )
                .await?;
                session.commit().await?;
                Ok(SignIn::Started(secret))
            }
            _ => {
                audit(
                    &mut session,
                    "anonymous",
                    "sign_in_refused",
                    json!({"email": email, "ip": ip}),
                    now,
                )
                .await?;
                session.commit().await?;
                Ok(SignIn::Refused)
            }
        }
    }

    /// The signed-in user behind a session cookie value; anything unknown, ended, idle too
    /// long, too old or of a disabled user is unauthenticated.
    pub async fn console_session(&self, presented: &str) -> Result<ConsoleSession> {
        let hash = TokenHash::of(presented);
        let now = self.now();
        let row = self
            .store
            .read()
            .await?
            .console_session(&hash)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        if row.user.disabled || now - row.last_seen >= IDLE || now - row.created >= ABSOLUTE {
            return Err(AppError::Unauthenticated);
        }
        if now - row.last_seen >= TOUCH_EVERY {
            let mut session = self.store.write().await?;
            session.touch_console_session(&hash, now).await?;
            session.commit().await?;
        }
        Ok(ConsoleSession {
            principal: principal_of(&row.user),
            csrf: csrf_token(presented),
            user: row.user,
        })
    }

    /// Ends the session behind a cookie value.
    pub async fn console_sign_out(
        &self,
        signed_in: &ConsoleSession,
        presented: &str,
    ) -> Result<()> {
        let mut session = self.store.write().await?;
        if session
            .end_console_session(&TokenHash::of(presented), self.now())
            .await?
        {
            audit(
                &mut session,
                &signed_in.principal.actor.label(),
                "signed_out",
                json!({}),
                self.now(),
            )
            .await?;
        }
        session.commit().await?;
        Ok(())
    }

    /// Licenses whose key, customer (email or name), machine (fingerprint or name), order,
    /// subscription or payment id starts with `term`, within the user's product.
    pub async fn search_licenses(
        &self,
        principal: &Principal,
        term: &str,
        page: &PageRequest,
    ) -> Result<Page<License>> {
        let product_id = principal.require_listing(Permission::LicensesRead, None)?;
        let term = term.trim();
        if term.is_empty() || term.chars().count() > MAX_SEARCH_CHARS {
            return Err(AppError::invalid(
                "q",
                format!("must be 1 to {MAX_SEARCH_CHARS} characters"),
            ));
        }
        display_name("q", term)?;
        let page = PageRequest {
            limit: Some(page.limit.unwrap_or(SEARCH_PAGE)),
            ..page.clone()
        };
        let (after, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .licenses_by_prefix(&LicenseSearch {
                key: term.to_uppercase(),
                lower: term.to_lowercase(),
                exact: term.to_owned(),
                product_id,
                after,
                limit: limit + 1,
            })
            .await?;
        Ok(Page::from_rows(rows, limit, |l| l.id))
    }

    /// One license with everything about it the user may see.
    pub async fn license_overview(
        &self,
        principal: &Principal,
        id: i64,
    ) -> Result<LicenseOverview> {
        principal.require(Permission::LicensesRead)?;
        let now = self.now();
        let mut session = self.store.read().await?;
        let found = session.license(id).await?;
        principal.require_license(Permission::LicensesRead, found.as_ref())?;
        let license = found.ok_or(AppError::NotFound(Entity::License))?;
        let product = session
            .product(license.product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        // The license's own customer, for whoever may read customers and this license.
        let customer = match license.customer_id {
            Some(c) if principal.holds(Permission::CustomersRead) => session.customer(c).await?,
            _ => None,
        };
        let machines = if principal.holds(Permission::ActivationsRead) {
            Some(session.all_activations(id).await?)
        } else {
            None
        };
        let events = if principal.holds(Permission::EventsRead) {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let rows = session.license_events(id, after, 500).await?;
                let full = rows.len() == 500;
                after = rows.last().map(|e| e.id);
                all.extend(rows);
                if !full {
                    break;
                }
            }
            all.reverse();
            all.truncate(EVENTS_SHOWN as usize);
            Some(all)
        } else {
            None
        };
        // Payments span products: only unrestricted users see them, as on the API.
        let (payments, subscriptions) = if principal
            .require_unrestricted(Permission::PaymentsRead)
            .is_ok()
        {
            (
                Some(session.payments(Some(id), None, 100).await?),
                Some(session.license_subscriptions(id).await?),
            )
        } else {
            (None, None)
        };
        Ok(LicenseOverview {
            status: LicenseStatus::of(&license, now),
            license,
            product,
            customer,
            machines,
            events,
            payments,
            subscriptions,
            now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password(&Password::parse("correct horse battery").unwrap()).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches(&hash, "correct horse battery"));
        assert!(!password_matches(&hash, "correct horse battery "));
        assert!(!password_matches("not a hash", "anything"));
        assert!(!password_matches(decoy_hash(), ""));
    }

    #[test]
    fn csrf_tokens_differ_per_session() {
        let a = csrf_token("ks_a");
        assert_eq!(a, csrf_token("ks_a"));
        assert_ne!(a, csrf_token("ks_b"));
        assert_eq!(a.len(), 64);
    }
}
