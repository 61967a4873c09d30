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

/// A number in the META table (0 if absent): the last batch applied in the file
/// ([`BATCH`]), the store's id ([`STORE_ID`]).
fn meta(tx: &redb::WriteTransaction, key: &str) -> Result<u64, StoreError> {
    let t = tx.open_table(META).map_err(unavailable)?;
    let v = t.get(key).map_err(unavailable)?;
    Ok(v.map_or(0, |g| g.value()))
}

/// Open the journal beside `path` and apply, durably and in order, the batches it holds
/// beyond the file's last one; then empty it. Returns the journal and the next batch number.
/// A gap between the file's last batch and the journal's next is an error: acknowledged
/// writes are missing.
fn recover(db: &Database, path: &Path) -> Result<(Journal, u64), StoreError> {
    let jpath = journal::path_for(path);
    let tx = db.begin_write().map_err(unavailable)?;
    let last = meta(&tx, BATCH)?;
    let (mut journal, found) = Journal::open(&jpath, meta(&tx, STORE_ID)?, last)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", jpath.display())))?;
    if let Some((n, after)) = journal.damaged() {
        return Err(StoreError::Corrupt(format!(
            "{}: record {n} is damaged or missing, and batch {after}, which the store does not hold, comes after it",
            jpath.display()
        )));
    }
    let mut next = last + 1;
    let mut replayed = 0usize;
    for (seq, payload) in found {
        if seq <= last {
            continue;
        }
        if seq != next {
            return Err(StoreError::Corrupt(format!(
                "{}: the journal goes on at batch {seq}, but the store ends at batch {}",
                jpath.display(),
                next - 1
            )));
        }
        let ops = decode_batch(&payload).ok_or_else(|| {
            StoreError::Corrupt(format!("{}: batch {seq} cannot be read", jpath.display()))
        })?;
        for op in ops {
            apply(&tx, op).map_err(|f| unavailable(f.1))?;
        }
        next += 1;
        replayed += 1;
    }
    if replayed > 0 {
        set_batch(&tx, next - 1).map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        tracing::info!(
            batches = replayed,
            journal = %jpath.display(),
            "store: journaled batches applied again"
        );
    } else {
        let _ = tx.abort();
    }
    // redb holds every batch the journal has: later records overwrite them.
    journal.clear();
    Ok((journal, next))
}

fn set_batch(tx: &redb::WriteTransaction, n: u64) -> Result<(), redb::Error> {
    tx.open_table(META)?.insert(BATCH, n)?;
    Ok(())
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    mirror: Arc<Mirrors>,
    /// `None` once a record could not be rolled back (or a durable commit after a failed
    /// write failed too): every batch is then committed durably.
    journal: Option<Journal>,
    /// The number of the next batch.
    next: u64,
    /// When redb last committed durably.
    checkpointed: Instant,
    /// [`CHECKPOINT_EVERY`], except in tests.
    every: Duration,
    /// Journaled batches' replay marks and audit entries not yet written to redb.
    pending: Pending,
    /// A journal write failed: the file may end in a torn record, so nothing is appended
    /// until a durable commit (of every batch since) has let it be emptied.
    torn: bool,
}

/// What batches of replay marks and audit entries alone (nearly every token request's one
/// write) leave behind, instead of a redb transaction each: such a batch is journaled and
/// answered, and its writes kept here, until they are written to redb together, in one
/// non-durable transaction — by the writer thread's first batch after [`SPILL_EVERY`], at
/// the next batch after [`SPILL_AT`] writes or [`SPILL_AT_BYTES`], before any other redb
/// write transaction (in it), before a read of the audit table ([`Op::Spill`]), and at every
/// checkpoint (in its durable commit). A redb commit was a third of the writer's CPU per
/// batch (BENCHMARKS.md). Only the writer reads the replay table, so a replay check looks
/// here first and then in redb.
#[derive(Default)]
struct Pending {
    /// Replay key → expiry.
    replay: HashMap<ReplayKey, UnixTime>,
    /// Audit entries as stored (`prev_hash ‖ hash ‖ body`) with their sequence numbers, in
    /// order; they continue redb's chain.
    audit: Vec<(u64, Vec<u8>)>,
    /// When the oldest pending write was made.
    since: Option<Instant>,
    /// Bytes of the audit entries, plus a replay key's and expiry's per mark.
    bytes: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.replay.len() + self.audit.len()
    }

    /// Enough to be written to redb at the next batch, whatever its age.
    fn full(&self) -> bool {
        self.len() >= SPILL_AT || self.bytes >= SPILL_AT_BYTES
    }

    /// Too much to add to: redb has been refusing it.
    fn over(&self) -> bool {
        self.len() >= PENDING_MAX_FACTOR * SPILL_AT
            || self.bytes >= PENDING_MAX_FACTOR * SPILL_AT_BYTES
    }

    fn clear(&mut self) {
        self.replay.clear();
        self.audit.clear();
        self.since = None;
        self.bytes = 0;
    }

    /// Write everything pending into `tx` (kept until `tx` commits: see [`Self::clear`]).
    fn write_into(&self, tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
        if !self.replay.is_empty() {
            let mut t = tx.open_table(REPLAY)?;
            for (k, e) in &self.replay {
                t.insert(&k[..], *e)?;
            }
        }
        if !self.audit.is_empty() {
            let mut t = tx.open_table(AUDIT)?;
            for (seq, raw) in &self.audit {
                t.insert(*seq, raw.as_slice())?;
            }
        }
        Ok(())
    }
}

/// What a batch applied in memory changed in [`Pending`], to take back if its journal record
/// cannot be written.
#[derive(Default)]
struct Undo {
    replay: Vec<(ReplayKey, Option<UnixTime>)>,
    audit_len: usize,
    bytes: usize,
}

/// The answer of one operation applied in memory.
enum Staged {
    Used(FirstUse),
    Entry(u64, [u8; 32], [u8; 32]),
}

/// What a pending replay mark counts for in [`Pending::bytes`].
const MARK_BYTES: usize = 32 + 8;

