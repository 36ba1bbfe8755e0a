//! What committed transactions changed, told to whoever keeps rows in memory.
//!
//! A write [`Session`](crate::Session) notes each license, product or customer it changes; on
//! commit the notes go to this process's subscribers and, on PostgreSQL, to every other node
//! through `NOTIFY` (delivered by PostgreSQL only once the transaction commits). A node whose
//! notification connection is down reports itself unhealthy, so caches stop serving until it
//! is back and everything has been dropped once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// PostgreSQL's limit on a notification payload is 8000 bytes; past it, say "everything".
const MAX_PAYLOAD: usize = 7900;
pub(crate) const CHANNEL: &str = "keyturn_changes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    License(i64),
    Product(i64),
    Customer(i64),
    /// An access token (revoked).
    Token(i64),
    /// Anything may have changed (notifications were missed).
    All,
}

impl Change {
    fn encode(self) -> String {
        match self {
            Change::License(id) => format!("l{id}"),
            Change::Product(id) => format!("p{id}"),
            Change::Customer(id) => format!("c{id}"),
            Change::Token(id) => format!("t{id}"),
            Change::All => "*".into(),
        }
    }

    fn decode(s: &str) -> Change {
        let id = s.get(1..).and_then(|n| n.parse().ok());
        match (s.as_bytes().first(), id) {
            (Some(b'l'), Some(id)) => Change::License(id),
            (Some(b'p'), Some(id)) => Change::Product(id),
            (Some(b'c'), Some(id)) => Change::Customer(id),
            (Some(b't'), Some(id)) => Change::Token(id),
            _ => Change::All,
        }
    }
}

pub(crate) fn payload(changes: &[Change]) -> String {
    let text = changes
        .iter()
        .map(|c| c.encode())
        .collect::<Vec<_>>()
        .join(",");
    if text.len() > MAX_PAYLOAD {
        Change::All.encode()
    } else {
        text
    }
}

fn parse(payload: &str) -> Vec<Change> {
    payload.split(',').map(Change::decode).collect()
}

type Subscriber = Arc<dyn Fn(&[Change]) + Send + Sync>;

/// The subscribers of one store.
#[derive(Clone)]
pub struct Changes {
    subscribers: Arc<RwLock<Vec<Subscriber>>>,
    healthy: Arc<AtomicBool>,
    /// Since when every change has been heard (the notification connection's start).
    since: Arc<RwLock<Option<chrono::DateTime<chrono::Utc>>>>,
}

impl Changes {
    pub(crate) fn new(healthy: bool) -> Self {
        Self {
            subscribers: Arc::default(),
            healthy: Arc::new(AtomicBool::new(healthy)),
            since: Arc::new(RwLock::new(healthy.then(chrono::Utc::now))),
        }
    }

    pub fn subscribe(&self, f: impl Fn(&[Change]) + Send + Sync + 'static) {
        self.subscribers.write().expect("lock").push(Arc::new(f));
    }

    /// Whether every change made anywhere reaches this process: always on SQLite, and on
    /// PostgreSQL while the notification connection is up.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn publish(&self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        for s in self.subscribers.read().expect("lock").iter() {
            s(changes);
        }
    }

    /// Since when this process has heard every change, if it does now. A later time than
    /// before means it stopped hearing in between (and forgot what it held in memory).
    pub fn hearing_since(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        *self.since.read().expect("lock")
    }

    fn set_healthy(&self, healthy: bool) {
        *self.since.write().expect("lock") = healthy.then(chrono::Utc::now);
        self.healthy.store(healthy, Ordering::Release);
    }

    /// Follows other nodes' changes on PostgreSQL for as long as the process runs. A quiet
    /// connection is asked a question every [`HEARTBEAT`]: one that does not answer within
    /// `timeout` (a link that drops packets rather than closing) counts as lost, so a node
    /// cut off from the database stops trusting its memory within a few seconds.
    pub(crate) fn follow(&self, url: String, timeout: Duration) {
        let changes = self.clone();
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(timeout, listen(&url)).await {
                    Ok(Ok(mut listener)) => {
                        // Whatever changed while nobody listened is unknown.
                        changes.publish(&[Change::All]);
                        changes.set_healthy(true);
                        let lost = hear(&changes, &mut listener, timeout).await;
                        tracing::warn!(reason = %lost, "lost the change notification connection; reconnecting");
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot listen for change notifications; retrying");
                    }
                    Err(_) => {
                        tracing::warn!(
                            "the database did not answer a change listener in time; retrying"
                        );
                    }
                }
                changes.set_healthy(false);
                changes.publish(&[Change::All]);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// How often a quiet notification connection is checked.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Publishes notifications until the connection is lost; returns why it was.
async fn hear(
    changes: &Changes,
    listener: &mut sqlx::postgres::PgListener,
    timeout: Duration,
) -> String {
    loop {
        match tokio::time::timeout(HEARTBEAT, listener.try_recv()).await {
            Ok(Ok(Some(n))) => changes.publish(&parse(n.payload())),
            Ok(Ok(None)) => return "the connection closed".into(),
            Ok(Err(e)) => return e.to_string(),
            Err(_) => {
                let asked = tokio::time::timeout(
                    timeout,
                    sqlx::Executor::execute(&mut *listener, "SELECT 1"),
                )
                .await;
                match asked {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return e.to_string(),
                    Err(_) => return "the database did not answer a heartbeat".into(),
                }
            }
        }
    }
}

async fn listen(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    // Reconnecting is this module's business: it must know that notifications were lost.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_overflow_to_everything() {
        let changes = [
            Change::License(7),
            Change::Product(2),
            Change::Customer(31),
            Change::Token(4),
        ];
        assert_eq!(parse(&payload(&changes)), changes);
        let many: Vec<Change> = (0..5000).map(Change::License).collect();
        assert_eq!(parse(&payload(&many)), [Change::All]);
        assert_eq!(parse("garbage"), [Change::All]);
    }
}
