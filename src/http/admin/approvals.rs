//! Just-in-time approvals on the admin API: approvers, admins and auditors list and read
//! them; a named approver decides (the rule and the atomic write are the grants' own).

use super::*;

pub(super) fn approval_json(r: &ApprovalRecord, now: u64) -> Value {
    json!({
        "id": r.id, "status": r.status, "agent": r.agent, "human": r.human,
        "channel": r.channel, "resource": r.resource, "actions": r.actions,
        "approvers": r.approvers, "created_at": r.created_at,
        "expires_in": r.expires_at.saturating_sub(now),
        "decided_by": r.decided_by, "decided_at": r.decided_at,
    })
}

pub(super) fn can_see_approvals(op: &Operator) -> Result<(), OAuthError> {
    if op.require(AdminRole::Approver).is_ok() || op.require(AdminRole::Admin).is_ok() {
        Ok(())
    } else {
        op.require(AdminRole::Auditor)
    }
}

pub(super) async fn list_approvals(
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

pub(super) async fn show_approval(
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

pub(super) async fn approve(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_approval(b, op, id, body, true).await
}

pub(super) async fn deny(
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
pub(super) async fn decide_approval(
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
        audit::Decision::ApprovalGranted
    } else {
        audit::Decision::ApprovalDenied
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
            event: audit::Event::Approval,
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
    tracing::info!(approval = %r.id, by = %op.sub, event = event.as_str(), "approval decided");
    Ok(ok(approval_json(&r, now)))
}
