//! The portal's billing pages, `maud` templates: every value is escaped on output.

use chrono::{DateTime, Utc};
use keyturn_app::{PortalBilling, PortalPayment, PortalSession, PortalSubscription};
use keyturn_core::payment::SubscriptionStatus;
use maud::{html, Markup};

use super::pages::layout;

fn day(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Currencies whose amounts have no minor unit (Stripe's list): 500 JPY is `500`, not `5.00`.
const ZERO_DECIMAL: [&str; 16] = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// An amount in the currency's minor units, as a buyer reads it: `25.00 EUR`.
pub(super) fn amount(minor: Option<i64>, currency: Option<&str>) -> String {
    let Some(minor) = minor else {
        return "amount not reported".into();
    };
    let code = currency.unwrap_or("").to_uppercase();
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let number = if ZERO_DECIMAL.contains(&code.as_str()) {
        format!("{sign}{abs}")
    } else {
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    };
    if code.is_empty() {
        number
    } else {
        format!("{number} {code}")
    }
}

/// The provider's name as its buyers know it.
pub(super) fn provider_name(provider: &str) -> &str {
    match provider {
        "stripe" => "Stripe",
        "paypal" => "PayPal",
        "paddle" => "Paddle",
        "lemonsqueezy" => "Lemon Squeezy",
        "fastspring" => "FastSpring",
        "gumroad" => "Gumroad",
        "sendowl" => "SendOwl",
        "dpd" => "DPD",
        other => other,
    }
}

fn status_label(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Active => "active",
        SubscriptionStatus::Trialing => "trial",
        SubscriptionStatus::PastDue => "payment overdue",
        SubscriptionStatus::Unpaid => "unpaid",
        SubscriptionStatus::Canceled => "cancelled",
        SubscriptionStatus::Incomplete => "awaiting first payment",
        SubscriptionStatus::IncompleteExpired => "never started",
        SubscriptionStatus::Paused => "paused",
        SubscriptionStatus::Unknown => "status not yet known",
    }
}

/// The badge colours the stylesheet has: green, amber, red, grey.
fn status_class(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Active | SubscriptionStatus::Trialing => "valid",
        SubscriptionStatus::PastDue
        | SubscriptionStatus::Unpaid
        | SubscriptionStatus::Incomplete => "soon",
        SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired => "expired",
        SubscriptionStatus::Paused | SubscriptionStatus::Unknown => "off",
    }
}

pub fn billing(buyer: &PortalSession, b: &PortalBilling) -> Markup {
    layout(
        "Billing",
        Some(buyer),
        html! {
            h1 { "Billing" }
            section aria-labelledby="subscriptions" {
                h2 id="subscriptions" { "Subscriptions" }
                @if b.subscriptions.is_empty() {
                    p { "You have no subscriptions." }
                }
                @for row in &b.subscriptions {
                    (subscription_card(row))
                }
                (manage_forms(buyer, b))
            }
            section aria-labelledby="payments" {
                h2 id="payments" { "Payment history" }
                (payments(&b.payments.data))
                @if let Some(next) = &b.payments.next_cursor {
                    p { a href={ "/portal/billing?before=" (next) "#payments" } { "Older payments" } }
                }
            }
        },
    )
}

fn subscription_card(row: &PortalSubscription) -> Markup {
    let s = &row.subscription;
    let heading = format!("sub-{}-{}", s.provider, s.subscription_id);
    let title = match (&row.product, &row.plan) {
        (Some(product), Some(plan)) => format!("{product}: {plan}"),
        (None, Some(plan)) => plan.clone(),
        _ => "Subscription".to_owned(),
    };
    let ended = s.status.is_ended();
    html! {
        section.card.wide aria-labelledby=(heading) {
            h3 id=(heading) {
                (title) " "
                span class={ "badge " (status_class(s.status)) } { (status_label(s.status)) }
            }
            dl.facts {
                dt { "Billed by" }
                dd { (provider_name(&s.provider)) }
                @if s.quantity > 1 {
                    dt { "Quantity" }
                    dd { (s.quantity) }
                }
                @if ended {
                    dt { "Ended" }
                    dd { @match s.period_end { Some(at) => (day(at)), None => "yes" } }
                } @else if s.cancel_at_period_end {
                    dt { "Next payment" }
                    dd { "none: cancelled at the end of the period" }
                    dt { "Ends on" }
                    dd { @match s.period_end { Some(at) => (day(at)), None => "the end of the current period" } }
                } @else {
                    dt { "Next payment" }
                    dd { @match s.period_end { Some(at) => (day(at)), None => "not yet known" } }
                    dt { "Renews automatically" }
                    dd { "yes" }
                }
                @if let Some(key) = &row.key {
                    dt { "License key" }
                    dd.key { (key) }
                }
            }
        }
    }
}

