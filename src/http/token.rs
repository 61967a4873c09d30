//! `POST {issuer}/token`: hygiene, grant dispatch, client authentication.
//!
//! Order (STYLE, "request flow"): form (content type, size, duplicates) → `grant_type`
//! (missing → `invalid_request`, unknown → `unsupported_grant_type`) → client
//! authentication (→ 401 `invalid_client`) → the grant's own handler.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::app::Broker;
use crate::config::Role;
use crate::oauth::{OAuthError, urn};

/// Parameters that may appear at most once in any token request (RFC 6749 §3.2). `resource`
/// and `audience` may repeat (RFC 8693 §2.1); each grant decides what it accepts.
const SINGLE: &[&str] = &[
    "grant_type",
    "assertion",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    "actor_token_type",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "authorization_details",
    "channel",
    "approval_id",
];

/// The grant types lanyard knows; each role serves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// RFC 8693, at the IdP role.
    TokenExchange,
    /// RFC 7523, at the resource-AS role.
    JwtBearer,
}

impl GrantType {
    fn for_role(role: Role, value: &str) -> Option<Self> {
        match (role, value) {
            (Role::Idp, urn::GRANT_TOKEN_EXCHANGE) => Some(Self::TokenExchange),
            (Role::AuthorizationServer, urn::GRANT_JWT_BEARER) => Some(Self::JwtBearer),
            _ => None,
        }
    }
}

/// The token endpoint of the issuer playing `role`.
pub async fn token(State(broker): State<Arc<Broker>>, role: Role, req: Request) -> Response {
    match handle(&broker, role, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(broker: &Arc<Broker>, role: Role, req: Request) -> Result<Response, OAuthError> {
    let (parts, body) = req.into_parts();
    let s = &broker.settings;
    let form = super::extract::oauth_form(&parts.headers, body, s.max_body_bytes, &s.form).await?;
    form.ensure_single(SINGLE)
        .map_err(|_| OAuthError::invalid_request("a parameter is repeated"))?;
    let Some(gt) = form.one("grant_type").ok().flatten() else {
        return Err(OAuthError::invalid_request("missing grant_type"));
    };
    let Some(grant) = GrantType::for_role(role, gt) else {
        return Err(OAuthError::new(
            crate::oauth::ErrorCode::UnsupportedGrantType,
            "this grant type is not supported at this issuer",
        ));
    };
    let issuer = broker
        .issuer(role)
        .ok_or_else(|| OAuthError::invalid_request("role not served"))?;
    crate::grants::dispatch(broker, issuer, grant, &parts.headers, form).await
}
