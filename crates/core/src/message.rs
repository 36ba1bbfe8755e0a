//! Messages a vendor broadcasts to its programs (update notices, news), per channel, for one
//! product or for all of them. Programs fetch those newer than the last one they saw.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

pub const MAX_CONTENT_CHARS: usize = 10_000;
pub const MAX_CHANNEL_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    /// `None`: shown to the programs of every product.
    pub product_id: Option<i64>,
    /// `""` is the default channel.
    pub channel: String,
    pub content: String,
    /// When it was published (the vendor may date it).
    pub created: DateTime<Utc>,
}

pub fn content(input: &str) -> Result<String, DomainError> {
    if input.trim().is_empty() || input.chars().count() > MAX_CONTENT_CHARS {
        return Err(DomainError::new(
            "content",
            format!("must be 1 to {MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(input.to_owned())
}

pub fn channel(input: &str) -> Result<String, DomainError> {
    let channel = input.trim();
    if channel.chars().count() > MAX_CHANNEL_CHARS || channel.chars().any(char::is_control) {
        return Err(DomainError::new(
            "channel",
            format!("must be one line of at most {MAX_CHANNEL_CHARS} characters"),
        ));
    }
    Ok(channel.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_required_and_bounded() {
        assert!(content("  ").is_err());
        assert!(content(&"x".repeat(MAX_CONTENT_CHARS + 1)).is_err());
        assert_eq!(
            content("Version 2 is out\nDownload it")
                .unwrap()
                .lines()
                .count(),
            2
        );
    }

    #[test]
    fn channels_are_one_trimmed_line() {
        assert_eq!(channel(" stable ").unwrap(), "stable");
        assert_eq!(channel("").unwrap(), "");
        assert!(channel("a\nb").is_err());
        assert!(channel(&"c".repeat(MAX_CHANNEL_CHARS + 1)).is_err());
    }
}
