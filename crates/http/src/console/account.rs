//! A user's own account (password, two-step sign-in, sessions), the second step of signing
//! in, and the owners' user management. Handlers parse, call one use case, redirect or render.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use keyturn_app::{csrf_token, AppError, Checked, PageRequest, SignIn};
use keyturn_core::Role;
use serde::Deserialize;

use super::account_pages::{self, AccountErrors};
use super::{
    cookie, cookie_value, csrf_matches, parse_form, Posted, Problem, Signed, SESSION_COOKIE,
};
use crate::extract::ClientIp;
use crate::AppState;

/// The cookie a sign-in waiting for its code is known by.
pub(super) const CODE_COOKIE: &str = "keyturn_console_code";
pub(super) const CODE_PATH: &str = "/admin/login/code";

type Page = Result<Response, Problem>;

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn to(path: &str, done: &str) -> Response {
    Redirect::to(&format!("{path}?done={done}")).into_response()
}

fn ip_text(ip: Option<std::net::IpAddr>) -> Option<String> {
    ip.map(|ip| ip.to_string())
}

/// The browser a request came from, as it says.
pub(super) fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

#[derive(Deserialize)]
pub(super) struct Done {
    done: Option<String>,
}

/// Only the CSRF token (checked by [`Posted`]).
#[derive(Deserialize)]
pub(super) struct Empty {}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    code: String,
}

// --- The second step of signing in ---

pub(super) async fn code_form(headers: HeaderMap) -> Response {
    match cookie_value(&headers, CODE_COOKIE) {
        Some(challenge) => html(account_pages::login_code(&csrf_token(challenge), None)),
        None => Redirect::to("/admin/login").into_response(),
    }
}

pub(super) async fn code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let Some(challenge) = cookie_value(&headers, CODE_COOKIE) else {
        return Ok(Redirect::to("/admin/login").into_response());
    };
    let expected = csrf_token(challenge);
    let presented = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if !csrf_matches(&expected, presented.as_deref()) {
        return Err(Problem::Csrf);
    }
    let form: CodeForm = parse_form(&body)?;
    let ip = ip_text(ip);
    let signed = state
        .app
        .console_sign_in_code(challenge, &form.code, ip.as_deref())
        .await;
    let again = |status: StatusCode, message: &str| {
        Ok((
            status,
            html(account_pages::login_code(&expected, Some(message))),
        )
            .into_response())
    };
    match signed {
        Ok(SignIn::Started(secret)) => {
            let mut response = Redirect::to("/admin").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                cookie(&state, SESSION_COOKIE, "/admin", Some(secret.expose())),
            );
            headers.append(
                header::SET_COOKIE,
                cookie(&state, CODE_COOKIE, CODE_PATH, None),
            );
            Ok(response)
        }
        Ok(SignIn::Throttled) => again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes or passwords. Wait 15 minutes, then try again.",
        ),
        Ok(_) => again(
            StatusCode::UNAUTHORIZED,
            "That code is not right, or was used already. Type the code your app shows now.",
        ),
        Err(AppError::Unauthenticated) => {
            let mut response = Redirect::to("/admin/login").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                cookie(&state, CODE_COOKIE, CODE_PATH, None),
            );
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

// --- Account ---

pub(super) async fn account(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<Done>,
) -> Page {
    let factor = state.app.second_factor(&signed.session).await?;
    Ok(html(account_pages::account(
        &signed.session,
        &factor,
        q.done.as_deref(),
        AccountErrors::default(),
    )))
}

/// The account page again with a refusal on one of its forms.
async fn account_refused(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    errors: AccountErrors<'_>,
) -> Page {
    let factor = state.app.second_factor(&signed.session).await?;
    Ok((
        status,
        html(account_pages::account(
            &signed.session,
            &factor,
            None,
            errors,
        )),
    )
        .into_response())
}

