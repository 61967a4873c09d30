//! Runtime grants: time-bound changes to an agent's channel grant, made by a human admin
//! (`POST /admin/v1/agents/{id}/runtime-grants`) or by an approved access request, kept in
//! the store as [`RecordKind::RuntimeGrant`] and honoured by both legs of the flow. What one
//! may do is decided in the pure core ([`crate::core::grant::channel_actions`]): it only
//! narrows or extends within what the human-owned policy file allows. A new runtime grant is
//! also checked against the file up front ([`within_policy`]), so that a grant that could
//! never apply is refused instead of stored.

use serde::{Deserialize, Serialize};

use super::cx::GrantCx;
use crate::audit;
use crate::clock::UnixTime;
use crate::core::grant::{RuntimeEffect, RuntimeGrant};
use crate::crypto::random_id;
use crate::oauth::{ErrorCode, OAuthError};
use crate::policy::Policy;
use crate::store::{RecordKind, StoreError};

/// One runtime grant, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeGrantRecord {
    /// Its id (random).
    pub id: String,
    /// The agent it applies to.
    pub agent: String,
    /// What it does.
    #[serde(flatten)]
    pub grant: RuntimeGrant,
    /// The human who made it (or approved the request it came from).
    pub created_by: String,
    /// When.
    pub created_at: UnixTime,
    /// Why.
    pub reason: String,
    /// The access request it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_request: Option<String>,
}

fn unavailable(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "store unavailable for a runtime grant");
    OAuthError::unavailable("try again later", 1)
}

/// Why a runtime grant (or an access request) cannot fit the policy file.
pub fn within_policy(
    policy: &Policy,
    agent: &str,
    channel: &str,
    resource: &str,
    actions: &[String],
) -> Result<(), &'static str> {
    if actions.is_empty() {
        return Err("actions must name at least one action");
    }
    let ch = policy.channel(channel).ok_or("unknown channel")?;
    let file: Vec<&str> = ch
        .grants_for(agent)
        .filter(|g| g.resource == resource)
        .flat_map(|g| g.actions.iter().map(String::as_str))
        .collect();
    if file.is_empty() {
        return Err(
            "the policy file has no grant for this agent, channel and resource; only a policy change can add one",
        );
    }
    if actions.iter().any(|a| !file.contains(&a.as_str())) {
        return Err(
            "an action is beyond the policy file's grant for this agent, channel and resource",
        );
    }
    Ok(())
}

/// Every live runtime grant of `agent` (none without a channel: they only touch channel
/// grants).
pub async fn for_agent(
    b: &GrantCx,
    agent: &str,
    channel: Option<&str>,
    now: UnixTime,
) -> Result<Vec<RuntimeGrant>, OAuthError> {
    let Some(channel) = channel else {
        return Ok(Vec::new());
    };
    Ok(list(b, now)
        .await?
        .into_iter()
        .filter(|r| r.agent == agent && r.grant.channel == channel)
        .map(|r| r.grant)
        .collect())
}

/// Every live runtime grant.
pub async fn list(b: &GrantCx, now: UnixTime) -> Result<Vec<RuntimeGrantRecord>, OAuthError> {
    super::listed(b, RecordKind::RuntimeGrant, now).await
}

/// The expiry for a grant asked to live `expires_in` seconds (the configured default when
/// `None`), or why it cannot.
pub fn expiry(b: &GrantCx, expires_in: Option<u64>, now: UnixTime) -> Result<UnixTime, OAuthError> {
    let max = b.settings.access.runtime_grant_max_ttl.as_secs();
    match expires_in {
        None => Ok(now + b.settings.access.runtime_grant_ttl.as_secs()),
        Some(0) => Err(OAuthError::invalid_request("expires_in must be positive")),
        Some(s) if s > max => Err(OAuthError::invalid_request(
            "expires_in exceeds the configured runtime_grants.max_ttl",
        )),
        Some(s) => Ok(now + s),
    }
}

/// What a new runtime grant is.
pub struct New<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The change.
    pub grant: RuntimeGrant,
    /// The human making it.
    pub by: &'a str,
    /// Why.
    pub reason: &'a str,
    /// The access request it comes from.
    pub access_request: Option<&'a str>,
}

