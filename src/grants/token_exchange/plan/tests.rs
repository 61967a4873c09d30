//! Table tests of the token-exchange leg's pure rules: one row per checklist line of section
//! D that they decide, each row named by its line. Fixed time, a policy parsed from text,
//! ID token claims built as JSON the way an IdP would send them.

use serde_json::{Value, json};

use super::*;
use crate::core::grant::{self, Asked};
use crate::oauth::{FormParams, urn};

const NOW: u64 = 1_800_000_000;
const IDP: &str = "https://idp.example";
const STRICT: &str = "https://strict-idp.example";
const AS: &str = "https://as.example";
const AS2: &str = "https://as2.example";
const GH: &str = "https://mcp.github.example/";
const JIRA: &str = "https://jira.example/";
const WIKI: &str = "https://wiki.example/";

fn policy() -> Policy {
    let h = "0".repeat(64);
    let text = format!(
        r#"
version = 1
[[idp]]
id = "corp"
issuer = "{IDP}"
algorithms = ["RS256"]

[[idp]]
id = "strict"
issuer = "{STRICT}"
algorithms = ["RS256"]
subject_claim = "email"
max_age = "5m"

[[resource]]
uri = "{GH}"
authorization_server = "{AS}"
actions = ["repo.read", "issue.comment", "pull_request.merge"]

[[resource]]
uri = "{JIRA}"
authorization_server = "{AS2}"
actions = ["ticket.read"]

[[resource]]
uri = "{WIKI}"
authorization_server = "{AS2}"
actions = ["page.read"]

[[agent]]
id = "bot"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{h}" }}
idp_client_ids = {{ corp = "bot-sso", strict = "bot-sso" }}
grants = [{{ resource = "{GH}", actions = ["repo.read", "issue.comment"] }},
          {{ resource = "{JIRA}", actions = ["ticket.read"] }},
          {{ resource = "{WIKI}", actions = ["page.read"] }}]

[[entitlement]]
group = "staff"
resource = "{GH}"
actions = ["repo.read", "issue.comment", "pull_request.merge"]
"#
    );
    crate::policy::parse("test.toml", &text, std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("test policy: {e}"))
}

