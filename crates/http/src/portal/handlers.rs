//! The portal's handlers: parse, call one use case for the buyer, render or redirect.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use keyturn_app::{csrf_token, LinkRequest, PageRequest, PortalSignIn};
use keyturn_core::TokenSecret;
use serde::Deserialize;

use super::{pages, Buyer, BuyerPosted, Problem, FORM_COOKIE, SESSION_COOKIE};
use crate::console::{cookie, cookie_value, csrf_matches, parse_form};
use crate::extract::ClientIp;
use crate::AppState;

type Page = Result<Response, Problem>;

pub(super) fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// A page with an anonymous form: a fresh token, bound to a cookie set with it.
pub(super) fn with_form_token(
    state: &AppState,
    render: impl FnOnce(&str) -> maud::Markup,
) -> Response {
    let secret = TokenSecret::generate_session();
    let mut response = html(render(&csrf_token(secret.expose())));
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(state, FORM_COOKIE, "/portal", Some(secret.expose())),
    );
    response
}

/// Checks an anonymous form's token against its cookie; the token, to render the form again.
pub(super) fn anonymous_csrf(headers: &HeaderMap, body: &Bytes) -> Result<String, Problem> {
    let expected = cookie_value(headers, FORM_COOKIE).map(csrf_token);
    let presented = form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    match expected {
        Some(expected) if csrf_matches(&expected, presented.as_deref()) => {
            Ok(presented.unwrap_or_default())
        }
        _ => Err(Problem::Csrf),
    }
}

/// A new session's cookie, and the form cookie cleared, on the way to the licenses.
pub(super) fn started(state: &AppState, secret: &TokenSecret) -> Response {
    let mut response = Redirect::to("/portal/licenses").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        cookie(state, SESSION_COOKIE, "/portal", Some(secret.expose())),
    );
    headers.append(
        header::SET_COOKIE,
        cookie(state, FORM_COOKIE, "/portal", None),
    );
    response
}

pub(super) async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed = match cookie_value(&headers, SESSION_COOKIE) {
        Some(secret) => state.app.portal_session(secret).await.is_ok(),
        None => false,
    };
    Redirect::to(if signed {
        "/portal/licenses"
    } else {
        "/portal/sign-in"
    })
    .into_response()
}

pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../console/console.css"),
    )
        .into_response()
}

pub(super) async fn sign_in_form(State(state): State<AppState>) -> Response {
    with_form_token(&state, |csrf| pages::sign_in(csrf, None, ""))
}

#[derive(Deserialize)]
pub(super) struct LinkForm {
    #[serde(default)]
    email: String,
}

pub(super) async fn request_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let csrf = anonymous_csrf(&headers, &body)?;
    let form: LinkForm = parse_form(&body)?;
    let ip = ip.map(|ip| ip.to_string());
    // Configured, never taken from the request: a Host header would let anyone mail a link
    // to their own site.
    let base = state.settings.public_url.as_deref().unwrap_or("");
    match state
        .app
        .portal_request_link(&form.email, ip.as_deref(), base)
        .await
    {
        Ok(LinkRequest::Accepted) => Ok(html(pages::link_sent())),
        Ok(LinkRequest::Throttled) => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            html(pages::sign_in(
                &csrf,
                Some("Too many requests. Wait 15 minutes, then try again."),
                &form.email,
            )),
        )
            .into_response()),
        Err(keyturn_app::AppError::Invalid(_)) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            html(pages::sign_in(
                &csrf,
                Some("Enter the email address you bought with."),
                &form.email,
            )),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct KeyForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    email: String,
}

pub(super) async fn sign_in_with_key(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let csrf = anonymous_csrf(&headers, &body)?;
    let form: KeyForm = parse_form(&body)?;
    let ip = ip.map(|ip| ip.to_string());
    let (status, message) = match state
        .app
        .portal_sign_in_with_key(&form.key, &form.email, ip.as_deref())
        .await?
    {
        PortalSignIn::Started(secret) => return Ok(started(&state, &secret)),
        PortalSignIn::Refused => (
            StatusCode::UNAUTHORIZED,
            "That key and email do not belong together.",
        ),
        PortalSignIn::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts. Wait 15 minutes, then try again.",
        ),
    };
    Ok((
        status,
        html(pages::sign_in(&csrf, Some(message), &form.email)),
    )
        .into_response())
}

pub(super) async fn link_form(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> Response {
    with_form_token(&state, |csrf| pages::use_link(csrf, &secret))
}

pub(super) async fn use_link(
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
        .portal_sign_in_with_link(&secret, ip.as_deref())
        .await?
    {
        PortalSignIn::Started(secret) => Ok(started(&state, &secret)),
        PortalSignIn::Refused | PortalSignIn::Throttled => {
            Ok((StatusCode::GONE, html(pages::link_spent())).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Empty {}

pub(super) async fn sign_out(State(state): State<AppState>, posted: BuyerPosted<Empty>) -> Page {
    state
        .app
        .portal_sign_out(&posted.buyer.session, &posted.buyer.secret)
        .await?;
    let mut response = Redirect::to("/portal/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, SESSION_COOKIE, "/portal", None),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct After {
    after: Option<String>,
}

pub(super) async fn licenses(
    State(state): State<AppState>,
    buyer: Buyer,
    Query(q): Query<After>,
) -> Page {
    let page = state
        .app
        .portal_licenses(
            &buyer.session,
            &PageRequest {
                cursor: q.after,
                limit: None,
            },
        )
        .await?;
    Ok(html(pages::licenses(&buyer.session, &page)))
}
