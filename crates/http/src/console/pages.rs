//! The console's pages. Templates are `maud` macros: compiled with the binary, and every value
//! they are given is escaped on output, so text from licenses, customers, machines and
//! providers always shows as text.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keyturn_app::{ConsoleSession, LicenseOverview, Page};
use keyturn_core::{License, LicenseStatus, Permission};
use maud::{html, Markup, DOCTYPE};

pub(super) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(super) fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// The one layout: a skip link, the header with navigation and sign-out, the page.
pub(super) fn layout(title: &str, session: Option<&ConsoleSession>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Keyturn console" }
                link rel="stylesheet" href="/admin/console.css";
                script src="/admin/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Keyturn" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            @if super::dashboard::shows_dashboard(s.user.role) {
                                a href="/admin" { "Dashboard" }
                            }
                            a href="/admin/search" { "Search" }
                            @if s.principal.holds(Permission::ProductsRead) {
                                a href="/admin/products" { "Products" }
                            }
                            @if s.principal.holds(Permission::PlansRead) {
                                a href="/admin/plans" { "Plans" }
                            }
                            (super::sales_pages::nav(s))
                            (super::money_pages::nav(s))
                            (super::webhooks_pages::nav(s))
                            @if s.principal.require_unrestricted(Permission::TokensManage).is_ok() {
                                a href="/admin/tokens" { "Tokens" }
                            }
                            @if s.principal.require_unrestricted(Permission::PaymentsRead).is_ok() {
                                a href="/admin/forms" { "Payment forms" }
                                a href="/admin/license-urls" { "License URLs" }
                                a href="/admin/providers" { "Providers" }
                            }
                            @if s.principal.require_unrestricted(Permission::Admin).is_ok() {
                                a href="/admin/branding" { "Branding" }
                            }
                            @if s.user.role.manages_users() && s.user.product_id.is_none() {
                                a href="/admin/users" { "Users" }
                            }
                            a href="/admin/account" { "Account" }
                        }
                        form.signout method="post" action="/admin/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span.who { (s.user.email) " (" (s.user.role.as_str()) ")" }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    (body)
                }
            }
        }
    }
}

pub fn problem(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        title,
        None,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href="/admin/search" { "Back to the console" } }
        },
    )
}

pub fn login(csrf: &str, message: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
            }
            form.card method="post" action="/admin/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input id="email" name="email" type="email" autocomplete="username" required;
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub(super) fn status_badge(status: LicenseStatus) -> Markup {
    html! { span class={ "badge " (status.class()) } { (status.label()) } }
}

pub fn search(session: &ConsoleSession, term: &str, found: Option<&Page<License>>) -> Markup {
    let now = Utc::now();
    layout(
        "Search",
        Some(session),
        html! {
            h1 { "Find a license" }
            form.search method="get" action="/admin/search" role="search" {
                label for="q" { "Key, customer email or name, order or subscription id, machine" }
                div.row {
                    input id="q" name="q" type="search" value=(term) required maxlength="200";
                    button type="submit" { "Search" }
                }
            }
            @if let Some(found) = found {
                @if found.data.is_empty() {
                    p { "No license matches " q { (term) } "." }
                } @else {
                    table {
                        caption { "Licenses matching " q { (term) } }
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Status" } th scope="col" { "Expires" } th scope="col" { "Created" } } }
                        tbody {
                            @for l in &found.data {
                                tr {
                                    td { a.key href={ "/admin/licenses/" (l.id) } { (l.key) } }
                                    td { (status_badge(LicenseStatus::of(l, now))) }
                                    td { @match l.expires { Some(at) => (day(at)), None => "never" } }
                                    td { (day(l.created)) }
                                }
                            }
                        }
                    }
                    @if let Some(next) = &found.next_cursor {
                        p { a href={ "/admin/search?q=" (urlencode(term)) "&after=" (next) } { "Next page" } }
                    }
                }
            }
        },
    )
}

pub(super) fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What a redirect after a change says happened (never text from the request itself).
fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "freed" => "The machine was freed; the license can be activated on another one.",
        "features" => "Features saved.",
        "extended" => "Expiry extended.",
        "blocked" => "License blocked.",
        "unblocked" => "License unblocked.",
        "saved" => "Notes and metadata saved.",
        _ => return None,
    })
}

