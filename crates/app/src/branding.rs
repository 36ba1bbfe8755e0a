//! The seller's branding and the mails buyers receive.
//!
//! Every mail is composed here, in the transaction that queues it: the product's own template
//! for its kind when it has one, else the default below; then the branding (name, logo, accent,
//! support address, policy links) around it. Both parts come from the same values, and in the
//! HTML part every value is escaped ([`keyturn_core::branding::render`]), so neither a buyer's
//! name nor a product name can add markup to a mail.

use keyturn_core::branding::{escape_html, render, Branding, MailKind, MailTemplate};
use keyturn_core::Permission;
use keyturn_store::Session;
use serde_json::json;

use crate::{App, AppError, Entity, Principal, Result};

/// A mail ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The default subject, text and HTML body of each kind (the HTML is the part inside the
/// branded frame).
pub fn default_template(kind: MailKind) -> MailTemplate {
    let (subject, text, html) = match kind {
        MailKind::KeyDelivered => (
            "Your license key for {{product}}",
            "Hello {{name}},\n\nthank you for your purchase. Your license key for {{product}}:\n\n{{key}}\n\n\
             Keep this message: you need the key to activate {{product}}.\n",
            "<p>Hello {{name}},</p><p>thank you for your purchase. Your license key for <strong>{{product}}</strong>:</p>\
             <p style=\"font-family:ui-monospace,Menlo,Consolas,monospace;font-size:17px;background:#eef2f7;padding:12px;border-radius:6px;white-space:pre-line\">{{key}}</p>\
             <p>Keep this message: you need the key to activate {{product}}.</p>",
        ),
        MailKind::SignInLink => (
            "Your sign-in link",
            "Hello,\n\nsomeone (hopefully you) asked to sign in to the customer portal, where you see \
             your licenses and machines. Open this link within 15 minutes; it works once:\n\n    {{link}}\n\n\
             If you did not ask for it, ignore this message.\n",
            "<p>Hello,</p><p>someone (hopefully you) asked to sign in to the customer portal, where you see \
             your licenses and machines. Open this link within 15 minutes; it works once:</p>\
             <p><a href=\"{{link}}\">Sign in to the customer portal</a></p>\
             <p>If you did not ask for it, ignore this message.</p>",
        ),
        MailKind::RenewalFailed => (
            "Your payment for {{product}} did not go through",
            "Hello {{name}},\n\nthe payment that renews your license for {{product}} ({{key}}) failed. \
             Please check your payment method so your license keeps running.\n",
            "<p>Hello {{name}},</p><p>the payment that renews your license for <strong>{{product}}</strong> \
             ({{key}}) failed. Please check your payment method so your license keeps running.</p>",
        ),
        MailKind::Expiring => (
            "Your license for {{product}} expires in {{days}} days",
            "Hello {{name}},\n\nyour license for {{product}} ({{key}}) expires on {{expires}}, in {{days}} days. \
             Renew it in time to keep using {{product}}.\n",
            "<p>Hello {{name}},</p><p>your license for <strong>{{product}}</strong> ({{key}}) expires on \
             {{expires}}, in {{days}} days. Renew it in time to keep using {{product}}.</p>",
        ),
        MailKind::Cancelled => (
            "Your subscription for {{product}} was cancelled",
            "Hello {{name}},\n\nyour subscription for {{product}} ({{key}}) was cancelled. {{expires}}\n",
            "<p>Hello {{name}},</p><p>your subscription for <strong>{{product}}</strong> ({{key}}) was \
             cancelled. {{expires}}</p>",
        ),
    };
    MailTemplate {
        kind,
        subject: subject.into(),
        text: text.into(),
        html: html.into(),
    }
}

/// Where a mail about a license mentions the portal: the default templates carry no
/// `{{portal_link}}`, so it is added after their text.
const PORTAL_TEXT: &str =
    "\nSee your licenses, machines and payments in the customer portal:\n\n    {{portal_link}}\n";
const PORTAL_HTML: &str =
    "<p><a href=\"{{portal_link}}\">See your licenses, machines and payments in the customer portal</a></p>";

