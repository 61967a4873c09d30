//! Runtime grants on the admin API (admins; auditors read): time-bound changes that only
//! narrow or extend an agent's channel grant within the policy file.

use super::*;

pub(super) fn runtime_grant_json(
    r: &crate::grants::runtime::RuntimeGrantRecord,
    now: u64,
) -> Value {
    json!({
        "id": r.id, "agent": r.agent, "channel": r.grant.channel, "resource": r.grant.resource,
        "actions": r.grant.actions, "effect": r.grant.effect, "expires_at": r.grant.expires_at,
        "expires_in": r.grant.expires_at.saturating_sub(now), "created_by": r.created_by,
        "created_at": r.created_at, "reason": r.reason, "access_request": r.access_request,
    })
}

pub(super) async fn list_runtime_grants(
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
pub(super) struct NewRuntimeGrant {
    pub(super) channel: String,
    pub(super) resource: String,
    pub(super) actions: Vec<String>,
    pub(super) effect: crate::core::grant::RuntimeEffect,
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
    #[serde(default)]
    pub(super) reason: Option<String>,
}

pub(super) async fn add_runtime_grant(
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
pub(super) struct WithdrawRuntimeGrant {
    pub(super) grant_id: String,
}

pub(super) async fn withdraw_runtime_grant(
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
