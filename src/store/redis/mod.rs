//! A [`Store`] on a Redis server shared by every replica: with it, lanyard processes are
//! stateless and a token redeemed at one is a replay at all.
//!
//! # Design
//!
//! - **One connection per serving lane** (and one for the rest of the process), each a
//!   `redis` crate [`ConnectionManager`] (multiplexed, reconnects by itself), driven by the
//!   runtime of the thread that uses it: a request's round trip then wakes no other thread
//!   (`crate::lane`). Each is created lazily, so that a Redis that is down at startup only
//!   makes `/readyz` false. Every call is bounded by `connect_timeout + response_timeout`; a dead
//!   Redis fails the call fast with [`StoreError::Unavailable`], which the server answers with
//!   503 `temporarily_unavailable` and `Retry-After`, issuing nothing. The next call tries to
//!   connect again, so service resumes without a restart when Redis is back.
//! - **Every decision is one Lua script**, executed atomically by Redis: first use of a
//!   replay key, taking a single-use record, revoking (record + feed entry), lifting a
//!   revocation, appending to the audit chain.
//! - **Time is the caller's.** Expiry is stored with each value and compared with the `now`
//!   the caller passes, exactly as the embedded store does, so every replica judges "live" by
//!   the same rule. Redis TTLs are only garbage collection: they are set
//!   [`GC_GRACE_SECS`] past the logical expiry (measured on lanyard's clock, sent as a
//!   relative TTL), so clock skew between replicas and Redis never ends a replay mark or a
//!   revocation early. [`Store::purge_expired`] removes what has logically expired before
//!   its TTL fires; most of the cleaning is Redis's.
//! - **Revocation feed positions** are increasing but not dense: each new position is
//!   `max(last + 1, Redis TIME in µs)`, computed in the same script that writes the feed
//!   entry. A follower's cursor therefore stays valid even when Redis restarts from an older
//!   snapshot or empty: new revocations always get positions past every one handed out
//!   before. Positions stay below 2^53 (exact in JSON numbers) until the year 2255.
//! - **The audit chain with several writers.** Redis's Lua has no SHA-256, so the writer
//!   computes the chain hash and the script appends only if the chain head is still the one
//!   the hash was computed over (compare-and-set on `(length, last hash)`); otherwise it
//!   returns the current head and the writer recomputes. Inside one process appends are
//!   serialised by a mutex that also caches the head, so the common case is one round trip
//!   and only replicas contend with each other; each round someone wins, and a writer gives
//!   up (503, token withheld) after [`CAS_ROUNDS`] lost rounds. Appends that arrive while
//!   one is in flight queue up, and the next holder of the mutex appends them all in one
//!   script call (group commit, as the embedded store does): with `appendfsync always`, one
//!   round trip per record serialised every token response behind one fsync
//!   (BENCHMARKS.md). A record may carry the replay mark it spends
//!   ([`Store::first_use_with_audit`]): the same script checks and sets the marks and
//!   appends, or, if any mark was already spent, writes nothing and names those records,
//!   which are answered as replays while the rest go again.
//!
//! # Keys (under the configured prefix, default `lanyard:`)
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `replay:<hex>` | string | expiry of a replay mark |
//! | `record:<kind>:<id>` | hash | `e` expiry (`""` = none), `v` value |
//! | `records:<kind>` | sorted set | ids of a kind (for `list`), score 0 so ordered by id |
//! | `revocation:<subject>` | hash | `j` the revocation (JSON), `u` its `until` (`""` = none) |
//! | `revocation_feed` | sorted set | `<position>:<json>`, scored by position |
//! | `revocation_feed_pos` | string | the last position handed out |
//! | `audit` | list | `prev hash ‖ hash ‖ body`; entry `n` at index `n − 1` |
//!
//! All keys are plain (no hash tags): a standalone Redis (or a primary with replicas), not
//! Redis Cluster. Durability is Redis's: run it with `appendonly yes` (and `appendfsync
//! always` to match the embedded store's promise).

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, FromRedisValue, Script, ScriptInvocation, Value};
use async_trait::async_trait;

use super::{
    AuditEntry, FirstUse, RecordKind, ReplayKey, Revocation, RevocationSubject, Store, StoreError,
    live,
};
use crate::clock::{Clock, UnixTime};
use crate::config::RedisSettings;

