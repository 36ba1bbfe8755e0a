//! What operators call: `GET /metrics` (Prometheus text) and `GET /version`, and the layer that
//! counts every request by its route template.
//!
//! `/metrics` tells traffic and failure rates, which is nobody's business but the operator's:
//! on the main listener it is served only when a bearer token is configured (404 otherwise, as
//! if it did not exist; 401 without the right token), and a separate listener
//! (`KEYTURN_METRICS_LISTEN`, meant for a private network) serves it without one. It is never
//! rate-limited: a scraper shares its address with nothing a limit is for.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyturn_app::App;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// What the running program is, as the binary that serves it was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
    /// The source commit, or `unknown`.
    pub commit: String,
    /// When it was built, if the build said.
    pub build_date: Option<String>,
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: "unknown".to_owned(),
            build_date: None,
        }
    }
}

/// The bearer token `/metrics` asks for on the main listener; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(<redacted>)")
    }
}

/// `/version`, and `/metrics` behind the token when one is configured.
pub fn router(state: &AppState) -> Router<AppState> {
    let router = Router::new().route("/version", get(version));
    match state.settings.metrics_token {
        Some(_) => router.route("/metrics", get(guarded_metrics)),
        None => router,
    }
}

/// The separate metrics listener: `/metrics` without a token, and `/version`.
pub fn listener_router(app: App, build: BuildInfo) -> Router {
    app.metrics().set_build(&build.version, &build.commit);
    Router::new()
        .route(
            "/metrics",
            get(|State((app, _)): State<(App, BuildInfo)>| async move { metrics_text(&app).await }),
        )
        .route(
            "/version",
            get(|State((_, build)): State<(App, BuildInfo)>| async move { version_json(&build) }),
        )
        .with_state((app, build))
}

async fn version(State(state): State<AppState>) -> Json<serde_json::Value> {
    version_json(&state.settings.build)
}

fn version_json(build: &BuildInfo) -> Json<serde_json::Value> {
    Json(json!({
        "version": build.version,
        "commit": build.commit,
        "build_date": build.build_date,
    }))
}

async fn guarded_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.settings.metrics_token else {
        return ApiError::not_found("route").into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(expected.0.as_bytes())) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the metrics token is required (Authorization: Bearer <token>)",
        )
        .into_response();
    }
    metrics_text(&state.app).await
}

async fn metrics_text(app: &App) -> Response {
    let text = app.render_metrics().await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// The provider webhook routes, by template, and the provider each names.
const WEBHOOK_ROUTES: [(&str, &str); 6] = [
    ("/webhooks/stripe", "stripe"),
    ("/webhooks/paddle", "paddle"),
    ("/webhooks/lemonsqueezy", "lemonsqueezy"),
    ("/webhooks/fastspring", "fastspring"),
    ("/webhooks/gumroad/{secret}", "gumroad"),
    ("/webhooks/paypal", "paypal"),
];

/// Counts every request by method, route template and status, and times it. A path no route
/// matched is `unmatched`, so neither a probe's path nor a key in a Cryptolens URL ever
/// becomes a label.
pub async fn track(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // A clone of the template's shared text, not a copy.
    let route = request.extensions().get::<MatchedPath>().cloned();
    // A method outside the standard ones is any client's to make up: one label for them all.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let metrics = app.metrics();
    metrics.request(method, route, status, started.elapsed());
    if let Some((_, provider)) = WEBHOOK_ROUTES.iter().find(|(r, _)| *r == route) {
        metrics.webhook_received(provider, status);
    }
    response
}
