//! Table tests of the jwt-bearer leg's pure plan: one row per checklist line of sections F
//! and G that the plan decides (and H's binding rules), each row named by its line. Fixed
//! time, a policy parsed from text, claims built as JSON the way an issuer would send them.

use serde_json::{Value, json};

use super::*;
use crate::core::claims::ActionDetail;

const NOW: u64 = 1_800_000_000;
const AS: &str = "https://as.example";
const GH: &str = "https://mcp.github.example/";
const SC: &str = "https://bank.example/";
const OTHER: &str = "https://elsewhere.example/";

fn policy() -> Policy {
    let h = "0".repeat(64);
    let text = format!(
        r#"
version = 1
[[resource]]
uri = "{GH}"
authorization_server = "{AS}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[resource]]
uri = "{SC}"
authorization_server = "{AS}"
actions = ["pay"]
sender_constrained = true

[[resource]]
uri = "{OTHER}"
authorization_server = "https://other-as.example"
actions = ["x"]

[[agent]]
id = "bot"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{h}" }}
never = ["pull_request.merge"]
max_ttl = "10m"
grants = [{{ resource = "{GH}", actions = ["repo.read", "issue.comment", "pull_request.merge"] }},
          {{ resource = "{SC}", actions = ["pay"] }}]

[[channel]]
id = "eng"
[[channel.grant]]
agent = "bot"
resource = "{GH}"
actions = ["repo.read", "pull_request.create"]
approval = {{ actions = ["pull_request.create"], approvers = ["group:leads"] }}
"#
    );
    crate::policy::parse("test.toml", &text, std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("test policy: {e}"))
}

