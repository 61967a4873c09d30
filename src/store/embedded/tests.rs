//! Tests of `embedded`.

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
