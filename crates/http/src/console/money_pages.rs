//! The money pages' templates (maud: every value is escaped on output, so provider payloads,
//! failure reasons and SMTP errors always show as text).

use keyturn_app::{ConsoleSession, Listed, Page, SyncReport};
use keyturn_core::payment::{Payment, PaymentStatus, ProviderEvent, Subscription};
use keyturn_core::provider::ProviderEventStatus;
use keyturn_core::{MailState, OutboxMail, Permission};
use maud::{html, Markup};

use super::money::{segment, MoneyFilters};
use super::pages::{day, layout, money, urlencode, when};
use super::sales_pages::customer_link;

/// The providers a record may name, for the filters.
const PROVIDERS: [&str; 7] = [
    "stripe",
    "paypal",
    "paddle",
    "lemonsqueezy",
    "fastspring",
    "gumroad",
    "license_url",
];

const SUBSCRIPTION_STATUSES: [&str; 9] = [
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "paused",
    "unknown",
];

fn sees_money(s: &ConsoleSession) -> bool {
    s.principal
        .require_unrestricted(Permission::PaymentsRead)
        .is_ok()
}

fn changes_money(s: &ConsoleSession) -> bool {
    s.principal
        .require_unrestricted(Permission::PaymentsWrite)
        .is_ok()
}

/// The money entry of the main navigation, for users who may see payments.
pub(super) fn nav(s: &ConsoleSession) -> Markup {
    html! {
        @if sees_money(s) { a href="/admin/payments" { "Money" } }
    }
}

