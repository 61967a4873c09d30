//! The default backend: a durable file store on this node, built on redb.
//!
//! Writes are applied in batches by one writer at a time, which practises group commit: it
//! takes every operation waiting in its queue, applies them together, makes the batch
//! durable with one flush, and only then answers each caller. The writer is usually
//! the writer thread; a lone request (nothing queued, nobody writing, no other request in
//! flight) applies its own small write as a batch of one on its own thread instead, which
//! spares it two thread hand-offs (see `EmbeddedStore::call`). A response that depends on a
//! write (a replay mark, an audit record, a revocation) is therefore never sent before that
//! write is durable, and a burst of requests shares one flush instead of paying one each.
//! `kill -9` loses nothing that was acknowledged. Reads run on the caller's thread against
//! redb's MVCC snapshots (a read of the audit table first has the writer put what is pending
//! into redb, below).
//!
//! The flush is usually not redb's: a batch is made durable by appending its operations to
//! the write-ahead journal (`<store>.journal`, see [`super::journal`]), one sequential write
//! instead of redb's scattered pages, and committed to redb without a flush. About once a
//! second (or when the journal passes 16 MiB, or after a second without writes) a batch is
//! committed durably to redb instead and the journal is emptied. Every transaction records
//! the number of the last batch it holds; opening the store applies the journal's later
//! batches again, in order, before anything else runs, and refuses to open if a batch is
//! missing or damaged. A batch's journal record is flushed before its redb commit, so no
//! reader sees a write a crash could undo. If the journal cannot be written, the batch is
//! committed durably to redb instead (and the journal emptied) before anyone is answered;
//! if the journal cannot be rolled back, the store goes on without it,
//! committing every batch durably.
//!
//! Nearly every token request's one write is a replay mark with its audit record. A batch
//! of only those (and audit records) gets no redb transaction of its own: it is journaled,
//! answered, and kept in memory (`Pending`), and what is pending is written to redb in one
//! non-durable transaction every 50 ms or so under load, inside the next other transaction,
//! before a read of the audit table, and in every checkpoint's durable commit. Only the
//! writer reads the replay table, so replay checks look at what is pending, then at redb.
//!
//! Revocations are also mirrored in memory: every token request asks for two or three
//! (agent, channel grant, presented ID-JAG), and a redb read transaction each was a visible
//! share of the request's CPU (BENCHMARKS.md). The mirror is re-read from the file after each
//! commit that changed revocations, before any caller of that batch is answered, so an
//! acknowledged revocation is seen by every later request. This process is the file's only
//! writer (redb locks it). If re-reading fails, lookups go back to the file until a later
//! re-read succeeds. Runtime grants, which both token legs list on every request, are
//! mirrored the same way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::journal::{self, Journal};
use super::{
    AuditEntry, FirstUse, RecordKind, ReplayKey, Revocation, RevocationSubject, Store, StoreError,
    live,
};
use crate::clock::UnixTime;

mod apply;
mod codec;
mod pending;
mod recover;
mod writer;

use apply::*;
use codec::*;
use pending::*;
use recover::*;
use writer::*;

const REPLAY: TableDefinition<&[u8], u64> = TableDefinition::new("replay");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("revocation_feed");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// `batch`: the number of the last batch applied, in the same transaction as the batch.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BATCH: &str = "batch";
/// `store_id`: a random number chosen when the file is created, part of every journal
/// record's digest, so that a journal is only ever applied to its own store file.
const STORE_ID: &str = "store_id";

/// How long batches are made durable by the journal alone before one is committed durably
/// to redb (and how long without writes before the journal is folded in).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// A journal this long is folded in at the next batch, whatever the time.
const CHECKPOINT_BYTES: u64 = 16 << 20;

