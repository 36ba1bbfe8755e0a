//! The dashboard's page and its charts: inline SVG drawn here from the numbers, with no
//! script and no inline style (colours come from classes in `console.css`, shapes from SVG
//! attributes).
//!
//! Every chart is an `<svg role="img">` named by its `<title>` and described by a `<desc>`
//! that says what a reader would take from it, followed by the same numbers as a table (in a
//! `<details>`, for anyone who wants the figures). Text that must stay legible on a phone —
//! axis dates, peaks, legends — is HTML around the SVG, not text inside it, because a bar
//! chart's SVG stretches to the page width; only the calendar, whose width is bounded, has
//! text inside.
//!
//! SVG elements are always written with a closing tag (`rect … {}`, never `rect …;`): in
//! HTML, only SVG's own self-closing syntax ends an element in SVG content, and maud writes a
//! void element without it, which would make everything after it the element's child.

use chrono::{Datelike, NaiveDate};
use keyturn_app::{ConsoleSession, Dashboard, Revenue, EXPIRING_DAYS};
use keyturn_core::dashboard::{DailySeries, Window};
use maud::{html, Markup};

use super::pages::{layout, money};

/// Where the money pages list failed provider events and unsent mail.
pub(super) const FAILED_EVENTS: &str = "/admin/events?status=failed";
pub(super) const UNSENT_MAIL: &str = "/admin/mail?status=pending";
pub(super) const FAILING_MAIL: &str = "/admin/mail?status=failed";

/// Bar width and gap, in viewBox units per day.
const DAY_W: i64 = 10;
const BAR_W: i64 = 8;
/// The bars' height in viewBox units.
const CHART_H: i64 = 100;

fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn short(d: NaiveDate) -> String {
    d.format("%b %-d").to_string()
}

/// A series' colour class: validation codes keep theirs in every chart.
fn series_class(name: &str, index: usize) -> String {
    let code = match name {
        "VALID" => "ok",
        "NOT_FOUND" => "gray",
        "BLOCKED" => "bad",
        "EXPIRED" => "warn",
        "NOT_ACTIVATED" => "violet",
        "TOO_MANY_MACHINES" => "brown",
        "FEATURE_MISSING" => "teal",
        "WRONG_PRODUCT" => "pink",
        _ => return format!("s{}", index % 6),
    };
    format!("c-{code}")
}

/// A readable name for a series.
fn series_label(name: &str) -> String {
    match name {
        "VALID" => "valid".into(),
        "licenses" => "new licenses".into(),
        other => other.replace('_', " ").to_lowercase(),
    }
}

/// One stacked segment of a day's bar, in viewBox units.
struct Bar {
    class: String,
    x: i64,
    y: i64,
    height: i64,
    title: String,
}

