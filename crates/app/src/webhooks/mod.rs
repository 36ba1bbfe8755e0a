//! Outgoing webhooks: the vendor's endpoints, and the deliveries of events to them.
//!
//! Invariants, and why:
//! - An event is written in the transaction of the change it reports ([`emit`]), so there is no
//!   change without its event and no event without its change; delivery happens afterwards,
//!   from that outbox, by any node ([`deliveries`]).
//! - A delivery is leased to one node for one attempt at a time (the lease outlives the request
//!   timeout), and a result that comes after its lease ran out changes nothing but the log.
//! - Deliveries about one license reach an endpoint in the order their events happened; an
//!   endpoint that is down or slow holds only its own deliveries (a few in flight at most).
//! - Signing secrets are stored sealed with the master key when one is configured, bound to
//!   their endpoint, and shown once (on creation and rotation). A rotation keeps the old secret
//!   signing beside the new one for the overlap the vendor asks for.
//! - Every change of an endpoint or its deliveries (creation, edit, rotation, deletion, retries,
//!   test events) is written to the console's audit log in its own transaction, under the
//!   principal's name (a console user's `user:<email>`, a token's label).
//! - Managing endpoints needs `webhooks:read` / `webhooks:write` on an unrestricted principal:
//!   an endpoint receives events about customers, payments and mail, which span products.

mod console;
pub(crate) mod deliveries;
pub(crate) mod emit;
mod sweep;

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_core::names::display_name;
use keyturn_core::seal;
use keyturn_core::webhook::{
    overlap_hours, DeliveryState, EndpointUrl, EventFilter, EventType, WebhookAttempt,
    WebhookDelivery, WebhookEndpoint,
};
use keyturn_core::{Permission, TokenSecret};
use keyturn_store::{EndpointFields, Session, StoredSecrets};
use serde_json::json;

use crate::signers::corrupt;
use crate::{now, App, AppError, Entity, Page, PageRequest, Principal, Result};

pub use console::{DeliveryRows, EndpointRow};
pub use deliveries::{AttemptResult, Outgoing};
pub use sweep::SweepReport;

/// How webhooks behave on this installation (`KEYTURN_WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// Deliver to loopback, private and link-local addresses too (a receiver on the vendor's
    /// own network, or the tests' local receiver).
    pub allow_private: bool,
    /// The wait before the first retry; later ones double it (see `keyturn_core::webhook`).
    pub first_retry: Duration,
    /// How long before its expiry a license is announced as expiring soon.
    pub expiring_soon: Duration,
    /// Who hears when an endpoint is disabled; none: the console's owners.
    pub alert_email: Option<String>,
    /// How long finished deliveries and their log are kept.
    pub retention: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            first_retry: Duration::from_secs(30),
            expiring_soon: Duration::from_secs(7 * 86_400),
            alert_email: None,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A new endpoint as the caller describes it.
#[derive(Debug, Clone, Default)]
pub struct NewWebhookEndpoint {
    pub url: String,
    pub description: Option<String>,
    /// Patterns; none: everything (`*`).
    pub events: Option<Vec<String>>,
    pub product_id: Option<i64>,
    pub enabled: Option<bool>,
}

/// Changes to an endpoint; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct WebhookEndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` lifts the product scope.
    pub product_id: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

/// An endpoint with its signing secret, shown only when it is made (creation, rotation).
#[derive(Debug, Clone)]
pub struct EndpointSecret {
    pub endpoint: WebhookEndpoint,
    pub secret: TokenSecret,
}

/// A delivery with its log and the event it sends.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryLog {
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    pub attempts_log: Vec<WebhookAttempt>,
    /// The event as sent (the exact body).
    pub event: serde_json::Value,
}

/// The most attempts a delivery's log shows.
const LOG_ATTEMPTS: i64 = 100;

/// An endpoint's URL as a change gives it: a new one is checked; one kept as stored is not
/// again (it was when it was set, and every delivery checks it as the sending node allows).
enum Url<'a> {
    New(&'a str),
    Kept(&'a str),
}

/// What a sealed secret is bound to: a sealed secret copied to another endpoint does not open.
fn place(endpoint_id: i64) -> String {
    format!("webhook endpoint {endpoint_id}")
}

fn description(text: Option<&str>) -> Result<String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Ok(display_name("description", t)?),
        None => Ok(String::new()),
    }
}

impl App {
    /// Sets how webhooks behave here.
    pub fn with_webhook_policy(mut self, policy: WebhookPolicy) -> Self {
        self.parts_mut().webhooks = policy;
        self
    }

