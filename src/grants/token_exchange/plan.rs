//! The pure half of the token-exchange leg: what is decided about a request from the ID
//! token's verified claims, the request's parameters, the policy and `now` — no store, no
//! keys, no clock. [`super::handle`] verifies the ID token's signature first (that needs
//! the IdP's keys), then plans with these rules and the grant intersection
//! ([`crate::core::grant::decide`]), then commits (a pending or consumed approval, the audit
//! record, signing).
//!
//! [`super::Params::parse`] is pure too and is tested here with the rest (checklist D32–D35,
//! D45, D47, D49, D50). The checklist lines about the compact JWS itself (D36–D39, D43:
//! segments, issuer, signature, `alg`, `typ`) are the signature check's
//! (`crypto::verify`, `verify_id_token`) and are tested there and by the conformance suite.

use serde_json::Value;

use super::Params;
use crate::clock::UnixTime;
use crate::core::Rejection;
use crate::core::claims::{ActionDetail, Actor, IdJagClaims, IdTokenClaims};
use crate::core::grant::Human;
use crate::core::validate::{self, TimeRules};
use crate::policy::{Agent, Idp, Policy, Resource};

/// Longest accepted ID token lifetime (`exp − iat`).
pub const MAX_ID_TOKEN_LIFETIME: u64 = 24 * 3600;

/// ID-JAG §4.3.3 step 1 on an ID token whose signature checked out: times (D40), `aud`
/// holding `expected_aud` — the agent's client id at that IdP, or the console's — (D41),
/// `azp` naming it when there are several audiences (D42), `auth_time` within the IdP's
/// `max_age` (D53); then the human: the subject the resource AS knows (the IdP's
/// `subject_claim`), every name a policy may use for them, and their groups.
pub fn check_id_token(
    c: &IdTokenClaims,
    idp: &Idp,
    expected_aud: Option<&str>,
    leeway: u64,
    now: UnixTime,
) -> Result<Human, Rejection> {
    let rules = TimeRules {
        leeway,
        max_lifetime: MAX_ID_TOKEN_LIFETIME,
        max_age: None,
        require_iat: true,
    };
    validate::times(c.exp, c.iat, c.nbf, rules, now)?;
    // ID-JAG §4.3.3 (D41): the ID token was issued to this client (the agent) at that IdP.
    let expected_aud = expected_aud.ok_or(Rejection::Audience)?;
    let aud = c.aud.as_ref().ok_or(Rejection::Audience)?;
    if !aud.values().iter().any(|a| a == expected_aud) {
        return Err(Rejection::Audience);
    }
    // OIDC Core §3.1.3.7: with several audiences, azp must name this client.
    if aud.values().len() > 1 && c.azp.as_deref() != Some(expected_aud) {
        return Err(Rejection::ClientMismatch);
    }
    if let Some(max_age) = idp.max_age {
        let auth_time = c.auth_time.map(|t| t.secs()).ok_or(Rejection::AuthTooOld {
            max_age: max_age.as_secs(),
        })?;
        if now
            > auth_time
                .saturating_add(max_age.as_secs())
                .saturating_add(leeway)
        {
            return Err(Rejection::AuthTooOld {
                max_age: max_age.as_secs(),
            });
        }
    }
    let str_claim = |name: &str| c.other.get(name).and_then(Value::as_str).map(str::to_owned);
    let raw_sub = c
        .sub
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::Subject)?;
    let sub = if idp.subject_claim == "sub" {
        Some(raw_sub.clone())
    } else {
        str_claim(&idp.subject_claim)
    };
    let sub = sub.filter(|s| !s.is_empty()).ok_or(Rejection::Subject)?;
    let groups = match c.other.get(&idp.groups_claim) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let mut names = vec![sub.clone(), raw_sub];
    names.extend(str_claim("email"));
    names.extend(str_claim("preferred_username"));
    Ok(Human { sub, names, groups })
}

/// RFC 8693 §4.4 (D51): a `may_act` claim must name the authenticated agent (by its id, or
/// by its client id at the IdP).
pub fn check_may_act(
    c: &IdTokenClaims,
    agent_id: &str,
    idp_client_id: Option<&str>,
) -> Result<(), Rejection> {
    if let Some(may_act) = &c.may_act {
        let named = may_act.get("sub").and_then(Value::as_str);
        if named != Some(agent_id) && named != idp_client_id {
            return Err(Rejection::MayAct);
        }
    }
    Ok(())
}

