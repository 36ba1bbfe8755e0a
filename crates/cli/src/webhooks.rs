//! Delivers outgoing webhooks from the outbox. Runs beside the server on every node: each
//! delivery is leased to one node for one attempt, so nodes never send the same attempt at once.
//!
//! The worker keeps up to [`IN_FLIGHT`] requests going; each request finishes on its own (a
//! receiver that hangs holds one slot until the timeout, and at most [`PER_ENDPOINT`] slots across
//! all nodes), and results are written in batches. It wakes when a transaction on this node
//! commits (a new event may be due), when a request finishes (the next delivery of its license
//! may be due), and every poll interval (retries, and events written on other nodes).
//!
//! Requests go only where the SSRF guard lets them: `http(s)` URLs whose host, resolved at the
//! moment of sending, is a public address (unless `KEYTURN_WEBHOOK_ALLOW_PRIVATE`); no proxy
//! from the environment, no redirects followed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyturn_app::{App, AttemptResult, Outgoing};
use keyturn_core::webhook::{public_address, EndpointUrl, RESPONSE_HEAD_BYTES};
use keyturn_protocol::webhook::{header, EVENT_ID_HEADER, SIGNATURE_HEADER};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::config::WebhookSettings;

/// Requests one node has going at once.
const IN_FLIGHT: usize = 32;
/// Requests to one endpoint in flight at once, across all nodes.
const PER_ENDPOINT: i64 = 8;
/// Results written in one transaction at most.
const RESULT_BATCH: usize = 64;
/// How often deliveries that missed their turn are looked for (see
/// `App::repair_webhook_turns`): a delivery written on PostgreSQL just as the one before it
/// finished waits at most this long.
const REPAIR: Duration = Duration::from_secs(5);

/// A resolver that keeps only the addresses deliveries may go to.
struct Guarded {
    allow_private: bool,
}

