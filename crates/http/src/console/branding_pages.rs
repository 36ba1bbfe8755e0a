//! The console's branding page and mail template editor, `maud` templates: every value is
//! escaped on output.

use keyturn_app::{ConsoleSession, TemplateView};
use keyturn_core::branding::{Branding, MailKind};
use keyturn_core::Product;
use maud::{html, Markup};

use super::pages::layout;
use super::setup_pages::{csrf, notice, text_area, text_field};

pub fn branding(
    session: &ConsoleSession,
    b: &Branding,
    products: &[Product],
    done: Option<&str>,
) -> Markup {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    layout(
        "Branding",
        Some(session),
        html! {
            (notice(done))
            h1 { "Branding" }
            p { "Buyers see this on the buy pages, in the customer portal and in every mail." }
            form.card.wide method="post" action="/admin/branding" {
                (csrf(session))
                (text_field("display_name", "Name buyers know you by", &b.display_name, None, true))
                (text_field("logo_url", "Logo address", &opt(&b.logo_url), Some("An https:// address of a small image; blank for the name alone."), false))
                (text_field("accent", "Accent colour", &opt(&b.accent), Some("Like #1d4ed8. Text on it is black or white, whichever reads better."), false))
                (text_field("support_email", "Support mail address", &opt(&b.support_email), None, false))
                (text_field("terms_url", "Terms address", &opt(&b.terms_url), Some("https:// addresses; blank ones are not shown."), false))
                (text_field("privacy_url", "Privacy policy address", &opt(&b.privacy_url), None, false))
                (text_field("refund_url", "Refund policy address", &opt(&b.refund_url), None, false))
                button type="submit" { "Save branding" }
            }
            h2 { "Mails" }
            p { "Each product may have its own words for a mail; the others use the default." }
            @if products.is_empty() {
                p { "No product yet." }
            } @else {
                table.stack {
                    caption { "Mail templates by product" }
                    thead { tr { th scope="col" { "Product" } th scope="col" { "Mails" } } }
                    tbody {
                        @for p in products {
                            tr {
                                td data-label="Product" { (p.name) }
                                td data-label="Mails" {
                                    @for kind in MailKind::ALL {
                                        @if kind != MailKind::SignInLink {
                                            a href={ "/admin/products/" (p.id) "/mails/" (kind.as_str()) } { (kind.label()) }
                                            " "
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

pub fn template(
    session: &ConsoleSession,
    product: &Product,
    view: &TemplateView,
    done: Option<&str>,
) -> Markup {
    let kind = view.template.kind;
    let title = format!("{} mail for {}", kind.label(), product.name);
    let action = format!("/admin/products/{}/mails/{}", product.id, kind.as_str());
    let names: Vec<String> = kind
        .placeholders()
        .iter()
        .map(|p| format!("{{{{{p}}}}}"))
        .collect();
    layout(
        &title,
        Some(session),
        html! {
            (notice(done))
            h1 { (title) }
            p {
                @if view.own { "This product has its own words for this mail." }
                @else { "This product uses the default; saving makes these words its own." }
            }
            p.hint { "Placeholders: " (names.join(" ")) ". In the HTML part every value is escaped." }
            form.card.wide method="post" action=(action) {
                (csrf(session))
                (text_field("subject", "Subject", &view.template.subject, None, true))
                (text_area("text", "Text part", &view.template.text, None, 8))
                (text_area("html", "HTML part (inside the branded frame)", &view.template.html, None, 8))
                button type="submit" { "Save mail" }
                " "
                button type="submit" formaction={ (action) "/preview" } formtarget="_blank" { "Preview with sample data" }
            }
            @if view.own {
                form method="post" action={ (action) "/reset" } {
                    (csrf(session))
                    button.danger type="submit" { "Go back to the default" }
                }
            }
            p { a href="/admin/branding" { "Back to branding" } }
        },
    )
}
