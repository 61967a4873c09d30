//! The human control plane's admin API, `/admin/v1/…` (JSON).
//!
//! **Who may call it.** A human, with `Authorization: Bearer <ID token>` from a trusted
//! enterprise `[[idp]]` of the policy, issued to lanyard's console client there
//! (`[control_plane] client_ids`), validated like any subject token (pinned algorithm,
//! issuer keys, times, `aud`, `max_age`). Roles come from the policy's `[control_plane]`
//! lists matched against the IdP's groups claim or the user's names. **Every agent
//! credential is refused on every route**: client authentication (Basic, form secrets,
//! client assertions), DPoP, an ID-JAG or a lanyard access token — one layer in front of
//! the whole admin router does this, so a new route cannot escape it (a test walks
//! [`ROUTES`]).
//!
//! **Kill switches** (admins; each takes effect at once for new requests and kills every
//! live token in its scope, also at offline resource servers that follow the revocation
//! feed):
//! - `POST /admin/v1/agents/{id}/disable` `{"reason"}`: the agent gets 401 `invalid_client`
//!   everywhere; its tokens are dead. `POST …/enable` lifts it (older tokens stay dead).
//! - `POST /admin/v1/agents/{id}/channel-grants/withdraw` `{"channel", "reason"}`: no token
//!   for that agent in that channel; its tokens there are dead. `…/restore` lifts it.
//! - `POST /admin/v1/tokens/revoke` `{"token"}` (an ID-JAG or access token lanyard issued)
//!   or `{"jti"}`: that token is dead.
//!
//! Reads: `GET /admin/v1/whoami`, `GET /admin/v1/agents` (owner, grants, live runtime
//! grants, state),
//! `GET /admin/v1/revocations` (admins and auditors).
//!
//! **Access requests** (see [`crate::grants::access_request`]; any control-plane role
//! reads, admins and approvers decide): `GET /admin/v1/access-requests?owner=&agent=&status=`,
//! `GET …/{id}`, `POST …/{id}/approve` `{"expires_in"?, "actions"? (a subset), "reason"?}`
//! (makes a runtime `extend` grant), `POST …/{id}/deny` `{"reason"?}`.
//!
//! **Runtime grants** (admins; see [`crate::grants::runtime`]): time-bound changes to an
//! agent's channel grant that only narrow or extend within the policy file.
//! `POST /admin/v1/agents/{id}/runtime-grants` `{"channel", "resource", "actions",
//! "effect": "extend"|"narrow", "expires_in"?, "reason"?}` (default lifetime
//! `runtime_grants.default_ttl`, at most `runtime_grants.max_ttl`);
//! `POST …/runtime-grants/withdraw` `{"grant_id", "reason"?}`;
//! `GET /admin/v1/runtime-grants?agent=` (admins and auditors).
//!
//! **Audit query** (admins and auditors): `GET /admin/v1/audit?human=&agent=&channel=
//! &decision=&since=&until=&after=&limit=` answers `{"records": [...], "next_after": n}`:
//! matching records oldest first, each with its chain position `seq` and `hash`, exactly as
//! `lanyard audit export` writes them (same filter, same redaction). `since`/`until` are unix
//! seconds or RFC 3339 (`since` inclusive, `until` exclusive); `limit` defaults to 100 (at
//! most 1000); `next_after` is set when more records may match — pass it as `after`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Broker;
use crate::audit;
use crate::config::Role;
use crate::crypto::verify;
use crate::grants::access_request;
use crate::grants::approval::{self, ApprovalRecord};
use crate::grants::{token_exchange, token_status};
use crate::oauth::{ErrorCode, OAuthError};
use crate::policy::HumanMatch;
use crate::store::{Revocation, RevocationSubject};

