//! What the payment records say, for the API: payments, provider events, subscriptions.

use keyturn_core::payment::{Payment, ProviderEvent, Subscription};
use keyturn_core::Permission;

use crate::Entity;
use crate::{App, AppError, Page, PageRequest, Principal, Result};

impl App {
    pub async fn payments(
        &self,
        principal: &Principal,
        license_id: Option<i64>,
        page: &PageRequest,
    ) -> Result<Page<Payment>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (after, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .payments(license_id, after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |p| p.id))
    }

    pub async fn payment(&self, principal: &Principal, id: i64) -> Result<Payment> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .payment(id)
            .await?
            .ok_or(AppError::NotFound(Entity::Payment))
    }

    /// Newest first. The cursor is the provider time (ms) of the last event of the previous page.
    pub async fn provider_events(
        &self,
        principal: &Principal,
        provider: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProviderEvent>> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        let (before, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .provider_events(provider, before, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |e| {
            e.created.timestamp_millis()
        }))
    }

    pub async fn provider_event(
        &self,
        principal: &Principal,
        provider: &str,
        event_id: &str,
    ) -> Result<ProviderEvent> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .provider_event(provider, event_id)
            .await?
            .ok_or(AppError::NotFound(Entity::ProviderEvent))
    }

    /// A provider's subscription as Keyturn last recorded it.
    pub async fn subscription(
        &self,
        principal: &Principal,
        provider: &str,
        subscription_id: &str,
    ) -> Result<Subscription> {
        principal.require_unrestricted(Permission::PaymentsRead)?;
        self.store
            .read()
            .await?
            .subscription(provider, subscription_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Subscription))
    }

    /// Whether an event is already handled (sync skips those without fetching more).
    pub(super) async fn provider_event_handled(
        &self,
        provider: &str,
        event_id: &str,
    ) -> Result<bool> {
        Ok(self
            .store
            .read()
            .await?
            .provider_event(provider, event_id)
            .await?
            .is_some_and(|e| e.status.is_handled()))
    }
}