    pub fn webhook_policy(&self) -> &WebhookPolicy {
        &self.webhooks
    }

    /// The stored form of an endpoint's secret.
    fn seal_secret(&self, endpoint_id: i64, plain: &str) -> String {
        seal::store(plain, self.master_key.as_ref(), &place(endpoint_id))
    }

    /// An endpoint's secret from its stored form.
    pub(crate) fn open_secret(&self, endpoint_id: i64, stored: &str) -> Result<String> {
        seal::open(stored, self.master_key.as_ref(), &place(endpoint_id)).map_err(|e| {
            corrupt(format!(
                "signing secret of webhook endpoint {endpoint_id}: {e}"
            ))
        })
    }

    /// The secrets that sign an endpoint's deliveries at `at`: the current one, and the one a
    /// rotation replaced while its overlap lasts.
    pub(crate) fn signing_secrets(
        &self,
        endpoint_id: i64,
        stored: &StoredSecrets,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let mut out = vec![self.open_secret(endpoint_id, &stored.current)?];
        if let Some((previous, until)) = &stored.previous {
            if *until > at {
                out.push(self.open_secret(endpoint_id, previous)?);
            }
        }
        Ok(out)
    }

    /// An endpoint's fields, checked.
    fn endpoint_fields(
        &self,
        url: Url<'_>,
        description_text: Option<&str>,
        events: &[String],
        product_id: Option<i64>,
        enabled: bool,
    ) -> Result<EndpointFields> {
        let url = match url {
            Url::New(new) => EndpointUrl::parse(new, self.webhooks.allow_private)?
                .as_str()
                .to_owned(),
            Url::Kept(kept) => kept.to_owned(),
        };
        Ok(EndpointFields {
            url,
            description: description(description_text)?,
            events: EventFilter::parse(events)?.to_strings(),
            product_id,
            enabled,
        })
    }

    async fn require_product(&self, s: &mut Session, product_id: Option<i64>) -> Result<()> {
        if let Some(id) = product_id {
            s.product(id)
                .await?
                .ok_or(AppError::invalid("product_id", "no such product"))?;
        }
        Ok(())
    }

