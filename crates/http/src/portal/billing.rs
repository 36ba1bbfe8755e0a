//! The portal's billing routes: the buyer's subscriptions and payments, "Manage billing" (a
//! Stripe Billing Portal session), and the sign-in link a customer's secret makes
//! (Cryptolens `AddCustomer` → `portalLink`).
//!
//! Like the rest of the portal: handlers parse, call one use case for the buyer, render or
//! redirect. The secret link, like a mailed link, only shows a button on GET, so a mail or
//! chat scanner that fetches it starts no session.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyturn_app::{BillingPortal, PageRequest, PaymentGateway, PortalSignIn, BILLING_PATH};
use serde::Deserialize;

use super::handlers::{anonymous_csrf, html, started, with_form_token};
use super::{billing_pages, Buyer, BuyerPosted, Problem};
use crate::extract::ClientIp;
use crate::AppState;

type Page = Result<Response, Problem>;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/billing", get(billing))
        .route("/portal/billing/manage", post(manage))
        .route("/portal/secret/{secret}", get(secret_form).post(use_secret))
}

#[derive(Deserialize)]
pub(super) struct Before {
    before: Option<String>,
}

async fn billing(State(state): State<AppState>, buyer: Buyer, Query(q): Query<Before>) -> Page {
    let billing = state
        .app
        .portal_billing(
            &buyer.session,
            &PageRequest {
                cursor: q.before,
                limit: None,
            },
        )
        .await?;
    Ok(html(billing_pages::billing(&buyer.session, &billing)))
}

#[derive(Deserialize)]
pub(super) struct ManageForm {
    #[serde(default)]
    customer: String,
}

async fn manage(State(state): State<AppState>, posted: BuyerPosted<ManageForm>) -> Page {
    let buyer = &posted.buyer.session;
    let customer: i64 = posted.form.customer.trim().parse().map_err(|_| {
        Problem::Status(
            StatusCode::NOT_FOUND,
            "There is no such billing account.".into(),
        )
    })?;
    // Stripe sends the buyer back to an absolute address: the configured one, never one made
    // from the request's Host header.
    let Some(public) = state.settings.public_url.as_deref() else {
        return Err(Problem::Status(
            StatusCode::SERVICE_UNAVAILABLE,
            "Billing cannot be opened here: this server has no public address configured. \
             Please contact the vendor."
                .into(),
        ));
    };
    let return_url = format!("{}{BILLING_PATH}", public.trim_end_matches('/'));
    let gateway = state
        .gateways
        .stripe
        .as_ref()
        .map(|g| g as &dyn PaymentGateway);
    match state
        .app
        .portal_billing_session(buyer, gateway, customer, &return_url)
        .await
    {
        Ok(BillingPortal::Opened(url)) => Ok(Redirect::to(&url).into_response()),
        Ok(BillingPortal::NoAccount) => {
            Ok((StatusCode::CONFLICT, html(billing_pages::no_account(buyer))).into_response())
        }
        Err(keyturn_app::AppError::Provider(e)) => {
            tracing::warn!(error = %e, "the billing portal could not be opened");
            Ok((
                StatusCode::BAD_GATEWAY,
                html(billing_pages::provider_unavailable(buyer)),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn secret_form(State(state): State<AppState>, Path(secret): Path<String>) -> Response {
    with_form_token(&state, |csrf| billing_pages::use_secret(csrf, &secret))
}

async fn use_secret(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    anonymous_csrf(&headers, &body)?;
    let ip = ip.map(|ip| ip.to_string());
    match state
        .app
        .portal_sign_in_with_secret(&secret, ip.as_deref())
        .await?
    {
        PortalSignIn::Started(session) => Ok(started(&state, &session)),
        PortalSignIn::Refused => Ok((
            StatusCode::UNAUTHORIZED,
            html(billing_pages::secret_refused()),
        )
            .into_response()),
        PortalSignIn::Throttled => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            html(billing_pages::secret_throttled()),
        )
            .into_response()),
    }
}
