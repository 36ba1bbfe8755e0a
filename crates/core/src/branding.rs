//! The seller's branding and the words of the mails sent to buyers: pure rules, no I/O.
//!
//! * Every URL the branding holds is `https://` and free of quotes, spaces and angle brackets,
//!   so it can be placed in an attribute as it is (it is escaped all the same) and a buyer's
//!   browser never loads anything over plain HTTP from a page of this server.
//! * The accent colour is `#rrggbb`; text drawn on it is black or white, whichever contrasts
//!   more ([`Branding::accent_text`]), so a seller cannot pick a colour that makes buttons
//!   unreadable.
//! * Mail templates use `{{name}}` placeholders and nothing else: no logic, no loops, no
//!   attribute access, so a stored template cannot do more than place the values it is given.
//!   In the HTML part every value is HTML-escaped ([`render`]); a placeholder a kind of mail
//!   does not know is refused when the template is saved ([`MailTemplate::parse`]).

use serde::{Deserialize, Serialize};

use crate::{DomainError, Email};

/// The accent when the seller chose none.
pub const DEFAULT_ACCENT: &str = "#1d4ed8";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    /// The seller's name as buyers know it.
    pub display_name: String,
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub accent: Option<String>,
    pub support_email: Option<String>,
    pub terms_url: Option<String>,
    pub privacy_url: Option<String>,
    pub refund_url: Option<String>,
}

fn optional(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// An `https://` address of at most 500 bytes with a host, and nothing that could leave an
/// attribute or a URL.
pub fn https_url(field: &'static str, url: &str) -> Result<String, DomainError> {
    let url = url.trim();
    let host = url.strip_prefix("https://").unwrap_or("");
    let host = host.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || url.len() > 500
        || url.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`')
        })
    {
        return Err(DomainError::new(
            field,
            "must be an https:// address (at most 500 characters)",
        ));
    }
    Ok(url.to_owned())
}

/// `#rrggbb`, lower-cased.
pub fn colour(field: &'static str, text: &str) -> Result<String, DomainError> {
    let t = text.trim();
    let ok = t.len() == 7 && t.starts_with('#') && t[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(DomainError::new(field, "must be a colour like #1d4ed8"));
    }
    Ok(t.to_ascii_lowercase())
}

/// WCAG relative luminance of a `#rrggbb` colour.
fn luminance(hex: &str) -> f64 {
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0))
            / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
}

/// The WCAG contrast ratio of two colours.
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

impl Branding {
    /// Checks what a seller entered: a name of 1 to 100 characters, https addresses, a colour,
    /// a mail address.
    pub fn parse(input: Branding) -> Result<Branding, DomainError> {
        let display_name = input.display_name.trim().to_owned();
        if display_name.is_empty()
            || display_name.chars().count() > 100
            || display_name.chars().any(char::is_control)
        {
            return Err(DomainError::new(
                "display_name",
                "must be 1 to 100 characters on one line",
            ));
        }
        let url = |field, v: Option<String>| optional(v).map(|u| https_url(field, &u)).transpose();
        Ok(Branding {
            display_name,
            logo_url: url("logo_url", input.logo_url)?,
            accent: optional(input.accent)
                .map(|c| colour("accent", &c))
                .transpose()?,
            support_email: optional(input.support_email)
                .map(|e| {
                    Email::parse(&e)
                        .map(Email::into_string)
                        .map_err(|_| DomainError::new("support_email", "is not a mail address"))
                })
                .transpose()?,
            terms_url: url("terms_url", input.terms_url)?,
            privacy_url: url("privacy_url", input.privacy_url)?,
            refund_url: url("refund_url", input.refund_url)?,
        })
    }

    pub fn accent(&self) -> &str {
        self.accent.as_deref().unwrap_or(DEFAULT_ACCENT)
    }

    /// The text colour on the accent: white or near-black, whichever contrasts more.
    pub fn accent_text(&self) -> &'static str {
        let accent = self.accent();
        if contrast(accent, "#ffffff") >= contrast(accent, "#111111") {
            "#ffffff"
        } else {
            "#111111"
        }
    }

    /// The accent as a link colour on white: the accent when it is readable there, else a
    /// darker default.
    pub fn link_colour(&self) -> &str {
        if contrast(self.accent(), "#ffffff") >= 4.5 {
            self.accent()
        } else {
            DEFAULT_ACCENT
        }
    }

    /// The footer's links: (label, address).
    pub fn links(&self) -> Vec<(&'static str, &str)> {
        [
            ("Terms", &self.terms_url),
            ("Privacy", &self.privacy_url),
            ("Refunds", &self.refund_url),
        ]
        .into_iter()
        .filter_map(|(label, url)| url.as_deref().map(|u| (label, u)))
        .collect()
    }
}

