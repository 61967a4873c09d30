//! Two lanyard processes on one Redis are one authorization server: what is used at one is
//! used at both. Redis going away fails both closed; Redis coming back brings them back
//! without a restart.

use std::time::{Duration, Instant};

use crate::support::redis::RedisServer;
use crate::support::{
    AS_ISSUER, IDP_ISSUER, Lanyard, SECRET, Site, client_assertion,
    idp::TestIdp,
    now,
    reqwest::{Blocking, Resp, blocking_client},
    standard_policy, te_form,
};

/// A site whose replicas share `redis`, and whose resource-AS role trusts its own IdP role
/// (a separate trust domain, named explicitly with its public keys).
fn shared_site(idp: &TestIdp, redis: &RedisServer) -> Site {
    let site = Site::new(&idp.issuer);
    let ring = lanyard::crypto::Keyring::load(&site.path("keys/idp"), 600).unwrap();
    std::fs::write(
        site.path("idp-role.jwks.json"),
        ring.jwks(now()).to_string(),
    )
    .unwrap();
    site.write_policy(&format!(
        "{}\n[[trusted_issuer]]\nissuer = \"{IDP_ISSUER}\"\nalgorithms = [\"ES256\"]\njwks_file = \"idp-role.jwks.json\"\n",
        standard_policy(&idp.issuer)
    ));
    site.write_config_with_store(
        &format!(
            "backend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"replicas:\"\nconnect_timeout = \"500ms\"\nresponse_timeout = \"500ms\"",
            redis.url()
        ),
        "",
    );
    site
}

/// Leg 1 at `server`: an ID-JAG for alice, agent `bot-secret`.
fn id_jag(http: &Blocking, idp: &TestIdp, server: &Lanyard) -> Resp {
    let t = idp.id_token("alice", "bot-secret-sso");
    http.post(server.url("/idp/token"))
        .basic("bot-secret", SECRET)
        .form(&te_form(&t, &[("scope", "read")]))
        .send()
        .unwrap()
}

/// Leg 2 at `server`: redeem an ID-JAG for an access token.
fn redeem(http: &Blocking, server: &Lanyard, jag: &str) -> Resp {
    http.post(server.url("/as/token"))
        .basic("bot-secret", SECRET)
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jag),
        ])
        .send()
        .unwrap()
}

#[test]
fn what_is_used_at_one_replica_is_a_replay_at_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let idp = TestIdp::start();
    let site = shared_site(&idp, &redis);
    let http = blocking_client();
    let a = site.start();
    let b = site.start();
    assert_ne!(a.base, b.base);

    // An ID-JAG from A, redeemed at A, then presented at B.
    let r = id_jag(&http, &idp, &a);
    assert_eq!(r.status(), 200, "{}", r.body);
    let jag = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = redeem(&http, &a, &jag);
    assert_eq!(r.status(), 200, "redeemed at A: {}", r.body);
    let (_, at) = crate::support::decode(r.json()["access_token"].as_str().unwrap());
    assert_eq!(at["iss"], AS_ISSUER);
    let r = redeem(&http, &b, &jag);
    assert_eq!(r.status(), 400, "replayed at B: {}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert!(r.json().get("access_token").is_none());
    // The log line is written before the response, but read from B's stderr by a thread.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.log_text().contains("replay: jti already used") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        b.log_text().contains("replay: jti already used"),
        "B refused it as a replay:\n{}",
        b.log_text()
    );
    // B redeems an ID-JAG of its own (it can), which A then refuses.
    let r = id_jag(&http, &idp, &b);
    let jag = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(redeem(&http, &b, &jag).status(), 200);
    assert_eq!(redeem(&http, &a, &jag).json()["error"], "invalid_grant");

    // The other way round: a client assertion used at B is a replay at A.
    let t = idp.id_token("alice", "bot-key-sso");
    let assertion = client_assertion(&site, IDP_ISSUER, "replica-jti-1");
    let mut form = te_form(&t, &[]);
    form.extend([
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ]);
    let r = http.post(b.url("/idp/token")).form(&form).send().unwrap();
    assert_eq!(r.status(), 200, "first use at B: {}", r.body);
    let r = http.post(a.url("/idp/token")).form(&form).send().unwrap();
    assert_eq!(r.status(), 401, "replayed at A: {}", r.body);
    assert_eq!(r.json()["error"], "invalid_client");
}

