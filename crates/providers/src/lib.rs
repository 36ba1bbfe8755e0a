//! Payment provider adapters. An adapter does two things only: verify that an inbound request
//! really comes from the provider, and translate it into a provider-neutral
//! [`keyturn_core::payment::PaymentEvent`]. Applying the event is the app's one payment pipeline.

pub mod stripe;

/// The payment providers this server is configured for.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub stripe: Option<stripe::StripeAdapter>,
}