/// How long past its logical expiry a key is kept by Redis (garbage collection only).
pub const GC_GRACE_SECS: u64 = 300;
/// Most compare-and-set rounds an audit append (or lifting a revocation) tries before giving up.
pub const CAS_ROUNDS: usize = 64;
/// Longest TTL set on any key (Redis refuses TTLs whose milliseconds overflow).
const MAX_TTL_SECS: u64 = 10 * 365 * 86_400;
/// Keys per `SCAN` step and per purge script call.
const PURGE_BATCH: usize = 500;

mod scripts;
use scripts::Scripts;

/// The key names under one prefix.
#[derive(Debug, Clone)]
struct Keys(String);

impl Keys {
    fn replay(&self, k: &ReplayKey) -> String {
        let mut s = format!("{}replay:", self.0);
        for b in k {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
    fn record(&self, kind: RecordKind, id: &str) -> String {
        format!("{}record:{}:{id}", self.0, kind.prefix())
    }
    fn index(&self, kind: RecordKind) -> String {
        format!("{}records:{}", self.0, kind.prefix())
    }
    fn revocation(&self, s: &RevocationSubject) -> String {
        format!("{}revocation:{}", self.0, s.key())
    }
    fn feed(&self) -> String {
        format!("{}revocation_feed", self.0)
    }
    fn feed_pos(&self) -> String {
        format!("{}revocation_feed_pos", self.0)
    }
    fn rate(&self, key: &str) -> String {
        format!("{}ratelimit:{key}", self.0)
    }
    fn audit(&self) -> String {
        format!("{}audit", self.0)
    }
    /// A `SCAN MATCH` pattern for every key under the prefix (glob characters escaped).
    fn scan_pattern(&self) -> String {
        let mut p = String::with_capacity(self.0.len() + 1);
        for ch in self.0.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(ch);
        }
        p.push('*');
        p
    }
}

/// The Redis store.
pub struct RedisStore {
    client: Client,
    config: ConnectionManagerConfig,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// One per serving lane, by lane number (`crate::lane`).
    lanes: Box<[tokio::sync::OnceCell<ConnectionManager>]>,
    deadline: Duration,
    keys: Keys,
    scripts: Scripts,
    clock: Arc<dyn Clock>,
    /// This process's view of the audit chain head `(seq, hash)`; also serialises appends.
    audit_head: tokio::sync::Mutex<Option<(u64, [u8; 32])>>,
    /// Audit records waiting for the holder of `audit_head`, with where to answer.
    audit_queue: std::sync::Mutex<Vec<PendingAudit>>,
}

/// An audit record waiting to be appended; `None` is answered when the replay mark it spends
/// was already used (and nothing was appended).
struct PendingAudit {
    body: Vec<u8>,
    spends: Option<Spend>,
    answer: tokio::sync::oneshot::Sender<Result<Option<AuditEntry>, StoreError>>,
}

/// A replay mark an audit record spends: set with the record, or neither is written.
struct Spend {
    key: String,
    expires_at: UnixTime,
    now: UnixTime,
    ttl: u64,
}

/// Most records appended by one script call.
const MAX_AUDIT_BATCH: usize = 256;

/// The same failure for each waiter of a batch.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::InUse(m) => StoreError::InUse(m.clone()),
    }
}

/// The audit chain head: `(seq, hash)` of the last entry.
type ChainHead = (u64, [u8; 32]);

/// One batch of audit appends, with what it needs of the store.
struct AuditJob {
    conn: ConnectionManager,
    script: Script,
    key: String,
    deadline: Duration,
}

