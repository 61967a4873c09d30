//! The one RFC 6749 §5.2 error type.
//!
//! The public `error_description` is always a fixed `&'static str`: input, secrets and
//! `err.to_string()` never reach the wire. The detail of a failure goes to the log and the
//! audit trail instead.

use std::fmt;

/// An RFC 6749 §5.2 (and extension) error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2
    InvalidRequest,
    /// RFC 6749 §5.2
    InvalidClient,
    /// RFC 6749 §5.2
    InvalidGrant,
    /// RFC 6749 §5.2
    UnauthorizedClient,
    /// RFC 6749 §5.2
    UnsupportedGrantType,
    /// RFC 6749 §5.2
    InvalidScope,
    /// RFC 8707 §2 / RFC 8693 §2.2.2
    InvalidTarget,
    /// RFC 9396 §5
    InvalidAuthorizationDetails,
    /// RFC 6749 §4.1.2.1, used at the token endpoint for a policy denial (checklist D4)
    AccessDenied,
    /// RFC 9470 §3, ID-JAG §9.2
    InsufficientUserAuthentication,
    /// RFC 9449 §5
    InvalidDpopProof,
    /// RFC 9449 §8
    UseDpopNonce,
    /// RFC 7009 §2.2.1
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1
    TemporarilyUnavailable,
    /// RFC 6749 §4.1.2.1
    ServerError,
    /// RFC 6750 §3.1, at resource servers
    InvalidToken,
    /// RFC 6750 §3.1, at resource servers
    InsufficientScope,
    /// lanyard extension: an action needs a human's just-in-time approval; the body names
    /// the pending approval (`approval_id`, `approval_uri`).
    ApprovalRequired,
    /// `invalid_request` with 404: the record the request names does not exist (admin API,
    /// access requests).
    NotFound,
    /// `invalid_request` with 405: the method is not served at this path (RFC 9110 §15.5.6).
    MethodNotAllowed,
    /// `invalid_request` with 409: the record changed or was decided already.
    Conflict,
    /// `invalid_request` with 413: the body exceeds the configured limit.
    PayloadTooLarge,
    /// `temporarily_unavailable` with 429: a rate limit (RFC 6585 §4).
    TooManyRequests,
}

impl ErrorCode {
    /// The registered string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidAuthorizationDetails => "invalid_authorization_details",
            Self::AccessDenied => "access_denied",
            Self::InsufficientUserAuthentication => "insufficient_user_authentication",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::ApprovalRequired => "approval_required",
            Self::NotFound | Self::MethodNotAllowed | Self::Conflict | Self::PayloadTooLarge => {
                "invalid_request"
            }
            Self::TooManyRequests => "temporarily_unavailable",
        }
    }

    /// The HTTP status each error is answered with, declared here once for every code.
    pub const fn status(self) -> u16 {
        match self {
            Self::InvalidRequest
            | Self::InvalidGrant
            | Self::UnauthorizedClient
            | Self::UnsupportedGrantType
            | Self::InvalidScope
            | Self::InvalidTarget
            | Self::InvalidAuthorizationDetails
            // RFC 6749 §5.2 lists 400 for every token-endpoint error but invalid_client.
            | Self::AccessDenied
            | Self::InsufficientUserAuthentication
            | Self::InvalidDpopProof
            | Self::UseDpopNonce
            | Self::UnsupportedTokenType
            | Self::ApprovalRequired => 400,
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::TooManyRequests => 429,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error response at a protocol endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error (its `error` member and its HTTP status, [`ErrorCode::status`]).
    pub code: ErrorCode,
    /// The `error_description` member: fixed text, never derived from input.
    pub description: &'static str,
    /// A `WWW-Authenticate` challenge (RFC 6749 §5.2: when the client used the
    /// `Authorization` header).
    pub www_authenticate: Option<&'static str>,
    /// Seconds for a `Retry-After` header (503, 429).
    pub retry_after: Option<u32>,
    /// Extra JSON members (e.g. `max_age` with `insufficient_user_authentication`).
    pub extra: Vec<(&'static str, serde_json::Value)>,
    /// `Allow` header for a 405.
    pub allow: Option<&'static str>,
    /// A fresh `DPoP-Nonce` header (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    /// An error `code` with a fixed description.
    pub fn new(code: ErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description,
            www_authenticate: None,
            retry_after: None,
            extra: Vec::new(),
            allow: None,
            dpop_nonce: None,
        }
    }

    /// `invalid_request` (400).
    pub fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client` (401).
    pub fn invalid_client(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// `temporarily_unavailable` (503) with `Retry-After`.
    pub fn unavailable(description: &'static str, retry_after: u32) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(ErrorCode::TemporarilyUnavailable, description)
        }
    }

    /// Its HTTP status.
    pub const fn status(&self) -> u16 {
        self.code.status()
    }

    /// Add a `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("error".into(), self.code.as_str().into());
        m.insert("error_description".into(), self.description.into());
        for (k, v) in &self.extra {
            m.insert((*k).to_owned(), v.clone());
        }
        serde_json::Value::Object(m)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status(), self.description)
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_code() {
        assert_eq!(OAuthError::invalid_client("x").status(), 401);
        assert_eq!(OAuthError::invalid_request("x").status(), 400);
        assert_eq!(OAuthError::unavailable("x", 5).status(), 503);
        assert_eq!(OAuthError::new(ErrorCode::InvalidGrant, "x").status(), 400);
        assert_eq!(OAuthError::new(ErrorCode::Conflict, "x").status(), 409);
    }

    /// The codes lanyard adds for other statuses are registered codes on the wire.
    #[test]
    fn status_variants_use_registered_codes() {
        for (c, wire) in [
            (ErrorCode::NotFound, "invalid_request"),
            (ErrorCode::MethodNotAllowed, "invalid_request"),
            (ErrorCode::Conflict, "invalid_request"),
            (ErrorCode::PayloadTooLarge, "invalid_request"),
            (ErrorCode::TooManyRequests, "temporarily_unavailable"),
        ] {
            assert_eq!(c.as_str(), wire);
        }
    }

    #[test]
    fn body_has_only_fixed_text() {
        let b = OAuthError::invalid_request("missing grant_type").body();
        assert_eq!(b["error"], "invalid_request");
        assert_eq!(b["error_description"], "missing grant_type");
        assert_eq!(b.as_object().map(|m| m.len()), Some(2));
    }
}
