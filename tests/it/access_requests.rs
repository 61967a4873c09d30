//! The human control plane beyond kill switches (issue 7): the audit query of the admin API,
//! agents' access requests decided by a human, and runtime grants that only move within what
//! the human-owned policy file allows.

use serde_json::{Value, json};

use crate::support::flow::Flow;
use crate::support::redis::RedisServer;
use crate::support::reqwest::{Resp, blocking_client};
use crate::support::{AS_ISSUER, IDP_ISSUER, SECRET, Site, idp::TestIdp, now, sha256_hex};

const GITHUB: &str = "https://mcp.github.example/";
const CHANNEL: &str = "slack:T1/C-eng";
const OLD: &str = "slack:T1/C-old";

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
actions = ["repo.read", "issue.comment", "repo.delete"]

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
actions = ["repo.read", "issue.comment"]

[[channel]]
id = "{OLD}"
[[channel.grant]]
agent = "bot-secret"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment"]
expires = "2020-01-01T00:00:00Z"

[[entitlement]]
group = "staff"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment", "repo.delete"]

[control_plane]
client_ids = {{ corp = "lanyard-console" }}
admins = ["group:lanyard-admins"]
approvers = ["group:leads"]
auditors = ["group:auditors"]
"#,
        sha = sha256_hex(SECRET)
    )
}

struct World {
    f: Flow,
}

impl World {
    fn start() -> Self {
        Self {
            f: Flow::start_with(policy),
        }
    }

    /// The agent files an access request (JSON body, Basic client authentication).
    fn file(&self, body: Value) -> Resp {
        self.f
            .http
            .post(self.f.server.url("/idp/access-requests"))
            .basic("bot-secret", SECRET)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    }

    /// The agent polls its request.
    fn poll(&self, id: &str) -> Value {
        let r = self
            .f
            .http
            .get(self.f.server.url(&format!("/idp/access-requests/{id}")))
            .basic("bot-secret", SECRET)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.body);
        r.json()
    }

    fn decisions(&self, decision: &str) -> Vec<Value> {
        self.audit(&format!("agent=bot-secret&decision={decision}"))
    }

    /// A token exchange for alice in `channel`, asking for `scope`.
    fn exchange(&self, channel: &str, scope: &str) -> Resp {
        self.f
            .exchange(GITHUB, &[("scope", scope), ("channel", channel)])
    }

    fn token(&self, who: &str, groups: &[&str]) -> String {
        self.f
            .idp
            .id_token_with(who, "lanyard-console", json!({ "groups": groups }))
    }

    /// GET an admin path as `who` in `groups`.
    fn get(&self, who: &str, groups: &[&str], path: &str) -> Resp {
        self.f
            .http
            .get(self.f.server.url(path))
            .header(
                "authorization",
                &format!("Bearer {}", self.token(who, groups)),
            )
            .send()
            .unwrap()
    }

    /// POST JSON to an admin path as `who` in `groups`.
    fn post(&self, who: &str, groups: &[&str], path: &str, body: Value) -> Resp {
        self.f
            .http
            .post(self.f.server.url(path))
            .header(
                "authorization",
                &format!("Bearer {}", self.token(who, groups)),
            )
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    }

    fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.get("dave", &["auditors"], &format!("/admin/v1/audit?{query}"));
        assert_eq!(r.status(), 200, "{query}: {}", r.body);
        r.json()["records"].as_array().unwrap().clone()
    }
}