/// Composes a mail of `kind` from `template` (the product's or the default), the branding and
/// `values`. The seller's name and support address are added to the values.
pub fn compose(
    branding: &Branding,
    template: &MailTemplate,
    is_default: bool,
    values: &[(&'static str, String)],
) -> ComposedMail {
    let mut values = values.to_vec();
    values.push(("seller", branding.display_name.clone()));
    if let Some(support) = &branding.support_email {
        values.push(("support_email", support.clone()));
    }
    let has_portal = values
        .iter()
        .any(|(k, v)| *k == "portal_link" && !v.is_empty());
    let (mut text_t, mut html_t) = (template.text.clone(), template.html.clone());
    if is_default && has_portal && template.kind != MailKind::SignInLink {
        text_t.push_str(PORTAL_TEXT);
        html_t.push_str(PORTAL_HTML);
    }
    framed(
        branding,
        &render(&template.subject, &values, false),
        &render(&text_t, &values, false),
        &render(&html_t, &values, true),
    )
}

/// A mail of `subject`, `text` and HTML `inner` (already safe) in the branding's frame.
pub(crate) fn framed(branding: &Branding, subject: &str, text: &str, inner: &str) -> ComposedMail {
    let subject = subject.replace(['\r', '\n'], " ");
    ComposedMail {
        text: format!("{}{}", text.trim_end(), text_footer(branding)),
        html: html_frame(branding, &subject, inner),
        subject,
    }
}

fn text_footer(b: &Branding) -> String {
    let mut out = String::from("\n");
    if !b.display_name.is_empty() {
        out.push_str(&format!("\n-- \n{}\n", b.display_name));
    }
    if let Some(support) = &b.support_email {
        out.push_str(&format!("Questions? Write to {support}\n"));
    }
    for (label, url) in b.links() {
        out.push_str(&format!("{label}: {url}\n"));
    }
    out
}

/// The branded frame around a mail's HTML: a header in the accent colour with the logo or
/// name, the body, and a footer with the support address and policy links. Inline styles
/// only: mail programs drop style sheets.
fn html_frame(b: &Branding, title: &str, inner: &str) -> String {
    let accent = escape_html(b.accent());
    let on_accent = b.accent_text();
    let link = escape_html(b.link_colour());
    let name = escape_html(&b.display_name);
    let head = match (&b.logo_url, b.display_name.is_empty()) {
        (Some(logo), _) => format!(
            "<img src=\"{}\" alt=\"{name}\" height=\"40\" style=\"height:40px;max-width:240px\">",
            escape_html(logo)
        ),
        (None, false) => format!("<strong style=\"font-size:20px\">{name}</strong>"),
        (None, true) => String::new(),
    };
    let mut footer = Vec::new();
    if let Some(support) = &b.support_email {
        let s = escape_html(support);
        footer.push(format!(
            "Questions? <a style=\"color:{link}\" href=\"mailto:{s}\">{s}</a>"
        ));
    }
    let links: Vec<String> = b
        .links()
        .into_iter()
        .map(|(label, url)| {
            format!(
                "<a style=\"color:{link}\" href=\"{}\">{label}</a>",
                escape_html(url)
            )
        })
        .collect();
    if !links.is_empty() {
        footer.push(links.join(" · "));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head>\
         <body style=\"margin:0;background:#f6f7f9;color:#1b1f24;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif\">\
         <div style=\"max-width:560px;margin:0 auto;background:#ffffff\">\
         <div style=\"background:{accent};color:{on_accent};padding:16px 20px\">{head}</div>\
         <div style=\"padding:8px 20px 16px;font-size:16px;line-height:1.5\">{inner}</div>\
         <div style=\"padding:12px 20px;border-top:1px solid #d8dde3;font-size:13px;color:#4b5563\">{footer}</div>\
         </div></body></html>",
        title = escape_html(title),
        footer = footer.join("<br>"),
    )
}

/// Plain text as HTML paragraphs, for a form's own (text-only) key mail.
pub(crate) fn text_as_html(text: &str) -> String {
    text.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            format!(
                "<p style=\"white-space:pre-line\">{}</p>",
                escape_html(p.trim_matches('\n'))
            )
        })
        .collect()
}

/// The branding as saved, or none yet (an empty name).
pub(crate) async fn branding_of(s: &mut Session) -> Result<Branding> {
    Ok(s.branding().await?.unwrap_or_default())
}

