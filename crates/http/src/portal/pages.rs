//! The portal's pages, `maud` templates: every value is escaped on output.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use keyturn_app::{Page, PortalLicense, PortalSession};
use keyturn_core::branding::Branding;
use keyturn_core::LicenseStatus;
use maud::{html, Markup, DOCTYPE};

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The one layout: a skip link, the header with sign-out when signed in, the page.
pub(super) fn layout(title: &str, buyer: Option<&PortalSession>, body: Markup) -> Markup {
    let brand = super::branding();
    let seller = if brand.display_name.is_empty() {
        "Your licenses"
    } else {
        brand.display_name.as_str()
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Your licenses" }
                link rel="stylesheet" href="/portal/portal.css";
                link rel="stylesheet" href="/portal/brand.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand {
                        @if let Some(logo) = &brand.logo_url {
                            img src=(logo) alt=(seller) height="32";
                        } @else {
                            (seller)
                        }
                    }
                    @if let Some(b) = buyer {
                        nav aria-label="Main" {
                            a href="/portal/licenses" { "Licenses" }
                            a href="/portal/billing" { "Billing" }
                            a href="/portal/account" { "Account" }
                        }
                        form.signout method="post" action="/portal/sign-out" {
                            input type="hidden" name="csrf" value=(b.csrf);
                            span.who { (b.email) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    (body)
                }
                (footer(&brand))
            }
        }
    }
}

/// Where to ask, and the seller's policies; nothing without branding.
fn footer(b: &Branding) -> Markup {
    let links = b.links();
    html! {
        @if b.support_email.is_some() || !links.is_empty() {
            footer.site {
                @if let Some(support) = &b.support_email {
                    p { "Questions? " a href={ "mailto:" (support) } { (support) } }
                }
                @if !links.is_empty() {
                    nav aria-label="Policies" {
                        @for (label, url) in links {
                            a href=(url) { (label) }
                        }
                    }
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
            p { a href="/portal" { "Back to your licenses" } }
        },
    )
}

pub fn sign_in(csrf: &str, message: Option<&str>, email: &str) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in to see your licenses" }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
            }
            div.forms {
                form.card method="post" action="/portal/sign-in/link" {
                    h2 { "Get a sign-in link" }
                    p.hint { "We mail a link to the address you bought with. It works once, for 15 minutes." }
                    input type="hidden" name="csrf" value=(csrf);
                    label for="link-email" { "Email" }
                    input id="link-email" name="email" type="email" autocomplete="email" required value=(email);
                    button type="submit" { "Mail me a link" }
                }
                form.card method="post" action="/portal/sign-in/key" {
                    h2 { "Or use your license key" }
                    input type="hidden" name="csrf" value=(csrf);
                    label for="key" { "License key" }
                    input id="key" name="key" type="text" autocomplete="off" spellcheck="false" required;
                    label for="key-email" { "Email it was sold to" }
                    input id="key-email" name="email" type="email" autocomplete="email" required;
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

pub fn link_sent() -> Markup {
    layout(
        "Check your mail",
        None,
        html! {
            h1 { "Check your mail" }
            p.notice role="status" {
                "If that address belongs to a customer, a sign-in link is on its way. It works once, for 15 minutes."
            }
            p { a href="/portal/sign-in" { "Back to sign-in" } }
        },
    )
}

pub fn use_link(csrf: &str, secret: &str) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            form.card method="post" action={ "/portal/link/" (secret) } {
                p { "Continue to see your licenses. This link then stops working." }
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Continue" }
            }
        },
    )
}

pub fn link_spent() -> Markup {
    layout(
        "Link no longer valid",
        None,
        html! {
            h1 { "This link no longer works" }
            p.error role="alert" { "Sign-in links work once and for 15 minutes. Ask for a new one." }
            p { a href="/portal/sign-in" { "Get a new link" } }
        },
    )
}

fn status_badge(status: LicenseStatus) -> Markup {
    html! { span class={ "badge " (status.class()) } { (status.label()) } }
}

pub fn licenses(buyer: &PortalSession, page: &Page<PortalLicense>) -> Markup {
    layout(
        "Licenses",
        Some(buyer),
        html! {
            h1 { "Your licenses" }
            @if page.data.is_empty() {
                p { "There are no licenses for " (buyer.email) "." }
            }
            @for row in &page.data {
                (license_card(row))
            }
            @if let Some(next) = &page.next_cursor {
                p { a href={ "/portal/licenses?after=" (next) } { "More licenses" } }
            }
        },
    )
}

fn license_card(row: &PortalLicense) -> Markup {
    let l = &row.license;
    let heading = format!("license-{}", l.id);
    html! {
        section.card.wide aria-labelledby=(heading) {
            h2 id=(heading) {
                a href={ "/portal/licenses/" (l.id) } { (row.product.name) }
                " " (status_badge(row.status))
            }
            @if let Some(reason) = &row.blocked_reason {
                p.notice { "Blocked: " (reason) }
            }
            dl.facts {
                dt { "Key" }
                dd.key { (l.key) }
                dt { "Expires" }
                dd { @match l.expires { Some(at) => (day(at)), None => "never" } }
                @if !l.features.is_empty() {
                    dt { "Features" }
                    dd { (l.features.join(", ")) }
                }
                dt { "Machines" }
                dd {
                    (row.machines.len())
                    @if l.max_machines > 0 { " of " (l.max_machines) } @else { " (no limit)" }
                }
            }
            p { a href={ "/portal/licenses/" (l.id) } { "Manage this license" span.sr { ": " (l.key) } } }
            @if !row.machines.is_empty() {
                div.scroll {
                    table.stack {
                        caption { "Machines using " (l.key) }
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Last seen" } th scope="col" { "Seat" } } }
                        tbody {
                            @for m in &row.machines {
                                tr {
                                    td data-label="Name" { (m.name.as_deref().unwrap_or("unnamed machine")) }
                                    td data-label="Last seen" { (when(m.last_seen)) }
                                    td data-label="Seat" {
                                        @match m.lease_expires {
                                            Some(until) => { "floating, frees itself at " (when(until)) }
                                            None => "activated",
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
