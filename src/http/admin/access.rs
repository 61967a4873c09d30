//! Access requests on the admin API: any control-plane role reads them, admins and
//! approvers decide (an approval makes a runtime `extend` grant).

use super::*;

pub(super) async fn list_access_requests(
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

pub(super) async fn show_access_request(
    State(b): State<Arc<Broker>>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let r = access_request::load(&b, &id, b.clock.now())
        .await?
        .ok_or_else(no_such_request)?;
    Ok(ok(r.to_json()))
}

pub(super) fn no_such_request() -> OAuthError {
    OAuthError::new(crate::oauth::ErrorCode::NotFound, "no such access request")
}

/// Body of the access-request decisions.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Decide {
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
    #[serde(default)]
    pub(super) actions: Option<Vec<String>>,
    #[serde(default)]
    pub(super) reason: Option<String>,
}

pub(super) async fn approve_access_request(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_access_request(b, op, id, body, true).await
}

pub(super) async fn deny_access_request(
    State(b): State<Arc<Broker>>,
    axum::Extension(op): axum::Extension<Operator>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, OAuthError> {
    decide_access_request(b, op, id, body, false).await
}

/// A human admin or approver decides; no agent credential reaches this code.
pub(super) async fn decide_access_request(
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
        audit::Decision::AccessRequestApproved
    } else {
        r.status = access_request::Status::Denied;
        audit::Decision::AccessRequestDenied
    };
    access_request::save(&b, &r).await?;
    access_request::record(&b, &r, event, Some(&op.sub), now).await?;
    access_request::notify(&b, event, &r);
    tracing::info!(request = %r.id, by = %op.sub, event = event.as_str(), "access request decided");
    Ok(ok(r.to_json()))
}
