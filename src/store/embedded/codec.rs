//! The journal's batch codec (every operation's inputs, so a batch can be applied again
//! after a crash) and the stored record encoding (expiry, then value).

use super::*;

/// A reply nobody waits for: operations applied again from the journal.
pub(super) fn orphan<T>() -> Reply<T> {
    oneshot::channel().0
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// The inputs of every operation of a batch, for the journal.
pub(super) fn encode_batch(batch: &[Op]) -> Vec<u8> {
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
pub(super) struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    pub(super) fn key(&mut self) -> Option<ReplayKey> {
        self.take(32)?.try_into().ok()
    }

    pub(super) fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }

    pub(super) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
}

/// The operations of a journaled batch, with replies nobody waits for.
pub(super) fn decode_batch(raw: &[u8]) -> Option<Vec<Op>> {
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

pub(super) fn fail_done(d: Done) {
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

pub(super) fn encode_record(expires_at: Option<UnixTime>, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires_at.unwrap_or(NEVER).to_be_bytes());
    v.extend_from_slice(value);
    v
}

pub(super) fn decode_record(raw: &[u8]) -> Option<(Option<UnixTime>, &[u8])> {
    let (head, body) = raw.split_at_checked(8)?;
    let e = u64::from_be_bytes(head.try_into().ok()?);
    Some(((e != NEVER).then_some(e), body))
}
