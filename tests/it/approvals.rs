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