/// A valid token-exchange form, with `changes` applied (`None` removes a field; a repeated
/// key appears twice).
fn form(changes: &[(&str, Option<&str>)]) -> FormParams {
    let mut pairs: Vec<(String, String)> = [
        ("grant_type", urn::GRANT_TOKEN_EXCHANGE),
        ("requested_token_type", urn::TOKEN_TYPE_ID_JAG),
        ("subject_token", "a.b.c"),
        ("subject_token_type", urn::TOKEN_TYPE_ID_TOKEN),
        ("audience", AS),
        ("resource", GH),
        ("scope", "repo.read"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in changes {
        match v {
            None => pairs.retain(|(pk, _)| pk != k),
            Some(v) if k.starts_with('+') => pairs.push((k[1..].to_owned(), (*v).to_owned())),
            Some(v) => {
                pairs.retain(|(pk, _)| pk != k);
                pairs.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
    }
    FormParams::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Form changes: a field to set (`+name` adds a repeat) or remove (`None`).
type Changes = Vec<(&'static str, Option<&'static str>)>;

/// Granted actions, or the kind of refusal.
type Granted = Result<Vec<&'static str>, &'static str>;

fn kind<T>(r: &Result<T, Rejection>) -> &'static str {
    r.as_ref().map_or_else(Rejection::kind, |_| "ok")
}

/// Checklist D32–D35, D45, D47, D49, D50: the request's parameters.
#[test]
fn params_table() {
    let rows: Vec<(&str, Changes, &str)> = vec![
        ("D30 a valid request", vec![], "ok"),
        (
            "D32 subject_token missing",
            vec![("subject_token", None)],
            "request",
        ),
        (
            "D32 subject_token_type missing",
            vec![("subject_token_type", None)],
            "request",
        ),
        ("D33 audience missing", vec![("audience", None)], "request"),
        (
            "D34 requested_token_type missing",
            vec![("requested_token_type", None)],
            "request",
        ),
        (
            "D34 requested_token_type an access token",
            vec![(
                "requested_token_type",
                Some("urn:ietf:params:oauth:token-type:access_token"),
            )],
            "request",
        ),
        (
            "D35 subject_token_type access_token",
            vec![(
                "subject_token_type",
                Some("urn:ietf:params:oauth:token-type:access_token"),
            )],
            "request",
        ),
        (
            "D35 subject_token_type jwt",
            vec![(
                "subject_token_type",
                Some("urn:ietf:params:oauth:token-type:jwt"),
            )],
            "request",
        ),
        (
            "D35 subject_token_type saml2 (SAML not enabled)",
            vec![(
                "subject_token_type",
                Some("urn:ietf:params:oauth:token-type:saml2"),
            )],
            "request",
        ),
        (
            "D45 two audiences",
            vec![("+audience", Some(AS2))],
            "target",
        ),
        (
            "D47 a relative resource",
            vec![("resource", Some("/repos"))],
            "target",
        ),
        (
            "D47 a resource with a fragment",
            vec![("resource", Some("https://mcp.github.example/#x"))],
            "target",
        ),
        (
            "D49 details not JSON",
            vec![("authorization_details", Some("{nope"))],
            "authorization_details",
        ),
        (
            "D49 details not an array",
            vec![(
                "authorization_details",
                Some(r#"{"type":"lanyard_action"}"#),
            )],
            "authorization_details",
        ),
        (
            "D49 a details element without type",
            vec![(
                "authorization_details",
                Some(r#"[{"actions":["repo.read"]}]"#),
            )],
            "authorization_details",
        ),
        (
            "D49 a details type not supported",
            vec![("authorization_details", Some(r#"[{"type":"payment"}]"#))],
            "authorization_details",
        ),
        (
            "D50 actor_token alone",
            vec![("actor_token", Some("x.y.z"))],
            "request",
        ),
        (
            "D50 actor_token_type alone",
            vec![(
                "actor_token_type",
                Some("urn:ietf:params:oauth:token-type:jwt"),
            )],
            "request",
        ),
    ];
    for (line, changes, want) in rows {
        let f = form(&changes);
        let got = Params::parse(&f);
        assert_eq!(kind(&got), want, "{line}: {got:?}");
    }
}

/// ID token claims from the corp IdP for alice, issued to `bot-sso`.
fn id_token() -> Value {
    json!({
        "iss": IDP, "sub": "alice", "aud": "bot-sso", "iat": NOW - 10, "exp": NOW + 300,
        "email": "alice@example.com", "preferred_username": "alice.l", "groups": ["staff"],
    })
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    if v.is_null() {
        c.as_object_mut().map(|o| o.remove(k));
    } else {
        c[k] = v;
    }
    c
}

fn check(c: &Value, idp: &str) -> Result<Human, Rejection> {
    let p = policy();
    let idp = p.idp_by_issuer(idp).expect("idp");
    let claims: IdTokenClaims = serde_json::from_value(c.clone()).expect("claims");
    check_id_token(&claims, idp, Some("bot-sso"), 60, NOW)
}

/// Checklist D40–D42, D53 and the subject mapping: what `check_id_token` accepts.
#[test]
fn id_token_table() {
    let strict = || {
        with(
            with(id_token(), "iss", json!(STRICT)),
            "auth_time",
            json!(NOW - 60),
        )
    };
    let rows: Vec<(&str, Value, &str, &str)> = vec![
        ("D30 a valid ID token", id_token(), IDP, "ok"),
        (
            "D40 expired beyond leeway",
            with(id_token(), "exp", json!(NOW - 61)),
            IDP,
            "time",
        ),
        (
            "D40 expired within leeway",
            with(id_token(), "exp", json!(NOW - 30)),
            IDP,
            "ok",
        ),
        (
            "D40 exp missing",
            with(id_token(), "exp", Value::Null),
            IDP,
            "time",
        ),
        (
            "D40 iat in the future",
            with(id_token(), "iat", json!(NOW + 61)),
            IDP,
            "time",
        ),
        (
            "D41 aud another client",
            with(id_token(), "aud", json!("other-app")),
            IDP,
            "audience",
        ),
        (
            "D41 aud missing",
            with(id_token(), "aud", Value::Null),
            IDP,
            "audience",
        ),
        (
            "D41 aud an array holding the agent",
            with(
                with(id_token(), "aud", json!(["x", "bot-sso"])),
                "azp",
                json!("bot-sso"),
            ),
            IDP,
            "ok",
        ),
        (
            "D42 several audiences, no azp",
            with(id_token(), "aud", json!(["x", "bot-sso"])),
            IDP,
            "client_mismatch",
        ),
        (
            "D42 several audiences, azp another client",
            with(
                with(id_token(), "aud", json!(["x", "bot-sso"])),
                "azp",
                json!("x"),
            ),
            IDP,
            "client_mismatch",
        ),
        (
            "D53 auth_time within the IdP's max_age",
            strict(),
            STRICT,
            "ok",
        ),
        (
            "D53 auth_time older than max_age",
            with(strict(), "auth_time", json!(NOW - 400)),
            STRICT,
            "auth_too_old",
        ),
        (
            "D53 auth_time missing where max_age is set",
            with(strict(), "auth_time", Value::Null),
            STRICT,
            "auth_too_old",
        ),
        (
            "subject: sub missing",
            with(id_token(), "sub", Value::Null),
            IDP,
            "subject",
        ),
        (
            "subject: sub empty",
            with(id_token(), "sub", json!("")),
            IDP,
            "subject",
        ),
        (
            "subject: the IdP's subject_claim missing",
            with(strict(), "email", Value::Null),
            STRICT,
            "subject",
        ),
    ];
    for (line, c, idp, want) in rows {
        let got = check(&c, idp);
        assert_eq!(kind(&got), want, "{line}: {got:?}");
    }
}

/// The human a checked ID token names: the mapped subject, every name, the groups.
#[test]
fn id_token_maps_subject_names_and_groups() {
    let h = check(&id_token(), IDP).expect("valid");
    assert_eq!(h.sub, "alice");
    assert_eq!(h.names, ["alice", "alice", "alice@example.com", "alice.l"]);
    assert_eq!(h.groups, ["staff"]);
    let strict = with(
        with(id_token(), "iss", json!(STRICT)),
        "auth_time",
        json!(NOW),
    );
    let h = check(&strict, STRICT).expect("valid");
    assert_eq!(h.sub, "alice@example.com", "subject_claim = email");
    let one_group = with(id_token(), "groups", json!("staff"));
    assert_eq!(check(&one_group, IDP).expect("valid").groups, ["staff"]);
    let no_groups = with(id_token(), "groups", Value::Null);
    assert!(check(&no_groups, IDP).expect("valid").groups.is_empty());
    // An agent with no client id at this IdP cannot be the audience of any ID token.
    let p = policy();
    let claims: IdTokenClaims = serde_json::from_value(id_token()).expect("claims");
    let idp = p.idp_by_issuer(IDP).expect("idp");
    assert_eq!(
        check_id_token(&claims, idp, None, 60, NOW)
            .map(|h| h.sub)
            .map_err(|e| e.kind()),
        Err("audience")
    );
}

/// Checklist D51: `may_act` must name the authenticated agent.
#[test]
fn may_act_table() {
    let rows: Vec<(&str, Value, &str)> = vec![
        ("D51 no may_act", id_token(), "ok"),
        (
            "D51 may_act naming the agent",
            with(id_token(), "may_act", json!({"sub": "bot"})),
            "ok",
        ),
        (
            "D51 may_act naming its IdP client id",
            with(id_token(), "may_act", json!({"sub": "bot-sso"})),
            "ok",
        ),
        (
            "D51 may_act naming another agent",
            with(id_token(), "may_act", json!({"sub": "other"})),
            "may_act",
        ),
        (
            "D51 may_act without sub",
            with(id_token(), "may_act", json!({})),
            "may_act",
        ),
    ];
    for (line, c, want) in rows {
        let claims: IdTokenClaims = serde_json::from_value(c).expect("claims");
        let got = check_may_act(&claims, "bot", Some("bot-sso"));
        assert_eq!(kind(&got), want, "{line}");
    }
}

/// Checklist D44, D46: the audience and the resource.
#[test]
fn pick_resource_table() {
    let rows: Vec<(&str, Changes, Result<&str, &str>)> = vec![
        ("D30 the named resource of the audience", vec![], Ok(GH)),
        (
            "D44 an audience that is no configured AS",
            vec![("audience", Some("https://x.example"))],
            Err("target"),
        ),
        (
            "D46 a resource another AS governs",
            vec![("resource", Some(JIRA))],
            Err("target"),
        ),
        (
            "D46 a resource nobody governs",
            vec![("resource", Some("https://nope.example/"))],
            Err("target"),
        ),
        (
            "no resource: the audience's only one the agent may reach",
            vec![("resource", None)],
            Ok(GH),
        ),
        (
            "no resource, two candidates at the audience: name it",
            vec![("resource", None), ("audience", Some(AS2))],
            Err("target"),
        ),
    ];
    let p = policy();
    let agent = p.agent("bot").expect("agent");
    for (line, changes, want) in rows {
        let f = form(&changes);
        let params = Params::parse(&f).expect("params");
        let got = pick_resource(&p, &params, agent).map(|r| r.uri.as_str());
        assert_eq!(got.map_err(|e| e.kind()), want, "{line}");
    }
}

/// Checklist D30, D31, D48, D52: the grant — request ∩ the agent's grant ∩ the human's
/// entitlement (`core::grant::decide`, which the plan applies).
#[test]
fn decide_table() {
    let staff = Human {
        sub: "alice".into(),
        names: vec!["alice".into()],
        groups: vec!["staff".into()],
    };
    let outsider = Human {
        groups: vec!["contractors".into()],
        ..staff.clone()
    };
    let rows: Vec<(&str, &Human, Option<Vec<&str>>, Granted)> = vec![
        (
            "D30 what was asked, all allowed",
            &staff,
            Some(vec!["repo.read"]),
            Ok(vec!["repo.read"]),
        ),
        (
            "D31 fewer granted than requested: the granted set",
            &staff,
            Some(vec!["repo.read", "pull_request.merge"]),
            Ok(vec!["repo.read"]),
        ),
        (
            "D48 none of the scopes allowed",
            &staff,
            Some(vec!["pull_request.merge"]),
            Err("scope"),
        ),
        (
            "D52 a human with no entitlement here",
            &outsider,
            Some(vec!["repo.read"]),
            Err("denied"),
        ),
        (
            "no scope: all the agent may do for the human",
            &staff,
            None,
            Ok(vec!["repo.read", "issue.comment"]),
        ),
    ];
    let p = policy();
    let agent = p.agent("bot").expect("agent");
    let resource = p.resource(GH).expect("resource");
    for (line, human, scope, want) in rows {
        let asked = Asked {
            channel: None,
            scope,
            details: None,
            approved: Vec::new(),
            runtime: &[],
        };
        let got = grant::decide(&p, agent, human, resource, &asked, NOW);
        let want = want.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(got.map(|d| d.actions).map_err(|e| e.kind()), want, "{line}");
    }
}

/// Checklist D30, E57, E59: what the issued ID-JAG says, and what it never carries.
#[test]
fn id_jag_claims_table() {
    let p = policy();
    let agent = p.agent("bot").expect("agent");
    let human = check(
        &with(
            with(
                with(id_token(), "auth_time", json!(NOW - 30)),
                "acr",
                json!("mfa"),
            ),
            "amr",
            json!(["pwd", "otp"]),
        ),
        IDP,
    )
    .expect("human");
    let token: IdTokenClaims = serde_json::from_value(with(
        with(
            with(id_token(), "auth_time", json!(NOW - 30)),
            "acr",
            json!("mfa"),
        ),
        "amr",
        json!(["pwd", "otp"]),
    ))
    .expect("claims");
    let details = [ActionDetail {
        kind: urn::AUTHORIZATION_DETAILS_LANYARD_ACTION.into(),
        actions: vec!["repo.read".into()],
        locations: vec![GH.into()],
    }];
    let actor = Actor {
        sub: "bot".into(),
        act: None,
    };
    let ttl = id_jag_ttl(
        std::time::Duration::from_secs(900),
        std::time::Duration::from_secs(600),
    );
    let m = Mint {
        issuer: "https://lanyard.example/idp",
        human: &human,
        agent,
        audience: AS,
        jti: "jti-1",
        now: NOW,
        ttl,
        resource: GH,
        scope: "repo.read",
        details: &details,
        actor: &actor,
        channel: Some("slack:T1/C1"),
        id_token: &token,
        cnf: None,
        approval: None,
    };
    let c = serde_json::to_value(id_jag_claims(&m)).expect("serializes");
    let rows: Vec<(&str, &str, Value)> = vec![
        (
            "E57 iss = the IdP-role issuer",
            "iss",
            json!("https://lanyard.example/idp"),
        ),
        ("E57 sub = the subject the RAS knows", "sub", json!("alice")),
        ("E57 aud = exactly one RAS issuer string", "aud", json!(AS)),
        (
            "E57 client_id = the agent's id at that RAS",
            "client_id",
            json!("bot"),
        ),
        ("E57 jti", "jti", json!("jti-1")),
        ("E57 iat = now", "iat", json!(NOW)),
        ("E57 exp − iat ≤ 300", "exp", json!(NOW + 300)),
        ("E57 the granted resource", "resource", json!(GH)),
        ("E57 the granted scope", "scope", json!("repo.read")),
        ("E57 auth_time copied", "auth_time", json!(NOW - 30)),
        ("E57 acr copied", "acr", json!("mfa")),
        ("E57 amr copied", "amr", json!(["pwd", "otp"])),
        ("the actor is the agent", "act", json!({"sub": "bot"})),
        ("the channel", "channel", json!("slack:T1/C1")),
    ];
    for (line, k, want) in rows {
        assert_eq!(c[k], want, "{line}: {c}");
    }
    assert_eq!(
        c["authorization_details"][0]["actions"],
        json!(["repo.read"]),
        "E57 the granted authorization_details"
    );
    // E59: neither the subject ID token nor a secret or refresh token rides along.
    let text = c.to_string();
    for never in [
        "id_token",
        "refresh_token",
        "client_secret",
        "subject_token",
        "groups",
    ] {
        assert!(!text.contains(never), "E59 {never} in {text}");
    }
    assert!(c.get("cnf").is_none() && c.get("approval").is_none(), "{c}");
    // D30: never more than 5 minutes, nor the agent's or the issuer's maximum.
    assert_eq!(
        id_jag_ttl(
            std::time::Duration::from_secs(120),
            std::time::Duration::from_secs(600)
        ),
        120
    );
    assert_eq!(
        id_jag_ttl(
            std::time::Duration::from_secs(900),
            std::time::Duration::from_secs(60)
        ),
        60
    );
}
