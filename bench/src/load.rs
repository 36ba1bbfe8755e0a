//! A closed-loop HTTP/1.1 load generator: `connections` keep-alive connections, each sending its
//! next request as soon as the previous reply is read, for a fixed time. Every scenario and the
//! bare-HTTP ceiling go through this same client, so their figures differ only by the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Builds the `n`-th request a connection sends (`n` counts across the connection's life, and
/// `conn` tells connections apart so they can pick different keys or machines).
pub type RequestFactory = Arc<dyn Fn(usize, u64) -> Request<Full<Bytes>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The status that counts as success; anything else is an error.
    pub expect: StatusCode,
    /// Bytes a successful reply's body must contain (a status alone can hide a refusal).
    pub must_contain: &'static str,
    /// The server process, whose CPU time per request is reported alongside.
    pub server_pid: Option<u32>,
}

impl LoadSpec {
    pub fn watching(mut self, pid: Option<u32>) -> Self {
        self.server_pid = pid;
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latencies of the measured requests, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub first_error: Option<String>,
    /// The share of the whole machine the load generator itself used meanwhile.
    pub client_share: f64,
    /// CPU time the server used per request, in microseconds, when its process was watched.
    pub server_cpu_us: Option<f64>,
}

/// CPU seconds a process has used: `self` or a pid (Linux; 0 elsewhere).
fn cpu_seconds(process: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which ends with ')': utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

impl LoadStats {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`-quantile latency in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    /// Adds a later slice of the same load: counts and times add up, shares are weighted by
    /// the time (generator) or the requests (server) each slice stood for.
    pub fn absorb(&mut self, slice: LoadStats) {
        let (t0, t1) = (self.elapsed.as_secs_f64(), slice.elapsed.as_secs_f64());
        if t0 + t1 > 0.0 {
            self.client_share = (self.client_share * t0 + slice.client_share * t1) / (t0 + t1);
        }
        let (n0, n1) = (self.requests as f64, slice.requests as f64);
        self.server_cpu_us = match (self.server_cpu_us, slice.server_cpu_us) {
            (Some(a), Some(b)) if n0 + n1 > 0.0 => Some((a * n0 + b * n1) / (n0 + n1)),
            (a, b) => a.or(b),
        };
        self.requests += slice.requests;
        self.errors += slice.errors;
        self.elapsed += slice.elapsed;
        self.latencies_us.extend(slice.latencies_us);
        self.latencies_us.sort_unstable();
        if self.first_error.is_none() {
            self.first_error = slice.first_error;
        }
    }

    /// Fails when any request failed: a figure made of error replies is no figure.
    pub fn ensure_clean(&self, what: &str) -> anyhow::Result<()> {
        if self.errors > 0 || self.requests == 0 {
            bail!(
                "{what}: {} of {} requests failed (first: {})",
                self.errors,
                self.requests + self.errors,
                self.first_error.as_deref().unwrap_or("none")
            );
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

struct Worker {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

async fn connection(
    addr: SocketAddr,
    conn: usize,
    make: RequestFactory,
    expect: StatusCode,
    must_contain: &'static str,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<Worker> {
    let stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let (mut sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    let mut worker = Worker {
        requests: 0,
        errors: 0,
        latencies_us: Vec::with_capacity(1 << 16),
        first_error: None,
    };
    let mut n = 0u64;
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let request = make(conn, n);
        n += 1;
        sender.ready().await?;
        let outcome = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if status == expect && contains(&body, must_contain.as_bytes()) {
                    Ok(())
                } else {
                    Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let end = Instant::now();
        if start < measure_from {
            continue;
        }
        match outcome {
            Ok(()) => {
                worker.requests += 1;
                let us = end.duration_since(start).as_micros();
                worker
                    .latencies_us
                    .push(us.min(u128::from(u32::MAX)) as u32);
            }
            Err(e) => {
                worker.errors += 1;
                worker.first_error.get_or_insert(e);
            }
        }
    }
    Ok(worker)
}

/// Runs the load and merges what the connections saw.
pub async fn run(
    addr: SocketAddr,
    spec: &LoadSpec,
    make: RequestFactory,
) -> anyhow::Result<LoadStats> {
    let begin = Instant::now();
    let cpu_before = cpu_seconds("self");
    let server = spec.server_pid.map(|pid| pid.to_string());
    let measure_from = begin + spec.warmup;
    let until = measure_from + spec.duration;
    // The server's CPU is counted over the measured window only, not the warm-up.
    let server_at_start = tokio::spawn({
        let server = server.clone();
        async move {
            tokio::time::sleep_until(measure_from.into()).await;
            server.as_deref().map(cpu_seconds)
        }
    });
    let tasks: Vec<_> = (0..spec.connections)
        .map(|conn| {
            tokio::spawn(connection(
                addr,
                conn,
                make.clone(),
                spec.expect,
                spec.must_contain,
                measure_from,
                until,
            ))
        })
        .collect();
    let mut stats = LoadStats::default();
    for task in tasks {
        let worker = task.await??;
        stats.requests += worker.requests;
        stats.errors += worker.errors;
        stats.latencies_us.extend(worker.latencies_us);
        if stats.first_error.is_none() {
            stats.first_error = worker.first_error;
        }
    }
    stats.elapsed = Instant::now().saturating_duration_since(measure_from);
    if let (Some(before), Some(server)) = (server_at_start.await?, server.as_deref()) {
        stats.server_cpu_us =
            Some((cpu_seconds(server) - before) * 1e6 / stats.requests.max(1) as f64);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    stats.client_share =
        (cpu_seconds("self") - cpu_before) / (begin.elapsed().as_secs_f64() * cores);
    stats.latencies_us.sort_unstable();
    Ok(stats)
}

/// A request with a body, as the scenarios send them.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body))
        .expect("a valid request")
}

/// A GET with a cookie, as a signed-in browser sends it.
pub fn get(addr: SocketAddr, path: &str, cookie: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::COOKIE, cookie)
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// Sends a fixed set of requests over `connections` connections, each taking the next one as
/// soon as it is free; returns the time until the last reply and every reply.
pub async fn run_batch(
    addr: SocketAddr,
    connections: usize,
    requests: Vec<Request<Full<Bytes>>>,
) -> anyhow::Result<(std::time::Duration, Vec<(StatusCode, Bytes)>)> {
    let queue = Arc::new(std::sync::Mutex::new(requests.into_iter()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let (mut sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(driver);
                let mut replies = Vec::new();
                loop {
                    let next = queue.lock().expect("queue").next();
                    let Some(request) = next else { break };
                    sender.ready().await?;
                    let response = sender.send_request(request).await?;
                    let status = response.status();
                    let body = response.into_body().collect().await?.to_bytes();
                    replies.push((status, body));
                }
                anyhow::Ok(replies)
            })
        })
        .collect();
    let mut replies = Vec::new();
    for task in tasks {
        replies.extend(task.await??);
    }
    Ok((start.elapsed(), replies))
}