fn checked_status(checked: Checked) -> (StatusCode, &'static str) {
    match checked {
        Checked::Throttled => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords or codes. Wait 15 minutes, then try again.",
        ),
        _ => (StatusCode::UNAUTHORIZED, ""),
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    again: String,
}

pub(super) async fn password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    posted: Posted<PasswordForm>,
) -> Page {
    let Posted { signed, form } = posted;
    if form.new != form.again {
        let errors = AccountErrors {
            password: Some("The new password and its repetition differ."),
            ..Default::default()
        };
        return account_refused(&state, &signed, StatusCode::UNPROCESSABLE_ENTITY, errors).await;
    }
    let ip = ip_text(ip);
    let checked = state
        .app
        .change_console_password(
            &signed.session,
            &signed.secret,
            &form.current,
            &form.new,
            ip.as_deref(),
        )
        .await?;
    match checked {
        Checked::Accepted => Ok(to("/admin/account", "password")),
        other => {
            let (status, message) = checked_status(other);
            let message = match other {
                Checked::Refused => "The current password is not right.",
                _ => message,
            };
            let errors = AccountErrors {
                password: Some(message),
                ..Default::default()
            };
            account_refused(&state, &signed, status, errors).await
        }
    }
}

pub(super) async fn totp_begin(State(state): State<AppState>, posted: Posted<Empty>) -> Page {
    state
        .app
        .begin_second_factor(&posted.signed.session)
        .await?;
    Ok(to("/admin/account", "enrolling"))
}

pub(super) async fn totp_cancel(State(state): State<AppState>, posted: Posted<Empty>) -> Page {
    state
        .app
        .cancel_second_factor(&posted.signed.session)
        .await?;
    Ok(to("/admin/account", "cancelled"))
}

async fn totp_code(
    state: AppState,
    ip: Option<std::net::IpAddr>,
    posted: Posted<CodeForm>,
    enrol: bool,
) -> Page {
    let Posted { signed, form } = posted;
    let ip = ip_text(ip);
    let checked = match enrol {
        true => {
            state
                .app
                .confirm_second_factor(&signed.session, &form.code, ip.as_deref())
                .await?
        }
        false => {
            state
                .app
                .disable_second_factor(&signed.session, &form.code, ip.as_deref())
                .await?
        }
    };
    match checked {
        Checked::Accepted => Ok(to(
            "/admin/account",
            if enrol { "totp-on" } else { "totp-off" },
        )),
        other => {
            let (status, message) = checked_status(other);
            let message = match other {
                Checked::Refused => {
                    "That code is not right, or was used already. Type the code your app shows now."
                }
                _ => message,
            };
            let errors = AccountErrors {
                totp: Some(message),
                ..Default::default()
            };
            account_refused(&state, &signed, status, errors).await
        }
    }
}

pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    posted: Posted<CodeForm>,
) -> Page {
    totp_code(state, ip, posted, true).await
}

pub(super) async fn totp_disable(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    posted: Posted<CodeForm>,
) -> Page {
    totp_code(state, ip, posted, false).await
}

// --- Sessions ---

pub(super) async fn sessions(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<Done>,
) -> Page {
    let list = state
        .app
        .console_sessions_of(&signed.session, &signed.secret)
        .await?;
    Ok(html(account_pages::sessions(
        &signed.session,
        &list,
        q.done.as_deref(),
    )))
}

#[derive(Deserialize)]
pub(super) struct EndForm {
    #[serde(default)]
    session: String,
}

pub(super) async fn end_session(State(state): State<AppState>, posted: Posted<EndForm>) -> Page {
    state
        .app
        .end_console_session(&posted.signed.session, &posted.form.session)
        .await?;
    Ok(to("/admin/account/sessions", "ended"))
}

pub(super) async fn end_other_sessions(
    State(state): State<AppState>,
    posted: Posted<Empty>,
) -> Page {
    state
        .app
        .end_other_console_sessions(&posted.signed.session, &posted.signed.secret)
        .await?;
    Ok(to("/admin/account/sessions", "others-ended"))
}

