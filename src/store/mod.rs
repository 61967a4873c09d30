//! Runtime state: replay marks, revocations, approvals and other records, the audit chain.
//!
//! [`Store`] is the one contract every backend honours; `contract` (feature `testing`) is the suite that
//! proves it, run against each backend. The default backend is [`embedded::EmbeddedStore`], a
//! durable file store on this node (redb with a write-ahead journal): a response that depends
//! on a write is sent only after that write is on disk, and requests that arrive together
//! share one fsync (group commit). [`redis::RedisStore`] keeps the same state in a Redis
//! server shared by several replicas. [`memory::MemoryStore`] is for unit tests only.
//!
//! Every operation that decides something — first use of a `jti`, taking a single-use
//! approval — is one atomic step inside the backend, never a read followed by a write.

#[cfg(any(test, feature = "testing"))]
pub mod contract;
pub mod embedded;
mod journal;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::UnixTime;

/// A hashed replay key: SHA-256 over length-prefixed parts, so `("ab","c")` ≠ `("a","bc")`.
pub type ReplayKey = [u8; 32];

/// Build a replay key from its parts (e.g. a namespace, `iss` and `jti`).
pub fn replay_key(parts: &[&str]) -> ReplayKey {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The outcome of the atomic first-use operation. A value, not an error: a replay is an
/// expected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    /// The key had not been seen; it is now recorded until its expiry.
    Yes,
    /// The key was already recorded and has not expired.
    Replay,
}

/// Kinds of keyed records other parts keep in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A just-in-time approval (single use).
    Approval,
    /// An agent's request for access, awaiting a human.
    AccessRequest,
    /// A grant changed at runtime by a human admin.
    RuntimeGrant,
    /// A DPoP server nonce or other short-lived server state.
    Nonce,
}

impl RecordKind {
    /// Every kind (a backend that keeps one index per kind walks them all).
    pub const ALL: [Self; 4] = [
        Self::Approval,
        Self::AccessRequest,
        Self::RuntimeGrant,
        Self::Nonce,
    ];

    /// Stable prefix used in keys.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::AccessRequest => "access_request",
            Self::RuntimeGrant => "runtime_grant",
            Self::Nonce => "nonce",
        }
    }
}

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevocationSubject {
    /// One token, by its `jti`.
    Token {
        /// The token's `jti`.
        jti: String,
    },
    /// Every token of one agent, and the agent itself.
    Agent {
        /// The agent's client id.
        client_id: String,
    },
    /// One agent's grant in one channel.
    ChannelGrant {
        /// The agent's client id.
        client_id: String,
        /// The channel id.
        channel: String,
    },
}

impl RevocationSubject {
    /// The storage key.
    pub fn key(&self) -> String {
        match self {
            Self::Token { jti } => format!("token\u{1f}{jti}"),
            Self::Agent { client_id } => format!("agent\u{1f}{client_id}"),
            Self::ChannelGrant { client_id, channel } => {
                format!("channel_grant\u{1f}{client_id}\u{1f}{channel}")
            }
        }
    }
}

/// A revocation: tokens of `subject` issued at or before `revoked_at` are dead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What is revoked.
    pub subject: RevocationSubject,
    /// When.
    pub revoked_at: UnixTime,
    /// Kept at least until then (the last affected token's expiry); `None` = for good
    /// (an agent stays disabled until a human lifts it).
    pub until: Option<UnixTime>,
    /// Who revoked it (a human id or `system`).
    pub by: String,
    /// Why, in the revoker's words.
    pub reason: String,
}

/// One link of the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position, from 1.
    pub seq: u64,
    /// Hash of the previous entry (zeros for the first).
    pub prev_hash: [u8; 32],
    /// `SHA-256(prev_hash ‖ seq (8 bytes, big-endian) ‖ body)`.
    pub hash: [u8; 32],
    /// The record (JSON), as written.
    pub body: Vec<u8>,
}

impl AuditEntry {
    /// The chain hash of an entry.
    pub fn chain_hash(prev: &[u8; 32], seq: u64, body: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(prev);
        h.update(seq.to_be_bytes());
        h.update(body);
        h.finalize().into()
    }
}

