//! Just-in-time approval (issue 7, DESIGN point 5), the whole flow over HTTP: refused
//! without approval with an error naming a pending approval; the requesting human cannot
//! approve; an agent credential cannot approve; a named approver approves; the token is
//! issued once and carries the approval; a second use is refused; an expired approval is
//! refused; a denied one is refused.

use serde_json::{Value, json};

use crate::support::flow::Flow;
use crate::support::reqwest::Resp;
use crate::support::{AS_ISSUER, SECRET, decode, now, sha256_hex};

const GITHUB: &str = "https://mcp.github.example/";
const CHANNEL: &str = "slack:T1/C-eng";

fn policy(idp_issuer: &str) -> String {
    format!(
        r#"version = 1
[[idp]]
id = "corp"
issuer = "{idp_issuer}"
algorithms = ["RS256"]

[[resource]]
uri = "{GITHUB}"
authorization_server = "{AS_ISSUER}"
actions = ["repo.read", "pull_request.create"]

[[agent]]
id = "bot-secret"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{sha}" }}
idp_client_ids = {{ corp = "bot-secret-sso" }}

[[channel]]
id = "{CHANNEL}"
[[channel.grant]]
agent = "bot-secret"
resource = "{GITHUB}"
actions = ["repo.read", "pull_request.create"]
approval = {{ actions = ["pull_request.create"], approvers = ["group:leads"] }}

[[entitlement]]
group = "staff"
resource = "{GITHUB}"
actions = ["repo.read", "pull_request.create"]

[control_plane]
client_ids = {{ corp = "lanyard-console" }}
approvers = ["group:leads"]
"#,
        sha = sha256_hex(SECRET)
    )
}

struct World {
    f: Flow,
}

impl World {
    fn exchange(&self, scope: &str, approval_id: Option<&str>) -> Resp {
        let mut extra = vec![("scope", scope), ("channel", CHANNEL)];
        if let Some(a) = approval_id {
            extra.push(("approval_id", a));
        }
        self.f.exchange(GITHUB, &extra)
    }

    /// An admin-API call as `who` (in `groups`), signed in at the IdP's console client.
    fn as_human(&self, who: &str, groups: &[&str], path: &str) -> Resp {
        let t = self
            .f
            .idp
            .id_token_with(who, "lanyard-console", json!({ "groups": groups }));
        self.f
            .http
            .post(self.f.server.url(path))
            .header("authorization", &format!("Bearer {t}"))
            .send()
            .unwrap()
    }

