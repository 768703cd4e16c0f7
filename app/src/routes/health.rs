//! `/healthz` (the process is alive) and `/readyz` (send me traffic).

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

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
    if let Err(e) = state.db.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable".into(),
        );
    }
    if let Err(e) = state.storage.check().await {
        tracing::warn!(error = %e, "readiness: storage unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unreachable".into(),
        );
    }
    (StatusCode::OK, "ready".into())
}