/// Record `key` in `p` until `exp` unless it is recorded (there or in redb) and unexpired.
fn mark_pending(
    p: &mut Pending,
    undo: &mut Undo,
    redb_replay: &impl ReadableTable<&'static [u8], u64>,
    key: &ReplayKey,
    exp: UnixTime,
    now: UnixTime,
) -> Result<FirstUse, redb::Error> {
    let seen = match p.replay.get(key) {
        Some(e) => Some(*e),
        None => redb_replay.get(&key[..])?.map(|g| g.value()),
    };
    if seen.is_some_and(|e| now < e) {
        return Ok(FirstUse::Replay);
    }
    let before = p.replay.insert(*key, exp);
    if before.is_none() {
        p.bytes += MARK_BYTES;
    }
    undo.replay.push((*key, before));
    Ok(FirstUse::Yes)
}

/// Link `body` to the last audit entry (pending, else redb's) and add it to `p`.
fn audit_pending(
    p: &mut Pending,
    rtx: &redb::ReadTransaction,
    body: &[u8],
) -> Result<(u64, [u8; 32], [u8; 32]), redb::Error> {
    let (seq, prev_hash) = match p.audit.last() {
        Some((seq, raw)) => (seq + 1, hash_of(raw)?),
        None => match rtx.open_table(AUDIT)?.last()? {
            None => (1, [0u8; 32]),
            Some((k, v)) => (k.value() + 1, hash_of(v.value())?),
        },
    };
    let (hash, raw) = chained(&prev_hash, seq, body);
    p.bytes += raw.len();
    p.audit.push((seq, raw));
    Ok((seq, prev_hash, hash))
}

/// Audit entry `seq` with `body`, after an entry whose hash is `prev_hash`: its hash, and the
/// entry as stored (`prev_hash ‖ hash ‖ body`).
fn chained(prev_hash: &[u8; 32], seq: u64, body: &[u8]) -> ([u8; 32], Vec<u8>) {
    let hash = AuditEntry::chain_hash(prev_hash, seq, body);
    let mut raw = Vec::with_capacity(64 + body.len());
    raw.extend_from_slice(prev_hash);
    raw.extend_from_slice(&hash);
    raw.extend_from_slice(body);
    (hash, raw)
}

/// The hash of a stored audit entry.
fn hash_of(raw: &[u8]) -> Result<[u8; 32], redb::Error> {
    raw.get(32..64)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| redb::Error::Corrupted("audit entry too short".into()))
}

