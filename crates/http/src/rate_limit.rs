//! Per-client-IP token buckets for everything that can be called without an access token —
//! the endpoints programs call with a key, license URLs, payment forms, webhooks — and for the
//! Cryptolens API, whose tokens travel as request parameters. Each node keeps its own buckets:
//! a limit that is per node is still a limit, and the shared database stays off this path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::extract::client_ip;
use crate::{ApiError, AppState};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Clone)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

/// Buckets kept before idle ones are swept, so a scan from many addresses cannot grow memory
/// without bound.
const SWEEP_AT: usize = 100_000;

impl RateLimiter {
    /// `per_minute == 0` turns limiting off.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_second > 0.0
    }

    /// Takes one request from `ip`'s bucket; on refusal, the seconds until one is available.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= SWEEP_AT {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// `router` behind the limiter; without a limit, no middleware at all (the licensee endpoints
/// are the hot path).
pub fn limited(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    if state.limiter.enabled() {
        router.layer(middleware::from_fn_with_state(state.clone(), limit))
    } else {
        router
    }
}

async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(ip) = client_ip(&parts, state.settings.trusted_proxy_hops) {
        if let Err(retry_after) = state.limiter.check(ip) {
            return refusal(parts.uri.path(), retry_after);
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// A 429 in the shape the path's callers read: stores show license URLs' answers as text.
fn refusal(path: &str, retry_after: u64) -> Response {
    if path.starts_with("/l/") {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::RETRY_AFTER, HeaderValue::from(retry_after)),
            ],
            format!("too many requests; retry in {retry_after} s\n"),
        )
            .into_response()
    } else {
        ApiError::too_many_requests(retry_after).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let limiter = RateLimiter::new(60, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(ip).is_ok());
        }
        assert_eq!(limiter.check(ip), Err(1));
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limiter.check(other).is_ok(), "buckets are per address");
    }

    #[test]
    fn zero_disables() {
        assert!(!RateLimiter::new(0, 10).enabled());
    }
}