/// The addresses of `host` a delivery may connect to, or why none.
fn permitted(
    host: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let all: Vec<SocketAddr> = addrs.into_iter().collect();
    if all.is_empty() {
        return Err(format!("{host} has no address"));
    }
    let kept: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| allow_private || public_address(a.ip()))
        .collect();
    if kept.is_empty() {
        return Err(format!(
            "refused: {host} resolves only to loopback, private or link-local addresses ({}); \
             KEYTURN_WEBHOOK_ALLOW_PRIVATE allows them",
            all.iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(kept)
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = permitted(&host, found, allow_private)
                .map_err(|e| Box::new(std::io::Error::other(e)) as Box<_>)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn client(settings: &WebhookSettings) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .dns_resolver(Arc::new(Guarded {
            allow_private: settings.allow_private,
        }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .user_agent(concat!("Keyturn-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// An error and what caused it, in one line (reqwest's own message hides the resolver's).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Makes one attempt at a delivery.
async fn attempt(client: &reqwest::Client, out: Outgoing, allow_private: bool) -> AttemptResult {
    let at = chrono::Utc::now();
    let started = Instant::now();
    let d = &out.delivery;
    let result = |status: Option<u16>, error: Option<String>, response: Vec<u8>| AttemptResult {
        delivery: out.delivery.clone(),
        at,
        status,
        error,
        latency: started.elapsed(),
        response,
    };
    if out.secrets.is_empty() {
        return result(
            None,
            Some("the endpoint's signing secret does not open (is the master key set?)".into()),
            Vec::new(),
        );
    }
    // The URL again, as this node is configured: a literal address is never resolved, so the
    // resolver's guard does not see it.
    if let Err(e) = EndpointUrl::parse(&d.url, allow_private) {
        return result(None, Some(format!("refused: {}", e.message)), Vec::new());
    }
    let secrets: Vec<&str> = out.secrets.iter().map(String::as_str).collect();
    let signature = header(&secrets, at.timestamp(), d.body.as_bytes());
    let sent = client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_ID_HEADER, &d.event_id)
        .body(d.body.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return result(None, Some(chain(&e)), Vec::new()),
    };
    let status = response.status().as_u16();
    let mut head = Vec::new();
    // Only the first bytes are kept; a receiver that sends more is not read further.
    while head.len() < RESPONSE_HEAD_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return result(Some(status), Some(chain(&e)), head),
        }
    }
    head.truncate(RESPONSE_HEAD_BYTES);
    result(Some(status), None, head)
}

/// This node's name in the delivery log: the host, the process, and a random tag that tells
/// two servers in one process (tests) apart.
fn node_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let tag = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        & 0xffff;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}:{}:{tag:04x}", std::process::id())
}

/// The running worker; [`WebhookWorker::stop`] ends it after the requests in flight.
pub struct WebhookWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WebhookWorker {
    pub fn start(app: App, settings: WebhookSettings) -> anyhow::Result<Self> {
        let client = client(&settings)?;
        let node = node_name();
        let wake = Arc::new(Notify::new());
        {
            // A commit on this node may have written an event.
            let wake = Arc::downgrade(&wake);
            app.store().changes().subscribe(move |_| {
                if let Some(w) = wake.upgrade() {
                    w.notify_one();
                }
            });
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(app, settings, client, node, wake, stopped));
        Ok(Self { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(
    app: App,
    settings: WebhookSettings,
    client: reqwest::Client,
    node: String,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let (results, rx) = mpsc::unbounded_channel::<AttemptResult>();
    let recorder = tokio::spawn(record(app.clone(), rx, node, wake.clone()));
    // The lease outlasts the request: the timeout for connecting and for the answer, and room
    // for writing the result.
    let lease = settings.timeout * 2 + Duration::from_secs(5);
    // The first sweep waits one interval: a node just started writes for its requests first,
    // and nodes started together do not all sweep at once.
    let mut next_sweep = tokio::time::Instant::now() + settings.sweep;
    let mut next_repair = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_sweep {
            match app.sweep_webhooks().await {
                Ok(r) if r != Default::default() => tracing::debug!(?r, "webhook sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhook sweep failed; will retry"),
            }
            next_sweep = tokio::time::Instant::now() + settings.sweep;
        }
        if tokio::time::Instant::now() >= next_repair {
            if let Err(e) = app.repair_webhook_turns().await {
                tracing::warn!(error = %e, "cannot check the webhook queues; will retry");
            }
            next_repair = tokio::time::Instant::now() + REPAIR.min(settings.sweep);
        }
        let free = slots.available_permits();
        if free > 0 {
            match app.claim_webhooks(free as i64, PER_ENDPOINT, lease).await {
                Ok(claimed) => {
                    for out in claimed {
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        let client = client.clone();
                        let results = results.clone();
                        let allow_private = settings.allow_private;
                        tokio::spawn(async move {
                            let r = attempt(&client, out, allow_private).await;
                            let _ = results.send(r);
                            drop(slot);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot take webhook deliveries; will retry"),
            }
        }
        let pause = settings.poll.min(settings.sweep);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => break,
        }
    }
    // Let the requests in flight finish (each within the timeout) and their results be written.
    let _ = tokio::time::timeout(
        settings.timeout + Duration::from_secs(1),
        slots.acquire_many(IN_FLIGHT as u32),
    )
    .await;
    drop(results);
    let _ = recorder.await;
}

/// Writes results as they come, in batches; wakes the claimer, since a finished delivery may
/// make the next one of its license due.
async fn record(
    app: App,
    mut rx: mpsc::UnboundedReceiver<AttemptResult>,
    node: String,
    wake: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < RESULT_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        for r in &batch {
            if !r.delivered() {
                tracing::debug!(delivery = r.delivery.id, endpoint = r.delivery.endpoint_id, status = ?r.status, error = ?r.error, "webhook attempt failed");
            }
        }
        let mut written = app.record_webhook_attempts(&batch, &node).await;
        if written.is_err() {
            // Once more after a pause; a result that cannot be written leaves its delivery to
            // be attempted again when the lease runs out (receivers drop the repeat by its id).
            tokio::time::sleep(Duration::from_secs(1)).await;
            written = app.record_webhook_attempts(&batch, &node).await;
        }
        if let Err(e) = written {
            tracing::warn!(error = %e, results = batch.len(), "cannot record webhook attempts; they will be made again");
        }
        wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolver_keeps_public_addresses_only_unless_allowed() {
        let addr = |s: &str| SocketAddr::new(s.parse().unwrap(), 0);
        let mixed = [addr("10.0.0.5"), addr("93.184.216.34")];
        assert_eq!(
            permitted("h", mixed, false).unwrap(),
            [addr("93.184.216.34")]
        );
        let internal = [addr("127.0.0.1"), addr("::1"), addr("169.254.169.254")];
        let refused = permitted("metadata.internal", internal, false).unwrap_err();
        assert!(
            refused.starts_with("refused: metadata.internal")
                && refused.contains("169.254.169.254"),
            "{refused}"
        );
        assert_eq!(permitted("h", internal, true).unwrap().len(), 3);
        assert!(permitted("h", [], true).is_err());
    }
}
