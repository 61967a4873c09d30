//! The Redis store against a real `redis-server`: the very contract suite the embedded store
//! passes, then what only a shared store must show — several instances (replicas) on one
//! Redis agreeing on replay, single use and the audit chain; key prefixes keeping
//! deployments apart; Redis dying and coming back under a live store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lanyard::clock::SystemClock;
use lanyard::config::{RedisSettings, RedisUrl};
use lanyard::store::redis::RedisStore;
use lanyard::store::{
    AuditEntry, FirstUse, RecordKind, Revocation, RevocationSubject, Store, StoreError, contract,
    replay_key,
};

use crate::support::redis::RedisServer;

fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        url: RedisUrl::new(url),
        key_prefix: prefix.to_owned(),
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
    }
}

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::open(&settings(url, prefix), Arc::new(SystemClock)).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The contract suite, unchanged, against Redis and against the embedded store; each fresh
/// Redis store gets its own key prefix on the one server.
#[test]
fn redis_and_embedded_stores_pass_the_same_contract() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let rt = rt();

    let n = AtomicU32::new(0);
    let started = Instant::now();
    rt.block_on(contract::run_all(|| {
        let prefix = format!("contract{}:", n.fetch_add(1, Ordering::SeqCst));
        let s = store(&url, &prefix);
        async move { s }
    }));
    let redis_took = started.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let m = AtomicU32::new(0);
    let started = Instant::now();
    rt.block_on(contract::run_all(|| {
        let path = dir
            .path()
            .join(format!("s{}.redb", m.fetch_add(1, Ordering::SeqCst)));
        async move { lanyard::store::embedded::EmbeddedStore::open(&path).unwrap() }
    }));
    let embedded_took = started.elapsed();
    println!("contract suite: redis {redis_took:?}, embedded {embedded_took:?}");
}

/// Two stores on one Redis are two replicas: of concurrent first uses of one key spread
/// over both, exactly one wins; a single-use record goes to exactly one taker.
#[test]
fn replicas_agree_on_replay_and_single_use() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let a = Arc::new(store(&redis.url(), "shared:"));
        let b = Arc::new(store(&redis.url(), "shared:"));
        let now = lanyard::clock::Clock::now(&SystemClock);
        let key = replay_key(&["id-jag", "https://idp.example", "jti-race"]);
        let mut tasks = Vec::new();
        for i in 0..64 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.first_use(key, now + 60, now).await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() == FirstUse::Yes {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "exactly one first use across replicas");

        a.put(RecordKind::Approval, "once", b"ok".to_vec(), Some(now + 60))
            .await
            .unwrap();
        assert_eq!(
            b.get(RecordKind::Approval, "once", now)
                .await
                .unwrap()
                .as_deref(),
            Some(&b"ok"[..]),
            "a record written at A is read at B"
        );
        let mut tasks = Vec::new();
        for i in 0..64 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                s.take(RecordKind::Approval, "once", now).await
            }));
        }
        let mut got = 0;
        for t in tasks {
            got += usize::from(t.await.unwrap().unwrap().is_some());
        }
        assert_eq!(got, 1, "exactly one taker across replicas");

        let agent = RevocationSubject::Agent {
            client_id: "bot".into(),
        };
        let pos = a
            .revoke(Revocation {
                subject: agent.clone(),
                revoked_at: now,
                until: None,
                by: "alice@example.com".into(),
                reason: "test".into(),
            })
            .await
            .unwrap();
        assert!(b.revocation(&agent, now).await.unwrap().is_some());
        assert_eq!(b.revocations_since(pos - 1, 10).await.unwrap()[0].0, pos);
        assert!(b.unrevoke(&agent).await.unwrap(), "lifted at B");
        assert!(a.revocation(&agent, now).await.unwrap().is_none());
    });
}

/// Several replicas appending at once build one unbroken chain: dense sequence numbers,
/// each entry linked to the one before, every hash recomputable.
#[test]
fn replicas_append_to_one_unbroken_audit_chain() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let replicas: Vec<_> = (0..3)
            .map(|_| Arc::new(store(&redis.url(), "audit:")))
            .collect();
        let per_task = 25;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (r, s) in replicas.iter().enumerate() {
            for t in 0..4 {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..per_task {
                        let body = format!(r#"{{"replica":{r},"task":{t},"i":{i}}}"#);
                        s.append_audit(body.into_bytes()).await.unwrap();
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        let total = 3 * 4 * per_task;
        println!(
            "audit: {total} appends from 3 replicas x 4 tasks in {:?}",
            started.elapsed()
        );
        let all = replicas[1].audit_since(0, 10_000).await.unwrap();
        assert_eq!(all.len(), total);
        let mut prev = [0u8; 32];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "dense sequence");
            assert_eq!(e.prev_hash, prev, "entry {} links to the one before", e.seq);
            assert_eq!(e.hash, AuditEntry::chain_hash(&prev, e.seq, &e.body));
            prev = e.hash;
        }
        let mut bodies: Vec<_> = all.iter().map(|e| e.body.clone()).collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), total, "every append landed exactly once");
    });
}

