//! The set-up a vendor does before selling — products, plans, access tokens, payment forms,
//! license URLs — as the console pages through it, and what each payment provider's
//! deliveries came to.
//!
//! Invariants:
//!
//! * Listings are keyset pages read by primary key after a cursor ([`SETUP_PAGE`] rows), each
//!   narrowed in the database to what the principal may list: no page loads a whole table.
//! * Every change of set-up (in `catalog`, `tokens`, `forms`, `license_urls`) writes an entry
//!   to the console's audit log through [`App::audit_setup`], in the transaction of the change,
//!   naming the principal (`user:<email>`, `token:<id>`, `cli`). Entries name what changed,
//!   never a secret: a token's or a license URL's secret is handed out once, by the use case
//!   that made it, and kept nowhere but as a hash.
//! * A webhook delivery refused before anything was recorded (wrong signature or secret, a
//!   provider not set up) is counted per provider and reason ([`App::note_refusal`]), so the
//!   status page can say a secret is wrong without storing what anyone sent. Counting is best
//!   effort: the refusal is the answer either way, and a database that cannot count it must
//!   not turn a 400 into a 500.

use chrono::{DateTime, Utc};
use keyturn_core::payment::{LicenseUrl, PaymentForm};
use keyturn_core::provider::ProviderError;
use keyturn_core::{AccessToken, Permission, Plan, Product, PublicKey, RsaPublicKey};
use keyturn_store::{ProviderActivity, Session};
use serde_json::Value;

use crate::{App, AppError, Entity, Page, PageRequest, Principal, Result};

/// Rows on one page of a set-up listing.
pub const SETUP_PAGE: i64 = 25;

/// A product and the public keys programs verify its licenses with.
#[derive(Debug, Clone)]
pub struct ProductKeys {
    pub product: Product,
    /// Signs native replies and license files (the Keyturn client's key).
    pub ed25519: PublicKey,
    /// Signs the Cryptolens-compatible API's licenses (the Cryptolens SDKs' key).
    pub rsa: RsaPublicKey,
}

/// Why a delivery was refused before it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A signature or secret that does not match (or is stale).
    BadSignature,
    /// This server is not set up for the provider.
    NotConfigured,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadSignature => "bad_signature",
            Refusal::NotConfigured => "not_configured",
        }
    }

    /// The refusals worth counting; a malformed body or an unreachable provider is not a
    /// set-up problem.
    pub fn of(error: &ProviderError) -> Option<Self> {
        match error {
            ProviderError::BadSignature(_) => Some(Refusal::BadSignature),
            ProviderError::NotConfigured(_) => Some(Refusal::NotConfigured),
            _ => None,
        }
    }
}

/// What one provider's deliveries came to.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    pub provider: String,
    pub activity: ProviderActivity,
    /// Refused deliveries: (count, last time, last message) for each reason seen.
    pub bad_signature: Option<(i64, DateTime<Utc>, String)>,
    pub not_configured: Option<(i64, DateTime<Utc>, String)>,
}

/// A page request with the set-up pages' size, resolved to (after, limit).
fn setup_page(page: &PageRequest) -> Result<(i64, i64)> {
    let (after, limit) = PageRequest {
        limit: Some(page.limit.unwrap_or(SETUP_PAGE)),
        ..page.clone()
    }
    .resolve()?;
    Ok((after.unwrap_or(0), limit))
}

impl App {
    /// Writes an audit entry for a set-up change, in `session`'s transaction.
    pub(crate) async fn audit_setup(
        &self,
        session: &mut Session,
        principal: &Principal,
        action: &str,
        details: Value,
    ) -> Result<()> {
        session
            .insert_console_event(&principal.actor.label(), action, &details, self.now())
            .await?;
        Ok(())
    }

    /// One page of the products the principal may see.
    pub async fn products_page(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<Product>> {
        let only = principal.require_listing(Permission::ProductsRead, None)?;
        let (after, limit) = setup_page(page)?;
        let rows = self
            .store
            .read()
            .await?
            .products_after(only, after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |p| p.id))
    }

    /// A product with its public keys.
    pub async fn product_keys(&self, principal: &Principal, id: i64) -> Result<ProductKeys> {
        let product = self.product(principal, id).await?;
        Ok(ProductKeys {
            ed25519: self.public_key(id).await?,
            rsa: self.rsa_public_key(id).await?,
            product,
        })
    }

