//! `POST {issuer}/revoke`: RFC 7009 token revocation, by the client the token was issued to.
//!
//! - The caller authenticates like at the token endpoint (§2.1; failure 401).
//! - `token` is required; `token_type_hint` is a hint only (a wrong one still revokes), but a
//!   hint naming a type lanyard does not know is `unsupported_token_type` (§2.2.1).
//! - One of this issuer's live tokens, issued to the caller: revoked at once, recorded in the
//!   store (until its expiry) and in the audit trail; 200.
//! - A token issued to another agent: refused with 400 `invalid_request` and left alone
//!   (§2.1 "refused"; a lanyard choice, checklist L116).
//! - Anything else (unknown, garbage, expired, another issuer's): 200, nothing done (§2.2).

use super::cx::{GrantCx, IssuerRuntime};
use super::token_status;
use super::{Answer, client_auth};
use crate::audit;
use crate::oauth::{ErrorCode, FormParams, OAuthError, urn};
use crate::store::{Revocation, RevocationSubject};

/// Parameters that may appear at most once.
pub const SINGLE: &[&str] = super::introspection::SINGLE;

/// Hints lanyard understands (RFC 7009 §4.1.2 registry, plus RFC 8693 token types).
const KNOWN_HINTS: &[&str] = &[
    "access_token",
    "refresh_token",
    urn::TOKEN_TYPE_ID_JAG,
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:jwt",
];

fn ok() -> Answer {
    Answer::ok(b"{}".to_vec())
}

/// Handle a revocation request.
pub async fn handle(
    b: &GrantCx,
    iss: &IssuerRuntime,
    headers: &super::RequestHeaders,
    form: &FormParams,
) -> Result<Answer, OAuthError> {
    let now = b.clock.now();
    let active = b.policy.load_full();
    let client = client_auth::authenticate(b, iss, &active, headers, form, now).await?;
    answer(b, iss, &client, form, now).await
}

/// The answer to an authenticated client.
async fn answer(
    b: &GrantCx,
    iss: &IssuerRuntime,
    client: &client_auth::Client<'_>,
    form: &FormParams,
    now: crate::clock::UnixTime,
) -> Result<Answer, OAuthError> {
    let token = token_status::token_param(form)?;
    if let Some(hint) = form.one("token_type_hint").ok().flatten()
        && !KNOWN_HINTS.contains(&hint)
    {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedTokenType,
            "this token type cannot be revoked here",
        ));
    }
    let Some(claims) = token_status::ours(iss, token, now) else {
        return Ok(ok());
    };
    if now >= claims.exp.secs() {
        return Ok(ok());
    }
    if claims.agent() != client.agent.id {
        tracing::info!(caller = %client.agent.id, "revocation of another agent's token refused");
        return Err(OAuthError::invalid_request(
            "the token was not issued to this client",
        ));
    }
    let revocation = Revocation {
        subject: RevocationSubject::Token {
            jti: claims.jti.clone(),
        },
        revoked_at: now,
        until: Some(claims.exp.secs().saturating_add(b.settings.leeway)),
        by: format!("agent:{}", client.agent.id),
        reason: "revoked by its client (RFC 7009)".into(),
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "store unavailable during revocation");
        OAuthError::unavailable("try again later", 1)
    };
    b.store
        .revoke(revocation)
        .await
        .map_err(|e| unavailable(&e))?;
    let actions: Vec<String> = claims
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let resource = claims.aud.values().first().cloned();
    audit::write(
        b.store.as_ref(),
        &audit::Record {
            at: now,
            event: audit::Event::Revocation,
            decision: audit::Decision::Revoked,
            human: Some(&claims.sub),
            agent: Some(claims.agent()),
            channel: claims.channel.as_deref(),
            resource: resource.as_deref(),
            actions: &actions,
            reason: "token revoked by its client",
            token_id: Some(&claims.jti),
            issuer: &iss.settings.issuer,
            approver: None,
            approval: None,
        },
    )
    .await
    .map_err(|e| unavailable(&e))?;
    tracing::info!(agent = %client.agent.id, jti = %claims.jti, "token revoked");
    Ok(ok())
}
