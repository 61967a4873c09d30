//! RFC 7523 jwt-bearer at the resource-AS role: an ID-JAG from an explicitly trusted issuer,
//! presented by the authenticated agent it names → an RFC 9068 access token for one agent,
//! acting for one human, in one channel, for named actions (ID-JAG §4.4, checklist F–J).

use serde_json::json;

use super::client_auth::Client;
use super::cx::{ActivePolicy, GrantCx, IssuerRuntime};
use super::token_exchange::parse_details;
use crate::clock::UnixTime;
use crate::core::Rejection;
use crate::core::claims::{AccessTokenClaims, ActionDetail, Confirmation, IdJagIn};
use crate::crypto::dpop::Proof;
use crate::crypto::{Typ, random_id, sign_jwt, verify};
use crate::oauth::{ErrorCode, FormParams, OAuthError, urn};
use crate::store::replay_key;

/// The grant type URN.
pub const GRANT_TYPE: &str = urn::GRANT_JWT_BEARER;

mod plan;

/// The request parameters.
#[derive(Debug)]
pub struct Params<'f> {
    assertion: &'f str,
    resource: Option<&'f str>,
    scope: Option<Vec<&'f str>>,
    details: Option<Vec<ActionDetail>>,
}

impl<'f> Params<'f> {
    /// RFC 7523 §2.1, RFC 8707, RFC 9396.
    pub fn parse(form: &'f FormParams) -> Result<Self, Rejection> {
        let assertion = form
            .one("assertion")
            .ok()
            .flatten()
            .ok_or(Rejection::Request("assertion is required"))?;
        let resources: Vec<&str> = form.all("resource").collect();
        let resource = match resources.as_slice() {
            [] => None,
            [r] => Some(*r),
            _ => return Err(Rejection::Target("one resource per access token")),
        };
        let scope = form
            .one("scope")
            .ok()
            .flatten()
            .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect());
        let details = form
            .one("authorization_details")
            .ok()
            .flatten()
            .map(parse_details)
            .transpose()?;
        Ok(Self {
            assertion,
            resource,
            scope,
            details,
        })
    }
}

/// Map a rejection to this leg's wire error: every ID-JAG problem is `invalid_grant`
/// (ID-JAG §4.4.1), with a fixed description; the detail goes to the log and audit.
pub fn reject(r: &Rejection) -> OAuthError {
    use ErrorCode as C;
    match r {
        Rejection::Request(d) => OAuthError::new(C::InvalidRequest, d),
        Rejection::Malformed(_)
        | Rejection::WrongType
        | Rejection::UntrustedIssuer
        | Rejection::SelfIssued
        | Rejection::BadSignature(_)
        | Rejection::Audience
        | Rejection::ClientMismatch
        | Rejection::Time(_)
        | Rejection::Jti
        | Rejection::Replay
        | Rejection::Subject
        | Rejection::MayAct
        | Rejection::AuthTooOld { .. }
        | Rejection::Denied(_) => {
            OAuthError::new(C::InvalidGrant, "the assertion is not acceptable")
        }
        Rejection::KeysUnavailable => {
            OAuthError::unavailable("issuer keys unavailable; try again later", 2)
        }
        Rejection::Target(d) => OAuthError::new(C::InvalidTarget, d),
        Rejection::Scope => {
            OAuthError::new(C::InvalidScope, "the requested scope exceeds the grant")
        }
        Rejection::AuthorizationDetails(d) => OAuthError::new(C::InvalidAuthorizationDetails, d),
    }
}

/// A validated ID-JAG.
struct Grant {
    claims: IdJagIn,
    iss: String,
    sub: String,
    jti: String,
    exp: UnixTime,
    reuse_allowed: bool,
    /// Signed by lanyard's own IdP role, whose `approval` claim attests an approval it
    /// consumed from this store. No other issuer's `approval` claim is honoured.
    own_idp: bool,
}

/// ID-JAG §4.4.1 / checklist §1.8 steps 2–10 (client authentication, step 1, is done).
async fn validate_id_jag(
    b: &GrantCx,
    me: &IssuerRuntime,
    active: &ActivePolicy,
    client: &Client<'_>,
    assertion: &str,
    now: UnixTime,
) -> Result<Grant, Rejection> {
    let jws = verify::parse(assertion)
        .map_err(|_| Rejection::Malformed("assertion is not a compact JWS"))?;
    if !jws.header.typ_is(urn::TYP_ID_JAG) {
        return Err(Rejection::WrongType);
    }
    let claims: IdJagIn = serde_json::from_slice(&jws.payload)
        .map_err(|_| Rejection::Malformed("ID-JAG claims malformed"))?;
    let iss = claims.iss.clone().ok_or(Rejection::UntrustedIssuer)?;
    // Trust is explicit (checklist D3): lanyard's own IdP role is trusted only when the policy
    // names it as a trusted issuer of a separate trust domain.
    let trusted = active
        .policy
        .trusted_issuer(&iss)
        .ok_or(Rejection::UntrustedIssuer)?;
    let up = active
        .upstreams
        .get(&iss)
        .ok_or(Rejection::UntrustedIssuer)?;
    let keys = up
        .keys_for(&b.fetcher, jws.header.kid.as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "trusted issuer keys unavailable");
            Rejection::KeysUnavailable
        })?;
    // An ID-JAG is single-use: its signature is not remembered, except when lanyard's own
    // IdP role signed it for this server (`token_exchange::vouch_for_own_as`).
    let recall = verify::Recall::Once;
    keys.0
        .verify_recalling(&jws, up.algorithms(), now, recall)
        .map_err(|e| {
            tracing::info!(error = %e, "ID-JAG signature refused");
            Rejection::BadSignature("ID-JAG")
        })?;
    let expect = plan::Expect {
        issuer: &me.settings.issuer,
        client_id: client.agent.client_id_at(&me.settings.issuer),
        leeway: b.settings.leeway,
    };
    let plan::Checked { sub, jti, exp } = plan::check_claims(&claims, &active.policy, expect, now)?;
    let own_idp = b
        .issuer(crate::config::Role::Idp)
        .is_some_and(|i| i.settings.issuer == iss);
    Ok(Grant {
        own_idp,
        iss,
        sub,
        jti,
        exp,
        reuse_allowed: trusted.allow_jti_reuse,
        claims,
    })
}

