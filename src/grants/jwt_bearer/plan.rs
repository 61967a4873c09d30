//! The pure half of the jwt-bearer leg: everything decided about a request from the ID-JAG's
//! verified claims, the request's parameters, the policy and `now` — no store, no keys, no
//! clock. [`super::handle`] verifies the signature first (that needs the issuer's keys) and
//! afterwards commits what the plan says (revocation check, replay mark with the audit
//! record, signing).
//!
//! Two steps, so that the audit trail can name the human and the resource as soon as they
//! are known:
//! 1. [`check_claims`]: the ID-JAG is for this server and this agent, in time, single-use
//!    material present, for a human, about resources this server governs (ID-JAG §4.4.1,
//!    RFC 7523 §3; checklist G78–G87);
//! 2. [`pick_resource`] and [`plan`]: which resource, what binding, which actions — the
//!    request ∩ the ID-JAG ∩ this server's policy for the agent (checklist F60–F64,
//!    G88–G90, H94–H97).
//!
//! The checklist lines about the compact JWS itself (G66–G77, G91–G93: segments, `typ`,
//! `alg`, keys, duplicate members, signature encoding) are the signature check's
//! (`crypto::verify`) and are tested there and by the conformance suite; replay (G85) is
//! the store's single atomic step.

use std::time::Duration;

use serde_json::Value;

use super::Params;
use crate::clock::UnixTime;
use crate::core::Rejection;
use crate::core::claims::{Actor, IdJagIn};
use crate::core::grant::{self, Decision, RuntimeGrant};
use crate::core::validate::{self, TimeRules};
use crate::oauth::urn;
use crate::policy::{Agent, Policy, Resource};

/// Longest accepted ID-JAG lifetime, `exp − iat` (checklist G83).
pub const MAX_ID_JAG_LIFETIME: u64 = 600;

/// Who the ID-JAG must be for.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// This resource AS's issuer identifier: the only acceptable `aud` (exactly).
    pub issuer: &'a str,
    /// The authenticated agent's client id at this issuer: the only acceptable `client_id`.
    pub client_id: &'a str,
    /// Clock leeway, seconds.
    pub leeway: u64,
}

/// What [`check_claims`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The human (the subject this server knows).
    pub sub: String,
    /// The ID-JAG's `jti` (its replay key, with `iss`).
    pub jti: String,
    /// Its `exp` (the replay mark is kept until then plus leeway).
    pub exp: UnixTime,
}

/// ID-JAG §4.4.1 steps 4–10 on verified claims (checklist G78–G87).
pub fn check_claims(
    c: &IdJagIn,
    policy: &Policy,
    x: Expect<'_>,
    now: UnixTime,
) -> Result<Checked, Rejection> {
    // G78, G79: exactly this issuer, compared as strings, one value (an array of one is
    // one value, F61).
    if !c.aud.as_ref().is_some_and(|a| a.is_exactly(x.issuer)) {
        return Err(Rejection::Audience);
    }
    // G80: minted for the agent that presents it.
    if c.client_id.as_deref() != Some(x.client_id) {
        return Err(Rejection::ClientMismatch);
    }
    // G81–G83: `exp` required (a leeway's worth late is still accepted), `iat` required and
    // not in the future, `nbf` not in the future, lifetime at most 600 s.
    let rules = TimeRules {
        leeway: x.leeway,
        max_lifetime: MAX_ID_JAG_LIFETIME,
        max_age: None,
        require_iat: true,
    };
    validate::times(c.exp, c.iat, c.nbf, rules, now)?;
    // G84: a `jti` of 1–256 characters.
    let jti = validate::jti(c.jti.as_ref().and_then(Value::as_str))?.to_owned();
    // G86: a non-empty string subject.
    let sub = match &c.sub {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Rejection::Subject),
    };
    // G87 (D5): every resource the ID-JAG names is one this server governs.
    if let Some(r) = &c.resource
        && !r.values().iter().all(|u| {
            policy
                .resource(u)
                .is_some_and(|x_| x_.authorization_server == x.issuer)
        })
    {
        return Err(Rejection::Denied(
            "ID-JAG names a resource this server does not serve",
        ));
    }
    let exp = c.exp.map_or(now, |e| e.secs());
    Ok(Checked { sub, jti, exp })
}

