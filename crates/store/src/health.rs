//! What the store knows about its own state, for `/health` and the log: whether the last write
//! that reached the database committed, and if not, why.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// A write that the database refused for a reason of its own (full, I/O error, unreachable,
/// locked), as opposed to a write the request got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    pub reason: String,
    /// When writes started failing (the first failure since the last success).
    pub since: DateTime<Utc>,
}

/// The outcome of the latest write.
#[derive(Debug, Default)]
pub(crate) struct WriteHealth(Mutex<Option<WriteFailure>>);

impl WriteHealth {
    pub fn failed(&self, reason: &str) {
        let mut last = self.0.lock().expect("write health lock");
        match last.as_mut() {
            Some(failure) => failure.reason = reason.to_owned(),
            None => {
                tracing::error!(%reason, "writes are failing: nothing is acknowledged until the database accepts them again");
                *last = Some(WriteFailure {
                    reason: reason.to_owned(),
                    since: Utc::now(),
                });
            }
        }
    }

    pub fn succeeded(&self) {
        let mut last = self.0.lock().expect("write health lock");
        if let Some(failure) = last.take() {
            tracing::warn!(reason = %failure.reason, since = %failure.since, "writes succeed again");
        }
    }

    pub fn failure(&self) -> Option<WriteFailure> {
        self.0.lock().expect("write health lock").clone()
    }
}

/// Faults a test can inject into a store, to prove that a failure is never acknowledged.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Default)]
pub struct Faults {
    commits: std::sync::atomic::AtomicU32,
    away: std::sync::atomic::AtomicBool,
}

#[cfg(feature = "fault-injection")]
impl Faults {
    /// Makes the next `n` commits fail as a full disk would (the transaction is discarded).
    pub fn fail_commits(&self, n: u32) {
        self.commits.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// While set, every new session fails as if the database were unreachable.
    pub fn set_unreachable(&self, away: bool) {
        self.away.store(away, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn take_commit_failure(&self) -> bool {
        self.commits
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }

    pub(crate) fn unreachable(&self) -> bool {
        self.away.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl crate::Session {
    /// Rewrites the one row of `health_probe`.
    pub(crate) async fn write_probe(&mut self, at: DateTime<Utc>) -> crate::Result<()> {
        sqlx::query(
            "INSERT INTO health_probe (id, written_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
        )
        .bind(crate::time::to_db(at))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