    fn ask(&self) -> String {
        let r = self.exchange("pull_request.create", None);
        assert_eq!(r.status(), 400, "{}", r.body);
        let body = r.json();
        assert_eq!(body["error"], "approval_required", "{body}");
        assert_eq!(body["actions"], json!(["pull_request.create"]));
        let id = body["approval_id"].as_str().unwrap().to_owned();
        assert!(
            body["approval_uri"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/admin/v1/approvals/{id}")),
            "{body}"
        );
        id
    }
}

#[test]
fn just_in_time_approval_flow() {
    let f = Flow::start_configured(policy, "[approvals]\napproved_ttl = \"2s\"\n");
    jit_flow(&World { f });
}

/// The same flow with replicas' shared state in Redis, then `lanyard audit verify` on it.
#[test]
fn just_in_time_approval_flow_on_redis() {
    let Some(redis) = crate::support::redis::RedisServer::start() else {
        return;
    };
    let store = format!(
        "backend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"jit:\"",
        redis.url()
    );
    let f = Flow::start_on_store(policy, Some(&store), "[approvals]\napproved_ttl = \"2s\"\n");
    let w = World { f };
    jit_flow(&w);
    let out = std::process::Command::new(crate::support::lanyard_bin())
        .args(["audit", "verify", "--config"])
        .arg(w.f.site.path("lanyard.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("chain intact"), "{text}");
}

fn jit_flow(w: &World) {
    // Refused without approval, naming a pending approval; asking again while pending
    // names the same one.
    let id = w.ask();
    let r = w.exchange("pull_request.create", Some(&id));
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["approval_id"], id.as_str());
    assert_eq!(r.json()["approval_status"], "pending");
    // Other actions still work without approval.
    assert_eq!(w.exchange("repo.read", None).status(), 200);

    let approve = format!("/admin/v1/approvals/{id}/approve");
    // The requesting human cannot approve, even as an approver.
    let r = w.as_human("alice", &["staff", "leads"], &approve);
    assert_eq!(r.status(), 403, "{}", r.body);
    // An agent credential cannot approve.
    let r =
        w.f.http
            .post(w.f.server.url(&approve))
            .basic("bot-secret", SECRET)
            .send()
            .unwrap();
    assert_eq!(r.status(), 401, "{}", r.body);
    // A human who is not a named approver cannot either.
    let r = w.as_human("mallory", &["staff"], &approve);
    assert_eq!(r.status(), 403, "{}", r.body);
    // A named approver approves.
    let r = w.as_human("carol", &["leads"], &approve);
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["status"], "approved");
    assert_eq!(r.json()["decided_by"], "carol");

    // The token is issued, for that action, carrying the approval.
    let r = w.exchange("pull_request.create", Some(&id));
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "pull_request.create");
    let id_jag = r.json()["access_token"].as_str().unwrap().to_owned();
    let (_, c) = decode(&id_jag);
    assert_eq!(c["approval"]["id"], id.as_str());
    assert_eq!(c["approval"]["approver"], "carol");
    let r = w.f.redeem(&id_jag, &[]);
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "pull_request.create");
    let (_, at) = decode(r.json()["access_token"].as_str().unwrap());
    assert_eq!(at["approval"]["id"], id.as_str());
    assert_eq!(at["approval"]["approver"], "carol");

    // A second use of the approval is refused.
    let r = w.exchange("pull_request.create", Some(&id));
    assert_eq!(r.status(), 400, "{}", r.body);
    assert_ne!(r.json()["error"], "approval_required");

    // An expired approval is refused (approved_ttl is 2 s here).
    let id2 = w.ask();
    let r = w.as_human(
        "carol",
        &["leads"],
        &format!("/admin/v1/approvals/{id2}/approve"),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    let decided = r.json()["decided_at"].as_u64().unwrap();
    while now() <= decided + 2 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = w.exchange("pull_request.create", Some(&id2));
    assert_eq!(r.status(), 400, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_request", "{}", r.body);

    // A denied approval is refused.
    let id3 = w.ask();
    let r = w.as_human(
        "carol",
        &["leads"],
        &format!("/admin/v1/approvals/{id3}/deny"),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    let r = w.exchange("pull_request.create", Some(&id3));
    assert_eq!(r.status(), 400, "{}", r.body);
    assert_eq!(r.json()["error"], "access_denied");

    // Approvers can list what waits for them.
    let t =
        w.f.idp
            .id_token_with("carol", "lanyard-console", json!({ "groups": ["leads"] }));
    let r =
        w.f.http
            .get(w.f.server.url("/admin/v1/approvals"))
            .header("authorization", &format!("Bearer {t}"))
            .send()
            .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    let _: &Value = &r.json()["approvals"];
}

/// Issue 24 #1: 50 people deciding one approval at once (half approve, half deny): exactly
/// one decision is recorded, every other caller is told which one stands (409 naming it),
/// and an approved approval is used exactly once.
#[test]
fn concurrent_decisions_on_one_approval_have_one_winner() {
    let f = Flow::start_configured(policy, "");
    decision_race(&World { f });
}

/// The same race with the approval in Redis.
#[test]
fn concurrent_decisions_on_one_approval_have_one_winner_on_redis() {
    let Some(redis) = crate::support::redis::RedisServer::start() else {
        return;
    };
    let store = format!(
        "backend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"race:\"",
        redis.url()
    );
    let f = Flow::start_on_store(policy, Some(&store), "");
    decision_race(&World { f });
}

fn decision_race(w: &World) {
    let id = w.ask();
    let tokens: Vec<(String, String, bool)> = (0..50)
        .map(|i| {
            let who = format!("lead-{i}");
            let t =
                w.f.idp
                    .id_token_with(&who, "lanyard-console", json!({ "groups": ["leads"] }));
            (who, t, i % 2 == 0)
        })
        .collect();
    let base = w.f.server.base.clone();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(tokens.len()));
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|(who, t, approve)| {
            let (base, id, barrier) = (base.clone(), id.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = crate::support::reqwest::blocking_client();
                let verb = if approve { "approve" } else { "deny" };
                barrier.wait();
                let r = c
                    .post(format!("{base}/admin/v1/approvals/{id}/{verb}"))
                    .header("authorization", &format!("Bearer {t}"))
                    .send()
                    .unwrap();
                (who, approve, r.status(), r.json())
            })
        })
        .collect();
    let answers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = answers.iter().filter(|a| a.2 == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one decision: {answers:?}");
    let (winner, approved, _, body) = winners[0];
    let status = if *approved { "approved" } else { "denied" };
    assert_eq!(body["status"], status);
    assert_eq!(body["decided_by"], winner.as_str());
    for (who, _, code, body) in &answers {
        if who == winner {
            continue;
        }
        assert_eq!(*code, 409, "{who}: {body}");
        assert_eq!(
            body["status"], status,
            "the loser is told what stands: {body}"
        );
        assert_eq!(body["decided_by"], winner.as_str(), "{body}");
    }
    let r = w.exchange("pull_request.create", Some(&id));
    if *approved {
        assert_eq!(r.status(), 200, "{}", r.body);
        let r = w.exchange("pull_request.create", Some(&id));
        assert_eq!(r.status(), 400, "used once: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request");
        // A decision arriving after the use does not bring the approval back.
        let t =
            w.f.idp
                .id_token_with("late", "lanyard-console", json!({ "groups": ["leads"] }));
        let late =
            w.f.http
                .post(w.f.server.url(&format!("/admin/v1/approvals/{id}/approve")))
                .header("authorization", &format!("Bearer {t}"))
                .send()
                .unwrap();
        assert_eq!(late.status(), 404, "{}", late.body);
        let r = w.exchange("pull_request.create", Some(&id));
        assert_eq!(r.status(), 400, "still used: {}", r.body);
    } else {
        assert_eq!(r.status(), 400, "{}", r.body);
        assert_eq!(r.json()["error"], "access_denied");
    }
}

