//! The webhook pages' templates (see [`super::webhooks`]). maud escapes every value on output,
//! so an endpoint's URL and description, a receiver's answer and an event body always show as
//! text, whatever they hold.

use keyturn_app::{ConsoleSession, DeliveryLog, DeliveryRows, EndpointRow, Page};
use keyturn_core::webhook::{DeliveryState, EventType, WebhookDelivery, DEFAULT_OVERLAP_HOURS};
use keyturn_core::{Permission, Product};
use maud::{html, Markup};

use super::pages::{layout, urlencode, when};
use super::setup_pages::{checkbox, copyable, csrf, next_page, text_field};
use super::webhooks::LogQuery;

/// How many characters of a receiver's answer a log row shows (the delivery's page shows all
/// that was kept).
const RESPONSE_PREVIEW: usize = 120;

fn sees_webhooks(s: &ConsoleSession) -> bool {
    s.principal
        .require_unrestricted(Permission::WebhooksRead)
        .is_ok()
}

fn changes_webhooks(s: &ConsoleSession) -> bool {
    s.principal
        .require_unrestricted(Permission::WebhooksWrite)
        .is_ok()
}

/// The webhooks entry of the main navigation, for users who may see endpoints.
pub(super) fn nav(s: &ConsoleSession) -> Markup {
    html! {
        @if sees_webhooks(s) { a href="/admin/webhooks" { "Webhooks" } }
    }
}

/// What a redirect after a change says happened (never text from the request).
fn notice(done: Option<&str>, count: Option<u64>) -> Markup {
    let message = match done {
        Some("created") => "Endpoint created.".to_owned(),
        Some("saved") => "Saved.".to_owned(),
        Some("enabled") => "Endpoint enabled: its pending deliveries resume.".to_owned(),
        Some("disabled") => {
            "Endpoint disabled: no deliveries are attempted until it is enabled again.".to_owned()
        }
        Some("rotated") => "The signing secret was replaced.".to_owned(),
        Some("deleted") => "Endpoint deleted, with its deliveries and their log.".to_owned(),
        Some("retried") => match count {
            Some(n) => format!("{n} failed deliveries are due again."),
            None => "The delivery is due again.".to_owned(),
        },
        Some("test") => "A test event was queued; its attempts show below once made.".to_owned(),
        _ => return html! {},
    };
    html! { p.notice role="status" { (message) } }
}

fn state_badge(state: DeliveryState) -> Markup {
    html! { span class={ "badge hook-" (state.as_str()) } { (state.as_str()) } }
}

fn enabled_badge(enabled: bool) -> Markup {
    if enabled {
        html! { span.badge.valid { "enabled" } }
    } else {
        html! { span.badge.off { "disabled" } }
    }
}

fn scope(product_id: Option<i64>, products: &[Product]) -> Markup {
    match product_id {
        None => html! { "all products" },
        Some(id) => match products.iter().find(|p| p.id == id) {
            Some(p) => html! { (p.name) " (" (id) ")" },
            None => html! { "product " (id) },
        },
    }
}

/// The first characters of a text, on a character boundary.
fn preview(text: &str) -> String {
    match text.char_indices().nth(RESPONSE_PREVIEW) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) fn endpoints(
    session: &ConsoleSession,
    found: &Page<EndpointRow>,
    done: Option<&str>,
) -> Markup {
    layout(
        "Webhooks",
        Some(session),
        html! {
            (notice(done, None))
            h1 { "Webhook endpoints" }
            p.hint { "Keyturn sends signed events to these URLs as licenses, customers, payments and mail change." }
            @if changes_webhooks(session) {
                p { a.button href="/admin/webhooks/new" { "New endpoint" } }
            }
            @if found.data.is_empty() {
                p { "No endpoint yet." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Endpoints, oldest first" }
                        thead { tr {
                            th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Products" }
                            th scope="col" { "State" } th scope="col" { "Last delivery" }
                            th scope="col" { "Failed" } th scope="col" { "Pending" }
                        } }
                        tbody {
                            @for row in &found.data {
                                @let e = &row.endpoint;
                                tr {
                                    td data-label="URL" {
                                        a href={ "/admin/webhooks/" (e.id) } { code { (e.url) } }
                                        @if !e.description.is_empty() { br; span.hint { (e.description) } }
                                    }
                                    td data-label="Events" { code { (e.events.join(", ")) } }
                                    td data-label="Products" { @match e.product_id { Some(p) => { "product " (p) }, None => "all" } }
                                    td data-label="State" { (enabled_badge(e.enabled)) }
                                    td data-label="Last delivery" {
                                        @match &row.activity.last {
                                            Some((state, status, at)) => {
                                                (state_badge(*state))
                                                @if let Some(s) = status { " HTTP " (s) }
                                                br; span.hint { (when(*at)) }
                                            }
                                            None => "none yet",
                                        }
                                    }
                                    td.num data-label="Failed" {
                                        @if row.activity.failed > 0 {
                                            a href={ "/admin/webhooks/" (e.id) "?state=failed" } { (row.activity.failed) }
                                        } @else { "0" }
                                    }
                                    td.num data-label="Pending" { (row.activity.pending) }
                                }
                            }
                        }
                    }
                }
                (next_page("/admin/webhooks", found.next_cursor.as_ref()))
            }
        },
    )
}