impl Writer {
    /// Whether the next batch should be committed durably to redb rather than journaled.
    fn checkpoint_due(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| {
            j.len() >= CHECKPOINT_BYTES || self.checkpointed.elapsed() >= self.every
        })
    }

    /// If the journal (or `pending`) holds anything, commit durably what is pending (the
    /// transaction makes every earlier one durable too) and empty the journal.
    fn fold_in(&mut self) {
        if (self.journal.as_ref().is_some_and(|j| j.len() > 0) || self.pending.len() > 0)
            && let Err(e) = self.checkpoint()
        {
            tracing::error!(error = %e, "store: durable commit failed; the journal keeps its batches");
        }
    }

    /// Commit durably what is pending (an otherwise empty transaction makes every earlier one
    /// durable), then empty the journal.
    fn checkpoint(&mut self) -> Result<(), redb::Error> {
        self.commit_pending(Durability::Immediate)?;
        self.after_durable_commit();
        Ok(())
    }

    /// Commit what is pending in a transaction of its own, as of the last batch applied; it
    /// stays pending if that fails.
    fn commit_pending(&mut self, durability: Durability) -> Result<(), redb::Error> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(durability)?;
        self.pending.write_into(&tx)?;
        set_batch(&tx, self.next - 1)?;
        tx.commit()?;
        self.pending.clear();
        Ok(())
    }

    /// Write what is pending to redb in one non-durable transaction (the journal holds it).
    /// On failure it stays pending, and is tried again with the next redb transaction.
    fn spill(&mut self) -> Result<(), String> {
        if self.pending.len() == 0 {
            return Ok(());
        }
        self.commit_pending(Durability::None).map_err(|e| {
            tracing::error!(error = %e, pending = self.pending.len(), "store: pending writes not written to redb; kept in memory and the journal");
            format!("pending writes not written: {e}")
        })
    }

    /// Whether what is pending should be written to redb after this batch: when full or old.
    /// Only the writer thread does it; a caller's thread hands its operation to the writer
    /// thread instead once `pending` is full (see [`EmbeddedStore::submit`]).
    fn spill_due(&self) -> bool {
        self.pending.full()
            || self
                .pending
                .since
                .is_some_and(|t| t.elapsed() >= SPILL_EVERY)
    }

    /// Apply `batch` as the next batch. A batch of replay marks and audit entries alone is
    /// journaled and kept in memory ([`Pending`]); any other is applied in a redb
    /// transaction (see [`Self::commit_batch`]). A batch applied on a caller's thread passes
    /// `may_checkpoint = false`: the durable redb commit of a checkpoint is left to the
    /// writer thread (only a failed journal write makes such a batch commit durably, as the
    /// one way left to keep it).
    ///
    /// [`Op::Spill`]s take no batch number: they are answered once what is pending, this
    /// batch's writes included, is in redb. A batch whose journal record cannot be written
    /// is committed durably instead, and so is every batch after it until one such commit
    /// succeeds and empties the journal (which may end in a torn record).
    fn apply_batch(&mut self, mut batch: Vec<Op>, may_checkpoint: bool) {
        let mut spills = Vec::new();
        if batch.iter().any(|op| matches!(op, Op::Spill(_))) {
            let (s, rest): (Vec<Op>, Vec<Op>) =
                batch.into_iter().partition(|op| matches!(op, Op::Spill(_)));
            spills = s;
            batch = rest;
        }
        if !batch.is_empty() {
            let durable = (may_checkpoint && self.checkpoint_due()) || self.torn;
            if durable
                || self.journal.is_none()
                || self.pending.over()
                || !batch.iter().all(Op::in_memory)
            {
                self.commit_batch(batch, durable);
            } else if let Some(batch) = self.apply_in_memory(batch) {
                // Its journal record could not be written: commit it durably instead.
                self.torn = true;
                self.commit_batch(batch, true);
            }
        }
        if !spills.is_empty() || (may_checkpoint && self.spill_due()) {
            let spilled = self.spill();
            for op in spills {
                if let Op::Spill(r) = op {
                    let _ = r.send(spilled.clone().map_err(unavailable));
                }
            }
        }
    }

    /// Answer a batch of replay marks and audit entries from what is pending and what redb
    /// holds, journal it, keep its writes in [`Pending`], and answer its callers. Hands the
    /// batch back, its writes taken back, if the journal cannot be written.
    fn apply_in_memory(&mut self, batch: Vec<Op>) -> Option<Vec<Op>> {
        let mut undo = Undo {
            audit_len: self.pending.audit.len(),
            bytes: self.pending.bytes,
            ..Undo::default()
        };
        let staged = (|| -> Result<Vec<Staged>, redb::Error> {
            let rtx = self.db.begin_read()?;
            let replay = rtx.open_table(REPLAY)?;
            let p = &mut self.pending;
            let mut out = Vec::with_capacity(batch.len());
            for op in &batch {
                out.push(match op {
                    Op::FirstUse(key, exp, now, _) => {
                        Staged::Used(mark_pending(p, &mut undo, &replay, key, *exp, *now)?)
                    }
                    Op::FirstUseAudit(key, exp, now, body, _) => {
                        let used = mark_pending(p, &mut undo, &replay, key, *exp, *now)?;
                        if used == FirstUse::Yes {
                            audit_pending(p, &rtx, body)?;
                        }
                        Staged::Used(used)
                    }
                    Op::Audit(body, _) => {
                        let (seq, prev, hash) = audit_pending(p, &rtx, body)?;
                        Staged::Entry(seq, prev, hash)
                    }
                    _ => return Err(redb::Error::Corrupted("not an in-memory write".into())),
                });
            }
            Ok(out)
        })();
        let staged = match staged {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "store: cannot read for a batch; batch failed");
                self.take_back(undo);
                batch.into_iter().for_each(|op| fail(op, "cannot read"));
                return None;
            }
        };
        let seq = self.next;
        let Some(j) = &mut self.journal else {
            self.take_back(undo);
            return Some(batch);
        };
        if let Err(e) = j.append(seq, &encode_batch(&batch)) {
            tracing::error!(error = %e, journal = %j.path().display(), "store: journal write failed; committing this batch durably instead");
            self.take_back(undo);
            return Some(batch);
        }
        self.next += 1;
        self.pending.since.get_or_insert_with(Instant::now);
        for (op, st) in batch.into_iter().zip(staged) {
            let done = match (op, st) {
                (Op::FirstUse(.., r) | Op::FirstUseAudit(.., r), Staged::Used(u)) => {
                    Done::FirstUse(r, u)
                }
                (Op::Audit(body, r), Staged::Entry(seq, prev_hash, hash)) => Done::Audit(
                    r,
                    AuditEntry {
                        seq,
                        prev_hash,
                        hash,
                        body,
                    },
                ),
                (op, _) => {
                    fail(op, "write failed");
                    continue;
                }
            };
            done.send();
        }
        None
    }

    /// Take back what a batch applied in memory changed in [`Pending`], latest first.
    fn take_back(&mut self, undo: Undo) {
        let p = &mut self.pending;
        for (key, before) in undo.replay.into_iter().rev() {
            match before {
                Some(e) => p.replay.insert(key, e),
                None => p.replay.remove(&key),
            };
        }
        p.audit.truncate(undo.audit_len);
        p.bytes = undo.bytes;
    }

    /// Empty the journal, whose batches redb now holds durably.
    fn after_durable_commit(&mut self) {
        self.checkpointed = Instant::now();
        self.torn = false;
        if let Some(j) = &mut self.journal {
            j.clear();
        }
    }

    /// Apply `batch` in one redb transaction, after what is pending, make it durable (by the
    /// journal, or by a durable commit if `durable`), then answer its callers.
    fn commit_batch(&mut self, batch: Vec<Op>, mut durable: bool) {
        let revocations = batch.iter().any(Op::touches_revocations);
        let runtime_grants = batch.iter().any(Op::touches_runtime_grants);
        let mut tx = match self.db.begin_write() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "store: cannot begin write transaction");
                batch
                    .into_iter()
                    .for_each(|op| fail(op, "cannot begin transaction"));
                return;
            }
        };
        if !durable && let Err(e) = tx.set_durability(Durability::None) {
            tracing::warn!(error = %e, "store: committing this batch durably");
            durable = true;
        }
        // What the journal keeps: the operations themselves, applied again on open.
        let payload = (!durable).then(|| encode_batch(&batch));
        // Earlier batches' pending writes first: this batch reads and continues them.
        if let Err(e) = self.pending.write_into(&tx) {
            tracing::error!(error = %e, "store: pending writes not written; batch aborted");
            let _ = tx.abort();
            batch.into_iter().for_each(|op| fail(op, "write failed"));
            return;
        }
        let mut done = Vec::with_capacity(batch.len());
        let mut ops = batch.into_iter();
        let mut failed = None;
        for op in ops.by_ref() {
            match apply(&tx, op) {
                Ok(d) => done.push(d),
                Err(failure) => {
                    let (op, e) = *failure;
                    tracing::error!(error = %e, "store: write failed; batch aborted");
                    failed = Some(op);
                    break;
                }
            }
        }
        let seq = self.next;
        if failed.is_none()
            && let Err(e) = set_batch(&tx, seq)
        {
            tracing::error!(error = %e, "store: batch number not written; batch aborted");
            let _ = tx.abort();
            done.into_iter().for_each(fail_done);
            return;
        }
        if let Some(op) = failed {
            let _ = tx.abort();
            fail(op, "write failed");
            ops.for_each(|op| fail(op, "write failed"));
            done.into_iter().for_each(fail_done);
            return;
        }
        // The journal record is on disk before the commit makes the batch visible to readers
        // (the revocation feed, the audit chain): nothing is seen that a crash could undo.
        let mut journaled = None;
        if let (Some(payload), Some(j)) = (payload, &mut self.journal) {
            let before = j.len();
            match j.append(seq, &payload) {
                Ok(()) => journaled = Some(before),
                Err(e) => {
                    tracing::error!(error = %e, journal = %j.path().display(), "store: journal write failed; committing this batch durably instead");
                    durable = true;
                    if let Err(e) = tx.set_durability(Durability::Immediate) {
                        tracing::error!(error = %e, "store: cannot commit durably; batch aborted");
                        let _ = tx.abort();
                        // The journal may end in a torn record: nothing may follow it.
                        self.journal = None;
                        done.into_iter().for_each(fail_done);
                        return;
                    }
                }
            }
        }
        if let Err(e) = tx.commit() {
            tracing::error!(error = %e, "store: commit failed");
            if durable {
                // After a failed journal write the journal may end in a torn record: nothing
                // is appended until a durable commit has rewound it.
                self.torn = true;
            } else if let (Some(before), Some(j)) = (journaled, &mut self.journal)
                && let Err(e) = j.truncate(before)
            {
                tracing::error!(error = %e, "store: journal cannot be rolled back; not used any more");
                self.journal = None;
            }
            done.into_iter().for_each(fail_done);
            return;
        }
        self.next += 1;
        self.pending.clear();
        if durable {
            self.after_durable_commit();
        }
        // Before anyone of this batch hears back: later reads see what was acknowledged.
        if revocations {
            keep(
                &self.mirror.revocations,
                read_revocations(&self.db),
                "revocations",
            );
        }
        if runtime_grants {
            keep(
                &self.mirror.runtime_grants,
                read_kind(&self.db, RecordKind::RuntimeGrant),
                "runtime grants",
            );
        }
        done.into_iter().for_each(Done::send);
    }
}

