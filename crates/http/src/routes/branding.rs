//! The seller's branding and products' mail templates, as the vendor manages them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use keyturn_core::branding::{Branding, MailKind};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::{Auth, Json, Path};
use crate::{ApiError, AppState};

type Reply<T> = Result<axum::Json<T>, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/branding", get(show).put(update))
        .route(
            "/products/{id}/mail-templates/{kind}",
            get(template).put(set_template).delete(reset_template),
        )
}

async fn show(State(state): State<AppState>, Auth(principal): Auth) -> Reply<Branding> {
    Ok(axum::Json(state.app.branding(&principal).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrandingBody {
    display_name: String,
    logo_url: Option<String>,
    accent: Option<String>,
    support_email: Option<String>,
    terms_url: Option<String>,
    privacy_url: Option<String>,
    refund_url: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(b): Json<BrandingBody>,
) -> Reply<Branding> {
    let input = Branding {
        display_name: b.display_name,
        logo_url: b.logo_url,
        accent: b.accent,
        support_email: b.support_email,
        terms_url: b.terms_url,
        privacy_url: b.privacy_url,
        refund_url: b.refund_url,
    };
    Ok(axum::Json(state.app.set_branding(&principal, input).await?))
}

fn kind(text: &str) -> Result<MailKind, ApiError> {
    MailKind::parse(text).ok_or_else(|| {
        ApiError::from(keyturn_app::AppError::NotFound(
            keyturn_app::Entity::MailTemplate,
        ))
    })
}

async fn template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, k)): Path<(i64, String)>,
) -> Reply<Value> {
    let view = state.app.mail_template(&principal, id, kind(&k)?).await?;
    Ok(axum::Json(json!({
        "kind": view.template.kind,
        "subject": view.template.subject,
        "text": view.template.text,
        "html": view.template.html,
        "custom": view.own,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    subject: String,
    text: String,
    html: String,
}

async fn set_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, k)): Path<(i64, String)>,
    Json(b): Json<TemplateBody>,
) -> Reply<Value> {
    let t = state
        .app
        .set_mail_template(&principal, id, kind(&k)?, &b.subject, &b.text, &b.html)
        .await?;
    Ok(axum::Json(json!({
        "kind": t.kind,
        "subject": t.subject,
        "text": t.text,
        "html": t.html,
        "custom": true,
    })))
}

async fn reset_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, k)): Path<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .reset_mail_template(&principal, id, kind(&k)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
