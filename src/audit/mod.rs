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

/// Declares a closed set of audit words: each variant with the exact text the record
/// carries (stable: exports, SIEM rules and `audit verify` read it).
macro_rules! words {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $s:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v,)+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$v,)+];

            /// The text in the record.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s,)+ }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// What happened: a token leg, or a change by a person or an agent.
    Event {
        /// The RFC 8693 leg at the IdP role.
        TokenExchange => "token_exchange",
        /// The RFC 7523 leg at the resource-AS role.
        JwtBearer => "jwt_bearer",
        /// A token revoked by the agent holding it (RFC 7009).
        Revocation => "revocation",
        /// An agent's access request filed or decided.
        AccessRequest => "access_request",
        /// A runtime grant added or withdrawn.
        GrantChange => "grant_change",
        /// A kill switch pulled or lifted by an admin.
        Admin => "admin",
        /// A just-in-time approval decided.
        Approval => "approval",
    }
}

words! {
    /// What was decided.
    Decision {
        /// A token was issued.
        Issued => "issued",
        /// A token request was refused.
        Denied => "denied",
        /// A just-in-time approval was asked for.
        ApprovalRequested => "approval_requested",
        /// An approver approved.
        ApprovalGranted => "approval_granted",
        /// An approver denied.
        ApprovalDenied => "approval_denied",
        /// A token was revoked by its holder.
        Revoked => "revoked",
        /// An access request was filed.
        AccessRequestFiled => "access_request_filed",
        /// An access request was approved.
        AccessRequestApproved => "access_request_approved",
        /// An access request was denied.
        AccessRequestDenied => "access_request_denied",
        /// A runtime grant extended a channel grant.
        RuntimeGrantExtended => "runtime_grant_extended",
        /// A runtime grant narrowed a channel grant.
        RuntimeGrantNarrowed => "runtime_grant_narrowed",
        /// A runtime grant was withdrawn.
        RuntimeGrantWithdrawn => "runtime_grant_withdrawn",
        /// An agent was disabled (kill switch).
        AgentDisabled => "agent_disabled",
        /// A disabled agent was enabled again.
        AgentEnabled => "agent_enabled",
        /// An agent's grant in a channel was withdrawn.
        ChannelGrantWithdrawn => "channel_grant_withdrawn",
        /// A withdrawn channel grant was restored.
        ChannelGrantRestored => "channel_grant_restored",
        /// An admin revoked a token.
        TokenRevoked => "token_revoked",
    }
}

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct Record<'a> {
    /// When.
    pub at: UnixTime,
    /// What kind of event.
    pub event: Event,
    /// What was decided.
    pub decision: Decision,
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

    /// The words are distinct snake_case texts, and serialize as those texts.
    #[test]
    fn audit_words_are_distinct_snake_case() {
        let texts: Vec<&str> = Event::ALL
            .iter()
            .map(|e| e.as_str())
            .chain(Decision::ALL.iter().map(|d| d.as_str()))
            .collect();
        for t in &texts {
            assert!(t.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{t}");
        }
        let mut d: Vec<&str> = Decision::ALL.iter().map(|d| d.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), Decision::ALL.len());
        assert_eq!(
            serde_json::to_value(Decision::AgentDisabled).ok(),
            Some(serde_json::json!("agent_disabled"))
        );
    }

    #[test]
    fn record_without_optional_fields_omits_them() {
        let r = Record {
            at: 1,
            event: Event::TokenExchange,
            decision: Decision::Denied,
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
            event: Event::JwtBearer,
            decision: Decision::Issued,
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
