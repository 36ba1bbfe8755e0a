//! Keyturn's HTTP interface. Handlers parse the request, call one use case of
//! [`keyturn_app::App`], and render the result; errors are mapped to HTTP in [`ApiError`] only.

mod cryptolens;
mod error;
mod extract;
mod rate_limit;
mod routes;
mod serde_util;
mod serve;
mod signed;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use keyturn_app::App;
use keyturn_providers::Providers;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use rate_limit::RateLimiter;
pub use serve::{serve, ConnectionLimits};
pub use signed::SIGNATURE_HEADER;

/// What the HTTP layer needs to know from configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Requests per minute per client IP on activation and validation; 0 turns limiting off.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    pub max_body_bytes: usize,
    /// The address buyers reach this server at (for payment providers' return links);
    /// without it, the request's Host header.
    pub public_url: Option<String>,
    /// What one client may hold, and how long shutdown waits for requests in flight.
    pub connections: ConnectionLimits,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 600,
            rate_limit_burst: 60,
            trust_forwarded_for: false,
            max_body_bytes: 64 * 1024,
            public_url: None,
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections_per_ip: 256,
                shutdown_grace: Duration::from_secs(10),
            },
        }
    }
}

/// Cloned for every request, so everything but the handles is behind one `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub settings: std::sync::Arc<HttpSettings>,
    pub limiter: RateLimiter,
    pub providers: std::sync::Arc<Providers>,
}

/// Paths no route matched: the Cryptolens API when the path names it loosely (`//api//key/…`,
/// as some SDKs build it), otherwise a 404.
async fn fallback(
    state: axum::extract::State<AppState>,
    request: Request<axum::body::Body>,
) -> Response {
    if cryptolens::is_api_path(request.uri().path()) {
        cryptolens::dispatch(state, request).await
    } else {
        ApiError::not_found("route").into_response()
    }
}

/// The whole HTTP surface of a Keyturn server.
pub fn router(app: App, settings: HttpSettings, providers: Providers) -> Router {
    let state = AppState {
        app,
        limiter: RateLimiter::new(settings.rate_limit_per_minute, settings.rate_limit_burst),
        settings: std::sync::Arc::new(settings.clone()),
        providers: std::sync::Arc::new(providers),
    };
    Router::new()
        .merge(routes::health::router())
        .nest("/v1", routes::v1(state.clone()))
        .merge(routes::webhooks::router())
        .merge(routes::license_urls::store_router())
        .merge(routes::buy::router())
        .nest("/api", cryptolens::router())
        .fallback(fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(
            // A span per request at debug level: at the default level, recording one for
            // every validation costs a fifth of the server's throughput (see bench/RESULTS.md).
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .with_state(state)
}