/// Handle a jwt-bearer request from an authenticated client.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    b: &GrantCx,
    me: &IssuerRuntime,
    active: &ActivePolicy,
    client: Client<'_>,
    proof: Option<Proof>,
    form: &FormParams,
    now: UnixTime,
) -> Result<super::Answer, OAuthError> {
    let mut trail = super::Trail::new(
        b,
        me,
        crate::audit::Event::JwtBearer,
        &client.agent.id,
        now,
        None,
    );
    let params = Params::parse(form).map_err(|r| trail.deny(&r, reject))?;
    if client.agent.dpop_bound_access_tokens && proof.is_none() {
        return Err(trail.deny(&Rejection::Request("this client must use DPoP"), reject));
    }
    let g = validate_id_jag(b, me, active, &client, params.assertion, now)
        .await
        .map_err(|r| trail.deny(&r, reject))?;
    trail.human = Some(g.sub.clone());
    trail.channel = g.claims.channel.clone();
    let resource = plan::pick_resource(
        &active.policy,
        &me.settings.issuer,
        params.resource,
        &g.claims,
    )
    .map_err(|r| trail.deny(&r, reject))?;
    trail.resource = Some(resource.uri.clone());
    if g.claims.approval.is_some() && !g.own_idp {
        tracing::info!(iss = %g.iss, "approval claim of a foreign ID-JAG ignored");
    }
    let runtime =
        super::runtime::for_agent(b, &client.agent.id, g.claims.channel.as_deref(), now).await?;
    let inputs = plan::Inputs {
        agent: client.agent,
        claims: &g.claims,
        own_idp: g.own_idp,
        params: &params,
        proof_jkt: proof.as_ref().map(|p| p.jkt.as_str()),
        runtime: &runtime,
        issuer_max_ttl: me.settings.max_token_ttl,
    };
    let plan =
        plan::plan(&active.policy, resource, &inputs, now).map_err(|r| trail.deny(&r, reject))?;
    let decision = &plan.decision;
    if let Some(r) = super::revoked_for_issuance(
        b,
        &client.agent.id,
        g.claims.channel.as_deref(),
        Some(&g.jti),
        now,
    )
    .await?
    {
        return Err(trail.deny(&r, reject));
    }

    let ttl = plan.ttl;
    let jti = random_id(18).map_err(|e| super::server_error(&e))?;
    let scope = decision.actions.join(" ");
    let details = [ActionDetail {
        kind: urn::AUTHORIZATION_DETAILS_LANYARD_ACTION.into(),
        actions: decision.actions.clone(),
        locations: vec![resource.uri.clone()],
    }];
    let cnf = proof.as_ref().map(|p| Confirmation::jkt(p.jkt.clone()));
    let claims = AccessTokenClaims {
        iss: &me.settings.issuer,
        sub: &g.sub,
        aud: &resource.uri,
        client_id: client.agent.client_id_at(&me.settings.issuer),
        iat: now,
        exp: now + ttl,
        jti: &jti,
        scope: &scope,
        authorization_details: &details,
        act: &plan.actor,
        channel: g.claims.channel.as_deref(),
        cnf: cnf.clone(),
        auth_time: g.claims.auth_time.map(|t| t.secs()),
        approval: g
            .claims
            .approval
            .as_ref()
            .filter(|_| decision.actions.iter().any(|a| plan.approved.contains(a))),
    };
    let keys = me.keys.load();
    let key = keys
        .active(now)
        .ok_or_else(|| OAuthError::unavailable("signing key unavailable", 5))?;
    let reason = if decision.needs_approval.is_empty() {
        "granted"
    } else {
        "granted; actions needing approval held back"
    };
    // Single use (checklist D2), recorded only once everything else has passed, in the same
    // atomic store step as the issuance's audit record: one commit, before anything is signed.
    if g.reuse_allowed {
        trail.issued(&decision.actions, &jti, reason).await?;
    } else {
        let spent = trail
            .issued_spending(
                replay_key(&["id-jag", &g.iss, &g.jti]),
                g.exp.saturating_add(b.settings.leeway),
                &decision.actions,
                &jti,
                reason,
            )
            .await?;
        if !spent {
            return Err(trail.deny(&Rejection::Replay, reject));
        }
    }
    let token = sign_jwt(key, Typ::AccessToken, &claims).map_err(|e| super::server_error(&e))?;
    let mut body = json!({
        "access_token": token,
        "token_type": if cnf.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": ttl,
        "scope": scope,
        "resource": resource.uri,
    });
    if params.details.is_some()
        && let Some(o) = body.as_object_mut()
    {
        o.insert("authorization_details".into(), json!(details));
    }
    Ok(super::Answer::ok(body.to_string().into_bytes()))
}
