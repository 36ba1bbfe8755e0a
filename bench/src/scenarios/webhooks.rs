//! Scenario 8, outgoing webhooks: what an endpoint costs the writes that emit events, and how fast the
//! events reach a receiver on this machine.
//!
//! The write is `POST /v1/licenses/{id}/extend` spread over the pool of licenses: a locked
//! update with its audit entry and, with an endpoint, one event and one delivery row. It is
//! measured in alternating slices with the endpoint disabled and enabled (the outbox drained
//! before each slice without), so the ratio is the cost of emitting plus delivering alongside.
//! Then the receiver holds its answers while a batch of extensions queues events, and lets go:
//! the time until it has every event is the delivery rate from a backlog. The receiver runs on
//! a thread of its own and checks every signature and that no event arrives twice.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::{client_note, rate, throughput, Load, Options, Scratch};
use crate::load::{self, RequestFactory};
use crate::report::Row;
use crate::server::{self, Admin, Database, Server};

/// A receiver that verifies each delivery and counts distinct events.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    secret: Arc<Mutex<String>>,
    seen: Arc<Mutex<HashSet<String>>>,
    received: Arc<AtomicU64>,
    bad: Arc<AtomicU64>,
    hold: tokio::sync::watch::Sender<bool>,
}

impl Receiver {
    /// Starts on a thread and runtime of its own, away from the load generator's thread.
    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let (hold, _) = tokio::sync::watch::channel(false);
        let receiver = Receiver {
            addr: listener.local_addr()?,
            secret: Arc::default(),
            seen: Arc::default(),
            received: Arc::default(),
            bad: Arc::default(),
            hold,
        };
        let state = receiver.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the receiver");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let router = axum::Router::new()
                    .route("/hook", axum::routing::post(receive))
                    .with_state(state);
                let _ = axum::serve(listener, router).await;
            });
        });
        Ok(receiver)
    }

    fn distinct(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

async fn receive(
    axum::extract::State(r): axum::extract::State<Receiver>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut held = r.hold.subscribe();
    let _ = held.wait_for(|h| !h).await;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let signature = header(keyturn_protocol::webhook::SIGNATURE_HEADER);
    let id = header(keyturn_protocol::webhook::EVENT_ID_HEADER);
    let secret = r.secret.lock().expect("lock").clone();
    let now = chrono::Utc::now().timestamp();
    if keyturn_protocol::webhook::verify(&signature, &body, &secret, now, 300).is_err() {
        r.bad.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    r.received.fetch_add(1, Ordering::Relaxed);
    r.seen.lock().expect("lock").insert(id);
    StatusCode::OK
}

/// An extension of one of `ids` for a day, with the admin's token.
fn extend(addr: SocketAddr, token: &str, id: i64) -> Request<Full<Bytes>> {
    Request::post(format!("/v1/licenses/{id}/extend"))
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::from_static(br#"{"days":1}"#)))
        .expect("a valid request")
}

/// Waits until no delivery to `endpoint` is pending.
async fn drained(admin: &Admin, endpoint: i64, within: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + within;
    loop {
        let pending = admin
            .get(&format!(
                "/v1/webhook-endpoints/{endpoint}/deliveries?state=pending&limit=1"
            ))
            .await?;
        if pending["data"].as_array().is_some_and(|d| d.is_empty()) {
            return Ok(());
        }
        ensure!(
            Instant::now() < until,
            "deliveries still pending after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_enabled(admin: &Admin, endpoint: i64, enabled: bool) -> anyhow::Result<()> {
    admin
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            Some(&json!({"enabled": enabled})),
        )
        .await?;
    Ok(())
}

pub(super) async fn figures(
    o: &Options,
    scratch: &mut Scratch,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    eprintln!("8. outgoing webhooks");
    let mut databases = vec![scratch.sqlite("webhooks")];
    if let Some(db) = scratch.postgres().await? {
        databases.push(db);
    }
    for db in &databases {
        one_database(o, db, rows).await?;
    }
    Ok(())
}

async fn one_database(o: &Options, db: &Database, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let env = [
        ("KEYTURN_WEBHOOK_ALLOW_PRIVATE", "true"),
        // The backlog measurement holds requests open while it queues events.
        ("KEYTURN_WEBHOOK_TIMEOUT_SECONDS", "120"),
    ];
    let Server { process, admin } = server::keyturn(&o.server, db, &env).await?;
    let receiver = Receiver::start()?;
    let product = admin.product("Bench").await?;
    let made = admin
        .post(
            "/v1/licenses",
            json!({"product_id": product, "period_days": 30, "quantity": o.pool()}),
        )
        .await?;
    let ids: Vec<i64> = made["data"]
        .as_array()
        .ok_or_else(|| anyhow!("no data in {made}"))?
        .iter()
        .filter_map(|l| l["id"].as_i64())
        .collect();
    let created = admin
        .post(
            "/v1/webhook-endpoints",
            json!({"url": format!("http://{}/hook", receiver.addr), "events": ["license.*"]}),
        )
        .await?;
    let endpoint = created["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no endpoint id in {created}"))?;
    *receiver.secret.lock().expect("lock") =
        created["secret"].as_str().unwrap_or_default().to_owned();

    // The write path, with and without the endpoint, in alternating slices (by hand: the
    // endpoint is switched between them).
    let addr = process.addr;
    let token = admin.token().to_owned();
    let ids = Arc::new(ids);
    let factory: RequestFactory = {
        let ids = ids.clone();
        Arc::new(move |conn, n| extend(addr, &token, ids[(conn * 7919 + n as usize) % ids.len()]))
    };
    let load = Load {
        addr,
        spec: o
            .spec(o.connections, StatusCode::OK, "\"expires\"")
            .watching(process.pid()),
        make: factory,
    };
    let (mut without, mut with) = (
        crate::load::LoadStats::default(),
        crate::load::LoadStats::default(),
    );
    for round in 0..o.rounds() {
        // Drained while still enabled: a disabled endpoint's deliveries wait, so the outbox
        // would never empty after it is switched off.
        drained(&admin, endpoint, Duration::from_secs(300)).await?;
        set_enabled(&admin, endpoint, false).await?;
        without.absorb(load.slice(o, round).await?);
        set_enabled(&admin, endpoint, true).await?;
        with.absorb(load.slice(o, round).await?);
    }
    drained(&admin, endpoint, Duration::from_secs(300)).await?;
    without.ensure_clean("extensions without an endpoint")?;
    with.ensure_clean("extensions with an endpoint")?;

    // The backlog: the receiver holds its answers while events queue, then lets go.
    let batch = if o.smoke { 200 } else { 5000 };
    let before = receiver.distinct();
    receiver.hold.send_replace(true);
    let requests = (0..batch)
        .map(|n| extend(addr, admin.token(), ids[(n * 7919) % ids.len()]))
        .collect();
    let (_, replies) = load::run_batch(addr, o.connections, requests).await?;
    ensure!(
        replies.iter().all(|(s, _)| *s == StatusCode::OK),
        "an extension of the backlog failed"
    );
    let released = Instant::now();
    receiver.hold.send_replace(false);
    let until = released + Duration::from_secs(600);
    while receiver.distinct() < before + batch {
        ensure!(
            Instant::now() < until,
            "only {} of {batch} events arrived",
            receiver.distinct() - before
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = released.elapsed();
    drained(&admin, endpoint, Duration::from_secs(60)).await?;
    process.stop().await;

    let received = receiver.received.load(Ordering::Relaxed);
    let distinct = receiver.distinct() as u64;
    let bad = receiver.bad.load(Ordering::Relaxed);
    let per_second = batch as f64 / drain.as_secs_f64();
    let label = db.label();
    let ratio = with.throughput() / without.throughput();
    rows.push(
        Row::new(
            "8",
            format!("extend a license, an endpoint receiving license.* ({label})"),
            throughput(&with, "req"),
        )
        .against(
            format!("no endpoint {} req/s", rate(without.throughput())),
            ratio,
        )
        .note(format!(
            "alternating slices, the endpoint enabled and disabled; with it, each extension writes \
             an event and a delivery and the worker delivers them meanwhile; server CPU per \
             request {} µs without, {} µs with; {}",
            without.server_cpu_us.map_or("?".into(), |c| format!("{c:.0}")),
            with.server_cpu_us.map_or("?".into(), |c| format!("{c:.0}")),
            client_note(&with)
        )),
    );
    let mut row = Row::new(
        "8",
        format!("webhook deliveries from a backlog to a local receiver ({label})"),
        format!(
            "{} events in {:.2} s · {} events/s",
            rate(batch as f64),
            drain.as_secs_f64(),
            rate(per_second)
        ),
    )
    .against(
        format!(
            "extensions without an endpoint {} req/s",
            rate(without.throughput())
        ),
        per_second / without.throughput(),
    )
    .note(format!(
        "{batch} extensions queued while the receiver held its answers, then released; every \
         signature verified ({bad} bad), {distinct} distinct events in {received} deliveries \
         (no event twice: {})",
        received == distinct
    ));
    row.broken = bad > 0 || received != distinct;
    rows.push(row);
    Ok(())
}
