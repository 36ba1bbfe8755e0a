//! The terms a vendor enters for licenses and plans, each a type that can only hold an allowed
//! value. Every API (native, Cryptolens, CLI, payment pipeline) parses input into these before it
//! reaches a rule or the store, so a limit is stated once and every entry point answers the same
//! message for the same mistake.
//!
//! The bounds are there for the store and for arithmetic, not taste: a period of more than a
//! hundred years, or a lease of more than a month, is a typo that would push dates toward the end
//! of the representable range; notes and metadata are shown on every license page and signed into
//! replies, so their size is bounded too.

use serde_json::Value;

use crate::{DomainError, Fingerprint};

/// A bounded integer term: the field it comes from, and the inclusive range it must be in.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr, $hint:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            pub const MIN: i64 = $min;
            pub const MAX: i64 = $max;

            pub fn parse(value: i64) -> Result<Self, DomainError> {
                if (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(DomainError::new($field, $hint))
                }
            }

            /// Parses an optional term: absent stays absent.
            pub fn parse_optional(value: Option<i64>) -> Result<Option<i64>, DomainError> {
                value.map(|v| Self::parse(v).map(Self::get)).transpose()
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }
    };
}

bounded!(
    /// How long a license issued from a plan (or a trial) runs, in days.
    PeriodDays,
    "period_days",
    1,
    36_500,
    "must be between 1 and 36500 days (omit it for a perpetual license)"
);

bounded!(
    /// How many machines may hold a license at once; 0 means unlimited.
    MachineLimit,
    "max_machines",
    0,
    1_000_000,
    "must be between 0 (unlimited) and 1000000"
);

bounded!(
    /// How long a floating seat is held without a heartbeat, in seconds.
    LeaseSeconds,
    "floating_lease_seconds",
    1,
    2_592_000,
    "must be between 1 and 2592000 seconds (30 days)"
);

bounded!(
    /// Days a subscription's license keeps running after a payment is due and not yet made.
    GraceDays,
    "grace_days",
    0,
    365,
    "must be between 0 and 365"
);

/// A vendor's notes on a license (private unless the product makes them public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notes(String);

impl Notes {
    pub const MAX_BYTES: usize = 10_000;

