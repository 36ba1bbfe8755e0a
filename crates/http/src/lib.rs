//! Keyturn's HTTP interface. Handlers parse the request, call one use case of
//! [`keyturn_app::App`], and render the result; errors are mapped to HTTP in [`ApiError`] only.

mod console;
mod cryptolens;
mod error;
mod extract;
mod gateways;
mod ops;
mod portal;
mod rate_limit;
mod routes;
mod serde_util;
mod serve;
mod signed;
mod text;
mod tls;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use keyturn_app::App;
use keyturn_providers::Providers;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use gateways::{Gateways, PaypalGateway, StripeGateway};
pub use ops::{listener_router as metrics_router, BuildInfo, MetricsToken};
pub use rate_limit::RateLimiter;
pub use serve::{serve, serve_tls, ConnectionLimits};
pub use signed::SIGNATURE_HEADER;
pub use tls::{redirect_router, Tls, TlsError, TlsFiles};

/// What the HTTP layer needs to know from configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Requests per minute per client IP on everything callable without an access token
    /// (licensee endpoints, license URLs, payment forms, webhooks) and on the Cryptolens API;
    /// 0 turns limiting off.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// How many proxies in front of the server append to `X-Forwarded-For`: the client IP is
    /// the address that many entries from the right. 0 ignores the header.
    pub trusted_proxy_hops: usize,
    pub max_body_bytes: usize,
    /// The address buyers reach this server at (for payment providers' return links); without
    /// it, payment forms take no checkout (a request's Host header is anyone's to set).
    pub public_url: Option<String>,
    /// The main listener serves https itself (console cookies are then `Secure` even without
    /// an https public URL).
    pub tls: bool,
    /// What one client may hold, and how long shutdown waits for requests in flight.
    pub connections: ConnectionLimits,
    /// The bearer token that opens `/metrics` on this listener; without one it is not served
    /// here (a separate metrics listener may serve it).
    pub metrics_token: Option<MetricsToken>,
    /// What `/version` and the build metric say.
    pub build: BuildInfo,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 600,
            rate_limit_burst: 60,
            trusted_proxy_hops: 0,
            max_body_bytes: 64 * 1024,
            public_url: None,
            tls: false,
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                max_connections_per_ip: 256,
                shutdown_grace: Duration::from_secs(10),
            },
            metrics_token: None,
            build: BuildInfo::default(),
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
    /// The configured providers' APIs, as the app calls them.
    pub gateways: std::sync::Arc<Gateways>,
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

/// A request path as the logs may show it: the secret part of a license URL, of the Gumroad
/// ping URL and a license key looked up by key are left out.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const SECRET_AFTER: [(&str, usize); 5] = [
        ("/l/", 1),
        ("/portal/link/", 0),
        ("/portal/secret/", 0),
        ("/webhooks/gumroad/", 0),
        ("/v1/licenses/by-key/", 0),
    ];
    for (prefix, keep) in SECRET_AFTER {
        if let Some(rest) = path.strip_prefix(prefix) {
            let kept: Vec<&str> = rest.split('/').take(keep).collect();
            let mut shown = format!("{prefix}{}", kept.join("/"));
            if !kept.is_empty() {
                shown.push('/');
            }
            shown.push_str("<redacted>");
            return shown.into();
        }
    }
    path.into()
}

/// A header set on every response unless the route set its own.
fn unless_set(
    name: header::HeaderName,
    value: &'static str,
) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// The whole HTTP surface of a Keyturn server.
pub fn router(app: App, settings: HttpSettings, providers: Providers) -> Router {
    let state = AppState {
        app,
        limiter: RateLimiter::new(settings.rate_limit_per_minute, settings.rate_limit_burst),
        settings: std::sync::Arc::new(settings.clone()),
        gateways: std::sync::Arc::new(Gateways::of(&providers)),
        providers: std::sync::Arc::new(providers),
    };
    state
        .app
        .metrics()
        .set_build(&settings.build.version, &settings.build.commit);
    let public = Router::new()
        .merge(routes::webhooks::router())
        .merge(routes::license_urls::store_router())
        .merge(routes::buy::router());
    Router::new()
        .merge(routes::health::router())
        .merge(ops::router(&state))
        .merge(console::router())
        .merge(portal::branded(portal::router(), &state))
        .nest("/v1", routes::v1(state.clone()))
        .merge(rate_limit::limited(public, &state))
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
        .layer(axum::middleware::from_fn(text::refuse_in_url))
        // Replies carry keys, tokens and license states: none is kept by a cache, shown in a
        // frame, named in a Referer, or allowed to load anything (the pages that need their
        // own style and script set their own policy).
        .layer(unless_set(header::CACHE_CONTROL, "no-store"))
        .layer(unless_set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(unless_set(header::REFERRER_POLICY, "no-referrer"))
        .layer(unless_set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(unless_set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(
            // A span per request at debug level: at the default level, recording one for
            // every validation costs a fifth of the server's throughput (see bench/RESULTS.md).
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::debug_span!("http", method = %req.method(), path = %loggable_path(req.uri().path()))
            }),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        // Outermost, so what it counts is what the client got, and how long it took.
        .layer(axum::middleware::from_fn_with_state(
            state.app.clone(),
            ops::track,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn secrets_are_left_out_of_logged_paths() {
        assert_eq!(loggable_path("/l/12/kt_secret"), "/l/12/<redacted>");
        assert_eq!(loggable_path("/l/12"), "/l/12/<redacted>");
        assert_eq!(
            loggable_path("/webhooks/gumroad/ping-secret"),
            "/webhooks/gumroad/<redacted>"
        );
        assert_eq!(
            loggable_path("/v1/licenses/by-key/ABCDE-FGHIJ"),
            "/v1/licenses/by-key/<redacted>"
        );
        assert_eq!(loggable_path("/v1/licenses/7"), "/v1/licenses/7");
        assert_eq!(
            loggable_path("/portal/link/ks_secret"),
            "/portal/link/<redacted>"
        );
        assert_eq!(
            loggable_path("/portal/secret/cs_secret"),
            "/portal/secret/<redacted>"
        );
        assert_eq!(loggable_path("/webhooks/stripe"), "/webhooks/stripe");
    }
}
