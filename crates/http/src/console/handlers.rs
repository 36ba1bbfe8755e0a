//! The console's handlers: parse, call one use case as the signed-in user, render or redirect.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use keyturn_app::{
    csrf_token, BlockReasons, Extension, LicenseFileRequest, LicensePatch, PageRequest, SignIn,
};
use keyturn_core::TokenSecret;
use serde::Deserialize;

use super::{
    cookie, cookie_value, csrf_matches, pages, parse_form, Posted, Problem, Signed, LOGIN_COOKIE,
    SESSION_COOKIE,
};
use crate::extract::ClientIp;
use crate::AppState;

type Page = Result<Response, Problem>;

pub(super) fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// After a change: the page that shows it (303, so the browser GETs it).
fn to_license(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/admin/licenses/{id}?done={done}")).into_response()
}

fn id_of(path: Result<Path<i64>, PathRejection>) -> Result<i64, Problem> {
    path.map(|Path(id)| id)
        .map_err(|_| Problem::Status(StatusCode::NOT_FOUND, "no such page".into()))
}

/// Only the CSRF token (checked by [`Posted`]).
#[derive(Deserialize)]
pub(super) struct Empty {}

pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

pub(super) async fn login_form(State(state): State<AppState>) -> Response {
    let secret = TokenSecret::generate_session();
    let mut response = html(pages::login(&csrf_token(secret.expose()), None));
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, LOGIN_COOKIE, "/admin/login", Some(secret.expose())),
    );
    response
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let expected = cookie_value(&headers, LOGIN_COOKIE).map(csrf_token);
    let presented = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    match expected {
        Some(expected) if csrf_matches(&expected, presented.as_deref()) => {}
        _ => return Err(Problem::Csrf),
    }
    let form: LoginForm = parse_form(&body)?;
    let ip = ip.map(|ip| ip.to_string());
    let again = presented.unwrap_or_default();
    match state
        .app
        .console_sign_in_from(
            &form.email,
            &form.password,
            ip.as_deref(),
            super::account::user_agent(&headers),
        )
        .await?
    {
        SignIn::SecondFactor(challenge) => {
            let mut response = Redirect::to(super::account::CODE_PATH).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                cookie(
                    &state,
                    super::account::CODE_COOKIE,
                    super::account::CODE_PATH,
                    Some(challenge.expose()),
                ),
            );
            headers.append(
                header::SET_COOKIE,
                cookie(&state, LOGIN_COOKIE, "/admin/login", None),
            );
            Ok(response)
        }
        SignIn::Started(secret) => {
            let mut response = Redirect::to("/admin").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                cookie(&state, SESSION_COOKIE, "/admin", Some(secret.expose())),
            );
            headers.append(
                header::SET_COOKIE,
                cookie(&state, LOGIN_COOKIE, "/admin/login", None),
            );
            Ok(response)
        }
        SignIn::Refused => Ok((
            StatusCode::UNAUTHORIZED,
            html(pages::login(&again, Some("Wrong email or password."))),
        )
            .into_response()),
        SignIn::Throttled => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            html(pages::login(
                &again,
                Some("Too many failed sign-ins. Wait 15 minutes, then try again."),
            )),
        )
            .into_response()),
    }
}

pub(super) async fn logout(State(state): State<AppState>, posted: Posted<Empty>) -> Page {
    let signed = posted.signed;
    state
        .app
        .console_sign_out(&signed.session, &signed.secret)
        .await?;
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, SESSION_COOKIE, "/admin", None),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
    after: Option<String>,
}

pub(super) async fn search(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<SearchQuery>,
) -> Page {
    let session = &signed.session;
    let term = query.q.unwrap_or_default();
    if term.trim().is_empty() {
        return Ok(html(pages::search(session, "", None)));
    }
    let page = PageRequest {
        cursor: query.after,
        limit: None,
    };
    let found = state
        .app
        .search_licenses(&session.principal, &term, &page)
        .await?;
    Ok(html(pages::search(session, term.trim(), Some(&found))))
}

#[derive(Deserialize)]
pub(super) struct LicenseQuery {
    done: Option<String>,
}

pub(super) async fn license(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(query): Query<LicenseQuery>,
) -> Page {
    let id = id_of(path)?;
    let overview = state
        .app
        .license_overview(&signed.session.principal, id)
        .await?;
    Ok(html(pages::license(
        &signed.session,
        &overview,
        query.done.as_deref(),
    )))
}