impl AuditJob {
    /// Append after `start` (the cached head, if any), one script call per round; answer
    /// every waiter; the new head on success. A round is lost to another writer (the head
    /// moved: recompute over the new head) or to a record whose replay mark was already
    /// spent (answer it `None`, drop it, recompute the rest).
    async fn run(
        mut self,
        start: Option<(u64, [u8; 32])>,
        mut batch: Vec<PendingAudit>,
    ) -> Option<(u64, [u8; 32])> {
        let (mut seq, mut prev) = start.unwrap_or((0, [0; 32]));
        let outcome: Result<(Vec<AuditEntry>, ChainHead), StoreError> = 'rounds: {
            for _ in 0..CAS_ROUNDS {
                if batch.is_empty() {
                    break 'rounds Ok((Vec::new(), (seq, prev)));
                }
                let mut entries = Vec::with_capacity(batch.len());
                let mut inv = self.script.prepare_invoke();
                inv.key(&self.key).arg(seq + 1).arg(&prev[..]);
                let (mut n, mut p) = (seq, prev);
                let mut marks = 1;
                for item in &batch {
                    match &item.spends {
                        Some(sp) => {
                            marks += 1;
                            inv.key(&sp.key)
                                .arg(marks)
                                .arg(sp.expires_at)
                                .arg(sp.now)
                                .arg(sp.ttl);
                        }
                        None => {
                            inv.arg(0).arg(0).arg(0).arg(0);
                        }
                    }
                    n += 1;
                    let hash = AuditEntry::chain_hash(&p, n, &item.body);
                    let mut raw = Vec::with_capacity(64 + item.body.len());
                    raw.extend_from_slice(&p);
                    raw.extend_from_slice(&hash);
                    raw.extend_from_slice(&item.body);
                    inv.arg(raw);
                    entries.push(AuditEntry {
                        seq: n,
                        prev_hash: p,
                        hash,
                        body: item.body.clone(),
                    });
                    p = hash;
                }
                let reply: Vec<Value> =
                    match tokio::time::timeout(self.deadline, inv.invoke_async(&mut self.conn))
                        .await
                    {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => break 'rounds Err(unavailable(e)),
                        Err(_) => break 'rounds Err(unavailable("no answer within the deadline")),
                    };
                match reply.as_slice() {
                    [Value::Int(1)] => break 'rounds Ok((entries, (n, p))),
                    [Value::Int(2), replays @ ..] if !replays.is_empty() => {
                        let mut at = Vec::with_capacity(replays.len());
                        for r in replays {
                            match r {
                                Value::Int(i) => match usize::try_from(*i) {
                                    Ok(i) if i < batch.len() => at.push(i),
                                    _ => break 'rounds Err(corrupt("audit append reply")),
                                },
                                _ => break 'rounds Err(corrupt("audit append reply")),
                            }
                        }
                        at.sort_unstable();
                        at.dedup();
                        for i in at.into_iter().rev() {
                            // A waiter that went away (request cancelled) needs no answer.
                            let _ = batch.remove(i).answer.send(Ok(None));
                        }
                    }
                    [Value::Int(0), Value::Int(len), Value::BulkString(h)] => {
                        let Ok(len) = u64::try_from(*len) else {
                            break 'rounds Err(corrupt("audit length"));
                        };
                        if len < seq {
                            tracing::error!(
                                held = len,
                                seen = seq,
                                "the audit chain in Redis is shorter than this process last saw: Redis lost data (persistence off, or restored from an older snapshot); the chain continues from what is there"
                            );
                        }
                        seq = len;
                        let Ok(h) = h.as_slice().try_into() else {
                            break 'rounds Err(corrupt("audit chain head"));
                        };
                        prev = h;
                    }
                    _ => break 'rounds Err(corrupt("audit append reply")),
                }
            }
            Err(unavailable("audit chain contended; gave up"))
        };
        match outcome {
            Ok((entries, new_head)) => {
                for (w, e) in batch.into_iter().zip(entries) {
                    let _ = w.answer.send(Ok(Some(e)));
                }
                Some(new_head)
            }
            Err(e) => {
                for w in batch {
                    let _ = w.answer.send(Err(again(&e)));
                }
                None
            }
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

/// A relative TTL for a key whose logical expiry is `expires_at`, as seen at `now`.
fn gc_ttl(expires_at: UnixTime, now: UnixTime) -> u64 {
    expires_at
        .saturating_sub(now)
        .saturating_add(GC_GRACE_SECS)
        .min(MAX_TTL_SECS)
}

/// `e` field → expiry (`""` = none).
fn parse_expiry(e: &[u8]) -> Result<Option<UnixTime>, StoreError> {
    if e.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(e)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| corrupt("record expiry"))
}

fn live_value(
    e: Option<Vec<u8>>,
    v: Option<Vec<u8>>,
    now: UnixTime,
) -> Result<Option<Vec<u8>>, StoreError> {
    match (e, v) {
        (Some(e), Some(v)) => Ok(live(parse_expiry(&e)?, now).then_some(v)),
        _ => Ok(None),
    }
}

impl RedisStore {
    /// A store for `settings`. Checks the URL; connects on first use, so a Redis that is
    /// down now only makes calls (and readiness) fail until it answers.
    pub fn open(settings: &RedisSettings, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        // The error text of a bad URL is the crate's; it does not repeat the URL.
        let client = Client::open(settings.url.expose())
            .map_err(|e| unavailable(format!("bad store.url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout))
            // One connection attempt per failed call: a dead Redis costs a request at most a
            // connect timeout, and the next request tries again.
            .set_number_of_retries(0);
        Ok(Self {
            client,
            config,
            conn: tokio::sync::OnceCell::new(),
            lanes: (0..crate::lane::count())
                .map(|_| tokio::sync::OnceCell::new())
                .collect(),
            deadline: settings.connect_timeout + settings.response_timeout,
            keys: Keys(settings.key_prefix.clone()),
            scripts: Scripts::new(),
            clock,
            audit_head: tokio::sync::Mutex::new(None),
            audit_queue: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Append `batch` in order after the chain head; answer every waiter. The work runs as
    /// its own task, so a request cancelled while holding the head strands no one else's
    /// answer; the head cache is then simply re-learnt by the next holder (one lost CAS).
    async fn append_batch(&self, head: &mut Option<(u64, [u8; 32])>, batch: Vec<PendingAudit>) {
        let conn = match self.conn().await {
            Ok(c) => c,
            Err(e) => {
                *head = None;
                for w in batch {
                    let _ = w.answer.send(Err(again(&e)));
                }
                return;
            }
        };
        let job = AuditJob {
            conn,
            script: self.scripts.audit_append.clone(),
            key: self.keys.audit(),
            deadline: self.deadline,
        };
        let start = head.take();
        *head = tokio::spawn(job.run(start, batch)).await.ok().flatten();
    }

    /// Queue an audit record (with the replay mark it spends, if any) and wait for it: the
    /// holder of the chain head appends what is queued, in batches, until this record is
    /// answered (an earlier holder may already have taken it). `None`: the mark was spent.
    async fn queue_audit(
        &self,
        body: Vec<u8>,
        spends: Option<Spend>,
    ) -> Result<Option<AuditEntry>, StoreError> {
        use tokio::sync::oneshot::error::TryRecvError;
        let (answer, mut rx) = tokio::sync::oneshot::channel();
        self.audit_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(PendingAudit {
                body,
                spends,
                answer,
            });
        let mut head = self.audit_head.lock().await;
        loop {
            match rx.try_recv() {
                Ok(answer) => return answer,
                Err(TryRecvError::Closed) => return Err(unavailable("audit append abandoned")),
                Err(TryRecvError::Empty) => {}
            }
            let batch: Vec<PendingAudit> = {
                let mut q = self.audit_queue.lock().unwrap_or_else(|p| p.into_inner());
                let n = q.len().min(MAX_AUDIT_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                // Taken by an append still running for a holder whose request was cancelled
                // (the job goes on without it): wait for that job's answer, within the
                // deadline, without holding up the next appends.
                drop(head);
                return match tokio::time::timeout(self.deadline, rx).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err(unavailable("audit append abandoned")),
                    Err(_) => Err(unavailable("no answer within the deadline")),
                };
            }
            self.append_batch(&mut head, batch).await;
        }
    }

    /// This lane's connection (the process's outside the lanes), created on first use on
    /// this thread so that its tasks run on this thread's runtime.
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        crate::lane::current()
            .and_then(|i| self.lanes.get(i))
            .unwrap_or(&self.conn)
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
            })
            .await
            .cloned()
            .map_err(unavailable)
    }

    /// Bound a Redis call by the deadline.
    async fn bounded<T>(
        &self,
        f: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.deadline, f).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(unavailable("no answer within the deadline")),
        }
    }

    async fn run<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        self.bounded(inv.invoke_async(&mut c)).await
    }

