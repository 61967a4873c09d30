//! Applying one operation inside a redb write transaction: the replay mark, the record
//! table, the compare-and-set, revocations with their feed, the audit chain link, the purge.
//! Each arm hands the operation back on error so that its caller still gets an answer.

use super::*;

pub(super) fn next_seq<T: ReadableTable<u64, &'static [u8]>>(
    t: &T,
) -> Result<u64, redb::StorageError> {
    Ok(t.last()?.map_or(1, |(k, _)| k.value() + 1))
}

pub(super) type ApplyResult = Result<Done, Box<(Op, redb::Error)>>;

/// Record `key` until `exp` unless it is recorded and unexpired at `now`.
pub(super) fn mark_used(
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
pub(super) fn append_audit(
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

pub(super) fn apply(tx: &redb::WriteTransaction, op: Op) -> ApplyResult {
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