/// Composes a mail of `kind` for `product_id` (its template if it has one) inside `s`.
pub(crate) async fn compose_in(
    s: &mut Session,
    kind: MailKind,
    product_id: Option<i64>,
    values: &[(&'static str, String)],
) -> Result<ComposedMail> {
    let branding = branding_of(s).await?;
    let own = match product_id {
        Some(id) => s.mail_template(id, kind).await?,
        None => None,
    };
    Ok(match own {
        Some(t) => compose(&branding, &t, false, values),
        None => compose(&branding, &default_template(kind), true, values),
    })
}

/// What a template editor shows: the product's template or the default, and whether it is
/// the product's own.
#[derive(Debug, Clone)]
pub struct TemplateView {
    pub template: MailTemplate,
    pub own: bool,
}

impl App {
    /// The branding the pages show; anyone may see it (it is on every buy page).
    pub async fn public_branding(&self) -> Result<Branding> {
        let mut s = self.store.read().await?;
        branding_of(&mut s).await
    }

    pub async fn branding(&self, principal: &Principal) -> Result<Branding> {
        principal.require_unrestricted(Permission::Admin)?;
        self.public_branding().await
    }

    pub async fn set_branding(&self, principal: &Principal, input: Branding) -> Result<Branding> {
        principal.require_unrestricted(Permission::Admin)?;
        let branding = Branding::parse(input)?;
        let mut s = self.store.write().await?;
        s.put_branding(&branding, self.now()).await?;
        self.audit_setup(
            &mut s,
            principal,
            "branding_updated",
            json!({"display_name": branding.display_name}),
        )
        .await?;
        s.commit().await?;
        Ok(branding)
    }

    /// A product's template of `kind`, or the default.
    pub async fn mail_template(
        &self,
        principal: &Principal,
        product_id: i64,
        kind: MailKind,
    ) -> Result<TemplateView> {
        principal.require_for(Permission::ProductsRead, product_id)?;
        let mut s = self.store.read().await?;
        s.product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        Ok(match s.mail_template(product_id, kind).await? {
            Some(template) => TemplateView {
                template,
                own: true,
            },
            None => TemplateView {
                template: default_template(kind),
                own: false,
            },
        })
    }

    /// Saves a product's own template of `kind`.
    pub async fn set_mail_template(
        &self,
        principal: &Principal,
        product_id: i64,
        kind: MailKind,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<MailTemplate> {
        principal.require_for(Permission::ProductsWrite, product_id)?;
        if kind == MailKind::SignInLink {
            return Err(AppError::invalid(
                "kind",
                "the sign-in mail belongs to no product: it uses the default with the branding",
            ));
        }
        let template = MailTemplate::parse(kind, subject, text, html)?;
        let mut s = self.store.write().await?;
        s.product(product_id)
            .await?
            .ok_or(AppError::NotFound(Entity::Product))?;
        s.put_mail_template(product_id, &template, self.now())
            .await?;
        self.audit_setup(
            &mut s,
            principal,
            "mail_template_updated",
            json!({"product_id": product_id, "kind": kind.as_str()}),
        )
        .await?;
        s.commit().await?;
        Ok(template)
    }

    /// Goes back to the default template of `kind` for a product.
    pub async fn reset_mail_template(
        &self,
        principal: &Principal,
        product_id: i64,
        kind: MailKind,
    ) -> Result<()> {
        principal.require_for(Permission::ProductsWrite, product_id)?;
        let mut s = self.store.write().await?;
        if s.delete_mail_template(product_id, kind).await? {
            self.audit_setup(
                &mut s,
                principal,
                "mail_template_reset",
                json!({"product_id": product_id, "kind": kind.as_str()}),
            )
            .await?;
        }
        s.commit().await?;
        Ok(())
    }

    /// A template rendered with sample values and the current branding, for a preview; the
    /// template is checked as it would be when saved.
    pub async fn preview_mail(
        &self,
        principal: &Principal,
        kind: MailKind,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<ComposedMail> {
        principal.require(Permission::ProductsRead)?;
        let template = MailTemplate::parse(kind, subject, text, html)?;
        let branding = self.public_branding().await?;
        Ok(compose(&branding, &template, false, &kind.sample()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_carry_the_branding_and_escape_values() {
        let b = Branding {
            display_name: "Example <Soft>".into(),
            accent: Some("#ffcc00".into()),
            support_email: Some("help@example.com".into()),
            terms_url: Some("https://example.com/terms".into()),
            ..Default::default()
        };
        let values = vec![
            ("name", "Ann <script>".to_owned()),
            ("product", "Editor".to_owned()),
            ("key", "AAAAA-BBBBB".to_owned()),
            ("portal_link", "https://l.example/portal".to_owned()),
        ];
        let m = compose(&b, &default_template(MailKind::KeyDelivered), true, &values);
        assert_eq!(m.subject, "Your license key for Editor");
        assert!(m.text.contains("Hello Ann <script>,"), "{}", m.text);
        assert!(m.text.contains("AAAAA-BBBBB") && m.text.contains("https://l.example/portal"));
        assert!(m.text.contains("Example <Soft>") && m.text.contains("help@example.com"));
        assert!(m.html.contains("Ann &lt;script&gt;") && !m.html.contains("<script>"));
        assert!(m.html.contains("Example &lt;Soft&gt;"));
        assert!(
            m.html.contains("background:#ffcc00;color:#111111"),
            "{}",
            m.html
        );
        assert!(m.html.contains("href=\"https://example.com/terms\""));
        for kind in MailKind::ALL {
            let d = default_template(kind);
            MailTemplate::parse(kind, &d.subject, &d.text, &d.html).expect("defaults are valid");
        }
    }

    #[test]
    fn form_texts_become_paragraphs() {
        assert_eq!(
            text_as_html("Hi <b>\n\nKey:\n  K\n"),
            "<p style=\"white-space:pre-line\">Hi &lt;b&gt;</p><p style=\"white-space:pre-line\">Key:\n  K</p>"
        );
    }
}
