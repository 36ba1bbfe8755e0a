//! Mail to buyers goes through the outbox: queued in the same transaction as the licenses it
//! announces, sent later by a worker that retries with growing delays.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keyturn_core::branding::MailKind;
use keyturn_core::Email;
use keyturn_store::{QueuedMail, Session};

use crate::branding::compose_in;

use crate::{now, App, Result};

/// The longest wait between two attempts at one message.
const MAX_RETRY: Duration = Duration::from_secs(3600);

pub(crate) const DEFAULT_SUBJECT: &str = "Your license key for {product}";
pub(crate) const DEFAULT_BODY: &str = "Hello {name},\n\nthank you for your purchase. \
     Your license key for {product}:\n\n{keys}\n\nKeep this message: you need the key to activate {product}.\n";

/// Who gets the keys of a sale, and in which words.
pub(crate) struct KeyMail<'a> {
    pub to: Option<&'a str>,
    pub name: Option<&'a str>,
    pub product: &'a str,
    /// The product, whose own key mail template (if any) is used.
    pub product_id: i64,
    /// A payment form's own subject and body, if the sale came through one.
    pub template: Option<(String, String)>,
    /// The customer portal's address ([`crate::App::portal_url`]), if configured.
    pub portal: Option<&'a str>,
}

/// What a key mail says about the portal, after the keys (or where a template writes
/// `{portal}`).
pub(crate) const PORTAL_PARAGRAPH: &str =
    "See your licenses, machines and payments in the customer portal:\n\n    {url}\n";

/// Queues the mail that hands a buyer their keys; a missing or malformed address queues nothing.
///
/// The words come from, first, the product's own key mail template; else the payment form's
/// own text, when it differs from the default (shown as HTML paragraphs too); else the default
/// template. The branding frames all of them.
pub(crate) async fn queue_keys(
    s: &mut Session,
    mail: KeyMail<'_>,
    keys: &[String],
    at: DateTime<Utc>,
) -> Result<bool> {
    let Some(to) = mail.to.and_then(|e| Email::parse(e).ok()) else {
        return Ok(false);
    };
    if keys.is_empty() {
        return Ok(false);
    }
    let own_words = mail
        .template
        .filter(|(subject, body)| subject != DEFAULT_SUBJECT || body != DEFAULT_BODY);
    let has_product_template = s
        .mail_template(mail.product_id, MailKind::KeyDelivered)
        .await?
        .is_some();
    let composed = match own_words {
        Some((subject, body)) if !has_product_template => {
            let list = keys
                .iter()
                .map(|k| format!("    {k}"))
                .collect::<Vec<_>>()
                .join("\n");
            let fill = |t: &str| {
                t.replace("{name}", mail.name.unwrap_or("there"))
                    .replace("{product}", mail.product)
                    .replace("{keys}", &list)
            };
            let text = with_portal_link(&fill(&body), mail.portal);
            let branding = crate::branding::branding_of(s).await?;
            crate::branding::framed(
                &branding,
                &fill(&subject),
                &text,
                &crate::branding::text_as_html(&text),
            )
        }
        _ => {
            let values = [
                ("name", mail.name.unwrap_or("there").to_owned()),
                ("product", mail.product.to_owned()),
                ("key", keys.join("\n")),
                ("portal_link", mail.portal.unwrap_or("").to_owned()),
            ];
            compose_in(s, MailKind::KeyDelivered, Some(mail.product_id), &values).await?
        }
    };
    s.enqueue_mail_with_html(
        to.as_str(),
        &composed.subject,
        &composed.text,
        Some(&composed.html),
        at,
    )
    .await?;
    Ok(true)
}

/// A key mail's body with the portal's link where the template writes `{portal}`, or after
/// the rest; without a configured portal address, without it.
fn with_portal_link(body: &str, portal: Option<&str>) -> String {
    let paragraph = portal.map(|url| PORTAL_PARAGRAPH.replace("{url}", url));
    match paragraph {
        Some(p) if !body.contains("{portal}") => format!("{}\n\n{p}", body.trim_end()),
        p => body.replace("{portal}", p.as_deref().unwrap_or("")),
    }
}