/// The resource of the access token (RFC 8707): the request's `resource`, which must be one
/// the ID-JAG names (G88); or the ID-JAG's only one. Unknown here, or governed by another
/// server: `invalid_target`.
pub fn pick_resource<'p>(
    policy: &'p Policy,
    issuer: &str,
    requested: Option<&str>,
    c: &IdJagIn,
) -> Result<&'p Resource, Rejection> {
    let in_grant = c.resource.as_ref().map(|r| r.values());
    let uri = match (requested, in_grant) {
        (Some(r), Some(set)) if set.iter().any(|x| x == r) => r,
        (Some(_), Some(_)) => return Err(Rejection::Target("resource outside the grant")),
        (Some(r), None) => r,
        (None, Some([one])) => one.as_str(),
        (None, _) => return Err(Rejection::Target("name the resource")),
    };
    policy
        .resource(uri)
        .filter(|r| r.authorization_server == issuer)
        .ok_or(Rejection::Target("unknown resource"))
}

/// What the access token will say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The granted actions (and those held back for want of an approval).
    pub decision: Decision,
    /// Actions a just-in-time approval in the ID-JAG covers (own IdP role only).
    pub approved: Vec<String>,
    /// The actor chain: this agent, with any earlier actor of the ID-JAG nested (F64).
    pub actor: Actor,
    /// Lifetime, seconds: the issuer's, the agent's and the resource's maximum, the least.
    pub ttl: u64,
    /// Whether the token is bound to the request's DPoP key.
    pub bound: bool,
}

/// The inputs of [`plan`] besides the policy.
pub struct Inputs<'a> {
    /// The authenticated agent.
    pub agent: &'a Agent,
    /// The ID-JAG's verified claims.
    pub claims: &'a IdJagIn,
    /// Whether lanyard's own IdP role signed it (only then is its `approval` honoured).
    pub own_idp: bool,
    /// The request's parameters.
    pub params: &'a Params<'a>,
    /// The thumbprint of the request's verified DPoP key, if it sent a proof.
    pub proof_jkt: Option<&'a str>,
    /// The agent's live runtime grants in the ID-JAG's channel.
    pub runtime: &'a [RuntimeGrant],
    /// The issuer's longest token lifetime.
    pub issuer_max_ttl: Duration,
}

