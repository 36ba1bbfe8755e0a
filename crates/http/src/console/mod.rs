//! `/admin`: the admin console, server-rendered HTML with plain forms.
//!
//! Invariants:
//!
//! * Every page but sign-in needs a signed-in session ([`Signed`]); every POST goes through
//!   [`Posted`], which refuses with 403 unless the form's `csrf` field equals the session's
//!   token (compared in constant time) — a handler cannot take a form without the check. The
//!   sign-in form has a token of its own, bound to a short-lived cookie set with the form.
//! * The session cookie is `HttpOnly; SameSite=Strict; Path=/admin`, and `Secure` when the
//!   server's public address is https.
//! * Handlers parse, call one use case of [`keyturn_app::App`] as the user's principal, and
//!   render through [`pages`], whose templates escape everything they are given. A change
//!   answers with a redirect to the page that shows it (POST → redirect → GET).
//! * Pages allow their own stylesheet and nothing else: no inline script or style, no frames.

mod account;
mod account_pages;
mod branding;
mod branding_pages;
mod csv;
mod dashboard;
mod dashboard_pages;
mod handlers;
mod money;
mod money_pages;
mod pages;
mod sales;
mod sales_pages;
mod setup;
mod setup_pages;
mod webhooks;
mod webhooks_pages;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyturn_app::{AppError, ConsoleSession, StoreError};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{text, AppState};

/// The session cookie.
const SESSION_COOKIE: &str = "keyturn_console";
/// The cookie the sign-in form's CSRF token is bound to.
const LOGIN_COOKIE: &str = "keyturn_console_login";

pub(crate) const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn router() -> Router<AppState> {
    branding::routes(Router::new())
        .route("/admin", get(dashboard::home))
        .route("/admin/", get(dashboard::home))
        .route("/admin/console.css", get(handlers::stylesheet))
        .route(
            "/admin/login",
            get(handlers::login_form).post(handlers::login),
        )
        .route("/admin/logout", post(handlers::logout))
        .route("/admin/search", get(handlers::search))
        .route("/admin/licenses/{id}", get(handlers::license))
        .route(
            "/admin/licenses/{id}/machines/{activation}/free",
            post(handlers::free_machine),
        )
        .route(
            "/admin/licenses/{id}/features",
            post(handlers::toggle_feature),
        )
        .route("/admin/licenses/{id}/extend", post(handlers::extend))
        .route("/admin/licenses/{id}/block", post(handlers::block))
        .route("/admin/licenses/{id}/notes", post(handlers::notes))
        .route("/admin/licenses/{id}/file", post(handlers::license_file))
        .route("/admin/console.js", get(setup::script))
        .route(
            "/admin/products",
            get(setup::products).post(setup::create_product),
        )
        .route("/admin/products/new", get(setup::new_product))
        .route(
            "/admin/products/{id}",
            get(setup::product).post(setup::update_product),
        )
        .route("/admin/products/{id}/edit", get(setup::edit_product))
        .route("/admin/plans", get(setup::plans).post(setup::create_plan))
        .route("/admin/plans/new", get(setup::new_plan))
        .route(
            "/admin/plans/{id}",
            get(setup::plan).post(setup::update_plan),
        )
        .route(
            "/admin/tokens",
            get(setup::tokens).post(setup::create_token),
        )
        .route("/admin/tokens/new", get(setup::new_token))
        .route("/admin/tokens/{id}/created", get(setup::token_created))
        .route("/admin/tokens/{id}/revoke", post(setup::revoke_token))
        .route("/admin/forms", get(setup::forms).post(setup::create_form))
        .route("/admin/forms/new", get(setup::new_form))
        .route(
            "/admin/forms/{id}",
            get(setup::form).post(setup::update_form),
        )
        .route(
            "/admin/license-urls",
            get(setup::license_urls).post(setup::create_license_url),
        )
        .route("/admin/license-urls/new", get(setup::new_license_url))
        .route(
            "/admin/license-urls/{id}",
            get(setup::license_url).post(setup::update_license_url),
        )
        .route(
            "/admin/license-urls/{id}/rotate",
            post(setup::rotate_license_url),
        )
        .route(
            "/admin/license-urls/{id}/delete",
            post(setup::delete_license_url),
        )
        .route("/admin/providers", get(setup::providers))
        .merge(sales::router())
        .merge(money::router())
        .merge(webhooks::router())
        .route(
            account::CODE_PATH,
            get(account::code_form).post(account::code),
        )
        .route("/admin/account", get(account::account))
        .route("/admin/account/password", post(account::password))
        .route("/admin/account/totp/begin", post(account::totp_begin))
        .route("/admin/account/totp/confirm", post(account::totp_confirm))
        .route("/admin/account/totp/cancel", post(account::totp_cancel))
        .route("/admin/account/totp/disable", post(account::totp_disable))
        .route("/admin/account/sessions", get(account::sessions))
        .route("/admin/account/sessions/end", post(account::end_session))
        .route(
            "/admin/account/sessions/end-others",
            post(account::end_other_sessions),
        )
        .route(
            "/admin/users",
            get(account::users).post(account::create_user),
        )
        .route("/admin/users/{id}", get(account::user))
        .route("/admin/users/{id}/access", post(account::user_access))
        .route("/admin/users/{id}/disable", post(account::user_disable))
        .route("/admin/users/{id}/enable", post(account::user_enable))
        .route(
            "/admin/users/{id}/reset-second-factor",
            post(account::user_reset),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        // After the layers: the mail preview sets its own, stricter, policy.
        .merge(branding::preview_router())
}

/// Whether cookies must be `Secure`: the server is reached over https, because it serves
/// TLS itself or because its public URL (a proxy terminating TLS) says so.
fn secure(state: &AppState) -> bool {
    state.settings.tls
        || state
            .settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
}

/// A `Set-Cookie` value for a console cookie; `None` clears it.
pub(crate) fn cookie(state: &AppState, name: &str, path: &str, value: Option<&str>) -> HeaderValue {
    let secure = if secure(state) { "; Secure" } else { "" };
    let (value, age) = match value {
        Some(v) => (v, String::new()),
        None => ("", "; Max-Age=0".to_owned()),
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path={path}{secure}{age}"
    ))
    .expect("cookie values are URL-safe base64")
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether a presented CSRF token is the expected one (constant time).
pub(crate) fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(expected.as_bytes().ct_eq(p.as_bytes())))
}