/// A well-formed ID-JAG for `bot` at this AS, acting for alice, on GH.
fn claims() -> Value {
    json!({
        "iss": "https://idp.partner.example", "sub": "alice", "aud": AS, "client_id": "bot",
        "jti": "j-1", "iat": NOW, "exp": NOW + 120, "resource": GH,
        "scope": "repo.read issue.comment",
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

fn parsed(c: &Value) -> IdJagIn {
    serde_json::from_value(c.clone()).unwrap_or_else(|e| panic!("claims {c}: {e}"))
}

fn expect() -> Expect<'static> {
    Expect {
        issuer: AS,
        client_id: "bot",
        leeway: 60,
    }
}

fn kind(r: &Result<Checked, Rejection>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

/// Checklist F60, F61, G78–G87: what `check_claims` accepts and refuses.
#[test]
fn check_claims_table() {
    let long_jti = "j".repeat(257);
    let rows: Vec<(&str, Value, &str)> = vec![
        ("F60 valid", claims(), "ok"),
        (
            "F61 aud as a one-element array",
            with(claims(), "aud", json!([AS])),
            "ok",
        ),
        (
            "G78 aud missing",
            with(claims(), "aud", Value::Null),
            "audience",
        ),
        (
            "G78 aud another server",
            with(claims(), "aud", json!("https://x.example")),
            "audience",
        ),
        (
            "G78 aud [lanyard, other]",
            with(claims(), "aud", json!([AS, "https://x.example"])),
            "audience",
        ),
        (
            "G78 aud the token endpoint",
            with(claims(), "aud", json!(format!("{AS}/token"))),
            "audience",
        ),
        (
            "G79 aud with a trailing slash",
            with(claims(), "aud", json!(format!("{AS}/"))),
            "audience",
        ),
        (
            "G79 aud in other letter case",
            with(claims(), "aud", json!("https://AS.example")),
            "audience",
        ),
        (
            "G79 aud percent-encoded",
            with(claims(), "aud", json!("https://as%2Eexample")),
            "audience",
        ),
        (
            "G80 client_id missing",
            with(claims(), "client_id", Value::Null),
            "client_mismatch",
        ),
        (
            "G80 client_id another agent",
            with(claims(), "client_id", json!("other-bot")),
            "client_mismatch",
        ),
        (
            "G81 exp missing",
            with(claims(), "exp", Value::Null),
            "time",
        ),
        (
            "G81 exp past beyond leeway",
            with(
                with(claims(), "iat", json!(NOW - 200)),
                "exp",
                json!(NOW - 61),
            ),
            "time",
        ),
        (
            "G81 exp past within leeway",
            with(
                with(claims(), "iat", json!(NOW - 200)),
                "exp",
                json!(NOW - 30),
            ),
            "ok",
        ),
        (
            "G82 iat missing",
            with(claims(), "iat", Value::Null),
            "time",
        ),
        (
            "G82 iat in the future",
            with(claims(), "iat", json!(NOW + 61)),
            "time",
        ),
        (
            "G82 nbf in the future",
            with(claims(), "nbf", json!(NOW + 61)),
            "time",
        ),
        (
            "G83 lifetime over 600 s",
            with(claims(), "exp", json!(NOW + 601)),
            "time",
        ),
        ("G84 jti missing", with(claims(), "jti", Value::Null), "jti"),
        ("G84 jti empty", with(claims(), "jti", json!("")), "jti"),
        (
            "G84 jti over 256 characters",
            with(claims(), "jti", json!(long_jti)),
            "jti",
        ),
        (
            "G84 jti not a string",
            with(claims(), "jti", json!(7)),
            "jti",
        ),
        (
            "G86 sub missing",
            with(claims(), "sub", Value::Null),
            "subject",
        ),
        ("G86 sub empty", with(claims(), "sub", json!("")), "subject"),
        (
            "G86 sub not a string",
            with(claims(), "sub", json!(42)),
            "subject",
        ),
        (
            "G87 resource served by another AS",
            with(claims(), "resource", json!(OTHER)),
            "denied",
        ),
        (
            "G87 resource unknown",
            with(claims(), "resource", json!("https://nope.example/")),
            "denied",
        ),
        (
            "G87 one of two resources not served",
            with(claims(), "resource", json!([GH, OTHER])),
            "denied",
        ),
    ];
    let p = policy();
    for (line, c, want) in rows {
        let got = check_claims(&parsed(&c), &p, expect(), NOW);
        assert_eq!(kind(&got), want, "{line}: {got:?}");
    }
}

/// Checklist G81: an `exp` that is not a number never becomes claims at all.
#[test]
fn non_numeric_exp_is_malformed() {
    let c = with(claims(), "exp", json!("tomorrow"));
    assert!(serde_json::from_value::<IdJagIn>(c).is_err());
}

#[test]
fn checked_claims_name_the_human_and_the_replay_key() {
    let got = check_claims(&parsed(&claims()), &policy(), expect(), NOW).expect("valid");
    assert_eq!(
        got,
        Checked {
            sub: "alice".into(),
            jti: "j-1".into(),
            exp: NOW + 120
        }
    );
}

/// One request at leg 2: claims, request parameters, proof, own IdP role or not.
struct Case {
    claims: Value,
    resource: Option<&'static str>,
    scope: Option<Vec<&'static str>>,
    details: Option<Vec<ActionDetail>>,
    proof_jkt: Option<&'static str>,
    own_idp: bool,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            claims: claims(),
            resource: None,
            scope: None,
            details: None,
            proof_jkt: None,
            own_idp: false,
        }
    }
}

fn run(c: Case) -> Result<Plan, Rejection> {
    let p = policy();
    let agent = p.agent("bot").expect("agent");
    let claims = parsed(&c.claims);
    let params = Params {
        assertion: "",
        resource: c.resource,
        scope: c.scope,
        details: c.details,
    };
    let resource = pick_resource(&p, AS, params.resource, &claims)?;
    let i = Inputs {
        agent,
        claims: &claims,
        own_idp: c.own_idp,
        params: &params,
        proof_jkt: c.proof_jkt,
        runtime: &[],
        issuer_max_ttl: Duration::from_secs(300),
    };
    plan(&p, resource, &i, NOW)
}

fn detail(actions: &[&str]) -> Vec<ActionDetail> {
    vec![ActionDetail {
        kind: urn::AUTHORIZATION_DETAILS_LANYARD_ACTION.into(),
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
        locations: Vec::new(),
    }]
}

fn actions(r: &Result<Plan, Rejection>) -> Result<Vec<String>, &'static str> {
    r.as_ref()
        .map(|p| p.decision.actions.clone())
        .map_err(Rejection::kind)
}