/// Queues a portal sign-in link for `to`. The link is the whole secret: it is sent nowhere
/// else and never logged.
pub(crate) async fn queue_portal_link(
    s: &mut Session,
    to: &str,
    link: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let values = [("name", String::new()), ("link", link.to_owned())];
    let m = compose_in(s, MailKind::SignInLink, None, &values).await?;
    s.enqueue_mail_with_html(to, &m.subject, &m.text, Some(&m.html), at)
        .await?;
    Ok(())
}

pub(crate) const EMAIL_CHANGE_SUBJECT: &str = "Confirm your new email address";
pub(crate) const EMAIL_CHANGE_BODY: &str = "Hello,\n\nsomeone (hopefully you) asked to use this \
     address for their licenses in the customer portal. To confirm, open this link within an \
     hour; it works once:\n\n    {link}\n\nIf you did not ask for it, ignore this message: \
     nothing changes.\n";

/// Queues the confirmation link of an email change for the new address `to`.
pub(crate) async fn queue_email_change(
    s: &mut Session,
    to: &str,
    link: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    let body = EMAIL_CHANGE_BODY.replace("{link}", link);
    s.enqueue_mail(to, EMAIL_CHANGE_SUBJECT, &body, at).await?;
    Ok(())
}

/// When to try again after `attempts` failures: `base` doubled each time, at most an hour.
pub fn retry_delay(base: Duration, attempts: i64) -> Duration {
    let factor = 2u32.saturating_pow(attempts.clamp(0, 20) as u32);
    base.saturating_mul(factor).min(MAX_RETRY)
}

impl App {
    /// Takes due messages for sending; they stay taken for `lease`.
    pub async fn claim_mail(&self, limit: i64, lease: Duration) -> Result<Vec<QueuedMail>> {
        let at = now();
        let mut s = self.store.write().await?;
        let mail = s
            .claim_mail(
                at,
                at + chrono::Duration::from_std(lease).unwrap_or_default(),
                limit,
            )
            .await?;
        s.commit().await?;
        Ok(mail)
    }

    pub async fn mail_sent(&self, id: i64) -> Result<()> {
        let mut s = self.store.write().await?;
        s.mail_sent(id, now()).await?;
        Ok(s.commit().await?)
    }

    /// Records a failed attempt; the message is tried again after the retry delay. Its first
    /// failure is announced to the webhooks (`mail.failed`).
    pub async fn mail_failed(&self, mail: &QueuedMail, error: &str, base: Duration) -> Result<()> {
        let retry_at = now()
            + chrono::Duration::from_std(retry_delay(base, mail.attempts)).unwrap_or_default();
        let mut s = self.store.write().await?;
        s.mail_failed(mail.id, error, retry_at).await?;
        // Announced at its first failure; the outbox keeps trying it.
        if mail.attempts == 0 {
            let failed = serde_json::json!({
                "id": mail.id,
                "to": mail.to,
                "subject": mail.subject,
                "attempts": 1,
                "error": error,
                "next_attempt_at": retry_at,
            });
            crate::webhooks::emit::other(
                &mut s,
                keyturn_core::webhook::EventType::MailFailed,
                &failed,
                now(),
            )
            .await?;
        }
        Ok(s.commit().await?)
    }

    pub async fn unsent_mail(&self) -> Result<i64> {
        Ok(self.store.read().await?.unsent_mail().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_mails_link_to_the_portal_when_it_has_an_address() {
        let url = "https://licenses.example/portal";
        let appended = with_portal_link("Your key:\n\n    K\n", Some(url));
        assert!(appended.starts_with("Your key:\n\n    K\n\nSee your licenses"));
        assert!(appended.ends_with(&format!("    {url}\n")));
        let placed = with_portal_link("Key K.\n{portal}Bye.\n", Some(url));
        assert!(placed.contains(&format!("{url}\nBye.")), "{placed}");
        assert_eq!(placed.matches(url).count(), 1);
        assert_eq!(with_portal_link("Key K.\n", None), "Key K.\n");
        assert_eq!(with_portal_link("Key K.\n{portal}", None), "Key K.\n");
    }

    #[test]
    fn retries_back_off_and_are_capped() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(base, 0), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 3), Duration::from_secs(40));
        assert_eq!(retry_delay(base, 30), MAX_RETRY);
    }
}
