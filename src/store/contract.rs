//! The store contract as executable checks: every backend must pass [`run_all`].
//!
//! This is test support compiled into the library so that integration tests (a real Redis
//! in a later backend, the embedded store across a restart) run the very same checks.
//! Each check panics with a message naming the broken promise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;

use super::{FirstUse, RecordKind, Revocation, RevocationSubject, Store, replay_key};

const T0: u64 = 1_800_000_000;

/// Run every check, each against a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    first_use_is_single(&make().await).await;
    first_use_expires(&make().await).await;
    first_use_is_atomic_under_concurrency(Arc::new(make().await)).await;
    records_round_trip_and_expire(&make().await).await;
    listing_follows_every_change(&make().await).await;
    take_is_single_use_under_concurrency(Arc::new(make().await)).await;
    replace_is_compare_and_set(&make().await).await;
    replace_has_one_winner_under_concurrency(Arc::new(make().await)).await;
    revocations_feed_in_order(&make().await).await;
    audit_chain_links(&make().await).await;
    first_use_with_audit_records_only_a_first_use(&make().await).await;
    first_use_with_audit_is_atomic_under_concurrency(Arc::new(make().await)).await;
    purge_drops_only_expired(&make().await).await;
    make().await.ping().await.expect("ping answers");
}

/// STYLE "replay": the second use of a key before its expiry is a replay.
pub async fn first_use_is_single(s: &dyn Store) {
    let k = replay_key(&["test", "https://iss.example", "jti-1"]);
    assert_eq!(s.first_use(k, T0 + 60, T0).await.unwrap(), FirstUse::Yes);
    assert_eq!(
        s.first_use(k, T0 + 60, T0 + 1).await.unwrap(),
        FirstUse::Replay,
        "second use must be a replay"
    );
    let other = replay_key(&["test", "https://iss.example", "jti-2"]);
    assert_eq!(
        s.first_use(other, T0 + 60, T0).await.unwrap(),
        FirstUse::Yes,
        "keys are independent"
    );
    // Length-prefixing: moving a boundary between parts makes a different key.
    assert_ne!(replay_key(&["ab", "c"]), replay_key(&["a", "bc"]));
}

/// A mark is kept until its expiry and no longer.
pub async fn first_use_expires(s: &dyn Store) {
    let k = replay_key(&["test", "iss", "short"]);
    assert_eq!(s.first_use(k, T0 + 10, T0).await.unwrap(), FirstUse::Yes);
    assert_eq!(
        s.first_use(k, T0 + 10, T0 + 9).await.unwrap(),
        FirstUse::Replay
    );
    assert_eq!(
        s.first_use(k, T0 + 30, T0 + 10).await.unwrap(),
        FirstUse::Yes,
        "expired mark is reusable"
    );
}

/// Of many concurrent callers with one key, exactly one wins.
pub async fn first_use_is_atomic_under_concurrency<S: Store>(s: Arc<S>) {
    let k = replay_key(&["test", "iss", "race"]);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.first_use(k, T0 + 60, T0).await.unwrap()
        }));
    }
    let mut yes = 0;
    for t in tasks {
        if t.await.unwrap() == FirstUse::Yes {
            yes += 1;
        }
    }
    assert_eq!(yes, 1, "exactly one concurrent first use");
}

