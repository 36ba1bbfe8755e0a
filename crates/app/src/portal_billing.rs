//! The money side of the customer portal: the buyer's subscriptions and payments, the provider's
//! billing portal, and the Cryptolens-style sign-in by a customer's secret.
//!
//! Invariants:
//!
//! * Everything shown belongs to the session's buyer as the licenses do (`portal.rs`): rows of
//!   customers with the session's email, or rows that bought or renew such a customer's
//!   license. A customer id a form names is checked against that email before anything is
//!   asked of a provider, and a foreign one is answered like a missing one.
//! * "Manage billing" opens a Stripe Billing Portal session for the Stripe customer Keyturn
//!   recorded for that customer (never an id from the request), one session per click, with
//!   the return address built from configuration (a Host header is anyone's to set).
//! * A customer's secret (Cryptolens `AddCustomer` → `portalLink`) is a standing credential:
//!   it opens a portal session for the customer's email every time, not once. It is stored
//!   hashed (only compared by hash), attempts are throttled per client address like key
//!   sign-ins, and an unknown secret, a customer without an email and a throttled attempt
//!   all look alike to the caller except for the 429.
//! * Receipt links come from the provider's own verified webhook bodies
//!   ([`keyturn_core::receipt`]), https only.

use keyturn_core::payment::{Payment, Subscription};
use keyturn_core::{TokenHash, TokenSecret};
use serde_json::json;

use crate::portal::{PortalSession, PortalSignIn, MAX_REQUESTS_PER_IP, THROTTLE_WINDOW};
use crate::{App, AppError, Entity, Page, PageRequest, PaymentGateway, Result};

/// The most subscriptions the billing page lists.
pub const SUBSCRIPTIONS_SHOWN: i64 = 50;
/// Payments per page of the payment history.
pub const PAYMENTS_PAGE: i64 = 20;
/// Where the billing page is, below the portal's address.
pub const BILLING_PATH: &str = "/portal/billing";

/// One subscription as its buyer sees it.
#[derive(Debug, Clone)]
pub struct PortalSubscription {
    pub subscription: Subscription,
    pub plan: Option<String>,
    pub product: Option<String>,
    /// The key of the license it renews, once there is one.
    pub key: Option<String>,
}

/// One payment as its buyer sees it.
#[derive(Debug, Clone)]
pub struct PortalPayment {
    pub payment: Payment,
    pub plan: Option<String>,
    /// The provider's receipt, where its report gave one.
    pub receipt: Option<String>,
}

/// A customer of the buyer's whose billing the provider's portal manages.
#[derive(Debug, Clone)]
pub struct BillingAccount {
    pub customer_id: i64,
    pub name: String,
    pub company: Option<String>,
}

/// The billing page's content.
#[derive(Debug, Clone)]
pub struct PortalBilling {
    pub subscriptions: Vec<PortalSubscription>,
    /// Newest first; the cursor pages back in time.
    pub payments: Page<PortalPayment>,
    /// Customers with a Stripe customer id: each gets a "Manage billing" button.
    pub stripe_accounts: Vec<BillingAccount>,
}

/// What asking for the provider's billing portal came to.
#[derive(Debug, PartialEq, Eq)]
pub enum BillingPortal {
    /// Send the buyer here.
    Opened(String),
    /// The customer has no account at the provider (bought elsewhere, or imported).
    NoAccount,
}

impl App {
    /// Sets the portal's public address (`https://host/portal`), which key mails link to;
    /// without it they carry no link.
    pub fn with_portal_url(mut self, public_url: Option<&str>) -> Self {
        self.parts_mut().portal_url = public_url
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(|u| format!("{u}/portal"));
        self
    }

    /// The portal's public address, if configured.
    pub fn portal_url(&self) -> Option<&str> {
        self.0.portal_url.as_deref()
    }

