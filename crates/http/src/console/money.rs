//! The console's money pages: payments, provider events (with the stored payload and a
//! "retry" for failed ones), "sync from Stripe", subscriptions and the mail outbox (with
//! "resend" for failed mail). Handlers parse, call one use case as the signed-in user, and
//! render or redirect; what a POST did is shown by the page it redirects to.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use keyturn_app::{
    EventListQuery, EventTranslator, MailListQuery, PageRequest, PaymentGateway, PaymentListQuery,
    RetryOutcome, SubscriptionListQuery, SyncReport,
};
use keyturn_core::payment::PaymentStatus;
use keyturn_core::provider::{EventEnvelope, ProviderError, ProviderEventStatus};
use keyturn_core::MailState;
use serde::Deserialize;

use super::handlers::Empty;
use super::{money_pages, Posted, Problem, Signed};
use crate::AppState;

type Page = Result<Response, Problem>;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/payments", get(payments))
        .route("/admin/events", get(events))
        .route("/admin/events/{provider}/{event_id}", get(event))
        .route("/admin/events/{provider}/{event_id}/retry", post(retry))
        .route("/admin/sync", get(sync_page).post(sync))
        .route("/admin/subscriptions", get(subscriptions))
        .route("/admin/outbox", get(outbox))
        .route("/admin/outbox/{id}/resend", post(resend))
}

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn not_found() -> Problem {
    Problem::Status(StatusCode::NOT_FOUND, "no such page".into())
}

/// A select's value: `None` when empty ("any"), else what `parse` reads, or a message.
fn choice<T>(field: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, Problem> {
    match text.trim() {
        "" => Ok(None),
        t => parse(t)
            .map(Some)
            .ok_or_else(|| Problem::Invalid(format!("{field}: not one of the choices"))),
    }
}

fn text(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A path segment of a link: everything but unreserved characters percent-encoded.
pub(super) fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The filters of a money list as the form sends them (empty: any), and the cursor.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct MoneyFilters {
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub state: String,
    pub after: Option<String>,
    pub done: Option<String>,
}

impl MoneyFilters {
    fn page(&self) -> PageRequest {
        PageRequest {
            cursor: self.after.clone(),
            limit: None,
        }
    }

    /// The filters as a query string (without the cursor), for links to more of the list.
    pub fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("provider", self.provider.trim()),
            ("status", self.status.trim()),
            ("type", self.event_type.trim()),
            ("state", self.state.trim()),
        ])
        .unwrap_or_default()
    }
}

async fn payments(
    State(state): State<AppState>,
    signed: Signed,
    Query(f): Query<MoneyFilters>,
) -> Page {
    let query = PaymentListQuery {
        provider: text(&f.provider),
        status: choice("status", &f.status, PaymentStatus::parse)?,
        page: f.page(),
    };
    let found = state
        .app
        .payment_list(&signed.session.principal, &query)
        .await?;
    Ok(html(money_pages::payments(&signed.session, &f, &found)))
}

async fn events(
    State(state): State<AppState>,
    signed: Signed,
    Query(f): Query<MoneyFilters>,
) -> Page {
    let query = EventListQuery {
        provider: text(&f.provider),
        status: choice("status", &f.status, ProviderEventStatus::parse)?,
        event_type: text(&f.event_type),
        page: f.page(),
    };
    let found = state
        .app
        .provider_event_list(&signed.session.principal, &query)
        .await?;
    Ok(html(money_pages::events(&signed.session, &f, &found)))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

async fn event(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<DoneQuery>,
) -> Page {
    let Path((provider, event_id)) = path.map_err(|_| not_found())?;
    let event = state
        .app
        .provider_event(&signed.session.principal, &provider, &event_id)
        .await?;
    Ok(html(money_pages::event(
        &signed.session,
        &event,
        query.done.as_deref(),
    )))
}

/// The stored notifications of the configured providers, translated again by their adapters
/// (see `keyturn_providers::stored`); the gateways are the ones webhooks use.
struct StoredEvents<'a>(&'a AppState);

impl EventTranslator for StoredEvents<'_> {
    fn translate(
        &self,
        provider: &str,
        payload: &str,
        created: DateTime<Utc>,
    ) -> Result<Vec<EventEnvelope>, ProviderError> {
        let email_buyers = self.0.providers.stores.email_buyers;
        keyturn_providers::stored::translate(provider, payload, created, email_buyers)
    }

    fn gateway(&self, provider: &str) -> Option<&dyn PaymentGateway> {
        let gateways = &self.0.gateways;
        match provider {
            keyturn_providers::stripe::PROVIDER => {
                gateways.stripe.as_ref().map(|g| g as &dyn PaymentGateway)
            }
            keyturn_providers::paypal::PROVIDER => {
                gateways.paypal.as_ref().map(|g| g as &dyn PaymentGateway)
            }
            _ => None,
        }
    }
}

