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
//!   [`crate::http::admin`]): an admin or approver approves — which makes a runtime `extend`
//!   grant ([`super::runtime`]) for the request's actions, default lifetime
//!   `runtime_grants.default_ttl` — or denies. No agent credential opens those routes.
//! - The agent's owner is told through the API (`GET /admin/v1/access-requests?owner=…`) and,
//!   when `[notifications] webhook_url` is set, by a best-effort JSON POST per event that never
//!   delays the request.
//!
//! Every step writes an audit record (`event = "access_request"`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client_auth;
use crate::app::Broker;
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
    b: &Broker,
    id: &str,
    now: UnixTime,
) -> Result<Option<AccessRequest>, OAuthError> {
    super::stored(b, RecordKind::AccessRequest, id, now, false).await
}

/// Take a request out of the store (exactly one of concurrent deciders gets it).
pub async fn claim(
    b: &Broker,
    id: &str,
    now: UnixTime,
) -> Result<Option<AccessRequest>, OAuthError> {
    super::stored(b, RecordKind::AccessRequest, id, now, true).await
}

/// Write (create or replace) a request.
pub async fn save(b: &Broker, r: &AccessRequest) -> Result<(), OAuthError> {
    super::save_record(b, RecordKind::AccessRequest, &r.id, r, r.expires_at).await
}

/// Every live request.
pub async fn list(b: &Broker, now: UnixTime) -> Result<Vec<AccessRequest>, OAuthError> {
    super::listed(b, RecordKind::AccessRequest, now).await
}

/// Audit one step of a request's life.
pub async fn record(
    b: &Broker,
    r: &AccessRequest,
    decision: &'static str,
    by: Option<&str>,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let reason = match (&r.decision_reason, decision) {
        (Some(d), "access_request_approved" | "access_request_denied") => format!("{}: {d}", r.id),
        _ => format!("{}: {}", r.id, r.reason),
    };
    audit::write(
        b.store.as_ref(),
        &audit::Record {
            at: now,
            event: "access_request",
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
pub fn notify(b: &Broker, event: &'static str, r: &AccessRequest) {
    let Some(url) = b.settings.access.webhook_url.clone() else {
        return;
    };
    let body = json!({ "event": event, "owner": r.owner, "access_request": r.to_json() });
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "webhook client unavailable");
                return;
            }
        };
        match client.post(url).json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::debug!(event, "access-request webhook delivered");
            }
            Ok(resp) => {
                tracing::warn!(event, status = %resp.status(), "access-request webhook refused")
            }
            Err(e) => tracing::warn!(event, error = %e, "access-request webhook failed"),
        }
    });
}

/// The agent-facing routes, under the IdP issuer's path.
pub fn routes(b: &Broker) -> Router<Arc<Broker>> {
    let Some(iss) = b.issuer(Role::Idp) else {
        return Router::new();
    };
    let p = iss.settings.path.as_str();
    Router::new()
        .route(&format!("{p}/access-requests"), post(file))
        .route(&format!("{p}/access-requests/{{id}}"), get(status))
}

/// What an agent asks for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    channel: String,
    resource: String,
    actions: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Read the body (form or JSON) and the form used for client authentication.
async fn read(b: &Broker, req: Request) -> Result<(HeaderMap, FormParams, Ask), OAuthError> {
    let (parts, body) = req.into_parts();
    let s = &b.settings;
    if is_json(&parts.headers) {
        let bytes = axum::body::to_bytes(body, s.max_body_bytes)
            .await
            .map_err(|_| OAuthError::invalid_request("request body too large").with_status(413))?;
        let ask: Ask = serde_json::from_slice(&bytes).map_err(|_| {
            OAuthError::invalid_request(
                "body must be a JSON object with channel, resource, actions",
            )
        })?;
        let none: [(&str, &str); 0] = [];
        return Ok((parts.headers, FormParams::from_pairs(none), ask));
    }
    let form =
        crate::http::extract::oauth_form(&parts.headers, body, s.max_body_bytes, &s.form).await?;
    let one = |k: &str| {
        form.one(k)
            .map_err(|_| OAuthError::invalid_request("a parameter is repeated"))
            .map(|v| v.unwrap_or("").to_owned())
    };
    let ask = Ask {
        channel: one("channel")?,
        resource: one("resource")?,
        actions: one("actions")?
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        reason: Some(one("reason")?).filter(|r| !r.is_empty()),
    };
    Ok((parts.headers, form, ask))
}

async fn file(State(b): State<Arc<Broker>>, req: Request) -> Response {
    file_inner(&b, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn file_inner(b: &Broker, req: Request) -> Result<Response, OAuthError> {
    let iss = b
        .issuer(Role::Idp)
        .ok_or_else(|| OAuthError::invalid_request("role not served"))?;
    let (headers, form, ask) = read(b, req).await?;
    let now = b.clock.now();
    let active = b.policy.load_full();
    let client = client_auth::authenticate(b, iss, &active, &headers, &form, now).await?;
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
    record(b, &r, "access_request_filed", None, now).await?;
    notify(b, "access_request_filed", &r);
    tracing::info!(request = %r.id, agent = %r.agent, "access request filed");
    let mut v = r.to_json();
    v["status_uri"] = format!("{}/access-requests/{}", iss.settings.issuer, r.id).into();
    Ok(crate::http::response::no_store_json(
        StatusCode::CREATED,
        v.to_string().into_bytes(),
    ))
}

async fn status(State(b): State<Arc<Broker>>, Path(id): Path<String>, req: Request) -> Response {
    status_inner(&b, &id, req.headers())
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn status_inner(b: &Broker, id: &str, headers: &HeaderMap) -> Result<Response, OAuthError> {
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
        .ok_or_else(|| OAuthError::invalid_request("no such access request").with_status(404))?;
    Ok(crate::http::response::no_store_json(
        StatusCode::OK,
        r.to_json().to_string().into_bytes(),
    ))
}
