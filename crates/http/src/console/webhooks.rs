//! The console's webhook pages: the endpoints (with how each has been doing), one endpoint
//! with its settings, secret rotation, test event, "retry all failed since" and its delivery
//! log, and one delivery with its attempts. Handlers parse, call one use case as the signed-in
//! user (the use cases check `webhooks:*` on an unrestricted principal and write the audit
//! log), and render [`webhooks_pages`] or redirect to the page that shows the change.
//!
//! A new signing secret (creation, rotation) is shown once, as the set-up pages show theirs:
//! carried to the endpoint's page in a short-lived cookie that page clears.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use keyturn_app::{EndpointSecret, NewWebhookEndpoint, PageRequest, WebhookEndpointPatch};
use keyturn_core::Permission;
use serde::Deserialize;

use super::handlers::Empty;
use super::setup::{chooser, id_of, reveal_cookie, revealed, showing_once, Fields, Pending};
use super::{webhooks_pages as pages, Posted, Problem, Signed};
use crate::AppState;

type Reply = Result<Response, Problem>;

/// What the reveal cookie calls an endpoint's secret.
const KIND: &str = "webhook";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(endpoints).post(create))
        .route("/admin/webhooks/new", get(new_endpoint))
        .route("/admin/webhooks/{id}", get(endpoint).post(update))
        .route("/admin/webhooks/{id}/enable", post(enable))
        .route("/admin/webhooks/{id}/disable", post(disable))
        .route("/admin/webhooks/{id}/rotate", post(rotate))
        .route("/admin/webhooks/{id}/delete", post(delete))
        .route("/admin/webhooks/{id}/test", post(test))
        .route("/admin/webhooks/{id}/retry-failed", post(retry_failed))
        .route("/admin/webhooks/deliveries/{id}", get(delivery))
        .route("/admin/webhooks/deliveries/{id}/retry", post(retry))
}

fn html(markup: maud::Markup) -> Response {
    super::handlers::html(markup)
}

fn to(path: String) -> Reply {
    Ok(Redirect::to(&path).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
    done: Option<String>,
}

/// The delivery log's filter and cursor, and what a redirect says happened.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LogQuery {
    #[serde(default)]
    pub state: String,
    pub before: Option<String>,
    pub done: Option<String>,
    pub count: Option<u64>,
}