/// Check a new runtime grant against the policy file, store it and audit it.
pub async fn create(
    b: &GrantCx,
    new: New<'_>,
    now: UnixTime,
) -> Result<RuntimeGrantRecord, OAuthError> {
    let active = b.policy.load_full();
    within_policy(
        &active.policy,
        new.agent,
        &new.grant.channel,
        &new.grant.resource,
        &new.grant.actions,
    )
    .map_err(OAuthError::invalid_request)?;
    let id = random_id(18).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a runtime grant id");
        OAuthError::new(ErrorCode::ServerError, "internal error")
    })?;
    let r = RuntimeGrantRecord {
        id,
        agent: new.agent.to_owned(),
        grant: new.grant,
        created_by: new.by.to_owned(),
        created_at: now,
        reason: new.reason.to_owned(),
        access_request: new.access_request.map(str::to_owned),
    };
    super::save_record(b, RecordKind::RuntimeGrant, &r.id, &r, r.grant.expires_at).await?;
    let decision = match r.grant.effect {
        RuntimeEffect::Extend => audit::Decision::RuntimeGrantExtended,
        RuntimeEffect::Narrow => audit::Decision::RuntimeGrantNarrowed,
    };
    record(b, &r, decision, new.by, now).await?;
    tracing::info!(grant = %r.id, agent = %r.agent, by = %new.by, decision = decision.as_str(), "runtime grant added");
    Ok(r)
}

/// Withdraw a runtime grant of `agent`; `None` when there is no such live grant.
pub async fn withdraw(
    b: &GrantCx,
    agent: &str,
    id: &str,
    by: &str,
    now: UnixTime,
) -> Result<Option<RuntimeGrantRecord>, OAuthError> {
    let Some(r) =
        super::stored::<RuntimeGrantRecord>(b, RecordKind::RuntimeGrant, id, now, false).await?
    else {
        return Ok(None);
    };
    if r.agent != agent {
        return Ok(None);
    }
    if b.store
        .take(RecordKind::RuntimeGrant, id, now)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        return Ok(None);
    }
    record(b, &r, audit::Decision::RuntimeGrantWithdrawn, by, now).await?;
    tracing::info!(grant = %r.id, agent = %r.agent, by, "runtime grant withdrawn");
    Ok(Some(r))
}

async fn record(
    b: &GrantCx,
    r: &RuntimeGrantRecord,
    decision: audit::Decision,
    by: &str,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let reason = format!(
        "{decision} by {by} until {}: {}",
        r.grant.expires_at, r.reason
    );
    audit::write(
        b.store.as_ref(),
        &audit::Record {
            at: now,
            event: audit::Event::GrantChange,
            decision,
            human: Some(by),
            agent: Some(&r.agent),
            channel: Some(&r.grant.channel),
            resource: Some(&r.grant.resource),
            actions: &r.grant.actions,
            reason: &reason,
            approver: None,
            approval: r.access_request.as_deref(),
            token_id: None,
            issuer: "admin",
        },
    )
    .await
    .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let text = format!(
            r#"
version = 1
[[resource]]
uri = "https://api.example/"
authorization_server = "https://as.example"
actions = ["read", "write", "delete"]

[[agent]]
id = "bot"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{h}" }}

[[channel]]
id = "eng"
[[channel.grant]]
agent = "bot"
resource = "https://api.example/"
actions = ["read", "write"]
expires = "2020-01-01"
"#,
            h = "0".repeat(64)
        );
        crate::policy::parse("test.toml", &text, std::path::Path::new("."))
            .expect("test policy is valid")
    }

    #[test]
    fn new_runtime_grant_must_fit_the_policy_file() {
        let p = policy();
        let a = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let api = "https://api.example/";
        assert_eq!(within_policy(&p, "bot", "eng", api, &a(&["read"])), Ok(()));
        assert_eq!(
            within_policy(&p, "bot", "eng", api, &a(&["read", "write"])),
            Ok(()),
            "an expired file grant still bounds what may be extended"
        );
        assert!(within_policy(&p, "bot", "eng", api, &a(&["delete"])).is_err());
        assert!(within_policy(&p, "bot", "eng", api, &a(&[])).is_err());
        assert!(within_policy(&p, "bot", "ops", api, &a(&["read"])).is_err());
        assert!(within_policy(&p, "other", "eng", api, &a(&["read"])).is_err());
        assert!(within_policy(&p, "bot", "eng", "https://x.example/", &a(&["read"])).is_err());
    }
}