    pub fn parse(notes: String) -> Result<Self, DomainError> {
        if notes.len() > Self::MAX_BYTES {
            return Err(DomainError::new(
                "notes",
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        Ok(Self(notes))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A vendor's structured data on a license: a JSON object of bounded size.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata(Value);

impl Metadata {
    pub const MAX_BYTES: usize = 16 * 1024;

    pub fn parse(metadata: Value) -> Result<Self, DomainError> {
        if !metadata.is_object() {
            return Err(DomainError::new("metadata", "must be a JSON object"));
        }
        if metadata.to_string().len() > Self::MAX_BYTES {
            return Err(DomainError::new(
                "metadata",
                format!("must be at most {} bytes as JSON", Self::MAX_BYTES),
            ));
        }
        Ok(Self(metadata))
    }

    pub fn into_value(self) -> Value {
        self.0
    }
}

/// Machine codes a license always admits, whatever its machine limit: each a valid
/// fingerprint, at most [`AllowedMachines::MAX`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedMachines(Vec<String>);

impl AllowedMachines {
    pub const MAX: usize = 1000;

    pub fn parse(machines: &[String]) -> Result<Self, DomainError> {
        if machines.len() > Self::MAX {
            return Err(DomainError::new(
                "allowed_machines",
                format!("must list at most {} machines", Self::MAX),
            ));
        }
        machines
            .iter()
            .map(|m| Ok(Fingerprint::parse(m)?.as_str().to_owned()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Ids a payment provider gives its prices, variants or products (`price_…`, `pri_…`, `12345`):
/// trimmed, 1–255 characters without whitespace. Lists keep their order and drop repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIds(Vec<String>);

impl ProviderIds {
    pub fn parse(field: &'static str, ids: &[String]) -> Result<Self, DomainError> {
        let mut out: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            let id = id.trim();
            if id.is_empty() || id.len() > 255 || id.chars().any(char::is_whitespace) {
                return Err(DomainError::new(
                    field,
                    format!("{id:?} is not a product id"),
                ));
            }
            if !out.iter().any(|o| o == id) {
                out.push(id.to_owned());
            }
        }
        Ok(Self(out))
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// What a vendor writes about a product: free text of bounded size, line breaks and tabs
/// allowed, no other control characters (it is shown on every set-up page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_BYTES: usize = 2_000;

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let text = text.replace("\r\n", "\n");
        let text = text.trim();
        if text.len() > Self::MAX_BYTES {
            return Err(DomainError::new(
                "description",
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(DomainError::new(
                "description",
                "must not contain control characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// What a program sends to have it echoed in the signed reply, so it can tell a fresh reply
/// from a replayed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(nonce: String) -> Result<Self, DomainError> {
        if nonce.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::new(
                "nonce",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(nonce))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounded_terms_accept_their_range_only() {
        assert_eq!(PeriodDays::parse(1).unwrap().get(), 1);
        assert_eq!(PeriodDays::parse(36_500).unwrap().get(), 36_500);
        for bad in [0, -1, 36_501, i64::MAX, i64::MIN] {
            let e = PeriodDays::parse(bad).unwrap_err();
            assert_eq!(e.field, "period_days");
        }
        assert_eq!(PeriodDays::parse_optional(None), Ok(None));
        assert_eq!(MachineLimit::parse(0).unwrap().get(), 0, "0 is unlimited");
        assert!(MachineLimit::parse(-1).is_err());
        assert!(LeaseSeconds::parse(0).is_err());
        assert!(LeaseSeconds::parse(2_592_001).is_err());
        assert!(GraceDays::parse(0).is_ok());
        assert_eq!(GraceDays::parse(366).unwrap_err().field, "grace_days");
    }

    #[test]
    fn text_terms_are_bounded() {
        assert!(Notes::parse("x".repeat(Notes::MAX_BYTES)).is_ok());
        assert!(Notes::parse("x".repeat(Notes::MAX_BYTES + 1)).is_err());
        assert!(Metadata::parse(json!({"tier": "pro"})).is_ok());
        assert!(Metadata::parse(json!([1])).is_err());
        let big = json!({"k": "x".repeat(Metadata::MAX_BYTES)});
        assert_eq!(Metadata::parse(big).unwrap_err().field, "metadata");
        assert!(Nonce::parse("é".repeat(128)).is_ok());
        assert!(Nonce::parse("a".repeat(129)).is_err());
    }

    #[test]
    fn descriptions_are_bounded_text() {
        assert_eq!(
            Description::parse(" Line one\r\nline two\t \n")
                .unwrap()
                .into_string(),
            "Line one\nline two"
        );
        assert!(Description::parse(&"x".repeat(Description::MAX_BYTES)).is_ok());
        let e = Description::parse(&"x".repeat(Description::MAX_BYTES + 1)).unwrap_err();
        assert_eq!(e.field, "description");
        assert!(Description::parse("bell\u{7}").is_err());
    }

    #[test]
    fn machine_and_provider_lists() {
        let machines = vec![" m1 ".to_owned(), "m2".to_owned()];
        assert_eq!(
            AllowedMachines::parse(&machines).unwrap().into_vec(),
            ["m1", "m2"]
        );
        assert!(AllowedMachines::parse(&vec!["m".to_owned(); 1001]).is_err());
        assert!(AllowedMachines::parse(&["".to_owned()]).is_err());
        let ids = [
            "price_1".to_owned(),
            " price_1 ".to_owned(),
            "price_2".to_owned(),
        ];
        assert_eq!(
            ProviderIds::parse("stripe_price_ids", &ids)
                .unwrap()
                .into_vec(),
            ["price_1", "price_2"]
        );
        let e = ProviderIds::parse("paddle_price_ids", &["a b".to_owned()]).unwrap_err();
        assert_eq!(e.field, "paddle_price_ids");
    }
}
