//! `POST {issuer}/introspect`: RFC 7662 token introspection.
//!
//! Callers authenticate like at the token endpoint (§2.1). An agent learns about its own
//! tokens only: anything else — another agent's token, another issuer's, an expired,
//! revoked, forged or unparseable one — is `{"active":false}` and nothing more (§2.2, §4).
//! A live token's answer is the full record of that run: the human (`sub`), the agent
//! (`client_id`, `act`), the channel, the granted scope and details, the approval, the
//! binding (`cnf`), the expiry, and the agent's accountable owner and `never` list.

use serde_json::{Value, json};

use super::cx::{GrantCx, IssuerRuntime};
use super::token_status::{self, OwnClaims};
use super::{Answer, client_auth};
use crate::config::Role;
use crate::oauth::{FormParams, OAuthError};
use crate::policy::Agent;

/// Parameters that may appear at most once.
pub const SINGLE: &[&str] = &[
    "token",
    "token_type_hint",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

fn inactive() -> Answer {
    Answer::ok(br#"{"active":false}"#.to_vec())
}

/// Handle an introspection request.
pub async fn handle(
    b: &GrantCx,
    iss: &IssuerRuntime,
    headers: &super::RequestHeaders,
    form: &FormParams,
) -> Result<Answer, OAuthError> {
    let now = b.clock.now();
    let active = b.policy.load_full();
    let client = client_auth::authenticate(b, iss, &active, headers, form, now).await?;
    answer(b, iss, &active, &client, form, now).await
}

/// The answer to an authenticated client.
async fn answer(
    b: &GrantCx,
    iss: &IssuerRuntime,
    active: &super::cx::ActivePolicy,
    client: &client_auth::Client<'_>,
    form: &FormParams,
    now: crate::clock::UnixTime,
) -> Result<Answer, OAuthError> {
    let token = token_status::token_param(form)?;
    // §2.1: token_type_hint is only a hint; every kind of token is looked up anyway.
    let Some(claims) = token_status::ours(iss, token, now) else {
        return Ok(inactive());
    };
    if claims.agent() != client.agent.id {
        tracing::info!(caller = %client.agent.id, "introspection of another agent's token");
        return Ok(inactive());
    }
    match token_status::liveness(b, active, &claims, now).await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => {
            tracing::debug!(?why, jti = %claims.jti, "introspected token not live");
            return Ok(inactive());
        }
        Err(e) => {
            tracing::error!(error = %e, "store unavailable during introspection");
            return Err(OAuthError::unavailable("try again later", 1));
        }
    }
    let body = record(iss, client.agent, claims);
    Ok(super::Answer::ok(body.to_string().into_bytes()))
}

fn record(iss: &IssuerRuntime, agent: &Agent, c: OwnClaims) -> Value {
    let token_type = match (iss.settings.role, c.cnf.is_some()) {
        (Role::AuthorizationServer, true) => "DPoP",
        (Role::AuthorizationServer, false) => "Bearer",
        // RFC 8693 §2.2.1: an ID-JAG is not an access token.
        (Role::Idp, _) => "N_A",
    };
    let mut m = json!({
        "active": true,
        "iss": c.iss,
        "sub": c.sub,
        "aud": c.aud,
        "client_id": c.client_id,
        "jti": c.jti,
        "iat": c.iat.secs(),
        "exp": c.exp.secs(),
        "token_type": token_type,
        "act": c.act,
        "owner": agent.owner,
        "never": agent.never,
    });
    if let Some(o) = m.as_object_mut() {
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                o.insert(k.to_owned(), v);
            }
        };
        put("scope", c.scope.map(Value::from));
        put("authorization_details", c.authorization_details);
        put("channel", c.channel.map(Value::from));
        put("approval", c.approval);
        put("resource", c.resource);
        put("cnf", c.cnf.and_then(|x| serde_json::to_value(x).ok()));
    }
    m
}
