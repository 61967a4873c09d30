//! Clean revocation (DESIGN point 7, checklist K–L, line 118): an admin's kill switch — a
//! disabled agent, a withdrawn channel grant, one revoked token — takes effect at once for
//! new requests, kills live tokens at introspection and at an offline resource server that
//! follows the revocation feed; an agent's own RFC 7009 revocation likewise. And no agent
//! credential opens any admin route.

use serde_json::{Value, json};

use crate::support::flow::{Flow, JWT_BEARER};
use crate::support::reqwest::Resp;
use crate::support::{AS_ISSUER, SECRET, sha256_hex};

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
actions = ["repo.read", "issue.comment"]

[[agent]]
id = "bot-secret"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{sha}" }}
idp_client_ids = {{ corp = "bot-secret-sso" }}
grants = [{{ resource = "{GITHUB}", actions = ["repo.read"] }}]

[[channel]]
id = "{CHANNEL}"
[[channel.grant]]
agent = "bot-secret"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment"]

[[entitlement]]
group = "staff"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment"]

[control_plane]
client_ids = {{ corp = "lanyard-console" }}
admins = ["group:lanyard-admins"]
auditors = ["group:auditors"]
"#,
        sha = sha256_hex(SECRET)
    )
}

struct World {
    f: Flow,
    admin: String,
}

impl World {
    fn start() -> Self {
        let f = Flow::start_with(policy);
        let admin = f.idp.id_token_with(
            "carol",
            "lanyard-console",
            json!({ "groups": ["lanyard-admins"] }),
        );
        Self { f, admin }
    }

    fn exchange(&self, channel: Option<&str>) -> Resp {
        let mut extra = vec![("scope", "repo.read")];
        if let Some(c) = channel {
            extra.push(("channel", c));
        }
        self.f.exchange(GITHUB, &extra)
    }

