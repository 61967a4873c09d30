//! An in-memory [`Store`] for unit tests. Not durable; never selected by configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    AuditEntry, FirstUse, RecordKind, ReplayKey, Revocation, RevocationSubject, Store, StoreError,
    live,
};
use crate::clock::UnixTime;

/// (kind prefix, id) → (expiry, value).
type Records = BTreeMap<(&'static str, String), (Option<UnixTime>, Vec<u8>)>;

#[derive(Default)]
struct Inner {
    replay: HashMap<ReplayKey, UnixTime>,
    records: Records,
    revocations: HashMap<String, Revocation>,
    feed: Vec<(u64, Revocation)>,
    audit: Vec<AuditEntry>,
}

/// The test backend.
#[derive(Default)]
pub struct MemoryStore(Mutex<Inner>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn first_use(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<FirstUse, StoreError> {
        let mut g = self.lock()?;
        match g.replay.get(&key) {
            Some(&e) if now < e => Ok(FirstUse::Replay),
            _ => {
                g.replay.insert(key, expires_at);
                Ok(FirstUse::Yes)
            }
        }
    }

    async fn put(
        &self,
        kind: RecordKind,
        id: &str,
        value: Vec<u8>,
        expires_at: Option<UnixTime>,
    ) -> Result<(), StoreError> {
        self.lock()?
            .records
            .insert((kind.prefix(), id.to_owned()), (expires_at, value));
        Ok(())
    }

    async fn get(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let g = self.lock()?;
        Ok(g.records
            .get(&(kind.prefix(), id.to_owned()))
            .filter(|(e, _)| live(*e, now))
            .map(|(_, v)| v.clone()))
    }

    async fn take(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut g = self.lock()?;
        Ok(g.records
            .remove(&(kind.prefix(), id.to_owned()))
            .filter(|(e, _)| live(*e, now))
            .map(|(_, v)| v))
    }

    async fn replace(
        &self,
        kind: RecordKind,
        id: &str,
        expected: &[u8],
        value: Vec<u8>,
        expires_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        let Some(slot) = g.records.get_mut(&(kind.prefix(), id.to_owned())) else {
            return Ok(false);
        };
        if !live(slot.0, now) || slot.1 != expected {
            return Ok(false);
        }
        *slot = (expires_at, value);
        Ok(true)
    }

    async fn list(
        &self,
        kind: RecordKind,
        now: UnixTime,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let g = self.lock()?;
        Ok(g.records
            .iter()
            .filter(|((k, _), (e, _))| *k == kind.prefix() && live(*e, now))
            .map(|((_, id), (_, v))| (id.clone(), v.clone()))
            .collect())
    }

    async fn revoke(&self, r: Revocation) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        let seq = g.feed.len() as u64 + 1;
        g.revocations.insert(r.subject.key(), r.clone());
        g.feed.push((seq, r));
        Ok(seq)
    }

    async fn revocation(
        &self,
        s: &RevocationSubject,
        now: UnixTime,
    ) -> Result<Option<Revocation>, StoreError> {
        let g = self.lock()?;
        Ok(g.revocations
            .get(&s.key())
            .filter(|r| live(r.until, now))
            .cloned())
    }

    async fn unrevoke(&self, s: &RevocationSubject) -> Result<bool, StoreError> {
        let mut g = self.lock()?;
        match g.revocations.remove(&s.key()) {
            Some(mut r) => {
                let seq = g.feed.len() as u64 + 1;
                r.until = Some(0);
                g.feed.push((seq, r));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Revocation)>, StoreError> {
        let g = self.lock()?;
        Ok(g.feed
            .iter()
            .filter(|(s, _)| *s > after)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn append_audit(&self, body: Vec<u8>) -> Result<AuditEntry, StoreError> {
        let mut g = self.lock()?;
        let (seq, prev) = g
            .audit
            .last()
            .map_or((1, [0u8; 32]), |e| (e.seq + 1, e.hash));
        let entry = AuditEntry {
            seq,
            prev_hash: prev,
            hash: AuditEntry::chain_hash(&prev, seq, &body),
            body,
        };
        g.audit.push(entry.clone());
        Ok(entry)
    }

    async fn audit_since(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let g = self.lock()?;
        Ok(g.audit
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut g = self.lock()?;
        let before = g.replay.len() + g.records.len() + g.revocations.len();
        g.replay.retain(|_, e| now < *e);
        g.records.retain(|_, (e, _)| live(*e, now));
        g.revocations.retain(|_, r| live(r.until, now));
        Ok((before - g.replay.len() - g.records.len() - g.revocations.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_passes_the_contract() {
        super::super::contract::run_all(|| async { MemoryStore::new() }).await;
    }
}
