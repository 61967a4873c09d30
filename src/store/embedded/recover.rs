//! Opening a store after a stop or a crash: the journal's batches that redb does not hold
//! are applied again, in order; a damaged journal is refused, a torn last write is not.

use super::*;

/// A number in the META table (0 if absent): the last batch applied in the file
/// ([`BATCH`]), the store's id ([`STORE_ID`]).
pub(super) fn meta(tx: &redb::WriteTransaction, key: &str) -> Result<u64, StoreError> {
    let t = tx.open_table(META).map_err(unavailable)?;
    let v = t.get(key).map_err(unavailable)?;
    Ok(v.map_or(0, |g| g.value()))
}

/// Open the journal beside `path` and apply, durably and in order, the batches it holds
/// beyond the file's last one; then empty it. Returns the journal and the next batch number.
/// A gap between the file's last batch and the journal's next is an error: acknowledged
/// writes are missing.
pub(super) fn recover(db: &Database, path: &Path) -> Result<(Journal, u64), StoreError> {
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

pub(super) fn set_batch(tx: &redb::WriteTransaction, n: u64) -> Result<(), redb::Error> {
    tx.open_table(META)?.insert(BATCH, n)?;
    Ok(())
}
