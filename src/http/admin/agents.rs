//! Agents on the admin API: the listing, and the kill switches (disable / enable an agent,
//! withdraw / restore a channel grant, revoke a token), each a revocation in the store with
//! its audit record; and the revocations in force.

use super::*;

pub(super) async fn agents(
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
pub(super) struct Change {
    #[serde(default)]
    pub(super) reason: Option<String>,
    #[serde(default)]
    pub(super) channel: Option<String>,
    #[serde(default)]
    pub(super) token: Option<String>,
    #[serde(default)]
    pub(super) jti: Option<String>,
}

pub(super) fn parse_change(body: &[u8]) -> Result<Change, OAuthError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Change::default());
    }
    serde_json::from_slice(body)
        .map_err(|_| OAuthError::invalid_request("body must be a JSON object"))
}

/// Record a revocation change and its audit record (both durable before answering).
pub(super) async fn apply(
    b: &Broker,
    op: &Operator,
    r: Revocation,
    event: audit::Decision,
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
            event: audit::Event::Admin,
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
    tracing::info!(by = %op.sub, event = event.as_str(), ?subject, "control-plane change");
    Ok(ok(
        json!({ "ok": true, "event": event.as_str(), "subject": subject, "at": now }),
    ))
}

/// Longest any lanyard token lives past now: what a lifted revocation must still cover.
pub(super) fn max_token_life(b: &Broker) -> u64 {
    b.issuers()
        .map(|i| i.settings.max_token_ttl.as_secs())
        .max()
        .unwrap_or(3600)
        .saturating_add(b.settings.leeway)
}

pub(super) async fn disable(
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
    apply(
        &b,
        &op,
        r,
        audit::Decision::AgentDisabled,
        Some(&id),
        None,
        &reason,
    )
    .await
}

pub(super) async fn enable(
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
    apply(
        &b,
        &op,
        r,
        audit::Decision::AgentEnabled,
        Some(&id),
        None,
        &reason,
    )
    .await
}

pub(super) async fn withdraw(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    channel_grant(b, op, id, body, true).await
}

pub(super) async fn restore(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    channel_grant(b, op, id, body, false).await
}

pub(super) async fn channel_grant(
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
        (
            audit::Decision::ChannelGrantWithdrawn,
            None,
            "withdrawn by an admin",
        )
    } else {
        (
            audit::Decision::ChannelGrantRestored,
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

pub(super) async fn revoke_token(
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
    apply(
        &b,
        &op,
        r,
        audit::Decision::TokenRevoked,
        agent.as_deref(),
        None,
        &reason,
    )
    .await
}

pub(super) async fn revocations(
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