/// Most operations folded into one transaction.
const MAX_BATCH: usize = 1024;
/// How long replay marks and audit entries may stay pending (journaled and in memory, not
/// yet in redb) before they are written to redb in one non-durable transaction.
const SPILL_EVERY: Duration = Duration::from_millis(50);
/// So many pending writes (or bytes of them) are written to redb at the next batch, whatever
/// their age.
const SPILL_AT: usize = 4096;
const SPILL_AT_BYTES: usize = 4 << 20;
/// With four times that pending (redb refusing the spills), batches go to redb directly
/// again, and fail if it keeps refusing: memory stays bounded and the store fails closed.
const PENDING_MAX_FACTOR: usize = 4;
/// Stored in place of "no expiry".
const NEVER: u64 = u64::MAX;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Op {
    FirstUse(ReplayKey, UnixTime, UnixTime, Reply<FirstUse>),
    FirstUseAudit(ReplayKey, UnixTime, UnixTime, Vec<u8>, Reply<FirstUse>),
    Put(String, Vec<u8>, Option<UnixTime>, Reply<()>),
    Take(String, UnixTime, Reply<Option<Vec<u8>>>),
    /// Compare-and-set: key, the value it must still hold, the new value, its expiry, now.
    Replace(Box<Replace>, Reply<bool>),
    Revoke(Box<Revocation>, Reply<u64>),
    Unrevoke(RevocationSubject, Reply<bool>),
    Audit(Vec<u8>, Reply<AuditEntry>),
    Purge(UnixTime, Reply<u64>),
    /// Write whatever is pending to redb (before a read of the audit table).
    Spill(Reply<()>),
}

/// The inputs of [`Op::Replace`] (boxed: the other operations stay small).
struct Replace {
    key: String,
    expected: Vec<u8>,
    value: Vec<u8>,
    expires_at: Option<UnixTime>,
    now: UnixTime,
}

/// What is kept in memory, as of the last commit; `None` = unknown (read the file).
#[derive(Default)]
struct Mirrors {
    /// Every stored revocation by subject key.
    revocations: ArcSwapOption<HashMap<String, Revocation>>,
    /// Every stored runtime grant `(id, expiry, value)`, ordered by id, expired ones included.
    runtime_grants: ArcSwapOption<Vec<Stored>>,
}

/// A record as stored: id, expiry, value.
type Stored = (String, Option<UnixTime>, Vec<u8>);

/// The embedded durable store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    shared: Arc<Shared>,
    mirrors: Arc<Mirrors>,
}

/// What the writer thread and the callers share: the queue of operations and the one
/// [`Writer`]. Whoever sets [`Inbox::busy`] (the writer thread, or a caller that found the
/// store idle) is the only one to lock `writer` until it clears the flag.
struct Shared {
    inbox: Mutex<Inbox>,
    /// Signalled when operations are queued while nobody is busy, and on close.
    ready: Condvar,
    writer: Mutex<Writer>,
    /// The writer's checkpoint interval, readable without locking `writer`.
    every: Duration,
}

/// Operations waiting for the writer, and who is applying a batch.
#[derive(Default)]
struct Inbox {
    ops: Vec<Op>,
    /// A batch is being applied; whoever applies it looks at `ops` again when it is done.
    busy: bool,
    /// The store was dropped: the writer thread folds the journal in and stops.
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks (the lints deny it); a poisoned one still
    // holds consistent state.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Clears [`Inbox::busy`] when the batch is done (or unwinds), and wakes the writer thread if
/// operations were queued meanwhile.
struct Busy<'a>(&'a Shared);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut g = lock(&self.0.inbox);
        g.busy = false;
        let more = !g.ops.is_empty();
        drop(g);
        if more {
            self.0.ready.notify_one();
        }
    }
}

/// Read every revocation from the file.
fn read_revocations(db: &Database) -> Result<HashMap<String, Revocation>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let t = tx.open_table(REVOCATIONS).map_err(unavailable)?;
    let mut out = HashMap::new();
    for item in t.iter().map_err(unavailable)? {
        let (k, v) = item.map_err(unavailable)?;
        let rev: Revocation =
            serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        out.insert(k.value().to_owned(), rev);
    }
    Ok(out)
}

/// Every record of a kind, expired ones included, ordered by id.
fn read_kind(db: &Database, kind: RecordKind) -> Result<Vec<Stored>, StoreError> {
    let tx = db.begin_read().map_err(unavailable)?;
    let t = tx.open_table(RECORDS).map_err(unavailable)?;
    let prefix = record_key(kind, "");
    let mut out = Vec::new();
    for item in t.range(prefix.as_str()..).map_err(unavailable)? {
        let (k, v) = item.map_err(unavailable)?;
        let Some(id) = k.value().strip_prefix(prefix.as_str()) else {
            break;
        };
        if let Some((e, body)) = decode_record(v.value()) {
            out.push((id.to_owned(), e, body.to_vec()));
        }
    }
    Ok(out)
}

