//! The sales pages' templates (maud: every value is escaped on output, so customer names,
//! notes and keys always show as text).

use chrono::Utc;
use keyturn_app::{ConsoleSession, CustomerOverview, Listed, Page};
use keyturn_core::{Customer, License, LicenseStatus, Permission, Plan, Product};
use maud::{html, Markup};

use super::pages::{day, layout, money, status_badge, urlencode, when};
use super::sales::LicenseFilters;

/// The sales entries of the main navigation, as far as the user may use them.
pub(super) fn nav(s: &ConsoleSession) -> Markup {
    let p = &s.principal;
    html! {
        @if p.holds(Permission::LicensesRead) { a href="/admin/licenses" { "Licenses" } }
        @if p.holds(Permission::CustomersRead) { a href="/admin/customers" { "Customers" } }
        @if p.holds(Permission::LicensesWrite) && p.holds(Permission::PlansRead) {
            a href="/admin/issue" { "Issue licenses" }
        }
    }
}

fn product_name(products: &[Product], id: i64) -> String {
    products
        .iter()
        .find(|p| p.id == id)
        .map_or_else(|| format!("product {id}"), |p| p.name.clone())
}

fn period(plan: &Plan) -> String {
    match plan.period_days {
        Some(d) => format!("{d} days"),
        None => "perpetual".into(),
    }
}

/// A select's option, selected when its value is the current one.
fn option(value: &str, current: &str, label: &str) -> Markup {
    html! { option value=(value) selected[value == current] { (label) } }
}

/// A link to a customer of a list, by name when the list has it.
pub(super) fn customer_link<T>(listed: &Listed<T>, id: Option<i64>) -> Markup {
    html! {
        @match (id, listed.customer(id)) {
            (Some(id), Some(c)) => a href={ "/admin/customers/" (id) } { (c.name) },
            (Some(id), None) => a href={ "/admin/customers/" (id) } { "customer " (id) },
            (None, _) => "—",
        }
    }
}