/// A stacked bar chart with one bar per day. `unit` formats values for people.
fn bar_chart(id: &str, title: &str, data: &DailySeries, unit: &dyn Fn(i64) -> String) -> Markup {
    let totals = data.day_totals();
    let peak = data.peak();
    let dates: Vec<NaiveDate> = data.dates().collect();
    let (first, last) = (dates.first().copied(), dates.last().copied());
    let middle = dates.get(dates.len() / 2).copied();
    let peak_day = totals
        .iter()
        .position(|t| *t == peak && peak > 0)
        .and_then(|i| dates.get(i).copied());
    let shown: Vec<(usize, &keyturn_core::dashboard::Series)> = data
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| s.values.iter().any(|v| *v != 0))
        .collect();
    let description = match (peak_day, first, last) {
        (Some(day), Some(first), Some(last)) => format!(
            "{} from {} to {}; busiest day {} with {}.{}",
            unit(data.total()),
            date(first),
            date(last),
            date(day),
            unit(peak),
            shown
                .iter()
                .map(|(_, s)| format!(
                    " {}: {}.",
                    series_label(&s.name),
                    unit(s.values.iter().fold(0i64, |a, v| a.saturating_add(*v)))
                ))
                .collect::<String>()
        ),
        _ => "Nothing in this period.".to_owned(),
    };
    let width = data.days as i64 * DAY_W;
    // Height of `value` in viewBox units (the peak fills 95 of them).
    let scale = |value: i64| -> i64 {
        if peak <= 0 {
            0
        } else {
            ((value as i128 * 95) / peak as i128) as i64
        }
    };
    // Each day's bar is its series stacked from the bottom, the first series lowest; a
    // value too small to see still gets one unit, so no day with something looks empty.
    let mut bars = Vec::new();
    for (i, day) in dates.iter().enumerate() {
        let mut top = CHART_H;
        for (si, s) in &shown {
            let value = s.values[i];
            if value <= 0 {
                continue;
            }
            let height = scale(value).clamp(1, top);
            top -= height;
            bars.push(Bar {
                class: series_class(&s.name, *si),
                x: i as i64 * DAY_W + (DAY_W - BAR_W) / 2,
                y: top,
                height,
                title: format!(
                    "{} · {}: {}",
                    date(*day),
                    series_label(&s.name),
                    unit(value)
                ),
            });
        }
    }
    html! {
        figure.chart id=(id) {
            figcaption {
                h3 id={ (id) "-t" } { (title) }
                p.peak { @if peak > 0 { "Busiest day: " (unit(peak)) } @else { "Nothing in this period" } }
            }
            svg.bars role="img" aria-labelledby={ (id) "-st " (id) "-sd" }
                viewBox={ "0 0 " (width) " " (CHART_H) } preserveAspectRatio="none" {
                title id={ (id) "-st" } { (title) }
                desc id={ (id) "-sd" } { (description) }
                @for q in [1i64, 2, 3, 4] {
                    @let y = CHART_H - (95 * q / 4);
                    line.grid x1="0" x2=(width) y1=(y) y2=(y) vector-effect="non-scaling-stroke" {}
                }
                @for bar in &bars {
                    rect class=(bar.class) x=(bar.x) y=(bar.y) width=(BAR_W) height=(bar.height) {
                        title { (bar.title) }
                    }
                }
                line.axis x1="0" x2=(width) y1=(CHART_H) y2=(CHART_H) vector-effect="non-scaling-stroke" {}
            }
            div.axis aria-hidden="true" {
                span { @if let Some(d) = first { (short(d)) } }
                span { @if let Some(d) = middle { (short(d)) } }
                span { @if let Some(d) = last { (short(d)) } }
            }
            @if !shown.is_empty() {
                ul.legend {
                    @for (si, s) in &shown {
                        li {
                            span class={ "swatch " (series_class(&s.name, *si)) } aria-hidden="true" {}
                            (series_label(&s.name)) ": " strong { (unit(s.values.iter().fold(0i64, |a, v| a.saturating_add(*v)))) }
                        }
                    }
                }
            }
            details {
                summary { "Show as a table" span.sr { ": " (title) } }
                div.scroll {
                    table {
                        caption { (title) }
                        thead { tr {
                            th scope="col" { "Day" }
                            @for (_, s) in &shown { th scope="col" { (series_label(&s.name)) } }
                            @if shown.len() != 1 { th scope="col" { "Total" } }
                        } }
                        tbody {
                            @for (i, day) in dates.iter().enumerate().rev() {
                                @if totals[i] != 0 {
                                    tr {
                                        th scope="row" { (date(*day)) }
                                        @for (_, s) in &shown { td.num { (unit(s.values[i])) } }
                                        @if shown.len() != 1 { td.num { (unit(totals[i])) } }
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

/// The calendar cell size, in viewBox units.
const CELL: i64 = 44;
const HEAD: i64 = 22;

/// The heat class of `n` against the busiest day `max`: 0 for none, 1–4 by quarter.
fn heat(n: i64, max: i64) -> i64 {
    if n <= 0 || max <= 0 {
        0
    } else {
        ((n as i128 * 4 + max as i128 - 1) / max as i128).clamp(1, 4) as i64
    }
}

/// Licenses expiring per day over the next weeks, as a calendar: a week per row, Monday
/// first, each day's count in its cell, darker for more.
fn calendar(data: &DailySeries) -> Markup {
    let values = data.day_totals();
    let max = data.peak();
    let dates: Vec<NaiveDate> = data.dates().collect();
    let offset = dates
        .first()
        .map_or(0, |d| d.weekday().num_days_from_monday() as i64);
    let rows = (offset + dates.len() as i64 + 6) / 7;
    let (w, h) = (7 * CELL, HEAD + rows * CELL);
    let total = data.total();
    let description = match max {
        0 => format!("No license expires in the next {EXPIRING_DAYS} days."),
        _ => {
            let busiest = values
                .iter()
                .position(|v| *v == max)
                .and_then(|i| dates.get(i))
                .map(|d| date(*d))
                .unwrap_or_default();
            format!(
                "{} licenses expire in the next {EXPIRING_DAYS} days; the most, {}, on {busiest}.",
                count(total),
                count(max)
            )
        }
    };
    html! {
        figure.chart.calendar id="expiring" {
            figcaption {
                h3 id="expiring-t" { "Licenses expiring in the next " (EXPIRING_DAYS) " days" }
                p.peak { (count(total)) " in all" }
            }
            svg.heat role="img" aria-labelledby="expiring-st expiring-sd" viewBox={ "0 0 " (w) " " (h) } {
                title id="expiring-st" { "Licenses expiring in the next " (EXPIRING_DAYS) " days" }
                desc id="expiring-sd" { (description) }
                @for (i, name) in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].iter().enumerate() {
                    text.weekday x=(i as i64 * CELL + CELL / 2) y="15" text-anchor="middle" { (name) }
                }
                @for (i, day) in dates.iter().enumerate() {
                    @let slot = offset + i as i64;
                    @let (x, y) = ((slot % 7) * CELL, HEAD + (slot / 7) * CELL);
                    @let level = heat(values[i], max);
                    g {
                        title { (date(*day)) ": " (count(values[i])) " expiring" }
                        rect class={ "heat-" (level) } x=(x + 2) y=(y + 2) width=(CELL - 4) height=(CELL - 4) rx="4" {}
                        text class={ "date heat-text-" (level) } x=(x + 6) y=(y + 14) {
                            @if day.day() == 1 || i == 0 { (short(*day)) } @else { (day.day()) }
                        }
                        @if values[i] > 0 {
                            text class={ "n heat-text-" (level) } x=(x + CELL / 2) y=(y + 34) text-anchor="middle" { (count(values[i])) }
                        }
                    }
                }
            }
            ul.legend aria-hidden="true" {
                li { span class="swatch heat-0" {} "none" }
                @for level in 1..=4i64 { li { span class={ "swatch heat-" (level) } {} } }
                li { "most" }
            }
            details {
                summary { "Show as a table" span.sr { ": licenses expiring" } }
                @if total == 0 {
                    p { "None." }
                } @else {
                    table {
                        caption { "Licenses expiring per day" }
                        thead { tr { th scope="col" { "Day" } th scope="col" { "Expiring" } } }
                        tbody {
                            @for (i, day) in dates.iter().enumerate() {
                                @if values[i] > 0 {
                                    tr { th scope="row" { (date(*day)) } td.num { (count(values[i])) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn revenue_chart(r: &Revenue, index: usize) -> Markup {
    let currency = r.currency.to_uppercase();
    let unit = |minor: i64| format!("{} {currency}", money(minor));
    bar_chart(
        &format!("revenue-{index}"),
        &format!("Revenue per day in {currency}, by provider"),
        &r.by_provider,
        &unit,
    )
}

/// The dashboard page.
pub fn dashboard(session: &ConsoleSession, d: &Dashboard) -> Markup {
    let plain = |n: i64| count(n);
    let days = d.window.days();
    layout(
        "Dashboard",
        Some(session),
        html! {
            div.heading {
                h1 { "Dashboard" }
                nav.window aria-label="Period" {
                    @for w in Window::ALL {
                        @if w == d.window {
                            a href={ "/admin?days=" (w.days()) } aria-current="page" { "Last " (w.days()) " days" }
                        } @else {
                            a href={ "/admin?days=" (w.days()) } { "Last " (w.days()) " days" }
                        }
                    }
                }
            }
            @if let Some(p) = d.product_scope {
                p.notice role="status" { "Numbers for product " (p) " only." }
            }
            @if let Some(a) = &d.attention {
                section.attention aria-labelledby="attention-h" {
                    h2 id="attention-h" { "Needs attention" }
                    @if a.failed_events == 0 && a.unsent_mail == 0 {
                        p { "Nothing needs attention: every provider event was applied and all mail is sent." }
                    } @else {
                        ul.tiles {
                            li class={ "tile" @if a.failed_events > 0 { " alert" } } {
                                a href=(FAILED_EVENTS) { span.big { (count(a.failed_events)) } " failed provider events" }
                            }
                            li class={ "tile" @if a.failing_mail > 0 { " alert" } } {
                                a href=(FAILING_MAIL) { span.big { (count(a.failing_mail)) } " mails failing to send" }
                            }
                            li.tile {
                                a href=(UNSENT_MAIL) { span.big { (count(a.unsent_mail)) } " mails waiting to be sent" }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="summary-h" {
                h2 id="summary-h" { "Last " (days) " days at a glance" }
                ul.tiles {
                    li.tile { span.big { (count(d.new_licenses.total())) } " new licenses" }
                    li.tile { span.big { (count(d.validations.total())) } " validations" }
                    li.tile { span.big { (count(d.activations.total())) } " activation requests" }
                    li.tile { span.big { (count(d.machines.holding)) } " machines holding a seat" }
                    li.tile { span.big { (count(d.machines.seen)) } " machines seen in " (days) " days" }
                    @if let Some(revenue) = &d.revenue {
                        @for r in revenue {
                            li.tile { span.big { (money(r.by_provider.total())) " " (r.currency.to_uppercase()) } " revenue" }
                        }
                    }
                }
            }
            section aria-labelledby="sales-h" {
                h2 id="sales-h" { "Sales" }
                div.charts {
                    (bar_chart("new-licenses", "New licenses per day", &d.new_licenses, &plain))
                    @match &d.revenue {
                        None => p { "Revenue is shown to users who may read payments of every product." },
                        Some(r) if r.is_empty() => p { "No payment received in the last " (days) " days." },
                        Some(revenue) => {
                            @for (i, r) in revenue.iter().enumerate() { (revenue_chart(r, i)) }
                        },
                    }
                }
            }
            section aria-labelledby="usage-h" {
                h2 id="usage-h" { "Programs" }
                div.charts {
                    (bar_chart("validations", "Validations per day, by result", &d.validations, &plain))
                    (bar_chart("activations", "Activation requests per day, by result", &d.activations, &plain))
                }
                p.hint { "Counted by each server and stored every few seconds; today's numbers grow during the day." }
            }
            section aria-labelledby="renewals-h" {
                h2 id="renewals-h" { "Coming up" }
                (calendar(&d.expiring))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_levels_split_the_busiest_day_in_quarters() {
        assert_eq!(heat(0, 10), 0);
        assert_eq!(heat(1, 10), 1);
        assert_eq!(heat(3, 10), 2);
        assert_eq!(heat(10, 10), 4);
        assert_eq!(heat(i64::MAX, i64::MAX), 4);
        assert_eq!(heat(5, 0), 0);
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1000), "-1,000");
        assert_eq!(count(i64::MIN), "-9,223,372,036,854,775,808");
    }
}
