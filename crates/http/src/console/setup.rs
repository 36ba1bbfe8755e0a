//! The set-up pages a developer uses before selling: products (with their public keys and
//! code to use them), plans, access tokens, payment forms, license URLs, and the status of
//! the payment providers. Each handler parses, calls one use case as the signed-in user and
//! renders [`setup_pages`] or redirects to the page that shows the change.
//!
//! A secret made here (an access token, a license URL) is shown once, on the page the
//! creation redirects to, and never put in a URL: the creating answer hands it to the browser
//! in a short-lived `HttpOnly` cookie scoped to the console ([`reveal_cookie`]), and the page
//! that shows it clears that cookie in the same answer. Another visit finds no cookie and says
//! the secret cannot be shown again. Nothing but the browser that created it ever holds it,
//! and every node can show it (no server-side state).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use keyturn_app::{
    ConsoleSession, LicenseUrlPatch, NewLicenseUrl, NewPaymentForm, NewPlanInput, NewProductInput,
    NewTokenInput, PageRequest, PaymentFormPatch, PlanPatch, ProductPatch, MAX_PAGE,
};
use keyturn_core::payment::{CancelRule, DunningRule, Offer, OfferMode, QuantityMode};
use keyturn_core::{BuyerRulesPatch, Permission, Plan};
use serde::Deserialize;

use super::handlers::Empty;
use super::setup_pages::{self as pages, Reveal, Stores};
use super::{cookie_value, Posted, Problem, Signed};
use crate::AppState;

type Reply = Result<Response, Problem>;

/// The cookie that carries a new secret from its creation to the one page that shows it.
const REVEAL_COOKIE: &str = "keyturn_console_reveal";
/// How long a new secret waits in the browser for its page.
const REVEAL_SECONDS: u32 = 300;

fn html(markup: maud::Markup) -> Response {
    super::handlers::html(markup)
}

fn to(path: String) -> Reply {
    Ok(Redirect::to(&path).into_response())
}

pub(super) fn id_of(path: Result<Path<i64>, PathRejection>) -> Result<i64, Problem> {
    path.map(|Path(id)| id)
        .map_err(|_| Problem::Status(StatusCode::NOT_FOUND, "no such page".into()))
}

/// The page a listing starts at.
fn page_at(after: Option<String>) -> PageRequest {
    PageRequest {
        cursor: after,
        limit: None,
    }
}

/// Every row a chooser (a select of products or plans) offers, bounded by the largest page.
pub(super) fn chooser() -> PageRequest {
    PageRequest {
        cursor: None,
        limit: Some(MAX_PAGE),
    }
}

/// A new secret on its way to the page that shows it: what it is (`token`, `url`), which
/// one, and the session it was made in.
pub(super) struct Pending<'a> {
    pub kind: &'a str,
    pub id: i64,
    pub session: &'a ConsoleSession,
}

impl Pending<'_> {
    /// What ties the cookie to the session that made the secret: another user signing in on
    /// the same browser before the page was shown does not see it. (A prefix of the session's
    /// CSRF token, which is itself a hash of the session's secret.)
    fn prefix(&self) -> String {
        let tag = self.session.csrf.get(..16).unwrap_or(&self.session.csrf);
        format!("{}.{}.{tag}.", self.kind, self.id)
    }
}

/// `Set-Cookie` for a new secret, or (`None`) to clear the one pending.
pub(super) fn reveal_cookie(state: &AppState, value: Option<(&Pending<'_>, &str)>) -> HeaderValue {
    let secure = if super::secure(state) { "; Secure" } else { "" };
    let (value, age) = match value {
        Some((pending, secret)) => (format!("{}{secret}", pending.prefix()), REVEAL_SECONDS),
        None => (String::new(), 0),
    };
    HeaderValue::from_str(&format!(
        "{REVEAL_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={age}{secure}"
    ))
    .expect("secrets are URL-safe base64")
}

/// The pending secret the browser brought, if it brought this one.
pub(super) fn revealed(headers: &HeaderMap, pending: &Pending<'_>) -> Option<String> {
    let value = cookie_value(headers, REVEAL_COOKIE)?;
    value
        .strip_prefix(&pending.prefix())
        .filter(|secret| !secret.is_empty())
        .map(str::to_owned)
}

/// A page that shows a new secret once: it clears the cookie that brought it.
pub(super) fn showing_once(state: &AppState, markup: maud::Markup) -> Response {
    let mut response = html(markup);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, reveal_cookie(state, None));
    response
}

