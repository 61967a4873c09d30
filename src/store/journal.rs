//! The embedded store's write-ahead journal: an append-only file beside the redb file, one
//! record per group commit, flushed with one `fdatasync` of one sequential write.
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
//! A record is `len: u32 LE ‖ seq: u64 LE ‖ SHA-256(seq ‖ payload) ‖ payload`. Records
//! carry consecutive batch numbers. Reading stops at a last record that is short or whose
//! digest does not match: a write the crash cut short, which was never acknowledged. A damaged
//! record with more after it is damage, not a torn write, and the journal is refused.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const HEAD: usize = 4 + 8 + 32;

/// A record larger than this is refused on write and read as the end of the journal.
pub(super) const MAX_RECORD: usize = 64 << 20;

/// The journal file, opened for appending.
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
}

/// A record as read back: batch number and payload.
pub(super) type Record = (u64, Vec<u8>);

fn digest(seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
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

/// The valid records at the start of `bytes`, and how many bytes they take.
fn records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + HEAD) {
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[..4]);
        let len = u32::from_le_bytes(len) as usize;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&head[4..12]);
        let seq = u64::from_le_bytes(seq);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(at + HEAD..at + HEAD + len) else {
            break;
        };
        if digest(seq, payload)[..] != head[12..HEAD] {
            break;
        }
        out.push((seq, payload.to_vec()));
        at += HEAD + len;
    }
    (out, at)
}

/// Whether what follows the last valid record can be one record a crash cut short: nothing,
/// part of a header, or a record that reaches the end of the file. A damaged record with more
/// after it is not a torn write (nothing is appended after a failed write) but damage, and
/// the records after it were acknowledged.
fn torn_tail(rest: &[u8]) -> bool {
    let Some(len) = rest.get(..4) else {
        return true;
    };
    let mut l = [0u8; 4];
    l.copy_from_slice(len);
    rest.len() <= HEAD.saturating_add(u32::from_le_bytes(l) as usize)
}

impl Journal {
    /// Open (or create, mode 0600) the journal and read its valid records.
    pub(super) fn open(path: &Path) -> std::io::Result<(Self, Vec<Record>)> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        // The file's name must survive a power cut too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (found, used) = records(&bytes);
        if !torn_tail(&bytes[used..]) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: record {} is damaged and more follows it",
                    path.display(),
                    found.len() + 1
                ),
            ));
        }
        let me = Self {
            file,
            path: path.to_owned(),
            len: bytes.len() as u64,
        };
        Ok((me, found))
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Append one record and flush it to disk (`fdatasync`). On an error the file may end in
    /// a torn record: the caller must [`clear`](Self::clear) it before appending again.
    pub(super) fn append(&mut self, seq: u64, payload: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l as usize <= MAX_RECORD)
            .ok_or_else(|| std::io::Error::other("journal record too large"))?;
        let mut rec = Vec::with_capacity(HEAD + payload.len());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&digest(seq, payload));
        rec.extend_from_slice(payload);
        // Counted before the write: after a failed write the length is unknown, and a larger
        // figure only brings the next checkpoint forward.
        self.len += rec.len() as u64;
        self.file.write_all(&rec)?;
        self.file.sync_data()
    }

    /// Cut the file back to `len` bytes (a record whose batch was not committed), and flush
    /// that.
    pub(super) fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.len = len;
        Ok(())
    }

    /// Empty the file (after a durable redb commit holds everything it had), and flush that.
    pub(super) fn clear(&mut self) -> std::io::Result<()> {
        self.truncate(0)
    }

    /// Where the file is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// A journal on `path` opened read-only, so that every write to it fails (tests of the
    /// store's fallbacks).
    #[cfg(test)]
    pub(super) fn unwritable(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            path: path.to_owned(),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path_for(&dir.path().join("s.redb"));
        (dir, p)
    }

    #[test]
    fn records_read_back_in_order_and_clear_empties_the_file() {
        let (_dir, p) = scratch();
        assert!(p.ends_with("s.redb.journal"));
        {
            let (mut j, found) = Journal::open(&p).expect("open");
            assert!(found.is_empty());
            j.append(7, b"first").expect("append");
            j.append(8, b"").expect("append");
            j.append(9, b"third").expect("append");
            assert_eq!(j.len(), 3 * HEAD as u64 + 10);
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (mut j, found) = Journal::open(&p).expect("open");
        assert_eq!(
            found,
            vec![
                (7, b"first".to_vec()),
                (8, Vec::new()),
                (9, b"third".to_vec())
            ]
        );
        j.clear().expect("clear");
        assert_eq!(j.len(), 0);
        j.append(10, b"after").expect("append");
        drop(j);
        let (_, found) = Journal::open(&p).expect("open");
        assert_eq!(found, vec![(10, b"after".to_vec())]);
    }

    /// A torn or altered tail ends the journal there; what comes before is kept.
    #[test]
    fn reading_stops_at_a_torn_or_altered_record() {
        let (_dir, p) = scratch();
        {
            let (mut j, _) = Journal::open(&p).expect("open");
            j.append(1, b"kept").expect("append");
            j.append(2, b"torn record").expect("append");
        }
        let full = std::fs::read(&p).expect("read");
        for cut in [full.len() - 1, HEAD + 4 + HEAD - 1, HEAD + 4 + 3] {
            let (found, used) = records(&full[..cut]);
            assert_eq!(found, vec![(1, b"kept".to_vec())], "cut at {cut}");
            assert_eq!(used, HEAD + 4);
        }
        let mut flipped = full.clone();
        if let Some(b) = flipped.last_mut() {
            *b ^= 1;
        }
        assert_eq!(records(&flipped).0.len(), 1, "a flipped payload bit");
        let mut renumbered = full.clone();
        renumbered[HEAD + 4 + 4] ^= 1;
        assert_eq!(records(&renumbered).0.len(), 1, "a changed batch number");
        // A damaged record with more after it is refused at open; a damaged last one is not.
        let (_dir2, p2) = scratch();
        {
            let (mut j, _) = Journal::open(&p2).expect("open");
            j.append(1, b"one").expect("append");
            j.append(2, b"two").expect("append");
            j.append(3, b"three").expect("append");
        }
        let good = std::fs::read(&p2).expect("read");
        let mut middle = good.clone();
        middle[HEAD + 3 + HEAD] ^= 1;
        std::fs::write(&p2, &middle).expect("write");
        let err = Journal::open(&p2).err().expect("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("record 2 is damaged"), "{err}");
        let mut last = good;
        if let Some(b) = last.last_mut() {
            *b ^= 1;
        }
        std::fs::write(&p2, &last).expect("write");
        assert_eq!(Journal::open(&p2).expect("torn tail").1.len(), 2);
        // A length beyond the limit is the end, not an allocation.
        let mut huge = full;
        huge[HEAD + 4..HEAD + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(records(&huge).0.len(), 1);
    }
}
