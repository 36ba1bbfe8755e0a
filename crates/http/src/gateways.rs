//! The app's [`PaymentGateway`] for each provider client, as thin wrappers.
//!
//! Why here: the trait is `keyturn-app`'s and the clients are `keyturn-providers`', which
//! depends on `keyturn-core` only, so neither crate can implement the trait for the other's type
//! (the orphan rule). This crate is where app and providers meet, so the impls live here, each a
//! forward to an inherent method of the client that already answers in core's types. Nothing
//! here decides anything.

use chrono::{DateTime, Utc};
use keyturn_app::{GatewayFuture, PaymentGateway};
use keyturn_core::provider::{
    CheckoutRequest, CheckoutStarted, EventEnvelope, LineItems, ProviderError,
};
use keyturn_core::skm::SkmTerms;
use keyturn_providers::paypal::{self, PaypalAdapter};
use keyturn_providers::stripe::{self, StripeApi};
use keyturn_providers::Providers;

/// The gateways of the configured providers.
#[derive(Debug, Clone, Default)]
pub struct Gateways {
    pub stripe: Option<StripeGateway>,
    pub paypal: Option<PaypalGateway>,
}

impl Gateways {
    pub fn of(providers: &Providers) -> Self {
        Self {
            stripe: providers
                .stripe
                .as_ref()
                .map(|s| StripeGateway(s.api().cloned())),
            paypal: providers.paypal.clone().map(PaypalGateway),
        }
    }
}

/// Stripe's API; without an API key Stripe's webhooks still work, and every call says so.
#[derive(Debug, Clone)]
pub struct StripeGateway(pub Option<StripeApi>);

impl StripeGateway {
    fn api(&self) -> Result<&StripeApi, ProviderError> {
        self.0.as_ref().ok_or_else(|| {
            ProviderError::NotConfigured(
                "no Stripe API key is configured (set KEYTURN_STRIPE_API_KEY)".into(),
            )
        })
    }
}

impl PaymentGateway for StripeGateway {
    fn provider(&self) -> &str {
        stripe::PROVIDER
    }

    fn create_checkout<'a>(
        &'a self,
        request: &'a CheckoutRequest,
    ) -> GatewayFuture<'a, CheckoutStarted> {
        Box::pin(async move { self.api()?.create_checkout(request).await })
    }

    fn line_items<'a>(&'a self, order: &'a str) -> GatewayFuture<'a, Option<LineItems>> {
        Box::pin(async move {
            match &self.0 {
                Some(api) => api.line_items(order).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn cryptolens_terms<'a>(
        &'a self,
        ids: &'a [String],
    ) -> GatewayFuture<'a, Option<(String, SkmTerms)>> {
        Box::pin(async move {
            match &self.0 {
                Some(api) => api.cryptolens_terms(ids).await,
                None => Ok(None),
            }
        })
    }

    fn events_since<'a>(
        &'a self,
        since: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> GatewayFuture<'a, Vec<EventEnvelope>> {
        Box::pin(async move { self.api()?.events_since(since, at).await })
    }

    fn billing_portal<'a>(
        &'a self,
        customer: &'a str,
        return_url: &'a str,
    ) -> GatewayFuture<'a, String> {
        Box::pin(async move { self.api()?.billing_portal(customer, return_url).await })
    }
}

/// PayPal's REST API.
#[derive(Debug, Clone)]
pub struct PaypalGateway(pub PaypalAdapter);

impl PaymentGateway for PaypalGateway {
    fn provider(&self) -> &str {
        paypal::PROVIDER
    }

    fn create_checkout<'a>(
        &'a self,
        request: &'a CheckoutRequest,
    ) -> GatewayFuture<'a, CheckoutStarted> {
        Box::pin(self.0.create_order(request))
    }

    fn capture<'a>(
        &'a self,
        order: &'a str,
        at: DateTime<Utc>,
    ) -> GatewayFuture<'a, EventEnvelope> {
        Box::pin(self.0.capture(order, at))
    }
}
