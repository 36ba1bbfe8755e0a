//! `/admin/branding`: the seller's branding, and products' own mail templates with a preview.
//!
//! The preview is the mail's HTML as a document of its own, served with a policy that
//! sandboxes it (no script, no forms, its own origin) and lets it load only what a mail may:
//! inline styles and https images. It never becomes part of a console page.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyturn_core::branding::{escape_html, Branding, MailKind};
use serde::Deserialize;

use super::branding_pages as pages;
use super::setup::DoneQuery;
use super::{Posted, Problem, Signed};
use crate::AppState;

type Reply = Result<Response, Problem>;

/// The routes whose pages are console pages.
pub(super) fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/admin/branding", get(show).post(save))
        .route(
            "/admin/products/{id}/mails/{kind}",
            get(template).post(save_template),
        )
        .route(
            "/admin/products/{id}/mails/{kind}/reset",
            post(reset_template),
        )
}

/// The preview, with its own policy (outside the console's).
pub(super) fn preview_router() -> Router<AppState> {
    Router::new().route("/admin/products/{id}/mails/{kind}/preview", post(preview))
}

fn html(markup: maud::Markup) -> Response {
    super::handlers::html(markup)
}

fn path_of(path: Result<Path<(i64, String)>, PathRejection>) -> Result<(i64, MailKind), Problem> {
    let not_found = || Problem::Status(StatusCode::NOT_FOUND, "no such page".into());
    let Path((id, kind)) = path.map_err(|_| not_found())?;
    let kind = MailKind::parse(&kind)
        .filter(|k| *k != MailKind::SignInLink)
        .ok_or_else(not_found)?;
    Ok((id, kind))
}

async fn show(State(state): State<AppState>, signed: Signed, Query(q): Query<DoneQuery>) -> Reply {
    let principal = &signed.session.principal;
    let branding = state.app.branding(principal).await?;
    let products = state.app.products(principal).await?;
    Ok(html(pages::branding(
        &signed.session,
        &branding,
        &products,
        q.done.as_deref(),
    )))
}

#[derive(Deserialize)]
pub(super) struct BrandingForm {
    #[serde(default)]
    display_name: String,
    logo_url: Option<String>,
    accent: Option<String>,
    support_email: Option<String>,
    terms_url: Option<String>,
    privacy_url: Option<String>,
    refund_url: Option<String>,
}

async fn save(State(state): State<AppState>, posted: Posted<BrandingForm>) -> Reply {
    let f = posted.form;
    let input = Branding {
        display_name: f.display_name,
        logo_url: f.logo_url,
        accent: f.accent,
        support_email: f.support_email,
        terms_url: f.terms_url,
        privacy_url: f.privacy_url,
        refund_url: f.refund_url,
    };
    state
        .app
        .set_branding(&posted.signed.session.principal, input)
        .await?;
    Ok(Redirect::to("/admin/branding?done=saved").into_response())
}

async fn template(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<(i64, String)>, PathRejection>,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let (id, kind) = path_of(path)?;
    let principal = &signed.session.principal;
    let product = state.app.product(principal, id).await?;
    let view = state.app.mail_template(principal, id, kind).await?;
    Ok(html(pages::template(
        &signed.session,
        &product,
        &view,
        q.done.as_deref(),
    )))
}

#[derive(Deserialize)]
pub(super) struct TemplateForm {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    html: String,
}

async fn save_template(
    State(state): State<AppState>,
    path: Result<Path<(i64, String)>, PathRejection>,
    posted: Posted<TemplateForm>,
) -> Reply {
    let (id, kind) = path_of(path)?;
    let f = &posted.form;
    state
        .app
        .set_mail_template(
            &posted.signed.session.principal,
            id,
            kind,
            &f.subject,
            &f.text,
            &f.html,
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/products/{id}/mails/{}?done=saved",
        kind.as_str()
    ))
    .into_response())
}

async fn reset_template(
    State(state): State<AppState>,
    path: Result<Path<(i64, String)>, PathRejection>,
    posted: Posted<super::handlers::Empty>,
) -> Reply {
    let (id, kind) = path_of(path)?;
    state
        .app
        .reset_mail_template(&posted.signed.session.principal, id, kind)
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/products/{id}/mails/{}?done=saved",
        kind.as_str()
    ))
    .into_response())
}

/// The mail as a buyer would see it, with sample values: the subject and the text part
/// around the HTML part.
async fn preview(
    State(state): State<AppState>,
    path: Result<Path<(i64, String)>, PathRejection>,
    posted: Posted<TemplateForm>,
) -> Reply {
    let (_, kind) = path_of(path)?;
    let f = &posted.form;
    let mail = state
        .app
        .preview_mail(
            &posted.signed.session.principal,
            kind,
            &f.subject,
            &f.text,
            &f.html,
        )
        .await?;
    let banner = format!(
        "<div style=\"padding:12px 20px;background:#fff8db;color:#1b1f24;font:14px system-ui,sans-serif\">\
         Preview with sample data. Subject: <strong>{}</strong></div>",
        escape_html(&mail.subject)
    );
    let text = format!(
        "<h2 style=\"font:600 16px system-ui,sans-serif;margin:16px 20px 4px\">Text part</h2>\
         <pre style=\"margin:0 20px 20px;white-space:pre-wrap;font-size:14px\">{}</pre></body>",
        escape_html(&mail.text)
    );
    let page = mail
        .html
        .replacen(
            "<div style=\"max-width:560px",
            &format!("{banner}<div style=\"max-width:560px"),
            1,
        )
        .replacen("</body>", &text, 1);
    let mut r = Html(page).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(r)
}
