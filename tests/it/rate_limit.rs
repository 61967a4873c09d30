//! Rate limits on the token, introspection and revocation endpoints: a burst beyond the limit
//! gets 429 with `Retry-After`, other clients are unaffected, and the client recovers.

use std::time::{Duration, Instant};

use crate::support::reqwest::{Blocking, Resp, blocking_client};
use crate::support::{Lanyard, SECRET, Site};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn start(limits: &str) -> (Site, Lanyard) {
    let site = Site::new("https://idp.unused.example");
    site.write_config(&format!("[limits]\n{limits}\n"));
    let l = site.start();
    (site, l)
}

fn token_as(c: &Blocking, l: &Lanyard, client_id: &str) -> Resp {
    c.post(l.url("/as/token"))
        .form(&[
            ("grant_type", JWT_BEARER),
            ("client_id", client_id),
            ("assertion", "not-a-jwt"),
        ])
        .send()
        .unwrap()
}

/// A jwt-bearer request that authenticates as `bot-secret` (and then fails on its assertion):
/// it spends the agent's own budget.
fn token_authenticated(c: &Blocking, l: &Lanyard) -> Resp {
    c.post(l.url("/as/token"))
        .basic("bot-secret", SECRET)
        .form(&[("grant_type", JWT_BEARER), ("assertion", "not-a-jwt")])
        .send()
        .unwrap()
}

/// Send until the first 429 (at most `max`); returns how many were let through and the 429.
fn until_limited(max: usize, mut send: impl FnMut() -> Resp) -> (usize, Resp) {
    for passed in 0..max {
        let r = send();
        if r.status() == 429 {
            return (passed, r);
        }
    }
    panic!("no 429 after {max} requests");
}