/// A reply nobody waits for: operations applied again from the journal.
fn orphan<T>() -> Reply<T> {
    oneshot::channel().0
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The inputs of every operation of a batch, for the journal.
fn encode_batch(batch: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + batch.len() * 512);
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for op in batch {
        match op {
            Op::FirstUse(key, exp, now, _) => {
                out.push(1);
                out.extend_from_slice(key);
                out.extend_from_slice(&exp.to_le_bytes());
                out.extend_from_slice(&now.to_le_bytes());
            }
            Op::FirstUseAudit(key, exp, now, body, _) => {
                out.push(2);
                out.extend_from_slice(key);
                out.extend_from_slice(&exp.to_le_bytes());
                out.extend_from_slice(&now.to_le_bytes());
                put_bytes(&mut out, body);
            }
            Op::Put(key, value, exp, _) => {
                out.push(3);
                put_bytes(&mut out, key.as_bytes());
                put_bytes(&mut out, value);
                out.extend_from_slice(&exp.unwrap_or(NEVER).to_le_bytes());
            }
            Op::Take(key, now, _) => {
                out.push(4);
                put_bytes(&mut out, key.as_bytes());
                out.extend_from_slice(&now.to_le_bytes());
            }
            Op::Replace(x, _) => {
                out.push(10);
                put_bytes(&mut out, x.key.as_bytes());
                put_bytes(&mut out, &x.expected);
                put_bytes(&mut out, &x.value);
                out.extend_from_slice(&x.expires_at.unwrap_or(NEVER).to_le_bytes());
                out.extend_from_slice(&x.now.to_le_bytes());
            }
            Op::Revoke(rev, _) => {
                out.push(5);
                put_bytes(&mut out, &serde_json::to_vec(&**rev).unwrap_or_default());
            }
            Op::Unrevoke(subject, _) => {
                out.push(6);
                put_bytes(&mut out, &serde_json::to_vec(subject).unwrap_or_default());
            }
            Op::Audit(body, _) => {
                out.push(7);
                put_bytes(&mut out, body);
            }
            Op::Purge(now, _) => {
                out.push(8);
                out.extend_from_slice(&now.to_le_bytes());
            }
            Op::Spill(_) => out.push(9),
        }
    }
    out
}

/// Reads what [`encode_batch`] wrote.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    fn key(&mut self) -> Option<ReplayKey> {
        self.take(32)?.try_into().ok()
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

/// The operations of a journaled batch, with replies nobody waits for.
fn decode_batch(raw: &[u8]) -> Option<Vec<Op>> {
    let mut c = Cursor(raw);
    let n = c.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(MAX_BATCH));
    for _ in 0..n {
        let op = match c.u8()? {
            1 => Op::FirstUse(c.key()?, c.u64()?, c.u64()?, orphan()),
            2 => Op::FirstUseAudit(c.key()?, c.u64()?, c.u64()?, c.bytes()?, orphan()),
            3 => {
                let (key, value, exp) = (c.string()?, c.bytes()?, c.u64()?);
                Op::Put(key, value, (exp != NEVER).then_some(exp), orphan())
            }
            4 => Op::Take(c.string()?, c.u64()?, orphan()),
            5 => Op::Revoke(
                Box::new(serde_json::from_slice(&c.bytes()?).ok()?),
                orphan(),
            ),
            6 => Op::Unrevoke(serde_json::from_slice(&c.bytes()?).ok()?, orphan()),
            7 => Op::Audit(c.bytes()?, orphan()),
            8 => Op::Purge(c.u64()?, orphan()),
            9 => Op::Spill(orphan()),
            10 => {
                let (key, expected, value) = (c.string()?, c.bytes()?, c.bytes()?);
                let (exp, now) = (c.u64()?, c.u64()?);
                Op::Replace(
                    Box::new(Replace {
                        key,
                        expected,
                        value,
                        expires_at: (exp != NEVER).then_some(exp),
                        now,
                    }),
                    orphan(),
                )
            }
            _ => return None,
        };
        out.push(op);
    }
    c.0.is_empty().then_some(out)
}

fn fail_done(d: Done) {
    let e = || unavailable("commit failed");
    let _ = match d {
        Done::FirstUse(r, _) => r.send(Err(e())).map_err(drop),
        Done::Unit(r) => r.send(Err(e())).map_err(drop),
        Done::Bytes(r, _) => r.send(Err(e())).map_err(drop),
        Done::Seq(r, _) => r.send(Err(e())).map_err(drop),
        Done::Bool(r, _) => r.send(Err(e())).map_err(drop),
        Done::Audit(r, _) => r.send(Err(e())).map_err(drop),
    };
}

fn encode_record(expires_at: Option<UnixTime>, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires_at.unwrap_or(NEVER).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn decode_record(raw: &[u8]) -> Option<(Option<UnixTime>, &[u8])> {
    let (head, body) = raw.split_at_checked(8)?;
    let e = u64::from_be_bytes(head.try_into().ok()?);
    Some(((e != NEVER).then_some(e), body))
}

fn next_seq<T: ReadableTable<u64, &'static [u8]>>(t: &T) -> Result<u64, redb::StorageError> {
    Ok(t.last()?.map_or(1, |(k, _)| k.value() + 1))
}