    /// Both legs in `channel`; the access token.
    fn access_token(&self, channel: Option<&str>) -> String {
        let r = self.exchange(channel);
        assert_eq!(r.status(), 200, "{}", r.body);
        let id_jag = r.json()["access_token"].as_str().unwrap().to_owned();
        let r = self.f.redeem(&id_jag, &[]);
        assert_eq!(r.status(), 200, "{}", r.body);
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    fn introspect(&self, token: &str) -> Value {
        let r = self
            .f
            .http
            .post(self.f.server.url("/as/introspect"))
            .basic("bot-secret", SECRET)
            .form(&[("token", token)])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        r.json()
    }

    fn admin(&self, path: &str, body: Value) -> Resp {
        self.f
            .http
            .post(self.f.server.url(path))
            .header("authorization", &format!("Bearer {}", self.admin))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    }
}

fn rs_get(w: &World, base: &str, token: &str) -> u16 {
    w.f.http
        .get(format!("{base}/repos/acme/api"))
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .unwrap()
        .status()
}

/// Poll (bounded) until the resource server refuses `token`: the feed is polled every 1 s.
fn wait_refused(w: &World, base: &str, token: &str) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(10) {
        if rs_get(w, base, token) == 401 {
            return t0.elapsed();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("resource server still accepts a revoked token after 10 s");
}

#[test]
fn introspection_returns_the_full_record_of_a_live_token() {
    let w = World::start();
    let at = w.access_token(Some(CHANNEL));
    let i = w.introspect(&at);
    assert_eq!(i["active"], true);
    for k in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "exp",
        "iat",
        "jti",
        "token_type",
    ] {
        assert!(i.get(k).is_some(), "{k} missing: {i}");
    }
    assert_eq!(i["sub"], "alice");
    assert_eq!(i["act"]["sub"], "bot-secret");
    assert!(i["act"].get("act").is_none(), "no self-delegation: {i}");
    assert_eq!(i["channel"], CHANNEL);
    assert_eq!(i["owner"], "alice@example.com");
    assert_eq!(i["token_type"], "Bearer");
    // Garbage, and an ID-JAG at the AS's endpoint: exactly {"active":false}.
    assert_eq!(w.introspect("garbage"), json!({"active": false}));
    let id_jag = w.exchange(None).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(w.introspect(&id_jag), json!({"active": false}));
    // Without client authentication: 401.
    let r =
        w.f.http
            .post(w.f.server.url("/as/introspect"))
            .form(&[("token", at.as_str())])
            .send()
            .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn agent_revokes_its_own_token() {
    let w = World::start();
    let at = w.access_token(None);
    let r =
        w.f.http
            .post(w.f.server.url("/as/revoke"))
            .basic("bot-secret", SECRET)
            .form(&[("token", at.as_str()), ("token_type_hint", "refresh_token")])
            .send()
            .unwrap();
    assert_eq!(r.status(), 200, "a wrong hint still revokes: {}", r.body);
    assert_eq!(w.introspect(&at), json!({"active": false}));
    let r =
        w.f.http
            .post(w.f.server.url("/as/revoke"))
            .basic("bot-secret", SECRET)
            .form(&[("token", "not-a-token")])
            .send()
            .unwrap();
    assert_eq!(r.status(), 200, "unknown token: 200");
    let r =
        w.f.http
            .post(w.f.server.url("/as/revoke"))
            .basic("bot-secret", SECRET)
            .form(&[("token", at.as_str()), ("token_type_hint", "saml2")])
            .send()
            .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"], "unsupported_token_type");
}

#[test]
fn disabled_agent_is_locked_out_and_its_tokens_die_everywhere() {
    let w = World::start();
    let at = w.access_token(Some(CHANNEL));
    let pending_id_jag = w.exchange(None).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rs = crate::resource_server::ExampleRs::start(&w.f.server);
    assert_eq!(rs_get(&w, &rs.base, &at), 200);

    let r = w.admin(
        "/admin/v1/agents/bot-secret/disable",
        json!({"reason": "leaked credential"}),
    );
    assert_eq!(r.status(), 200, "{}", r.body);

    // New requests: 401 invalid_client on both legs.
    let r = w.exchange(None);
    assert_eq!(r.status(), 401, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_client");
    let r = w.f.redeem(&pending_id_jag, &[]);
    assert_eq!(r.status(), 401, "{}", r.body);
    // Live tokens: refused by the offline resource server within its poll interval.
    let took = wait_refused(&w, &rs.base, &at);
    eprintln!("resource server refused the disabled agent's token after {took:?}");

    // Re-enabled: new tokens work, the old one stays dead.
    let r = w.admin("/admin/v1/agents/bot-secret/enable", json!({}));
    assert_eq!(r.status(), 200, "{}", r.body);
    // Tokens issued in the second of the revocation count as revoked; wait for the next one.
    let second = crate::support::now();
    while crate::support::now() <= second {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let fresh = w.access_token(None);
    assert_eq!(w.introspect(&at), json!({"active": false}));
    assert_eq!(w.introspect(&fresh)["active"], true);
}

#[test]
fn withdrawn_channel_grant_stops_issuance_there_only() {
    let w = World::start();
    let in_channel = w.access_token(Some(CHANNEL));
    let direct = w.access_token(None);
    let r = w.admin(
        "/admin/v1/agents/bot-secret/channel-grants/withdraw",
        json!({"channel": CHANNEL}),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    let r = w.exchange(Some(CHANNEL));
    assert_eq!(r.status(), 400, "{}", r.body);
    assert_eq!(r.json()["error"], "access_denied");
    assert_eq!(w.introspect(&in_channel), json!({"active": false}));
    // The agent's other access is untouched.
    assert_eq!(w.introspect(&direct)["active"], true);
    assert_eq!(w.exchange(None).status(), 200);
}

#[test]
fn admin_revokes_one_token() {
    let w = World::start();
    let a = w.access_token(None);
    let b = w.access_token(None);
    let r = w.admin("/admin/v1/tokens/revoke", json!({"token": a}));
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(w.introspect(&a), json!({"active": false}));
    assert_eq!(w.introspect(&b)["active"], true);
}

/// DESIGN point 8: every admin route refuses every kind of agent credential; the list of
/// routes is the router's own table, so a new route is covered by construction.
#[test]
fn every_admin_route_refuses_agent_credentials() {
    let w = World::start();
    let at = w.access_token(None);
    let id_jag = w.exchange(None).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent_id_token = w.f.idp.id_token("alice", "bot-secret-sso");
    let auditor =
        w.f.idp
            .id_token_with("dave", "lanyard-console", json!({"groups": ["auditors"]}));
    for &(method, path) in lanyard::http::admin::ROUTES {
        let url = w.f.server.url(&path.replace("{id}", "bot-secret"));
        let send = |auth: Option<(&str, &str)>, basic: bool, dpop: bool| {
            let mut req = match method {
                "GET" => w.f.http.get(url.clone()),
                _ => w.f.http.post(url.clone()),
            };
            if basic {
                req = req.basic("bot-secret", SECRET);
            }
            if let Some((k, v)) = auth {
                req = req.header(k, v);
            }
            if dpop {
                req = req.header("dpop", "x.y.z");
            }
            if method == "POST" {
                req = req.form(&[
                    ("client_id", "bot-secret"),
                    ("client_secret", SECRET),
                    ("channel", CHANNEL),
                ]);
            }
            req.send().unwrap()
        };
        let bearer = |t: &str| format!("Bearer {t}");
        let cases: Vec<(&str, Resp)> = vec![
            ("client_secret_basic", send(None, true, false)),
            ("client_secret_post only", send(None, false, false)),
            (
                "access token",
                send(Some(("authorization", &bearer(&at))), false, false),
            ),
            (
                "ID-JAG",
                send(Some(("authorization", &bearer(&id_jag))), false, false),
            ),
            (
                "ID token issued to the agent",
                send(
                    Some(("authorization", &bearer(&agent_id_token))),
                    false,
                    false,
                ),
            ),
            (
                "DPoP-bound access token",
                send(Some(("authorization", &format!("DPoP {at}"))), false, true),
            ),
            (
                "admin ID token plus a DPoP proof",
                send(Some(("authorization", &bearer(&w.admin))), false, true),
            ),
        ];
        for (what, r) in cases {
            assert_eq!(r.status(), 401, "{method} {path} with {what}: {}", r.body);
        }
        // A human without the admin role is refused writes.
        let r = send(Some(("authorization", &bearer(&auditor))), false, false);
        if method == "POST" {
            assert_eq!(r.status(), 403, "{method} {path} as auditor: {}", r.body);
        }
    }
    // Nothing above changed anything: the agent still works.
    assert_eq!(w.exchange(None).status(), 200);
    let r =
        w.f.http
            .get(w.f.server.url("/admin/v1/whoami"))
            .header("authorization", &format!("Bearer {}", w.admin))
            .send()
            .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    let _ = JWT_BEARER;
}
