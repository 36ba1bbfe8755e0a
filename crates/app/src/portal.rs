//! The customer portal: buyers sign in without a password and see their own licenses.
//!
//! Invariants:
//!
//! * A buyer is known by an email address they proved they read: a one-time link mailed to
//!   it, or a license key together with the email that license was sold to. A session grants
//!   exactly the licenses of customers with that email (compared lower-cased) and nothing of
//!   the console: its own table, its own cookie, no [`crate::Principal`].
//! * A sign-in link is a random 256-bit secret; the database holds its SHA-256 only. It
//!   works once (marked used in the same statement that checks it) and for [`LINK_LIFETIME`].
//! * Asking for a link answers the same whether or not the email belongs to a customer (the
//!   mail is only queued when it does), so the form tells no one who bought. Requests are
//!   throttled per email and per client address by counting them in the database, before
//!   looking the email up, so a throttled answer says nothing either.
//! * Sessions are made like the console's (new secret at each sign-in, hash only, idle and
//!   absolute limits), and their CSRF token is derived from their secret.

use chrono::{DateTime, Duration};
use keyturn_core::{Activation, Email, License, LicenseStatus, Product, TokenHash, TokenSecret};
use keyturn_store::Session;
use serde_json::{json, Value};

use crate::console::{csrf_token, ABSOLUTE, IDLE};
use crate::{mail, App, AppError, Page, PageRequest, Result};

/// How long a sign-in link works.
pub const LINK_LIFETIME: Duration = Duration::minutes(15);
/// The window in which link requests and key sign-ins count.
pub const THROTTLE_WINDOW: Duration = Duration::minutes(15);
/// Link requests (or key sign-ins) for one email within the window before it is throttled.
pub const MAX_REQUESTS_PER_EMAIL: i64 = 5;
/// Link requests (or key sign-ins) from one address within the window before it is throttled.
pub const MAX_REQUESTS_PER_IP: i64 = 20;
/// The most licenses one portal page shows.
pub const LICENSES_PAGE: i64 = 20;
/// How often a session's last use is written.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A signed-in buyer.
#[derive(Debug, Clone)]
pub struct PortalSession {
    /// Lower-cased.
    pub email: String,
    /// The token every state-changing form of this session carries.
    pub csrf: String,
}

impl PortalSession {
    /// How the audit log names the buyer.
    pub fn actor(&self) -> String {
        format!("customer:{}", self.email)
    }
}

/// What asking for a sign-in link came to. Known and unknown emails get the same answer.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkRequest {
    /// A link was mailed if the email belongs to a customer.
    Accepted,
    /// Too many requests for this email or from this address; try again later.
    Throttled,
}

/// What a sign-in came to.
#[derive(Debug)]
pub enum PortalSignIn {
    /// A new session: its cookie value, handed out once.
    Started(TokenSecret),
    /// The link was unknown, used or expired; or key and email did not belong together.
    Refused,
    Throttled,
}

/// One license as its buyer sees it.
#[derive(Debug, Clone)]
pub struct PortalLicense {
    pub license: License,
    pub status: LicenseStatus,
    pub product: Product,
    /// Machines that count now (floating seats whose lease ran out free themselves).
    pub machines: Vec<Activation>,
    /// While blocked: the reason the vendor gave for the buyer, if any.
    pub blocked_reason: Option<String>,
}

pub(crate) fn normalized(email: &str) -> String {
    Email::parse(email)
        .map(Email::into_string)
        .unwrap_or_else(|_| email.trim().to_owned())
        .to_lowercase()
}

async fn audit(
    s: &mut Session,
    actor: &str,
    action: &str,
    details: Value,
    at: DateTime<chrono::Utc>,
) -> Result<()> {
    s.insert_console_event(actor, action, &details, at).await?;
    Ok(())
}

impl App {
    /// Counts one request for `email` from `ip`; `false` when either is over its limit.
    pub(crate) async fn portal_count(&self, email: &str, ip: Option<&str>) -> Result<bool> {
        let now = self.now();
        let since = now - THROTTLE_WINDOW;
        let subjects: Vec<(String, i64)> =
            std::iter::once((format!("portal-email:{email}"), MAX_REQUESTS_PER_EMAIL))
                .chain(ip.map(|ip| (format!("portal-ip:{ip}"), MAX_REQUESTS_PER_IP)))
                .collect();
        let mut s = self.store.write().await?;
        for (subject, _) in &subjects {
            s.lock_name(subject).await?;
        }
        for (subject, max) in &subjects {
            if s.login_failures(subject, since).await? >= *max {
                return Ok(false);
            }
        }
        for (subject, _) in &subjects {
            s.insert_login_failure(subject, now).await?;
        }
        s.commit().await?;
        Ok(true)
    }

