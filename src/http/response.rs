//! How protocol results are written on the wire: JSON, `Cache-Control: no-store`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oauth::OAuthError;

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON body with `Cache-Control: no-store` (RFC 6749 §5.1).
pub fn no_store_json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    h.insert(header::PRAGMA, NO_CACHE);
    r
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = no_store_json(status, body);
        let h = r.headers_mut();
        if let Some(c) = self.www_authenticate {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The unread rest of the body makes the connection unusable for another request.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(n) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            h.insert("dpop-nonce", n);
        }
        if let Some(a) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(a));
        }
        // Every failure is recorded for the access log and metrics, without any input.
        r.extensions_mut().insert(ErrorCodeSeen(self.code.as_str()));
        r
    }
}

/// The `error` code of a response, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCodeSeen(pub &'static str);

/// A handler panicked: answer 500 `server_error` in JSON and keep serving.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    OAuthError::new(crate::oauth::ErrorCode::ServerError, "internal error").into_response()
}