/// Every admin route: method and path. The router is built from this table, and a test
/// sends agent credentials to each entry.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin/v1/whoami"),
    ("GET", "/admin/v1/agents"),
    ("POST", "/admin/v1/agents/{id}/disable"),
    ("POST", "/admin/v1/agents/{id}/enable"),
    ("POST", "/admin/v1/agents/{id}/channel-grants/withdraw"),
    ("POST", "/admin/v1/agents/{id}/channel-grants/restore"),
    ("POST", "/admin/v1/tokens/revoke"),
    ("GET", "/admin/v1/revocations"),
    ("GET", "/admin/v1/approvals"),
    ("GET", "/admin/v1/approvals/{id}"),
    ("POST", "/admin/v1/approvals/{id}/approve"),
    ("POST", "/admin/v1/approvals/{id}/deny"),
    ("GET", "/admin/v1/audit"),
    ("GET", "/admin/v1/access-requests"),
    ("GET", "/admin/v1/access-requests/{id}"),
    ("POST", "/admin/v1/access-requests/{id}/approve"),
    ("POST", "/admin/v1/access-requests/{id}/deny"),
    ("GET", "/admin/v1/runtime-grants"),
    ("POST", "/admin/v1/agents/{id}/runtime-grants"),
    ("POST", "/admin/v1/agents/{id}/runtime-grants/withdraw"),
];

/// A control-plane role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRole {
    /// Changes agents, grants, revocations.
    Admin,
    /// Decides approvals and access requests.
    Approver,
    /// Reads the audit trail.
    Auditor,
}

/// The signed-in human, put into request extensions by the authentication layer.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Their subject.
    pub sub: String,
    /// Their roles.
    pub roles: Vec<AdminRole>,
    /// Their names and groups, for per-approval approver lists.
    pub human: crate::core::grant::Human,
}

impl Operator {
    fn require(&self, role: AdminRole) -> Result<(), OAuthError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "this operation needs another control-plane role",
            ))
        }
    }
}

/// The admin router (mounted at the server root).
pub fn router(broker: Arc<Broker>) -> Router<Arc<Broker>> {
    let mut r = Router::new();
    for &(method, path) in ROUTES {
        let m = match (method, path) {
            (_, "/admin/v1/whoami") => get(whoami),
            (_, "/admin/v1/agents") => get(agents),
            (_, "/admin/v1/agents/{id}/disable") => post(disable),
            (_, "/admin/v1/agents/{id}/enable") => post(enable),
            (_, "/admin/v1/agents/{id}/channel-grants/withdraw") => post(withdraw),
            (_, "/admin/v1/agents/{id}/channel-grants/restore") => post(restore),
            (_, "/admin/v1/tokens/revoke") => post(revoke_token),
            (_, "/admin/v1/approvals") => get(list_approvals),
            (_, "/admin/v1/approvals/{id}") => get(show_approval),
            (_, "/admin/v1/approvals/{id}/approve") => post(approve),
            (_, "/admin/v1/approvals/{id}/deny") => post(deny),
            (_, "/admin/v1/audit") => get(audit_query),
            (_, "/admin/v1/access-requests") => get(list_access_requests),
            (_, "/admin/v1/access-requests/{id}") => get(show_access_request),
            (_, "/admin/v1/access-requests/{id}/approve") => post(approve_access_request),
            (_, "/admin/v1/access-requests/{id}/deny") => post(deny_access_request),
            (_, "/admin/v1/runtime-grants") => get(list_runtime_grants),
            (_, "/admin/v1/agents/{id}/runtime-grants") => post(add_runtime_grant),
            (_, "/admin/v1/agents/{id}/runtime-grants/withdraw") => post(withdraw_runtime_grant),
            _ => get(revocations),
        };
        r = r.route(path, m);
    }
    r.route_layer(axum::middleware::from_fn_with_state(broker, authenticate))
}

fn refuse(description: &'static str) -> Response {
    OAuthError::new(ErrorCode::InvalidToken, description)
        .with_challenge("Bearer realm=\"lanyard-admin\"")
        .into_response()
}

/// The one gate in front of every admin route.
async fn authenticate(State(b): State<Arc<Broker>>, mut req: Request, next: Next) -> Response {
    match human(&b, req.headers()).await {
        Ok(op) => {
            req.extensions_mut().insert(op);
            next.run(req).await
        }
        Err(resp) => resp,
    }
}

