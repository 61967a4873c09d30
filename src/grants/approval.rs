//! Just-in-time approval of sensitive actions (DESIGN point 5).
//!
//! A channel grant can mark actions as needing approval, naming who may approve. When an
//! agent's token exchange asks for such an action without an approval, lanyard records a
//! *pending* approval bound to that agent, human, channel, resource and those actions, and
//! refuses with the lanyard extension error **`approval_required`** (HTTP 400), whose body
//! names it:
//!
//! ```json
//! {"error": "approval_required", "error_description": "…",
//!  "approval_id": "…", "approval_uri": "https://…/admin/v1/approvals/…",
//!  "actions": ["pull_request.create"], "expires_in": 900}
//! ```
//!
//! A named approver (`POST /admin/v1/approvals/{id}/approve` or `…/deny`) decides — never
//! the agent (agent credentials open no admin route) and never the human the agent acts for.
//! The agent retries the same exchange with `approval_id`; the approval is consumed
//! atomically (single use) and the ID-JAG — and the access token made from it — carry
//! `approval: {"id", "approver", "actions"}`. An approved approval expires after
//! `approvals.approved_ttl`, a pending one after `approvals.pending_ttl`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::Broker;
use crate::clock::UnixTime;
use crate::crypto::random_id;
use crate::oauth::{ErrorCode, OAuthError};
use crate::store::RecordKind;

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for an approver.
    Pending,
    /// Approved; usable once until it expires.
    Approved,
    /// Denied.
    Denied,
}

/// One approval, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Its id (random, ≥ 128 bits).
    pub id: String,
    /// Where it is.
    pub status: Status,
    /// The agent that asked.
    pub agent: String,
    /// The human it acts for (the subject the resource AS knows).
    pub human: String,
    /// Every name of that human (subject, email, user name): none of them may approve.
    pub human_names: Vec<String>,
    /// The channel, if any.
    pub channel: Option<String>,
    /// The resource.
    pub resource: String,
    /// The actions needing approval.
    pub actions: Vec<String>,
    /// Who may approve (`group:…` / `user:…`, from the channel grant).
    pub approvers: Vec<String>,
    /// When it was asked for.
    pub created_at: UnixTime,
    /// When it stops being usable (pending: the decision deadline; approved: last use).
    pub expires_at: UnixTime,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<UnixTime>,
}

impl ApprovalRecord {
    /// The claim the ID-JAG and the access token carry.
    pub fn claim(&self) -> Value {
        json!({ "id": self.id, "approver": self.decided_by, "actions": self.actions })
    }

    /// Whether it is bound to exactly this request.
    pub fn binds(&self, agent: &str, human: &str, channel: Option<&str>, resource: &str) -> bool {
        self.agent == agent
            && self.human == human
            && self.channel.as_deref() == channel
            && self.resource == resource
    }
}

/// Read an approval.
pub async fn load(
    b: &Broker,
    id: &str,
    now: UnixTime,
) -> Result<Option<ApprovalRecord>, OAuthError> {
    super::stored(b, RecordKind::Approval, id, now, false).await
}

/// Write (create or replace) an approval.
pub async fn save(b: &Broker, r: &ApprovalRecord) -> Result<(), OAuthError> {
    super::save_record(b, RecordKind::Approval, &r.id, r, r.expires_at).await
}

/// Consume an approved approval: exactly one caller gets it.
pub async fn consume(
    b: &Broker,
    id: &str,
    now: UnixTime,
) -> Result<Option<ApprovalRecord>, OAuthError> {
    super::stored(b, RecordKind::Approval, id, now, true).await
}

/// What a new pending approval is about.
pub struct Ask<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The human's subject and names.
    pub human: &'a crate::core::grant::Human,
    /// The channel.
    pub channel: Option<&'a str>,
    /// The resource.
    pub resource: &'a str,
    /// The actions needing approval.
    pub actions: Vec<String>,
    /// Who may approve.
    pub approvers: Vec<String>,
}

/// Record a pending approval and build the `approval_required` error naming it.
pub async fn request(b: &Broker, ask: Ask<'_>, now: UnixTime) -> Result<OAuthError, OAuthError> {
    let id = random_id(18).map_err(|e| {
        tracing::error!(error = %e, "no randomness for an approval id");
        OAuthError::new(ErrorCode::ServerError, "internal error")
    })?;
    let ttl = b.settings.approval_pending_ttl.as_secs();
    let r = ApprovalRecord {
        id: id.clone(),
        status: Status::Pending,
        agent: ask.agent.to_owned(),
        human: ask.human.sub.clone(),
        human_names: ask.human.names.clone(),
        channel: ask.channel.map(str::to_owned),
        resource: ask.resource.to_owned(),
        actions: ask.actions,
        approvers: ask.approvers,
        created_at: now,
        expires_at: now + ttl,
        decided_by: None,
        decided_at: None,
    };
    save(b, &r).await?;
    tracing::info!(approval = %id, agent = %r.agent, actions = ?r.actions, "approval requested");
    Ok(required(b, &r, now))
}

/// The `approval_required` error for an approval that is still pending.
pub fn required(b: &Broker, r: &ApprovalRecord, now: UnixTime) -> OAuthError {
    let mut e = OAuthError::new(
        ErrorCode::ApprovalRequired,
        "a requested action needs a human's approval; retry with approval_id once approved",
    );
    e.extra = vec![
        ("approval_id", r.id.clone().into()),
        ("approval_uri", approval_uri(b, &r.id).into()),
        ("approval_status", json!(r.status)),
        ("actions", json!(r.actions)),
        ("expires_in", r.expires_at.saturating_sub(now).into()),
    ];
    e
}

/// Where approvers look at an approval: the admin API on this server's origin.
fn approval_uri(b: &Broker, id: &str) -> String {
    let origin = b
        .issuers()
        .next()
        .and_then(|i| url::Url::parse(&i.settings.issuer).ok())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    format!("{origin}/admin/v1/approvals/{id}")
}