    async fn query<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        self.bounded(cmd.query_async(&mut c)).await
    }

    async fn purge_marks(&self, keys: &[String], now: UnixTime) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut inv = self.scripts.purge_marks.prepare_invoke();
        inv.key(keys).arg(now);
        self.run(&inv).await
    }

    async fn purge_revocations(&self, keys: &[String], now: UnixTime) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut inv = self.scripts.purge_revocations.prepare_invoke();
        inv.key(keys).arg(now);
        self.run(&inv).await
    }

    async fn purge_records(&self, kind: RecordKind, now: UnixTime) -> Result<u64, StoreError> {
        let ids: Vec<String> = self
            .query(
                ::redis::cmd("ZRANGE")
                    .arg(self.keys.index(kind))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        let mut n = 0;
        for chunk in ids.chunks(PURGE_BATCH) {
            let mut inv = self.scripts.purge_records.prepare_invoke();
            inv.key(self.keys.index(kind)).arg(now);
            for id in chunk {
                inv.key(self.keys.record(kind, id)).arg(id);
            }
            n += self.run::<u64>(&inv).await?;
        }
        Ok(n)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn hits(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let n: Option<u64> = self
            .query(::redis::cmd("GET").arg(self.keys.rate(key)))
            .await?;
        Ok(Some(n.unwrap_or(0)))
    }

    async fn count_hit(&self, key: &str, ttl_secs: u64) -> Result<Option<u64>, StoreError> {
        let mut inv = self.scripts.count_hit.prepare_invoke();
        inv.key(self.keys.rate(key)).arg(ttl_secs.max(1));
        self.run::<u64>(&inv).await.map(Some)
    }

    async fn first_use(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<FirstUse, StoreError> {
        let mut inv = self.scripts.first_use.prepare_invoke();
        inv.key(self.keys.replay(&key))
            .arg(expires_at)
            .arg(now)
            .arg(gc_ttl(expires_at, now).max(1));
        match self.run::<i64>(&inv).await? {
            1 => Ok(FirstUse::Yes),
            _ => Ok(FirstUse::Replay),
        }
    }

    /// One script call with the audit batch: the mark is checked and set, and the record
    /// appended, atomically (one `appendfsync` instead of two round trips).
    async fn first_use_with_audit(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
        audit: Vec<u8>,
    ) -> Result<FirstUse, StoreError> {
        let spends = Spend {
            key: self.keys.replay(&key),
            expires_at,
            now,
            ttl: gc_ttl(expires_at, now).max(1),
        };
        Ok(match self.queue_audit(audit, Some(spends)).await? {
            Some(_) => FirstUse::Yes,
            None => FirstUse::Replay,
        })
    }

    async fn put(
        &self,
        kind: RecordKind,
        id: &str,
        value: Vec<u8>,
        expires_at: Option<UnixTime>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut inv = self.scripts.put.prepare_invoke();
        inv.key(self.keys.record(kind, id))
            .key(self.keys.index(kind))
            .arg(id)
            .arg(expires_at.map(|e| e.to_string()).unwrap_or_default())
            .arg(value)
            .arg(
                expires_at
                    .map(|e| gc_ttl(e, now).to_string())
                    .unwrap_or_default(),
            );
        self.run::<i64>(&inv).await.map(drop)
    }

    async fn get(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let (e, v): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .query(
                ::redis::cmd("HMGET")
                    .arg(self.keys.record(kind, id))
                    .arg("e")
                    .arg("v"),
            )
            .await?;
        live_value(e, v, now)
    }

    async fn take(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut inv = self.scripts.take.prepare_invoke();
        inv.key(self.keys.record(kind, id))
            .key(self.keys.index(kind))
            .arg(id);
        let (e, v): (Option<Vec<u8>>, Option<Vec<u8>>) = self.run(&inv).await?;
        live_value(e, v, now)
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
        let mut inv = self.scripts.replace.prepare_invoke();
        inv.key(self.keys.record(kind, id))
            .arg(expected)
            .arg(now)
            .arg(expires_at.map(|e| e.to_string()).unwrap_or_default())
            .arg(value)
            .arg(
                expires_at
                    .map(|e| gc_ttl(e, now).max(1).to_string())
                    .unwrap_or_default(),
            );
        self.run::<i64>(&inv).await.map(|n| n == 1)
    }

    async fn list(
        &self,
        kind: RecordKind,
        now: UnixTime,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let ids: Vec<String> = self
            .query(
                ::redis::cmd("ZRANGE")
                    .arg(self.keys.index(kind))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.keys.record(kind, id))
                .arg("e")
                .arg("v");
        }
        let rows: Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> = {
            let mut c = self.conn().await?;
            self.bounded(pipe.query_async(&mut c)).await?
        };
        let mut out = Vec::new();
        for (id, (e, v)) in ids.into_iter().zip(rows) {
            if let Some(v) = live_value(e, v, now)? {
                out.push((id, v));
            }
        }
        Ok(out)
    }

    async fn revoke(&self, revocation: Revocation) -> Result<u64, StoreError> {
        let json = serde_json::to_vec(&revocation).map_err(|e| corrupt(&e.to_string()))?;
        let now = self.clock.now();
        let mut inv = self.scripts.revoke.prepare_invoke();
        inv.key(self.keys.revocation(&revocation.subject))
            .key(self.keys.feed())
            .key(self.keys.feed_pos())
            .arg(json)
            .arg(revocation.until.map(|u| u.to_string()).unwrap_or_default())
            .arg(
                revocation
                    .until
                    .map(|u| gc_ttl(u, now).to_string())
                    .unwrap_or_default(),
            );
        self.run(&inv).await
    }

    async fn revocation(
        &self,
        subject: &RevocationSubject,
        now: UnixTime,
    ) -> Result<Option<Revocation>, StoreError> {
        let json: Option<Vec<u8>> = self
            .query(
                ::redis::cmd("HGET")
                    .arg(self.keys.revocation(subject))
                    .arg("j"),
            )
            .await?;
        let Some(json) = json else { return Ok(None) };
        let rev: Revocation =
            serde_json::from_slice(&json).map_err(|e| corrupt(&format!("revocation: {e}")))?;
        Ok(live(rev.until, now).then_some(rev))
    }

    async fn unrevoke(&self, subject: &RevocationSubject) -> Result<bool, StoreError> {
        let key = self.keys.revocation(subject);
        // Compare-and-set: the lifted feed entry is built from the revocation read here,
        // and written only if that revocation is still the one in force.
        for _ in 0..CAS_ROUNDS {
            let cur: Option<Vec<u8>> = self.query(::redis::cmd("HGET").arg(&key).arg("j")).await?;
            let Some(cur) = cur else { return Ok(false) };
            let mut rev: Revocation =
                serde_json::from_slice(&cur).map_err(|e| corrupt(&format!("revocation: {e}")))?;
            rev.until = Some(0);
            let lifted = serde_json::to_vec(&rev).map_err(|e| corrupt(&e.to_string()))?;
            let mut inv = self.scripts.unrevoke.prepare_invoke();
            inv.key(&key)
                .key(self.keys.feed())
                .key(self.keys.feed_pos())
                .arg(cur)
                .arg(lifted);
            match self.run::<i64>(&inv).await? {
                0 => return Ok(false),
                -1 => continue,
                _ => return Ok(true),
            }
        }
        Err(unavailable("revocation changing too fast to lift"))
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Revocation)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let members: Vec<Vec<u8>> = self
            .query(
                ::redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.feed())
                    .arg(format!("({after}"))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        members
            .iter()
            .map(|m| {
                let sep = m
                    .iter()
                    .position(|&b| b == b':')
                    .ok_or_else(|| corrupt("feed entry"))?;
                let (pos, json) = (&m[..sep], &m[sep + 1..]);
                let pos: u64 = std::str::from_utf8(pos)
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| corrupt("feed position"))?;
                let rev = serde_json::from_slice(json)
                    .map_err(|e| corrupt(&format!("feed entry: {e}")))?;
                Ok((pos, rev))
            })
            .collect()
    }

    async fn append_audit(&self, body: Vec<u8>) -> Result<AuditEntry, StoreError> {
        self.queue_audit(body, None)
            .await?
            .ok_or_else(|| corrupt("an audit append without a replay mark answered as a replay"))
    }

    async fn audit_since(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = i64::try_from(after).unwrap_or(i64::MAX);
        let stop = start.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX) - 1);
        let raws: Vec<Vec<u8>> = self
            .query(
                ::redis::cmd("LRANGE")
                    .arg(self.keys.audit())
                    .arg(start)
                    .arg(stop),
            )
            .await?;
        raws.into_iter()
            .zip(after + 1..)
            .map(|(raw, seq)| {
                let (Some(prev), Some(hash), Some(body)) =
                    (raw.get(..32), raw.get(32..64), raw.get(64..))
                else {
                    return Err(corrupt(&format!("audit entry {seq} too short")));
                };
                Ok(AuditEntry {
                    seq,
                    prev_hash: prev.try_into().unwrap_or([0; 32]),
                    hash: hash.try_into().unwrap_or([0; 32]),
                    body: body.to_vec(),
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&::redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(unavailable("unexpected PING reply"))
        }
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let replay = format!("{}replay:", self.keys.0);
        let revocation = format!("{}revocation:", self.keys.0);
        let mut n = 0;
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(
                    ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(self.keys.scan_pattern())
                        .arg("COUNT")
                        .arg(PURGE_BATCH),
                )
                .await?;
            let (marks, revs): (Vec<String>, Vec<String>) = batch
                .into_iter()
                .filter(|k| k.starts_with(&replay) || k.starts_with(&revocation))
                .partition(|k| k.starts_with(&replay));
            n += self.purge_marks(&marks, now).await?;
            n += self.purge_revocations(&revs, now).await?;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for kind in RecordKind::ALL {
            n += self.purge_records(kind, now).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