/// Issue 24 #6: asking again for the same action while an approval is pending names the same
/// approval (no new record); an agent has at most 100 pending approvals in all.
#[test]
fn pending_approvals_are_deduplicated_and_capped_per_agent() {
    // A hundred exchanges in a second or two: the rate limits are not what is tested here.
    let f = Flow::start_configured(
        policy,
        "[limits]\nper_client = \"off\"\nper_address = \"off\"\n",
    );
    let w = World { f };
    let first = w.ask();
    assert_eq!(w.ask(), first, "the same request names the same approval");
    let ask_for = |human: &str| ask_as(&w, human, "pull_request.create");
    for i in 1..100 {
        let r = ask_for(&format!("human-{i}"));
        assert_eq!(r.json()["error"], "approval_required", "{i}: {}", r.body);
    }
    let r = ask_for("human-100");
    assert_eq!(r.status(), 400, "{}", r.body);
    assert_eq!(r.json()["error"], "access_denied", "{}", r.body);
    // Asking again for one already pending still names it.
    assert_eq!(ask_for("human-3").json()["error"], "approval_required");
}

/// One human's requests through one agent hold at most 5 pending approvals, so that nobody
/// can fill an agent's whole allowance alone.
#[test]
fn pending_approvals_are_capped_per_human() {
    let many = |idp: &str| {
        let gated: Vec<String> = (1..=6).map(|i| format!("\"a{i}\"")).collect();
        let list = gated.join(", ");
        policy(idp)
            .replace(
                "actions = [\"repo.read\", \"pull_request.create\"]",
                &format!("actions = [\"repo.read\", \"pull_request.create\", {list}]"),
            )
            .replace(
                "approval = { actions = [\"pull_request.create\"]",
                &format!("approval = {{ actions = [\"pull_request.create\", {list}]"),
            )
    };
    let f = Flow::start_configured(many, "");
    let w = World { f };
    for i in 1..=5 {
        let r = ask_as(&w, "alice", &format!("a{i}"));
        assert_eq!(r.json()["error"], "approval_required", "a{i}: {}", r.body);
    }
    let r = ask_as(&w, "alice", "a6");
    assert_eq!(r.json()["error"], "access_denied", "{}", r.body);
    // Another human is not held back by alice's.
    let r = ask_as(&w, "bob", "a6");
    assert_eq!(r.json()["error"], "approval_required", "{}", r.body);
}