#[test]
fn redis_outage_fails_closed_and_service_resumes_without_restart() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let idp = TestIdp::start();
    let site = shared_site(&idp, &redis);
    let http = blocking_client();
    let a = site.start();
    let b = site.start();

    let r = id_jag(&http, &idp, &a);
    assert_eq!(r.status(), 200, "{}", r.body);
    // Issued before the outage, redeemed only after it.
    let held = r.json()["access_token"].as_str().unwrap().to_owned();

    redis.stop();
    let started = Instant::now();
    let mut issued = 0;
    for server in [&a, &b] {
        for _ in 0..5 {
            let r = id_jag(&http, &idp, server);
            assert_eq!(r.status(), 503, "{}", r.body);
            assert_eq!(r.json()["error"], "temporarily_unavailable");
            assert!(
                r.header("retry-after")
                    .is_some_and(|v| v.parse::<u32>().is_ok())
            );
            issued += usize::from(r.json().get("access_token").is_some());
        }
        let r = redeem(&http, server, &held);
        assert_eq!(r.status(), 503, "leg 2 while down: {}", r.body);
        assert_eq!(r.json()["error"], "temporarily_unavailable");
        assert!(r.header("retry-after").is_some());
        issued += usize::from(r.json().get("access_token").is_some());
        let ready = http.get(server.url("/readyz")).send().unwrap();
        assert_ne!(ready.status(), 200, "not ready while Redis is down");
        assert_eq!(ready.json()["ready"], false);
    }
    assert_eq!(issued, 0, "no token while the store is down");
    println!(
        "12 token requests and 2 readiness checks during the outage answered in {:?}",
        started.elapsed()
    );

    redis.restart();
    let started = Instant::now();
    for server in [&a, &b] {
        let mut status = 0;
        while started.elapsed() < Duration::from_secs(10) {
            status = http
                .get(server.url("/readyz"))
                .send()
                .map_or(0, |r| r.status());
            if status == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(status, 200, "ready again without a restart");
    }
    println!(
        "both replicas ready {:?} after Redis restarted",
        started.elapsed()
    );
    let r = id_jag(&http, &idp, &b);
    assert_eq!(r.status(), 200, "issuing again: {}", r.body);
    let r = redeem(&http, &b, &held);
    assert_eq!(r.status(), 200, "the held ID-JAG redeems now: {}", r.body);
    let r = redeem(&http, &a, &held);
    assert_eq!(r.json()["error"], "invalid_grant", "and only once");
}

/// Issue 6: an agent disabled through A gets no token from B, and its live token is
/// `active:false` at both (the kill switch lives in the shared store, not in one process).
#[test]
fn agent_disabled_through_one_replica_is_disabled_at_both() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let idp = TestIdp::start();
    let site = shared_site(&idp, &redis);
    let policy = std::fs::read_to_string(site.path("policy.toml")).unwrap();
    site.write_policy(&format!(
        "{policy}\n[control_plane]\nclient_ids = {{ corp = \"lanyard-console\" }}\nadmins = [\"group:lanyard-admins\"]\n"
    ));
    let http = blocking_client();
    let a = site.start();
    let b = site.start();
    // A live token, and a second agent-authenticated caller to introspect with.
    let jag = id_jag(&http, &idp, &b).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = redeem(&http, &b, &jag);
    assert_eq!(r.status(), 200, "{}", r.body);
    let at = r.json()["access_token"].as_str().unwrap().to_owned();
    let introspect = |server: &Lanyard| {
        http.post(server.url("/as/introspect"))
            .basic("bot-secret", SECRET)
            .form(&[("token", at.as_str())])
            .send()
            .unwrap()
    };
    assert_eq!(introspect(&a).json()["active"], true);

    let admin = idp.id_token_with(
        "carol",
        "lanyard-console",
        serde_json::json!({"groups": ["lanyard-admins"]}),
    );
    let r = http
        .post(a.url("/admin/v1/agents/bot-secret/disable"))
        .header("authorization", &format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);

    // B refuses the agent at once: 401 invalid_client on both legs.
    let r = id_jag(&http, &idp, &b);
    assert_eq!(r.status(), 401, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_client");
    // Its live token is dead at both replicas. The agent itself can no longer authenticate
    // to introspect, so the agent is re-enabled first (older tokens stay dead).
    let r = http
        .post(b.url("/admin/v1/agents/bot-secret/enable"))
        .header("authorization", &format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    for server in [&a, &b] {
        let r = introspect(server);
        assert_eq!(r.status(), 200, "{}", r.body);
        assert_eq!(r.json(), serde_json::json!({"active": false}));
    }
}
