//! The portal's self-service routes: a license's page, freeing a machine, downloading an
//! offline license file, the account page and an email change's confirmation link.
//!
//! Handlers parse, call one use case for the buyer, render or redirect. Ids in paths that are
//! not numbers are answered like unknown ids (404), and so are ids of other customers (the use
//! cases decide that). The confirmation link, like a sign-in link, only shows a button on GET.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyturn_app::{AppError, EmailChangeOutcome, FreeOutcome, LinkRequest};
use serde::Deserialize;

use super::handlers::{anonymous_csrf, html, with_form_token};
use super::{self_pages, Buyer, BuyerPosted, Problem};
use crate::extract::ClientIp;
use crate::AppState;

type Page = Result<Response, Problem>;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal/portal.js", get(script))
        .route("/portal/licenses/{id}", get(license))
        .route(
            "/portal/licenses/{id}/machines/{machine}/free",
            post(free_machine),
        )
        .route("/portal/licenses/{id}/file", post(license_file))
        .route("/portal/account", get(account))
        .route("/portal/account/name", post(set_name))
        .route("/portal/account/email", post(change_email))
        .route(
            "/portal/account/email/{secret}",
            get(confirm_form).post(confirm_email),
        )
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../console/console.js"),
    )
        .into_response()
}

fn not_found() -> Problem {
    Problem::Status(StatusCode::NOT_FOUND, "There is no such page.".into())
}

/// An id from a path; anything else is a page that does not exist.
fn id(text: &str) -> Result<i64, Problem> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(not_found)
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn license(
    State(state): State<AppState>,
    buyer: Buyer,
    Path(raw): Path<String>,
    Query(q): Query<Done>,
) -> Page {
    let detail = state.app.portal_license(&buyer.session, id(&raw)?).await?;
    Ok(html(self_pages::license(
        &buyer.session,
        &detail,
        q.done.as_deref(),
        None,
    )))
}

#[derive(Deserialize)]
struct Empty {}

/// The license page again, with what went wrong, under `status`.
async fn license_again(
    state: &AppState,
    buyer: &Buyer,
    license_id: i64,
    status: StatusCode,
    message: &str,
) -> Page {
    let detail = state.app.portal_license(&buyer.session, license_id).await?;
    Ok((
        status,
        html(self_pages::license(
            &buyer.session,
            &detail,
            None,
            Some(message),
        )),
    )
        .into_response())
}

async fn free_machine(
    State(state): State<AppState>,
    Path((raw_license, raw_machine)): Path<(String, String)>,
    posted: BuyerPosted<Empty>,
) -> Page {
    let license_id = id(&raw_license)?;
    let machine_id = id(&raw_machine)?;
    let buyer = &posted.buyer;
    match state
        .app
        .portal_free_machine(&buyer.session, license_id, machine_id)
        .await?
    {
        FreeOutcome::Freed(_) => {
            Ok(Redirect::to(&format!("/portal/licenses/{license_id}?done=freed")).into_response())
        }
        FreeOutcome::Refused(refusal) => {
            license_again(
                &state,
                buyer,
                license_id,
                StatusCode::CONFLICT,
                &refusal.message(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct FileForm {
    #[serde(default)]
    machine_code: String,
}

async fn license_file(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    posted: BuyerPosted<FileForm>,
) -> Page {
    let license_id = id(&raw)?;
    let buyer = &posted.buyer;
    match state
        .app
        .portal_license_file(&buyer.session, license_id, &posted.form.machine_code)
        .await
    {
        Ok(Ok(file)) => {
            let disposition =
                HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.file_name))
                    .map_err(|_| not_found())?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                file.text,
            )
                .into_response())
        }
        Ok(Err(refusal)) => {
            license_again(
                &state,
                buyer,
                license_id,
                StatusCode::FORBIDDEN,
                &refusal.message(),
            )
            .await
        }
        Err(AppError::Invalid(_)) => {
            license_again(
                &state,
                buyer,
                license_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                "That is not a machine code. Copy it exactly as your program shows it.",
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn account(State(state): State<AppState>, buyer: Buyer, Query(q): Query<Done>) -> Page {
    let account = state.app.portal_account(&buyer.session).await?;
    Ok(html(self_pages::account(
        &buyer.session,
        &account,
        q.done.as_deref(),
        None,
        None,
    )))
}

/// The account page again, with a message or a sent notice, under `status`.
async fn account_again(
    state: &AppState,
    buyer: &Buyer,
    status: StatusCode,
    error: Option<&str>,
    sent_to: Option<&str>,
) -> Page {
    let account = state.app.portal_account(&buyer.session).await?;
    Ok((
        status,
        html(self_pages::account(
            &buyer.session,
            &account,
            None,
            error,
            sent_to,
        )),
    )
        .into_response())
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

async fn set_name(State(state): State<AppState>, posted: BuyerPosted<NameForm>) -> Page {
    let buyer = &posted.buyer;
    match state
        .app
        .portal_set_name(&buyer.session, &posted.form.name)
        .await
    {
        Ok(()) => Ok(Redirect::to("/portal/account?done=name").into_response()),
        Err(AppError::Invalid(_)) => {
            account_again(
                &state,
                buyer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("Enter a name (printable characters, not too long)."),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    email: String,
}

async fn change_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    posted: BuyerPosted<EmailForm>,
) -> Page {
    let buyer = &posted.buyer;
    let ip = ip.map(|ip| ip.to_string());
    // Configured, never taken from the request (see the sign-in link).
    let base = state.settings.public_url.as_deref().unwrap_or("");
    match state
        .app
        .portal_request_email_change(&buyer.session, &posted.form.email, ip.as_deref(), base)
        .await
    {
        Ok(LinkRequest::Accepted) => {
            let to = posted.form.email.trim().to_lowercase();
            account_again(&state, buyer, StatusCode::OK, None, Some(&to)).await
        }
        Ok(LinkRequest::Throttled) => {
            account_again(
                &state,
                buyer,
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many requests. Wait 15 minutes, then try again."),
                None,
            )
            .await
        }
        Err(AppError::Invalid(d)) => {
            let message = format!("The new email {}.", d.message);
            account_again(
                &state,
                buyer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&message),
                None,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn confirm_form(State(state): State<AppState>, Path(secret): Path<String>) -> Response {
    with_form_token(&state, |csrf| self_pages::confirm_email(csrf, &secret))
}

async fn confirm_email(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    anonymous_csrf(&headers, &body)?;
    match state.app.portal_confirm_email_change(&secret).await? {
        EmailChangeOutcome::Changed { new_email } => {
            Ok(html(self_pages::email_changed(&new_email)))
        }
        EmailChangeOutcome::Refused => {
            Ok((StatusCode::GONE, html(self_pages::email_link_spent())).into_response())
        }
    }
}
