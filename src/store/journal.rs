//! The embedded store's write-ahead journal: a file beside the redb file written from the
//! start, one record per group commit, each flushed with one `fdatasync` of one sequential
//! write.
//!
//! Why: a durable redb commit rewrites about ten scattered pages before its fsync (0.63 ms
//! p50 on the benchmark machine, BENCHMARKS.md), which set the floor under every token
//! response. Appending one record to a file and flushing it takes 0.15–0.20 ms there. So most
//! batches are committed to redb without a flush ([`redb::Durability::None`]: visible to
//! every later read at once, gone if the process dies) and made durable by their journal
//! record; every second or so one batch is committed durably instead, after which the
//! journal is emptied. On open, the records after redb's last durable batch are applied
//! again, in order, before anything else runs.
//!
//! A record is `len: u32 LE ‖ seq: u64 LE ‖ SHA-256(store id ‖ seq ‖ payload) ‖ payload`.
//! Records carry consecutive batch numbers; the store id (random, kept in the redb file) ties
//! them to their store file, so a journal left beside a store file created afresh is not
//! applied to it. Records without the id in their digest (written by earlier versions) are
//! still read.
//!
//! The file is written full of zeros when it is created ([`PREALLOCATE`] bytes, more than a
//! checkpoint's worth) and never shortened: records overwrite blocks that are already on
//! disk, so the `fdatasync` after each one flushes the data alone, with no change of the
//! file's size or extents to commit to the file system's own journal. On this project's
//! machines that made the flush 0.145 → 0.095 ms at the median (BENCHMARKS.md). Emptying
//! the journal after a checkpoint only moves the write position back to the start.
//!
//! So what follows the last record is old: zeros, or records of batches that redb already
//! holds durably (emptied, not erased). Reading stops at the first record that is short, whose
//! digest does not match, or whose batch number does not follow the one before (an old
//! record, always of a lower batch). If a valid record of a later batch than both the last
//! one read and redb's lies anywhere after that point, the record there was damaged (or its
//! length was), not torn — nothing is written after a failed write — and the records after
//! it were acknowledged: the store refuses to open.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const HEAD: usize = 4 + 8 + 32;

/// A record larger than this is refused on write and read as the end of the journal.
pub(super) const MAX_RECORD: usize = 64 << 20;

/// Bytes of zeros a new journal file is given: a checkpoint is due at 16 MiB.
pub(super) const PREALLOCATE: u64 = 20 << 20;

/// The journal file, opened for writing at its current end.
pub(super) struct Journal {
    file: File,
    /// The store's id, part of every record's digest.
    id: u64,
    path: PathBuf,
    /// Where the next record goes: the bytes of records since the journal was emptied.
    len: u64,
    /// As read at open: see [`Self::damaged`].
    damaged: Option<(usize, u64)>,
}

/// A record as read back: batch number and payload.
pub(super) type Record = (u64, Vec<u8>);