async fn human(b: &Broker, headers: &HeaderMap) -> Result<Operator, Response> {
    // Agent credentials are never admin credentials, whatever else the request holds.
    if headers.contains_key("dpop") {
        return Err(refuse(
            "admin routes take a human's ID token, not agent credentials",
        ));
    }
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (auth.next(), auth.next()) else {
        return Err(refuse("a human's ID token is required"));
    };
    let value = value.to_str().unwrap_or("");
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(refuse("a human's ID token is required"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(refuse(
            "admin routes take a human's ID token, not agent credentials",
        ));
    }
    let token = token.trim();
    // A lanyard token (ID-JAG or access token) names an agent; refuse it before anything else.
    if let Ok(jws) = verify::parse(token)
        && (jws.header.typ_is("oauth-id-jag+jwt") || jws.header.typ_is("at+jwt"))
    {
        return Err(refuse(
            "admin routes take a human's ID token, not agent credentials",
        ));
    }
    let now = b.clock.now();
    let active = b.policy.load_full();
    let Some(cp) = active.policy.control_plane() else {
        return Err(refuse(
            "the policy has no [control_plane]; the admin API is closed",
        ));
    };
    let subject = token_exchange::verify_id_token(b, &active, token, now, |idp| {
        cp.client_ids.get(&idp.id).cloned()
    })
    .await
    .map_err(|r| {
        tracing::info!(reason = %r, "admin authentication refused");
        match r {
            crate::core::Rejection::KeysUnavailable => {
                OAuthError::unavailable("identity provider keys unavailable", 2).into_response()
            }
            _ => refuse("the ID token is not valid for the admin API"),
        }
    })?;
    let has = |list: &[HumanMatch]| list.iter().any(|m| subject.human.matches(m));
    let mut roles = Vec::new();
    if has(&cp.admins) {
        roles.push(AdminRole::Admin);
    }
    if has(&cp.approvers) {
        roles.push(AdminRole::Approver);
    }
    if has(&cp.auditors) {
        roles.push(AdminRole::Auditor);
    }
    if roles.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "this human has no control-plane role",
        )
        .into_response());
    }
    Ok(Operator {
        sub: subject.human.sub.clone(),
        roles,
        human: subject.human,
    })
}

fn ok(v: Value) -> Response {
    crate::http::response::no_store_json(StatusCode::OK, v.to_string().into_bytes())
}

fn unavailable(e: &dyn std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "store unavailable for an admin operation");
    OAuthError::unavailable("try again later", 1)
}

fn not_found() -> OAuthError {
    OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such agent")
}

async fn whoami(axum::Extension(op): axum::Extension<Operator>) -> Response {
    let roles: Vec<&str> = op
        .roles
        .iter()
        .map(|r| match r {
            AdminRole::Admin => "admin",
            AdminRole::Approver => "approver",
            AdminRole::Auditor => "auditor",
        })
        .collect();
    ok(json!({ "sub": op.sub, "roles": roles }))
}