pub fn license(session: &ConsoleSession, o: &LicenseOverview, done: Option<&str>) -> Markup {
    let l = &o.license;
    let p = &session.principal;
    let can_write = p.holds(Permission::LicensesWrite);
    let can_free = p.holds(Permission::ActivationsWrite);
    let action = |what: &str| format!("/admin/licenses/{}/{what}", l.id);
    let metadata = serde_json::to_string_pretty(&l.metadata).unwrap_or_default();
    layout(
        &format!("License {}", l.key),
        Some(session),
        html! {
            @if let Some(m) = done_message(done) {
                p.notice role="status" { (m) }
            }
            h1 { "License " span.key { (l.key) } " " (status_badge(o.status)) }
            dl.facts {
                dt { "Product" } dd { (o.product.name) }
                dt { "Expires" } dd { @match l.expires { Some(at) => (when(at)), None => "never (perpetual)" } }
                dt { "Created" } dd { (when(l.created)) }
                dt { "Machines allowed" } dd { @if l.max_machines == 0 { "unlimited" } @else { (l.max_machines) } }
                @if let Some(plan) = l.plan_id { dt { "Plan" } dd { (plan) } }
                @if l.trial { dt { "Trial" } dd { "yes" } }
                @if let Some(c) = &o.customer {
                    dt { "Customer" }
                    dd {
                        (c.name)
                        @if let Some(e) = &c.email { " · " (e) }
                        @if let Some(co) = &c.company { " · " (co) }
                    }
                }
            }

            section aria-labelledby="machines" {
                h2 id="machines" { "Machines" }
                @match &o.machines {
                    None => p { "You may not see this license's machines." },
                    Some(m) if m.is_empty() => p { "No machine uses this license." },
                    Some(machines) => {
                        div.scroll {
                            table.stack {
                                thead { tr {
                                    th scope="col" { "Name" } th scope="col" { "Fingerprint" }
                                    th scope="col" { "First seen" } th scope="col" { "Last seen" }
                                    @if can_free { th scope="col" { span.sr { "Action" } } }
                                } }
                                tbody {
                                    @for a in machines {
                                        tr {
                                            td data-label="Name" { @match &a.name { Some(n) => (n), None => "—" } }
                                            td data-label="Fingerprint" { code { (a.fingerprint) } }
                                            td data-label="First seen" { (when(a.created)) }
                                            td data-label="Last seen" { (when(a.last_seen)) }
                                            @if can_free {
                                                td.action {
                                                    form method="post" action=(action(&format!("machines/{}/free", a.id))) {
                                                        input type="hidden" name="csrf" value=(session.csrf);
                                                        button.danger type="submit" aria-label={ "Free this machine: " (a.name.as_deref().unwrap_or(&a.fingerprint)) } { "Free this machine" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }

            section aria-labelledby="features" {
                h2 id="features" { "Features" }
                @if o.product.features.is_empty() {
                    p { "The product has no features." }
                } @else {
                    ul.features {
                        @for f in &o.product.features {
                            @let on = l.has_feature(f);
                            li {
                                span { (f) ": " strong { @if on { "on" } @else { "off" } } }
                                @if can_write {
                                    form method="post" action=(action("features")) {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        input type="hidden" name="feature" value=(f);
                                        input type="hidden" name="on" value=(if on { "0" } else { "1" });
                                        button type="submit" { @if on { "Turn off " } @else { "Turn on " } (f) }
                                    }
                                }
                            }
                        }
                    }
                }
            }

            @if can_write {
                section aria-labelledby="expiry" {
                    h2 id="expiry" { "Expiry" }
                    div.forms {
                        form.card method="post" action=(action("extend")) {
                            input type="hidden" name="csrf" value=(session.csrf);
                            label for="days" { "Extend by days" }
                            input id="days" name="days" type="number" min="1" max="36500" required;
                            button type="submit" { "Extend" }
                        }
                        form.card method="post" action=(action("extend")) {
                            input type="hidden" name="csrf" value=(session.csrf);
                            label for="until" { "Extend to a date" }
                            input id="until" name="until" type="date" required;
                            button type="submit" { "Set expiry" }
                        }
                    }
                }
                section aria-labelledby="offline" {
                    h2 id="offline" { "Offline license file" }
                    form.card method="post" action=(action("file")) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label for="machine" { "Machine code (the program shows it; an activated machine's fingerprint above works too)" }
                        input id="machine" name="machine" type="text" maxlength="256" required;
                        label for="file-days" { "Valid for days" }
                        input id="file-days" name="days" type="number" min="1" max="3650" value="30";
                        div.check {
                            input id="encrypt" name="encrypt" type="checkbox" value="1";
                            label for="encrypt" { "Encrypt it for this machine" }
                        }
                        button type="submit" { "Download license file" }
                    }
                }
                section aria-labelledby="blocking" {
                    h2 id="blocking" { @if l.blocked { "Unblock" } @else { "Block" } }
                    form.card method="post" action=(action("block")) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="action" value=(if l.blocked { "unblock" } else { "block" });
                        label for="reason" { "Reason (kept in the audit log)" }
                        input id="reason" name="reason" type="text" maxlength="200";
                        @if !l.blocked {
                            label for="public_reason" { "Reason shown to the buyer in the customer portal (optional)" }
                            input id="public_reason" name="public_reason" type="text" maxlength="200";
                        }
                        button.danger[!l.blocked] type="submit" { @if l.blocked { "Unblock license" } @else { "Block license" } }
                    }
                }
            }

            section aria-labelledby="notes" {
                h2 id="notes" { "Notes and metadata" }
                @if can_write {
                    form.card method="post" action=(action("notes")) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label for="notes-text" { "Notes" }
                        textarea id="notes-text" name="notes" rows="4" { (l.notes) }
                        label for="metadata" { "Metadata (JSON object)" }
                        textarea id="metadata" name="metadata" rows="6" { (metadata) }
                        button type="submit" { "Save" }
                    }
                } @else {
                    p.pre { (l.notes) }
                    pre { code { (metadata) } }
                }
            }

            section aria-labelledby="money" {
                h2 id="money" { "Payments and subscription" }
                @match (&o.payments, &o.subscriptions) {
                    (Some(payments), Some(subscriptions)) => {
                        @if payments.is_empty() && subscriptions.is_empty() {
                            p { "No payment is recorded for this license." }
                        }
                        @for s in subscriptions {
                            p {
                                "Subscription " code { (s.subscription_id) } " at " (s.provider) ": "
                                strong { (s.status.as_str()) }
                                @if let Some(end) = s.period_end { ", period ends " (day(end)) }
                                @if s.cancel_at_period_end { ", cancels at period end" }
                            }
                        }
                        @if !payments.is_empty() {
                            div.scroll {
                                table {
                                    thead { tr {
                                        th scope="col" { "Provider" } th scope="col" { "Object" }
                                        th scope="col" { "Status" } th scope="col" { "Amount" } th scope="col" { "When" }
                                    } }
                                    tbody {
                                        @for pay in payments {
                                            tr {
                                                td { (pay.provider) }
                                                td { (pay.object_kind.as_str()) " " code { (pay.object_id) } }
                                                td { (pay.status.as_str()) }
                                                td { @if let Some(a) = pay.amount { (money(a)) " " (pay.currency.as_deref().unwrap_or("")) } }
                                                td { (when(pay.created)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    },
                    _ => p { "Payments are shown to users not limited to a product." },
                }
            }

            section aria-labelledby="timeline" {
                h2 id="timeline" { "Audit timeline" }
                @match &o.events {
                    None => p { "You may not see this license's audit log." },
                    Some(events) => {
                        ol.timeline {
                            @for e in events {
                                li {
                                    time datetime=(e.at.to_rfc3339()) { (when(e.at)) }
                                    " " strong { (e.action) } " by " span.actor { (e.actor) }
                                    @if e.details.as_object().is_some_and(|d| !d.is_empty()) {
                                        pre { code { (e.details.to_string()) } }
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

/// An amount in minor units, with two decimals.
pub(super) fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_two_decimals() {
        assert_eq!(money(1999), "19.99");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-250), "-2.50");
    }

    #[test]
    fn a_done_code_never_echoes_the_request() {
        assert_eq!(done_message(Some("<script>")), None);
        assert!(done_message(Some("freed")).is_some());
    }
}