    /// Mails a one-time sign-in link to `email` if it belongs to a customer; `base` is the
    /// server's public address the link starts with.
    pub async fn portal_request_link(
        &self,
        email: &str,
        ip: Option<&str>,
        base: &str,
    ) -> Result<LinkRequest> {
        let email = normalized(email);
        if Email::parse(&email).is_err() {
            return Err(AppError::invalid("email", "is not an email address"));
        }
        if !self.portal_count(&email, ip).await? {
            return Ok(LinkRequest::Throttled);
        }
        let now = self.now();
        let mut s = self.store.write().await?;
        s.prune_portal_links(now - THROTTLE_WINDOW).await?;
        if s.portal_email_known(&email).await? {
            let secret = TokenSecret::generate_session();
            let expires = now + LINK_LIFETIME;
            s.insert_portal_link(&secret.hash(), &email, now, expires)
                .await?;
            let link = format!(
                "{}/portal/link/{}",
                base.trim_end_matches('/'),
                secret.expose()
            );
            mail::queue_portal_link(&mut s, &email, &link, now).await?;
            audit(
                &mut s,
                &format!("customer:{email}"),
                "portal_link_sent",
                json!({"ip": ip}),
                now,
            )
            .await?;
        }
        s.commit().await?;
        Ok(LinkRequest::Accepted)
    }

    /// Signs in with a link's secret: once, and within its lifetime.
    pub async fn portal_sign_in_with_link(
        &self,
        presented: &str,
        ip: Option<&str>,
    ) -> Result<PortalSignIn> {
        let now = self.now();
        let mut s = self.store.write().await?;
        let Some(email) = s.use_portal_link(&TokenHash::of(presented), now).await? else {
            return Ok(PortalSignIn::Refused);
        };
        let secret = TokenSecret::generate_session();
        s.insert_portal_session(&secret.hash(), &email, ip, now)
            .await?;
        audit(
            &mut s,
            &format!("customer:{email}"),
            "portal_signed_in",
            json!({"by": "link", "ip": ip}),
            now,
        )
        .await?;
        s.commit().await?;
        Ok(PortalSignIn::Started(secret))
    }

    /// Signs in with a license key and the email it was sold to.
    pub async fn portal_sign_in_with_key(
        &self,
        key: &str,
        email: &str,
        ip: Option<&str>,
    ) -> Result<PortalSignIn> {
        let email = normalized(email);
        if !self.portal_count(&email, ip).await? {
            return Ok(PortalSignIn::Throttled);
        }
        let now = self.now();
        let mut s = self.store.write().await?;
        let key = key.trim().to_uppercase();
        let owner = match s.license_by_key(&key).await? {
            Some(License {
                customer_id: Some(c),
                ..
            }) => s.customer(c).await?,
            _ => None,
        };
        let matches = owner
            .and_then(|c| c.email)
            .is_some_and(|e| e.trim().to_lowercase() == email);
        if !matches {
            return Ok(PortalSignIn::Refused);
        }
        let secret = TokenSecret::generate_session();
        s.insert_portal_session(&secret.hash(), &email, ip, now)
            .await?;
        audit(
            &mut s,
            &format!("customer:{email}"),
            "portal_signed_in",
            json!({"by": "key", "ip": ip}),
            now,
        )
        .await?;
        s.commit().await?;
        Ok(PortalSignIn::Started(secret))
    }

    /// The buyer behind a portal cookie value; anything unknown, ended, idle too long or too
    /// old is unauthenticated.
    pub async fn portal_session(&self, presented: &str) -> Result<PortalSession> {
        let hash = TokenHash::of(presented);
        let now = self.now();
        let row = self
            .store
            .read()
            .await?
            .portal_session(&hash)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        if now - row.last_seen >= IDLE || now - row.created >= ABSOLUTE {
            return Err(AppError::Unauthenticated);
        }
        if now - row.last_seen >= TOUCH_EVERY {
            let mut s = self.store.write().await?;
            s.touch_portal_session(&hash, now).await?;
            s.commit().await?;
        }
        Ok(PortalSession {
            email: row.email,
            csrf: csrf_token(presented),
        })
    }

    pub async fn portal_sign_out(&self, buyer: &PortalSession, presented: &str) -> Result<()> {
        let now = self.now();
        let mut s = self.store.write().await?;
        if s.end_portal_session(&TokenHash::of(presented), now).await? {
            audit(&mut s, &buyer.actor(), "portal_signed_out", json!({}), now).await?;
        }
        s.commit().await?;
        Ok(())
    }

    /// The buyer's licenses, a page at a time, with their products and counting machines.
    pub async fn portal_licenses(
        &self,
        buyer: &PortalSession,
        page: &PageRequest,
    ) -> Result<Page<PortalLicense>> {
        let page = PageRequest {
            limit: Some(page.limit.unwrap_or(LICENSES_PAGE).min(LICENSES_PAGE)),
            ..page.clone()
        };
        let (after, limit) = page.resolve()?;
        let now = self.now();
        let mut s = self.store.read().await?;
        let licenses = s.portal_licenses(&buyer.email, after, limit + 1).await?;
        let mut rows = Vec::with_capacity(licenses.len());
        for license in licenses {
            let product = s
                .product(license.product_id)
                .await?
                .ok_or(AppError::NotFound(crate::Entity::Product))?;
            let machines = s
                .all_activations(license.id)
                .await?
                .into_iter()
                .filter(|a| a.is_live(now))
                .collect();
            // Read only for blocked licenses: the list stays one query per license otherwise.
            let blocked_reason = if license.blocked {
                s.public_block_reason(license.id).await?
            } else {
                None
            };
            rows.push(PortalLicense {
                blocked_reason,
                status: LicenseStatus::of(&license, now),
                license,
                product,
                machines,
            });
        }
        Ok(Page::from_rows(rows, limit, |r| r.license.id))
    }
}
