//! The pending layer: replay marks and audit entries journaled and kept in memory until
//! the next spill writes them to redb together.

use super::*;

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
pub(super) struct Pending {
    /// Replay key → expiry.
    pub(super) replay: HashMap<ReplayKey, UnixTime>,
    /// Audit entries as stored (`prev_hash ‖ hash ‖ body`) with their sequence numbers, in
    /// order; they continue redb's chain.
    pub(super) audit: Vec<(u64, Vec<u8>)>,
    /// When the oldest pending write was made.
    pub(super) since: Option<Instant>,
    /// Bytes of the audit entries, plus a replay key's and expiry's per mark.
    pub(super) bytes: usize,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.replay.len() + self.audit.len()
    }

    /// Enough to be written to redb at the next batch, whatever its age.
    pub(super) fn full(&self) -> bool {
        self.len() >= SPILL_AT || self.bytes >= SPILL_AT_BYTES
    }

    /// Too much to add to: redb has been refusing it.
    pub(super) fn over(&self) -> bool {
        self.len() >= PENDING_MAX_FACTOR * SPILL_AT
            || self.bytes >= PENDING_MAX_FACTOR * SPILL_AT_BYTES
    }

    pub(super) fn clear(&mut self) {
        self.replay.clear();
        self.audit.clear();
        self.since = None;
        self.bytes = 0;
    }

    /// Write everything pending into `tx` (kept until `tx` commits: see [`Self::clear`]).
    pub(super) fn write_into(&self, tx: &redb::WriteTransaction) -> Result<(), redb::Error> {
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
pub(super) struct Undo {
    pub(super) replay: Vec<(ReplayKey, Option<UnixTime>)>,
    pub(super) audit_len: usize,
    pub(super) bytes: usize,
}

/// The answer of one operation applied in memory.
pub(super) enum Staged {
    Used(FirstUse),
    Entry(u64, [u8; 32], [u8; 32]),
}

/// What a pending replay mark counts for in [`Pending::bytes`].
pub(super) const MARK_BYTES: usize = 32 + 8;

/// Record `key` in `p` until `exp` unless it is recorded (there or in redb) and unexpired.
pub(super) fn mark_pending(
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
pub(super) fn audit_pending(
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
pub(super) fn chained(prev_hash: &[u8; 32], seq: u64, body: &[u8]) -> ([u8; 32], Vec<u8>) {
    let hash = AuditEntry::chain_hash(prev_hash, seq, body);
    let mut raw = Vec::with_capacity(64 + body.len());
    raw.extend_from_slice(prev_hash);
    raw.extend_from_slice(&hash);
    raw.extend_from_slice(body);
    (hash, raw)
}

/// The hash of a stored audit entry.
pub(super) fn hash_of(raw: &[u8]) -> Result<[u8; 32], redb::Error> {
    raw.get(32..64)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| redb::Error::Corrupted("audit entry too short".into()))
}