    /// Creates an endpoint and its signing secret (returned only now).
    pub async fn create_webhook_endpoint(
        &self,
        principal: &Principal,
        input: NewWebhookEndpoint,
    ) -> Result<EndpointSecret> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let events = input.events.unwrap_or_else(|| vec!["*".into()]);
        let fields = self.endpoint_fields(
            Url::New(&input.url),
            input.description.as_deref(),
            &events,
            input.product_id,
            input.enabled.unwrap_or(true),
        )?;
        let at = now();
        let mut s = self.store.write().await?;
        self.require_product(&mut s, fields.product_id).await?;
        let endpoint = s.insert_webhook_endpoint(&fields, at).await?;
        let secret = TokenSecret::generate_webhook_secret();
        s.set_webhook_secret(
            endpoint.id,
            &self.seal_secret(endpoint.id, secret.expose()),
            None,
            at,
        )
        .await?;
        self.audit_setup(
            &mut s,
            principal,
            "webhook_endpoint_created",
            json!({"endpoint_id": endpoint.id, "url": endpoint.url, "events": endpoint.events,
                   "product_id": endpoint.product_id, "enabled": endpoint.enabled}),
        )
        .await?;
        s.commit().await?;
        tracing::info!(endpoint = endpoint.id, actor = %principal.actor.label(), "webhook endpoint created");
        Ok(EndpointSecret { endpoint, secret })
    }

    pub async fn webhook_endpoints(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<WebhookEndpoint>> {
        principal.require_unrestricted(Permission::WebhooksRead)?;
        let (after, limit) = page.resolve()?;
        let rows = self
            .store
            .read()
            .await?
            .webhook_endpoints(after, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |e| e.id))
    }

    pub async fn webhook_endpoint(
        &self,
        principal: &Principal,
        id: i64,
    ) -> Result<WebhookEndpoint> {
        principal.require_unrestricted(Permission::WebhooksRead)?;
        self.store
            .read()
            .await?
            .webhook_endpoint(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))
    }

    /// Changes an endpoint. Enabling a disabled one resumes its pending deliveries.
    pub async fn update_webhook_endpoint(
        &self,
        principal: &Principal,
        id: i64,
        patch: WebhookEndpointPatch,
    ) -> Result<WebhookEndpoint> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let mut s = self.store.write().await?;
        let current = s
            .webhook_endpoint(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        let fields = self.endpoint_fields(
            patch
                .url
                .as_deref()
                .map_or(Url::Kept(&current.url), Url::New),
            Some(patch.description.as_deref().unwrap_or(&current.description)),
            patch.events.as_deref().unwrap_or(&current.events),
            patch.product_id.unwrap_or(current.product_id),
            patch.enabled.unwrap_or(current.enabled),
        )?;
        self.require_product(&mut s, fields.product_id).await?;
        let saved = s
            .update_webhook_endpoint(id, &fields, now())
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        self.audit_setup(
            &mut s,
            principal,
            "webhook_endpoint_updated",
            json!({"endpoint_id": id, "url": saved.url, "events": saved.events,
                   "product_id": saved.product_id, "enabled": saved.enabled}),
        )
        .await?;
        s.commit().await?;
        tracing::info!(endpoint = id, enabled = saved.enabled, actor = %principal.actor.label(), "webhook endpoint changed");
        Ok(saved)
    }

    /// Removes an endpoint, its pending deliveries and its log.
    pub async fn delete_webhook_endpoint(&self, principal: &Principal, id: i64) -> Result<()> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let mut s = self.store.write().await?;
        if !s.delete_webhook_endpoint(id).await? {
            return Err(AppError::NotFound(Entity::WebhookEndpoint));
        }
        self.audit_setup(
            &mut s,
            principal,
            "webhook_endpoint_deleted",
            json!({"endpoint_id": id}),
        )
        .await?;
        s.commit().await?;
        tracing::info!(endpoint = id, actor = %principal.actor.label(), "webhook endpoint deleted");
        Ok(())
    }

    /// A new signing secret (returned only now); the old one keeps signing beside it for
    /// `overlap_hours` (default 24, at most a week; 0 stops it at once).
    pub async fn rotate_webhook_secret(
        &self,
        principal: &Principal,
        id: i64,
        overlap: Option<i64>,
    ) -> Result<EndpointSecret> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let hours = overlap_hours(overlap)?;
        let at = now();
        let mut s = self.store.write().await?;
        let stored = s
            .webhook_secrets(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        let secret = TokenSecret::generate_webhook_secret();
        let until = at + chrono::TimeDelta::hours(hours);
        let previous = (hours > 0).then_some((stored.current.as_str(), until));
        s.set_webhook_secret(id, &self.seal_secret(id, secret.expose()), previous, at)
            .await?;
        let endpoint = s
            .webhook_endpoint(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        self.audit_setup(
            &mut s,
            principal,
            "webhook_secret_rotated",
            json!({"endpoint_id": id, "overlap_hours": hours}),
        )
        .await?;
        s.commit().await?;
        tracing::info!(endpoint = id, overlap_hours = hours, actor = %principal.actor.label(), "webhook signing secret rotated");
        Ok(EndpointSecret { endpoint, secret })
    }

    /// An endpoint's deliveries, newest first, optionally only those in `state`.
    pub async fn webhook_deliveries(
        &self,
        principal: &Principal,
        endpoint_id: i64,
        state: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        principal.require_unrestricted(Permission::WebhooksRead)?;
        let state = state
            .map(|s| {
                DeliveryState::parse(s).ok_or(AppError::invalid(
                    "state",
                    "must be pending, delivered or failed",
                ))
            })
            .transpose()?;
        let (before, limit) = page.resolve()?;
        let mut s = self.store.read().await?;
        s.webhook_endpoint(endpoint_id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        let rows = s
            .webhook_deliveries(endpoint_id, state, before, limit + 1)
            .await?;
        Ok(Page::from_rows(rows, limit, |d| d.id))
    }

    /// One delivery with its attempts and the event it sends.
    pub async fn webhook_delivery(&self, principal: &Principal, id: i64) -> Result<DeliveryLog> {
        principal.require_unrestricted(Permission::WebhooksRead)?;
        let mut s = self.store.read().await?;
        let delivery = s
            .webhook_delivery(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookDelivery))?;
        let attempts_log = s.webhook_attempts(id, LOG_ATTEMPTS).await?;
        let body = s.webhook_delivery_body(id).await?.unwrap_or_default();
        let event = serde_json::from_str(&body).map_err(corrupt)?;
        Ok(DeliveryLog {
            delivery,
            attempts_log,
            event,
        })
    }

    /// Tries a delivery again now: a failed one gets one more attempt, a delivered one is sent
    /// again (same event id), a pending one is brought forward. One that waits for an older
    /// delivery of its license keeps waiting (409).
    pub async fn retry_webhook_delivery(
        &self,
        principal: &Principal,
        id: i64,
    ) -> Result<WebhookDelivery> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let mut s = self.store.write().await?;
        s.webhook_delivery(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookDelivery))?;
        if !s.retry_webhook_delivery(id, now()).await? {
            return Err(AppError::Conflict(
                "the delivery waits for an older delivery about the same license".into(),
            ));
        }
        let delivery = s
            .webhook_delivery(id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookDelivery))?;
        self.audit_setup(
            &mut s,
            principal,
            "webhook_delivery_retried",
            json!({"endpoint_id": delivery.endpoint_id, "delivery_id": id, "event_id": delivery.event_id}),
        )
        .await?;
        s.commit().await?;
        Ok(delivery)
    }

    /// Tries again every delivery to an endpoint that failed for good at or after `since`;
    /// returns how many.
    pub async fn retry_failed_webhook_deliveries(
        &self,
        principal: &Principal,
        endpoint_id: i64,
        since: DateTime<Utc>,
    ) -> Result<u64> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let since = keyturn_core::dates::in_range("since", since)?;
        let mut s = self.store.write().await?;
        s.webhook_endpoint(endpoint_id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        let count = s
            .retry_failed_webhook_deliveries(endpoint_id, since, now())
            .await?;
        self.audit_setup(
            &mut s,
            principal,
            "webhook_failed_retried",
            json!({"endpoint_id": endpoint_id, "since": since, "deliveries": count}),
        )
        .await?;
        s.commit().await?;
        Ok(count)
    }

    /// Sends a `webhook.test` event to one endpoint (whatever events it subscribes to); returns
    /// its delivery, whose log shows how the endpoint answered.
    pub async fn send_test_webhook(
        &self,
        principal: &Principal,
        endpoint_id: i64,
    ) -> Result<WebhookDelivery> {
        principal.require_unrestricted(Permission::WebhooksWrite)?;
        let at = now();
        let mut s = self.store.write().await?;
        let endpoint = s
            .webhook_endpoint(endpoint_id)
            .await?
            .ok_or(AppError::NotFound(Entity::WebhookEndpoint))?;
        let object = json!({
            "endpoint_id": endpoint.id,
            "url": endpoint.url,
            "message": "A test event from Keyturn: this endpoint receives and verifies deliveries.",
        });
        let id = emit::write(
            &mut s,
            EventType::WebhookTest,
            emit::Subject::default(),
            object,
            None,
            &[endpoint_id],
            at,
        )
        .await?;
        let delivery = s
            .webhook_deliveries(endpoint_id, None, None, 1)
            .await?
            .into_iter()
            .find(|d| d.event_id == id)
            .ok_or(AppError::NotFound(Entity::WebhookDelivery))?;
        self.audit_setup(
            &mut s,
            principal,
            "webhook_test_sent",
            json!({"endpoint_id": endpoint_id, "delivery_id": delivery.id, "event_id": delivery.event_id}),
        )
        .await?;
        s.commit().await?;
        Ok(delivery)
    }

    /// Deliveries waiting for an attempt or their turn, on every endpoint.
    pub async fn pending_webhook_deliveries(&self) -> Result<i64> {
        Ok(self
            .store
            .read()
            .await?
            .pending_webhook_deliveries()
            .await?)
    }

    /// Stores every endpoint's secrets anew: opened with `from` or `to` or as plain text, then
    /// sealed with `to` (or plain when `None`), in the caller's transaction; returns how many
    /// endpoints. Part of resealing the signing keys under a new master key.
    pub(crate) async fn reseal_webhook_secrets(
        &self,
        s: &mut Session,
        from: Option<&keyturn_core::MasterKey>,
        to: Option<&keyturn_core::MasterKey>,
    ) -> Result<usize> {
        let all = s.all_webhook_secrets().await?;
        for (id, stored) in &all {
            let at = place(*id);
            let open = |text: &str| {
                [from, to]
                    .into_iter()
                    .flatten()
                    .find_map(|master| seal::open(text, Some(master), &at).ok())
                    .or_else(|| seal::open(text, None, &at).ok())
                    .ok_or_else(|| {
                        AppError::invalid(
                            "master_key",
                            format!(
                                "the signing secret of webhook endpoint {id} is sealed with another \
                                 master key: give the one it was sealed with as the old master key"
                            ),
                        )
                    })
            };
            let current = seal::store(&open(&stored.current)?, to, &at);
            let previous = match &stored.previous {
                Some((p, _)) => Some(seal::store(&open(p)?, to, &at)),
                None => None,
            };
            s.restore_webhook_secrets(*id, &current, previous.as_deref())
                .await?;
        }
        Ok(all.len())
    }
}
