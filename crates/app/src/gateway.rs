//! The calls Keyturn makes out to a payment provider, in core's terms: start a checkout, capture
//! an order the buyer approved, read what a checkout sold, list the events of a period, open a
//! billing portal. The use cases that need them ([`App::start_checkout`],
//! [`App::complete_checkout`], [`App::sync`], the pipeline filling in a sale's line items) take
//! a `&dyn PaymentGateway`, so the app decides what is asked and what the answer does, and tests
//! hand in a gateway of their own.
//!
//! Where the impls live: the trait is the app's, the clients are `keyturn-providers`', and
//! `providers` depends on `core` only (an adapter cannot reach into the pipeline), so neither
//! crate may implement it for the other's types (the orphan rule). The clients expose inherent
//! methods that already answer in core's types, and `keyturn-http`, the crate that puts app and
//! providers together, implements the trait for thin wrappers around them
//! (`http/src/gateways.rs`). Data flows one way: http → app → gateway → provider, and the
//! provider's answer comes back as core types.
//!
//! [`App::start_checkout`]: crate::App::start_checkout
//! [`App::complete_checkout`]: crate::App::complete_checkout
//! [`App::sync`]: crate::App::sync

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use keyturn_core::provider::{
    CheckoutRequest, CheckoutStarted, EventEnvelope, LineItems, ProviderError,
};
use keyturn_core::skm::SkmTerms;

/// What a gateway call comes back with, some time later.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProviderError>> + Send + 'a>>;

/// One payment provider's API. Every call but [`PaymentGateway::create_checkout`] has a default
/// for providers that cannot do it.
pub trait PaymentGateway: Send + Sync {
    /// The name the provider's records carry.
    fn provider(&self) -> &str;

    /// Opens a checkout for what the buyer chose.
    fn create_checkout<'a>(
        &'a self,
        request: &'a CheckoutRequest,
    ) -> GatewayFuture<'a, CheckoutStarted>;

    /// Takes the money of an order the buyer approved; the sale, translated, as of `at`.
    fn capture<'a>(
        &'a self,
        order: &'a str,
        at: DateTime<Utc>,
    ) -> GatewayFuture<'a, EventEnvelope> {
        let _ = (order, at);
        unsupported(self.provider(), "capture orders")
    }

    /// What a sale's order bought, for a report that does not say; `None` where the provider
    /// cannot be asked.
    fn line_items<'a>(&'a self, order: &'a str) -> GatewayFuture<'a, Option<LineItems>> {
        let _ = order;
        Box::pin(async { Ok(None) })
    }

    /// The first of a sale's purchased `ids` that is a price set up the Cryptolens way
    /// (`skm_product_id` on its product, `skm` on the price), with the terms it gives; `None`
    /// where none is or the provider cannot be asked.
    fn cryptolens_terms<'a>(
        &'a self,
        ids: &'a [String],
    ) -> GatewayFuture<'a, Option<(String, SkmTerms)>> {
        let _ = ids;
        Box::pin(async { Ok(None) })
    }

    /// The events reported since `since` (all there are without it), translated, oldest first;
    /// `at` is now.
    fn events_since<'a>(
        &'a self,
        since: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> GatewayFuture<'a, Vec<EventEnvelope>> {
        let _ = (since, at);
        unsupported(self.provider(), "list its events")
    }

    /// A page where `customer` (the provider's id) manages their subscriptions, returning to
    /// `return_url`; its URL.
    fn billing_portal<'a>(
        &'a self,
        customer: &'a str,
        return_url: &'a str,
    ) -> GatewayFuture<'a, String> {
        let _ = (customer, return_url);
        unsupported(self.provider(), "open a billing portal")
    }
}

fn unsupported<'a, T: 'a>(provider: &str, what: &str) -> GatewayFuture<'a, T> {
    let e = ProviderError::Unsupported(format!("{provider} cannot {what} here"));
    Box::pin(async move { Err(e) })
}

/// Counts of one sync run.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub fetched: usize,
    pub applied: usize,
    pub ignored: usize,
    pub duplicates: usize,
    pub failed: usize,
}
