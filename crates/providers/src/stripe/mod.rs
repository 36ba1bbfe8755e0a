//! Stripe: webhook signatures, event translation, and the API calls for missed events.
//!
//! Follows Stripe's documented scheme ("Check the webhook signatures", docs.stripe.com/webhooks):
//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 keyed with the endpoint secret
//! over `"<t>.<raw body>"`, any `v1` may match, other schemes (`v0`) are ignored.

mod api;
mod signature;
mod translate;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use keyturn_app::{App, AppError, CheckoutPlan, EventEnvelope, EventOutcome};
use keyturn_core::payment::PaymentEvent;

pub use api::{ApiError, StripeApi};
pub use signature::{sign, verify, SignatureError};
pub use translate::{translate, StripeEvent};

pub const PROVIDER: &str = "stripe";

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("the body is not a Stripe event: {0}")]
    Unparsable(String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Counts of one sync run.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SyncReport {
    pub fetched: usize,
    pub applied: usize,
    pub ignored: usize,
    pub duplicates: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("no Stripe API key is configured")]
    NotConfigured,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    App(#[from] AppError),
}

/// The configured Stripe integration.
#[derive(Clone)]
pub struct StripeAdapter {
    secrets: Vec<String>,
    tolerance: Duration,
    api: Option<StripeApi>,
}

impl std::fmt::Debug for StripeAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeAdapter")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .field("api", &self.api.is_some())
            .finish()
    }
}

impl StripeAdapter {
    /// `secrets`: every endpoint signing secret in use (several during a rotation).
    pub fn new(secrets: Vec<String>, tolerance: Duration, api: Option<StripeApi>) -> Self {
        Self {
            secrets,
            tolerance,
            api,
        }
    }

    pub fn api(&self) -> Option<&StripeApi> {
        self.api.as_ref()
    }

    /// Verifies and applies one webhook delivery.
    pub async fn receive(
        &self,
        app: &App,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<EventOutcome, WebhookError> {
        verify(
            signature_header,
            body,
            &self.secrets,
            self.tolerance,
            Utc::now().timestamp(),
        )?;
        let text =
            std::str::from_utf8(body).map_err(|_| WebhookError::Unparsable("not UTF-8".into()))?;
        let event = StripeEvent::parse(text).map_err(WebhookError::Unparsable)?;
        Ok(self.apply(app, event, text.to_owned()).await?)
    }

    /// Translates an event, fills in what the event itself does not carry, and applies it.
    async fn apply(
        &self,
        app: &App,
        event: StripeEvent,
        payload: String,
    ) -> Result<EventOutcome, AppError> {
        let mut neutral = translate(&event);
        if let Some(api) = &self.api {
            self.complete(api, &event, &mut neutral).await;
        }
        let envelope = EventEnvelope {
            provider: PROVIDER.into(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            created: Utc
                .timestamp_opt(event.created, 0)
                .single()
                .unwrap_or_else(Utc::now),
            payload,
            // Keyturn's own payment forms mail their buyers; other Stripe sales do not.
            notify_buyer: event.object["metadata"]["keyturn_form"].is_string(),
        };
        app.apply_provider_event(&envelope, neutral).await
    }

    /// A checkout session's event does not list what was bought; when it carries no Keyturn plan,
    /// ask Stripe for its line items.
    async fn complete(
        &self,
        api: &StripeApi,
        event: &StripeEvent,
        neutral: &mut Option<PaymentEvent>,
    ) {
        let (plan, quantity) = match neutral {
            Some(PaymentEvent::Purchased { plan, quantity, .. }) => (plan, quantity),
            Some(PaymentEvent::SubscriptionStarted {
                plan,
                quantity,
                order: Some(_),
                ..
            }) => (plan, quantity),
            _ => return,
        };
        if !plan.is_empty() {
            return;
        }
        match api.checkout_line_items(&event.object_id()).await {
            Ok((ids, q)) => {
                plan.provider_ids = ids;
                *quantity = q.max(1);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the checkout session's line items"),
        }
    }

    /// Starts a Stripe Checkout for what a buyer chose on a payment form and returns the URL to
    /// send them to. Nothing is issued here: the `checkout.session.completed` webhook does that.
    pub async fn start_checkout(
        &self,
        app: &App,
        plan: &CheckoutPlan,
        public_base: &str,
    ) -> Result<String, StripeError> {
        let api = self.api.as_ref().ok_or(StripeError::NotConfigured)?;
        let form = &plan.form.public_id;
        let base = public_base.trim_end_matches('/');
        let plan_id = plan.offer.plan_id.to_string();
        let mut params: Vec<(String, String)> = vec![
            ("mode".into(), plan.offer.mode.clone()),
            (
                "line_items[0][price]".into(),
                plan.offer.stripe_price_id.clone(),
            ),
            ("line_items[0][quantity]".into(), plan.quantity.to_string()),
            // Stripe puts the session id where the template says {CHECKOUT_SESSION_ID}.
            (
                "success_url".into(),
                format!("{base}/buy/{form}/done?session={{CHECKOUT_SESSION_ID}}"),
            ),
            ("cancel_url".into(), format!("{base}/buy/{form}")),
            ("customer_email".into(), plan.buyer_email.clone()),
            ("client_reference_id".into(), form.clone()),
            ("metadata[keyturn_form]".into(), form.clone()),
            ("metadata[keyturn_plan_id]".into(), plan_id.clone()),
            (
                "metadata[keyturn_quantity]".into(),
                plan.quantity.to_string(),
            ),
            ("metadata[buyer_name]".into(), plan.buyer_name.clone()),
        ];
        if plan.offer.mode == "subscription" {
            params.push((
                "subscription_data[metadata][keyturn_plan_id]".into(),
                plan_id,
            ));
        }
        let (session, url) = api.create_checkout_session(&params).await?;
        app.record_checkout(plan, PROVIDER, &session).await?;
        Ok(url)
    }

    /// Fetches the events Stripe sent since the newest one handled here and applies those that
    /// were missed, oldest first.
    pub async fn sync(&self, app: &App) -> Result<SyncReport, StripeError> {
        let api = self.api.as_ref().ok_or(StripeError::NotConfigured)?;
        let since = app.latest_provider_event(PROVIDER).await?;
        let mut events = api.events_since(since.map(|t| t.timestamp())).await?;
        events.sort_by_key(|(e, _)| e.created);
        let mut report = SyncReport {
            fetched: events.len(),
            ..Default::default()
        };
        for (event, payload) in events {
            if app.provider_event_handled(PROVIDER, &event.id).await? {
                report.duplicates += 1;
                continue;
            }
            match self.apply(app, event, payload).await {
                Ok(EventOutcome::Applied(_)) => report.applied += 1,
                Ok(EventOutcome::Ignored) => report.ignored += 1,
                Ok(EventOutcome::Duplicate) => report.duplicates += 1,
                Err(AppError::Store(e)) => return Err(StripeError::App(AppError::Store(e))),
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }
}
