//! RFC 8693 token exchange at the IdP role: a human's ID token from a trusted enterprise
//! IdP, presented by an authenticated agent → a down-scoped ID-JAG (draft-ietf-oauth-
//! identity-assertion-authz-grant-04 §4.3, checklist sections D and E).
//!
//! The channel is named by the lanyard-specific `channel` form parameter; without it the
//! agent's direct grants apply.

use serde_json::{Value, json};

use super::approval;
use super::client_auth::Client;
use super::cx::{ActivePolicy, GrantCx, IssuerRuntime};
use crate::clock::UnixTime;
use crate::core::Rejection;
use crate::core::claims::{ActionDetail, Actor, Confirmation, IdTokenClaims};
use crate::core::grant::{self, Asked, Human};
use crate::crypto::dpop::Proof;
use crate::crypto::{Typ, random_id, sign_jwt, verify};
use crate::oauth::{ErrorCode, FormParams, OAuthError, urn};

/// The grant type URN.
pub const GRANT_TYPE: &str = urn::GRANT_TOKEN_EXCHANGE;

mod plan;

/// The validated request parameters.
#[derive(Debug)]
pub struct Params<'f> {
    subject_token: &'f str,
    audience: &'f str,
    resource: Option<&'f str>,
    scope: Option<Vec<&'f str>>,
    details: Option<Vec<ActionDetail>>,
    channel: Option<&'f str>,
    approval_id: Option<&'f str>,
}

impl<'f> Params<'f> {
    /// Read and check the parameters (RFC 8693 §2.1, ID-JAG §4.3).
    pub fn parse(form: &'f FormParams) -> Result<Self, Rejection> {
        let one = |n: &str| form.one(n).ok().flatten();
        let requested = one("requested_token_type");
        if requested != Some(urn::TOKEN_TYPE_ID_JAG) {
            return Err(Rejection::Request(
                "requested_token_type must be urn:ietf:params:oauth:token-type:id-jag",
            ));
        }
        let (Some(subject_token), Some(subject_type)) =
            (one("subject_token"), one("subject_token_type"))
        else {
            return Err(Rejection::Request(
                "subject_token and subject_token_type are required",
            ));
        };
        if subject_type != urn::TOKEN_TYPE_ID_TOKEN {
            return Err(Rejection::Request(
                "unsupported subject_token_type; send an ID token",
            ));
        }
        match (one("actor_token"), one("actor_token_type")) {
            (None, None) => {}
            (Some(_), Some(_)) => return Err(Rejection::Request("actor_token is not supported")),
            _ => {
                return Err(Rejection::Request(
                    "actor_token and actor_token_type go together",
                ));
            }
        }
        let audiences: Vec<&str> = form.all("audience").collect();
        let audience = match audiences.as_slice() {
            [] => return Err(Rejection::Request("audience is required")),
            [a] => *a,
            _ => return Err(Rejection::Target("one audience per ID-JAG")),
        };
        let resources: Vec<&str> = form.all("resource").collect();
        let resource = match resources.as_slice() {
            [] => None,
            [r] => Some(*r),
            _ => return Err(Rejection::Target("one resource per ID-JAG")),
        };
        if let Some(r) = resource {
            // RFC 8707 §2: an absolute URI without a fragment.
            match url::Url::parse(r) {
                Ok(u) if u.fragment().is_none() && !r.contains('#') => {}
                _ => {
                    return Err(Rejection::Target(
                        "resource must be an absolute URI without fragment",
                    ));
                }
            }
        }
        let scope = one("scope").map(|s| s.split(' ').filter(|x| !x.is_empty()).collect());
        let details = one("authorization_details")
            .map(parse_details)
            .transpose()?;
        Ok(Self {
            subject_token,
            audience,
            resource,
            scope,
            details,
            channel: one("channel"),
            approval_id: one("approval_id").filter(|a| !a.is_empty()),
        })
    }
}