/// A signed-in console user, and the cookie value their session is known by.
pub(crate) struct Signed {
    pub session: ConsoleSession,
    pub secret: String,
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let secret = cookie_value(&parts.headers, SESSION_COOKIE)
            .ok_or(Problem::SignIn)?
            .to_owned();
        let session = state.app.console_session(&secret).await?;
        Ok(Signed { session, secret })
    }
}

/// A form posted by a signed-in user whose CSRF token matched.
pub(crate) struct Posted<T> {
    pub signed: Signed,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|r| Problem::Status(r.status(), r.body_text()))?;
        let presented = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !csrf_matches(&signed.session.csrf, presented.as_deref()) {
            return Err(Problem::Csrf);
        }
        let form = parse_form(&bytes)?;
        Ok(Posted { signed, form })
    }
}

/// A form body, with the same refusal of control characters as the API's forms.
pub(crate) fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if let Some((field, c)) = text::in_urlencoded(bytes) {
        return Err(Problem::Invalid(text::message(&field, c)));
    }
    serde_urlencoded::from_bytes(bytes).map_err(|e| Problem::Invalid(e.to_string()))
}

/// Why a console request did not get its page, shown as a page.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Not signed in (or the session ended): to the sign-in form.
    SignIn,
    /// A form without the right CSRF token.
    Csrf,
    Invalid(String),
    Status(StatusCode, String),
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unauthenticated => Problem::SignIn,
            AppError::Invalid(d) => Problem::Invalid(d.to_string()),
            AppError::NotFound(what) => {
                Problem::Status(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            AppError::Forbidden(m) => Problem::Status(StatusCode::FORBIDDEN, m),
            AppError::Conflict(m) => Problem::Status(StatusCode::CONFLICT, m),
            AppError::Store(StoreError::Unavailable(_)) => Problem::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; nothing was changed, try again shortly".into(),
            ),
            other => {
                let api = crate::ApiError::from(other);
                let message = api.body()["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                Problem::Status(api.status(), message)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Problem::SignIn => return Redirect::to("/admin/login").into_response(),
            Problem::Csrf => (
                StatusCode::FORBIDDEN,
                "The form was stale or did not come from this console. Reload the page and try again."
                    .to_owned(),
            ),
            Problem::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            Problem::Status(s, m) => (s, m),
        };
        (status, Html(pages::problem(status, &message).into_string())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", Some("ab")));
        assert!(!csrf_matches("abc", Some("")));
        assert!(!csrf_matches("abc", None));
    }
}
