//! Access requests: an agent asks humans for a channel grant; it can never grant itself one.
//!
//! - `POST {idp issuer}/access-requests` with the agent's own client authentication (as at
//!   the token endpoint), body form (`channel`, `resource`, `actions` space-separated,
//!   `reason`) or JSON (`actions` an array): 201 `{"id", "status": "pending", …}`. The request
//!   must fit the policy file (its channel grant for this agent and resource names every
//!   action): a request no human could approve within the file is refused at once (400).
//! - `GET {idp issuer}/access-requests/{id}` (same client authentication): the agent polls its
//!   own request; another agent's request is 404.
//! - Humans decide on the admin API (`/admin/v1/access-requests…`, see
//!   the HTTP layer's admin routes): an admin or approver approves — which makes a runtime `extend`
//!   grant ([`super::runtime`]) for the request's actions, default lifetime
//!   `runtime_grants.default_ttl` — or denies. No agent credential opens those routes.
//! - The agent's owner is told through the API (`GET /admin/v1/access-requests?owner=…`) and,
//!   when `[notifications] webhook_url` is set, by a best-effort JSON POST per event that never
//!   delays the request.
//!
//! Every step writes an audit record (`event = "access_request"`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::cx::GrantCx;
use super::{Answer, RequestHeaders, client_auth};
use crate::audit;
use crate::clock::UnixTime;
use crate::config::Role;
use crate::crypto::random_id;
use crate::oauth::{ErrorCode, FormParams, OAuthError};
use crate::store::{RecordKind, StoreError};

/// Most pending requests one agent may have at once.
const MAX_PENDING_PER_AGENT: usize = 20;
/// Longest `reason` kept.
const MAX_REASON: usize = 500;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a human.
    Pending,
    /// Approved: a runtime grant exists.
    Approved,
    /// Denied.
    Denied,
}

/// One access request, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Its id (random).
    pub id: String,
    /// Where it is.
    pub status: Status,
    /// The agent that asked.
    pub agent: String,
    /// The agent's owner (from the policy file), who is told about it.
    pub owner: String,
    /// The channel.
    pub channel: String,
    /// The resource.
    pub resource: String,
    /// The actions asked for.
    pub actions: Vec<String>,
    /// The agent's reason.
    pub reason: String,
    /// When it was filed.
    pub created_at: UnixTime,
    /// When the record goes away.
    pub expires_at: UnixTime,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<UnixTime>,
    /// The decider's reason.
    pub decision_reason: Option<String>,
    /// The runtime grant an approval made.
    pub runtime_grant: Option<String>,
    /// When that grant ends.
    pub grant_expires_at: Option<UnixTime>,
}

impl AccessRequest {
    /// The JSON the API shows (to the agent, its owner and the control plane).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "status": self.status, "agent": self.agent, "owner": self.owner,
            "channel": self.channel, "resource": self.resource, "actions": self.actions,
            "reason": self.reason, "created_at": self.created_at,
            "decided_by": self.decided_by, "decided_at": self.decided_at,
            "decision_reason": self.decision_reason, "runtime_grant": self.runtime_grant,
            "grant_expires_at": self.grant_expires_at,
        })
    }
}

fn unavailable(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "store unavailable for an access request");
    OAuthError::unavailable("try again later", 1)
}

/// Read a request.
pub async fn load(
    b: &GrantCx,
    id: &str,
    now: UnixTime,
) -> Result<Option<AccessRequest>, OAuthError> {
    super::stored(b, RecordKind::AccessRequest, id, now, false).await
}

/// Take a request out of the store (exactly one of concurrent deciders gets it).
pub async fn claim(
    b: &GrantCx,
    id: &str,
    now: UnixTime,
) -> Result<Option<AccessRequest>, OAuthError> {
    super::stored(b, RecordKind::AccessRequest, id, now, true).await
}

/// Write (create or replace) a request.
pub async fn save(b: &GrantCx, r: &AccessRequest) -> Result<(), OAuthError> {
    super::save_record(b, RecordKind::AccessRequest, &r.id, r, r.expires_at).await
}

/// Every live request.
pub async fn list(b: &GrantCx, now: UnixTime) -> Result<Vec<AccessRequest>, OAuthError> {
    super::listed(b, RecordKind::AccessRequest, now).await
}