pub(super) async fn free_machine(
    State(state): State<AppState>,
    Path((_, activation)): Path<(i64, i64)>,
    posted: Posted<Empty>,
) -> Page {
    let freed = state
        .app
        .delete_activation(&posted.signed.session.principal, activation)
        .await?;
    Ok(to_license(freed.license_id, "freed"))
}

#[derive(Deserialize)]
pub(super) struct FeatureForm {
    feature: String,
    on: String,
}

pub(super) async fn toggle_feature(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<FeatureForm>,
) -> Page {
    let id = id_of(path)?;
    let principal = &posted.signed.session.principal;
    let form = posted.form;
    if form.on == "1" {
        state.app.add_feature(principal, id, &form.feature).await?;
    } else {
        state
            .app
            .remove_feature(principal, id, &form.feature)
            .await?;
    }
    Ok(to_license(id, "features"))
}

#[derive(Deserialize)]
pub(super) struct ExtendForm {
    #[serde(default)]
    days: String,
    #[serde(default)]
    until: String,
}

pub(super) async fn extend(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<ExtendForm>,
) -> Page {
    let id = id_of(path)?;
    let form = posted.form;
    let extension = match (form.days.trim(), form.until.trim()) {
        (days, "") if !days.is_empty() => Extension::Days(
            days.parse()
                .map_err(|_| Problem::Invalid("days: must be a whole number".into()))?,
        ),
        ("", until) if !until.is_empty() => {
            let date = NaiveDate::parse_from_str(until, "%Y-%m-%d")
                .map_err(|_| Problem::Invalid("until: must be a date (YYYY-MM-DD)".into()))?;
            // Valid through the whole of the chosen day.
            let end = date
                .and_hms_opt(23, 59, 59)
                .ok_or_else(|| Problem::Invalid("until: must be a date".into()))?;
            Extension::Until(Utc.from_utc_datetime(&end))
        }
        _ => {
            return Err(Problem::Invalid(
                "give either a number of days or a date".into(),
            ))
        }
    };
    state
        .app
        .extend_license(&posted.signed.session.principal, id, extension)
        .await?;
    Ok(to_license(id, "extended"))
}

#[derive(Deserialize)]
pub(super) struct BlockForm {
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    public_reason: String,
}

pub(super) async fn block(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<BlockForm>,
) -> Page {
    let id = id_of(path)?;
    let blocked = match posted.form.action.as_str() {
        "block" => true,
        "unblock" => false,
        _ => return Err(Problem::Invalid("action: must be block or unblock".into())),
    };
    state
        .app
        .set_blocked_because(
            &posted.signed.session.principal,
            id,
            blocked,
            BlockReasons {
                internal: Some(&posted.form.reason),
                public: Some(&posted.form.public_reason),
            },
        )
        .await?;
    Ok(to_license(
        id,
        if blocked { "blocked" } else { "unblocked" },
    ))
}

#[derive(Deserialize)]
pub(super) struct NotesForm {
    #[serde(default)]
    notes: String,
    #[serde(default)]
    metadata: String,
}

pub(super) async fn notes(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<NotesForm>,
) -> Page {
    let id = id_of(path)?;
    let form = posted.form;
    let metadata = match form.metadata.trim() {
        "" => serde_json::json!({}),
        text => serde_json::from_str(text)
            .map_err(|e| Problem::Invalid(format!("metadata: must be a JSON object ({e})")))?,
    };
    let patch = LicensePatch {
        notes: Some(form.notes.replace("\r\n", "\n")),
        metadata: Some(metadata),
        ..LicensePatch::default()
    };
    state
        .app
        .update_license(&posted.signed.session.principal, id, patch)
        .await?;
    Ok(to_license(id, "saved"))
}

#[derive(Deserialize)]
pub(super) struct FileForm {
    machine: String,
    #[serde(default)]
    days: String,
    /// A checkbox: present (any value) when ticked.
    encrypt: Option<String>,
}

/// The offline license file for a machine that cannot reach the server (a machine code the
/// customer sends): downloaded, not shown, and recorded in the license's audit log.
pub(super) async fn license_file(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<FileForm>,
) -> Page {
    let id = id_of(path)?;
    let form = posted.form;
    let ttl_days = match form.days.trim() {
        "" => None,
        days => Some(
            days.parse()
                .map_err(|_| Problem::Invalid("days: must be a whole number".into()))?,
        ),
    };
    let text = state
        .app
        .issue_license_file(
            &posted.signed.session.principal,
            id,
            LicenseFileRequest {
                fingerprint: Some(form.machine),
                ttl_days,
                encrypt: form.encrypt.is_some(),
            },
        )
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"license-{id}.lic\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        text,
    )
        .into_response())
}