/// Store a freshly read mirror, or forget it (lookups then read the file) if reading failed.
fn keep<T>(mirror: &ArcSwapOption<T>, read: Result<T, StoreError>, what: &str) {
    match read {
        Ok(m) => mirror.store(Some(Arc::new(m))),
        Err(e) => {
            tracing::error!(error = %e, what, "store: mirror not re-read; reading the file per request");
            mirror.store(None);
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn record_key(kind: RecordKind, id: &str) -> String {
    format!("{}\u{1f}{id}", kind.prefix())
}

impl EmbeddedStore {
    /// Open (or create) the store file. Its directory is created with mode 0700.
    ///
    /// One process at a time: if another process holds the file, this fails with
    /// [`StoreError::InUse`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        Self::start(path, Database::create(path), CHECKPOINT_EVERY)
    }

    /// Open a store file that must already exist (for tools that read what a server wrote:
    /// a wrong path is an error, not a new empty store). Fails with [`StoreError::InUse`] while
    /// another process holds the file.
    pub fn open_existing(path: &Path) -> Result<Self, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(unavailable(format!("{} is not a file", path.display()))),
            Err(e) => {
                return Err(unavailable(format!("no store at {}: {e}", path.display())));
            }
        }
        Self::start(path, Database::open(path), CHECKPOINT_EVERY)
    }

    fn start(
        path: &Path,
        db: Result<Database, redb::DatabaseError>,
        every: Duration,
    ) -> Result<Self, StoreError> {
        let db = db.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                StoreError::InUse(path.display().to_string())
            }
            e => unavailable(format!("cannot open {}: {e}", path.display())),
        })?;
        // Create every table up front so that readers never meet a missing one.
        let tx = db.begin_write().map_err(unavailable)?;
        {
            tx.open_table(REPLAY).map_err(unavailable)?;
            tx.open_table(RECORDS).map_err(unavailable)?;
            tx.open_table(REVOCATIONS).map_err(unavailable)?;
            tx.open_table(FEED).map_err(unavailable)?;
            tx.open_table(AUDIT).map_err(unavailable)?;
            let mut meta = tx.open_table(META).map_err(unavailable)?;
            if meta.get(STORE_ID).map_err(unavailable)?.is_none() {
                let id =
                    getrandom::u64().map_err(|e| unavailable(format!("no randomness: {e}")))?;
                meta.insert(STORE_ID, id).map_err(unavailable)?;
            }
        }
        tx.commit().map_err(unavailable)?;
        // Before anything reads the file: the journal's batches are part of it.
        let (journal, next) = recover(&db, path)?;
        let mirrors = Arc::new(Mirrors::default());
        keep(&mirrors.revocations, read_revocations(&db), "revocations");
        keep(
            &mirrors.runtime_grants,
            read_kind(&db, RecordKind::RuntimeGrant),
            "runtime grants",
        );
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            ready: Condvar::new(),
            writer: Mutex::new(Writer {
                db: db.clone(),
                mirror: mirrors.clone(),
                journal: Some(journal),
                next,
                checkpointed: Instant::now(),
                every,
                pending: Pending::default(),
                torn: false,
            }),
            every,
        });
        let s = shared.clone();
        std::thread::Builder::new()
            .name("lanyard-store-writer".into())
            .spawn(move || run(&s))
            .map_err(unavailable)?;
        Ok(Self {
            db,
            shared,
            mirrors,
        })
    }

    /// Apply one operation and wait until it is durable.
    ///
    /// When nobody is applying a batch and none is queued, a small operation is applied on
    /// the caller's thread, as a batch of one: a lone request then pays no hand-off to the
    /// writer thread and back (two thread wake-ups, each an inter-processor interrupt on a
    /// VM, a visible part of a lone token response). It blocks this thread for that one
    /// batch (a journal append and its flush, about 0.2 ms here); checkpoints, purges,
    /// revocations and writing what is pending to redb, which may take longer, always go to
    /// the writer thread. Otherwise the
    /// operation is queued, and the writer thread's next batch takes it with everything
    /// queued beside it (group commit).
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.submit(make(tx))?;
        rx.await.map_err(|_| unavailable("store writer stopped"))?
    }

    /// Apply `op` now on this thread, or queue it for the writer thread (see [`Self::call`]).
    fn submit(&self, op: Op) -> Result<(), StoreError> {
        let sh = &*self.shared;
        let mut g = lock(&sh.inbox);
        if g.closed {
            return Err(unavailable("store writer stopped"));
        }
        if g.busy || !g.ops.is_empty() || !op.is_small() || !crate::inflight::alone() {
            g.ops.push(op);
            let wake = !g.busy;
            drop(g);
            if wake {
                sh.ready.notify_one();
            }
            return Ok(());
        }
        g.busy = true;
        drop(g);
        let busy = Busy(sh);
        let Ok(mut w) = sh.writer.lock() else {
            drop(busy);
            fail(op, "store writer stopped");
            stop(sh);
            return Ok(());
        };
        if w.checkpoint_due()
            || w.torn
            || w.pending.full()
            || (!op.in_memory() && w.pending.len() > 0)
        {
            // Durable commits (a checkpoint's, or after a failed journal write) and writing
            // what is pending to redb (a full `Pending`, or in a redb transaction) are the
            // writer thread's.
            drop(w);
            lock(&sh.inbox).ops.push(op);
        } else {
            w.apply_batch(vec![op], false);
        }
        Ok(())
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        lock(&self.shared.inbox).closed = true;
        self.shared.ready.notify_all();
    }
}