/// The actions a row expects, or the kind of refusal.
type Granted = Result<Vec<&'static str>, &'static str>;

/// Checklist F60, F63, G88–G90 and the `never` list: what the plan grants.
#[test]
fn plan_grants_the_intersection_table() {
    let rows: Vec<(&str, Case, Granted)> = vec![
        (
            "F60 the ID-JAG's actions the policy allows",
            Case::default(),
            Ok(vec!["repo.read", "issue.comment"]),
        ),
        (
            "F63 a scope subset: requested ∩ ID-JAG ∩ policy",
            Case {
                scope: Some(vec!["repo.read"]),
                ..Case::default()
            },
            Ok(vec!["repo.read"]),
        ),
        (
            "G88 a resource parameter outside the ID-JAG's",
            Case {
                resource: Some(SC),
                ..Case::default()
            },
            Err("target"),
        ),
        (
            "G88 the resource parameter the ID-JAG names",
            Case {
                resource: Some(GH),
                ..Case::default()
            },
            Ok(vec!["repo.read", "issue.comment"]),
        ),
        (
            "G89 a scope absent from the ID-JAG",
            Case {
                scope: Some(vec!["repo.read", "pull_request.create"]),
                ..Case::default()
            },
            Err("scope"),
        ),
        (
            "G90 requested details beyond the ID-JAG",
            Case {
                details: Some(detail(&["pull_request.create"])),
                ..Case::default()
            },
            Err("authorization_details"),
        ),
        (
            "G90 an authorization_details claim that is not an array",
            Case {
                claims: with(
                    claims(),
                    "authorization_details",
                    json!({"type": "lanyard_action"}),
                ),
                ..Case::default()
            },
            Err("malformed"),
        ),
        (
            "G90 a details element without type",
            Case {
                claims: with(
                    claims(),
                    "authorization_details",
                    json!([{"actions": ["repo.read"]}]),
                ),
                ..Case::default()
            },
            Err("malformed"),
        ),
        (
            "never list: an action the ID-JAG carries and the grant names, but the agent must never hold",
            Case {
                claims: with(claims(), "scope", json!("repo.read pull_request.merge")),
                ..Case::default()
            },
            Ok(vec!["repo.read"]),
        ),
        (
            "an ID-JAG naming no actions: this server's policy bounds the grant",
            Case {
                claims: with(claims(), "scope", Value::Null),
                ..Case::default()
            },
            Ok(vec!["repo.read", "issue.comment"]),
        ),
        (
            "an ID-JAG naming no resource: the request must",
            Case {
                claims: with(claims(), "resource", Value::Null),
                ..Case::default()
            },
            Err("target"),
        ),
    ];
    for (line, case, want) in rows {
        let got = run(case);
        let want = want.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(actions(&got), want, "{line}: {got:?}");
    }
}