pub(super) fn licenses(
    session: &ConsoleSession,
    f: &LicenseFilters,
    listed: &Listed<License>,
    products: &[Product],
) -> Markup {
    let found = &listed.page;
    let now = Utc::now();
    let query = f.query_string();
    layout(
        "Licenses",
        Some(session),
        html! {
            h1 { "Licenses" }
            form.filters method="get" action="/admin/licenses" aria-label="Filter licenses" {
                div.field {
                    label for="f-product" { "Product" }
                    select id="f-product" name="product" {
                        (option("", &f.product, "Any product"))
                        @for p in products { (option(&p.id.to_string(), f.product.trim(), &p.name)) }
                    }
                }
                div.field {
                    label for="f-email" { "Customer email" }
                    input id="f-email" name="email" type="email" value=(f.email) maxlength="254";
                }
                div.field {
                    label for="f-blocked" { "Blocked" }
                    select id="f-blocked" name="blocked" {
                        (option("", &f.blocked, "Any"))
                        (option("yes", &f.blocked, "Blocked only"))
                        (option("no", &f.blocked, "Not blocked"))
                    }
                }
                div.field {
                    label for="f-trial" { "Trials" }
                    select id="f-trial" name="trial" {
                        (option("", &f.trial, "Any"))
                        (option("yes", &f.trial, "Trials only"))
                        (option("no", &f.trial, "No trials"))
                    }
                }
                div.field {
                    label for="f-expires" { "Expiring before" }
                    input id="f-expires" name="expires_before" type="date" value=(f.expires_before);
                }
                @if !f.customer.trim().is_empty() {
                    input type="hidden" name="customer" value=(f.customer.trim());
                }
                div.field { button type="submit" { "Filter" } }
            }
            @if !f.customer.trim().is_empty() {
                p { "Licenses of " a href={ "/admin/customers/" (f.customer.trim()) } { "customer " (f.customer.trim()) } "." }
            }
            p.actions {
                a.download href={ "/admin/licenses.csv?" (query) } { "Download these licenses as CSV" }
                " · "
                // Before the day after the 14th: through the whole of the 14th day.
                a href={ "/admin/licenses?trial=yes&expires_before=" (day(now + chrono::Duration::days(15))) } {
                    "Trials ending within 14 days"
                }
            }
            @if found.data.is_empty() {
                p { "No license matches these filters." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Licenses, oldest first" }
                        thead { tr {
                            th scope="col" { "Key" } th scope="col" { "Status" } th scope="col" { "Product" }
                            th scope="col" { "Customer" } th scope="col" { "Expires" } th scope="col" { "Created" }
                        } }
                        tbody {
                            @for l in &found.data {
                                tr {
                                    td data-label="Key" { a.key href={ "/admin/licenses/" (l.id) } { (l.key) } }
                                    td data-label="Status" {
                                        (status_badge(LicenseStatus::of(l, now)))
                                        @if l.trial { " " span.badge.trial { "trial" } }
                                    }
                                    td data-label="Product" { (product_name(products, l.product_id)) }
                                    td data-label="Customer" { (customer_link(listed, l.customer_id)) }
                                    td data-label="Expires" { @match l.expires { Some(at) => (day(at)), None => "never" } }
                                    td data-label="Created" { (day(l.created)) }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = &found.next_cursor {
                    p { a href={ "/admin/licenses?" (query) "&after=" (urlencode(next)) } { "Next page" } }
                }
            }
        },
    )
}

pub(super) fn customers(session: &ConsoleSession, q: &str, found: &Page<Customer>) -> Markup {
    layout(
        "Customers",
        Some(session),
        html! {
            h1 { "Customers" }
            form.search method="get" action="/admin/customers" role="search" {
                label for="q" { "Name or email starts with" }
                div.row {
                    input id="q" name="q" type="search" value=(q) maxlength="200";
                    button type="submit" { "Search" }
                }
            }
            p { a.download href={ "/admin/customers.csv?q=" (urlencode(q)) } { "Download these customers as CSV" } }
            @if found.data.is_empty() {
                p { @if q.is_empty() { "There are no customers yet." } @else { "No customer's name or email starts with " q { (q) } "." } }
            } @else {
                div.scroll {
                    table.stack {
                        caption { @if q.is_empty() { "Customers" } @else { "Customers matching " q { (q) } } }
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Email" }
                            th scope="col" { "Company" } th scope="col" { "Created" }
                        } }
                        tbody {
                            @for c in &found.data {
                                tr {
                                    td data-label="Name" { a href={ "/admin/customers/" (c.id) } { (c.name) } }
                                    td data-label="Email" { (c.email.as_deref().unwrap_or("—")) }
                                    td data-label="Company" { (c.company.as_deref().unwrap_or("—")) }
                                    td data-label="Created" { (day(c.created)) }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = &found.next_cursor {
                    p { a href={ "/admin/customers?q=" (urlencode(q)) "&after=" (urlencode(next)) } { "Next page" } }
                }
            }
        },
    )
}

pub(super) fn customer(
    session: &ConsoleSession,
    o: &CustomerOverview,
    products: &[Product],
) -> Markup {
    let c = &o.customer;
    let now = Utc::now();
    let p = &session.principal;
    let find = c.email.as_deref().unwrap_or(&c.name);
    layout(
        &format!("Customer {}", c.name),
        Some(session),
        html! {
            h1 { "Customer " (c.name) }
            dl.facts {
                dt { "Email" } dd { (c.email.as_deref().unwrap_or("—")) }
                dt { "Company" } dd { (c.company.as_deref().unwrap_or("—")) }
                dt { "Customer since" } dd { (when(c.created)) }
                dt { "Id" } dd { (c.id) }
            }
            @if p.holds(Permission::LicensesWrite) && p.holds(Permission::PlansRead) {
                p { a.button href={ "/admin/issue?q=" (urlencode(find)) } { "Issue licenses for this customer" } }
            }
            section aria-labelledby="licenses" {
                h2 id="licenses" { "Licenses" }
                @match &o.licenses {
                    None => p { "You may not see licenses." },
                    Some(page) if page.data.is_empty() => p { "This customer holds no license you can see." },
                    Some(page) => {
                        p { a.download href={ "/admin/licenses.csv?customer=" (c.id) } { "Download this customer's licenses as CSV" } }
                        div.scroll {
                            table.stack {
                                thead { tr {
                                    th scope="col" { "Key" } th scope="col" { "Status" }
                                    th scope="col" { "Product" } th scope="col" { "Expires" }
                                } }
                                tbody {
                                    @for l in &page.data {
                                        tr {
                                            td data-label="Key" { a.key href={ "/admin/licenses/" (l.id) } { (l.key) } }
                                            td data-label="Status" {
                                                (status_badge(LicenseStatus::of(l, now)))
                                                @if l.trial { " " span.badge.trial { "trial" } }
                                            }
                                            td data-label="Product" { (product_name(products, l.product_id)) }
                                            td data-label="Expires" { @match l.expires { Some(at) => (day(at)), None => "never" } }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(next) = &page.next_cursor {
                            p { a href={ "/admin/customers/" (c.id) "?after=" (urlencode(next)) } { "More licenses" } }
                        }
                    }
                }
            }
            section aria-labelledby="payments" {
                h2 id="payments" { "Payments" }
                @match &o.payments {
                    None => p { "Payments are shown to users not limited to a product." },
                    Some(payments) if payments.is_empty() => p { "No payment is recorded for this customer." },
                    Some(payments) => {
                        div.scroll {
                            table.stack {
                                thead { tr {
                                    th scope="col" { "When" } th scope="col" { "Provider" } th scope="col" { "Object" }
                                    th scope="col" { "Status" } th scope="col" { "Amount" } th scope="col" { "Licenses" }
                                } }
                                tbody {
                                    @for pay in payments {
                                        tr {
                                            td data-label="When" { (when(pay.created)) }
                                            td data-label="Provider" { (pay.provider) }
                                            td data-label="Object" { (pay.object_kind.as_str()) " " code { (pay.object_id) } }
                                            td data-label="Status" { (pay.status.as_str()) }
                                            td data-label="Amount" { @if let Some(a) = pay.amount { (money(a)) " " (pay.currency.as_deref().unwrap_or("")) } }
                                            td data-label="Licenses" {
                                                @for id in &pay.license_ids { a href={ "/admin/licenses/" (id) } { "license " (id) } " " }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(super) fn issue_form(
    session: &ConsoleSession,
    plans: &[Plan],
    products: &[Product],
    q: &str,
    found: Option<&Page<Customer>>,
) -> Markup {
    let offered = found.map(|f| f.data.as_slice()).unwrap_or_default();
    let can_create = session.principal.holds(Permission::CustomersWrite);
    layout(
        "Issue licenses",
        Some(session),
        html! {
            h1 { "Issue licenses" }
            form.search method="get" action="/admin/issue" role="search" {
                label for="q" { "Find an existing customer (name or email starts with)" }
                div.row {
                    input id="q" name="q" type="search" value=(q) maxlength="200";
                    button type="submit" { "Find" }
                }
            }
            @if found.is_some() && offered.is_empty() {
                p { "No customer's name or email starts with " q { (q) } "." }
            }
            @if plans.is_empty() {
                p { "There is no plan to issue licenses from yet: a plan describes what a license gives." }
            } @else {
                form.card method="post" action="/admin/issue" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="plan" { "Plan" }
                    select id="plan" name="plan" required {
                        option value="" { "Choose a plan" }
                        @for plan in plans {
                            option value=(plan.id) {
                                (product_name(products, plan.product_id)) " — " (plan.name) " (" (period(plan))
                                @if plan.trial { ", trial" } ")"
                            }
                        }
                    }
                    label for="quantity" { "How many licenses" }
                    input id="quantity" name="quantity" type="number" min="1" max="1000" value="1" required;
                    fieldset {
                        legend { "For which customer" }
                        @for c in offered {
                            div.check {
                                input type="radio" name="customer" id={ "customer-" (c.id) } value=(c.id) checked[offered.len() == 1];
                                label for={ "customer-" (c.id) } {
                                    (c.name) @if let Some(e) = &c.email { " · " (e) }
                                }
                            }
                        }
                        @if can_create {
                            div.check {
                                input type="radio" name="customer" id="customer-new" value="new" checked[offered.is_empty()];
                                label for="customer-new" { "A new customer:" }
                            }
                            label for="name" { "Name" }
                            input id="name" name="name" type="text" maxlength="200" autocomplete="off";
                            label for="email" { "Email" }
                            input id="email" name="email" type="email" maxlength="254" autocomplete="off";
                            label for="company" { "Company (optional)" }
                            input id="company" name="company" type="text" maxlength="200" autocomplete="off";
                        } @else if offered.is_empty() {
                            p { "Find the customer above first." }
                        }
                    }
                    div.check {
                        input id="send_mail" name="send_mail" type="checkbox" value="1" checked;
                        label for="send_mail" { "Mail the keys to the customer" }
                    }
                    button type="submit" { "Issue licenses" }
                }
            }
        },
    )
}

pub(super) fn issued(
    session: &ConsoleSession,
    customer: &Customer,
    licenses: &[License],
    mailed: bool,
) -> Markup {
    let count = licenses.len();
    layout(
        "Licenses issued",
        Some(session),
        html! {
            p.notice role="status" {
                (count) @if count == 1 { " license was" } @else { " licenses were" } " issued for " (customer.name) "."
                @if mailed {
                    @if let Some(e) = &customer.email { " The keys are queued for mailing to " (e) "." }
                }
            }
            h1 { "Licenses issued" }
            div.scroll {
                table.stack {
                    caption { "Keys" }
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Expires" } } }
                    tbody {
                        @for l in licenses {
                            tr {
                                td data-label="Key" { a.key href={ "/admin/licenses/" (l.id) } { (l.key) } }
                                td data-label="Expires" { @match l.expires { Some(at) => (day(at)), None => "never" } }
                            }
                        }
                    }
                }
            }
            p { a.download href={ "/admin/licenses.csv?customer=" (customer.id) } { "Download the customer's licenses as CSV" } }
            p { a href={ "/admin/customers/" (customer.id) } { "Go to " (customer.name) } }
        },
    )
}
