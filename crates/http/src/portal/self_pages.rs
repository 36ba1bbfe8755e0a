//! The portal's self-service pages (a license's own page, the account page, an email change's
//! confirmation), `maud` templates through the portal's one layout: every value is escaped.

use chrono::{DateTime, Utc};
use keyturn_app::{PortalAccount, PortalLicenseDetail, PortalSession};
use maud::{html, Markup};

use super::pages::layout;

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A key as selectable text whose groups never break inside: each group (with its dash) is
/// one unbreakable piece, with a break opportunity only between groups. Copying it, or the
/// copy button (which reads the text), gives the key exactly.
pub(super) fn key_text(id: &str, key: &str) -> Markup {
    let groups: Vec<&str> = key.split('-').collect();
    let last = groups.len().saturating_sub(1);
    html! {
        span.key.keygroups id=(id) {
            @for (i, g) in groups.iter().enumerate() {
                span.kg { (g) @if i < last { "-" } }
                @if i < last { wbr; }
            }
        }
    }
}

/// What a message parameter after a redirect says.
fn done_notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "freed" => {
            Some("The machine was freed. Your program can now be activated on another machine.")
        }
        "name" => Some("Your name was saved."),
        _ => None,
    }
}

pub fn license(
    buyer: &PortalSession,
    d: &PortalLicenseDetail,
    done: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let l = &d.license;
    let key_id = format!("key-{}", l.id);
    let title = format!("{} license", d.product.name);
    let node_locked = d
        .machines
        .iter()
        .filter(|m| m.lease_expires.is_none())
        .count();
    layout(
        &title,
        Some(buyer),
        html! {
            p { a href="/portal/licenses" { "← All your licenses" } }
            @if let Some(m) = error {
                p.error role="alert" { (m) }
            }
            @if let Some(m) = done_notice(done) {
                p.notice role="status" { (m) }
            }
            h1 { (d.product.name) " " span class={ "badge " (d.status.class()) } { (d.status.label()) } }
            dl.facts {
                dt { "Product" } dd { (d.product.name) }
                dt { "Plan" } dd { (d.plan_name.as_deref().unwrap_or("—")) }
                dt { "Key" }
                dd {
                    (key_text(&key_id, &l.key))
                    " "
                    button.copy type="button" data-copy=(key_id) hidden { "Copy key" }
                    span id={ (key_id) "-status" } role="status" {}
                }
                dt { "Status" } dd { (d.status.label()) }
                @if let Some(reason) = &d.blocked_reason {
                    dt { "Why it is blocked" } dd { (reason) }
                }
                @match (d.renews, l.expires) {
                    (Some(at), _) => { dt { "Next renewal" } dd { (day(at)) } }
                    (None, Some(at)) => { dt { "Expires" } dd { (day(at)) } }
                    (None, None) => { dt { "Expires" } dd { "never" } }
                }
                dt { "Features" }
                dd { @if l.features.is_empty() { "none" } @else { (l.features.join(", ")) } }
                dt { "Machines" }
                dd {
                    (d.machines.len())
                    @if l.max_machines > 0 { " of " (l.max_machines) } @else { " (no limit)" }
                }
            }
            section aria-labelledby="machines" {
                h2 id="machines" { "Machines" }
                @if d.rules.buyers_may_free_machines && node_locked > 0 {
                    @if d.frees_left > 0 {
                        p.hint {
                            "Moving to a new computer? Free the old one here. You can free "
                            (d.frees_left) " more machine" @if d.frees_left != 1 { "s" }
                            " of this license within " (d.rules.buyer_frees_days) " days."
                        }
                    } @else {
                        p.hint {
                            "You have freed as many machines as your plan allows in the last "
                            (d.rules.buyer_frees_days) " days. Contact the seller if you need another one freed."
                        }
                    }
                }
                @if d.machines.is_empty() {
                    p { "No machine uses this license now." }
                } @else {
                    div.scroll {
                        table.stack {
                            caption { "Machines using this license" }
                            thead { tr {
                                th scope="col" { "Name" } th scope="col" { "Last seen" }
                                th scope="col" { "Seat" } th scope="col" { span.sr { "Action" } }
                            } }
                            tbody {
                                @for m in &d.machines {
                                    tr {
                                        td data-label="Name" { (m.name.as_deref().unwrap_or("unnamed machine")) }
                                        td data-label="Last seen" { (when(m.last_seen)) }
                                        td data-label="Seat" {
                                            @match m.lease_expires {
                                                Some(until) => { "floating: frees itself at " (when(until)) }
                                                None => "activated",
                                            }
                                        }
                                        td data-label="Action" {
                                            @if m.lease_expires.is_none() && d.rules.buyers_may_free_machines && d.frees_left > 0 {
                                                form.inline method="post" action={ "/portal/licenses/" (l.id) "/machines/" (m.id) "/free" } {
                                                    input type="hidden" name="csrf" value=(buyer.csrf);
                                                    button type="submit" aria-label={ "Free this machine: " (m.name.as_deref().unwrap_or("unnamed machine")) } { "Free this machine" }
                                                }
                                            } @else if m.lease_expires.is_some() {
                                                "frees itself"
                                            } @else if d.rules.buyers_may_free_machines {
                                                "no frees left for now"
                                            } @else {
                                                "—"
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if d.rules.buyers_may_download_files {
                section aria-labelledby="offline" {
                    h2 id="offline" { "Use it offline" }
                    form.card.wide method="post" action={ "/portal/licenses/" (l.id) "/file" } {
                        p.hint id="machine-code-hint" {
                            "For a computer without internet: paste the machine code your program shows, and save the license file it gets. The file lasts "
                            (d.rules.buyer_file_days) " days (never past the license's expiry)."
                        }
                        input type="hidden" name="csrf" value=(buyer.csrf);
                        label for="machine-code" { "Machine code" }
                        textarea id="machine-code" name="machine_code" rows="3" spellcheck="false"
                            autocomplete="off" required aria-describedby="machine-code-hint" {}
                        button type="submit" { "Download license file" }
                    }
                }
            }
            script src="/portal/portal.js" defer {}
        },
    )
}

pub fn account(
    buyer: &PortalSession,
    account: &PortalAccount,
    done: Option<&str>,
    error: Option<&str>,
    sent_to: Option<&str>,
) -> Markup {
    layout(
        "Account",
        Some(buyer),
        html! {
            h1 { "Your account" }
            @if let Some(m) = error {
                p.error role="alert" { (m) }
            }
            @if let Some(m) = done_notice(done) {
                p.notice role="status" { (m) }
            }
            @if let Some(to) = sent_to {
                p.notice role="status" {
                    "We mailed a confirmation link to " (to) ". Your address changes when you open it (within an hour); until then it stays " (account.email) "."
                }
            }
            div.forms {
                form.card method="post" action="/portal/account/name" {
                    h2 { "Name" }
                    input type="hidden" name="csrf" value=(buyer.csrf);
                    label for="name" { "Your name" }
                    input id="name" name="name" type="text" autocomplete="name" required value=(account.name);
                    button type="submit" { "Save name" }
                }
                form.card method="post" action="/portal/account/email" {
                    h2 { "Email address" }
                    p.hint id="email-hint" { "Now: " (account.email) ". We mail a link to the new address; the change applies when you open it." }
                    input type="hidden" name="csrf" value=(buyer.csrf);
                    label for="email" { "New email address" }
                    input id="email" name="email" type="email" autocomplete="email" required aria-describedby="email-hint";
                    button type="submit" { "Send confirmation link" }
                }
            }
        },
    )
}

pub fn confirm_email(csrf: &str, secret: &str) -> Markup {
    layout(
        "Confirm your email address",
        None,
        html! {
            h1 { "Confirm your new email address" }
            form.card method="post" action={ "/portal/account/email/" (secret) } {
                p { "Continue to use this address for your licenses. This link then stops working." }
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Confirm" }
            }
        },
    )
}

pub fn email_changed(new_email: &str) -> Markup {
    layout(
        "Email address changed",
        None,
        html! {
            h1 { "Your email address was changed" }
            p.notice role="status" { "Your licenses now belong to " (new_email) "." }
            p { a href="/portal/licenses" { "To your licenses" } }
        },
    )
}

pub fn email_link_spent() -> Markup {
    layout(
        "Link no longer valid",
        None,
        html! {
            h1 { "This link no longer works" }
            p.error role="alert" { "Confirmation links work once and for an hour. Ask for a new one on your account page." }
            p { a href="/portal/account" { "To your account" } }
        },
    )
}
