//! The writer: the one thread (or caller, when the store is idle) that turns queued
//! operations into batches — journaled and kept pending, or committed to redb — and answers
//! each caller only once its batch is durable (group commit).

use super::*;

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) mirror: Arc<Mirrors>,
    /// `None` once a record could not be rolled back (or a durable commit after a failed
    /// write failed too): every batch is then committed durably.
    pub(super) journal: Option<Journal>,
    /// The number of the next batch.
    pub(super) next: u64,
    /// When redb last committed durably.
    pub(super) checkpointed: Instant,
    /// [`CHECKPOINT_EVERY`], except in tests.
    pub(super) every: Duration,
    /// Journaled batches' replay marks and audit entries not yet written to redb.
    pub(super) pending: Pending,
    /// A journal write failed: the file may end in a torn record, so nothing is appended
    /// until a durable commit (of every batch since) has let it be emptied.
    pub(super) torn: bool,
}

impl Writer {
    /// Whether the next batch should be committed durably to redb rather than journaled.
    pub(super) fn checkpoint_due(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| {
            j.len() >= CHECKPOINT_BYTES || self.checkpointed.elapsed() >= self.every
        })
    }

    /// If the journal (or `pending`) holds anything, commit durably what is pending (the
    /// transaction makes every earlier one durable too) and empty the journal.
    pub(super) fn fold_in(&mut self) {
        if (self.journal.as_ref().is_some_and(|j| j.len() > 0) || self.pending.len() > 0)
            && let Err(e) = self.checkpoint()
        {
            tracing::error!(error = %e, "store: durable commit failed; the journal keeps its batches");
        }
    }

    /// Commit durably what is pending (an otherwise empty transaction makes every earlier one
    /// durable), then empty the journal.
    pub(super) fn checkpoint(&mut self) -> Result<(), redb::Error> {
        self.commit_pending(Durability::Immediate)?;
        self.after_durable_commit();
        Ok(())
    }

    /// Commit what is pending in a transaction of its own, as of the last batch applied; it
    /// stays pending if that fails.
    pub(super) fn commit_pending(&mut self, durability: Durability) -> Result<(), redb::Error> {
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
    pub(super) fn spill(&mut self) -> Result<(), String> {
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
    pub(super) fn spill_due(&self) -> bool {
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
    pub(super) fn apply_batch(&mut self, mut batch: Vec<Op>, may_checkpoint: bool) {
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
    pub(super) fn apply_in_memory(&mut self, batch: Vec<Op>) -> Option<Vec<Op>> {
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
    pub(super) fn take_back(&mut self, undo: Undo) {
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
    pub(super) fn after_durable_commit(&mut self) {
        self.checkpointed = Instant::now();
        self.torn = false;
        if let Some(j) = &mut self.journal {
            j.clear();
        }
    }

    /// Apply `batch` in one redb transaction, after what is pending, make it durable (by the
    /// journal, or by a durable commit if `durable`), then answer its callers.
    pub(super) fn commit_batch(&mut self, batch: Vec<Op>, mut durable: bool) {
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
