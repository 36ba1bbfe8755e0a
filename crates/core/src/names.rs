//! Small validated strings that appear all over the API.

use crate::DomainError;

/// A named entitlement of a product (`pro`, `export-pdf`). Lower-case so `Pro` and `pro` cannot
/// both exist and confuse a program that checks for one of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureName(String);

impl FeatureName {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let name = input.trim().to_ascii_lowercase();
        if name.is_empty() || name.len() > 64 {
            return Err(DomainError::new(
                "features",
                format!("feature name {input:?} must be 1 to 64 characters"),
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(DomainError::new(
                "features",
                format!("feature name {input:?} may contain only letters, digits and - _ . :"),
            ));
        }
        Ok(Self(name))
    }

    /// Parses a list, keeping the given order (the Cryptolens API maps the first eight features
    /// of a product to its slots F1..F8) and refusing duplicates.
    pub fn parse_list(inputs: &[String]) -> Result<Vec<Self>, DomainError> {
        let mut out: Vec<Self> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let name = Self::parse(input)?;
            if out.contains(&name) {
                return Err(DomainError::new(
                    "features",
                    format!("feature {:?} is listed twice", name.0),
                ));
            }
            out.push(name);
        }
        Ok(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A buyer's email address. Only the shape is checked; deliverability is the mail server's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let email = input.trim().to_ascii_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c == ',')
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Self(email))
        } else {
            Err(DomainError::new(
                "email",
                format!("{input:?} is not an email address"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// What identifies a machine (Cryptolens calls it the machine code). Opaque to the server, except
/// that fingerprints keyturn-client builds (`ktfp1:…`) are compared component by component
/// ([`Fingerprint::same_machine`], the rule in `keyturn_protocol::fingerprint`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let fp = input.trim();
        if fp.is_empty() || fp.len() > 256 {
            return Err(DomainError::new(
                "fingerprint",
                "must be 1 to 256 characters",
            ));
        }
        if fp.chars().any(|c| c.is_control()) {
            return Err(DomainError::new(
                "fingerprint",
                "must not contain control characters",
            ));
        }
        Ok(Self(fp.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` names the same machine: identical, or — for fingerprints keyturn-client
    /// builds from components — at least one strong component agrees and more of the shared
    /// components agree than differ, so one changed component (a new network card, a renamed
    /// host) does not make a machine a stranger. keyturn-client applies the same rule offline.
    pub fn same_machine(&self, other: &str) -> bool {
        keyturn_protocol::fingerprint::same_machine(&self.0, other)
    }
}

/// Whether `c` may never be part of text Keyturn stores: control characters other than tab and
/// line breaks. PostgreSQL cannot store NUL at all, and the rest have no meaning in a name, a
/// note or an id, only the power to confuse whatever displays them later.
pub fn forbidden_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// A required, bounded, single-line display name (product, plan, customer, token).
pub fn display_name(field: &'static str, input: &str) -> Result<String, DomainError> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DomainError::new(field, "must be 1 to 200 characters"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(DomainError::new(field, "must be a single line"));
    }
    Ok(name.to_owned())
}

/// The longest operating-system description an activation keeps.
pub const MAX_OS_INFO_CHARS: usize = 2000;

/// What a program says about its machine's operating system (Cryptolens `OSInfo`: the .NET SDK
/// sends a small JSON text): kept as sent, on one line and bounded.
pub fn os_info(input: &str) -> Result<String, DomainError> {
    let info = input.trim();
    if info.is_empty() || info.chars().count() > MAX_OS_INFO_CHARS {
        return Err(DomainError::new(
            "os_info",
            format!("must be 1 to {MAX_OS_INFO_CHARS} characters"),
        ));
    }
    if info.chars().any(|c| c.is_control()) {
        return Err(DomainError::new("os_info", "must be a single line"));
    }
    Ok(info.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_info_is_kept_as_sent_within_bounds() {
        let sent = r#"{"OSName":"Windows","OSVersion":"10.0.19045","Is64Bit":true}"#;
        assert_eq!(os_info(&format!(" {sent} ")).unwrap(), sent);
        assert!(os_info("").is_err());
        assert!(os_info("a\nb").is_err());
        assert!(os_info(&"é".repeat(MAX_OS_INFO_CHARS)).is_ok());
        assert!(os_info(&"a".repeat(MAX_OS_INFO_CHARS + 1)).is_err());
    }

    #[test]
    fn feature_names_are_lowercased_and_checked() {
        assert_eq!(FeatureName::parse(" Pro ").unwrap().as_str(), "pro");
        assert!(FeatureName::parse("").is_err());
        assert!(FeatureName::parse("has space").is_err());
        assert!(FeatureName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn feature_lists_keep_order_and_refuse_duplicates() {
        let list = FeatureName::parse_list(&["b".into(), "a".into()]).unwrap();
        assert_eq!(list[0].as_str(), "b");
        assert!(FeatureName::parse_list(&["a".into(), "A".into()]).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@c.de",
            "a@b@c.de",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn machines_are_recognised_with_one_changed_component() {
        // The rule itself is keyturn_protocol's; this checks the server applies it.
        let fp = Fingerprint::parse("ktfp1:mid=1;mac=2;cpu=3;hst=4").unwrap();
        assert!(fp.same_machine("ktfp1:mid=1;mac=9;cpu=3;hst=4"));
        assert!(!fp.same_machine("ktfp1:mid=7;mac=8;cpu=3;hst=4"));
    }

    #[test]
    fn fingerprints_and_names() {
        assert!(Fingerprint::parse("  ").is_err());
        assert!(Fingerprint::parse("abc\u{0}").is_err());
        assert_eq!(Fingerprint::parse(" m1 ").unwrap().as_str(), "m1");
        assert!(display_name("name", "two\nlines").is_err());
        assert_eq!(display_name("name", " Acme ").unwrap(), "Acme");
    }
}