// --- Users (owners) ---

#[derive(Deserialize)]
pub(super) struct UsersQuery {
    after: Option<String>,
    done: Option<String>,
}

async fn users_page(
    state: &AppState,
    signed: &Signed,
    after: Option<String>,
    done: Option<&str>,
    error: Option<&str>,
) -> Result<maud::Markup, Problem> {
    let page = state
        .app
        .console_users(
            &signed.session,
            &PageRequest {
                cursor: after,
                limit: None,
            },
        )
        .await?;
    let products = state.app.products(&signed.session.principal).await?;
    let audit = state.app.console_audit_log(&signed.session, 20).await?;
    Ok(account_pages::users(
        &signed.session,
        &page,
        &products,
        &audit,
        done,
        error,
    ))
}

pub(super) async fn users(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<UsersQuery>,
) -> Page {
    let page = users_page(&state, &signed, q.after, q.done.as_deref(), None).await?;
    Ok(html(page))
}

/// The product a form chose: empty is all products.
fn product_of(text: &str) -> Result<Option<i64>, Problem> {
    match text.trim() {
        "" => Ok(None),
        id => id
            .parse()
            .map(Some)
            .map_err(|_| Problem::Invalid("product: must be a product id".into())),
    }
}

fn role_of(text: &str) -> Result<Role, Problem> {
    text.parse::<Role>()
        .map_err(|e| Problem::Invalid(format!("{}: {}", e.field, e.message)))
}

#[derive(Deserialize)]
pub(super) struct NewUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    posted: Posted<NewUserForm>,
) -> Page {
    let Posted { signed, form } = posted;
    let role = role_of(&form.role)?;
    let product = product_of(&form.product)?;
    match state
        .app
        .add_console_user(&signed.session, &form.email, &form.password, role, product)
        .await
    {
        Ok(_) => Ok(to("/admin/users", "created")),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            let message = e.to_string();
            let page = users_page(&state, &signed, None, None, Some(&message)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html(page)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn id_of(path: Result<Path<i64>, PathRejection>) -> Result<i64, Problem> {
    path.map(|Path(id)| id)
        .map_err(|_| Problem::Status(StatusCode::NOT_FOUND, "no such page".into()))
}

pub(super) async fn user(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<Done>,
) -> Page {
    let id = id_of(path)?;
    let user = state.app.console_user(&signed.session, id).await?;
    let products = state.app.products(&signed.session.principal).await?;
    Ok(html(account_pages::user(
        &signed.session,
        &user,
        &products,
        q.done.as_deref(),
    )))
}

#[derive(Deserialize)]
pub(super) struct AccessForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    product: String,
}

pub(super) async fn user_access(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<AccessForm>,
) -> Page {
    let id = id_of(path)?;
    let role = role_of(&posted.form.role)?;
    let product = product_of(&posted.form.product)?;
    state
        .app
        .change_console_user(&posted.signed.session, id, role, product)
        .await?;
    Ok(to(&format!("/admin/users/{id}"), "changed"))
}

pub(super) async fn user_disable(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Page {
    let id = id_of(path)?;
    state
        .app
        .set_console_user_disabled(&posted.signed.session, id, true)
        .await?;
    Ok(to(&format!("/admin/users/{id}"), "disabled"))
}

pub(super) async fn user_enable(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Page {
    let id = id_of(path)?;
    state
        .app
        .set_console_user_disabled(&posted.signed.session, id, false)
        .await?;
    Ok(to(&format!("/admin/users/{id}"), "enabled"))
}

pub(super) async fn user_reset(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Page {
    let id = id_of(path)?;
    state
        .app
        .reset_console_user_second_factor(&posted.signed.session, id)
        .await?;
    Ok(to(&format!("/admin/users/{id}"), "reset"))
}