/// A store failure. The server answers 503 `temporarily_unavailable` and issues nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// The store's file is held by another process (the embedded store allows one process at
    /// a time: stop the server before `lanyard audit verify|export`).
    #[error(
        "{0} is in use by another process (a running lanyard server?); the embedded store can be opened by one process at a time"
    )]
    InUse(String),
}

/// The state contract. `store::contract` (feature `testing`) is its executable version.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Record `key` until `expires_at` if it is not already recorded (or has expired by
    /// `now`). Atomic: of concurrent callers with one key, exactly one gets [`FirstUse::Yes`].
    async fn first_use(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<FirstUse, StoreError>;

    /// [`first_use`](Store::first_use) of `key` and, only when it is the first use, the
    /// append of `audit` to the audit chain. A grant that spends a single-use assertion to
    /// issue a token records the spend and the issuance together, before it signs. The
    /// embedded store does both in one transaction (both recorded or neither); this default,
    /// which the Redis store uses, runs them in sequence, so a failed append leaves the key
    /// spent and no token issued (fail closed). A replay appends nothing either way.
    async fn first_use_with_audit(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
        audit: Vec<u8>,
    ) -> Result<FirstUse, StoreError> {
        match self.first_use(key, expires_at, now).await? {
            FirstUse::Yes => {
                self.append_audit(audit).await?;
                Ok(FirstUse::Yes)
            }
            FirstUse::Replay => Ok(FirstUse::Replay),
        }
    }

    /// Create or replace a record.
    async fn put(
        &self,
        kind: RecordKind,
        id: &str,
        value: Vec<u8>,
        expires_at: Option<UnixTime>,
    ) -> Result<(), StoreError>;

    /// Read a live record.
    async fn get(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Remove and return a live record, atomically: of concurrent callers exactly one gets it.
    async fn take(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Compare-and-set: replace a live record with `value` (and `expires_at`) only if it
    /// still holds exactly `expected`. Atomic: of concurrent callers that read the same
    /// value, at most one gets `true`; a record that was taken, expired or changed meanwhile
    /// is left as it is (`false`). Decisions on a record (approve or deny) go through it, so
    /// that a late writer never overwrites a decision or re-creates a consumed record.
    #[allow(clippy::too_many_arguments)]
    async fn replace(
        &self,
        kind: RecordKind,
        id: &str,
        expected: &[u8],
        value: Vec<u8>,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Every live record of a kind, ordered by id.
    async fn list(
        &self,
        kind: RecordKind,
        now: UnixTime,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Record a revocation (replacing one for the same subject) and append it to the
    /// revocation feed. Returns its feed position.
    async fn revoke(&self, revocation: Revocation) -> Result<u64, StoreError>;

    /// The live revocation of a subject, if any.
    async fn revocation(
        &self,
        subject: &RevocationSubject,
        now: UnixTime,
    ) -> Result<Option<Revocation>, StoreError>;

    /// Lift a revocation (e.g. re-enable an agent). Appends to the feed as well.
    async fn unrevoke(&self, subject: &RevocationSubject) -> Result<bool, StoreError>;

    /// The revocation feed after position `after`, oldest first, at most `limit` entries.
    /// A lifted revocation appears with `until = Some(0)`.
    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Revocation)>, StoreError>;

    /// Append a record to the audit chain; the backend links it to the previous entry.
    async fn append_audit(&self, body: Vec<u8>) -> Result<AuditEntry, StoreError>;

    /// Audit entries after position `after`, oldest first, at most `limit`.
    async fn audit_since(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Whether the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Drop expired replay marks, records and revocations. Returns how many.
    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError>;

    /// Count one hit on the shared fixed-window counter `key` (the caller puts the window in
    /// the key), which expires after `ttl_secs`; the count including this hit. `None`: this
    /// backend is not shared between processes, and the caller keeps its own counters.
    async fn count_hit(&self, key: &str, ttl_secs: u64) -> Result<Option<u64>, StoreError> {
        let _ = (key, ttl_secs);
        Ok(None)
    }

    /// The current count of the shared counter `key` without counting a hit (0 when it does
    /// not exist); `None` as for [`count_hit`](Store::count_hit).
    async fn hits(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let _ = key;
        Ok(None)
    }
}

/// Whether a record with `expires_at` is live at `now`.
pub(crate) fn live(expires_at: Option<UnixTime>, now: UnixTime) -> bool {
    expires_at.is_none_or(|e| now < e)
}
