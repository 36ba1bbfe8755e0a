//! The console's sales pages: issue licenses from a plan for a new or existing customer (the
//! keys shown after the redirect, and mailed through the outbox on request), the license list
//! with its filters, the customers with their licenses and payments, and CSV downloads of the
//! lists. Handlers parse, call one use case as the signed-in user, and render or redirect.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::{NaiveDate, TimeZone, Utc};
use keyturn_app::{
    App, CustomerChoice, IssueRequest, LicenseQuery, NewCustomerInput, PageRequest, Principal,
};
use keyturn_core::{Customer, License, LicenseStatus, Plan, Product};
use serde::Deserialize;

use super::{csv, sales_pages, Posted, Problem, Signed};
use crate::AppState;

type Page = Result<Response, Problem>;

/// Rows a CSV download reads per page (the most a listing returns).
const CSV_PAGE: i64 = keyturn_app::MAX_PAGE;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/issue", get(issue_form).post(issue))
        .route("/admin/issued", get(issued))
        .route("/admin/licenses", get(licenses))
        .route("/admin/licenses.csv", get(licenses_csv))
        .route("/admin/customers", get(customers))
        .route("/admin/customers.csv", get(customers_csv))
        .route("/admin/customers/{id}", get(customer))
}

fn html(markup: maud::Markup) -> Response {
    axum::response::Html(markup.into_string()).into_response()
}

/// A page that shows license keys: kept out of caches (its address holds ids only, so the
/// console's same-origin referrer policy gives nothing away).
fn keys_page(markup: maud::Markup) -> Response {
    let mut response = html(markup);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn number(field: &str, text: &str) -> Result<Option<i64>, Problem> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse()
            .map(Some)
            .map_err(|_| Problem::Invalid(format!("{field}: must be a whole number"))),
    }
}

fn yes_no(field: &str, text: &str) -> Result<Option<bool>, Problem> {
    match text.trim() {
        "" => Ok(None),
        "yes" => Ok(Some(true)),
        "no" => Ok(Some(false)),
        _ => Err(Problem::Invalid(format!("{field}: must be yes or no"))),
    }
}

/// The products the user may see, for showing names; none when they may not read products.
async fn products(app: &App, principal: &Principal) -> Vec<Product> {
    app.products(principal).await.unwrap_or_default()
}

/// The filters of the license list, as the form sends them (empty: any).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct LicenseFilters {
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub customer: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub blocked: String,
    #[serde(default)]
    pub trial: String,
    #[serde(default)]
    pub expires_before: String,
    pub after: Option<String>,
}

impl LicenseFilters {
    fn query(&self, limit: Option<i64>) -> Result<LicenseQuery, Problem> {
        let expires_before = match self.expires_before.trim() {
            "" => None,
            day => {
                let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
                    Problem::Invalid("expires_before: must be a date (YYYY-MM-DD)".into())
                })?;
                date.and_hms_opt(0, 0, 0)
                    .map(|at| Utc.from_utc_datetime(&at))
            }
        };
        Ok(LicenseQuery {
            product_id: number("product", &self.product)?,
            customer_id: number("customer", &self.customer)?,
            email: Some(self.email.trim().to_owned()).filter(|e| !e.is_empty()),
            blocked: yes_no("blocked", &self.blocked)?,
            trial: yes_no("trial", &self.trial)?,
            expires_before,
            page: PageRequest {
                cursor: self.after.clone(),
                limit,
            },
        })
    }

    /// The filters as a query string (without the cursor), for links to more of the list.
    pub fn query_string(&self) -> String {
        serde_urlencoded::to_string([
            ("product", self.product.trim()),
            ("customer", self.customer.trim()),
            ("email", self.email.trim()),
            ("blocked", self.blocked.trim()),
            ("trial", self.trial.trim()),
            ("expires_before", self.expires_before.trim()),
        ])
        .unwrap_or_default()
    }
}

async fn licenses(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<LicenseFilters>,
) -> Page {
    let principal = &signed.session.principal;
    let found = state
        .app
        .license_list(principal, filters.query(None)?)
        .await?;
    let products = products(&state.app, principal).await;
    Ok(html(sales_pages::licenses(
        &signed.session,
        &filters,
        &found,
        &products,
    )))
}