    /// The buyer's subscriptions, one page of payments (newest first) and the accounts the
    /// provider's billing portal can open for.
    pub async fn portal_billing(
        &self,
        buyer: &PortalSession,
        page: &PageRequest,
    ) -> Result<PortalBilling> {
        let page = PageRequest {
            limit: Some(page.limit.unwrap_or(PAYMENTS_PAGE).min(PAYMENTS_PAGE)),
            ..page.clone()
        };
        let (before, limit) = page.resolve()?;
        let mut s = self.store.read().await?;
        let mut subscriptions = Vec::new();
        for sub in s
            .portal_subscriptions(&buyer.email, SUBSCRIPTIONS_SHOWN)
            .await?
        {
            let plan = match sub.plan_id {
                Some(id) => s.plan(id).await?,
                None => None,
            };
            let product = match &plan {
                Some(p) => s.product(p.product_id).await?.map(|p| p.name),
                None => None,
            };
            let key = match sub.license_id {
                Some(id) => s.license(id).await?.map(|l| l.key),
                None => None,
            };
            subscriptions.push(PortalSubscription {
                subscription: sub,
                plan: plan.map(|p| p.name),
                product,
                key,
            });
        }
        let mut payments = Vec::new();
        for (payment, payload) in s.portal_payments(&buyer.email, before, limit + 1).await? {
            let plan = match payment.plan_id {
                Some(id) => s.plan(id).await?.map(|p| p.name),
                None => None,
            };
            let receipt = payload
                .as_deref()
                .and_then(|body| keyturn_core::receipt::receipt_url(&payment.provider, body));
            payments.push(PortalPayment {
                payment,
                plan,
                receipt,
            });
        }
        let mut stripe_accounts = Vec::new();
        for c in s.portal_customers(&buyer.email).await? {
            if s.provider_customer_id(c.id, STRIPE).await?.is_some() {
                stripe_accounts.push(BillingAccount {
                    customer_id: c.id,
                    name: c.name,
                    company: c.company,
                });
            }
        }
        Ok(PortalBilling {
            subscriptions,
            payments: Page::from_rows(payments, limit, |p| p.payment.id),
            stripe_accounts,
        })
    }

    /// Opens the provider's billing portal for the buyer's customer `customer_id`, returning
    /// to `return_url`. A customer that is not the buyer's is not found.
    pub async fn portal_billing_session(
        &self,
        buyer: &PortalSession,
        gateway: Option<&dyn PaymentGateway>,
        customer_id: i64,
        return_url: &str,
    ) -> Result<BillingPortal> {
        let stripe_id = {
            let mut s = self.store.read().await?;
            let own = s
                .portal_customers(&buyer.email)
                .await?
                .into_iter()
                .any(|c| c.id == customer_id);
            if !own {
                return Err(AppError::NotFound(Entity::Customer));
            }
            s.provider_customer_id(customer_id, STRIPE).await?
        };
        let Some(stripe_id) = stripe_id else {
            return Ok(BillingPortal::NoAccount);
        };
        let gateway = gateway.ok_or_else(|| {
            keyturn_core::provider::ProviderError::NotConfigured(
                "Stripe is not configured on this server".into(),
            )
        })?;
        let url = gateway.billing_portal(&stripe_id, return_url).await?;
        let now = self.now();
        let mut s = self.store.write().await?;
        s.insert_console_event(
            &buyer.actor(),
            "portal_billing_opened",
            &json!({"customer_id": customer_id, "provider": STRIPE}),
            now,
        )
        .await?;
        s.commit().await?;
        Ok(BillingPortal::Opened(url))
    }

    /// Signs in with a customer's secret (the `portalLink` of Cryptolens `AddCustomer`).
    pub async fn portal_sign_in_with_secret(
        &self,
        presented: &str,
        ip: Option<&str>,
    ) -> Result<PortalSignIn> {
        let now = self.now();
        let mut s = self.store.write().await?;
        if let Some(ip) = ip {
            let subject = format!("portal-ip:{ip}");
            s.lock_name(&subject).await?;
            if s.login_failures(&subject, now - THROTTLE_WINDOW).await? >= MAX_REQUESTS_PER_IP {
                return Ok(PortalSignIn::Throttled);
            }
            s.insert_login_failure(&subject, now).await?;
        }
        let email = s
            .customer_by_secret(&TokenHash::of(presented.trim()))
            .await?
            .and_then(|c| c.email)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let Some(email) = email else {
            // The attempt still counts.
            s.commit().await?;
            return Ok(PortalSignIn::Refused);
        };
        let secret = TokenSecret::generate_session();
        s.insert_portal_session(&secret.hash(), &email, ip, now)
            .await?;
        s.insert_console_event(
            &format!("customer:{email}"),
            "portal_signed_in",
            &json!({"by": "customer_secret", "ip": ip}),
            now,
        )
        .await?;
        s.commit().await?;
        Ok(PortalSignIn::Started(secret))
    }

    /// The link into the portal a customer's secret opens, under `public_url` (the server's
    /// address; a path only without one).
    pub fn portal_secret_link(public_url: Option<&str>, secret: &TokenSecret) -> String {
        format!(
            "{}/portal/secret/{}",
            public_url.unwrap_or("").trim().trim_end_matches('/'),
            secret.expose()
        )
    }
}

const STRIPE: &str = "stripe";
