//! `/portal`: the customer portal, where buyers see their own licenses. Server-rendered HTML
//! with plain forms, like the console, whose cookie and CSRF helpers it shares.
//!
//! Invariants:
//!
//! * Every page but the sign-in pages needs a buyer's session ([`Buyer`]); every POST of a
//!   signed-in buyer goes through [`BuyerPosted`], which refuses with 403 unless the form's
//!   `csrf` field equals the session's token. The anonymous forms (ask for a link, sign in with
//!   a key, use a link) carry a token bound to a short-lived cookie set with the form.
//! * The session cookie is `keyturn_portal`, `HttpOnly; SameSite=Strict; Path=/portal`: never
//!   sent to /admin, and a console cookie is never sent here (nor would its hash be found in the
//!   portal's session table).
//! * A sign-in link opened with GET only shows a button: mail scanners that fetch links must
//!   not use up the one sign-in a link gives.
//! * Handlers parse, call one use case of [`keyturn_app::App`] for the buyer, and render
//!   through [`pages`]. Pages allow their own stylesheets and the seller's logo (an https
//!   address) and nothing else.
//! * The seller's branding is read once per request ([`branded`]) and shown by the one
//!   layout, so no handler passes it along.

mod billing;
mod billing_pages;
mod handlers;
mod pages;
mod self_pages;
mod self_service;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use keyturn_app::{AppError, PortalSession, StoreError};
use keyturn_core::branding::Branding;
use serde::de::DeserializeOwned;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::console::{cookie_value, csrf_matches, parse_form};
use crate::AppState;

/// The console's policy, and the seller's logo from any https address.
const PORTAL_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                          img-src 'self' https:; form-action 'self'; base-uri 'none'; \
                          frame-ancestors 'none'";

tokio::task_local! {
    /// The seller's branding while a portal request is answered: every page's layout shows
    /// it and many handlers render pages, so it is read once here instead of being passed
    /// through each of them.
    static BRANDING: Arc<Branding>;
}

/// The portal's routes with the branding read for each request.
pub(crate) fn branded(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        with_branding,
    ))
}

async fn with_branding(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    // Only looks: a failed read shows the portal unbranded rather than not at all.
    let b = Arc::new(state.app.public_branding().await.unwrap_or_default());
    BRANDING.scope(b, next.run(request)).await
}

/// The branding of the request being answered (none outside one).
pub(crate) fn branding() -> Arc<Branding> {
    BRANDING.try_with(Arc::clone).unwrap_or_default()
}

/// The branding's colours over the shared style sheet: links and buttons in the accent where
/// it is readable on white (else the default), the header in the accent with readable text.
async fn brand_stylesheet() -> Response {
    let b = branding();
    let mut css = format!(
        ":root{{--accent:{l};--accent-fg:#ffffff}}\n\
         header.top .brand img{{height:32px;max-width:50vw;display:block;object-fit:contain}}\n\
         footer.site{{max-width:72rem;margin:2rem auto 0;padding:1rem;border-top:1px solid var(--line);color:var(--muted);font-size:.9rem}}\n\
         footer.site a{{margin-right:.75rem}}\n",
        l = b.link_colour()
    );
    if b.accent.is_some() {
        css.push_str(&format!(
            "header.top{{background:{a};color:{t}}}\nheader.top a{{color:{t}}}\n",
            a = b.accent(),
            t = b.accent_text()
        ));
    }
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

/// The buyer's session cookie.
const SESSION_COOKIE: &str = "keyturn_portal";
/// The cookie the anonymous forms' CSRF token is bound to.
const FORM_COOKIE: &str = "keyturn_portal_form";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/portal", get(handlers::home))
        .route("/portal/", get(handlers::home))
        .route("/portal/portal.css", get(handlers::stylesheet))
        .route("/portal/brand.css", get(brand_stylesheet))
        .route("/portal/sign-in", get(handlers::sign_in_form))
        .route("/portal/sign-in/link", post(handlers::request_link))
        .route("/portal/sign-in/key", post(handlers::sign_in_with_key))
        .route(
            "/portal/link/{secret}",
            get(handlers::link_form).post(handlers::use_link),
        )
        .route("/portal/sign-out", post(handlers::sign_out))
        .route("/portal/licenses", get(handlers::licenses))
        .merge(billing::router())
        .merge(self_service::router())
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PORTAL_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// A signed-in buyer, and the cookie value their session is known by.
pub(crate) struct Buyer {
    pub session: PortalSession,
    pub secret: String,
}

impl FromRequestParts<AppState> for Buyer {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let secret = cookie_value(&parts.headers, SESSION_COOKIE)
            .ok_or(Problem::SignIn)?
            .to_owned();
        let session = state.app.portal_session(&secret).await?;
        Ok(Buyer { session, secret })
    }
}

/// A form posted by a signed-in buyer whose CSRF token matched.
pub(crate) struct BuyerPosted<T> {
    pub buyer: Buyer,
    #[allow(dead_code)]
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for BuyerPosted<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (mut parts, body) = request.into_parts();
        let buyer = Buyer::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|r| Problem::Status(r.status(), r.body_text()))?;
        let presented = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !csrf_matches(&buyer.session.csrf, presented.as_deref()) {
            return Err(Problem::Csrf);
        }
        let form =
            parse_form(&bytes).map_err(|_| Problem::Invalid("the form was malformed".into()))?;
        Ok(BuyerPosted { buyer, form })
    }
}

/// Why a portal request did not get its page, shown as a page.
#[derive(Debug)]
pub(crate) enum Problem {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    Csrf,
    Invalid(String),
    Status(StatusCode, String),
}

/// The shared form parser's refusals, said as the portal says them.
impl From<crate::console::Problem> for Problem {
    fn from(p: crate::console::Problem) -> Self {
        use crate::console::Problem as Console;
        match p {
            Console::SignIn => Problem::SignIn,
            Console::Csrf => Problem::Csrf,
            Console::Invalid(m) => Problem::Invalid(m),
            Console::Status(s, m) => Problem::Status(s, m),
        }
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unauthenticated => Problem::SignIn,
            AppError::Invalid(d) => Problem::Invalid(d.to_string()),
            AppError::NotFound(_) | AppError::Forbidden(_) => {
                Problem::Status(StatusCode::NOT_FOUND, "There is no such page.".into())
            }
            AppError::Store(StoreError::Unavailable(_)) => Problem::Status(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is busy; nothing was changed. Try again shortly.".into(),
            ),
            other => {
                let api = crate::ApiError::from(other);
                Problem::Status(api.status(), "Something went wrong; try again.".into())
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Problem::SignIn => return Redirect::to("/portal/sign-in").into_response(),
            Problem::Csrf => (
                StatusCode::FORBIDDEN,
                "The form was stale or did not come from this portal. Reload the page and try again."
                    .to_owned(),
            ),
            Problem::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            Problem::Status(s, m) => (s, m),
        };
        (status, Html(pages::problem(status, &message).into_string())).into_response()
    }
}