const LICENSE_COLUMNS: [&str; 15] = [
    "id",
    "key",
    "product_id",
    "plan_id",
    "customer_id",
    "customer_name",
    "customer_email",
    "status",
    "trial",
    "created",
    "expires",
    "max_machines",
    "features",
    "notes",
    "metadata",
];

/// A license of a download with its customer (when the user may see customers).
type LicenseRow = (License, Option<Customer>);

fn with_customers(listed: keyturn_app::Listed<License>) -> keyturn_app::Page<LicenseRow> {
    let rows = listed
        .page
        .data
        .iter()
        .map(|l| (l.clone(), listed.customer(l.customer_id).cloned()))
        .collect();
    keyturn_app::Page {
        data: rows,
        next_cursor: listed.page.next_cursor.clone(),
    }
}

fn license_row((l, customer): &LicenseRow) -> Vec<String> {
    let status = LicenseStatus::of(l, Utc::now());
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    vec![
        l.id.to_string(),
        l.key.clone(),
        l.product_id.to_string(),
        opt(l.plan_id),
        opt(l.customer_id),
        customer
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        customer
            .as_ref()
            .and_then(|c| c.email.clone())
            .unwrap_or_default(),
        status.label().to_owned(),
        l.trial.to_string(),
        l.created.to_rfc3339(),
        l.expires.map(|e| e.to_rfc3339()).unwrap_or_default(),
        l.max_machines.to_string(),
        l.features.join(" "),
        l.notes.clone(),
        l.metadata.to_string(),
    ]
}