/// The kinds of mail a buyer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    KeyDelivered,
    SignInLink,
    RenewalFailed,
    Expiring,
    Cancelled,
}

impl MailKind {
    pub const ALL: [MailKind; 5] = [
        MailKind::KeyDelivered,
        MailKind::SignInLink,
        MailKind::RenewalFailed,
        MailKind::Expiring,
        MailKind::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::KeyDelivered => "key_delivered",
            MailKind::SignInLink => "sign_in_link",
            MailKind::RenewalFailed => "renewal_failed",
            MailKind::Expiring => "expiring",
            MailKind::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            MailKind::KeyDelivered => "Key delivered",
            MailKind::SignInLink => "Sign-in link",
            MailKind::RenewalFailed => "Renewal payment failed",
            MailKind::Expiring => "License expiring",
            MailKind::Cancelled => "Subscription cancelled",
        }
    }

    /// The placeholders a template of this kind may use; every kind knows the seller and the
    /// buyer.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            MailKind::KeyDelivered => &[
                "seller",
                "name",
                "product",
                "key",
                "portal_link",
                "support_email",
            ],
            MailKind::SignInLink => &["seller", "name", "link", "support_email"],
            MailKind::RenewalFailed => &[
                "seller",
                "name",
                "product",
                "key",
                "portal_link",
                "support_email",
            ],
            MailKind::Expiring => &[
                "seller",
                "name",
                "product",
                "key",
                "days",
                "expires",
                "portal_link",
                "support_email",
            ],
            MailKind::Cancelled => &[
                "seller",
                "name",
                "product",
                "key",
                "expires",
                "portal_link",
                "support_email",
            ],
        }
    }

    /// Values that show what a template of this kind looks like, for previews.
    pub fn sample(self) -> Vec<(&'static str, String)> {
        vec![
            ("seller", "Example Software".into()),
            ("name", "Ann Lee".into()),
            ("product", "Editor Pro".into()),
            ("key", "ABCDE-FGHIJ-KLMNO-PQRST".into()),
            ("portal_link", "https://licenses.example/portal".into()),
            ("link", "https://licenses.example/portal/link/sample".into()),
            ("support_email", "help@example.com".into()),
            ("days", "7".into()),
            ("expires", "2030-01-31".into()),
        ]
    }
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The names of the placeholders in a template, in order.
fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push(after[..end].trim());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