async fn agents(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
) -> Result<Response, OAuthError> {
    if op.require(AdminRole::Admin).is_err() {
        op.require(AdminRole::Auditor)?;
    }
    let now = b.clock.now();
    let active = b.policy.load_full();
    let runtime = crate::grants::runtime::list(&b, now).await?;
    let mut out = Vec::new();
    for a in active.policy.agents() {
        let revoked = b
            .store
            .revocation(
                &RevocationSubject::Agent {
                    client_id: a.id.clone(),
                },
                now,
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let mut channels = Vec::new();
        for c in active.policy.channels() {
            for g in c.grants_for(&a.id) {
                let withdrawn = b
                    .store
                    .revocation(
                        &RevocationSubject::ChannelGrant {
                            client_id: a.id.clone(),
                            channel: c.id.clone(),
                        },
                        now,
                    )
                    .await
                    .map_err(|e| unavailable(&e))?
                    .is_some_and(|r| r.until.is_none());
                channels.push(json!({
                    "channel": c.id, "resource": g.resource, "actions": g.actions,
                    "expires": g.expires, "withdrawn": withdrawn,
                    "approval": g.approval.as_ref().map(|ap| json!({
                        "actions": ap.actions,
                        "approvers": ap.approvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })),
                }));
            }
        }
        let state = if !a.enabled {
            "disabled in policy"
        } else if revoked.as_ref().is_some_and(|r| r.until.is_none()) {
            "disabled"
        } else {
            "enabled"
        };
        out.push(json!({
            "id": a.id, "owner": a.owner, "state": state, "never": a.never,
            "max_ttl": a.max_ttl.as_secs(),
            "direct_grants": a.grants.iter().map(|g| json!({"resource": g.resource, "actions": g.actions})).collect::<Vec<_>>(),
            "channel_grants": channels,
            "runtime_grants": runtime
                .iter()
                .filter(|r| r.agent == a.id)
                .map(|r| runtime_grant_json(r, now))
                .collect::<Vec<_>>(),
        }));
    }
    Ok(ok(json!({ "agents": out })))
}

/// Body of the kill-switch routes.
#[derive(Debug, Deserialize, Default)]
struct Change {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    jti: Option<String>,
}

fn parse_change(body: &[u8]) -> Result<Change, OAuthError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Change::default());
    }
    serde_json::from_slice(body)
        .map_err(|_| OAuthError::invalid_request("body must be a JSON object"))
}

/// Record a revocation change and its audit record (both durable before answering).
async fn apply(
    b: &Broker,
    op: &Operator,
    r: Revocation,
    event: &'static str,
    agent: Option<&str>,
    channel: Option<&str>,
    reason: &str,
) -> Result<Response, OAuthError> {
    let now = b.clock.now();
    let subject = r.subject.clone();
    b.store.revoke(r).await.map_err(|e| unavailable(&e))?;
    audit::write(
        b.store.as_ref(),
        &audit::Record {
            at: now,
            event: "admin",
            decision: event,
            human: Some(&op.sub),
            agent,
            channel,
            resource: None,
            actions: &[],
            reason,
            token_id: match &subject {
                RevocationSubject::Token { jti } => Some(jti.as_str()),
                _ => None,
            },
            issuer: "admin",
            approver: None,
            approval: None,
        },
    )
    .await
    .map_err(|e| unavailable(&e))?;
    tracing::info!(by = %op.sub, event, ?subject, "control-plane change");
    Ok(ok(
        json!({ "ok": true, "event": event, "subject": subject, "at": now }),
    ))
}

/// Longest any lanyard token lives past now: what a lifted revocation must still cover.
fn max_token_life(b: &Broker) -> u64 {
    b.issuers()
        .map(|i| i.settings.max_token_ttl.as_secs())
        .max()
        .unwrap_or(3600)
        .saturating_add(b.settings.leeway)
}

async fn disable(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Admin)?;
    let c = parse_change(&body)?;
    if b.policy.load().policy.agent(&id).is_none() {
        return Err(not_found());
    }
    let reason = c.reason.unwrap_or_else(|| "disabled by an admin".into());
    let r = Revocation {
        subject: RevocationSubject::Agent {
            client_id: id.clone(),
        },
        revoked_at: b.clock.now(),
        until: None,
        by: op.sub.clone(),
        reason: reason.clone(),
    };
    apply(&b, &op, r, "agent_disabled", Some(&id), None, &reason).await
}

async fn enable(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Admin)?;
    let c = parse_change(&body)?;
    if b.policy.load().policy.agent(&id).is_none() {
        return Err(not_found());
    }
    let now = b.clock.now();
    let reason = c.reason.unwrap_or_else(|| "re-enabled by an admin".into());
    // Tokens issued while it was enabled before stay dead: keep the mark until they expire.
    let r = Revocation {
        subject: RevocationSubject::Agent {
            client_id: id.clone(),
        },
        revoked_at: now,
        until: Some(now + max_token_life(&b)),
        by: op.sub.clone(),
        reason: reason.clone(),
    };
    apply(&b, &op, r, "agent_enabled", Some(&id), None, &reason).await
}

async fn withdraw(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    channel_grant(b, op, id, body, true).await
}

async fn restore(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    channel_grant(b, op, id, body, false).await
}

