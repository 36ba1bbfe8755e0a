//! The dashboard: the `/admin` landing page of the roles that watch the business (owners,
//! admins, read-only viewers); support and sales land on the search they work from.

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use keyturn_core::dashboard::Window;
use keyturn_core::Role;
use serde::Deserialize;

use super::{dashboard_pages, Problem, Signed};
use crate::AppState;

/// Whether `role` lands on the dashboard (and sees it in the navigation).
pub(super) fn shows_dashboard(role: Role) -> bool {
    matches!(role, Role::Owner | Role::Admin | Role::ReadOnly)
}

#[derive(Deserialize)]
pub(super) struct DashboardQuery {
    days: Option<String>,
}

pub(super) async fn home(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<DashboardQuery>,
) -> Result<Response, Problem> {
    if !shows_dashboard(signed.session.user.role) {
        return Ok(Redirect::to("/admin/search").into_response());
    }
    let window = Window::parse(query.days.as_deref());
    let dashboard = state
        .app
        .dashboard(&signed.session.principal, window)
        .await?;
    Ok(Html(dashboard_pages::dashboard(&signed.session, &dashboard).into_string()).into_response())
}
