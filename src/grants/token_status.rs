//! Recognising lanyard's own tokens and deciding whether they are live: the shared core of
//! introspection (RFC 7662), revocation (RFC 7009) and the revocation feed.
//!
//! A token is *ours* when it is a compact JWS with this issuer's token `typ`, signed by a key
//! this issuer publishes, with `iss` = this issuer. It is *live* when it is ours, unexpired,
//! and neither the token, its agent, nor the agent's grant in its channel is revoked, and the
//! agent is still enabled in the policy.

use serde::Deserialize;
use serde_json::Value;

use super::cx::{ActivePolicy, GrantCx, IssuerRuntime};
use crate::clock::UnixTime;
use crate::config::Role;
use crate::core::claims::{Actor, Audience, Confirmation, NumericDate};
use crate::crypto::Typ;
use crate::crypto::verify::{self, VerifyKey};
use crate::store::{RevocationSubject, StoreError};

/// The claims lanyard puts in both its token kinds that status decisions need.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnClaims {
    /// Issuer.
    pub iss: String,
    /// The human.
    pub sub: String,
    /// Audience (the resource, or the resource AS for an ID-JAG).
    pub aud: Audience,
    /// The agent's client id at the audience.
    pub client_id: String,
    /// Token id.
    pub jti: String,
    /// Issued at.
    pub iat: NumericDate,
    /// Expiry.
    pub exp: NumericDate,
    /// Granted actions.
    #[serde(default)]
    pub scope: Option<String>,
    /// Granted details.
    #[serde(default)]
    pub authorization_details: Option<Value>,
    /// The agent (and earlier actors).
    pub act: Actor,
    /// Channel.
    #[serde(default)]
    pub channel: Option<String>,
    /// Key binding.
    #[serde(default)]
    pub cnf: Option<Confirmation>,
    /// A just-in-time approval, when one was used.
    #[serde(default)]
    pub approval: Option<Value>,
    /// The granted resource (ID-JAGs).
    #[serde(default)]
    pub resource: Option<Value>,
}

impl OwnClaims {
    /// The agent principal: the current actor.
    pub fn agent(&self) -> &str {
        &self.act.sub
    }
}

/// The `token` parameter of an introspection or revocation request (RFC 7662 §2.1,
/// RFC 7009 §2.1): required, once, non-empty.
pub fn token_param(form: &crate::oauth::FormParams) -> Result<&str, crate::oauth::OAuthError> {
    form.one("token")
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| crate::oauth::OAuthError::invalid_request("missing token"))
}

/// The token `typ` an issuer of `role` signs.
pub fn typ_of(role: Role) -> Typ {
    match role {
        Role::Idp => Typ::IdJag,
        Role::AuthorizationServer => Typ::AccessToken,
    }
}

/// The claims of `token` if this issuer made it (signature, `typ`, `iss`); expiry is not
/// checked here. `None` for anything else: garbage, another issuer's token, a forgery.
pub fn ours(iss: &IssuerRuntime, token: &str, now: UnixTime) -> Option<OwnClaims> {
    let jws = verify::parse(token).ok()?;
    if !jws.header.typ_is(typ_of(iss.settings.role).as_str()) {
        return None;
    }
    let keys = iss.keys.load();
    let key = keys.by_kid(jws.header.kid.as_deref()?, now)?;
    if jws.header.alg != key.alg.as_str() {
        return None;
    }
    let vk = VerifyKey::from_jwk(key.public_jwk(), &[key.alg.as_str()]).ok()?;
    let vk = vk.first()?;
    if !vk.verify(jws.signing_input.as_bytes(), &jws.signature) {
        return None;
    }
    let claims: OwnClaims = serde_json::from_slice(&jws.payload).ok()?;
    (claims.iss == iss.settings.issuer).then_some(claims)
}

/// Why a token of ours is not live (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    /// Past `exp`.
    Expired,
    /// The token itself was revoked.
    TokenRevoked,
    /// Its agent was disabled or revoked after issuing it.
    AgentRevoked,
    /// The agent's grant in its channel was withdrawn after issuing it.
    GrantWithdrawn,
    /// The agent is disabled (or gone) in the current policy.
    AgentDisabled,
}

/// Whether a token of ours is live at `now`. A store failure is an error (the caller fails
/// closed: introspection answers 503 rather than guessing).
pub async fn liveness(
    b: &GrantCx,
    active: &ActivePolicy,
    c: &OwnClaims,
    now: UnixTime,
) -> Result<Result<(), Dead>, StoreError> {
    if now >= c.exp.secs() {
        return Ok(Err(Dead::Expired));
    }
    if !active.policy.agent(c.agent()).is_some_and(|a| a.enabled) {
        return Ok(Err(Dead::AgentDisabled));
    }
    let iat = c.iat.secs();
    let token = RevocationSubject::Token { jti: c.jti.clone() };
    if b.store.revocation(&token, now).await?.is_some() {
        return Ok(Err(Dead::TokenRevoked));
    }
    let agent = RevocationSubject::Agent {
        client_id: c.agent().to_owned(),
    };
    if b.store
        .revocation(&agent, now)
        .await?
        .is_some_and(|r| iat <= r.revoked_at)
    {
        return Ok(Err(Dead::AgentRevoked));
    }
    if let Some(channel) = &c.channel {
        let grant = RevocationSubject::ChannelGrant {
            client_id: c.agent().to_owned(),
            channel: channel.clone(),
        };
        if b.store
            .revocation(&grant, now)
            .await?
            .is_some_and(|r| iat <= r.revoked_at)
        {
            return Ok(Err(Dead::GrantWithdrawn));
        }
    }
    Ok(Ok(()))
}