async fn channel_grant(
    b: Arc<Broker>,
    op: Operator,
    id: String,
    body: axum::body::Bytes,
    withdraw: bool,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Admin)?;
    let c = parse_change(&body)?;
    let channel = c
        .channel
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("channel is required"))?;
    if b.policy.load().policy.agent(&id).is_none() {
        return Err(not_found());
    }
    let now = b.clock.now();
    let (event, until, default_reason) = if withdraw {
        ("channel_grant_withdrawn", None, "withdrawn by an admin")
    } else {
        (
            "channel_grant_restored",
            Some(now + max_token_life(&b)),
            "restored by an admin",
        )
    };
    let reason = c.reason.unwrap_or_else(|| default_reason.into());
    let r = Revocation {
        subject: RevocationSubject::ChannelGrant {
            client_id: id.clone(),
            channel: channel.clone(),
        },
        revoked_at: now,
        until,
        by: op.sub.clone(),
        reason: reason.clone(),
    };
    apply(&b, &op, r, event, Some(&id), Some(&channel), &reason).await
}

async fn revoke_token(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Admin)?;
    let c = parse_change(&body)?;
    let now = b.clock.now();
    let reason = c
        .reason
        .clone()
        .unwrap_or_else(|| "revoked by an admin".into());
    let (jti, until, agent) = match (&c.token, &c.jti) {
        (Some(t), None) => {
            let claims = [Role::AuthorizationServer, Role::Idp]
                .into_iter()
                .filter_map(|r| b.issuer(r))
                .find_map(|iss| token_status::ours(iss, t, now))
                .ok_or_else(|| OAuthError::invalid_request("not a token lanyard issued"))?;
            (
                claims.jti.clone(),
                claims.exp.secs().saturating_add(b.settings.leeway),
                Some(claims.act.sub.clone()),
            )
        }
        (None, Some(j)) if !j.is_empty() => (j.clone(), now + max_token_life(&b), None),
        _ => {
            return Err(OAuthError::invalid_request(
                "give exactly one of token or jti",
            ));
        }
    };
    let r = Revocation {
        subject: RevocationSubject::Token { jti },
        revoked_at: now,
        until: Some(until),
        by: op.sub.clone(),
        reason: reason.clone(),
    };
    apply(&b, &op, r, "token_revoked", agent.as_deref(), None, &reason).await
}

async fn revocations(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
) -> Result<Response, OAuthError> {
    if op.require(AdminRole::Admin).is_err() {
        op.require(AdminRole::Auditor)?;
    }
    let now = b.clock.now();
    let mut after = 0;
    let mut live = std::collections::BTreeMap::new();
    loop {
        let page = b
            .store
            .revocations_since(after, 1000)
            .await
            .map_err(|e| unavailable(&e))?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, r) in page {
            live.insert(r.subject.key(), r);
        }
    }
    let list: Vec<Value> = live
        .into_values()
        .filter(|r| r.until.is_none_or(|u| u > now))
        .map(|r| json!({ "subject": r.subject, "revoked_at": r.revoked_at, "until": r.until, "by": r.by, "reason": r.reason }))
        .collect();
    Ok(ok(json!({ "revocations": list })))
}

fn approval_json(r: &ApprovalRecord, now: u64) -> Value {
    json!({
        "id": r.id, "status": r.status, "agent": r.agent, "human": r.human,
        "channel": r.channel, "resource": r.resource, "actions": r.actions,
        "approvers": r.approvers, "created_at": r.created_at,
        "expires_in": r.expires_at.saturating_sub(now),
        "decided_by": r.decided_by, "decided_at": r.decided_at,
    })
}

fn can_see_approvals(op: &Operator) -> Result<(), OAuthError> {
    if op.require(AdminRole::Approver).is_ok() || op.require(AdminRole::Admin).is_ok() {
        Ok(())
    } else {
        op.require(AdminRole::Auditor)
    }
}