/// RFC 9396 §2: a JSON array of objects with a string `type`; lanyard knows `lanyard_action`.
pub fn parse_details(raw: &str) -> Result<Vec<ActionDetail>, Rejection> {
    let v: Value =
        serde_json::from_str(raw).map_err(|_| Rejection::AuthorizationDetails("not JSON"))?;
    let arr = v
        .as_array()
        .ok_or(Rejection::AuthorizationDetails("not an array"))?;
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        match item.get("type").and_then(Value::as_str) {
            Some(urn::AUTHORIZATION_DETAILS_LANYARD_ACTION) => {}
            Some(_) => return Err(Rejection::AuthorizationDetails("unsupported type")),
            None => {
                return Err(Rejection::AuthorizationDetails(
                    "element without a string type",
                ));
            }
        }
        let d: ActionDetail = serde_json::from_value(item.clone())
            .map_err(|_| Rejection::AuthorizationDetails("malformed lanyard_action"))?;
        if d.actions.is_empty() {
            return Err(Rejection::AuthorizationDetails(
                "lanyard_action needs actions",
            ));
        }
        out.push(d);
    }
    Ok(out)
}

/// Map a rejection to this leg's wire error (checklist §1.14, D1, D4).
pub fn reject(r: &Rejection) -> OAuthError {
    use ErrorCode as C;
    match r {
        Rejection::Request(d) => OAuthError::new(C::InvalidRequest, d),
        Rejection::MayAct => OAuthError::new(
            C::InvalidRequest,
            "the subject token does not allow this agent to act",
        ),
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
        | Rejection::Subject => OAuthError::new(C::InvalidGrant, "subject token validation failed"),
        Rejection::KeysUnavailable => {
            OAuthError::unavailable("identity provider keys unavailable; try again later", 2)
        }
        Rejection::AuthTooOld { max_age } => {
            let mut e = OAuthError::new(
                C::InsufficientUserAuthentication,
                "the user must authenticate again",
            );
            e.extra.push(("max_age", json!(max_age)));
            e
        }
        Rejection::Target(d) => OAuthError::new(C::InvalidTarget, d),
        Rejection::Scope => {
            OAuthError::new(C::InvalidScope, "none of the requested scopes is allowed")
        }
        Rejection::AuthorizationDetails(d) => OAuthError::new(C::InvalidAuthorizationDetails, d),
        Rejection::Denied(_) => OAuthError::new(
            C::AccessDenied,
            "policy does not allow this agent to act for this user here",
        ),
    }
}

/// A verified subject: the IdP and the human, with the ID token's claims.
pub(crate) struct Subject {
    pub(crate) human: Human,
    pub(crate) claims: IdTokenClaims,
}

/// Validate the ID token (ID-JAG §4.3.3 step 1): trusted issuer, pinned algorithm, keys from
/// that issuer only, `aud` = the agent's client id at the IdP, times, `may_act`, `auth_time`.
async fn verify_subject(
    b: &GrantCx,
    active: &ActivePolicy,
    client: &Client<'_>,
    token: &str,
    now: UnixTime,
) -> Result<Subject, Rejection> {
    let mut expected = None;
    let subject = verify_id_token(b, active, token, now, |idp| {
        expected = client.agent.idp_client_id(&idp.id).map(str::to_owned);
        expected.clone()
    })
    .await?;
    plan::check_may_act(&subject.claims, &client.agent.id, expected.as_deref())?;
    Ok(subject)
}

/// Validate an ID token from a trusted `[[idp]]`: issuer, pinned algorithm, keys from that
/// issuer only, `typ` not another kind of JWT, times, `aud` containing the client id that
/// `aud_for(idp)` names (with `azp` when there are several), `auth_time` within the IdP's
/// `max_age`; then map the subject and groups. Used for agents' subject tokens and for
/// humans signing in to the admin API.
pub(crate) async fn verify_id_token(
    b: &GrantCx,
    active: &ActivePolicy,
    token: &str,
    now: UnixTime,
    mut aud_for: impl FnMut(&crate::policy::Idp) -> Option<String>,
) -> Result<Subject, Rejection> {
    let jws = verify::parse(token)
        .map_err(|_| Rejection::Malformed("subject token is not a compact JWS"))?;
    // RFC 8725 §3.12: an ID-JAG, an access token or a proof is never an ID token.
    if [
        "oauth-id-jag+jwt",
        "at+jwt",
        "dpop+jwt",
        "txntoken+jwt",
        "logout+jwt",
    ]
    .iter()
    .any(|t| jws.header.typ_is(t))
    {
        return Err(Rejection::WrongType);
    }
    let claims: IdTokenClaims = serde_json::from_slice(&jws.payload)
        .map_err(|_| Rejection::Malformed("ID token claims malformed"))?;
    let iss = claims.iss.as_deref().ok_or(Rejection::UntrustedIssuer)?;
    let idp = active
        .policy
        .idp_by_issuer(iss)
        .ok_or(Rejection::UntrustedIssuer)?;
    let up = active
        .upstreams
        .get(iss)
        .ok_or(Rejection::UntrustedIssuer)?;
    let keys = up
        .keys_for(&b.fetcher, jws.header.kid.as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "upstream IdP keys unavailable");
            Rejection::KeysUnavailable
        })?;
    // Agents present the same ID token for many exchanges: its signature is verified once
    // per key set and remembered until its `exp` (the claims are checked every time).
    let until = claims.exp.map_or(0, |e| e.secs());
    let recall = verify::Recall::Keep { until };
    keys.0
        .verify_recalling(&jws, up.algorithms(), now, recall)
        .map_err(|e| {
            tracing::info!(error = %e, "ID token signature refused");
            Rejection::BadSignature("ID token")
        })?;
    let expected_aud = aud_for(idp);
    let human = plan::check_id_token(
        &claims,
        idp,
        expected_aud.as_deref(),
        b.settings.leeway,
        now,
    )?;
    Ok(Subject { human, claims })
}