/// Leg 1 for `bot-secret` acting for `human` (in `staff`), asking for `scope` in the channel.
fn ask_as(w: &World, human: &str, scope: &str) -> Resp {
    let t =
        w.f.idp
            .id_token_with(human, "bot-secret-sso", json!({ "groups": ["staff"] }));
    let mut form = crate::support::te_form(&t, &[("scope", scope), ("channel", CHANNEL)]);
    for p in &mut form {
        if p.0 == "resource" {
            p.1 = GITHUB;
        }
    }
    w.f.http
        .post(w.f.server.url("/idp/token"))
        .basic("bot-secret", SECRET)
        .form(&form)
        .send()
        .unwrap()
}

/// Issue 24 #3: an `approval` claim in an ID-JAG from a partner issuer (another trust
/// domain) is not evidence that a person here approved anything: the approval-gated action
/// is refused at leg 2, while lanyard's own IdP role's approvals (the flow above) count.
#[test]
fn a_foreign_id_jags_approval_claim_is_not_honoured() {
    use josekit::jws::{ES256, JwsHeader};
    use josekit::jwt::{self, JwtPayload};
    const PARTNER: &str = "https://partner-idp.example";
    let keys = tempfile::tempdir().unwrap();
    let mut key = ES256.generate_key_pair().unwrap();
    key.set_key_id(Some("partner-1"));
    let mut public: serde_json::Map<String, Value> = key.to_jwk_public_key().into();
    public.insert("kid".into(), "partner-1".into());
    let jwks_path = keys.path().join("partner.jwks.json");
    std::fs::write(&jwks_path, json!({ "keys": [public] }).to_string()).unwrap();
    let path = jwks_path.display().to_string();
    let f = Flow::start_configured(
        move |idp| {
            format!(
                "{}\n[[trusted_issuer]]\nissuer = \"{PARTNER}\"\njwks_file = \"{path}\"\nalgorithms = [\"ES256\"]\n",
                policy(idp)
            )
        },
        "",
    );
    let signer = ES256.signer_from_jwk(&key.to_jwk_key_pair()).unwrap();
    let id_jag = |scope: &str, n: u32| {
        let t = now();
        let c = json!({
            "iss": PARTNER, "sub": "alice", "aud": AS_ISSUER, "client_id": "bot-secret",
            "jti": format!("partner-{n}-{}", std::process::id()), "iat": t, "exp": t + 120,
            "resource": GITHUB, "scope": scope, "channel": CHANNEL,
            "approval": {"id": "made-up", "approver": "mallory", "actions": ["pull_request.create"]},
        });
        let mut h = JwsHeader::new();
        h.set_token_type("oauth-id-jag+jwt");
        h.set_key_id("partner-1");
        let p = JwtPayload::from_map(c.as_object().unwrap().clone()).unwrap();
        jwt::encode_with_signer(&p, &h, &signer).unwrap()
    };
    let r = f.redeem(&id_jag("pull_request.create", 1), &[]);
    assert_eq!(r.status(), 400, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.body);
    // Control: the partner's ID-JAG itself is good for what needs no approval.
    let r = f.redeem(&id_jag("repo.read", 2), &[]);
    assert_eq!(r.status(), 200, "{}", r.body);
    let (_, at) = decode(r.json()["access_token"].as_str().unwrap());
    assert!(at.get("approval").is_none(), "{at}");
}
