//! One middleware for every request: request id, timeout, metrics, one access-log event.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::response::ErrorCodeSeen;
use crate::app::Broker;
use crate::metrics::Endpoint;
use crate::oauth::OAuthError;

/// Accept a caller's request id only if it is short and plain; otherwise mint one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| crate::crypto::random_id(12).unwrap_or_else(|_| "-".into()))
}

/// Wraps every request.
pub async fn observe(State(b): State<Arc<Broker>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let _in_flight = crate::inflight::enter();
    let id = request_id(&req);
    let method = req.method().clone();
    // The path only, never the query: tokens must not reach logs even if sent in a URL.
    let path = req.uri().path().to_owned();
    let endpoint = Endpoint::of(&path);
    // A token request's grant, agent, resource and token id join this span once the token
    // is issued (`grants::Trail`), so the request's one log line says what it issued.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        grant = tracing::field::Empty,
        agent = tracing::field::Empty,
        resource = tracing::field::Empty,
        jti = tracing::field::Empty,
    );
    let timeout = b.settings.request_timeout;
    let mut resp = match tokio::time::timeout(timeout, next.run(req).instrument(span.clone())).await
    {
        Ok(r) => r,
        Err(_) => OAuthError::unavailable("request timed out", 1).into_response(),
    };
    let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let status = resp.status().as_u16();
    b.metrics.record(endpoint, status, micros);
    let error = resp.extensions().get::<ErrorCodeSeen>().map(|e| e.0);
    span.in_scope(|| {
        tracing::info!(%method, %path, status, error, latency_us = micros, "request");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