fn manage_forms(buyer: &PortalSession, b: &PortalBilling) -> Markup {
    let several = b.stripe_accounts.len() > 1;
    html! {
        @if b.stripe_accounts.is_empty() {
            @if !b.subscriptions.is_empty() {
                p.hint { "Your payments are not managed through Stripe here; to change them, contact the vendor or use the store you bought from." }
            }
        } @else {
            div.card.wide {
                p { "Change your card, download invoices or cancel on Stripe's billing page. You come back here afterwards." }
                @for account in &b.stripe_accounts {
                    form method="post" action="/portal/billing/manage" {
                        input type="hidden" name="csrf" value=(buyer.csrf);
                        input type="hidden" name="customer" value=(account.customer_id);
                        button type="submit" {
                            "Manage billing"
                            @if several {
                                " for " (account.name)
                                @if let Some(c) = &account.company { " (" (c) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn payments(rows: &[PortalPayment]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No payments are on record for you." }
        } @else {
            div.scroll {
                table.stack {
                    caption.sr { "Your payments, newest first" }
                    thead {
                        tr {
                            th scope="col" { "Date" }
                            th scope="col" { "Amount" }
                            th scope="col" { "For" }
                            th scope="col" { "Billed by" }
                            th scope="col" { "Status" }
                            th scope="col" { "Receipt" }
                        }
                    }
                    tbody {
                        @for row in rows {
                            @let p = &row.payment;
                            @let sum = amount(p.amount, p.currency.as_deref());
                            tr {
                                td data-label="Date" { (day(p.created)) }
                                td data-label="Amount" { (sum) }
                                td data-label="For" { (row.plan.as_deref().unwrap_or("—")) }
                                td data-label="Billed by" { (provider_name(&p.provider)) }
                                td data-label="Status" {
                                    span class={ "badge pay-" (p.status.as_str()) } { (p.status.as_str()) }
                                }
                                td data-label="Receipt" {
                                    @match &row.receipt {
                                        Some(url) => {
                                            a href=(url) rel="noopener noreferrer"
                                                aria-label={ "Receipt for " (sum) " of " (day(p.created)) } { "Receipt" }
                                        }
                                        None => { span.hint { "none given" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.hint { "Receipts are linked where the payment provider sent one with its report of the payment." }
        }
    }
}

pub fn no_account(buyer: &PortalSession) -> Markup {
    layout(
        "No billing account",
        Some(buyer),
        html! {
            h1 { "There is no billing page to open" }
            p.error role="alert" {
                "No Stripe customer is on record for this account, so there is no Stripe billing page for it. "
                "If you paid elsewhere, manage the payment there or contact the vendor."
            }
            p { a href="/portal/billing" { "Back to billing" } }
        },
    )
}

pub fn provider_unavailable(buyer: &PortalSession) -> Markup {
    layout(
        "Billing unavailable",
        Some(buyer),
        html! {
            h1 { "Billing could not be opened" }
            p.error role="alert" { "The payment provider could not be reached. Nothing was changed; try again in a minute." }
            p { a href="/portal/billing" { "Back to billing" } }
        },
    )
}

pub fn use_secret(csrf: &str, secret: &str) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            form.card method="post" action={ "/portal/secret/" (secret) } {
                p { "Continue to see your licenses and billing." }
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { "Continue" }
            }
        },
    )
}

pub fn secret_refused() -> Markup {
    layout(
        "Link not valid",
        None,
        html! {
            h1 { "This link does not work" }
            p.error role="alert" { "The portal link is not valid (any more). Sign in with your email or license key instead." }
            p { a href="/portal/sign-in" { "Sign in" } }
        },
    )
}

pub fn secret_throttled() -> Markup {
    layout(
        "Too many attempts",
        None,
        html! {
            h1 { "Too many attempts" }
            p.error role="alert" { "Wait 15 minutes, then try again." }
            p { a href="/portal/sign-in" { "Sign in another way" } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_follow_their_currency() {
        assert_eq!(amount(Some(2500), Some("eur")), "25.00 EUR");
        assert_eq!(amount(Some(5), Some("usd")), "0.05 USD");
        assert_eq!(amount(Some(500), Some("jpy")), "500 JPY");
        assert_eq!(amount(Some(-1999), None), "-19.99");
        assert_eq!(amount(None, Some("eur")), "amount not reported");
    }
}