fn assert_is_429(r: &Resp) {
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("delta-seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn client_over_its_limit_gets_429_others_do_not_and_it_recovers() {
    let (_site, l) = start("per_client = \"1/s\"\nburst = 3\nper_address = \"off\"");
    let c = blocking_client();
    let (passed, limited) = until_limited(50, || token_authenticated(&c, &l));
    assert!(passed >= 3, "the burst is allowed: {passed}");
    assert_is_429(&limited);

    // Another client from the same address is unaffected.
    let other = token_as(&c, &l, "bot-b");
    assert_ne!(other.status(), 429);
    assert_eq!(other.json()["error"], "invalid_client");

    // Once a token has been refilled (1/s), bot-secret is served again.
    let start = Instant::now();
    loop {
        let r = token_authenticated(&c, &l);
        if r.status() != 429 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "bot-secret never recovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 24 #2: the client budget is charged only after authentication. Someone sending the
/// agent's id with wrong secrets — from the same address, as behind a shared proxy — is
/// throttled (429 after its own burst of 401s) while the real agent keeps being served.
#[test]
fn wrong_secret_attempts_do_not_lock_out_the_real_agent() {
    let (_site, l) = start("per_client = \"1/s\"\nburst = 3\nper_address = \"off\"");
    let attacker = blocking_client();
    let agent = blocking_client();
    let wrong = || {
        attacker
            .post(l.url("/as/token"))
            .basic("bot-secret", "wrong")
            .form(&[("grant_type", JWT_BEARER), ("assertion", "not-a-jwt")])
            .send()
            .unwrap()
    };
    let (failed, limited) = until_limited(50, wrong);
    assert!(failed >= 3, "the attacker's failures are counted: {failed}");
    assert_is_429(&limited);
    for _ in 0..20 {
        assert_eq!(wrong().status(), 429, "the attacker stays throttled");
    }
    // The agent itself, authenticating, has its whole budget (burst 3), even while the
    // attacker goes on failing between its requests.
    for _ in 0..3 {
        let r = token_authenticated(&agent, &l);
        assert_eq!(r.status(), 400, "{}", r.body);
        assert_eq!(r.json()["error"], "invalid_grant");
        assert_eq!(wrong().status(), 429);
    }
}

#[test]
fn address_limit_applies_across_client_ids() {
    let (_site, l) = start("per_client = \"off\"\nper_address = \"1/s\"\nburst = 4");
    let c = blocking_client();
    let mut n = 0;
    let (passed, limited) = until_limited(50, || {
        n += 1;
        token_as(&c, &l, &format!("bot-{n}"))
    });
    assert!(passed >= 4, "the burst is allowed: {passed}");
    assert_is_429(&limited);
    // Health probes are not limited.
    assert_eq!(c.get(l.url("/healthz")).send().unwrap().status(), 200);
}

#[test]
fn introspection_and_revocation_are_limited_per_basic_client() {
    let (_site, l) = start("per_client = \"1/s\"\nburst = 2\nper_address = \"off\"");
    let c = blocking_client();
    let mut i = 0;
    let (passed, limited) = until_limited(50, || {
        i += 1;
        let ep = if i % 2 == 0 {
            "/as/introspect"
        } else {
            "/as/revoke"
        };
        c.post(l.url(ep))
            .basic("bot-secret", SECRET)
            .form(&[("token", "x")])
            .send()
            .unwrap()
    });
    assert!(passed >= 2, "the burst is allowed: {passed}");
    assert_is_429(&limited);
    let other = c
        .post(l.url("/as/introspect"))
        .basic("rs-other", "wrong")
        .form(&[("token", "x")])
        .send()
        .unwrap();
    assert_ne!(other.status(), 429);
}

#[test]
fn replicas_sharing_redis_share_one_budget() {
    use crate::support::redis::RedisServer;
    let Some(redis) = RedisServer::start() else {
        eprintln!("redis-server not available; skipped");
        return;
    };
    let site = Site::new("https://idp.unused.example");
    site.write_config_with_store(
        &format!(
            "backend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"limits:\"",
            redis.url()
        ),
        "[limits]\nper_client = \"5/m\"\nper_address = \"off\"",
    );
    let a = site.start();
    let b = site.start();
    let c = blocking_client();
    // The counters are per minute of wall-clock time: start well inside one.
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::support::now() % 60 > 45 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut i = 0;
    let (passed, limited) = until_limited(50, || {
        i += 1;
        let server = if i % 2 == 0 { &a } else { &b };
        token_authenticated(&c, server)
    });
    // 5 in all, not 5 at each replica.
    assert_eq!(passed, 5);
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(limited.json()["error"], "temporarily_unavailable");
    // Both replicas now refuse that client, and neither refuses another.
    assert_eq!(token_authenticated(&c, &a).status(), 429);
    assert_eq!(token_authenticated(&c, &b).status(), 429);
    assert_ne!(token_as(&c, &a, "bot-other").status(), 429);
}

#[test]
fn requests_beyond_the_concurrency_cap_get_503_but_probes_do_not() {
    use std::io::Write as _;
    let site = Site::new("https://idp.unused.example");
    site.write_config("[limits]\nper_client = \"off\"\nper_address = \"off\"");
    // One request at a time.
    let text = std::fs::read_to_string(site.path("lanyard.toml"))
        .unwrap()
        .replace("[server]\n", "[server]\nmax_concurrent_requests = 1\n");
    std::fs::write(site.path("lanyard.toml"), text).unwrap();
    let l = site.start();
    let c = blocking_client();

    // A client that sends its headers and then stalls its body holds the only slot. If a
    // probe request gets there first, the stalled one is the one shed (it then has an
    // answer to read): open another.
    let addr = l.base.trim_start_matches("http://").to_owned();
    let stall = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"POST /as/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=")
            .unwrap();
        s.set_nonblocking(true).unwrap();
        s
    };
    let answered = |s: &std::net::TcpStream| {
        let mut b = [0u8; 1];
        s.peek(&mut b).is_ok()
    };
    let mut stalled = stall();
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let r = token_as(&c, &l, "bot-a");
        if r.status() == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "never shed: {}", r.status());
        if answered(&stalled) {
            stalled = stall();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(busy.json()["error"], "temporarily_unavailable");
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Other endpoints share the cap; the probes do not.
    assert_eq!(c.get(l.url("/as/jwks.json")).send().unwrap().status(), 503);
    assert_eq!(c.get(l.url("/healthz")).send().unwrap().status(), 200);

    // The slot is freed when that client goes away.
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(10);
    while token_as(&c, &l, "bot-a").status() == 503 {
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