/// A record's digest: SHA-256 of the store's id, the batch number and the payload. The id
/// (kept in the store file, see `super::embedded`) makes records left by another store file —
/// one deleted and created again beside the same journal — fail their digest. `None`: the
/// digest of records written before the id was part of it (read only, so that a journal left
/// by a crash of an older version is still applied).
fn digest(id: Option<u64>, seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    if let Some(id) = id {
        ctx.update(&id.to_le_bytes());
    }
    ctx.update(&seq.to_le_bytes());
    ctx.update(payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The journal's path for a store file: `<store>.journal`.
pub(super) fn path_for(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// The length and batch number in the header at `at`, if a header fits there.
fn header(bytes: &[u8], at: usize) -> Option<(usize, u64, &[u8])> {
    let head = bytes.get(at..at.checked_add(HEAD)?)?;
    let mut len = [0u8; 4];
    len.copy_from_slice(&head[..4]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[4..12]);
    Some((
        u32::from_le_bytes(len) as usize,
        u64::from_le_bytes(seq),
        &head[12..HEAD],
    ))
}

/// The record at `at` (batch number, payload, bytes taken), if one is there whole and its
/// digest matches.
fn read_one(bytes: &[u8], at: usize, id: u64) -> Option<(u64, &[u8], usize)> {
    let (len, seq, sum) = header(bytes, at)?;
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(at + HEAD..at + HEAD + len)?;
    [Some(id), None]
        .into_iter()
        .any(|id| digest(id, seq, payload)[..] == *sum)
        .then_some((seq, payload, HEAD + len))
}

/// Batch numbers the search for acknowledged records past the end looks for, above the floor.
const SEARCH_WINDOW: u64 = 1 << 32;

/// Whether a valid record of a batch in `(floor, floor + SEARCH_WINDOW]` starts anywhere from
/// `from` on, and its batch number. Runs of zeros (most of a preallocated file) are skipped
/// eight bytes at a time: a header there has batch number 0.
fn search(bytes: &[u8], from: usize, id: u64, floor: u64) -> Option<u64> {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let mut at = from;
    while at + HEAD <= bytes.len() {
        if word(at + 4) == 0 {
            // The batch number's bytes are zero; skip to just before the next nonzero word.
            let mut z = at + 12;
            while z + 8 <= bytes.len() && word(z) == 0 {
                z += 8;
            }
            at = (at + 1).max(z.saturating_sub(11));
            continue;
        }
        if let Some((_, seq, _)) = header(bytes, at)
            && seq > floor
            && seq - floor <= SEARCH_WINDOW
            && read_one(bytes, at, id).is_some()
        {
            return Some(seq);
        }
        at += 1;
    }
    None
}

/// The valid records at the start of `bytes` (each batch following the one before), how many
/// bytes they take, and whether a valid record of a later batch than both the last of them
/// and `last` (the batch redb holds) lies anywhere after them: then the record where reading
/// stopped was damaged, not torn, and the later ones were acknowledged (see
/// [`Journal::damaged`]). Old records, left from before the journal was last emptied, are all
/// of batches redb holds.
fn records(bytes: &[u8], id: u64, last: u64) -> (Vec<Record>, usize, Option<(usize, u64)>) {
    let mut out: Vec<Record> = Vec::new();
    let mut at = 0;
    loop {
        let prev = out.last().map(|(seq, _)| *seq);
        match read_one(bytes, at, id) {
            Some((seq, payload, n)) if prev.is_none_or(|p| p.checked_add(1) == Some(seq)) => {
                out.push((seq, payload.to_vec()));
                at += n;
            }
            _ => {
                let floor = prev.unwrap_or(0).max(last);
                let damaged = search(bytes, at, id, floor).map(|seq| (out.len() + 1, seq));
                return (out, at, damaged);
            }
        }
    }
}

impl Journal {
    /// Open (or create, mode 0600, and fill with [`PREALLOCATE`] bytes of zeros) the journal
    /// of the store with id `id`, whose file holds the batches up to `last`, and read its
    /// valid records.
    pub(super) fn open(path: &Path, id: u64, last: u64) -> std::io::Result<(Self, Vec<Record>)> {
        Self::open_with(path, id, last, PREALLOCATE)
    }

    /// [`Self::open`], giving a file shorter than `preallocate` bytes zeros up to that size.
    pub(super) fn open_with(
        path: &Path,
        id: u64,
        last: u64,
        preallocate: u64,
    ) -> std::io::Result<(Self, Vec<Record>)> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // The file's name must survive a power cut too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (found, used, damaged) = records(&bytes, id, last);
        let me = Self {
            file,
            id,
            path: path.to_owned(),
            len: used as u64,
            damaged,
        };
        me.fill(bytes.len() as u64, preallocate)?;
        Ok((me, found))
    }

    /// Write zeros from `from` (the file's end) to `size` bytes, and flush them with the new
    /// size; nothing if the file is that long already.
    fn fill(&self, from: u64, size: u64) -> std::io::Result<()> {
        if from >= size {
            return Ok(());
        }
        let zeros = vec![0u8; 1 << 20];
        let mut at = from;
        while at < size {
            let n = (size - at).min(zeros.len() as u64);
            self.file.write_all_at(&zeros[..n as usize], at)?;
            at += n;
        }
        self.file.sync_all()
    }

    /// Where reading stopped at open, if a valid record of a batch later than every one read
    /// and than redb's lies anywhere after it: the index (from 1) of the record that is
    /// missing or damaged there, and that later batch. A torn write is the last one (nothing
    /// is written after a failed write), and old records are of batches redb holds, so those
    /// later records were acknowledged: the caller must refuse the journal.
    pub(super) fn damaged(&self) -> Option<(usize, u64)> {
        self.damaged
    }

    /// Bytes of records since the journal was last emptied.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Write one record at the end and flush it to disk (`fdatasync`). On an error the file
    /// may end in a torn record: the caller must [`clear`](Self::clear) it before appending
    /// again.
    pub(super) fn append(&mut self, seq: u64, payload: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l as usize <= MAX_RECORD)
            .ok_or_else(|| std::io::Error::other("journal record too large"))?;
        let mut rec = Vec::with_capacity(HEAD + payload.len());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&digest(Some(self.id), seq, payload));
        rec.extend_from_slice(payload);
        // Counted before the write: after a failed write the length is unknown, and a larger
        // figure only brings the next checkpoint forward.
        let at = self.len;
        self.len += rec.len() as u64;
        self.file.write_all_at(&rec, at)?;
        // Past the preallocated size this also flushes the new size, as it must.
        self.file.sync_data()
    }

    /// Take back the records from `len` on (a batch that was not committed): zero the header
    /// of the one there, so that reading stops before it, and flush that.
    pub(super) fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.write_all_at(&[0u8; HEAD], len)?;
        self.file.sync_data()?;
        self.len = len;
        Ok(())
    }

    /// Empty the journal (after a durable redb commit holds everything it had): later records
    /// overwrite the old ones from the start. Nothing needs flushing: what stays on disk is
    /// of batches redb holds, which opening the store skips.
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// Where the file is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// A journal on `path` opened read-only, so that every write to it fails (tests of the
    /// store's fallbacks).
    #[cfg(test)]
    pub(super) fn unwritable(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: File::open(path)?,
            id: 0,
            path: path.to_owned(),
            len: 0,
            damaged: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u64 = 0x5eed;

    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path_for(&dir.path().join("s.redb"));
        (dir, p)
    }

    fn read(bytes: &[u8]) -> (Vec<Record>, usize) {
        let (found, used, damaged) = records(bytes, ID, 0);
        assert_eq!(damaged, None);
        (found, used)
    }

    #[test]
    fn records_read_back_in_order_and_clear_rewinds_the_file() {
        let (_dir, p) = scratch();
        assert!(p.ends_with("s.redb.journal"));
        {
            let (mut j, found) = Journal::open(&p, ID, 0).expect("open");
            assert!(found.is_empty());
            j.append(7, b"first").expect("append");
            j.append(8, b"").expect("append");
            j.append(9, b"third").expect("append");
            assert_eq!(j.len(), 3 * HEAD as u64 + 10);
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (mut j, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(
            found,
            vec![
                (7, b"first".to_vec()),
                (8, Vec::new()),
                (9, b"third".to_vec())
            ]
        );
        j.clear();
        assert_eq!(j.len(), 0);
        j.append(10, b"after").expect("append");
        drop(j);
        let (_, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(found, vec![(10, b"after".to_vec())]);
    }

    /// The file is preallocated and never shortened: records overwrite it from the start
    /// after it is emptied, and what is left of older ones (lower batch numbers, or a
    /// rolled-back record's zeroed header) is not read back.
    #[test]
    fn records_overwrite_a_preallocated_file_and_old_ones_are_not_read() {
        let (_dir, p) = scratch();
        let size = || std::fs::metadata(&p).expect("meta").len();
        let (mut j, _) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(size(), PREALLOCATE);
        for seq in 1..=5 {
            j.append(seq, &[seq as u8; 300]).expect("append");
        }
        assert_eq!(size(), PREALLOCATE, "appends do not grow it");
        j.clear();
        j.append(6, b"six").expect("append");
        let end = j.len();
        j.append(7, b"seven, not committed").expect("append");
        j.truncate(end).expect("roll back");
        drop(j);
        let (mut j, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(found, vec![(6, b"six".to_vec())]);
        assert_eq!(j.len(), end);
        j.append(7, b"seven").expect("append");
        drop(j);
        let (_, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(found, vec![(6, b"six".to_vec()), (7, b"seven".to_vec())]);
        // Past the preallocated size the file grows, and reads back the same.
        let (mut j, _) = Journal::open_with(&p, ID, 0, 0).expect("open");
        j.clear();
        let big = vec![9u8; PREALLOCATE as usize];
        j.append(8, &big).expect("append");
        drop(j);
        assert!(size() > PREALLOCATE);
        let (_, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(found, vec![(8, big)]);
    }

    /// A torn or altered tail ends the journal there; what comes before is kept.
    #[test]
    fn reading_stops_at_a_torn_or_altered_record() {
        let (_dir, p) = scratch();
        {
            let (mut j, _) = Journal::open_with(&p, ID, 0, 0).expect("open");
            j.append(1, b"kept").expect("append");
            j.append(2, b"torn record").expect("append");
        }
        let full = std::fs::read(&p).expect("read");
        for cut in [full.len() - 1, HEAD + 4 + HEAD - 1, HEAD + 4 + 3] {
            let (found, used) = read(&full[..cut]);
            assert_eq!(found, vec![(1, b"kept".to_vec())], "cut at {cut}");
            assert_eq!(used, HEAD + 4);
        }
        let mut flipped = full.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert_eq!(read(&flipped).0.len(), 1, "a flipped payload bit");
        let mut renumbered = full.clone();
        renumbered[HEAD + 4 + 4] ^= 1;
        assert_eq!(read(&renumbered).0.len(), 1, "a changed batch number");
        // A damaged record followed by one that continues the journal is reported; a damaged
        // last one is a torn write.
        let (_dir2, p2) = scratch();
        {
            let (mut j, _) = Journal::open_with(&p2, ID, 0, 0).expect("open");
            j.append(1, b"one").expect("append");
            j.append(2, b"two").expect("append");
            j.append(3, b"three").expect("append");
        }
        let good = std::fs::read(&p2).expect("read");
        let mut middle = good.clone();
        middle[HEAD + 3 + HEAD] ^= 1;
        std::fs::write(&p2, &middle).expect("write");
        let (j, found) = Journal::open(&p2, ID, 0).expect("open");
        assert_eq!(found.len(), 1);
        assert_eq!(
            j.damaged(),
            Some((2, 3)),
            "record 2 damaged, batch 3 after it"
        );
        let mut first = good.clone();
        first[HEAD] ^= 1;
        std::fs::write(&p2, &first).expect("write");
        let (j, found) = Journal::open(&p2, ID, 0).expect("open");
        assert!(found.is_empty());
        assert_eq!(
            j.damaged(),
            Some((1, 2)),
            "the first record, whatever follows"
        );
        let mut last = good;
        if let Some(b) = last.last_mut() {
            *b ^= 1;
        }
        std::fs::write(&p2, &last).expect("write");
        let (j, found) = Journal::open(&p2, ID, 0).expect("torn tail");
        assert_eq!((found.len(), j.damaged()), (2, None));
        // A length beyond the limit is the end, not an allocation.
        let mut huge = full;
        huge[HEAD + 4..HEAD + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&huge).0.len(), 1);
    }

    /// Records of another store (another id) are not read; records written before the id
    /// was part of the digest are.
    #[test]
    fn records_are_bound_to_their_store() {
        let (_dir, p) = scratch();
        {
            let (mut j, _) = Journal::open(&p, ID, 0).expect("open");
            j.append(1, b"mine").expect("append");
        }
        let (j, found) = Journal::open(&p, ID + 1, 0).expect("open");
        assert!(found.is_empty());
        assert_eq!(j.damaged(), None);
        drop(j);
        let mut legacy = Vec::new();
        legacy.extend_from_slice(&3u32.to_le_bytes());
        legacy.extend_from_slice(&9u64.to_le_bytes());
        legacy.extend_from_slice(&digest(None, 9, b"old"));
        legacy.extend_from_slice(b"old");
        std::fs::write(&p, &legacy).expect("write");
        let (_, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(found, vec![(9, b"old".to_vec())]);
    }

    /// Reading stops at a damaged length too; the acknowledged records after it are found
    /// wherever they are, but old records (of batches redb holds) are not taken for them.
    #[test]
    fn acknowledged_records_after_the_end_are_found() {
        let (_dir, p) = scratch();
        let (mut j, _) = Journal::open(&p, ID, 0).expect("open");
        for seq in 1..=3 {
            j.append(seq, &[seq as u8; 100]).expect("append");
        }
        drop(j);
        let good = std::fs::read(&p).expect("read");
        let mut bad_len = good.clone();
        bad_len[HEAD + 100] ^= 0x40;
        std::fs::write(&p, &bad_len).expect("write");
        let (j, found) = Journal::open(&p, ID, 0).expect("open");
        assert_eq!(found.len(), 1);
        assert_eq!(j.damaged(), Some((2, 3)));
        // After emptying, a torn first record over old ones: redb holds batches 1-3.
        std::fs::write(&p, &good).expect("write");
        let (mut j, _) = Journal::open(&p, ID, 3).expect("open");
        j.clear();
        j.append(4, &[4u8; 10]).expect("append");
        drop(j);
        let mut torn = std::fs::read(&p).expect("read");
        torn[HEAD + 5] ^= 1;
        std::fs::write(&p, &torn).expect("write");
        let (j, found) = Journal::open(&p, ID, 3).expect("open");
        assert!(found.is_empty());
        assert_eq!(
            j.damaged(),
            None,
            "the old records are of batches redb holds"
        );
        let (j, _) = Journal::open(&p, ID, 1).expect("open");
        assert_eq!(j.damaged(), Some((1, 2)), "a store that lacks them is told");
    }
}