/// Stop taking operations (the writer is gone, or its state can no longer be trusted) and
/// fail those still queued, so that no caller waits for an answer that will never come.
fn stop(sh: &Shared) {
    let mut g = lock(&sh.inbox);
    g.closed = true;
    let stranded = std::mem::take(&mut g.ops);
    drop(g);
    stranded
        .into_iter()
        .for_each(|op| fail(op, "store writer stopped"));
    sh.ready.notify_all();
}

/// Runs [`stop`] when the writer thread ends, however it ends.
struct StopOnExit<'a>(&'a Shared);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        stop(self.0);
    }
}

/// Claim the writer (`g` is the inbox, nobody busy), run `f` on it without holding the inbox,
/// then give the inbox back. `None` if a batch panicked while holding the writer: its state is
/// in doubt (the batch number may not have advanced after its journal record). Operations
/// moved into `f` and not applied are dropped, which answers their callers "store writer
/// stopped".
fn as_writer<'a>(
    sh: &'a Shared,
    mut g: MutexGuard<'a, Inbox>,
    f: impl FnOnce(&mut Writer),
) -> Option<MutexGuard<'a, Inbox>> {
    g.busy = true;
    drop(g);
    {
        let _busy = Busy(sh);
        f(&mut *sh.writer.lock().ok()?);
    }
    Some(lock(&sh.inbox))
}

/// The writer thread: apply whatever is queued as one batch, again and again; when nothing
/// has been queued for [`CHECKPOINT_EVERY`], fold the journal in (with what is pending, which
/// also catches the batches applied on callers' threads meanwhile), and once more when the
/// store closes.
/// If a batch panicked, the store stops (fails closed; see [`as_writer`]).
fn run(sh: &Shared) {
    let _stop = StopOnExit(sh);
    let mut g = lock(&sh.inbox);
    loop {
        if !g.busy && !g.ops.is_empty() {
            let n = g.ops.len().min(MAX_BATCH);
            let batch: Vec<Op> = g.ops.drain(..n).collect();
            let Some(ng) = as_writer(sh, g, |w| w.apply_batch(batch, true)) else {
                return;
            };
            g = ng;
            continue;
        }
        if g.closed && g.ops.is_empty() && !g.busy {
            break;
        }
        let (ng, waited) = sh
            .ready
            .wait_timeout(g, sh.every)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g = ng;
        if waited.timed_out() && !g.busy && g.ops.is_empty() && !g.closed {
            let Some(ng) = as_writer(sh, g, Writer::fold_in) else {
                return;
            };
            g = ng;
        }
    }
    let _ = as_writer(sh, g, Writer::fold_in);
}

