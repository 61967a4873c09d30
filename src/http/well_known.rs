//! Key publisher: RFC 8414 metadata and the JWKS of each issuer.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::Broker;
use crate::config::Role;
use crate::oauth::{ErrorCode, OAuthError};

fn json(body: Vec<u8>, cache: HeaderValue, content_type: &'static str) -> Response {
    let mut r = Response::new(axum::body::Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, cache);
    r
}

/// `GET /.well-known/oauth-authorization-server{path}`.
pub async fn metadata(State(b): State<Arc<Broker>>, role: Role) -> Response {
    match b.issuer(role) {
        Some(i) => json(
            i.metadata_json.clone(),
            HeaderValue::from_static("public, max-age=3600"),
            "application/json",
        ),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET {issuer}/jwks.json`: the published keys, cacheable for `keys.jwks_max_age`.
pub async fn jwks(State(b): State<Arc<Broker>>, role: Role) -> Response {
    let Some(i) = b.issuer(role) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = b.clock.now();
    let body = serde_json::to_vec(&i.keys.load().jwks(now)).unwrap_or_default();
    let cache = HeaderValue::from_str(&format!(
        "public, max-age={}",
        b.settings.keys.jwks_max_age.as_secs()
    ))
    .unwrap_or(HeaderValue::from_static("public, max-age=300"));
    json(body, cache, "application/jwk-set+json")
}

/// `{issuer}/authorize`: lanyard has no browser flow (`response_types_supported` is empty);
/// the endpoint exists only so that strict metadata parsers accept the document.
pub async fn authorize() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidRequest,
        "unsupported_response_type: this server has no authorization endpoint flow",
    )
}