/// One Redis, two deployments: a prefix sees only its own keys, and purging one leaves the
/// other alone — also with glob characters in the prefix.
#[test]
fn key_prefixes_keep_deployments_apart() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let a = store(&redis.url(), "blue*[x]:");
        let b = store(&redis.url(), "blue:");
        let k = replay_key(&["same"]);
        assert_eq!(a.first_use(k, 110, 100).await.unwrap(), FirstUse::Yes);
        assert_eq!(b.first_use(k, 110, 100).await.unwrap(), FirstUse::Yes);
        b.put(RecordKind::Nonce, "n", vec![1], Some(110))
            .await
            .unwrap();
        assert!(a.list(RecordKind::Nonce, 100).await.unwrap().is_empty());
        assert_eq!(a.purge_expired(200).await.unwrap(), 1, "only its own mark");
        assert_eq!(b.purge_expired(200).await.unwrap(), 2, "its mark and nonce");
        assert_eq!(a.purge_expired(200).await.unwrap(), 0);
    });
}

/// Redis killed under a live store: calls fail fast as unavailable (never hang); Redis back
/// on the same port: the same store works again without being reopened. Feed positions
/// handed out after the restart (which lost everything) are still past every earlier one,
/// so a follower's cursor stays valid.
#[test]
fn store_fails_fast_while_redis_is_down_and_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let s = store(&redis.url(), "outage:");
        let now = lanyard::clock::Clock::now(&SystemClock);
        let rev = |jti: &str| Revocation {
            subject: RevocationSubject::Token { jti: jti.into() },
            revoked_at: now,
            until: Some(now + 600),
            by: "system".into(),
            reason: "test".into(),
        };
        s.ping().await.unwrap();
        let before = s.revoke(rev("t1")).await.unwrap();

        redis.stop();
        let started = Instant::now();
        for i in 0..5 {
            let k = replay_key(&["down", &i.to_string()]);
            assert!(matches!(
                s.first_use(k, now + 60, now).await,
                Err(StoreError::Unavailable(_))
            ));
            assert!(s.ping().await.is_err());
        }
        let took = started.elapsed();
        println!("10 calls against a stopped redis: {took:?}");
        assert!(took < Duration::from_secs(5), "failed slowly: {took:?}");

        redis.restart();
        let started = Instant::now();
        let mut up = false;
        for _ in 0..200 {
            if s.ping().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(up, "store recovered without being reopened");
        println!("store answered again {:?} after restart", started.elapsed());
        let after = s.revoke(rev("t2")).await.unwrap();
        assert!(
            after > before,
            "feed position {after} > {before} after data loss"
        );
        assert_eq!(
            s.first_use(replay_key(&["back"]), now + 60, now)
                .await
                .unwrap(),
            FirstUse::Yes
        );
        let e = s.append_audit(b"{}".to_vec()).await.unwrap();
        assert_eq!(e.seq, 1, "the audit chain restarts on an emptied Redis");
    });
}

/// A Redis that accepts connections but never answers (hung, partitioned) costs a call at
/// most its deadline (`connect_timeout + response_timeout`), then fails as unavailable;
/// when it answers again, so does the store.
#[test]
fn a_hung_redis_costs_a_call_at_most_its_deadline() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let rt = rt();
    rt.block_on(async {
        let s = store(&redis.url(), "hung:");
        s.ping().await.unwrap();
        redis.freeze(true);
        let started = Instant::now();
        let r = s.first_use(replay_key(&["hung"]), 2_000_000_000, 1).await;
        let took = started.elapsed();
        redis.freeze(false);
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        println!("a call against a frozen redis failed after {took:?}");
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(2),
            "bounded by the 500ms response timeout: {took:?}"
        );
        let mut up = false;
        for _ in 0..200 {
            if s.ping().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(up, "answers again once Redis does");
    });
}