impl Op {
    /// Whether it is quick to apply (a key or a record; not a sweep, nor a change that
    /// re-reads a mirror): such an operation may be applied on the caller's thread.
    fn is_small(&self) -> bool {
        matches!(
            self,
            Op::FirstUse(..)
                | Op::FirstUseAudit(..)
                | Op::Put(..)
                | Op::Take(..)
                | Op::Replace(..)
                | Op::Audit(..)
        ) && !self.touches_runtime_grants()
    }

    /// Whether a batch of such operations alone may be kept in memory ([`Pending`]).
    fn in_memory(&self) -> bool {
        matches!(
            self,
            Op::FirstUse(..) | Op::FirstUseAudit(..) | Op::Audit(..)
        )
    }

    /// Whether applying it may change the stored revocations.
    fn touches_revocations(&self) -> bool {
        matches!(self, Op::Revoke(..) | Op::Unrevoke(..) | Op::Purge(..))
    }

    /// Whether applying it may change the stored runtime grants.
    fn touches_runtime_grants(&self) -> bool {
        match self {
            Op::Put(key, ..) | Op::Take(key, ..) => {
                key.starts_with(&record_key(RecordKind::RuntimeGrant, ""))
            }
            Op::Replace(r, _) => r.key.starts_with(&record_key(RecordKind::RuntimeGrant, "")),
            Op::Purge(..) => true,
            _ => false,
        }
    }
}

/// An answer computed inside the transaction, sent only after the commit.
enum Done {
    FirstUse(Reply<FirstUse>, FirstUse),
    Unit(Reply<()>),
    Bytes(Reply<Option<Vec<u8>>>, Option<Vec<u8>>),
    Seq(Reply<u64>, u64),
    Bool(Reply<bool>, bool),
    Audit(Reply<AuditEntry>, AuditEntry),
}

impl Done {
    fn send(self) {
        // A caller that went away (request cancelled) no longer needs its answer.
        let _ = match self {
            Self::FirstUse(r, v) => r.send(Ok(v)).map_err(drop),
            Self::Unit(r) => r.send(Ok(())).map_err(drop),
            Self::Bytes(r, v) => r.send(Ok(v)).map_err(drop),
            Self::Seq(r, v) => r.send(Ok(v)).map_err(drop),
            Self::Bool(r, v) => r.send(Ok(v)).map_err(drop),
            Self::Audit(r, v) => r.send(Ok(v)).map_err(drop),
        };
    }
}