/// The fields an endpoint is made of, filled from `current` when editing.
fn endpoint_fields(
    url: &str,
    description: &str,
    events: &str,
    product_id: Option<i64>,
    products: &[Product],
) -> Markup {
    html! {
        label for="url" { "URL" }
        p.hint id="url-hint" { "Where events are POSTed; https unless the server allows private addresses." }
        input id="url" name="url" type="url" value=(url) maxlength="2000" required aria-describedby="url-hint";
        (text_field("description", "Description", description, Some("Optional: what receives these events."), false))
        label for="events" { "Events" }
        p.hint id="events-hint" {
            "Patterns separated by commas or spaces: " code { "*" } " for everything, "
            code { "license.*" } " for a kind, or exact types."
        }
        input id="events" name="events" type="text" value=(events) maxlength="2000" aria-describedby="events-hint events-list";
        details id="events-list" {
            summary { "Event types" }
            ul.inline-list {
                @for t in EventType::ALL.iter().filter(|t| **t != EventType::WebhookTest) { li { code { (t.as_str()) } } }
            }
        }
        label for="product_id" { "Products" }
        p.hint id="product-hint" { "Limited to one product, the endpoint gets only events about that product's licenses." }
        select id="product_id" name="product_id" aria-describedby="product-hint" {
            option value="" selected[product_id.is_none()] { "All products" }
            @for p in products {
                option value=(p.id) selected[product_id == Some(p.id)] { (p.name) " (" (p.id) ")" }
            }
        }
    }
}

pub(super) fn new_endpoint(session: &ConsoleSession, products: &[Product]) -> Markup {
    layout(
        "New webhook endpoint",
        Some(session),
        html! {
            h1 { "New webhook endpoint" }
            form.card.wide method="post" action="/admin/webhooks" {
                (csrf(session))
                (endpoint_fields("", "", "*", None, products))
                button type="submit" { "Create endpoint" }
            }
            p { a href="/admin/webhooks" { "Back to the endpoints" } }
        },
    )
}

/// A link to the delivery log with `state` as its filter.
fn log_href(id: i64, state: &str, before: Option<&str>) -> String {
    let mut href = format!("/admin/webhooks/{id}?state={}", urlencode(state));
    if let Some(b) = before {
        href.push_str("&before=");
        href.push_str(&urlencode(b));
    }
    href.push_str("#log");
    href
}