async fn list_approvals(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
) -> Result<Response, OAuthError> {
    can_see_approvals(&op)?;
    let now = b.clock.now();
    let records = b
        .store
        .list(crate::store::RecordKind::Approval, now)
        .await
        .map_err(|e| unavailable(&e))?;
    let list: Vec<Value> = records
        .iter()
        .filter_map(|(_, bytes)| serde_json::from_slice::<ApprovalRecord>(bytes).ok())
        .map(|r| approval_json(&r, now))
        .collect();
    Ok(ok(json!({ "approvals": list })))
}

async fn show_approval(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    can_see_approvals(&op)?;
    let now = b.clock.now();
    let r = approval::load(&b, &id, now)
        .await?
        .ok_or_else(approval::no_such_approval)?;
    Ok(ok(approval_json(&r, now)))
}

async fn approve(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_approval(b, op, id, body, true).await
}

async fn deny(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_approval(b, op, id, body, false).await
}

/// A named approver decides. Never the human the agent acts for (four eyes), never an agent
/// (no agent credential reaches this code). The rules and the atomic write are
/// [`approval::decide`]'s; this handler adds the audit record.
async fn decide_approval(
    b: Arc<Broker>,
    op: Operator,
    id: String,
    body: axum::body::Bytes,
    approve: bool,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Approver)?;
    let c = parse_change(&body)?;
    let now = b.clock.now();
    let verdict = approval::Verdict {
        by: &op.sub,
        who: &op.human,
        approve,
        approved_ttl: b.settings.approval_ttl.as_secs(),
    };
    let r = approval::decide(&b, &id, &verdict, now).await?;
    let event = if approve {
        "approval_granted"
    } else {
        "approval_denied"
    };
    let reason = format!(
        "{event} by {}{}",
        op.sub,
        c.reason.map(|x| format!(": {x}")).unwrap_or_default()
    );
    audit::write(
        b.store.as_ref(),
        &audit::Record {
            at: now,
            event: "approval",
            decision: event,
            human: Some(&r.human),
            agent: Some(&r.agent),
            channel: r.channel.as_deref(),
            resource: Some(&r.resource),
            actions: &r.actions,
            reason: &reason,
            token_id: None,
            issuer: "admin",
            approver: Some(&op.sub),
            approval: Some(&r.id),
        },
    )
    .await
    .map_err(|e| unavailable(&e))?;
    tracing::info!(approval = %r.id, by = %op.sub, event, "approval decided");
    Ok(ok(approval_json(&r, now)))
}

/// Default and largest page of the audit query.
const AUDIT_PAGE: usize = 100;
const AUDIT_PAGE_MAX: usize = 1000;

async fn audit_query(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    q: Result<
        axum::extract::Query<std::collections::HashMap<String, String>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Response, OAuthError> {
    if op.require(AdminRole::Auditor).is_err() {
        op.require(AdminRole::Admin)?;
    }
    let axum::extract::Query(q) =
        q.map_err(|_| OAuthError::invalid_request("malformed query string"))?;
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let time = |k: &str| -> Result<Option<u64>, OAuthError> {
        text(k)
            .map(|v| audit::export::parse_time(&v))
            .transpose()
            .map_err(|_| {
                OAuthError::invalid_request("since and until take RFC 3339 or unix seconds")
            })
    };
    let number = |k: &str| -> Result<Option<u64>, OAuthError> {
        text(k)
            .map(|v| v.parse::<u64>())
            .transpose()
            .map_err(|_| OAuthError::invalid_request("after and limit take whole numbers"))
    };
    let filter = audit::export::Filter {
        since: time("since")?,
        until: time("until")?,
        human: text("human"),
        agent: text("agent"),
        channel: text("channel"),
        decision: text("decision"),
    };
    let limit = number("limit")?
        .map_or(AUDIT_PAGE, |l| usize::try_from(l).unwrap_or(AUDIT_PAGE_MAX))
        .clamp(1, AUDIT_PAGE_MAX);
    let mut after = number("after")?.unwrap_or(0);
    let mut records: Vec<Value> = Vec::new();
    let mut next_after = None;
    'pages: loop {
        let page = b
            .store
            .audit_since(after, AUDIT_PAGE_MAX)
            .await
            .map_err(|e| unavailable(&e))?;
        if page.is_empty() {
            break;
        }
        for entry in &page {
            after = entry.seq;
            let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(&entry.body) else {
                continue;
            };
            if !filter.matches(&record) {
                continue;
            }
            let line = audit::export::line(entry, record);
            records.push(serde_json::from_str(&line).unwrap_or(Value::Null));
            if records.len() == limit {
                next_after = Some(entry.seq);
                break 'pages;
            }
        }
    }
    Ok(ok(json!({ "records": records, "next_after": next_after })))
}