/// Handle a token-exchange request from an authenticated client.
pub async fn handle(
    b: &GrantCx,
    iss: &IssuerRuntime,
    active: &ActivePolicy,
    client: Client<'_>,
    proof: Option<Proof>,
    form: &FormParams,
    now: UnixTime,
) -> Result<super::Answer, OAuthError> {
    let channel = form.one("channel").ok().flatten().map(str::to_owned);
    let mut trail = super::Trail::new(
        b,
        iss,
        crate::audit::Event::TokenExchange,
        &client.agent.id,
        now,
        channel,
    );
    let params = Params::parse(form).map_err(|r| trail.deny(&r, reject))?;
    let subject = verify_subject(b, active, &client, params.subject_token, now)
        .await
        .map_err(|r| trail.deny(&r, reject))?;
    trail.human = Some(subject.human.sub.clone());
    let resource = plan::pick_resource(&active.policy, &params, client.agent)
        .map_err(|r| trail.deny(&r, reject))?;
    trail.resource = Some(resource.uri.clone());
    let detail_actions: Option<Vec<&str>> = params.details.as_ref().map(|ds| {
        ds.iter()
            .filter(|d| d.locations.is_empty() || d.locations.contains(&resource.uri))
            .flat_map(|d| d.actions.iter().map(String::as_str))
            .collect()
    });
    // A just-in-time approval named by the request: it must be this request's, decided,
    // approved and unexpired; otherwise the exchange is refused and nothing is consumed.
    let approval = match params.approval_id {
        None => None,
        Some(id) => {
            let r = approval::load(b, id, now).await?;
            match r {
                Some(r)
                    if r.binds(
                        &client.agent.id,
                        &subject.human.sub,
                        params.channel,
                        &resource.uri,
                    ) =>
                {
                    match r.status {
                        approval::Status::Approved => Some(r),
                        approval::Status::Pending => return Err(approval::required(b, &r, now)),
                        approval::Status::Denied => {
                            return Err(
                                trail.deny(&Rejection::Denied("the approval was denied"), reject)
                            );
                        }
                    }
                }
                _ => {
                    return Err(trail.deny(
                        &Rejection::Request("unknown, expired or used approval_id"),
                        reject,
                    ));
                }
            }
        }
    };
    let runtime = super::runtime::for_agent(b, &client.agent.id, params.channel, now).await?;
    let asked = Asked {
        channel: params.channel,
        scope: params.scope.clone(),
        details: detail_actions,
        approved: approval
            .as_ref()
            .map(|a| a.actions.iter().map(String::as_str).collect())
            .unwrap_or_default(),
        runtime: &runtime,
    };
    let decision = grant::decide(
        &active.policy,
        client.agent,
        &subject.human,
        resource,
        &asked,
        now,
    )
    .map_err(|r| trail.deny(&r, reject))?;
    if let Some(r) =
        super::revoked_for_issuance(b, &client.agent.id, params.channel, None, now).await?
    {
        return Err(trail.deny(&r, reject));
    }
    // Actions the agent asked for that need a human's approval (or, asking for nothing in
    // particular, all it could get): record a pending approval and say where it is.
    if !decision.needs_approval.is_empty() && (decision.explicit || decision.actions.is_empty()) {
        let e = approval::request(
            b,
            approval::Ask {
                agent: &client.agent.id,
                human: &subject.human,
                channel: params.channel,
                resource: &resource.uri,
                actions: decision.needs_approval.clone(),
                approvers: decision.approvers.clone(),
            },
            now,
        )
        .await?;
        trail
            .record_decision(
                crate::audit::Decision::ApprovalRequested,
                &decision.needs_approval,
                "action needs a human's approval",
            )
            .await;
        return Err(e);
    }
    // Single use: the approval is consumed before anything is signed.
    let approval = match approval {
        Some(a) => match approval::consume(b, &a.id, now).await? {
            Some(taken) if taken.status == approval::Status::Approved => Some(taken),
            _ => {
                return Err(trail.deny(
                    &Rejection::Request("unknown, expired or used approval_id"),
                    reject,
                ));
            }
        },
        None => None,
    };
    let approval_claim = approval.as_ref().map(approval::ApprovalRecord::claim);
    trail.approval = approval
        .as_ref()
        .map(|a| (a.id.clone(), a.decided_by.clone()));

    let ttl = plan::id_jag_ttl(iss.settings.max_token_ttl, client.agent.max_ttl);
    let jti = random_id(18).map_err(|e| super::server_error(&e))?;
    let scope = decision.actions.join(" ");
    let details = [ActionDetail {
        kind: urn::AUTHORIZATION_DETAILS_LANYARD_ACTION.into(),
        actions: decision.actions.clone(),
        locations: vec![resource.uri.clone()],
    }];
    let actor = Actor {
        sub: client.agent.id.clone(),
        act: None,
    };
    // ID-JAG §9.8: a DPoP proof at the exchange binds the ID-JAG to its key.
    let cnf = proof.map(|p| serde_json::to_value(Confirmation::jkt(p.jkt)).unwrap_or(Value::Null));
    let mint = plan::Mint {
        issuer: &iss.settings.issuer,
        human: &subject.human,
        agent: client.agent,
        audience: params.audience,
        jti: &jti,
        now,
        ttl,
        resource: &resource.uri,
        scope: &scope,
        details: &details,
        actor: &actor,
        channel: params.channel,
        id_token: &subject.claims,
        cnf: cnf.as_ref(),
        approval: approval_claim.as_ref(),
    };
    let claims = plan::id_jag_claims(&mint);
    let keys = iss.keys.load();
    let key = keys.active(now).ok_or_else(|| {
        tracing::error!("no active signing key");
        OAuthError::unavailable("signing key unavailable", 5)
    })?;
    let token = sign_jwt(key, Typ::IdJag, &claims).map_err(|e| super::server_error(&e))?;
    vouch_for_own_as(
        b,
        iss,
        active,
        &token,
        key,
        params.audience,
        (now, now + ttl),
    );
    let reason = match (&approval, decision.needs_approval.is_empty()) {
        (Some(_), _) => "granted with a just-in-time approval",
        (None, true) => "granted",
        (None, false) => "granted; actions needing approval held back",
    };
    trail.issued(&decision.actions, &jti, reason).await?;
    let mut body = json!({
        "access_token": token,
        "issued_token_type": urn::TOKEN_TYPE_ID_JAG,
        "token_type": "N_A",
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

/// When the ID-JAG is for this lanyard's own authorization server role and that role trusts
/// this IdP role's issuer, tell the AS role's copy of the IdP's keys that the token verifies
/// (see `crypto::verify`): its jwt-bearer leg then skips re-verifying the signature of the
/// byte-identical token, the largest single step of a flow. Any other ID-JAG, or one that
/// reaches another replica, is verified as usual.
fn vouch_for_own_as(
    b: &GrantCx,
    iss: &IssuerRuntime,
    active: &ActivePolicy,
    token: &str,
    key: &crate::crypto::SigningKey,
    audience: &str,
    (now, exp): (UnixTime, UnixTime),
) {
    let own_as = b.issuer(crate::config::Role::AuthorizationServer);
    if own_as.is_none_or(|ras| ras.settings.issuer != audience) {
        return;
    }
    let issuer = &iss.settings.issuer;
    if active.policy.trusted_issuer(issuer).is_none() {
        return;
    }
    if let Some(up) = active.upstreams.get(issuer) {
        up.vouch(token, &key.kid, key.alg.as_str(), now, exp);
    }
}
