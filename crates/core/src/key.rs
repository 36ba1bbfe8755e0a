use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;

use crate::DomainError;

const GROUPS: usize = 4;
const GROUP_LEN: usize = 5;
const MAX_LEN: usize = 128;

/// A license key as customers type it. Keys Keyturn issues look like `ABCDE-FGHIJ-KLMNO-PQRST`:
/// 20 letters A–Z from the OS CSPRNG, 20·log2(26) ≈ 94 bits, enough that guessing one is hopeless.
/// Imported keys may have other shapes, so parsing only normalises and bounds the input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LicenseKey(String);

impl LicenseKey {
    pub fn generate() -> Self {
        let mut rng = OsRng;
        let mut key = String::with_capacity(GROUPS * (GROUP_LEN + 1));
        for group in 0..GROUPS {
            if group > 0 {
                key.push('-');
            }
            for _ in 0..GROUP_LEN {
                key.push(char::from(b'A' + rng.gen_range(0..26u8)));
            }
        }
        Self(key)
    }

    /// Accepts what a user pasted: surrounding whitespace is dropped and letters are upper-cased, so
    /// `abcde-fghij-…` finds the same license.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(DomainError::new("key", "must not be empty"));
        }
        if trimmed.len() > MAX_LEN {
            return Err(DomainError::new(
                "key",
                format!("must be at most {MAX_LEN} characters"),
            ));
        }
        if !trimmed.chars().all(|c| c.is_ascii_graphic()) {
            return Err(DomainError::new(
                "key",
                "may contain only printable ASCII without spaces",
            ));
        }
        Ok(Self(trimmed.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for LicenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = LicenseKey::generate();
        let groups: Vec<&str> = key.as_str().split('-').collect();
        assert_eq!(groups.len(), 4);
        for g in groups {
            assert_eq!(g.len(), 5);
            assert!(g.chars().all(|c| c.is_ascii_uppercase()), "{key}");
        }
    }

    #[test]
    fn generated_keys_do_not_repeat() {
        let keys: HashSet<String> = (0..10_000)
            .map(|_| LicenseKey::generate().into_string())
            .collect();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn all_letters_are_used() {
        let letters: HashSet<char> = (0..500)
            .flat_map(|_| {
                LicenseKey::generate()
                    .into_string()
                    .chars()
                    .collect::<Vec<_>>()
            })
            .filter(|c| *c != '-')
            .collect();
        assert_eq!(letters.len(), 26);
    }

    #[test]
    fn parse_normalises_pasted_keys() {
        let key = LicenseKey::parse("  abcde-fghij-klmno-pqrst\n").unwrap();
        assert_eq!(key.as_str(), "ABCDE-FGHIJ-KLMNO-PQRST");
    }

    #[test]
    fn parse_rejects_empty_long_and_spaced_keys() {
        assert!(LicenseKey::parse("   ").is_err());
        assert!(LicenseKey::parse(&"A".repeat(129)).is_err());
        assert!(LicenseKey::parse("ABC DEF").is_err());
    }
}
