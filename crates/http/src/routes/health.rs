//! `GET /health`: answered within a second whatever the database does, so a load balancer
//! never waits on a stuck pool. 200 only when the database answers reads and the last write
//! committed; the body says which part fails and why.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::AppState;

/// What a health check may take in all.
const BUDGET: Duration = Duration::from_millis(800);

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let health = state.app.health(BUDGET).await;
    let status = if health.ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if health.ok() { "ok" } else { "unavailable" },
        "database": match &health.database {
            Ok(()) => json!({"status": "ok"}),
            Err(reason) => json!({"status": "unreachable", "reason": reason}),
        },
        "writes": match &health.writes {
            None => json!({"status": "ok"}),
            Some(f) => json!({"status": "failing", "reason": f.reason, "since": f.since}),
        },
        "changes": match health.hearing_since {
            Some(since) => json!({"status": "heard", "since": since}),
            None => json!({"status": "not heard", "reason": "answers come from the database only"}),
        },
    });
    if !health.ok() {
        body["reason"] = json!(if health.database.is_err() {
            "database"
        } else {
            "writes"
        });
    }
    (status, Json(body))
}
