//! `/healthz` (the process is alive) and `/readyz` (send me traffic).
//!
//! Readiness is about this instance, not its dependencies: it is not ready while it
//! starts (until it has reached its database and migrated) and while it drains after
//! SIGTERM. A database or storage outage later does not make it unready: every instance
//! shares the same database, so a load balancer that took them all out of service (and an
//! Auto Scaling group that replaced them all) would turn a blip into an outage and a
//! replacement storm. Pages answer a clear 503 meanwhile, and serve again as soon as the
//! database is back. The body says what is down.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// How long readiness waits for the database's answer: a probe must not outlast the
/// load balancer's timeout when the database hangs.
const PING: Duration = Duration::from_secs(1);

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if state.health.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining".into());
    }
    if !state.health.is_migrated() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the database".into(),
        );
    }
    let mut down = Vec::new();
    match tokio::time::timeout(PING, state.db.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            down.push("database");
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within 1 s");
            down.push("database");
        }
    }
    match tokio::time::timeout(PING, state.storage.check()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: storage unreachable");
            down.push("storage");
        }
        Err(_) => down.push("storage"),
    }
    if down.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (
            StatusCode::OK,
            format!(
                "ready; {} unreachable: pages answer 503 until it is back",
                down.join(" and ")
            ),
        )
    }
}
