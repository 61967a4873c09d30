//! Health, readiness, metrics, and the 404 for everything else.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::Broker;

/// Liveness: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers, every role has a signing key, and we are not draining.
pub async fn readyz(State(b): State<Arc<Broker>>) -> Response {
    let now = b.clock.now();
    let mut problems = Vec::new();
    if b.draining() {
        problems.push("shutting down");
    }
    if b.store.ping().await.is_err() {
        problems.push("store unavailable");
    }
    if b.issuers().any(|i| i.keys.load().active(now).is_none()) {
        problems.push("no active signing key");
    }
    let body = serde_json::json!({ "ready": problems.is_empty(), "problems": problems });
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// Prometheus text format.
pub async fn metrics(State(b): State<Arc<Broker>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        b.metrics.render(),
    )
        .into_response()
}

/// Unknown path.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({"error": "not_found"})),
    )
        .into_response()
}
