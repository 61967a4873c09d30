//! Audit records: every decision, tied to a responsible human, chained by hash in the store.
//!
//! A record never holds a token, an assertion or a secret — only identifiers (`jti`, approval
//! ids), names and reasons. The store links each record to the one before it
//! (`SHA-256(prev_hash ‖ seq ‖ body)`, see [`crate::store::AuditEntry`]); [`verify`] walks that
//! chain and names the first record that does not check out, and [`export`] writes the records
//! as JSON lines for a SIEM or an auditor. Both are pure: they take entries and return findings
//! or lines; `lanyard audit verify|export` (in [`crate::cli`]) pages them out of the store.

pub mod export;
pub mod verify;

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
    /// `issued` or `denied` (or, for the control plane, `approval_requested`, `approved`, …).
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
    /// The named human who approved (or refused) a just-in-time approval, if one was involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<&'a str>,
    /// The just-in-time approval's id, if one was asked for or used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<&'a str>,
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

/// Lower-case hex of a chain hash, as `audit verify` and `audit export` print it.
pub fn hex(hash: &[u8; 32]) -> String {
    use std::fmt::Write as _;
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_without_optional_fields_omits_them() {
        let r = Record {
            at: 1,
            event: "token_exchange",
            decision: "denied",
            human: None,
            agent: Some("bot"),
            channel: None,
            resource: None,
            actions: &[],
            reason: "Scope",
            approver: None,
            approval: None,
            token_id: None,
            issuer: "https://lanyard.test/idp",
        };
        let v: serde_json::Value = serde_json::to_value(&r).expect("serializes");
        let mut keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["agent", "at", "decision", "event", "issuer", "reason"],
            "None and empty fields are skipped so older readers see the same shape"
        );
    }

    #[test]
    fn record_carries_the_approver_and_approval() {
        let actions = vec!["merge".to_owned()];
        let r = Record {
            at: 1,
            event: "jwt_bearer",
            decision: "issued",
            human: Some("alice"),
            agent: Some("bot"),
            channel: Some("eng"),
            resource: Some("https://api.example/"),
            actions: &actions,
            reason: "granted",
            approver: Some("carol"),
            approval: Some("apr-1"),
            token_id: Some("jti-1"),
            issuer: "https://lanyard.test/as",
        };
        let v: serde_json::Value = serde_json::to_value(&r).expect("serializes");
        assert_eq!(v["approver"], "carol");
        assert_eq!(v["approval"], "apr-1");
        assert_eq!(v["actions"], serde_json::json!(["merge"]));
    }

    #[test]
    fn hex_is_lower_case_and_64_chars() {
        let mut h = [0u8; 32];
        h[0] = 0xab;
        h[31] = 0x01;
        let s = hex(&h);
        assert_eq!(s.len(), 64);
        assert!(s.starts_with("ab00"));
        assert!(s.ends_with("01"));
    }
}