type ApplyResult = Result<Done, Box<(Op, redb::Error)>>;

/// Record `key` until `exp` unless it is recorded and unexpired at `now`.
fn mark_used(
    tx: &redb::WriteTransaction,
    key: &ReplayKey,
    exp: UnixTime,
    now: UnixTime,
) -> Result<FirstUse, redb::Error> {
    let mut t = tx.open_table(REPLAY)?;
    let seen = t.get(&key[..])?.map(|g| g.value());
    if seen.is_some_and(|e| now < e) {
        return Ok(FirstUse::Replay);
    }
    t.insert(&key[..], exp)?;
    Ok(FirstUse::Yes)
}

/// Link `body` to the last audit entry and append it: `(seq, prev_hash, hash)`.
fn append_audit(
    tx: &redb::WriteTransaction,
    body: &[u8],
) -> Result<(u64, [u8; 32], [u8; 32]), redb::Error> {
    let mut t = tx.open_table(AUDIT)?;
    let (seq, prev_hash) = match t.last()? {
        None => (1, [0u8; 32]),
        Some((k, v)) => (k.value() + 1, hash_of(v.value())?),
    };
    let (hash, raw) = chained(&prev_hash, seq, body);
    t.insert(seq, raw.as_slice())?;
    Ok((seq, prev_hash, hash))
}

