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

use super::cx::GrantCx;
use crate::clock::UnixTime;
use crate::core::approval::{Parties, may_decide};
use crate::core::grant::Human;
use crate::crypto::random_id;
use crate::oauth::{ErrorCode, OAuthError};
use crate::policy::HumanMatch;
use crate::store::RecordKind;

/// Most pending approvals one agent may have open for one human at once; an agent asking
/// again for the same action (same human, channel, resource, actions) gets the pending one
/// back instead of a new one.
pub const MAX_PENDING_PER_HUMAN: usize = 5;

/// Most pending approvals one agent may have open in all (for every human together), so that
/// approvers' inboxes and the store stay bounded even for an agent many people use.
pub const MAX_PENDING_PER_AGENT: usize = 100;

/// Attempts at recording a decision when the record changes between read and write.
const DECIDE_ATTEMPTS: usize = 4;

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
    /// Who may approve (from the channel grant; stored as `group:…` / `user:…`).
    pub approvers: Vec<HumanMatch>,
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
    b: &GrantCx,
    id: &str,
    now: UnixTime,
) -> Result<Option<ApprovalRecord>, OAuthError> {
    super::stored(b, RecordKind::Approval, id, now, false).await
}

/// Write (create or replace) an approval.
async fn save(b: &GrantCx, r: &ApprovalRecord) -> Result<(), OAuthError> {
    super::save_record(b, RecordKind::Approval, &r.id, r, r.expires_at).await
}

/// Who decides, and how.
pub struct Verdict<'a> {
    /// The deciding person's subject.
    pub by: &'a str,
    /// Their names and groups.
    pub who: &'a Human,
    /// Approve (`true`) or deny.
    pub approve: bool,
    /// How long an approved approval stays usable.
    pub approved_ttl: u64,
}

/// Record a decision on a pending approval: the four-eyes and approver rules
/// ([`may_decide`]), then one compare-and-set in the store over the very record that was
/// checked. Of several concurrent deciders exactly one wins; the others are told what was
/// decided and by whom (409), and a record consumed meanwhile is never re-created.
pub async fn decide(
    b: &GrantCx,
    id: &str,
    v: &Verdict<'_>,
    now: UnixTime,
) -> Result<ApprovalRecord, OAuthError> {
    let kind = RecordKind::Approval;
    let mut lost = false;
    for _ in 0..DECIDE_ATTEMPTS {
        let Some(raw) = b
            .store
            .get(kind, id, now)
            .await
            .map_err(|e| super::record_unavailable(kind, &e))?
        else {
            // Gone after another decision won: approved and used at once.
            return Err(if lost {
                OAuthError::new(
                    crate::oauth::ErrorCode::Conflict,
                    "this approval was already decided and used",
                )
            } else {
                no_such_approval()
            });
        };
        let r: ApprovalRecord =
            serde_json::from_slice(&raw).map_err(|e| super::record_unavailable(kind, &e))?;
        if r.status != Status::Pending {
            return Err(already_decided(&r));
        }
        let parties = Parties {
            human: &r.human,
            human_names: &r.human_names,
            approvers: &r.approvers,
        };
        may_decide(parties, v.by, v.who)
            .map_err(|why| OAuthError::new(ErrorCode::InsufficientScope, why.describe()))?;
        let mut next = r;
        next.status = if v.approve {
            Status::Approved
        } else {
            Status::Denied
        };
        next.decided_by = Some(v.by.to_owned());
        next.decided_at = Some(now);
        if v.approve {
            next.expires_at = now + v.approved_ttl;
        }
        let bytes = serde_json::to_vec(&next).map_err(|e| super::record_unavailable(kind, &e))?;
        let won = b
            .store
            .replace(kind, id, &raw, bytes, Some(next.expires_at), now)
            .await
            .map_err(|e| super::record_unavailable(kind, &e))?;
        if won {
            return Ok(next);
        }
        // Someone else changed it first: read again and report what they decided.
        lost = true;
    }
    Err(OAuthError::new(
        crate::oauth::ErrorCode::Conflict,
        "this approval is being changed; try again",
    ))
}

/// 404 for an approval that does not exist, expired, or was used.
pub fn no_such_approval() -> OAuthError {
    OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such approval")
}

/// 409 naming the decision that stands.
fn already_decided(r: &ApprovalRecord) -> OAuthError {
    let mut e = OAuthError::new(
        crate::oauth::ErrorCode::Conflict,
        "this approval was already decided",
    );
    e.extra = vec![
        ("status", json!(r.status)),
        ("decided_by", json!(r.decided_by)),
        ("decided_at", json!(r.decided_at)),
    ];
    e
}

/// Consume an approved approval: exactly one caller gets it.
pub async fn consume(
    b: &GrantCx,
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
    pub approvers: Vec<HumanMatch>,
}

/// Record a pending approval and build the `approval_required` error naming it. An agent
/// that asks again for the same thing gets the approval already pending for it; one with
/// [`MAX_PENDING_PER_HUMAN`] other pending approvals for this human, or
/// [`MAX_PENDING_PER_AGENT`] in all, is refused. (Two identical requests that arrive at the
/// same instant may both create one; the caps bound what that can add up to.)
pub async fn request(b: &GrantCx, ask: Ask<'_>, now: UnixTime) -> Result<OAuthError, OAuthError> {
    let mine: Vec<ApprovalRecord> = super::listed::<ApprovalRecord>(b, RecordKind::Approval, now)
        .await?
        .into_iter()
        .filter(|r| r.agent == ask.agent && r.status == Status::Pending)
        .collect();
    if let Some(same) = mine.iter().find(|r| {
        r.binds(ask.agent, &ask.human.sub, ask.channel, ask.resource) && r.actions == ask.actions
    }) {
        return Ok(required(b, same, now));
    }
    let for_human = mine.iter().filter(|r| r.human == ask.human.sub).count();
    if for_human >= MAX_PENDING_PER_HUMAN || mine.len() >= MAX_PENDING_PER_AGENT {
        return Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "too many pending approvals for this agent; wait for a decision",
        ));
    }
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
pub fn required(b: &GrantCx, r: &ApprovalRecord, now: UnixTime) -> OAuthError {
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
fn approval_uri(b: &GrantCx, id: &str) -> String {
    let origin = b
        .issuers()
        .next()
        .and_then(|i| url::Url::parse(&i.settings.issuer).ok())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    format!("{origin}/admin/v1/approvals/{id}")
}