#[test]
fn audit_query_filters_pages_and_needs_an_auditor() {
    let w = World::start();
    assert_eq!(w.exchange(CHANNEL, "repo.read").status(), 200);
    assert_eq!(w.exchange(CHANNEL, "issue.comment").status(), 200);
    assert_eq!(w.exchange(OLD, "repo.read").status(), 400);

    let issued = w.audit("agent=bot-secret&decision=issued");
    assert_eq!(issued.len(), 2, "{issued:?}");
    for r in &issued {
        assert_eq!(r["agent"], "bot-secret");
        assert_eq!(r["decision"], "issued");
        assert_eq!(r["channel"], CHANNEL);
        assert!(r["seq"].as_u64().unwrap() > 0);
        assert_eq!(r["hash"].as_str().unwrap().len(), 64);
    }
    // A denial's record is written in the background: poll (bounded) until it is there.
    let t0 = std::time::Instant::now();
    let denied = loop {
        let d = w.audit(&format!("decision=denied&channel={OLD}"));
        if !d.is_empty() || t0.elapsed() > std::time::Duration::from_secs(10) {
            break d;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["channel"], OLD);
    assert!(w.audit("human=nobody").is_empty());
    assert!(w.audit("since=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(w.audit("until=1").len(), 0);

    // Paging: one at a time, in chain order, each page naming where the next starts.
    let r = w.get(
        "dave",
        &["auditors"],
        "/admin/v1/audit?decision=issued&limit=1",
    );
    assert_eq!(r.json()["records"].as_array().unwrap().len(), 1);
    let first = r.json()["records"][0]["seq"].as_u64().unwrap();
    assert_eq!(r.json()["next_after"], first);
    let r = w.get(
        "dave",
        &["auditors"],
        &format!("/admin/v1/audit?decision=issued&limit=1&after={first}"),
    );
    let second = r.json()["records"][0]["seq"].as_u64().unwrap();
    assert!(second > first);
    assert_eq!(second, issued[1]["seq"].as_u64().unwrap());

    // Admins may read it too; an approver alone may not; a bad time is a 400.
    let r = w.get("carol", &["lanyard-admins"], "/admin/v1/audit");
    assert_eq!(r.status(), 200, "{}", r.body);
    let r = w.get("erin", &["leads"], "/admin/v1/audit");
    assert_eq!(r.status(), 403, "{}", r.body);
    let r = w.get("dave", &["auditors"], "/admin/v1/audit?since=yesterday");
    assert_eq!(r.status(), 400, "{}", r.body);
}

/// A one-shot HTTP receiver on 127.0.0.1 for the webhook: every request body it gets.
fn webhook_sink() -> (String, std::sync::mpsc::Receiver<Value>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    (url, rx)
}

/// Issue 7: an agent asks for access and cannot grant it to itself; a human decides; the
/// grant takes effect in both legs within the policy file; the owner and the agent see the
/// decision; the webhook hears of each step; the audit trail has every step.
#[test]
fn access_request_is_filed_by_the_agent_and_decided_by_a_human() {
    let (hook, events) = webhook_sink();
    let w = World {
        f: Flow::start_configured(
            policy,
            &format!("[notifications]\nwebhook_url = \"{hook}\"\n"),
        ),
    };
    // The file's grant in OLD has expired: nothing there.
    assert_eq!(w.exchange(OLD, "issue.comment").status(), 400);

    // Filing needs the agent's own client authentication.
    let r = w
        .f
        .http
        .post(w.f.server.url("/idp/access-requests"))
        .header("content-type", "application/json")
        .body(json!({"channel": OLD, "resource": GITHUB, "actions": ["issue.comment"]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "{}", r.body);
    // Beyond the policy file: refused at once, nobody could approve it.
    let r = w.file(json!({"channel": OLD, "resource": GITHUB, "actions": ["repo.delete"]}));
    assert_eq!(r.status(), 400, "{}", r.body);
    let r =
        w.file(json!({"channel": "slack:T1/C-none", "resource": GITHUB, "actions": ["repo.read"]}));
    assert_eq!(r.status(), 400, "{}", r.body);

    let r = w.file(json!({
        "channel": OLD, "resource": GITHUB, "actions": ["issue.comment"],
        "reason": "triage the backlog",
    }));
    assert_eq!(r.status(), 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(r.json()["owner"], "alice@example.com");
    assert!(
        r.json()["status_uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/access-requests/{id}"))
    );
    let ev = events
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("webhook: filed");
    assert_eq!(ev["event"], "access_request_filed");
    assert_eq!(ev["owner"], "alice@example.com");
    assert_eq!(ev["access_request"]["id"], id.as_str());
    // A form-encoded request works too.
    let r =
        w.f.http
            .post(w.f.server.url("/idp/access-requests"))
            .basic("bot-secret", SECRET)
            .form(&[
                ("channel", OLD),
                ("resource", GITHUB),
                ("actions", "repo.read issue.comment"),
            ])
            .send()
            .unwrap();
    assert_eq!(r.status(), 201, "{}", r.body);
    let id2 = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["actions"], json!(["repo.read", "issue.comment"]));
    let _ = events
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("webhook: filed");
    assert_eq!(w.poll(&id)["status"], "pending");

    // The agent cannot approve its own request, with any of its credentials.
    let approve = format!("/admin/v1/access-requests/{id}/approve");
    let r =
        w.f.http
            .post(w.f.server.url(&approve))
            .basic("bot-secret", SECRET)
            .send()
            .unwrap();
    assert_eq!(r.status(), 401, "{}", r.body);
    let agent_id_token = w.f.idp.id_token("alice", "bot-secret-sso");
    let r =
        w.f.http
            .post(w.f.server.url(&approve))
            .header("authorization", &format!("Bearer {agent_id_token}"))
            .send()
            .unwrap();
    assert_eq!(r.status(), 401, "{}", r.body);
    // Nor can an auditor.
    assert_eq!(
        w.post("dave", &["auditors"], &approve, json!({})).status(),
        403
    );
    // The owner sees it waiting.
    let r = w.get(
        "dave",
        &["auditors"],
        "/admin/v1/access-requests?owner=alice@example.com&status=pending",
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    let mut ids: Vec<String> = r.json()["access_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut want = vec![id.clone(), id2.clone()];
    want.sort();
    assert_eq!(ids, want);
    // Actions beyond the request cannot be approved.
    let r = w.post(
        "carol",
        &["lanyard-admins"],
        &approve,
        json!({"actions": ["repo.read"]}),
    );
    assert_eq!(r.status(), 400, "{}", r.body);
    let r = w.post(
        "carol",
        &["lanyard-admins"],
        &approve,
        json!({"expires_in": 999_999_999}),
    );
    assert_eq!(r.status(), 400, "{}", r.body);

    // An admin approves: the grant takes effect in both legs, for what was asked only.
    let r = w.post(
        "carol",
        &["lanyard-admins"],
        &approve,
        json!({"expires_in": 3600, "reason": "ok for a week"}),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["status"], "approved");
    assert!(r.json()["runtime_grant"].is_string());
    let r = w.exchange(OLD, "issue.comment");
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "issue.comment");
    let r = w.f.redeem(r.json()["access_token"].as_str().unwrap(), &[]);
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "issue.comment");
    assert_eq!(
        w.exchange(OLD, "repo.read").status(),
        400,
        "not asked, not granted"
    );
    // Deciding twice is refused.
    assert_eq!(
        w.post("carol", &["lanyard-admins"], &approve, json!({}))
            .status(),
        409
    );

    // The agent and its owner see the decision; so does the webhook.
    let seen = w.poll(&id);
    assert_eq!(seen["status"], "approved");
    assert_eq!(seen["decided_by"], "carol");
    let r = w.get(
        "dave",
        &["auditors"],
        "/admin/v1/access-requests?owner=alice@example.com&status=approved",
    );
    assert_eq!(r.json()["access_requests"][0]["id"], id.as_str());
    let ev = events
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("webhook: approved");
    assert_eq!(ev["event"], "access_request_approved");

    // An approver denies the other one.
    let r = w.post(
        "erin",
        &["leads"],
        &format!("/admin/v1/access-requests/{id2}/deny"),
        json!({"reason": "no"}),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(w.poll(&id2)["status"], "denied");
    assert_eq!(w.exchange(OLD, "repo.read").status(), 400);
    let ev = events
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("webhook: denied");
    assert_eq!(ev["event"], "access_request_denied");

    // Every step is in the audit trail.
    assert_eq!(w.decisions("access_request_filed").len(), 2);
    let approved = w.decisions("access_request_approved");
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["approver"], "carol");
    assert_eq!(approved[0]["human"], "alice@example.com");
    assert_eq!(approved[0]["channel"], OLD);
    assert_eq!(w.decisions("runtime_grant_extended").len(), 1);
    assert_eq!(w.decisions("access_request_denied").len(), 1);
}

/// Admins narrow a live channel grant at runtime and withdraw the change; nothing they add at
/// runtime goes beyond the policy file.
#[test]
fn runtime_grants_narrow_and_extend_only_within_the_policy_file() {
    let w = World::start();
    let add = "/admin/v1/agents/bot-secret/runtime-grants";
    let admin = ["lanyard-admins"];
    assert_eq!(w.exchange(CHANNEL, "repo.read").status(), 200);
    let r = w.post("carol", &admin, add, json!({
        "channel": CHANNEL, "resource": GITHUB, "actions": ["issue.comment"], "effect": "narrow",
        "expires_in": 600, "reason": "incident",
    }));
    assert_eq!(r.status(), 201, "{}", r.body);
    let grant = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(w.exchange(CHANNEL, "repo.read").status(), 400);
    assert_eq!(w.exchange(CHANNEL, "issue.comment").status(), 200);
    let r = w.get(
        "dave",
        &["auditors"],
        "/admin/v1/runtime-grants?agent=bot-secret",
    );
    assert_eq!(r.json()["runtime_grants"][0]["id"], grant.as_str());
    let r = w.get("carol", &admin, "/admin/v1/agents");
    assert_eq!(r.status(), 200, "{}", r.body);
    let bot = &r.json()["agents"][0];
    assert_eq!(bot["id"], "bot-secret");
    assert_eq!(bot["runtime_grants"][0]["effect"], "narrow");
    assert_eq!(
        bot["runtime_grants"][0]["actions"],
        json!(["issue.comment"])
    );
    // Auditors cannot change grants.
    let r = w.post("dave", &["auditors"], add, json!({}));
    assert_eq!(r.status(), 403, "{}", r.body);
    // Beyond the file: refused.
    for body in [
        json!({"channel": CHANNEL, "resource": GITHUB, "actions": ["repo.delete"], "effect": "extend"}),
        json!({"channel": "slack:T1/C-none", "resource": GITHUB, "actions": ["repo.read"], "effect": "extend"}),
        json!({"channel": OLD, "resource": GITHUB, "actions": ["repo.read"], "effect": "extend", "expires_in": 999_999_999}),
    ] {
        let r = w.post("carol", &admin, add, body.clone());
        assert_eq!(r.status(), 400, "{body}: {}", r.body);
    }
    // Withdrawn: the file's grant applies again.
    let r = w.post(
        "carol",
        &admin,
        &format!("{add}/withdraw"),
        json!({"grant_id": grant}),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(w.exchange(CHANNEL, "repo.read").status(), 200);
    let r = w.post(
        "carol",
        &admin,
        &format!("{add}/withdraw"),
        json!({"grant_id": grant}),
    );
    assert_eq!(r.status(), 404, "{}", r.body);
    assert_eq!(w.decisions("runtime_grant_narrowed").len(), 1);
    assert_eq!(w.decisions("runtime_grant_withdrawn").len(), 1);
}

/// Redis mode, two replicas on one Redis: the agent files at one, a human approves at the
/// other, and both honour the runtime grant; the agent sees the decision at either.
#[test]
fn access_requests_and_runtime_grants_are_shared_by_replicas_on_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let ring = lanyard::crypto::Keyring::load(&site.path("keys/idp"), 600).unwrap();
    std::fs::write(
        site.path("idp-role.jwks.json"),
        ring.jwks(now()).to_string(),
    )
    .unwrap();
    site.write_policy(&format!(
        "{}\n[[trusted_issuer]]\nissuer = \"{IDP_ISSUER}\"\nalgorithms = [\"ES256\"]\njwks_file = \"idp-role.jwks.json\"\n",
        policy(&idp.issuer)
    ));
    site.write_config_with_store(
        &format!(
            "backend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"access:\"\nconnect_timeout = \"500ms\"\nresponse_timeout = \"500ms\"",
            redis.url()
        ),
        "",
    );
    let other = site.start();
    let w = World {
        f: Flow {
            server: site.start(),
            idp,
            site,
            http: blocking_client(),
        },
    };
    assert_eq!(w.exchange(OLD, "issue.comment").status(), 400);
    let r = w.file(json!({"channel": OLD, "resource": GITHUB, "actions": ["issue.comment"]}));
    assert_eq!(r.status(), 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();

    // Approved at the other replica.
    let admin = w.token("carol", &["lanyard-admins"]);
    let r =
        w.f.http
            .post(other.url(&format!("/admin/v1/access-requests/{id}/approve")))
            .header("authorization", &format!("Bearer {admin}"))
            .send()
            .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);

    // In force at the first; leg 2 at the other; the agent sees it at the other.
    let r = w.exchange(OLD, "issue.comment");
    assert_eq!(r.status(), 200, "{}", r.body);
    let r =
        w.f.http
            .post(other.url("/as/token"))
            .basic("bot-secret", SECRET)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", r.json()["access_token"].as_str().unwrap()),
            ])
            .send()
            .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "issue.comment");
    let r =
        w.f.http
            .get(other.url(&format!("/idp/access-requests/{id}")))
            .basic("bot-secret", SECRET)
            .send()
            .unwrap();
    assert_eq!(r.json()["status"], "approved", "{}", r.body);
    assert_eq!(w.decisions("access_request_approved").len(), 1);
}
