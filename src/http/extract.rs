//! The strict protocol-request reader. axum's stock `Form` answers 422 `text/plain` for a
//! duplicate field; every protocol request here gets RFC 6749 JSON instead.

use axum::body::Body;
use axum::http::{HeaderMap, header};

use crate::oauth::{FormLimits, FormParams, OAuthError};

/// Read and parse an `application/x-www-form-urlencoded` body within `max_body` bytes.
pub async fn oauth_form(
    headers: &HeaderMap,
    body: Body,
    max_body: usize,
    limits: &FormLimits,
) -> Result<FormParams, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if let Some(charset) = ct
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim_matches('"'))
        && !charset.eq_ignore_ascii_case("utf-8")
    {
        return Err(OAuthError::invalid_request(
            "only UTF-8 form bodies are accepted",
        ));
    }
    let too_large = || {
        OAuthError::new(
            crate::oauth::ErrorCode::PayloadTooLarge,
            "request body too large",
        )
    };
    // Refuse early on a declared length; the read below enforces it for chunked bodies.
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max_body)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, max_body)
        .await
        .map_err(|_| too_large())?;
    FormParams::parse(&bytes, limits).map_err(|e| {
        tracing::debug!(reason = %e, "form refused");
        OAuthError::invalid_request(match e {
            crate::oauth::FormError::NotUtf8 => "the form is not valid UTF-8",
            crate::oauth::FormError::TooManyParams => "too many parameters",
            crate::oauth::FormError::TooLong(_) => "a parameter is too long",
            crate::oauth::FormError::Duplicate(_) => "a parameter is repeated",
        })
    })
}