/// The resource the ID-JAG is for: the named one, which the audience must govern, or the
/// only resource of that audience the agent has a grant for.
pub fn pick_resource<'p>(
    policy: &'p Policy,
    p: &Params<'_>,
    agent: &Agent,
) -> Result<&'p Resource, Rejection> {
    if !policy
        .resources()
        .iter()
        .any(|r| r.authorization_server == p.audience)
    {
        return Err(Rejection::Target("unknown audience"));
    }
    let named = p.resource.or_else(|| {
        p.details.as_ref().and_then(|d| {
            d.iter()
                .flat_map(|x| x.locations.iter())
                .find(|l| policy.resource(l).is_some())
                .map(String::as_str)
        })
    });
    match named {
        Some(uri) => {
            let r = policy
                .resource(uri)
                .ok_or(Rejection::Target("unknown resource"))?;
            if r.authorization_server != p.audience {
                return Err(Rejection::Target(
                    "resource is not governed by the audience",
                ));
            }
            Ok(r)
        }
        None => {
            let mut candidates = policy.resources().iter().filter(|r| {
                r.authorization_server == p.audience
                    && (agent.grants.iter().any(|g| g.resource == r.uri)
                        || policy
                            .channels()
                            .iter()
                            .any(|c| c.grants_for(&agent.id).any(|g| g.resource == r.uri)))
            });
            match (candidates.next(), candidates.next()) {
                (Some(r), None) => Ok(r),
                _ => Err(Rejection::Target("name the resource")),
            }
        }
    }
}

/// An ID-JAG's lifetime (checklist D30, E57): the issuer's and the agent's maximum, and
/// never more than 5 minutes (ID-JAG §3.1 recommends short-lived grants; the resource AS
/// refuses any beyond 10).
pub fn id_jag_ttl(issuer_max: std::time::Duration, agent_max: std::time::Duration) -> u64 {
    issuer_max.as_secs().min(agent_max.as_secs()).min(300)
}

/// What the ID-JAG will say: the decided grant, the human, the agent, and the ID token's
/// authentication context.
pub struct Mint<'a> {
    /// The IdP role's issuer.
    pub issuer: &'a str,
    /// The verified human.
    pub human: &'a Human,
    /// The authenticated agent.
    pub agent: &'a Agent,
    /// The resource AS the ID-JAG is for (the request's `audience`).
    pub audience: &'a str,
    /// A fresh `jti` (≥ 128 bits of randomness; the commit makes it).
    pub jti: &'a str,
    /// Now.
    pub now: UnixTime,
    /// Its lifetime ([`id_jag_ttl`]).
    pub ttl: u64,
    /// The granted resource.
    pub resource: &'a str,
    /// The granted actions, space-separated.
    pub scope: &'a str,
    /// The granted actions as one `lanyard_action` detail.
    pub details: &'a [ActionDetail],
    /// The agent as the actor.
    pub actor: &'a Actor,
    /// The channel of the request.
    pub channel: Option<&'a str>,
    /// The subject ID token's claims (only the authentication context is copied).
    pub id_token: &'a IdTokenClaims,
    /// The DPoP binding, if the exchange carried a proof.
    pub cnf: Option<&'a Value>,
    /// The consumed just-in-time approval, if one was used.
    pub approval: Option<&'a Value>,
}

/// The ID-JAG's claims (ID-JAG §3.1, §4.3.3; checklist E57, E59): `iss` this IdP role,
/// `sub` the subject the resource AS knows, `aud` exactly the one resource AS, `client_id`
/// the agent's id *at that AS*, `iat` now and `exp` within the lifetime, the granted
/// resource and actions, the actor and channel, and `auth_time`/`acr`/`amr`/`email` copied
/// from the ID token — never the ID token itself, a secret or a refresh token.
pub fn id_jag_claims<'a>(m: &'a Mint<'a>) -> IdJagClaims<'a> {
    let c = m.id_token;
    let str_claim = |n: &str| c.other.get(n).and_then(Value::as_str);
    IdJagClaims {
        iss: m.issuer,
        sub: &m.human.sub,
        aud: m.audience,
        client_id: m.agent.client_id_at(m.audience),
        jti: m.jti,
        iat: m.now,
        exp: m.now + m.ttl,
        resource: m.resource,
        scope: m.scope,
        authorization_details: m.details,
        act: m.actor,
        channel: m.channel,
        auth_time: c.auth_time.map(|t| t.secs()),
        acr: c.acr.as_deref(),
        amr: c.amr.as_deref(),
        email: str_claim("email"),
        email_verified: c.other.get("email_verified").and_then(Value::as_bool),
        cnf: m.cnf,
        approval: m.approval,
    }
}

#[cfg(test)]
mod tests;