/// Decide the access token for `resource` (ID-JAG §4.4, §9.8; RFC 7521 §4.1; RFC 9396).
pub fn plan(
    policy: &Policy,
    resource: &Resource,
    i: &Inputs<'_>,
    now: UnixTime,
) -> Result<Plan, Rejection> {
    // ID-JAG §9.8 (H94, H95): a key-bound ID-JAG demands a proof with that very key. A
    // confirmation method lanyard does not enforce (mTLS `x5t#S256`, a bare `jwk`, `kid`,
    // `jku`, …) is refused, never dropped: an unbound token must not come out of a bound
    // assertion.
    if let Some(cnf) = &i.claims.cnf {
        match (&cnf.jkt, i.proof_jkt) {
            (Some(_), _) if cnf.x5t_s256.is_some() || !cnf.other.is_empty() => {
                return Err(Rejection::Denied(
                    "ID-JAG confirmation method not supported",
                ));
            }
            (Some(jkt), Some(p)) if jkt == p => {}
            (Some(_), _) => return Err(Rejection::Denied("DPoP key does not match cnf.jkt")),
            (None, _) => {
                return Err(Rejection::Denied(
                    "ID-JAG confirmation method not supported",
                ));
            }
        }
    }
    // H97: a resource that demands sender-constrained tokens gets none without a proof.
    if resource.sender_constrained && i.proof_jkt.is_none() {
        return Err(Rejection::Denied(
            "resource requires a sender-constrained token",
        ));
    }
    let from_id_jag = id_jag_actions(i.claims, &resource.uri)?;
    let p = i.params;
    let requested: Option<Vec<&str>> = match (&p.scope, &p.details) {
        (None, None) => None,
        (s, d) => Some(
            s.iter()
                .flatten()
                .copied()
                .chain(
                    d.iter()
                        .flatten()
                        .flat_map(|x| x.actions.iter().map(String::as_str)),
                )
                .collect(),
        ),
    };
    // G90: requested details beyond what the ID-JAG grants.
    if let (Some(d), Some(idjag)) = (&p.details, &from_id_jag)
        && d.iter()
            .flat_map(|x| x.actions.iter())
            .any(|a| !idjag.contains(&a.as_str()))
    {
        return Err(Rejection::AuthorizationDetails(
            "authorization_details exceed the grant",
        ));
    }
    // The lanyard `approval` claim counts only from lanyard's own IdP role, which writes it
    // after consuming a human's approval from this store; a partner issuer's claim is not
    // evidence that a person here approved anything.
    let approved: Vec<&str> = i
        .claims
        .approval
        .as_ref()
        .filter(|_| i.own_idp)
        .and_then(|a| a.get("actions"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let ask = grant::RsAsked {
        channel: i.claims.channel.as_deref(),
        from_id_jag: from_id_jag.as_deref(),
        requested: requested.as_deref(),
        approved: &approved,
        runtime: i.runtime,
    };
    // F63, G89: request ∩ ID-JAG ∩ this server's policy for the agent.
    let decision = grant::decide_resource_server(policy, i.agent, resource, &ask, now)?;
    // RFC 8693 §4.1 (F64): the agent is the current actor; a prior actor nests inside. An
    // ID-JAG whose own `act` is this very agent (lanyard's IdP role writes one) adds no
    // earlier actor: nesting it would claim a delegation from the agent to itself.
    let prior = match i.claims.act.clone() {
        Some(a) if a.sub == i.agent.id => a.act.map(|inner| *inner),
        other => other,
    };
    let actor = Actor {
        sub: i.agent.id.clone(),
        act: prior.map(Box::new),
    };
    let ttl = i
        .issuer_max_ttl
        .min(i.agent.max_ttl)
        .min(resource.max_ttl)
        .as_secs();
    Ok(Plan {
        approved: approved.iter().map(|a| (*a).to_owned()).collect(),
        decision,
        actor,
        ttl,
        bound: i.proof_jkt.is_some(),
    })
}

/// Actions the ID-JAG carries for `resource`: its `scope` and its `lanyard_action` details
/// (an element without `type` is malformed, G90; other types are not lanyard's to read).
fn id_jag_actions<'a>(c: &'a IdJagIn, resource: &str) -> Result<Option<Vec<&'a str>>, Rejection> {
    let mut out: Option<Vec<&str>> = c
        .scope
        .as_deref()
        .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect());
    if let Some(d) = &c.authorization_details {
        let arr = d.as_array().ok_or(Rejection::Malformed(
            "authorization_details claim is not an array",
        ))?;
        for item in arr {
            let Some(kind) = item.get("type").and_then(Value::as_str) else {
                return Err(Rejection::Malformed(
                    "authorization_details element without type",
                ));
            };
            if kind != urn::AUTHORIZATION_DETAILS_LANYARD_ACTION {
                continue;
            }
            let locs: Vec<&str> = item
                .get("locations")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !locs.is_empty() && !locs.contains(&resource) {
                continue;
            }
            let acts = item
                .get("actions")
                .and_then(Value::as_array)
                .ok_or(Rejection::Malformed("lanyard_action without actions"))?;
            let v = out.get_or_insert_with(Vec::new);
            v.extend(acts.iter().filter_map(Value::as_str));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
