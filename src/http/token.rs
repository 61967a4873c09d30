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
use crate::grants::GrantType;
use crate::oauth::OAuthError;

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

/// `POST {issuer}/introspect` (RFC 7662).
pub async fn introspect(State(broker): State<Arc<Broker>>, role: Role, req: Request) -> Response {
    let r = async {
        let (iss, headers, form) =
            status_request(&broker, role, req, crate::grants::introspection::SINGLE).await?;
        crate::grants::introspection::handle(&broker, iss, &headers, &form).await
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `POST {issuer}/revoke` (RFC 7009).
pub async fn revoke(State(broker): State<Arc<Broker>>, role: Role, req: Request) -> Response {
    let r = async {
        let (iss, headers, form) =
            status_request(&broker, role, req, crate::grants::revocation::SINGLE).await?;
        crate::grants::revocation::handle(&broker, iss, &headers, &form).await
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn status_request<'b>(
    broker: &'b Arc<Broker>,
    role: Role,
    req: Request,
    single: &[&str],
) -> Result<
    (
        &'b crate::app::IssuerRuntime,
        axum::http::HeaderMap,
        crate::oauth::FormParams,
    ),
    OAuthError,
> {
    let (parts, body) = req.into_parts();
    let s = &broker.settings;
    let form = super::extract::oauth_form(&parts.headers, body, s.max_body_bytes, &s.form).await?;
    form.ensure_single(single)
        .map_err(|_| OAuthError::invalid_request("a parameter is repeated"))?;
    let issuer = broker
        .issuer(role)
        .ok_or_else(|| OAuthError::invalid_request("role not served"))?;
    Ok((issuer, parts.headers, form))
}

/// Query of the revocation feed.
#[derive(Debug, serde::Deserialize)]
pub struct FeedQuery {
    /// Return entries after this position (0 = from the start).
    #[serde(default)]
    after: u64,
}

/// Entries per page of the feed.
const FEED_PAGE: usize = 1000;

/// `GET {issuer}/revocations?after=N`: the revocation feed that offline verifiers follow
/// (a lanyard extension, like a CRL: public, holding identifiers and times only — no
/// reasons, no revokers). Each entry says what is dead (a token `jti`, an agent, an agent's
/// grant in a channel), since when, and until when it matters; `until: 0` lifts an entry.
pub async fn revocation_feed(
    State(broker): State<Arc<Broker>>,
    role: Role,
    q: Result<axum::extract::Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let _ = role;
    let Ok(axum::extract::Query(q)) = q else {
        return OAuthError::invalid_request("after must be a number").into_response();
    };
    match broker.store.revocations_since(q.after, FEED_PAGE).await {
        Ok(entries) => {
            let next = entries.last().map_or(q.after, |(seq, _)| *seq);
            let list: Vec<serde_json::Value> = entries
                .into_iter()
                .map(|(seq, r)| {
                    let mut v = serde_json::to_value(&r.subject).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("seq".into(), seq.into());
                        o.insert("revoked_at".into(), r.revoked_at.into());
                        o.insert("until".into(), r.until.into());
                    }
                    v
                })
                .collect();
            let body = serde_json::json!({
                "revocations": list,
                "next": next,
                "now": broker.clock.now(),
            });
            crate::http::response::no_store_json(
                axum::http::StatusCode::OK,
                body.to_string().into_bytes(),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "store unavailable for the revocation feed");
            OAuthError::unavailable("try again later", 1).into_response()
        }
    }
}