/// The filtered license list as CSV, streamed page by page.
async fn licenses_csv(
    State(state): State<AppState>,
    signed: Signed,
    Query(filters): Query<LicenseFilters>,
) -> Page {
    let principal = signed.session.principal.clone();
    let query = filters.query(Some(CSV_PAGE))?;
    let first = with_customers(state.app.license_list(&principal, query.clone()).await?);
    let app = state.app.clone();
    let fetch = move |cursor: String| {
        let (app, principal) = (app.clone(), principal.clone());
        let mut query = query.clone();
        query.page.cursor = Some(cursor);
        async move {
            app.license_list(&principal, query)
                .await
                .map(with_customers)
        }
    };
    Ok(csv::download(
        "licenses.csv",
        &LICENSE_COLUMNS,
        first,
        fetch,
        license_row,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CustomerQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

async fn customers(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<CustomerQuery>,
) -> Page {
    let page = PageRequest {
        cursor: query.after,
        limit: None,
    };
    let found = state
        .app
        .customer_list(&signed.session.principal, &query.q, &page)
        .await?;
    Ok(html(sales_pages::customers(
        &signed.session,
        query.q.trim(),
        &found,
    )))
}

const CUSTOMER_COLUMNS: [&str; 5] = ["id", "name", "email", "company", "created"];

fn customer_row(c: &Customer) -> Vec<String> {
    vec![
        c.id.to_string(),
        c.name.clone(),
        c.email.clone().unwrap_or_default(),
        c.company.clone().unwrap_or_default(),
        c.created.to_rfc3339(),
    ]
}

/// The (searched) customer list as CSV, streamed page by page.
async fn customers_csv(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<CustomerQuery>,
) -> Page {
    let principal = signed.session.principal.clone();
    let page = PageRequest {
        cursor: None,
        limit: Some(CSV_PAGE),
    };
    let first = state.app.customer_list(&principal, &query.q, &page).await?;
    let app = state.app.clone();
    let q = query.q;
    let fetch = move |cursor: String| {
        let (app, principal, q) = (app.clone(), principal.clone(), q.clone());
        async move {
            let page = PageRequest {
                cursor: Some(cursor),
                limit: Some(CSV_PAGE),
            };
            app.customer_list(&principal, &q, &page).await
        }
    };
    Ok(csv::download(
        "customers.csv",
        &CUSTOMER_COLUMNS,
        first,
        fetch,
        customer_row,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CustomerPageQuery {
    after: Option<String>,
}

async fn customer(
    State(state): State<AppState>,
    signed: Signed,
    path: Result<Path<i64>, PathRejection>,
    Query(query): Query<CustomerPageQuery>,
) -> Page {
    let id = path
        .map(|Path(id)| id)
        .map_err(|_| Problem::Status(axum::http::StatusCode::NOT_FOUND, "no such page".into()))?;
    let principal = &signed.session.principal;
    let page = PageRequest {
        cursor: query.after,
        limit: None,
    };
    let overview = state.app.customer_overview(principal, id, &page).await?;
    let products = products(&state.app, principal).await;
    Ok(html(sales_pages::customer(
        &signed.session,
        &overview,
        &products,
    )))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct IssueFormQuery {
    /// A customer search: the customers it finds are offered on the form.
    #[serde(default)]
    q: String,
}

async fn issue_form(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<IssueFormQuery>,
) -> Page {
    let principal = &signed.session.principal;
    // The form is for those who may issue; the use case checks again when it is sent.
    principal
        .require(keyturn_core::Permission::LicensesWrite)
        .map_err(Problem::from)?;
    let plans: Vec<Plan> = state.app.plans(principal, None).await?;
    let products = products(&state.app, principal).await;
    let found = match query.q.trim() {
        "" => None,
        q => Some(
            state
                .app
                .customer_list(principal, q, &PageRequest::default())
                .await?,
        ),
    };
    Ok(html(sales_pages::issue_form(
        &signed.session,
        &plans,
        &products,
        query.q.trim(),
        found.as_ref(),
    )))
}

#[derive(Debug, Deserialize)]
pub(super) struct IssueForm {
    #[serde(default)]
    plan: String,
    #[serde(default)]
    quantity: String,
    /// `new`, or the id of an existing customer.
    #[serde(default)]
    customer: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    company: String,
    /// A checkbox: present when ticked.
    send_mail: Option<String>,
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

async fn issue(State(state): State<AppState>, posted: Posted<IssueForm>) -> Page {
    let form = posted.form;
    let plan_id = number("plan", &form.plan)?
        .ok_or_else(|| Problem::Invalid("plan: choose a plan".into()))?;
    let quantity = number("quantity", &form.quantity)?.unwrap_or(1);
    let customer = match form.customer.trim() {
        "new" => CustomerChoice::New(NewCustomerInput {
            name: form.name,
            email: optional(&form.email),
            company: optional(&form.company),
        }),
        "" => {
            return Err(Problem::Invalid(
                "customer: choose an existing customer or a new one".into(),
            ))
        }
        id => CustomerChoice::Existing(
            id.parse()
                .map_err(|_| Problem::Invalid("customer: no such customer".into()))?,
        ),
    };
    let issued = state
        .app
        .issue_licenses(
            &posted.signed.session.principal,
            IssueRequest {
                plan_id,
                quantity,
                customer,
                send_mail: form.send_mail.is_some(),
            },
        )
        .await?;
    let (first, last) = match (issued.licenses.first(), issued.licenses.last()) {
        (Some(f), Some(l)) => (f.id, l.id),
        _ => return Err(Problem::Invalid("no license was issued".into())),
    };
    let mailed = if issued.mailed { "&mailed=1" } else { "" };
    Ok(Redirect::to(&format!(
        "/admin/issued?customer={}&from={first}&to={last}{mailed}",
        issued.customer.id
    ))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct IssuedQuery {
    customer: i64,
    from: i64,
    to: i64,
    mailed: Option<String>,
}

async fn issued(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<IssuedQuery>,
) -> Page {
    let (customer, licenses) = state
        .app
        .issued_licenses(
            &signed.session.principal,
            query.customer,
            query.from,
            query.to,
        )
        .await?;
    Ok(keys_page(sales_pages::issued(
        &signed.session,
        &customer,
        &licenses,
        query.mailed.is_some(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_filters_read_as_the_form_sends_them() {
        let f = LicenseFilters {
            product: "3".into(),
            blocked: "no".into(),
            trial: "yes".into(),
            expires_before: "2030-01-31".into(),
            ..LicenseFilters::default()
        };
        let q = f.query(None).unwrap();
        assert_eq!(q.product_id, Some(3));
        assert_eq!(q.blocked, Some(false));
        assert_eq!(q.trial, Some(true));
        assert_eq!(
            q.expires_before.unwrap().to_rfc3339(),
            "2030-01-31T00:00:00+00:00"
        );
        assert!(LicenseFilters {
            blocked: "maybe".into(),
            ..LicenseFilters::default()
        }
        .query(None)
        .is_err());
        assert!(f.query_string().contains("trial=yes"));
    }
}
