//! The human control plane beyond kill switches (issue 7): the audit query of the admin API,
//! agents' access requests decided by a human, and runtime grants that only move within what
//! the human-owned policy file allows.

use serde_json::{Value, json};

use crate::support::flow::Flow;
use crate::support::reqwest::Resp;
use crate::support::{AS_ISSUER, SECRET, sha256_hex, te_form};

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

    /// A token exchange for alice in `channel`, asking for `scope`.
    fn exchange(&self, channel: &str, scope: &str) -> Resp {
        let t = self.f.idp.id_token("alice", "bot-secret-sso");
        let mut form = te_form(&t, &[("scope", scope), ("channel", channel)]);
        for p in &mut form {
            if p.0 == "resource" {
                p.1 = GITHUB;
            }
        }
        self.f
            .http
            .post(self.f.server.url("/idp/token"))
            .basic("bot-secret", SECRET)
            .form(&form)
            .send()
            .unwrap()
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
    #[allow(dead_code)]
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
    let denied = w.audit(&format!("decision=denied&channel={}", "slack:T1/C-old"));
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
