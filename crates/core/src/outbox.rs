//! The mail outbox as people look at it: where each message stands. Pure rules.
//!
//! A message is never given up on: the sender retries it with growing delays until an SMTP
//! server takes it. "Failed" therefore means "its last attempt failed, and it waits for the
//! next one"; putting it back in the queue only moves that next attempt to now.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a message in the outbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// Not tried yet.
    Pending,
    /// Taken by an SMTP server.
    Sent,
    /// Its last attempt failed; the sender tries again at `next_attempt`.
    Failed,
}

impl MailState {
    pub const ALL: [MailState; 3] = [MailState::Pending, MailState::Failed, MailState::Sent];

    /// Sent wins: a message sent after failures is done, whatever its attempts said.
    pub fn of(sent: Option<DateTime<Utc>>, last_error: Option<&str>) -> Self {
        match (sent, last_error) {
            (Some(_), _) => MailState::Sent,
            (None, Some(_)) => MailState::Failed,
            (None, None) => MailState::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MailState::Pending => "pending",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A message in the outbox, without its body (which holds license keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMail {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub created: DateTime<Utc>,
    pub attempts: i64,
    pub next_attempt: DateTime<Utc>,
    pub sent: Option<DateTime<Utc>>,
    /// What the SMTP server (or the connection to it) said at the last failed attempt.
    pub last_error: Option<String>,
}

impl OutboxMail {
    pub fn state(&self) -> MailState {
        MailState::of(self.sent, self.last_error.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_message_is_sent_whatever_failed_before() {
        let at = Utc::now();
        assert_eq!(MailState::of(None, None), MailState::Pending);
        assert_eq!(MailState::of(None, Some("refused")), MailState::Failed);
        assert_eq!(MailState::of(Some(at), Some("refused")), MailState::Sent);
        for s in MailState::ALL {
            assert_eq!(MailState::parse(s.as_str()), Some(s));
        }
        assert_eq!(MailState::parse("lost"), None);
    }
}