/// Checklist H94–H97 and issue 24 #4: key binding.
#[test]
fn plan_binding_table() {
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let bound = |cnf: Value| with(claims(), "cnf", cnf);
    let rows: Vec<(&str, Case, Result<bool, &str>)> = vec![
        (
            "H94 cnf.jkt and no proof",
            Case {
                claims: bound(json!({"jkt": jkt})),
                ..Case::default()
            },
            Err("denied"),
        ),
        (
            "H95 cnf.jkt and a proof with another key",
            Case {
                claims: bound(json!({"jkt": jkt})),
                proof_jkt: Some("other"),
                ..Case::default()
            },
            Err("denied"),
        ),
        (
            "H96 cnf.jkt and the matching proof",
            Case {
                claims: bound(json!({"jkt": jkt})),
                proof_jkt: Some(jkt),
                ..Case::default()
            },
            Ok(true),
        ),
        (
            "H97 no cnf, a proof: bound",
            Case {
                proof_jkt: Some(jkt),
                ..Case::default()
            },
            Ok(true),
        ),
        ("H97 no cnf, no proof: Bearer", Case::default(), Ok(false)),
        (
            "H97 a sender-constrained resource without a proof",
            Case {
                claims: with(with(claims(), "resource", json!(SC)), "scope", json!("pay")),
                ..Case::default()
            },
            Err("denied"),
        ),
        (
            "cnf by a method lanyard does not enforce (jwk)",
            Case {
                claims: bound(json!({"jwk": {"kty": "EC"}})),
                proof_jkt: Some(jkt),
                ..Case::default()
            },
            Err("denied"),
        ),
        (
            "cnf with jkt and another member",
            Case {
                claims: bound(json!({"jkt": jkt, "kid": "k"})),
                proof_jkt: Some(jkt),
                ..Case::default()
            },
            Err("denied"),
        ),
        (
            "cnf mTLS-bound (x5t#S256)",
            Case {
                claims: bound(json!({"x5t#S256": "abc"})),
                proof_jkt: Some(jkt),
                ..Case::default()
            },
            Err("denied"),
        ),
        (
            "an empty cnf",
            Case {
                claims: bound(json!({})),
                ..Case::default()
            },
            Err("denied"),
        ),
    ];
    for (line, case, want) in rows {
        let got = run(case);
        assert_eq!(
            got.as_ref().map(|p| p.bound).map_err(Rejection::kind),
            want,
            "{line}: {got:?}"
        );
    }
}

/// Checklist F64: the agent is the outer actor; an earlier actor of the ID-JAG nests inside,
/// and an ID-JAG whose `act` is the agent itself adds none.
#[test]
fn plan_nests_the_prior_actor() {
    let c = with(claims(), "act", json!({"sub": "upstream-agent"}));
    let p = run(Case {
        claims: c,
        ..Case::default()
    })
    .expect("plan");
    assert_eq!(p.actor.sub, "bot");
    assert_eq!(
        p.actor.act.as_ref().map(|a| a.sub.as_str()),
        Some("upstream-agent")
    );
    let c = with(claims(), "act", json!({"sub": "bot"}));
    let p = run(Case {
        claims: c,
        ..Case::default()
    })
    .expect("plan");
    assert!(p.actor.act.is_none());
}

/// F60: the lifetime is the least of the issuer's, the agent's and the resource's maximum.
#[test]
fn plan_ttl_is_the_least_maximum() {
    let p = run(Case::default()).expect("plan");
    assert_eq!(
        p.ttl, 300,
        "issuer 300 s < resource default 5 min < agent 10 min"
    );
}

/// Issue 24 #3: an approval-gated action passes only with an approval from lanyard's own
/// IdP role; a partner's `approval` claim does not count.
#[test]
fn plan_honours_only_own_approvals() {
    let gated = || {
        let c = with(claims(), "channel", json!("eng"));
        let c = with(c, "scope", json!("pull_request.create"));
        with(
            c,
            "approval",
            json!({"id": "a1", "approver": "carol", "actions": ["pull_request.create"]}),
        )
    };
    let foreign = run(Case {
        claims: gated(),
        ..Case::default()
    });
    assert_eq!(actions(&foreign), Err("denied"), "{foreign:?}");
    let own = run(Case {
        claims: gated(),
        own_idp: true,
        ..Case::default()
    });
    assert_eq!(
        actions(&own),
        Ok(vec!["pull_request.create".to_owned()]),
        "{own:?}"
    );
    assert_eq!(
        own.expect("plan").approved,
        vec!["pull_request.create".to_owned()]
    );
}
