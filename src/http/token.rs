//! `POST {issuer}/token`: hygiene, grant dispatch, client authentication.
//!
//! Order (STYLE, "request flow"): form (content type, size, duplicates) → `grant_type`
//! (missing → `invalid_request`, unknown → `unsupported_grant_type`) → client
//! authentication (→ 401 `invalid_client`) → the grant's own handler.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::Broker;
use crate::config::Role;
use crate::grants::{Answer, DpopHeader, GrantType, RequestHeaders};
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

/// What the grants read of the request's headers: `Authorization` and `DPoP`.
pub fn request_headers(h: &HeaderMap) -> RequestHeaders {
    let authorization = h
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
    let mut values = h.get_all("dpop").iter();
    let dpop = match (values.next(), values.next()) {
        (None, _) => DpopHeader::Absent,
        (Some(_), Some(_)) => DpopHeader::Several,
        (Some(v), None) => v
            .to_str()
            .map_or(DpopHeader::NotAscii, |s| DpopHeader::One(s.to_owned())),
    };
    RequestHeaders {
        authorization,
        dpop,
    }
}

/// A grant's answer on the wire: JSON, `Cache-Control: no-store`.
pub fn answer(a: Answer) -> Response {
    let status = if a.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    super::response::no_store_json(status, a.body)
}

/// The token endpoint of the issuer playing `role`.
pub async fn token(State(broker): State<Arc<Broker>>, role: Role, req: Request) -> Response {
    handle(&broker, role, req)
        .await
        .map_or_else(IntoResponse::into_response, answer)
}

async fn handle(broker: &Arc<Broker>, role: Role, req: Request) -> Result<Answer, OAuthError> {
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
    crate::grants::dispatch(
        broker,
        issuer,
        grant,
        &request_headers(&parts.headers),
        form,
    )
    .await
}

/// `POST {issuer}/introspect` (RFC 7662).
pub async fn introspect(State(broker): State<Arc<Broker>>, role: Role, req: Request) -> Response {
    let r = async {
        let (iss, headers, form) =
            status_request(&broker, role, req, crate::grants::introspection::SINGLE).await?;
        crate::grants::introspection::handle(&broker, iss, &request_headers(&headers), &form).await
    }
    .await;
    r.map_or_else(IntoResponse::into_response, answer)
}

/// `POST {issuer}/revoke` (RFC 7009).
pub async fn revoke(State(broker): State<Arc<Broker>>, role: Role, req: Request) -> Response {
    let r = async {
        let (iss, headers, form) =
            status_request(&broker, role, req, crate::grants::revocation::SINGLE).await?;
        crate::grants::revocation::handle(&broker, iss, &request_headers(&headers), &form).await
    }
    .await;
    r.map_or_else(IntoResponse::into_response, answer)
}

async fn status_request<'b>(
    broker: &'b Arc<Broker>,
    role: Role,
    req: Request,
    single: &[&str],
) -> Result<
    (
        &'b crate::grants::cx::IssuerRuntime,
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