/// Fills a template's placeholders with `values`; in HTML (`html`), every value is escaped.
/// A placeholder without a value becomes empty. Text outside placeholders is kept as written.
pub fn render(template: &str, values: &[(&str, String)], html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = after[..end].trim();
        if let Some((_, v)) = values.iter().find(|(k, _)| *k == name) {
            if html {
                out.push_str(&escape_html(v));
            } else {
                out.push_str(v);
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A product's own subject, text and HTML for one kind of mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailTemplate {
    pub kind: MailKind,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl MailTemplate {
    /// Checks a template: a subject on one line (at most 200 bytes), bodies of at most
    /// 20000 bytes, only placeholders its kind knows, and, for key mails, the key.
    pub fn parse(
        kind: MailKind,
        subject: &str,
        text: &str,
        html: &str,
    ) -> Result<Self, DomainError> {
        let subject = subject.trim();
        if subject.is_empty() || subject.len() > 200 || subject.contains(['\r', '\n']) {
            return Err(DomainError::new(
                "subject",
                "must be one line of 1 to 200 bytes",
            ));
        }
        for (field, body) in [("text", text), ("html", html)] {
            if body.trim().is_empty() || body.len() > 20_000 {
                return Err(DomainError::new(field, "must be 1 to 20000 bytes"));
            }
        }
        for (field, t) in [("subject", subject), ("text", text), ("html", html)] {
            if let Some(bad) = placeholders(t)
                .into_iter()
                .find(|p| !kind.placeholders().contains(p))
            {
                return Err(DomainError::new(
                    field,
                    format!(
                        "{{{{{bad}}}}} is not a placeholder of this mail; use {}",
                        kind.placeholders()
                            .iter()
                            .map(|p| format!("{{{{{p}}}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ));
            }
        }
        if kind == MailKind::KeyDelivered
            && !(placeholders(text).contains(&"key") && placeholders(html).contains(&"key"))
        {
            return Err(DomainError::new(
                "text",
                "a key mail must show {{key}} in both parts",
            ));
        }
        Ok(Self {
            kind,
            subject: subject.to_owned(),
            text: text.to_owned(),
            html: html.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Branding {
        Branding {
            display_name: " Example Software ".into(),
            logo_url: Some("https://cdn.example.com/logo.png".into()),
            accent: Some("#FFCC00".into()),
            support_email: Some("Help@Example.com".into()),
            terms_url: Some("https://example.com/terms".into()),
            privacy_url: Some("".into()),
            refund_url: None,
        }
    }

    #[test]
    fn branding_is_checked_and_normalised() {
        let b = Branding::parse(input()).unwrap();
        assert_eq!(b.display_name, "Example Software");
        assert_eq!(b.accent.as_deref(), Some("#ffcc00"));
        assert_eq!(b.support_email.as_deref(), Some("help@example.com"));
        assert_eq!(b.privacy_url, None, "empty means none");
        assert_eq!(b.links(), vec![("Terms", "https://example.com/terms")]);
        for (field, bad) in [
            (
                "logo_url",
                Branding {
                    logo_url: Some("http://x.example/l.png".into()),
                    ..input()
                },
            ),
            (
                "logo_url",
                Branding {
                    logo_url: Some("https://x.example/\"onload".into()),
                    ..input()
                },
            ),
            (
                "logo_url",
                Branding {
                    logo_url: Some("https:///nohost".into()),
                    ..input()
                },
            ),
            (
                "terms_url",
                Branding {
                    terms_url: Some("javascript:alert(1)".into()),
                    ..input()
                },
            ),
            (
                "accent",
                Branding {
                    accent: Some("#12345".into()),
                    ..input()
                },
            ),
            (
                "accent",
                Branding {
                    accent: Some("red".into()),
                    ..input()
                },
            ),
            (
                "support_email",
                Branding {
                    support_email: Some("nobody".into()),
                    ..input()
                },
            ),
            (
                "display_name",
                Branding {
                    display_name: " ".into(),
                    ..input()
                },
            ),
        ] {
            assert_eq!(Branding::parse(bad).unwrap_err().field, field);
        }
    }

    #[test]
    fn text_on_the_accent_stays_readable() {
        let light = Branding {
            accent: Some("#ffcc00".into()),
            ..Default::default()
        };
        assert_eq!(light.accent_text(), "#111111");
        assert!(contrast(light.accent(), light.accent_text()) >= 4.5);
        assert_eq!(
            light.link_colour(),
            DEFAULT_ACCENT,
            "yellow links on white are unreadable"
        );
        let dark = Branding {
            accent: Some("#123456".into()),
            ..Default::default()
        };
        assert_eq!(dark.accent_text(), "#ffffff");
        assert_eq!(dark.link_colour(), "#123456");
        assert!(contrast(DEFAULT_ACCENT, "#ffffff") >= 4.5);
    }

    #[test]
    fn templates_place_values_and_escape_them_in_html() {
        let values = vec![
            ("product", "<b>Pro</b> & co".to_owned()),
            ("key", "K-1".to_owned()),
        ];
        assert_eq!(
            render(
                "Key {{ key }} for {{product}}{{unknown}} {{",
                &values,
                false
            ),
            "Key K-1 for <b>Pro</b> & co {{"
        );
        assert_eq!(
            render("<p>{{product}}</p>", &values, true),
            "<p>&lt;b&gt;Pro&lt;/b&gt; &amp; co</p>"
        );
        // A value that looks like a placeholder is not expanded again.
        let tricky = vec![("name", "{{key}}".to_owned()), ("key", "SECRET".to_owned())];
        assert_eq!(render("Hi {{name}}", &tricky, false), "Hi {{key}}");
    }

    #[test]
    fn templates_use_only_their_placeholders() {
        let ok = MailTemplate::parse(
            MailKind::KeyDelivered,
            "Key for {{product}}",
            "{{key}}",
            "<p>{{key}}</p>",
        );
        assert!(ok.is_ok());
        let unknown = MailTemplate::parse(MailKind::SignInLink, "Hi", "{{key}}", "x").unwrap_err();
        assert_eq!(unknown.field, "text");
        let keyless =
            MailTemplate::parse(MailKind::KeyDelivered, "Hi", "no key", "{{key}}").unwrap_err();
        assert_eq!(keyless.field, "text");
        let two_lines = MailTemplate::parse(MailKind::Expiring, "a\nb", "x", "y").unwrap_err();
        assert_eq!(two_lines.field, "subject");
        assert_eq!(MailKind::parse("expiring"), Some(MailKind::Expiring));
        assert_eq!(MailKind::parse("other"), None);
    }
}
