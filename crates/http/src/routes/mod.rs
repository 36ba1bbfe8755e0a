pub mod activations;
pub mod branding;
pub mod buy;
pub mod catalog;
pub mod customers;
pub mod data_objects;
pub mod forms;
pub mod health;
pub mod license_urls;
pub mod licenses;
pub mod messages;
pub mod payments;
pub mod tokens;
pub mod webhook_endpoints;
pub mod webhooks;

use axum::Router;

use crate::{rate_limit, AppState};

/// `/v1`: the endpoints programs call with a key are rate-limited per client IP; the rest need
/// an access token.
pub fn v1(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(rate_limit::limited(activations::router(), &state))
        .merge(catalog::router())
        .merge(customers::router())
        .merge(licenses::router())
        .merge(tokens::router())
        .merge(payments::router())
        .merge(license_urls::router())
        .merge(forms::router())
        .merge(data_objects::router())
        .merge(messages::router())
        .merge(webhook_endpoints::router())
        .merge(branding::router())
}