/// The money pages' own navigation; `current` is the page shown.
fn subnav(current: &str) -> Markup {
    const PAGES: [(&str, &str); 5] = [
        ("/admin/payments", "Payments"),
        ("/admin/events", "Provider events"),
        ("/admin/subscriptions", "Subscriptions"),
        ("/admin/outbox", "Mail outbox"),
        ("/admin/sync", "Sync from Stripe"),
    ];
    html! {
        nav.sub aria-label="Money" {
            @for (href, label) in PAGES {
                @if href == current {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    }
}

fn option(value: &str, current: &str, label: &str) -> Markup {
    html! { option value=(value) selected[value == current.trim()] { (label) } }
}

fn provider_select(current: &str) -> Markup {
    html! {
        div.field {
            label for="f-provider" { "Provider" }
            select id="f-provider" name="provider" {
                (option("", current, "Any provider"))
                @for p in PROVIDERS { (option(p, current, p)) }
            }
        }
    }
}

fn next_link(path: &str, f: &MoneyFilters, next: Option<&String>) -> Markup {
    html! {
        @if let Some(next) = next {
            p { a href={ (path) "?" (f.query_string()) "&after=" (urlencode(next)) } { "Next page" } }
        }
    }
}

fn event_href(e: &ProviderEvent) -> String {
    format!(
        "/admin/events/{}/{}",
        segment(&e.provider),
        segment(&e.event_id)
    )
}

pub(super) fn payments(
    session: &ConsoleSession,
    f: &MoneyFilters,
    listed: &Listed<Payment>,
) -> Markup {
    let found = &listed.page;
    layout(
        "Payments",
        Some(session),
        html! {
            (subnav("/admin/payments"))
            h1 { "Payments" }
            form.filters method="get" action="/admin/payments" aria-label="Filter payments" {
                (provider_select(&f.provider))
                div.field {
                    label for="f-status" { "Status" }
                    select id="f-status" name="status" {
                        (option("", &f.status, "Any status"))
                        @for s in [PaymentStatus::Paid, PaymentStatus::Failed, PaymentStatus::Refunded, PaymentStatus::Disputed] {
                            (option(s.as_str(), &f.status, s.as_str()))
                        }
                    }
                }
                div.field { button type="submit" { "Filter" } }
            }
            @if found.data.is_empty() {
                p { "No payment matches these filters." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Payments, newest first" }
                        thead { tr {
                            th scope="col" { "When" } th scope="col" { "Provider" } th scope="col" { "Object" }
                            th scope="col" { "Status" } th scope="col" { "Amount" } th scope="col" { "Customer" }
                            th scope="col" { "Licenses" }
                        } }
                        tbody {
                            @for p in &found.data {
                                tr {
                                    td data-label="When" { (when(p.created)) }
                                    td data-label="Provider" { (p.provider) }
                                    td data-label="Object" { (p.object_kind.as_str()) " " code { (p.object_id) } }
                                    td data-label="Status" { span class={ "badge pay-" (p.status.as_str()) } { (p.status.as_str()) } }
                                    td data-label="Amount" { @if let Some(a) = p.amount { (money(a)) " " (p.currency.as_deref().unwrap_or("")) } @else { "—" } }
                                    td data-label="Customer" { (customer_link(listed, p.customer_id)) }
                                    td data-label="Licenses" {
                                        @if p.license_ids.is_empty() { "—" }
                                        @for id in &p.license_ids { a href={ "/admin/licenses/" (id) } { "license " (id) } " " }
                                    }
                                }
                            }
                        }
                    }
                }
                (next_link("/admin/payments", f, found.next_cursor.as_ref()))
            }
        },
    )
}

fn event_badge(status: ProviderEventStatus) -> Markup {
    html! { span class={ "badge event-" (status.as_str()) } { (status.as_str()) } }
}

pub(super) fn events(
    session: &ConsoleSession,
    f: &MoneyFilters,
    found: &Page<ProviderEvent>,
) -> Markup {
    layout(
        "Provider events",
        Some(session),
        html! {
            (subnav("/admin/events"))
            h1 { "Provider events" }
            form.filters method="get" action="/admin/events" aria-label="Filter provider events" {
                (provider_select(&f.provider))
                div.field {
                    label for="f-status" { "Status" }
                    select id="f-status" name="status" {
                        (option("", &f.status, "Any status"))
                        @for s in [ProviderEventStatus::Failed, ProviderEventStatus::Applied, ProviderEventStatus::Ignored, ProviderEventStatus::Processing] {
                            (option(s.as_str(), &f.status, s.as_str()))
                        }
                    }
                }
                div.field {
                    label for="f-type" { "Type" }
                    input id="f-type" name="type" type="text" value=(f.event_type) maxlength="200" placeholder="invoice.paid";
                }
                div.field { button type="submit" { "Filter" } }
            }
            @if found.data.is_empty() {
                p { "No provider event matches these filters." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Events, newest first (by the provider's time)" }
                        thead { tr {
                            th scope="col" { "When" } th scope="col" { "Provider" } th scope="col" { "Type" }
                            th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" }
                            th scope="col" { "What it did, or why it failed" }
                        } }
                        tbody {
                            @for e in &found.data {
                                tr {
                                    td data-label="When" { (when(e.created)) }
                                    td data-label="Provider" { (e.provider) }
                                    td data-label="Type" { code { (e.event_type) } }
                                    td data-label="Event" { a href=(event_href(e)) { code { (e.event_id) } } }
                                    td data-label="Status" { (event_badge(e.status)) }
                                    td data-label="Attempts" { (e.attempts) }
                                    td data-label="Detail" { (e.detail) }
                                }
                            }
                        }
                    }
                }
                (next_link("/admin/events", f, found.next_cursor.as_ref()))
            }
        },
    )
}

/// What a redirect after a retry says happened (never text from the request itself).
fn retried_message(done: Option<&str>) -> Option<(&'static str, bool)> {
    Some(match done? {
        "applied" => ("Retried: the event was applied.", true),
        "ignored" => (
            "Retried: the event's type changes no license; it is recorded as ignored.",
            true,
        ),
        "duplicate" => (
            "The event had been applied already (by a delivery or another retry): nothing changed.",
            true,
        ),
        "failed" => ("Retried, and it failed again: the reason is below.", false),
        _ => return None,
    })
}

pub(super) fn event(session: &ConsoleSession, e: &ProviderEvent, done: Option<&str>) -> Markup {
    let payload = e
        .payload
        .as_ref()
        .map(|p| serde_json::to_string_pretty(p).unwrap_or_default())
        .unwrap_or_default();
    let failed = e.status == ProviderEventStatus::Failed;
    layout(
        &format!("Event {}", e.event_id),
        Some(session),
        html! {
            (subnav("/admin/events"))
            @if let Some((message, ok)) = retried_message(done) {
                @if ok { p.notice role="status" { (message) } } @else { p.error role="alert" { (message) } }
            }
            h1 { "Event " code { (e.event_id) } " " (event_badge(e.status)) }
            dl.facts {
                dt { "Provider" } dd { (e.provider) }
                dt { "Type" } dd { code { (e.event_type) } }
                dt { "Provider's time" } dd { (when(e.created)) }
                dt { "Received" } dd { (when(e.received)) }
                dt { "Attempts" } dd { (e.attempts) }
                dt { @if failed { "Why it failed" } @else { "What it did" } }
                dd { @if e.detail.is_empty() { "—" } @else { (e.detail) } }
            }
            @if failed {
                section aria-labelledby="retry" {
                    h2 id="retry" { "Retry" }
                    @if changes_money(session) {
                        p { "Fix the cause first (for example, list the purchased price on a plan), then apply the stored event again. It applies at most once." }
                        form.card method="post" action={ (event_href(e)) "/retry" } {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Retry this event" }
                        }
                    } @else {
                        p { "Retrying events needs the permission to change payments." }
                    }
                }
            }
            section aria-labelledby="payload" {
                h2 id="payload" { "Payload" }
                p { "As the provider sent it, laid out for reading." }
                // Scrolls when long: focusable, so a keyboard scrolls it too.
                pre.payload tabindex="0" aria-labelledby="payload" { code { (payload) } }
            }
        },
    )
}

pub(super) fn sync(
    session: &ConsoleSession,
    not_configured: Option<&str>,
    report: Option<&SyncReport>,
) -> Markup {
    layout(
        "Sync from Stripe",
        Some(session),
        html! {
            (subnav("/admin/sync"))
            @if let Some(r) = report {
                p.notice role="status" {
                    "Sync done: " (r.fetched) " events fetched from Stripe, " (r.applied) " applied, "
                    (r.ignored) " ignored, " (r.duplicates) " already handled, " (r.failed) " failed."
                }
            }
            h1 { "Sync from Stripe" }
            p { "Asks Stripe for the events since the newest one handled here and applies those that never arrived as webhooks, oldest first. Events applied before change nothing." }
            @if let Some(r) = report {
                dl.facts {
                    dt { "Fetched" } dd { (r.fetched) }
                    dt { "Applied" } dd { (r.applied) }
                    dt { "Ignored" } dd { (r.ignored) }
                    dt { "Already handled" } dd { (r.duplicates) }
                    dt { "Failed" } dd {
                        (r.failed)
                        @if r.failed > 0 { " — " a href="/admin/events?provider=stripe&status=failed" { "see the failed events" } }
                    }
                }
            }
            @match not_configured {
                Some(why) => p.error role="alert" { (why) },
                None => {
                    @if changes_money(session) {
                        form.card method="post" action="/admin/sync" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sync from Stripe now" }
                        }
                    } @else {
                        p { "Syncing needs the permission to change payments." }
                    }
                }
            }
        },
    )
}

pub(super) fn subscriptions(
    session: &ConsoleSession,
    f: &MoneyFilters,
    listed: &Listed<Subscription>,
) -> Markup {
    let found = &listed.page;
    layout(
        "Subscriptions",
        Some(session),
        html! {
            (subnav("/admin/subscriptions"))
            h1 { "Subscriptions" }
            form.filters method="get" action="/admin/subscriptions" aria-label="Filter subscriptions" {
                (provider_select(&f.provider))
                div.field {
                    label for="f-status" { "Status" }
                    select id="f-status" name="status" {
                        (option("", &f.status, "Any status"))
                        @for s in SUBSCRIPTION_STATUSES { (option(s, &f.status, s)) }
                    }
                }
                div.field { button type="submit" { "Filter" } }
            }
            @if found.data.is_empty() {
                p { "No subscription matches these filters." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Subscriptions by provider and id" }
                        thead { tr {
                            th scope="col" { "Provider" } th scope="col" { "Subscription" } th scope="col" { "Status" }
                            th scope="col" { "Period ends" } th scope="col" { "Cancels at period end" }
                            th scope="col" { "License" } th scope="col" { "Customer" }
                        } }
                        tbody {
                            @for s in &found.data {
                                tr {
                                    td data-label="Provider" { (s.provider) }
                                    td data-label="Subscription" { code { (s.subscription_id) } }
                                    td data-label="Status" { (s.status.as_str()) }
                                    td data-label="Period ends" { @match s.period_end { Some(at) => (day(at)), None => "—" } }
                                    td data-label="Cancels at period end" { @if s.cancel_at_period_end { "yes" } @else { "no" } }
                                    td data-label="License" {
                                        @match s.license_id {
                                            Some(l) => a href={ "/admin/licenses/" (l) } { "license " (l) },
                                            None => "none yet",
                                        }
                                    }
                                    td data-label="Customer" { (customer_link(listed, s.customer_id)) }
                                }
                            }
                        }
                    }
                }
                (next_link("/admin/subscriptions", f, found.next_cursor.as_ref()))
            }
        },
    )
}