/// Audit one step of a request's life.
pub async fn record(
    b: &GrantCx,
    r: &AccessRequest,
    decision: audit::Decision,
    by: Option<&str>,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let reason = match (&r.decision_reason, decision) {
        (
            Some(d),
            audit::Decision::AccessRequestApproved | audit::Decision::AccessRequestDenied,
        ) => format!("{}: {d}", r.id),
        _ => format!("{}: {}", r.id, r.reason),
    };
    audit::write(
        b.store.as_ref(),
        &audit::Record {
            at: now,
            event: audit::Event::AccessRequest,
            decision,
            human: Some(&r.owner),
            agent: Some(&r.agent),
            channel: Some(&r.channel),
            resource: Some(&r.resource),
            actions: &r.actions,
            reason: &reason,
            approver: by,
            approval: None,
            token_id: None,
            issuer: "admin",
        },
    )
    .await
    .map_err(unavailable)
}

/// Tell the owner's webhook, if configured: in the background, best effort, never blocking.
pub fn notify(b: &GrantCx, event: audit::Decision, r: &AccessRequest) {
    let Some(url) = b.settings.access.webhook_url.clone() else {
        return;
    };
    let body = json!({ "event": event, "owner": r.owner, "access_request": r.to_json() });
    crate::notify::post_json(url, event.as_str(), body);
}

/// What an agent asks for (a form or a JSON body, read by the HTTP layer).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The channel of the grant asked for.
    pub channel: String,
    /// The resource.
    pub resource: String,
    /// The actions, each named once or more (duplicates are dropped).
    pub actions: Vec<String>,
    /// Why, in the agent's words (control characters dropped, at most 500 characters kept).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST {idp issuer}/access-requests`: the authenticated agent files `ask` (201).
pub async fn file(
    b: &GrantCx,
    headers: &RequestHeaders,
    form: &FormParams,
    ask: Ask,
) -> Result<Answer, OAuthError> {
    let iss = b
        .issuer(Role::Idp)
        .ok_or_else(|| OAuthError::invalid_request("role not served"))?;
    let now = b.clock.now();
    let active = b.policy.load_full();
    let client = client_auth::authenticate(b, iss, &active, headers, form, now).await?;
    let mut actions: Vec<String> = Vec::new();
    for a in ask.actions {
        if !actions.contains(&a) {
            actions.push(a);
        }
    }
    super::runtime::within_policy(
        &active.policy,
        &client.agent.id,
        &ask.channel,
        &ask.resource,
        &actions,
    )
    .map_err(OAuthError::invalid_request)?;
    let mine = list(b, now)
        .await?
        .into_iter()
        .filter(|r| r.agent == client.agent.id && r.status == Status::Pending)
        .count();
    if mine >= MAX_PENDING_PER_AGENT {
        return Err(OAuthError::invalid_request(
            "too many pending access requests for this agent",
        ));
    }
    let id = random_id(18).map_err(|e| {
        tracing::error!(error = %e, "no randomness for an access request id");
        OAuthError::new(ErrorCode::ServerError, "internal error")
    })?;
    let reason: String = ask
        .reason
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    let r = AccessRequest {
        id,
        status: Status::Pending,
        agent: client.agent.id.clone(),
        owner: client.agent.owner.clone(),
        channel: ask.channel,
        resource: ask.resource,
        actions,
        reason,
        created_at: now,
        expires_at: now + b.settings.access.runtime_grant_max_ttl.as_secs(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        runtime_grant: None,
        grant_expires_at: None,
    };
    save(b, &r).await?;
    record(b, &r, audit::Decision::AccessRequestFiled, None, now).await?;
    notify(b, audit::Decision::AccessRequestFiled, &r);
    tracing::info!(request = %r.id, agent = %r.agent, "access request filed");
    let mut v = r.to_json();
    v["status_uri"] = format!("{}/access-requests/{}", iss.settings.issuer, r.id).into();
    Ok(Answer::created(v.to_string().into_bytes()))
}

/// `GET {idp issuer}/access-requests/{id}`: the authenticated agent reads its own request
/// (another agent's is 404).
pub async fn status(b: &GrantCx, id: &str, headers: &RequestHeaders) -> Result<Answer, OAuthError> {
    let iss = b
        .issuer(Role::Idp)
        .ok_or_else(|| OAuthError::invalid_request("role not served"))?;
    let now = b.clock.now();
    let active = b.policy.load_full();
    let none: [(&str, &str); 0] = [];
    let client =
        client_auth::authenticate(b, iss, &active, headers, &FormParams::from_pairs(none), now)
            .await?;
    let r = load(b, id, now)
        .await?
        .filter(|r| r.agent == client.agent.id)
        .ok_or_else(|| {
            OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such access request")
        })?;
    Ok(Answer::ok(r.to_json().to_string().into_bytes()))
}