fn apply(tx: &redb::WriteTransaction, op: Op) -> ApplyResult {
    // Each arm hands the op back on error so its caller still gets an answer.
    macro_rules! tryop {
        ($e:expr, $op:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => return Err(Box::new(($op, e.into()))),
            }
        };
    }
    match op {
        Op::FirstUse(key, exp, now, r) => {
            let used = tryop!(
                mark_used(tx, &key, exp, now),
                Op::FirstUse(key, exp, now, r)
            );
            Ok(Done::FirstUse(r, used))
        }
        Op::FirstUseAudit(key, exp, now, body, r) => {
            let used = tryop!(
                mark_used(tx, &key, exp, now),
                Op::FirstUseAudit(key, exp, now, body, r)
            );
            if used == FirstUse::Yes {
                tryop!(
                    append_audit(tx, &body),
                    Op::FirstUseAudit(key, exp, now, body, r)
                );
            }
            Ok(Done::FirstUse(r, used))
        }
        Op::Put(key, value, exp, r) => {
            let mut t = tryop!(tx.open_table(RECORDS), Op::Put(key, value, exp, r));
            tryop!(
                t.insert(key.as_str(), encode_record(exp, &value).as_slice()),
                Op::Put(key, value, exp, r)
            );
            Ok(Done::Unit(r))
        }
        Op::Take(key, now, r) => {
            let mut t = tryop!(tx.open_table(RECORDS), Op::Take(key, now, r));
            let raw = tryop!(
                t.remove(key.as_str())
                    .map(|v| v.map(|g| g.value().to_vec())),
                Op::Take(key, now, r)
            );
            let out = raw
                .as_deref()
                .and_then(decode_record)
                .filter(|(e, _)| live(*e, now))
                .map(|(_, b)| b.to_vec());
            Ok(Done::Bytes(r, out))
        }
        Op::Replace(x, r) => {
            let mut t = tryop!(tx.open_table(RECORDS), Op::Replace(x, r));
            let holds = tryop!(
                t.get(x.key.as_str()).map(|v| {
                    v.is_some_and(|g| {
                        decode_record(g.value())
                            .is_some_and(|(e, b)| live(e, x.now) && b == x.expected.as_slice())
                    })
                }),
                Op::Replace(x, r)
            );
            if holds {
                tryop!(
                    t.insert(
                        x.key.as_str(),
                        encode_record(x.expires_at, &x.value).as_slice()
                    ),
                    Op::Replace(x, r)
                );
            }
            Ok(Done::Bool(r, holds))
        }
        Op::Revoke(rev, r) => {
            let json = serde_json::to_vec(&*rev).unwrap_or_default();
            let mut t = tryop!(tx.open_table(REVOCATIONS), Op::Revoke(rev, r));
            tryop!(
                t.insert(rev.subject.key().as_str(), json.as_slice()),
                Op::Revoke(rev, r)
            );
            let mut f = tryop!(tx.open_table(FEED), Op::Revoke(rev, r));
            let seq = tryop!(next_seq(&f), Op::Revoke(rev, r));
            tryop!(f.insert(seq, json.as_slice()), Op::Revoke(rev, r));
            Ok(Done::Seq(r, seq))
        }
        Op::Unrevoke(subject, r) => {
            let mut t = tryop!(tx.open_table(REVOCATIONS), Op::Unrevoke(subject, r));
            let old = tryop!(
                t.remove(subject.key().as_str())
                    .map(|v| v.map(|g| g.value().to_vec())),
                Op::Unrevoke(subject, r)
            );
            let Some(old) = old else {
                return Ok(Done::Bool(r, false));
            };
            let mut rev: Revocation = match serde_json::from_slice(&old) {
                Ok(v) => v,
                Err(_) => return Ok(Done::Bool(r, true)),
            };
            rev.until = Some(0);
            let json = serde_json::to_vec(&rev).unwrap_or_default();
            let mut f = tryop!(tx.open_table(FEED), Op::Unrevoke(subject, r));
            let seq = tryop!(next_seq(&f), Op::Unrevoke(subject, r));
            tryop!(f.insert(seq, json.as_slice()), Op::Unrevoke(subject, r));
            Ok(Done::Bool(r, true))
        }
        Op::Audit(body, r) => {
            let (seq, prev_hash, hash) = tryop!(append_audit(tx, &body), Op::Audit(body, r));
            Ok(Done::Audit(
                r,
                AuditEntry {
                    seq,
                    prev_hash,
                    hash,
                    body,
                },
            ))
        }
        Op::Purge(now, r) => {
            let mut n = 0u64;
            let mut t = tryop!(tx.open_table(REPLAY), Op::Purge(now, r));
            tryop!(
                t.retain(|_, e| {
                    let keep = now < e;
                    n += u64::from(!keep);
                    keep
                }),
                Op::Purge(now, r)
            );
            let mut t = tryop!(tx.open_table(RECORDS), Op::Purge(now, r));
            tryop!(
                t.retain(|_, v| {
                    let keep = decode_record(v).is_some_and(|(e, _)| live(e, now));
                    n += u64::from(!keep);
                    keep
                }),
                Op::Purge(now, r)
            );
            let mut t = tryop!(tx.open_table(REVOCATIONS), Op::Purge(now, r));
            tryop!(
                t.retain(|_, v| {
                    let keep = serde_json::from_slice::<Revocation>(v)
                        .is_ok_and(|rev| live(rev.until, now));
                    n += u64::from(!keep);
                    keep
                }),
                Op::Purge(now, r)
            );
            Ok(Done::Seq(r, n))
        }
        // Not reached: `Writer::apply_batch` takes spills out of a batch and answers them
        // after it. Were one applied here, what was pending is in the transaction already.
        Op::Spill(r) => Ok(Done::Unit(r)),
    }
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
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_store_passes_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = std::sync::atomic::AtomicU32::new(0);
        super::super::contract::run_all(|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = dir.path().join(format!("s{i}.redb"));
            async move { EmbeddedStore::open(&path).expect("open") }
        })
        .await;
    }

    #[test]
    fn a_store_held_by_another_handle_is_reported_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let _held = EmbeddedStore::open(&path).expect("open");
        for second in [
            EmbeddedStore::open(&path),
            EmbeddedStore::open_existing(&path),
        ] {
            match second {
                Err(StoreError::InUse(p)) => assert_eq!(p, path.display().to_string()),
                Err(e) => panic!("expected InUse, got {e}"),
                Ok(_) => panic!("a held store opened twice"),
            }
        }
    }

    #[test]
    fn open_existing_does_not_create_a_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing.redb");
        match EmbeddedStore::open_existing(&path) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("no store at"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a store that does not exist"),
        }
        assert!(!path.exists(), "nothing was created");
    }

    /// Open the store at `path` again once the previous handle's writer thread, which holds
    /// the database until it has seen the store closed and folded the journal in, has
    /// released it.
    async fn reopen(path: &Path) -> EmbeddedStore {
        for _ in 0..500 {
            match EmbeddedStore::open(path) {
                Ok(s) => return s,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        panic!("the store did not reopen once the old writer released it");
    }

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let k = super::super::replay_key(&["x"]);
        {
            let s = EmbeddedStore::open(&path).expect("open");
            assert_eq!(s.first_use(k, 100, 1).await.expect("first"), FirstUse::Yes);
            s.append_audit(b"{}".to_vec()).await.expect("audit");
        }
        let s = reopen(&path).await;
        assert_eq!(
            s.first_use(k, 100, 2).await.expect("again"),
            FirstUse::Replay
        );
        assert_eq!(s.audit_since(0, 10).await.expect("audit").len(), 1);
    }

    /// An agent and a token to revoke.
    fn subjects() -> (RevocationSubject, RevocationSubject) {
        let agent = RevocationSubject::Agent {
            client_id: "bot".into(),
        };
        (agent, RevocationSubject::Token { jti: "j1".into() })
    }

    /// A revocation of `subject` at time 10, without end.
    fn rev(subject: &RevocationSubject) -> Revocation {
        Revocation {
            subject: subject.clone(),
            revoked_at: 10,
            until: None,
            by: "alice".into(),
            reason: "test".into(),
        }
    }

    /// What a process killed between durable commits leaves: the store file as of its last
    /// durable commit, and the journal. Both are copied while the store runs, with no
    /// durable commit due for an hour, so the batches exist only in the journal.
    fn crash_copy(path: &Path, to: &Path, with_journal: bool) {
        std::fs::copy(path, to).expect("copy store");
        if with_journal {
            std::fs::copy(journal::path_for(path), journal::path_for(to)).expect("copy journal");
        }
    }

    fn open_rarely_checkpointing(path: &Path) -> EmbeddedStore {
        EmbeddedStore::start(path, Database::create(path), Duration::from_secs(3600)).expect("open")
    }

    /// Every kind of write, acknowledged while only the journal held it, is there after a
    /// crash, in the same order (the audit chain, the revocation feed); without the journal
    /// the same file lacks them, so they came from it.
    #[tokio::test]
    async fn journaled_writes_are_applied_again_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let (k1, k2) = (
            super::super::replay_key(&["a"]),
            super::super::replay_key(&["b"]),
        );
        let (agent, token) = subjects();
        let s = open_rarely_checkpointing(&path);
        assert_eq!(s.first_use(k1, 100, 1).await.expect("use"), FirstUse::Yes);
        let used = s.first_use_with_audit(k2, 100, 1, b"{\"n\":1}".to_vec());
        assert_eq!(used.await.expect("use"), FirstUse::Yes);
        s.append_audit(b"{\"n\":2}".to_vec()).await.expect("audit");
        s.put(RecordKind::Approval, "kept", b"v1".to_vec(), None)
            .await
            .expect("put");
        s.put(RecordKind::Approval, "taken", b"v2".to_vec(), Some(50))
            .await
            .expect("put");
        s.put(RecordKind::Nonce, "old", b"v3".to_vec(), Some(5))
            .await
            .expect("put");
        let taken = s
            .take(RecordKind::Approval, "taken", 1)
            .await
            .expect("take");
        assert_eq!(taken, Some(b"v2".to_vec()));
        s.revoke(rev(&agent)).await.expect("revoke");
        s.revoke(rev(&token)).await.expect("revoke");
        assert!(s.unrevoke(&token).await.expect("unrevoke"));
        assert_eq!(s.purge_expired(10).await.expect("purge"), 1, "the nonce");
        let chain = s.audit_since(0, 10).await.expect("audit");
        let feed = s.revocations_since(0, 10).await.expect("feed");
        assert!(
            lock(&s.shared.writer)
                .journal
                .as_ref()
                .is_some_and(|j| j.len() > 0)
        );

        let bare = dir.path().join("bare.redb");
        crash_copy(&path, &bare, false);
        let after = dir.path().join("after.redb");
        crash_copy(&path, &after, true);
        drop(s);

        let b = EmbeddedStore::open(&bare).expect("open bare copy");
        assert!(b.audit_since(0, 10).await.expect("audit").is_empty());
        assert_eq!(b.first_use(k1, 100, 2).await.expect("use"), FirstUse::Yes);

        let a = EmbeddedStore::open(&after).expect("open copy with journal");
        assert_eq!(
            lock(&a.shared.writer).journal.as_ref().map(Journal::len),
            Some(0),
            "emptied once applied"
        );
        assert_eq!(
            a.first_use(k1, 100, 2).await.expect("use"),
            FirstUse::Replay
        );
        assert_eq!(
            a.first_use(k2, 100, 2).await.expect("use"),
            FirstUse::Replay
        );
        assert_eq!(a.audit_since(0, 10).await.expect("audit"), chain);
        assert_eq!(a.revocations_since(0, 10).await.expect("feed"), feed);
        assert_eq!(
            a.get(RecordKind::Approval, "kept", 2).await.expect("get"),
            Some(b"v1".to_vec())
        );
        assert_eq!(
            a.get(RecordKind::Approval, "taken", 2).await.expect("get"),
            None
        );
        assert_eq!(a.get(RecordKind::Nonce, "old", 2).await.expect("get"), None);
        assert!(a.revocation(&agent, 11).await.expect("read").is_some());
        assert!(a.revocation(&token, 11).await.expect("read").is_none());
        // New writes continue the chain.
        let e = a.append_audit(b"{}".to_vec()).await.expect("audit");
        assert_eq!(e.prev_hash, chain.last().expect("entries").hash);
    }

    /// Replay marks and audit entries kept in memory are answered from there (a replay in
    /// the same batch, in a later one, and after they are written to redb), and a read of the
    /// audit table sees them, chained to redb's entries.
    #[tokio::test]
    async fn pending_writes_are_seen_before_and_after_they_reach_redb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let s = open_rarely_checkpointing(&path);
        let k = super::super::replay_key(&["k"]);
        let (t1, r1) = oneshot::channel();
        let (t2, r2) = oneshot::channel();
        let (t3, r3) = oneshot::channel();
        lock(&s.shared.writer).apply_batch(
            vec![
                Op::FirstUse(k, 100, 1, t1),
                Op::FirstUseAudit(k, 100, 1, b"{\"n\":0}".to_vec(), t2),
                Op::Audit(b"{\"n\":1}".to_vec(), t3),
            ],
            true,
        );
        assert_eq!(r1.await.expect("answer").expect("use"), FirstUse::Yes);
        assert_eq!(r2.await.expect("answer").expect("use"), FirstUse::Replay);
        let first = r3.await.expect("answer").expect("audit");
        assert_eq!((first.seq, first.prev_hash), (1, [0; 32]));
        assert_eq!(lock(&s.shared.writer).pending.len(), 2, "kept in memory");
        assert_eq!(s.first_use(k, 100, 2).await.expect("use"), FirstUse::Replay);
        assert_eq!(
            s.first_use(k, 100, 100).await.expect("use"),
            FirstUse::Yes,
            "an expired mark does not count"
        );
        let k2 = super::super::replay_key(&["k2"]);
        let used = s.first_use_with_audit(k2, 100, 1, b"{\"n\":2}".to_vec());
        assert_eq!(used.await.expect("use"), FirstUse::Yes);

        let chain = s.audit_since(0, 10).await.expect("audit");
        assert_eq!(lock(&s.shared.writer).pending.len(), 0, "written to redb");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0], first);
        assert_eq!(chain[1].prev_hash, first.hash);
        assert_eq!(
            chain[1].hash,
            AuditEntry::chain_hash(&first.hash, 2, b"{\"n\":2}")
        );
        assert_eq!(
            s.first_use(k2, 100, 2).await.expect("use"),
            FirstUse::Replay
        );
        let next = s.append_audit(b"{}".to_vec()).await.expect("audit");
        assert_eq!((next.seq, next.prev_hash), (3, chain[1].hash));
    }

    /// Replay marks and audit entries acknowledged while only the journal and memory held
    /// them are there after a crash.
    #[tokio::test]
    async fn pending_writes_are_applied_again_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let s = open_rarely_checkpointing(&path);
        let k = super::super::replay_key(&["k"]);
        let used = s.first_use_with_audit(k, 100, 1, b"{\"n\":1}".to_vec());
        assert_eq!(used.await.expect("use"), FirstUse::Yes);
        let e = s.append_audit(b"{\"n\":2}".to_vec()).await.expect("audit");
        assert!(lock(&s.shared.writer).pending.len() > 0, "not yet in redb");
        let after = dir.path().join("after.redb");
        crash_copy(&path, &after, true);
        drop(s);
        let a = EmbeddedStore::open(&after).expect("open copy with journal");
        assert_eq!(a.first_use(k, 100, 2).await.expect("use"), FirstUse::Replay);
        let chain = a.audit_since(0, 10).await.expect("audit");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], e);
    }

    /// A batch kept in memory whose journal record cannot be written is committed durably
    /// instead, with what was pending before it; it is answered, nothing is lost, and the
    /// store goes on (with the journal emptied, each batch committed durably while its
    /// writes fail).
    #[tokio::test]
    async fn a_failed_journal_write_commits_the_pending_batch_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let (k1, k2) = (
            super::super::replay_key(&["a"]),
            super::super::replay_key(&["b"]),
        );
        {
            let s = open_rarely_checkpointing(&path);
            let first = s.first_use_with_audit(k1, 100, 1, b"{\"n\":1}".to_vec());
            assert_eq!(first.await.expect("use"), FirstUse::Yes);
            assert!(lock(&s.shared.writer).pending.len() > 0);
            lock(&s.shared.writer).journal =
                Some(Journal::unwritable(&journal::path_for(&path)).expect("journal"));
            let second = s.first_use_with_audit(k2, 100, 1, b"{\"n\":2}".to_vec());
            assert_eq!(second.await.expect("use"), FirstUse::Yes);
            {
                let w = lock(&s.shared.writer);
                assert_eq!(w.pending.len(), 0, "committed to redb");
                assert_eq!(w.journal.as_ref().map(Journal::len), Some(0), "emptied");
                assert!(!w.torn);
            }
            assert_eq!(
                s.first_use(k2, 100, 2).await.expect("use"),
                FirstUse::Replay
            );
            let chain = s.audit_since(0, 10).await.expect("audit");
            assert_eq!(chain.len(), 2);
            assert_eq!(chain[1].prev_hash, chain[0].hash);
        }
        // The journal still holds the first batch, which the durable commit also holds.
        let s = reopen(&path).await;
        assert_eq!(
            s.first_use(k1, 100, 2).await.expect("use"),
            FirstUse::Replay
        );
        assert_eq!(
            s.first_use(k2, 100, 2).await.expect("use"),
            FirstUse::Replay
        );
        assert_eq!(s.audit_since(0, 10).await.expect("audit").len(), 2);
    }

    /// A crash copy of the store at `path` whose journal's first record has a flipped
    /// payload bit.
    fn crash_copy_flipping_the_first_record(path: &Path, to: &Path) {
        crash_copy(path, to, true);
        let jpath = journal::path_for(to);
        let mut bytes = std::fs::read(&jpath).expect("read");
        bytes[4 + 8 + 32 + 1] ^= 1;
        std::fs::write(&jpath, &bytes).expect("write");
    }

    /// A journal record that fails its digest, followed by a record of a batch the store
    /// does not hold, was acknowledged, not torn: the store refuses to open rather than run
    /// without it and what follows.
    #[tokio::test]
    async fn a_damaged_journal_record_refuses_to_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let s = open_rarely_checkpointing(&path);
        s.append_audit(b"{\"n\":1}".to_vec()).await.expect("audit");
        s.append_audit(b"{\"n\":2}".to_vec()).await.expect("audit");
        let copy = dir.path().join("copy.redb");
        crash_copy_flipping_the_first_record(&path, &copy);
        drop(s);
        match EmbeddedStore::open(&copy) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("record 1 is damaged"), "{m}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened with a damaged journal record"),
        }
    }

    /// After a checkpoint the journal is rewound, not erased: a first record torn by a crash
    /// over the old ones leaves them readable, but they are of batches the file holds, so
    /// the store opens with everything acknowledged before.
    #[tokio::test]
    async fn a_torn_first_record_over_old_ones_is_a_torn_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let s = open_rarely_checkpointing(&path);
        for n in 1..=3 {
            s.append_audit(format!("{{\"n\":{n}}}").into_bytes())
                .await
                .expect("audit");
        }
        lock(&s.shared.writer).fold_in();
        s.append_audit(b"{\"n\":4}".to_vec()).await.expect("audit");
        let copy = dir.path().join("copy.redb");
        crash_copy_flipping_the_first_record(&path, &copy);
        drop(s);
        let c = EmbeddedStore::open(&copy).expect("opens: a torn write");
        let chain = c.audit_since(0, 10).await.expect("audit");
        assert_eq!(chain.len(), 3, "the checkpointed entries, not the torn one");
    }

    /// A journal that does not continue the store's last batch means acknowledged writes
    /// are missing: the store refuses to open rather than run without them.
    #[tokio::test]
    async fn a_journal_with_a_gap_refuses_to_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        {
            let s = EmbeddedStore::open(&path).expect("open");
            s.append_audit(b"{}".to_vec()).await.expect("audit");
        }
        let id = {
            let s = reopen(&path).await;
            let tx = s.db.begin_write().expect("tx");
            meta(&tx, STORE_ID).expect("id")
        };
        for _ in 0..500 {
            if Database::open(&path).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (mut j, _) = Journal::open(&journal::path_for(&path), id, 0).expect("journal");
        j.clear();
        j.append(1_000, &encode_batch(&[])).expect("append");
        drop(j);
        let mut opened = None;
        for _ in 0..500 {
            match EmbeddedStore::open(&path) {
                Err(StoreError::InUse(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                other => {
                    opened = Some(other);
                    break;
                }
            }
        }
        match opened {
            Some(Err(StoreError::Corrupt(m))) => {
                assert!(m.contains("goes on at batch 1000"), "{m}");
            }
            Some(Err(e)) => panic!("unexpected error {e}"),
            Some(Ok(_)) => panic!("opened with a gap in the journal"),
            None => panic!("the store stayed in use"),
        }
    }

    /// Runtime grants are listed from memory, and what was there before a restart is listed
    /// after it.
    #[tokio::test]
    async fn runtime_grants_are_listed_from_memory_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let k = RecordKind::RuntimeGrant;
        {
            let s = EmbeddedStore::open(&path).expect("open");
            s.put(k, "g1", b"{}".to_vec(), Some(100))
                .await
                .expect("put");
            s.put(RecordKind::Approval, "x", b"{}".to_vec(), None)
                .await
                .expect("put");
            let m = s.mirrors.runtime_grants.load();
            assert_eq!(m.as_deref().map(Vec::len), Some(1), "served from memory");
            assert_eq!(s.list(k, 10).await.expect("list").len(), 1);
        }
        let s = reopen(&path).await;
        assert!(s.mirrors.runtime_grants.load().is_some());
        assert_eq!(
            s.list(k, 10).await.expect("list"),
            vec![("g1".to_owned(), b"{}".to_vec())]
        );
        assert!(s.list(k, 100).await.expect("list").is_empty(), "expired");
    }

    /// Revocations are answered from memory, yet a revocation acknowledged before a restart,
    /// and one lifted since, read the same after it.
    #[tokio::test]
    async fn revocations_are_served_from_memory_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.redb");
        let (agent, token) = subjects();
        {
            let s = EmbeddedStore::open(&path).expect("open");
            assert!(s.revocation(&agent, 11).await.expect("read").is_none());
            s.revoke(rev(&agent)).await.expect("revoke");
            s.revoke(rev(&token)).await.expect("revoke");
            assert!(s.mirrors.revocations.load().is_some(), "served from memory");
            assert_eq!(
                s.revocation(&agent, 11).await.expect("read"),
                Some(rev(&agent))
            );
            assert!(s.unrevoke(&token).await.expect("unrevoke"));
            assert!(s.revocation(&token, 11).await.expect("read").is_none());
        }
        let s = reopen(&path).await;
        assert_eq!(
            s.revocation(&agent, 12).await.expect("read"),
            Some(rev(&agent))
        );
        assert!(s.revocation(&token, 12).await.expect("read").is_none());
    }
}