pub(super) fn outbox(
    session: &ConsoleSession,
    f: &MoneyFilters,
    found: &Page<OutboxMail>,
) -> Markup {
    let can_resend = changes_money(session);
    layout(
        "Mail outbox",
        Some(session),
        html! {
            (subnav("/admin/outbox"))
            @if f.done.as_deref() == Some("resent") {
                p.notice role="status" { "The mail is back in the queue: the sender takes it at its next pass." }
            }
            h1 { "Mail outbox" }
            p { "Mail to buyers waits here until an SMTP server takes it; a failed attempt is tried again later by itself, with growing delays." }
            form.filters method="get" action="/admin/outbox" aria-label="Filter mail" {
                div.field {
                    label for="f-state" { "State" }
                    select id="f-state" name="state" {
                        (option("", &f.state, "Any state"))
                        @for s in MailState::ALL { (option(s.as_str(), &f.state, s.as_str())) }
                    }
                }
                div.field { button type="submit" { "Filter" } }
            }
            @if found.data.is_empty() {
                p { "No mail matches this filter." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Mail, newest first" }
                        thead { tr {
                            th scope="col" { "Queued" } th scope="col" { "To" } th scope="col" { "Subject" }
                            th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Last error" }
                            @if can_resend { th scope="col" { span.sr { "Action" } } }
                        } }
                        tbody {
                            @for m in &found.data {
                                @let state = m.state();
                                tr {
                                    td data-label="Queued" { (when(m.created)) }
                                    td data-label="To" { (m.to) }
                                    td data-label="Subject" { (m.subject) }
                                    td data-label="State" {
                                        span class={ "badge mail-" (state.as_str()) } { (state.as_str()) }
                                        @match (state, m.sent) {
                                            (MailState::Sent, Some(at)) => { " " (when(at)) },
                                            (MailState::Sent, None) => {},
                                            _ => { " · next try " (when(m.next_attempt)) },
                                        }
                                    }
                                    td data-label="Attempts" { (m.attempts) }
                                    td data-label="Last error" { (m.last_error.as_deref().unwrap_or("—")) }
                                    @if can_resend {
                                        td.action {
                                            @if state == MailState::Failed {
                                                form method="post" action={ "/admin/outbox/" (m.id) "/resend" } {
                                                    input type="hidden" name="csrf" value=(session.csrf);
                                                    button type="submit" aria-label={ "Resend the mail to " (m.to) } { "Resend" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                (next_link("/admin/outbox", f, found.next_cursor.as_ref()))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_message_never_echoes_the_request() {
        assert_eq!(retried_message(Some("<b>")), None);
        assert!(retried_message(Some("applied")).is_some_and(|(_, ok)| ok));
        assert!(retried_message(Some("failed")).is_some_and(|(_, ok)| !ok));
    }
}