fn runtime_grant_json(r: &crate::grants::runtime::RuntimeGrantRecord, now: u64) -> Value {
    json!({
        "id": r.id, "agent": r.agent, "channel": r.grant.channel, "resource": r.grant.resource,
        "actions": r.grant.actions, "effect": r.grant.effect, "expires_at": r.grant.expires_at,
        "expires_in": r.grant.expires_at.saturating_sub(now), "created_by": r.created_by,
        "created_at": r.created_at, "reason": r.reason, "access_request": r.access_request,
    })
}

async fn list_runtime_grants(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, OAuthError> {
    if op.require(AdminRole::Admin).is_err() {
        op.require(AdminRole::Auditor)?;
    }
    let now = b.clock.now();
    let list: Vec<Value> = crate::grants::runtime::list(&b, now)
        .await?
        .iter()
        .filter(|r| q.get("agent").is_none_or(|a| *a == r.agent))
        .map(|r| runtime_grant_json(r, now))
        .collect();
    Ok(ok(json!({ "runtime_grants": list })))
}

/// Body of `POST /admin/v1/agents/{id}/runtime-grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRuntimeGrant {
    channel: String,
    resource: String,
    actions: Vec<String>,
    effect: crate::core::grant::RuntimeEffect,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

async fn add_runtime_grant(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Admin)?;
    let n: NewRuntimeGrant = serde_json::from_slice(&body).map_err(|_| {
        OAuthError::invalid_request(
            "body must be a JSON object with channel, resource, actions and effect",
        )
    })?;
    if b.policy.load().policy.agent(&id).is_none() {
        return Err(not_found());
    }
    let now = b.clock.now();
    let expires_at = crate::grants::runtime::expiry(&b, n.expires_in, now)?;
    let reason = n.reason.unwrap_or_else(|| "changed by an admin".into());
    let r = crate::grants::runtime::create(
        &b,
        crate::grants::runtime::New {
            agent: &id,
            grant: crate::core::grant::RuntimeGrant {
                channel: n.channel,
                resource: n.resource,
                actions: n.actions,
                effect: n.effect,
                expires_at,
            },
            by: &op.sub,
            reason: &reason,
            access_request: None,
        },
        now,
    )
    .await?;
    Ok(crate::http::response::no_store_json(
        StatusCode::CREATED,
        runtime_grant_json(&r, now).to_string().into_bytes(),
    ))
}

/// Body of `POST /admin/v1/agents/{id}/runtime-grants/withdraw`.
#[derive(Debug, Deserialize)]
struct WithdrawRuntimeGrant {
    grant_id: String,
}

async fn withdraw_runtime_grant(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    op.require(AdminRole::Admin)?;
    let w: WithdrawRuntimeGrant = serde_json::from_slice(&body)
        .map_err(|_| OAuthError::invalid_request("body must be a JSON object with grant_id"))?;
    let now = b.clock.now();
    let r = crate::grants::runtime::withdraw(&b, &id, &w.grant_id, &op.sub, now)
        .await?
        .ok_or_else(|| {
            OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such runtime grant")
        })?;
    Ok(ok(json!({ "withdrawn": runtime_grant_json(&r, now) })))
}