    /// One page of plans, of one product or of every product the principal may see.
    pub async fn plans_page(
        &self,
        principal: &Principal,
        product_id: Option<i64>,
        page: &PageRequest,
    ) -> Result<Page<Plan>> {
        let product_id = principal.require_listing(Permission::PlansRead, product_id)?;
        let (after, limit) = setup_page(page)?;
        let rows = self
            .store
            .read()
            .await?
            .plans_after(product_id, after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |p| p.id))
    }

    pub async fn tokens_page(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<AccessToken>> {
        principal.require_unrestricted(Permission::TokensManage)?;
        let (after, limit) = setup_page(page)?;
        let rows = self
            .store
            .read()
            .await?
            .tokens_after(after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |t| t.id))
    }

    pub async fn token(&self, principal: &Principal, id: i64) -> Result<AccessToken> {
        principal.require_unrestricted(Permission::TokensManage)?;
        self.store
            .read()
            .await?
            .token(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Token))
    }

    pub async fn payment_forms_page(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<PaymentForm>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (after, limit) = setup_page(page)?;
        let rows = self
            .store
            .read()
            .await?
            .forms_after(after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |f| f.id))
    }

    pub async fn payment_form(&self, principal: &Principal, id: i64) -> Result<PaymentForm> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .form(id)
            .await?
            .ok_or(AppError::NotFound(Entity::PaymentForm))
    }

    pub async fn license_urls_page(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<LicenseUrl>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (after, limit) = setup_page(page)?;
        let rows = self
            .store
            .read()
            .await?
            .license_urls_after(after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |u| u.id))
    }

    pub async fn license_url(&self, principal: &Principal, id: i64) -> Result<LicenseUrl> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .license_url(id)
            .await?
            .map(|(url, _)| url)
            .ok_or(AppError::NotFound(Entity::LicenseUrl))
    }

    /// What each of `providers`' deliveries came to: the newest event, failed events, and
    /// deliveries refused for a wrong signature or a missing set-up.
    pub async fn provider_status(
        &self,
        principal: &Principal,
        providers: &[&str],
    ) -> Result<Vec<ProviderStatus>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let mut session = self.store.read().await?;
        let refusals = session.refusal_counts().await?;
        let mut out = Vec::with_capacity(providers.len());
        for provider in providers {
            let refused = |reason: Refusal| {
                refusals
                    .iter()
                    .find(|r| r.provider == *provider && r.reason == reason.as_str())
                    .map(|r| (r.count, r.last_at, r.last_detail.clone()))
            };
            out.push(ProviderStatus {
                provider: (*provider).to_owned(),
                activity: session.provider_activity(provider).await?,
                bad_signature: refused(Refusal::BadSignature),
                not_configured: refused(Refusal::NotConfigured),
            });
        }
        Ok(out)
    }

    /// Counts a delivery of `provider` refused with `error`, when it is a set-up problem.
    pub async fn note_refusal(&self, provider: &str, error: &ProviderError) {
        let Some(reason) = Refusal::of(error) else {
            return;
        };
        let counted = async {
            let mut session = self.store.write().await?;
            session
                .count_refusal(provider, reason.as_str(), &error.to_string(), self.now())
                .await?;
            session.commit().await?;
            Ok::<_, AppError>(())
        };
        if let Err(e) = counted.await {
            tracing::warn!(provider, reason = reason.as_str(), error = %e, "a refused delivery could not be counted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_up_problems_count_as_refusals() {
        let bad = ProviderError::BadSignature("no signature matches".into());
        assert_eq!(Refusal::of(&bad), Some(Refusal::BadSignature));
        let missing = ProviderError::NotConfigured("set the secret".into());
        assert_eq!(Refusal::of(&missing), Some(Refusal::NotConfigured));
        assert_eq!(Refusal::of(&ProviderError::Malformed("x".into())), None);
        assert_eq!(Refusal::of(&ProviderError::Unavailable("x".into())), None);
    }

    #[test]
    fn setup_pages_start_at_the_beginning_and_refuse_foreign_cursors() {
        assert_eq!(
            setup_page(&PageRequest::default()).unwrap(),
            (0, SETUP_PAGE)
        );
        let next = PageRequest {
            cursor: Some("40".into()),
            limit: None,
        };
        assert_eq!(setup_page(&next).unwrap(), (40, SETUP_PAGE));
        let bad = PageRequest {
            cursor: Some("x".into()),
            limit: None,
        };
        assert!(setup_page(&bad).is_err());
    }
}
