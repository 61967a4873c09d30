//! Audit records: every decision, tied to a responsible human, chained by hash in the store.
//!
//! A record never holds a token, an assertion or a secret — only identifiers (`jti`),
//! names and reasons.

use serde::Serialize;

use crate::clock::UnixTime;
use crate::store::Store;

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// When.
    pub at: UnixTime,
    /// What kind of event (`token_exchange`, `jwt_bearer`, …).
    pub event: &'static str,
    /// `issued` or `denied`.
    pub decision: &'static str,
    /// The human the agent acts for, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub human: Option<&'a str>,
    /// The agent, if authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
    /// The channel, if named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// The resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    /// Granted (or requested, when denied) actions.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub actions: &'a [String],
    /// Why (a fixed text).
    pub reason: &'a str,
    /// The issued token's `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<&'a str>,
    /// The issuer that decided.
    pub issuer: &'a str,
}

/// Append a record. The caller decides whether a failure blocks the response: an issued
/// token is only returned once its record is durable.
pub async fn write(store: &dyn Store, r: &Record<'_>) -> Result<(), crate::store::StoreError> {
    let body =
        serde_json::to_vec(r).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
    store.append_audit(body).await.map(|_| ())
}