async fn endpoints(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Reply {
    let page = PageRequest {
        cursor: q.after,
        limit: None,
    };
    let found = state
        .app
        .webhook_endpoint_rows(&signed.session.principal, &page)
        .await?;
    Ok(html(pages::endpoints(
        &signed.session,
        &found,
        q.done.as_deref(),
    )))
}

async fn new_endpoint(State(state): State<AppState>, signed: Signed) -> Reply {
    let principal = &signed.session.principal;
    principal.require_unrestricted(Permission::WebhooksWrite)?;
    let products = state.app.products_page(principal, &chooser()).await?;
    Ok(html(pages::new_endpoint(&signed.session, &products.data)))
}

/// The event patterns a form gives: separated by commas, spaces or lines.
fn patterns(f: &Fields) -> Vec<String> {
    f.text("events")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Redirects to an endpoint's page, handing it the endpoint's new secret to show once.
fn reveal(
    state: &AppState,
    posted: &Posted<impl Sized>,
    made: &EndpointSecret,
    done: &str,
) -> Reply {
    let id = made.endpoint.id;
    let mut response = Redirect::to(&format!("/admin/webhooks/{id}?done={done}")).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        reveal_cookie(
            state,
            Some((
                &Pending {
                    kind: KIND,
                    id,
                    session: &posted.signed.session,
                },
                made.secret.expose(),
            )),
        ),
    );
    Ok(response)
}

async fn create(State(state): State<AppState>, posted: Posted<Fields>) -> Reply {
    let f = &posted.form;
    let input = NewWebhookEndpoint {
        url: f.text("url").to_owned(),
        description: f.given("description"),
        events: Some(patterns(f)).filter(|p| !p.is_empty()),
        product_id: f.number("product_id")?,
        enabled: Some(true),
    };
    let made = state
        .app
        .create_webhook_endpoint(&posted.signed.session.principal, input)
        .await?;
    reveal(&state, &posted, &made, "created")
}

async fn endpoint(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Reply {
    let id = id_of(path)?;
    let principal = &signed.session.principal;
    let page = PageRequest {
        cursor: q.before.clone(),
        limit: Some(25),
    };
    let state_filter = Some(q.state.trim()).filter(|s| !s.is_empty());
    let log = state
        .app
        .webhook_delivery_rows(principal, id, state_filter, &page)
        .await?;
    let products = state.app.products_page(principal, &chooser()).await?;
    let secret = revealed(
        &headers,
        &Pending {
            kind: KIND,
            id,
            session: &signed.session,
        },
    );
    Ok(showing_once(
        &state,
        pages::endpoint(&signed.session, &log, &products.data, secret.as_deref(), &q),
    ))
}

async fn update(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let f = &posted.form;
    let patch = WebhookEndpointPatch {
        url: Some(f.text("url").to_owned()),
        description: Some(f.text("description").to_owned()),
        events: Some(patterns(f)),
        product_id: Some(f.number("product_id")?),
        enabled: None,
    };
    state
        .app
        .update_webhook_endpoint(&posted.signed.session.principal, id, patch)
        .await?;
    to(format!("/admin/webhooks/{id}?done=saved"))
}

async fn switch(state: &AppState, posted: &Posted<Empty>, id: i64, enabled: bool) -> Reply {
    let patch = WebhookEndpointPatch {
        enabled: Some(enabled),
        ..WebhookEndpointPatch::default()
    };
    state
        .app
        .update_webhook_endpoint(&posted.signed.session.principal, id, patch)
        .await?;
    let done = if enabled { "enabled" } else { "disabled" };
    to(format!("/admin/webhooks/{id}?done={done}"))
}

async fn enable(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    switch(&state, &posted, id_of(path)?, true).await
}

async fn disable(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    switch(&state, &posted, id_of(path)?, false).await
}

async fn rotate(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let overlap = posted.form.number("overlap_hours")?;
    let made = state
        .app
        .rotate_webhook_secret(&posted.signed.session.principal, id, overlap)
        .await?;
    reveal(&state, &posted, &made, "rotated")
}

async fn delete(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    // A deletion takes the endpoint's log with it: asked for twice, not once by a slip.
    if !posted.form.checked("confirm") {
        return Err(Problem::Invalid(
            "confirm: tick the box to delete the endpoint".into(),
        ));
    }
    state
        .app
        .delete_webhook_endpoint(&posted.signed.session.principal, id)
        .await?;
    to("/admin/webhooks?done=deleted".into())
}

async fn test(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    let id = id_of(path)?;
    let delivery = state
        .app
        .send_test_webhook(&posted.signed.session.principal, id)
        .await?;
    to(format!(
        "/admin/webhooks/deliveries/{}?done=test",
        delivery.id
    ))
}

/// A time as the form gives it: a `datetime-local` value read as UTC, or RFC 3339.
fn since(text: &str) -> Result<DateTime<Utc>, Problem> {
    let text = text.trim();
    let invalid = || Problem::Invalid("since: a date and time, e.g. 2026-03-01T09:30 (UTC)".into());
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|at| at.and_utc())
        .ok_or_else(invalid)
}

async fn retry_failed(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let at = since(posted.form.text("since"))?;
    let count = state
        .app
        .retry_failed_webhook_deliveries(&posted.signed.session.principal, id, at)
        .await?;
    to(format!("/admin/webhooks/{id}?done=retried&count={count}"))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

async fn delivery(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let id = id_of(path)?;
    let log = state
        .app
        .webhook_delivery(&signed.session.principal, id)
        .await?;
    Ok(html(pages::delivery(
        &signed.session,
        &log,
        q.done.as_deref(),
    )))
}

async fn retry(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    let id = id_of(path)?;
    state
        .app
        .retry_webhook_delivery(&posted.signed.session.principal, id)
        .await?;
    to(format!("/admin/webhooks/deliveries/{id}?done=retried"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_the_form_and_rfc3339() {
        let at = since("2026-03-01T09:30").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-03-01T09:30:00+00:00");
        assert_eq!(since("2026-03-01T09:30:00Z").unwrap(), at);
        assert!(since("yesterday").is_err());
        assert!(since("").is_err());
    }
}