fn log_table(session: &ConsoleSession, rows: &DeliveryRows) -> Markup {
    let found = &rows.page;
    html! {
        @if found.data.is_empty() {
            p { "No delivery matches." }
        } @else {
            div.scroll {
                table.stack {
                    caption { "Deliveries, newest first" }
                    thead { tr {
                        th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "State" }
                        th scope="col" { "Attempts" } th scope="col" { "Status" } th scope="col" { "Latency" }
                        th scope="col" { "Response" } th scope="col" { "Created" }
                        @if changes_webhooks(session) { th scope="col" { span.sr { "Action" } } }
                    } }
                    tbody {
                        @for d in &found.data {
                            @let last = rows.last_attempts.get(&d.id);
                            tr {
                                td data-label="Delivery" { a href={ "/admin/webhooks/deliveries/" (d.id) } { "#" (d.id) } }
                                td data-label="Event" { code { (d.event_type) } br; span.hint { (d.event_id) } }
                                td data-label="State" { (state_badge(d.state)) (waiting(d)) }
                                td.num data-label="Attempts" { (d.attempts) }
                                td data-label="Status" {
                                    @match (d.last_status, &d.last_error) {
                                        (Some(s), _) => { "HTTP " (s) }
                                        (None, Some(e)) => { span.error { (preview(e)) } }
                                        (None, None) => "—",
                                    }
                                }
                                td.num data-label="Latency" { @match last { Some(a) => { (a.latency_ms) " ms" }, None => "—" } }
                                td data-label="Response" {
                                    @match last {
                                        Some(a) if !a.response.is_empty() => { code { (preview(&a.response)) } }
                                        _ => "—",
                                    }
                                }
                                td data-label="Created" { (when(d.created)) }
                                @if changes_webhooks(session) {
                                    td.action { (retry_button(session, d)) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &found.next_cursor {
                p { a href=(log_href(rows.endpoint.id, rows.state.map_or("", |s| s.as_str()), Some(next))) { "Older deliveries" } }
            }
        }
    }
}

/// A note on a pending delivery that waits for an older one of its license.
fn waiting(d: &WebhookDelivery) -> Markup {
    html! {
        @if d.state == DeliveryState::Pending {
            @match d.next_attempt_at {
                Some(at) => { br; span.hint { "next try " (when(at)) } }
                None => { br; span.hint { "waits for an older delivery of its license" } }
            }
        }
    }
}

fn retry_button(session: &ConsoleSession, d: &WebhookDelivery) -> Markup {
    let waits = d.state == DeliveryState::Pending && d.next_attempt_at.is_none();
    html! {
        @if !waits {
            form method="post" action={ "/admin/webhooks/deliveries/" (d.id) "/retry" } {
                (csrf(session))
                button.secondary type="submit" aria-label={ "Retry delivery " (d.id) } {
                    @if d.state == DeliveryState::Pending { "Try now" } @else { "Retry" }
                }
            }
        }
    }
}

pub(super) fn endpoint(
    session: &ConsoleSession,
    rows: &DeliveryRows,
    products: &[Product],
    secret: Option<&str>,
    q: &LogQuery,
) -> Markup {
    let e = &rows.endpoint;
    let current = rows.state.map_or("", |s| s.as_str());
    layout(
        &format!("Webhook endpoint {}", e.id),
        Some(session),
        html! {
            (notice(q.done.as_deref(), q.count))
            p { a href="/admin/webhooks" { "All endpoints" } }
            h1 { "Endpoint " (e.id) ": " code { (e.url) } }
            @if let Some(secret) = secret {
                div.secret role="status" {
                    p { strong { "Copy the signing secret now. It is shown only this once." } }
                    p { "Receivers verify the " code { "Keyturn-Signature" } " header of each delivery with it." }
                    (copyable("webhook-secret", "the signing secret", secret))
                }
            }
            dl.facts {
                dt { "State" } dd { (enabled_badge(e.enabled)) }
                @if let Some(why) = &e.disabled_reason { dt { "Disabled because" } dd { (why) } }
                dt { "Events" } dd { code { (e.events.join(", ")) } }
                dt { "Products" } dd { (scope(e.product_id, products)) }
                @if !e.description.is_empty() { dt { "Description" } dd { (e.description) } }
                @if let Some(at) = e.failing_since { dt { "Failing since" } dd.error { (when(at)) } }
                @if let Some(until) = e.previous_secret_until { dt { "Previous secret signs until" } dd { (when(until)) } }
                dt { "Created" } dd { (when(e.created)) }
            }
            @if changes_webhooks(session) {
                div.forms {
                    form.card method="post" action={ "/admin/webhooks/" (e.id) "/test" } {
                        h2 { "Test" }
                        p.hint { "Sends a webhook.test event to this endpoint only." }
                        (csrf(session))
                        button type="submit" { "Send test event" }
                    }
                    form.card method="post" action={ "/admin/webhooks/" (e.id) "/retry-failed" } {
                        h2 { "Retry failed deliveries" }
                        (csrf(session))
                        label for="since" { "Failed since (UTC)" }
                        input id="since" name="since" type="datetime-local" required;
                        button type="submit" { "Retry all failed since then" }
                    }
                    @if e.enabled {
                        form.card method="post" action={ "/admin/webhooks/" (e.id) "/disable" } {
                            h2 { "Pause" }
                            p.hint { "Deliveries keep queueing and are sent once it is enabled again." }
                            (csrf(session))
                            button.secondary type="submit" { "Disable endpoint" }
                        }
                    } @else {
                        form.card method="post" action={ "/admin/webhooks/" (e.id) "/enable" } {
                            h2 { "Resume" }
                            (csrf(session))
                            button type="submit" { "Enable endpoint" }
                        }
                    }
                }
            }
            h2 id="log" { "Delivery log" }
            form.filters method="get" action={ "/admin/webhooks/" (e.id) } aria-label="Filter deliveries" {
                div.field {
                    label for="f-state" { "State" }
                    select id="f-state" name="state" {
                        option value="" selected[current.is_empty()] { "Any state" }
                        @for s in [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed] {
                            option value=(s.as_str()) selected[current == s.as_str()] { (s.as_str()) }
                        }
                    }
                }
                div.field { button type="submit" { "Filter" } }
            }
            (log_table(session, rows))
            @if changes_webhooks(session) {
                h2 { "Settings" }
                form.card.wide method="post" action={ "/admin/webhooks/" (e.id) } {
                    (csrf(session))
                    (endpoint_fields(&e.url, &e.description, &e.events.join(", "), e.product_id, products))
                    button type="submit" { "Save" }
                }
                h2 { "Signing secret" }
                form.card method="post" action={ "/admin/webhooks/" (e.id) "/rotate" } {
                    (csrf(session))
                    label for="overlap_hours" { "Old secret keeps signing for (hours)" }
                    p.hint id="overlap-hint" { "0 to 168: deliveries carry both signatures meanwhile, so receivers can switch without losing events." }
                    input id="overlap_hours" name="overlap_hours" type="number" inputmode="numeric" min="0" max="168" step="1"
                        value=(DEFAULT_OVERLAP_HOURS) aria-describedby="overlap-hint";
                    button type="submit" { "Rotate secret" }
                }
                h2 { "Delete" }
                form.card method="post" action={ "/admin/webhooks/" (e.id) "/delete" } {
                    (csrf(session))
                    p.hint { "Removes the endpoint with its pending deliveries and their log." }
                    (checkbox("confirm", "Yes, delete this endpoint", false))
                    button.danger type="submit" { "Delete endpoint" }
                }
            }
        },
    )
}

pub(super) fn delivery(session: &ConsoleSession, log: &DeliveryLog, done: Option<&str>) -> Markup {
    let d = &log.delivery;
    let body = serde_json::to_string_pretty(&log.event).unwrap_or_default();
    layout(
        &format!("Delivery {}", d.id),
        Some(session),
        html! {
            (notice(done, None))
            p { a href={ "/admin/webhooks/" (d.endpoint_id) "#log" } { "Endpoint " (d.endpoint_id) "'s delivery log" } }
            h1 { "Delivery " (d.id) ": " code { (d.event_type) } }
            dl.facts {
                dt { "State" } dd { (state_badge(d.state)) (waiting(d)) }
                dt { "Event" } dd { code { (d.event_id) } }
                @if let Some(l) = d.license_id { dt { "License" } dd { a href={ "/admin/licenses/" (l) } { "license " (l) } } }
                dt { "Attempts" } dd { (d.attempts) }
                @if let Some(e) = &d.last_error { dt { "Last error" } dd.error { (e) } }
                dt { "Created" } dd { (when(d.created)) }
                @if let Some(at) = d.finished_at { dt { "Finished" } dd { (when(at)) } }
            }
            @if changes_webhooks(session) { (retry_button(session, d)) }
            h2 { "Attempts" }
            @if log.attempts_log.is_empty() {
                p { "No attempt yet." }
            } @else {
                div.scroll {
                    table.stack {
                        caption { "Attempts, oldest first" }
                        thead { tr {
                            th scope="col" { "When" } th scope="col" { "Status" } th scope="col" { "Latency" }
                            th scope="col" { "Error" } th scope="col" { "Response" } th scope="col" { "Node" }
                        } }
                        tbody {
                            @for a in &log.attempts_log {
                                tr {
                                    td data-label="When" { (when(a.at)) }
                                    td data-label="Status" { @match a.status { Some(s) => { "HTTP " (s) }, None => "no answer" } }
                                    td.num data-label="Latency" { (a.latency_ms) " ms" }
                                    td data-label="Error" { @match &a.error { Some(e) => { span.error { (e) } }, None => "—" } }
                                    td data-label="Response" { @if a.response.is_empty() { "—" } @else { pre { code { (a.response) } } } }
                                    td data-label="Node" { code { (a.node) } }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="event-body" {
                h2 id="event-body" { "Event as sent" }
                // Scrolls when long: focusable, so a keyboard scrolls it too.
                pre.payload tabindex="0" aria-labelledby="event-body" { code { (body) } }
            }
        },
    )
}