/// The address programs reach this server at, for the code shown on a product page: the
/// configured public address, or else the one this page was asked for (`false`: a guess).
fn server_address(state: &AppState, headers: &HeaderMap) -> (String, bool) {
    if let Some(url) = &state.settings.public_url {
        return (url.trim_end_matches('/').to_owned(), true);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost:8080");
    let scheme = if state.settings.tls { "https" } else { "http" };
    (format!("{scheme}://{host}"), false)
}

/// A posted form as its fields, in order, repeated names (checkboxes, offer rows) kept.
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed ("" when absent).
    pub(super) fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The value of `name` when given and not blank.
    pub(super) fn given(&self, name: &str) -> Option<String> {
        Some(self.text(name))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The text of `name` as typed (line breaks as `\n`), for multi-line fields.
    fn multiline(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or(String::new(), |(_, v)| v.replace("\r\n", "\n"))
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A checkbox: ticked when sent at all.
    pub(super) fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The non-blank lines of a text area, each trimmed.
    fn lines(&self, name: &str) -> Vec<String> {
        self.multiline(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A whole number, or `None` when blank.
    pub(super) fn number(&self, name: &str) -> Result<Option<i64>, Problem> {
        match self.text(name) {
            "" => Ok(None),
            n => n
                .parse()
                .map(Some)
                .map_err(|_| Problem::Invalid(format!("{name}: must be a whole number"))),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct DoneQuery {
    pub(super) done: Option<String>,
}

pub(super) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.js"),
    )
        .into_response()
}

// Products.

pub(super) async fn products(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Reply {
    let found = state
        .app
        .products_page(&signed.session.principal, &page_at(q.after))
        .await?;
    Ok(html(pages::products(
        &signed.session,
        &found,
        q.done.as_deref(),
    )))
}

pub(super) async fn new_product(signed: Signed) -> Reply {
    signed
        .session
        .principal
        .require_unrestricted(Permission::ProductsWrite)?;
    Ok(html(pages::product_form(&signed.session, None)))
}

/// The product fields of a posted form.
fn product_input(f: &Fields) -> NewProductInput {
    NewProductInput {
        name: f.text("name").to_owned(),
        description: f.multiline("description"),
        features: f.lines("features"),
        public_notes: f.checked("public_notes"),
        public_metadata: f.lines("public_metadata"),
        block_expired_licenses: f.checked("block_expired_licenses"),
    }
}

pub(super) async fn create_product(State(state): State<AppState>, posted: Posted<Fields>) -> Reply {
    let product = state
        .app
        .create_product(
            &posted.signed.session.principal,
            product_input(&posted.form),
        )
        .await?;
    to(format!("/admin/products/{}?done=created", product.id))
}

pub(super) async fn product(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<DoneQuery>,
    headers: HeaderMap,
) -> Reply {
    let id = id_of(path)?;
    let principal = &signed.session.principal;
    let keys = state.app.product_keys(principal, id).await?;
    let plans = if principal.holds(Permission::PlansRead) {
        Some(
            state
                .app
                .plans_page(principal, Some(id), &PageRequest::default())
                .await?,
        )
    } else {
        None
    };
    let server = server_address(&state, &headers);
    Ok(html(pages::product(
        &signed.session,
        &keys,
        plans.as_ref(),
        &server,
        q.done.as_deref(),
    )))
}

pub(super) async fn edit_product(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
) -> Reply {
    let id = id_of(path)?;
    let principal = &signed.session.principal;
    principal.require_for(Permission::ProductsWrite, id)?;
    let product = state.app.product(principal, id).await?;
    Ok(html(pages::product_form(&signed.session, Some(&product))))
}

pub(super) async fn update_product(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let input = product_input(&posted.form);
    let patch = ProductPatch {
        name: Some(input.name),
        description: Some(input.description),
        features: Some(input.features),
        public_notes: Some(input.public_notes),
        public_metadata: Some(input.public_metadata),
        block_expired_licenses: Some(input.block_expired_licenses),
    };
    state
        .app
        .update_product(&posted.signed.session.principal, id, patch)
        .await?;
    to(format!("/admin/products/{id}?done=saved"))
}

// Plans.

#[derive(Deserialize)]
pub(super) struct PlansQuery {
    product: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

/// A product id from a query, `None` when not given.
fn product_param(product: Option<&str>) -> Result<Option<i64>, Problem> {
    match product.map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) => p
            .parse()
            .map(Some)
            .map_err(|_| Problem::Invalid("product: must be a product id".into())),
    }
}

pub(super) async fn plans(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<PlansQuery>,
) -> Reply {
    let principal = &signed.session.principal;
    let product = product_param(q.product.as_deref())?;
    let found = state
        .app
        .plans_page(principal, product, &page_at(q.after))
        .await?;
    let products = state.app.products_page(principal, &chooser()).await?;
    Ok(html(pages::plans(
        &signed.session,
        &found,
        &products.data,
        product,
        q.done.as_deref(),
    )))
}

#[derive(Deserialize)]
pub(super) struct NewPlanQuery {
    product: Option<String>,
}

pub(super) async fn new_plan(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<NewPlanQuery>,
) -> Reply {
    let principal = &signed.session.principal;
    principal.require(Permission::PlansWrite)?;
    match product_param(q.product.as_deref())? {
        Some(id) => {
            let product = state.app.product(principal, id).await?;
            Ok(html(pages::new_plan(&signed.session, &product)))
        }
        None => {
            let products = state.app.products_page(principal, &chooser()).await?;
            Ok(html(pages::choose_product(
                &signed.session,
                "New plan",
                "/admin/plans/new",
                &products.data,
            )))
        }
    }
}

/// A plan's store product ids from the per-store fields (`paddle_ids`, …) and `other_ids`.
fn store_ids(f: &Fields) -> Vec<String> {
    let mut ids = Vec::new();
    for (store, _) in pages::STORES {
        for id in f.lines(&format!("{store}_ids")) {
            let id = id.strip_prefix(&format!("{store}:")).unwrap_or(&id).trim();
            ids.push(format!("{store}:{id}"));
        }
    }
    ids.extend(f.lines("other_ids"));
    ids
}

/// A choice among fixed values, by the name each is sent as.
fn choice<T>(f: &Fields, name: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, Problem> {
    match f.text(name) {
        "" => Ok(None),
        v => parse(v)
            .map(Some)
            .ok_or_else(|| Problem::Invalid(format!("{name}: {v:?} is not one of the choices"))),
    }
}

/// The portal self-service settings of the plan form, which always shows all of them: an
/// unticked box is a setting turned off.
fn buyer_rules(f: &Fields) -> Result<BuyerRulesPatch, Problem> {
    Ok(BuyerRulesPatch {
        buyers_may_free_machines: Some(f.checked("buyers_may_free_machines")),
        buyer_frees_max: f.number("buyer_frees_max")?,
        buyer_frees_days: f.number("buyer_frees_days")?,
        buyers_may_download_files: Some(f.checked("buyers_may_download_files")),
        buyer_file_days: f.number("buyer_file_days")?,
    })
}

pub(super) async fn create_plan(State(state): State<AppState>, posted: Posted<Fields>) -> Reply {
    let f = &posted.form;
    let product_id = f
        .number("product_id")?
        .ok_or_else(|| Problem::Invalid("product_id: choose a product".into()))?;
    let input = NewPlanInput {
        product_id,
        name: f.text("name").to_owned(),
        period_days: f.number("period_days")?,
        features: f.all("features").map(str::to_owned).collect(),
        max_machines: f.number("max_machines")?.unwrap_or(0),
        floating_lease_seconds: f.number("floating_lease_seconds")?,
        trial: f.checked("trial"),
        grace_days: f.number("grace_days")?,
        stripe_price_ids: f.lines("stripe_price_ids"),
        store_product_ids: store_ids(f),
        quantity_mode: choice(f, "quantity_mode", QuantityMode::parse)?.unwrap_or_default(),
        dunning: choice(f, "dunning", DunningRule::parse)?.unwrap_or_default(),
        on_cancel: choice(f, "on_cancel", CancelRule::parse)?.unwrap_or_default(),
        buyers: buyer_rules(f)?,
        // Set through the API (PATCH /v1/plans/{id}); the console's plan form leaves it.
        expiry_reminder_days: None,
    };
    let plan = state
        .app
        .create_plan(&posted.signed.session.principal, input)
        .await?;
    to(format!("/admin/plans/{}?done=created", plan.id))
}

pub(super) async fn plan(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<DoneQuery>,
) -> Reply {
    let id = id_of(path)?;
    let principal = &signed.session.principal;
    let plan = state.app.plan(principal, id).await?;
    let product = state.app.product(principal, plan.product_id).await?;
    Ok(html(pages::plan(
        &signed.session,
        &plan,
        &product,
        &Stores::of(&plan),
        q.done.as_deref(),
    )))
}

pub(super) async fn update_plan(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let f = &posted.form;
    let patch = PlanPatch {
        name: Some(f.text("name").to_owned()),
        grace_days: f.number("grace_days")?,
        stripe_price_ids: Some(f.lines("stripe_price_ids")),
        store_product_ids: Some(store_ids(f)),
        quantity_mode: choice(f, "quantity_mode", QuantityMode::parse)?,
        dunning: choice(f, "dunning", DunningRule::parse)?,
        on_cancel: choice(f, "on_cancel", CancelRule::parse)?,
        buyers: buyer_rules(f)?,
        expiry_reminder_days: None,
    };
    state
        .app
        .update_plan(&posted.signed.session.principal, id, patch)
        .await?;
    to(format!("/admin/plans/{id}?done=saved"))
}

// Access tokens.

pub(super) async fn tokens(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Reply {
    let found = state
        .app
        .tokens_page(&signed.session.principal, &page_at(q.after))
        .await?;
    Ok(html(pages::tokens(
        &signed.session,
        &found,
        q.done.as_deref(),
    )))
}

pub(super) async fn new_token(State(state): State<AppState>, signed: Signed) -> Reply {
    let principal = &signed.session.principal;
    principal.require_unrestricted(Permission::TokensManage)?;
    let products = state.app.products_page(principal, &chooser()).await?;
    Ok(html(pages::new_token(&signed.session, &products.data)))
}

pub(super) async fn create_token(State(state): State<AppState>, posted: Posted<Fields>) -> Reply {
    let f = &posted.form;
    let permissions = f
        .all("permissions")
        .map(|p| p.parse::<Permission>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::Invalid(e.to_string()))?;
    let expires = match f.number("expires_days")? {
        None => None,
        Some(days) if (1..=36_500).contains(&days) => Some(Utc::now() + Duration::days(days)),
        Some(_) => {
            return Err(Problem::Invalid(
                "expires_days: must be between 1 and 36500".into(),
            ))
        }
    };
    let input = NewTokenInput {
        name: f.text("name").to_owned(),
        permissions,
        product_id: f.number("product_id")?,
        key_lock: f.number("key_lock")?,
        feature_lock: f.number("feature_lock")?.unwrap_or(0),
        expires,
    };
    let (token, secret) = state
        .app
        .create_token(&posted.signed.session.principal, input)
        .await?;
    let mut response = Redirect::to(&format!("/admin/tokens/{}/created", token.id)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        reveal_cookie(
            &state,
            Some((
                &Pending {
                    kind: "token",
                    id: token.id,
                    session: &posted.signed.session,
                },
                secret.expose(),
            )),
        ),
    );
    Ok(response)
}

pub(super) async fn token_created(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    headers: HeaderMap,
) -> Reply {
    let id = id_of(path)?;
    let token = state.app.token(&signed.session.principal, id).await?;
    let pending = Pending {
        kind: "token",
        id,
        session: &signed.session,
    };
    let secret = revealed(&headers, &pending);
    Ok(showing_once(
        &state,
        pages::token_created(&signed.session, &token, secret.as_deref()),
    ))
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    let id = id_of(path)?;
    state
        .app
        .revoke_token(&posted.signed.session.principal, id)
        .await?;
    to("/admin/tokens?done=revoked".into())
}

// Payment forms.

pub(super) async fn forms(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Reply {
    let found = state
        .app
        .payment_forms_page(&signed.session.principal, &page_at(q.after))
        .await?;
    Ok(html(pages::forms(
        &signed.session,
        &found,
        q.done.as_deref(),
    )))
}

/// The plans of `product_id` a form can offer.
async fn product_plans(
    state: &AppState,
    signed: &Signed,
    product_id: i64,
) -> Result<Vec<Plan>, Problem> {
    Ok(state
        .app
        .plans_page(&signed.session.principal, Some(product_id), &chooser())
        .await?
        .data)
}

pub(super) async fn new_form(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<NewPlanQuery>,
) -> Reply {
    let principal = &signed.session.principal;
    principal.require_unrestricted(Permission::PaymentsWrite)?;
    match product_param(q.product.as_deref())? {
        Some(id) => {
            let product = state.app.product(principal, id).await?;
            let plans = product_plans(&state, &signed, id).await?;
            let setup = crate::routes::forms::payment_setup(&state);
            Ok(html(pages::new_form(
                &signed.session,
                &product,
                &plans,
                setup,
            )))
        }
        None => {
            let products = state.app.products_page(principal, &chooser()).await?;
            Ok(html(pages::choose_product(
                &signed.session,
                "New payment form",
                "/admin/forms/new",
                &products.data,
            )))
        }
    }
}

/// The offers of a posted form: rows `offer0_plan`, `offer0_label`, … up to the last row
/// shown; a row without a plan is left out.
fn offers(f: &Fields) -> Result<Vec<Offer>, Problem> {
    let mut out = Vec::new();
    for i in 0..pages::OFFER_ROWS_MAX {
        let field = |name: &str| format!("offer{i}_{name}");
        let Some(plan_id) = f.number(&field("plan"))? else {
            continue;
        };
        out.push(Offer {
            plan_id,
            label: f.text(&field("label")).to_owned(),
            price: f.text(&field("price")).to_owned(),
            stripe_price_id: f.text(&field("stripe_price_id")).to_owned(),
            mode: choice(f, &field("mode"), OfferMode::parse)?.unwrap_or_default(),
            paypal_amount: f.given(&field("paypal_amount")),
            currency: f.given(&field("currency")).map(|c| c.to_uppercase()),
        });
    }
    Ok(out)
}

pub(super) async fn create_form(State(state): State<AppState>, posted: Posted<Fields>) -> Reply {
    let f = &posted.form;
    let product_id = f
        .number("product_id")?
        .ok_or_else(|| Problem::Invalid("product_id: choose a product".into()))?;
    let input = NewPaymentForm {
        name: f.text("name").to_owned(),
        product_id,
        offers: offers(f)?,
        description: Some(f.multiline("description")),
        tax_note: Some(f.text("tax_note").to_owned()),
        success_text: Some(f.multiline("success_text")).filter(|t| !t.trim().is_empty()),
        email_subject: f.given("email_subject"),
        email_body: Some(f.multiline("email_body")).filter(|t| !t.trim().is_empty()),
    };
    let form = state
        .app
        .create_payment_form(
            &posted.signed.session.principal,
            input,
            crate::routes::forms::payment_setup(&state),
        )
        .await?;
    to(format!("/admin/forms/{}?done=created", form.id))
}

pub(super) async fn form(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<DoneQuery>,
    headers: HeaderMap,
) -> Reply {
    let id = id_of(path)?;
    let principal = &signed.session.principal;
    let form = state.app.payment_form(principal, id).await?;
    let product = state.app.product(principal, form.product_id).await?;
    let plans = product_plans(&state, &signed, form.product_id).await?;
    let (server, _) = server_address(&state, &headers);
    Ok(html(pages::form(
        &signed.session,
        &form,
        &product,
        &plans,
        &server,
        q.done.as_deref(),
    )))
}

pub(super) async fn update_form(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let f = &posted.form;
    let patch = PaymentFormPatch {
        name: Some(f.text("name").to_owned()),
        offers: Some(offers(f)?),
        description: Some(f.multiline("description")),
        tax_note: Some(f.text("tax_note").to_owned()),
        success_text: Some(f.multiline("success_text")),
        email_subject: Some(f.text("email_subject").to_owned()),
        email_body: Some(f.multiline("email_body")),
    };
    state
        .app
        .update_payment_form(
            &posted.signed.session.principal,
            id,
            patch,
            crate::routes::forms::payment_setup(&state),
        )
        .await?;
    to(format!("/admin/forms/{id}?done=saved"))
}

// License URLs.

pub(super) async fn license_urls(
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Reply {
    let found = state
        .app
        .license_urls_page(&signed.session.principal, &page_at(q.after))
        .await?;
    Ok(html(pages::license_urls(
        &signed.session,
        &found,
        q.done.as_deref(),
    )))
}

pub(super) async fn new_license_url(State(state): State<AppState>, signed: Signed) -> Reply {
    let principal = &signed.session.principal;
    principal.require_unrestricted(Permission::PaymentsWrite)?;
    let plans = state.app.plans_page(principal, None, &chooser()).await?;
    Ok(html(pages::new_license_url(&signed.session, &plans.data)))
}

/// The parameter names of a posted license URL form, `None` where left blank (the store's
/// default when creating, unchanged when editing).
fn param(f: &Fields, name: &str) -> Option<String> {
    f.given(name)
}

pub(super) async fn create_license_url(
    State(state): State<AppState>,
    posted: Posted<Fields>,
) -> Reply {
    let f = &posted.form;
    let input = NewLicenseUrl {
        plan_id: f
            .number("plan_id")?
            .ok_or_else(|| Problem::Invalid("plan_id: choose a plan".into()))?,
        name: f.text("name").to_owned(),
        store: f.text("store").to_owned(),
        order_id_param: param(f, "order_id_param"),
        name_param: param(f, "name_param"),
        email_param: param(f, "email_param"),
        quantity_param: param(f, "quantity_param"),
        item_param: param(f, "item_param"),
        email_buyer: f.checked("email_buyer"),
    };
    let made = state
        .app
        .create_license_url(&posted.signed.session.principal, input)
        .await?;
    reveal_url(
        &state,
        &posted.signed.session,
        made.url.id,
        &made.path,
        "created",
    )
}

/// Redirects to a license URL's page, handing it the URL's new secret to show once.
fn reveal_url(
    state: &AppState,
    session: &ConsoleSession,
    id: i64,
    path: &str,
    done: &str,
) -> Reply {
    let secret = path.rsplit('/').next().unwrap_or_default();
    let mut response =
        Redirect::to(&format!("/admin/license-urls/{id}?done={done}")).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        reveal_cookie(
            state,
            Some((
                &Pending {
                    kind: "url",
                    id,
                    session,
                },
                secret,
            )),
        ),
    );
    Ok(response)
}

pub(super) async fn license_url(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(q): Query<DoneQuery>,
    headers: HeaderMap,
) -> Reply {
    let id = id_of(path)?;
    let principal = &signed.session.principal;
    let url = state.app.license_url(principal, id).await?;
    let plans = state.app.plans_page(principal, None, &chooser()).await?;
    let (server, _) = server_address(&state, &headers);
    let pending = Pending {
        kind: "url",
        id,
        session: &signed.session,
    };
    let secret = revealed(&headers, &pending);
    let reveal = Reveal {
        server: &server,
        secret: secret.as_deref(),
    };
    Ok(showing_once(
        &state,
        pages::license_url(
            &signed.session,
            &url,
            &plans.data,
            &reveal,
            q.done.as_deref(),
        ),
    ))
}

pub(super) async fn update_license_url(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Fields>,
) -> Reply {
    let id = id_of(path)?;
    let f = &posted.form;
    let patch = LicenseUrlPatch {
        name: Some(f.text("name").to_owned()),
        plan_id: f.number("plan_id")?,
        order_id_param: param(f, "order_id_param"),
        name_param: param(f, "name_param"),
        email_param: param(f, "email_param"),
        quantity_param: param(f, "quantity_param"),
        item_param: param(f, "item_param"),
        email_buyer: Some(f.checked("email_buyer")),
    };
    state
        .app
        .update_license_url(&posted.signed.session.principal, id, patch)
        .await?;
    to(format!("/admin/license-urls/{id}?done=saved"))
}

pub(super) async fn rotate_license_url(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    let id = id_of(path)?;
    let made = state
        .app
        .rotate_license_url(&posted.signed.session.principal, id)
        .await?;
    reveal_url(&state, &posted.signed.session, id, &made.path, "rotated")
}

pub(super) async fn delete_license_url(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    posted: Posted<Empty>,
) -> Reply {
    let id = id_of(path)?;
    state
        .app
        .delete_license_url(&posted.signed.session.principal, id)
        .await?;
    to("/admin/license-urls?done=deleted".into())
}

// Payment providers.

/// The providers whose deliveries the status page follows, by the name their events carry.
pub(super) const PROVIDERS: [&str; 7] = [
    "stripe",
    "paypal",
    "paddle",
    "lemonsqueezy",
    "fastspring",
    "gumroad",
    "license_url",
];

pub(super) async fn providers(State(state): State<AppState>, signed: Signed) -> Reply {
    let status = state
        .app
        .provider_status(&signed.session.principal, &PROVIDERS)
        .await?;
    Ok(html(pages::providers(
        &signed.session,
        &status,
        &configured(&state),
    )))
}

/// Whether each provider is set up, from the server's settings (never a secret).
fn configured(state: &AppState) -> pages::Configured {
    let p = &state.providers;
    pages::Configured {
        public_url: state.settings.public_url.clone(),
        stripe_webhook: p.stripe.is_some(),
        stripe_api: p.stripe.as_ref().is_some_and(|s| s.api().is_some()),
        paypal: p.paypal.is_some(),
        paddle: p.stores.paddle.len(),
        lemonsqueezy: p.stores.lemonsqueezy.len(),
        fastspring: p.stores.fastspring.len(),
        gumroad: p.stores.gumroad.is_some(),
        email_buyers: p.stores.email_buyers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn a_reveal_cookie_shows_only_its_own_secret_to_its_session() {
        let session = |csrf: &str| ConsoleSession {
            user: keyturn_core::ConsoleUser {
                id: 1,
                email: "dev@example.com".into(),
                role: keyturn_core::Role::Admin,
                product_id: None,
                created: Utc::now(),
                disabled: false,
            },
            principal: keyturn_app::Principal::cli(),
            csrf: csrf.into(),
        };
        let mine = session("0123456789abcdef0123");
        let other = session("fedcba98765432100123");
        let at = |kind, id, session| Pending { kind, id, session };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "a=b; keyturn_console_reveal=token.12.0123456789abcdef.kt_abc-DEF_1",
            ),
        );
        assert_eq!(
            revealed(&headers, &at("token", 12, &mine)).as_deref(),
            Some("kt_abc-DEF_1")
        );
        assert_eq!(
            revealed(&headers, &at("token", 1, &mine)),
            None,
            "another token"
        );
        assert_eq!(
            revealed(&headers, &at("token", 120, &mine)),
            None,
            "another token"
        );
        assert_eq!(
            revealed(&headers, &at("url", 12, &mine)),
            None,
            "another kind"
        );
        assert_eq!(
            revealed(&headers, &at("token", 12, &other)),
            None,
            "another session"
        );
        assert_eq!(revealed(&HeaderMap::new(), &at("token", 12, &mine)), None);
    }

    #[test]
    fn store_ids_get_their_store_prefix_once() {
        let f = fields(&[
            ("paddle_ids", "pri_1\r\n paddle:pri_2 \n\n"),
            ("gumroad_ids", "abc"),
            ("other_ids", "custom:9"),
        ]);
        assert_eq!(
            store_ids(&f),
            ["paddle:pri_1", "paddle:pri_2", "gumroad:abc", "custom:9"]
        );
    }

    #[test]
    fn offer_rows_without_a_plan_are_left_out() {
        let f = fields(&[
            ("offer0_plan", "3"),
            ("offer0_label", "Pro"),
            ("offer0_price", "€49"),
            ("offer0_mode", "subscription"),
            ("offer0_currency", "eur"),
            ("offer1_plan", ""),
            ("offer1_label", "ignored"),
        ]);
        let made = offers(&f).unwrap();
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].plan_id, 3);
        assert_eq!(made[0].mode, OfferMode::Subscription);
        assert_eq!(made[0].currency.as_deref(), Some("EUR"));
        assert_eq!(made[0].paypal_amount, None);
        assert!(offers(&fields(&[("offer0_plan", "x")])).is_err());
    }

    #[test]
    fn numbers_are_whole_or_blank() {
        let f = fields(&[("a", " 5 "), ("b", ""), ("c", "5.5")]);
        assert_eq!(f.number("a").unwrap(), Some(5));
        assert_eq!(f.number("b").unwrap(), None);
        assert_eq!(f.number("missing").unwrap(), None);
        assert!(f.number("c").is_err());
    }
}