async fn retry(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    posted: Posted<Empty>,
) -> Page {
    let Path((provider, event_id)) = path.map_err(|_| not_found())?;
    let outcome = state
        .app
        .retry_provider_event(
            &posted.signed.session.principal,
            &provider,
            &event_id,
            &StoredEvents(&state),
        )
        .await?;
    let done = match outcome {
        RetryOutcome::Applied(_) => "applied",
        RetryOutcome::Ignored => "ignored",
        RetryOutcome::Duplicate => "duplicate",
        RetryOutcome::Failed(_) => "failed",
    };
    Ok(Redirect::to(&format!(
        "/admin/events/{}/{}?done={done}",
        segment(&provider),
        segment(&event_id)
    ))
    .into_response())
}

/// Stripe's gateway with an API key, or why there is none.
fn stripe(state: &AppState) -> Result<&crate::StripeGateway, &'static str> {
    match &state.gateways.stripe {
        None => Err("Stripe is not configured on this server."),
        Some(g) if g.0.is_none() => Err(
            "Stripe webhooks are configured, but no Stripe API key is (set KEYTURN_STRIPE_API_KEY): \
             a sync asks Stripe's API for the events.",
        ),
        Some(g) => Ok(g),
    }
}

/// A sync's counts, as the redirect after it carries them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SyncQuery {
    fetched: Option<usize>,
    applied: Option<usize>,
    ignored: Option<usize>,
    duplicates: Option<usize>,
    failed: Option<usize>,
}

impl SyncQuery {
    fn report(&self) -> Option<SyncReport> {
        Some(SyncReport {
            fetched: self.fetched?,
            applied: self.applied?,
            ignored: self.ignored?,
            duplicates: self.duplicates?,
            failed: self.failed?,
        })
    }
}

async fn sync_page(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<SyncQuery>,
) -> Page {
    // Only users who may see payments see how syncing went.
    signed
        .session
        .principal
        .require_unrestricted(keyturn_core::Permission::PaymentsRead)
        .map_err(Problem::from)?;
    Ok(html(money_pages::sync(
        &signed.session,
        stripe(&state).err(),
        query.report().as_ref(),
    )))
}

async fn sync(State(state): State<AppState>, posted: Posted<Empty>) -> Page {
    let principal = &posted.signed.session.principal;
    // Whoever may not sync learns nothing of the server's configuration either.
    principal
        .require_unrestricted(keyturn_core::Permission::PaymentsWrite)
        .map_err(Problem::from)?;
    let gateway =
        stripe(&state).map_err(|why| Problem::Status(StatusCode::CONFLICT, why.into()))?;
    let r = state.app.sync_payments(principal, gateway).await?;
    Ok(Redirect::to(&format!(
        "/admin/sync?fetched={}&applied={}&ignored={}&duplicates={}&failed={}",
        r.fetched, r.applied, r.ignored, r.duplicates, r.failed
    ))
    .into_response())
}

async fn subscriptions(
    State(state): State<AppState>,
    signed: Signed,
    Query(f): Query<MoneyFilters>,
) -> Page {
    let query = SubscriptionListQuery {
        provider: text(&f.provider),
        status: text(&f.status),
        page: f.page(),
    };
    let found = state
        .app
        .subscription_list(&signed.session.principal, &query)
        .await?;
    Ok(html(money_pages::subscriptions(
        &signed.session,
        &f,
        &found,
    )))
}

async fn outbox(
    State(state): State<AppState>,
    signed: Signed,
    Query(f): Query<MoneyFilters>,
) -> Page {
    let query = MailListQuery {
        state: choice("state", &f.state, MailState::parse)?,
        page: f.page(),
    };
    let found = state.app.outbox(&signed.session.principal, &query).await?;
    Ok(html(money_pages::outbox(&signed.session, &f, &found)))
}

async fn resend(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Page {
    let Path(id) = path.map_err(|_| not_found())?;
    state
        .app
        .resend_mail(&posted.signed.session.principal, id)
        .await?;
    Ok(Redirect::to(&format!("/admin/outbox?done=resent&mail={id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_only_unreserved_characters() {
        assert_eq!(segment("evt_1-A.b~"), "evt_1-A.b~");
        assert_eq!(segment("sale:S/1 x"), "sale%3AS%2F1%20x");
    }
}