/// Records are stored, read, listed, and invisible after expiry.
pub async fn records_round_trip_and_expire(s: &dyn Store) {
    s.put(RecordKind::Approval, "a1", b"one".to_vec(), Some(T0 + 100))
        .await
        .unwrap();
    s.put(RecordKind::Approval, "a2", b"two".to_vec(), None)
        .await
        .unwrap();
    s.put(
        RecordKind::AccessRequest,
        "a1",
        b"other kind".to_vec(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get(RecordKind::Approval, "a1", T0)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        s.get(RecordKind::Approval, "a1", T0 + 100).await.unwrap(),
        None,
        "expired record is gone"
    );
    assert_eq!(
        s.get(RecordKind::Approval, "missing", T0).await.unwrap(),
        None
    );
    let listed = s.list(RecordKind::Approval, T0).await.unwrap();
    assert_eq!(
        listed,
        vec![
            ("a1".to_owned(), b"one".to_vec()),
            ("a2".to_owned(), b"two".to_vec())
        ]
    );
    s.put(RecordKind::Approval, "a2", b"replaced".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(
        s.get(RecordKind::Approval, "a2", T0)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"replaced"[..])
    );
    assert_eq!(
        s.take(RecordKind::Approval, "a1", T0 + 100).await.unwrap(),
        None,
        "an expired record cannot be taken"
    );
}

/// A single-use record goes to exactly one of many concurrent takers.
pub async fn take_is_single_use_under_concurrency<S: Store>(s: Arc<S>) {
    s.put(RecordKind::Approval, "once", b"x".to_vec(), Some(T0 + 100))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.take(RecordKind::Approval, "once", T0).await.unwrap()
        }));
    }
    let mut got = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            got += 1;
        }
    }
    assert_eq!(got, 1, "exactly one taker");
    assert_eq!(s.get(RecordKind::Approval, "once", T0).await.unwrap(), None);
}

/// `replace` writes only over the exact value read, never over a changed, taken or expired
/// record, and the new expiry holds.
pub async fn replace_is_compare_and_set(s: &dyn Store) {
    let k = RecordKind::Approval;
    s.put(k, "r", b"pending".to_vec(), Some(T0 + 100))
        .await
        .unwrap();
    assert!(
        !s.replace(k, "r", b"other", b"x".to_vec(), Some(T0 + 100), T0)
            .await
            .unwrap(),
        "a value other than the one held is not replaced"
    );
    assert!(
        s.replace(k, "r", b"pending", b"approved".to_vec(), Some(T0 + 50), T0)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get(k, "r", T0).await.unwrap().as_deref(),
        Some(&b"approved"[..])
    );
    assert_eq!(s.get(k, "r", T0 + 50).await.unwrap(), None, "new expiry");
    assert!(
        !s.replace(k, "r", b"pending", b"denied".to_vec(), Some(T0 + 100), T0)
            .await
            .unwrap(),
        "a decided record is not decided again"
    );
    s.take(k, "r", T0).await.unwrap();
    assert!(
        !s.replace(k, "r", b"approved", b"again".to_vec(), Some(T0 + 100), T0)
            .await
            .unwrap(),
        "a taken record is not re-created"
    );
    assert_eq!(s.get(k, "r", T0).await.unwrap(), None);
    s.put(k, "old", b"v".to_vec(), Some(T0 + 10)).await.unwrap();
    assert!(
        !s.replace(k, "old", b"v", b"w".to_vec(), Some(T0 + 100), T0 + 10)
            .await
            .unwrap(),
        "an expired record is not replaced"
    );
    s.put(k, "forever", b"v".to_vec(), Some(T0 + 10))
        .await
        .unwrap();
    assert!(
        s.replace(k, "forever", b"v", b"w".to_vec(), None, T0)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get(k, "forever", T0 + 1_000_000)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"w"[..]),
        "no expiry after the replace"
    );
}