async fn list_access_requests(
    State(b): State<Arc<Broker>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, OAuthError> {
    // Every control-plane role may read (the authentication layer required one).
    let now = b.clock.now();
    let is = |k: &str, v: &str| q.get(k).is_none_or(|w| w == v);
    let list: Vec<Value> = access_request::list(&b, now)
        .await?
        .iter()
        .map(access_request::AccessRequest::to_json)
        .filter(|v| {
            is("owner", v["owner"].as_str().unwrap_or(""))
                && is("agent", v["agent"].as_str().unwrap_or(""))
                && is("status", v["status"].as_str().unwrap_or(""))
        })
        .collect();
    Ok(ok(json!({ "access_requests": list })))
}

async fn show_access_request(
    State(b): State<Arc<Broker>>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let r = access_request::load(&b, &id, b.clock.now())
        .await?
        .ok_or_else(no_such_request)?;
    Ok(ok(r.to_json()))
}

fn no_such_request() -> OAuthError {
    OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such access request")
}

/// Body of the access-request decisions.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decide {
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    reason: Option<String>,
}

async fn approve_access_request(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_access_request(b, op, id, body, true).await
}

async fn deny_access_request(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_access_request(b, op, id, body, false).await
}

/// A human admin or approver decides; no agent credential reaches this code.
async fn decide_access_request(
    b: Arc<Broker>,
    op: Operator,
    id: String,
    body: axum::body::Bytes,
    approve: bool,
) -> Result<Response, OAuthError> {
    if op.require(AdminRole::Admin).is_err() {
        op.require(AdminRole::Approver)?;
    }
    let d: Decide = if body.iter().all(u8::is_ascii_whitespace) {
        Decide::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| OAuthError::invalid_request("body must be a JSON object"))?
    };
    let now = b.clock.now();
    let pending = access_request::load(&b, &id, now)
        .await?
        .ok_or_else(no_such_request)?;
    if pending.status != access_request::Status::Pending {
        return Err(OAuthError::new(
            crate::oauth::ErrorCode::Conflict,
            "this access request was already decided",
        ));
    }
    let actions = d.actions.unwrap_or_else(|| pending.actions.clone());
    if actions.is_empty() || actions.iter().any(|a| !pending.actions.contains(a)) {
        return Err(OAuthError::invalid_request(
            "actions must be a non-empty subset of the requested actions",
        ));
    }
    let expires_at = if approve {
        Some(crate::grants::runtime::expiry(&b, d.expires_in, now)?)
    } else {
        None
    };
    // Exactly one of concurrent deciders gets the pending request.
    let mut r = access_request::claim(&b, &id, now)
        .await?
        .filter(|r| r.status == access_request::Status::Pending)
        .ok_or_else(|| {
            OAuthError::new(
                crate::oauth::ErrorCode::Conflict,
                "this access request was already decided",
            )
        })?;
    r.decided_by = Some(op.sub.clone());
    r.decided_at = Some(now);
    r.decision_reason = d.reason;
    let event = if let Some(expires_at) = expires_at {
        let made = crate::grants::runtime::create(
            &b,
            crate::grants::runtime::New {
                agent: &r.agent,
                grant: crate::core::grant::RuntimeGrant {
                    channel: r.channel.clone(),
                    resource: r.resource.clone(),
                    actions: actions.clone(),
                    effect: crate::core::grant::RuntimeEffect::Extend,
                    expires_at,
                },
                by: &op.sub,
                reason: &format!("access request {} approved", r.id),
                access_request: Some(&r.id),
            },
            now,
        )
        .await;
        let made = match made {
            Ok(m) => m,
            Err(e) => {
                // Put the request back as it was; the decision did not happen.
                r.decided_by = None;
                r.decided_at = None;
                r.decision_reason = None;
                access_request::save(&b, &r).await?;
                return Err(e);
            }
        };
        r.status = access_request::Status::Approved;
        r.actions = actions;
        r.runtime_grant = Some(made.id);
        r.grant_expires_at = Some(expires_at);
        r.expires_at = r.expires_at.max(expires_at);
        "access_request_approved"
    } else {
        r.status = access_request::Status::Denied;
        "access_request_denied"
    };
    access_request::save(&b, &r).await?;
    access_request::record(&b, &r, event, Some(&op.sub), now).await?;
    access_request::notify(&b, event, &r);
    tracing::info!(request = %r.id, by = %op.sub, event, "access request decided");
    Ok(ok(r.to_json()))
}
