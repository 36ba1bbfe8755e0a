//! What the console's webhook pages show beyond the API's lists: per endpoint how it has been
//! doing, and per delivery its newest attempt (latency, first bytes of the answer). Reads only;
//! the changes are the use cases in the parent module, shared with the API.

use std::collections::HashMap;

use keyturn_core::webhook::{DeliveryState, WebhookAttempt, WebhookDelivery, WebhookEndpoint};
use keyturn_core::Permission;
use keyturn_store::EndpointActivity;

use crate::{App, AppError, Entity, Page, PageRequest, Principal, Result};

/// An endpoint with how it has been doing.
#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub endpoint: WebhookEndpoint,
    pub activity: EndpointActivity,
}

/// One page of an endpoint's deliveries, each with its newest attempt (if it had one).
#[derive(Debug, Clone)]
pub struct DeliveryRows {
    pub endpoint: WebhookEndpoint,
    pub state: Option<DeliveryState>,
    pub page: Page<WebhookDelivery>,
    pub last_attempts: HashMap<i64, WebhookAttempt>,
}

impl App {
    /// One page of endpoints, each with its newest delivery and its failed and pending counts.
    pub async fn webhook_endpoint_rows(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<EndpointRow>> {
        principal.require_unrestricted(Permission::WebhooksRead)?;
        let (after, limit) = page.resolve()?;
        let mut s = self.store.read().await?;
        let found = Page::from_rows(s.webhook_endpoints(after, limit + 1).await?, limit, |e| {
            e.id
        });
        let ids: Vec<i64> = found.data.iter().map(|e| e.id).collect();
        let mut activity: HashMap<i64, EndpointActivity> = s
            .webhook_endpoint_activity(&ids)
            .await?
            .into_iter()
            .map(|a| (a.endpoint_id, a))
            .collect();
        let data = found
            .data
            .into_iter()
            .map(|endpoint| EndpointRow {
                activity: activity.remove(&endpoint.id).unwrap_or(EndpointActivity {
                    endpoint_id: endpoint.id,
                    last: None,
                    failed: 0,
                    pending: 0,
                }),
                endpoint,
            })
            .collect();
        Ok(Page {
            data,
            next_cursor: found.next_cursor,
        })
    }

    /// One page of an endpoint's deliveries (newest first, optionally in one state), with the
    /// endpoint and each delivery's newest attempt.
    pub async fn webhook_delivery_rows(
        &self,
        principal: &Principal,
        endpoint_id: i64,
        state: Option<&str>,
        page: &PageRequest,
    ) -> Result<DeliveryRows> {
        let found = self
            .webhook_deliveries(principal, endpoint_id, state, page)
            .await?;
        let mut s = self.store.read().await?;
        let endpoint = s
            .webhook_endpoint(endpoint_id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        let ids: Vec<i64> = found.data.iter().map(|d| d.id).collect();
        let last_attempts = s
            .last_webhook_attempts(&ids)
            .await?
            .into_iter()
            .map(|a| (a.delivery_id, a))
            .collect();
        Ok(DeliveryRows {
            endpoint,
            state: state.and_then(DeliveryState::parse),
            page: found,
            last_attempts,
        })
    }
}
