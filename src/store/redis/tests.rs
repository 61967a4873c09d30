//! Tests of `redis`.

use super::*;

#[test]
fn keys_live_under_the_prefix_and_do_not_collide() {
    let k = Keys("lanyard:".into());
    assert_eq!(
        k.replay(&[0xab; 32]),
        format!("lanyard:replay:{}", "ab".repeat(32))
    );
    assert_eq!(
        k.record(RecordKind::Approval, "a:b"),
        "lanyard:record:approval:a:b"
    );
    assert_eq!(k.index(RecordKind::Nonce), "lanyard:records:nonce");
    let sub = RevocationSubject::Token { jti: "t".into() };
    assert_eq!(k.revocation(&sub), "lanyard:revocation:token\u{1f}t");
    // Purge tells keys apart by prefix: no fixed key starts like a revocation.
    for fixed in [k.feed(), k.feed_pos(), k.audit()] {
        assert!(!fixed.starts_with("lanyard:revocation:"), "{fixed}");
        assert!(!fixed.starts_with("lanyard:replay:"), "{fixed}");
    }
}

#[test]
fn purge_walks_every_record_kind() {
    // A new kind breaks this match: add it to `RecordKind::ALL` as well.
    let n = |k: RecordKind| match k {
        RecordKind::Approval => 0,
        RecordKind::AccessRequest => 1,
        RecordKind::RuntimeGrant => 2,
        RecordKind::Nonce => 3,
    };
    let mut seen: Vec<_> = RecordKind::ALL.iter().map(|&k| n(k)).collect();
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2, 3]);
}

#[test]
fn scan_pattern_escapes_glob_characters() {
    assert_eq!(
        Keys("a*b?[c]\\:".into()).scan_pattern(),
        "a\\*b\\?\\[c\\]\\\\:*"
    );
    assert_eq!(Keys("lanyard:".into()).scan_pattern(), "lanyard:*");
}

#[test]
fn gc_ttl_outlives_the_logical_expiry_and_is_bounded() {
    assert_eq!(gc_ttl(100, 40), 60 + GC_GRACE_SECS);
    assert_eq!(gc_ttl(10, 40), GC_GRACE_SECS, "already expired: grace only");
    assert_eq!(gc_ttl(u64::MAX, 0), MAX_TTL_SECS);
}

#[test]
fn expiry_field_round_trips_and_rejects_garbage() {
    assert_eq!(parse_expiry(b"").ok(), Some(None));
    assert_eq!(parse_expiry(b"1800000000").ok(), Some(Some(1_800_000_000)));
    assert!(parse_expiry(b"soon").is_err());
    assert_eq!(
        live_value(Some(b"10".to_vec()), Some(b"x".to_vec()), 9).ok(),
        Some(Some(b"x".to_vec()))
    );
    assert_eq!(
        live_value(Some(b"10".to_vec()), Some(b"x".to_vec()), 10).ok(),
        Some(None)
    );
    assert_eq!(live_value(None, None, 0).ok(), Some(None));
}

#[test]
fn a_bad_url_is_refused_without_connecting() {
    let s = RedisSettings {
        url: crate::config::RedisUrl::new("http://nope"),
        key_prefix: "x:".into(),
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(1),
    };
    assert!(RedisStore::open(&s, Arc::new(crate::clock::SystemClock)).is_err());
}

#[tokio::test]
async fn nothing_listening_fails_fast_as_unavailable() {
    // A port nothing listens on: bind, note it, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let s = RedisSettings {
        url: crate::config::RedisUrl::new(format!("redis://127.0.0.1:{port}/")),
        key_prefix: "x:".into(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
    };
    let store = RedisStore::open(&s, Arc::new(crate::clock::SystemClock)).expect("open");
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.first_use([1; 32], 100, 1).await,
            Err(StoreError::Unavailable(_))
        ));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "six calls against a closed port took {:?}",
        started.elapsed()
    );
}