/// Of many concurrent compare-and-sets on one value, exactly one wins.
pub async fn replace_has_one_winner_under_concurrency<S: Store>(s: Arc<S>) {
    let k = RecordKind::Approval;
    s.put(k, "race", b"pending".to_vec(), Some(T0 + 100))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let v = vec![b'd', i];
            s.replace(k, "race", b"pending", v.clone(), Some(T0 + 100), T0)
                .await
                .unwrap()
                .then_some(v)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        if let Some(v) = t.await.unwrap() {
            winners.push(v);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one compare-and-set wins");
    assert_eq!(
        s.get(k, "race", T0).await.unwrap(),
        Some(winners[0].clone()),
        "the winner's value is the one stored"
    );
}

fn rev(subject: RevocationSubject, until: Option<u64>) -> Revocation {
    Revocation {
        subject,
        revoked_at: T0,
        until,
        by: "alice@example.com".into(),
        reason: "contract".into(),
    }
}

/// Revocations are found by subject, expire, can be lifted, and appear in the feed in order.
pub async fn revocations_feed_in_order(s: &dyn Store) {
    let agent = RevocationSubject::Agent {
        client_id: "bot".into(),
    };
    let token = RevocationSubject::Token { jti: "t1".into() };
    let grant = RevocationSubject::ChannelGrant {
        client_id: "bot".into(),
        channel: "c".into(),
    };
    let a = s.revoke(rev(agent.clone(), None)).await.unwrap();
    let b = s.revoke(rev(token.clone(), Some(T0 + 300))).await.unwrap();
    let c = s.revoke(rev(grant.clone(), None)).await.unwrap();
    assert!(a < b && b < c, "feed positions increase");
    assert!(
        s.revocation(&agent, T0 + 1_000_000)
            .await
            .unwrap()
            .is_some(),
        "open-ended revocation stays"
    );
    assert!(s.revocation(&token, T0 + 299).await.unwrap().is_some());
    assert!(
        s.revocation(&token, T0 + 300).await.unwrap().is_none(),
        "revocation ends at until"
    );
    let feed = s.revocations_since(0, 10).await.unwrap();
    assert_eq!(
        feed.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![a, b, c]
    );
    assert_eq!(
        s.revocations_since(a, 1).await.unwrap().len(),
        1,
        "limit honoured"
    );
    assert_eq!(s.revocations_since(a, 1).await.unwrap()[0].0, b);
    assert!(s.unrevoke(&agent).await.unwrap());
    assert!(
        !s.unrevoke(&agent).await.unwrap(),
        "lifting twice is a no-op"
    );
    assert!(s.revocation(&agent, T0).await.unwrap().is_none());
    let tail = s.revocations_since(c, 10).await.unwrap();
    assert_eq!(tail.len(), 1, "lifting appears in the feed");
    assert_eq!(tail[0].1.until, Some(0));
}

/// Each audit entry links to the hash of the one before.
pub async fn audit_chain_links(s: &dyn Store) {
    let e1 = s.append_audit(br#"{"n":1}"#.to_vec()).await.unwrap();
    let e2 = s.append_audit(br#"{"n":2}"#.to_vec()).await.unwrap();
    let e3 = s.append_audit(br#"{"n":3}"#.to_vec()).await.unwrap();
    assert_eq!((e1.seq, e2.seq, e3.seq), (1, 2, 3));
    assert_eq!(e1.prev_hash, [0; 32]);
    assert_eq!(e2.prev_hash, e1.hash);
    assert_eq!(e3.prev_hash, e2.hash);
    assert_eq!(
        e2.hash,
        super::AuditEntry::chain_hash(&e1.hash, 2, br#"{"n":2}"#)
    );
    let all = s.audit_since(0, 100).await.unwrap();
    assert_eq!(all, vec![e1, e2.clone(), e3.clone()]);
    assert_eq!(s.audit_since(1, 1).await.unwrap(), vec![e2]);
    let _ = e3;
}

/// For every kind, `list` shows at once what `put`, `take`, expiry and purging did (a backend
/// may answer it from memory; it must not answer from before the change).
pub async fn listing_follows_every_change(s: &dyn Store) {
    for kind in RecordKind::ALL {
        let ids = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        assert!(s.list(kind, T0).await.unwrap().is_empty(), "{kind:?}");
        s.put(kind, "b", b"2".to_vec(), Some(T0 + 10))
            .await
            .unwrap();
        s.put(kind, "a", b"1".to_vec(), None).await.unwrap();
        assert_eq!(ids(s.list(kind, T0).await.unwrap()), ["a", "b"], "{kind:?}");
        s.put(kind, "a", b"1bis".to_vec(), None).await.unwrap();
        assert_eq!(
            s.list(kind, T0).await.unwrap()[0],
            ("a".to_owned(), b"1bis".to_vec()),
            "{kind:?}: a replaced value is listed"
        );
        assert!(s.take(kind, "a", T0).await.unwrap().is_some());
        assert_eq!(ids(s.list(kind, T0).await.unwrap()), ["b"], "{kind:?}");
        assert!(
            s.list(kind, T0 + 10).await.unwrap().is_empty(),
            "{kind:?}: expired"
        );
        s.purge_expired(T0 + 10).await.unwrap();
        assert!(
            s.list(kind, T0).await.unwrap().is_empty(),
            "{kind:?}: purged"
        );
    }
}

/// The spend of a single-use key and the audit record of what it bought go in together: a
/// replay appends nothing, and the chain stays linked across both kinds of append.
pub async fn first_use_with_audit_records_only_a_first_use(s: &dyn Store) {
    let k = replay_key(&["id-jag", "https://idp.example", "j-1"]);
    let before = s.append_audit(br#"{"n":0}"#.to_vec()).await.unwrap();
    assert_eq!(
        s.first_use_with_audit(k, T0 + 60, T0, br#"{"n":1}"#.to_vec())
            .await
            .unwrap(),
        FirstUse::Yes
    );
    assert_eq!(
        s.first_use_with_audit(k, T0 + 60, T0 + 1, br#"{"n":2}"#.to_vec())
            .await
            .unwrap(),
        FirstUse::Replay
    );
    assert_eq!(
        s.first_use(k, T0 + 60, T0 + 2).await.unwrap(),
        FirstUse::Replay
    );
    let all = s.audit_since(0, 100).await.unwrap();
    assert_eq!(all.len(), 2, "the replay appended nothing");
    assert_eq!(all[1].body, br#"{"n":1}"#.to_vec());
    assert_eq!(all[1].prev_hash, before.hash);
    assert_eq!(
        all[1].hash,
        super::AuditEntry::chain_hash(&before.hash, 2, br#"{"n":1}"#)
    );
    // After expiry the key may be used again, and that use is on record too.
    assert_eq!(
        s.first_use_with_audit(k, T0 + 200, T0 + 60, br#"{"n":3}"#.to_vec())
            .await
            .unwrap(),
        FirstUse::Yes
    );
    assert_eq!(s.audit_since(2, 100).await.unwrap().len(), 1);
}

/// Of many concurrent spends of one key, each with its audit record, and plain appends among
/// them, exactly one spend wins; only its record and the plain ones are appended, in one
/// unbroken chain.
pub async fn first_use_with_audit_is_atomic_under_concurrency<S: Store>(s: Arc<S>) {
    let k = replay_key(&["id-jag", "iss", "race"]);
    let other = replay_key(&["id-jag", "iss", "other"]);
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!("{{\"n\":{i}}}").into_bytes();
            match i % 3 {
                0 => Some(s.first_use_with_audit(k, T0 + 60, T0, body).await.unwrap()),
                1 => Some(
                    s.first_use_with_audit(other, T0 + 60, T0, body)
                        .await
                        .unwrap(),
                ),
                _ => {
                    s.append_audit(body).await.unwrap();
                    None
                }
            }
        }));
    }
    let mut yes = 0;
    for t in tasks {
        if t.await.unwrap() == Some(FirstUse::Yes) {
            yes += 1;
        }
    }
    assert_eq!(yes, 2, "one winner per key");
    let all = s.audit_since(0, 100).await.unwrap();
    assert_eq!(
        all.len(),
        2 + 8,
        "the winners' records and every plain append"
    );
    let mut prev = [0u8; 32];
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.hash, super::AuditEntry::chain_hash(&prev, e.seq, &e.body));
        prev = e.hash;
    }
}

/// Purging drops what has expired and keeps the rest.
pub async fn purge_drops_only_expired(s: &dyn Store) {
    let k1 = replay_key(&["p", "1"]);
    let k2 = replay_key(&["p", "2"]);
    s.first_use(k1, T0 + 10, T0).await.unwrap();
    s.first_use(k2, T0 + 1000, T0).await.unwrap();
    s.put(RecordKind::Nonce, "n", vec![1], Some(T0 + 10))
        .await
        .unwrap();
    s.put(RecordKind::Nonce, "keep", vec![1], None)
        .await
        .unwrap();
    let purged = s.purge_expired(T0 + 20).await.unwrap();
    assert_eq!(purged, 2);
    assert_eq!(
        s.first_use(k2, T0 + 1000, T0 + 20).await.unwrap(),
        FirstUse::Replay,
        "live mark kept"
    );
    assert!(
        s.get(RecordKind::Nonce, "keep", T0 + 20)
            .await
            .unwrap()
            .is_some()
    );
}