fn fail(op: Op, msg: &str) {
    let e = || unavailable(msg);
    let _ = match op {
        Op::FirstUse(.., r) | Op::FirstUseAudit(.., r) => r.send(Err(e())).map_err(drop),
        Op::Put(.., r) => r.send(Err(e())).map_err(drop),
        Op::Take(.., r) => r.send(Err(e())).map_err(drop),
        Op::Replace(_, r) => r.send(Err(e())).map_err(drop),
        Op::Revoke(_, r) => r.send(Err(e())).map_err(drop),
        Op::Unrevoke(_, r) => r.send(Err(e())).map_err(drop),
        Op::Audit(_, r) => r.send(Err(e())).map_err(drop),
        Op::Purge(_, r) => r.send(Err(e())).map_err(drop),
        Op::Spill(r) => r.send(Err(e())).map_err(drop),
    };
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn first_use(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<FirstUse, StoreError> {
        self.call(|r| Op::FirstUse(key, expires_at, now, r)).await
    }

    async fn first_use_with_audit(
        &self,
        key: ReplayKey,
        expires_at: UnixTime,
        now: UnixTime,
        audit: Vec<u8>,
    ) -> Result<FirstUse, StoreError> {
        self.call(|r| Op::FirstUseAudit(key, expires_at, now, audit, r))
            .await
    }

    async fn put(
        &self,
        kind: RecordKind,
        id: &str,
        value: Vec<u8>,
        expires_at: Option<UnixTime>,
    ) -> Result<(), StoreError> {
        let key = record_key(kind, id);
        self.call(|r| Op::Put(key, value, expires_at, r)).await
    }

    async fn get(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(unavailable)?;
        let t = tx.open_table(RECORDS).map_err(unavailable)?;
        let v = t.get(record_key(kind, id).as_str()).map_err(unavailable)?;
        Ok(v.and_then(|g| {
            decode_record(g.value())
                .filter(|(e, _)| live(*e, now))
                .map(|(_, b)| b.to_vec())
        }))
    }

    async fn take(
        &self,
        kind: RecordKind,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = record_key(kind, id);
        self.call(|r| Op::Take(key, now, r)).await
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
        let x = Box::new(Replace {
            key: record_key(kind, id),
            expected: expected.to_vec(),
            value,
            expires_at,
            now,
        });
        self.call(|r| Op::Replace(x, r)).await
    }

    async fn list(
        &self,
        kind: RecordKind,
        now: UnixTime,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let live_ones = |all: &[Stored]| {
            all.iter()
                .filter(|(_, e, _)| live(*e, now))
                .map(|(id, _, v)| (id.clone(), v.clone()))
                .collect()
        };
        if kind == RecordKind::RuntimeGrant
            && let Some(m) = self.mirrors.runtime_grants.load().as_deref()
        {
            return Ok(live_ones(m));
        }
        Ok(live_ones(&read_kind(&self.db, kind)?))
    }

    async fn revoke(&self, revocation: Revocation) -> Result<u64, StoreError> {
        self.call(|r| Op::Revoke(Box::new(revocation), r)).await
    }

    async fn revocation(
        &self,
        subject: &RevocationSubject,
        now: UnixTime,
    ) -> Result<Option<Revocation>, StoreError> {
        if let Some(m) = self.mirrors.revocations.load().as_deref() {
            return Ok(m
                .get(&subject.key())
                .filter(|r| live(r.until, now))
                .cloned());
        }
        let tx = self.db.begin_read().map_err(unavailable)?;
        let t = tx.open_table(REVOCATIONS).map_err(unavailable)?;
        let Some(v) = t.get(subject.key().as_str()).map_err(unavailable)? else {
            return Ok(None);
        };
        let rev: Revocation =
            serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(live(rev.until, now).then_some(rev))
    }

    async fn unrevoke(&self, subject: &RevocationSubject) -> Result<bool, StoreError> {
        let subject = subject.clone();
        self.call(|r| Op::Unrevoke(subject, r)).await
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Revocation)>, StoreError> {
        let tx = self.db.begin_read().map_err(unavailable)?;
        let t = tx.open_table(FEED).map_err(unavailable)?;
        let mut out = Vec::new();
        for item in t
            .range(after.saturating_add(1)..)
            .map_err(unavailable)?
            .take(limit)
        {
            let (k, v) = item.map_err(unavailable)?;
            let rev = serde_json::from_slice(v.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push((k.value(), rev));
        }
        Ok(out)
    }

    async fn append_audit(&self, body: Vec<u8>) -> Result<AuditEntry, StoreError> {
        self.call(|r| Op::Audit(body, r)).await
    }

    async fn audit_since(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        // Acknowledged entries may still be pending in memory.
        self.call(Op::Spill).await?;
        let tx = self.db.begin_read().map_err(unavailable)?;
        let t = tx.open_table(AUDIT).map_err(unavailable)?;
        let mut out = Vec::new();
        for item in t
            .range(after.saturating_add(1)..)
            .map_err(unavailable)?
            .take(limit)
        {
            let (k, v) = item.map_err(unavailable)?;
            let raw = v.value();
            let (Some(prev), Some(hash), Some(body)) =
                (raw.get(..32), raw.get(32..64), raw.get(64..))
            else {
                return Err(StoreError::Corrupt(format!(
                    "audit entry {} too short",
                    k.value()
                )));
            };
            out.push(AuditEntry {
                seq: k.value(),
                prev_hash: prev.try_into().unwrap_or([0; 32]),
                hash: hash.try_into().unwrap_or([0; 32]),
                body: body.to_vec(),
            });
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_read().map_err(unavailable)?;
        tx.open_table(AUDIT).map_err(unavailable)?;
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.call(|r| Op::Purge(now, r)).await
    }
}

#[cfg(test)]
mod tests;
