//! Policy loading: a full valid file, and refusals located by file, line, column and field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use super::*;

/// A public EC key (no `d`): what a JWKS file in a policy may hold.
const PUBLIC_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

/// The same key with its private part: must be refused.
const PRIVATE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
  "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}"#;

/// A directory holding the JWKS files the example policies name.
fn keys_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("idp")).unwrap();
    std::fs::create_dir_all(dir.path().join("agents")).unwrap();
    std::fs::write(dir.path().join("idp/okta.jwks.json"), PUBLIC_JWKS).unwrap();
    std::fs::write(dir.path().join("agents/triage-bot.jwks.json"), PUBLIC_JWKS).unwrap();
    std::fs::write(dir.path().join("agents/leaky.jwks.json"), PRIVATE_JWKS).unwrap();
    std::fs::write(dir.path().join("agents/array.jwks.json"), "[1, 2]").unwrap();
    std::fs::write(dir.path().join("agents/empty.jwks.json"), r#"{"keys": []}"#).unwrap();
    std::fs::write(dir.path().join("agents/broken.jwks.json"), "{\"keys\": [").unwrap();
    dir
}

const VALID: &str = r#"# Every feature of the schema, used once.
version = 1

[[idp]]
id = "okta"
issuer = "https://acme.okta.com"
jwks_file = "idp/okta.jwks.json"
algorithms = ["RS256", "ES256"]
max_age = "1h"

[[idp]]
id = "dev"
issuer = "http://127.0.0.1:8080"
algorithms = ["EdDSA", "Ed25519"]
groups_claim = "roles"
subject_claim = "email"

[[trusted_issuer]]
issuer = "https://acme.okta.com"     # the same issuer as an idp is fine
algorithms = ["ES256"]

[[trusted_issuer]]
issuer = "http://idp.partner.test"
jwks_file = "idp/okta.jwks.json"
algorithms = ["PS256"]
allow_jti_reuse = true
allow_insecure_http = true

[[resource]]
uri = "https://mcp.github.acme.example/"
authorization_server = "https://as.acme.example"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[resource]]
uri = "repo:acme/api"
authorization_server = "https://as2.acme.example"
actions = ["github:deploy"]
max_ttl = "1h"
sender_constrained = true

[[agent]]
id = "triage-bot"
owner = "alice@acme.example"
credential = { jwks_file = "agents/triage-bot.jwks.json" }
idp_client_ids = { okta = "0oa1triage" }
as_client_ids = { "https://as.acme.example" = "triage-at-github" }
never = ["pull_request.merge", "github:deploy"]
max_ttl = "2m"
grants = [{ resource = "https://mcp.github.acme.example/", actions = ["repo.read"] }]

[[agent]]
id = "inline-bot"
owner = "bob@acme.example"
enabled = false
credential = { jwks = '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}' }
accept_token_endpoint_aud = true
dpop_bound_access_tokens = true

[[agent]]
id = "legacy-bot"
owner = "carol@acme.example"
credential = { client_secret_sha256 = "CC000E626BA67BED4834794D42288B228F012823877440D2BC5A3787CC6FFCE9" }

[[agent]]
id = "deploy-bot"
owner = "dave@acme.example"
credential = { workload = { issuer = "https://k8s.example", subject = "system:serviceaccount:ci:deploy" } }

[[channel]]
id = "slack:T01/C-eng-api"
members_group = "eng"

[[channel.grant]]
agent = "triage-bot"
resource = "https://mcp.github.acme.example/"
actions = ["repo.read", "issue.comment", "pull_request.create"]
approval = { actions = ["pull_request.create"], approvers = ["group:eng-leads", "user:bob@acme.example"] }
expires = "2027-01-31"

[[channel.grant]]
agent = "deploy-bot"
resource = "repo:acme/api"
actions = ["github:deploy"]
expires = 2027-01-31T12:00:00+02:00

[[channel]]
id = "slack:T01/C-random"

[[entitlement]]
group = "eng"
resource = "https://mcp.github.acme.example/"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[entitlement]]
user = "dave@acme.example"
resource = "repo:acme/api"
actions = ["github:deploy"]
"#;

fn parse_in(dir: &Path, text: &str) -> Result<Policy, PolicyErrors> {
    parse("policy.toml", text, dir)
}

/// `(line, column, field)` of each error, and its message.
fn located(errors: &PolicyErrors) -> Vec<(usize, usize, &str, &str)> {
    errors
        .iter()
        .map(|e| (e.line, e.column, e.field.as_str(), e.message.as_str()))
        .collect()
}

#[test]
fn full_example_parses_with_defaults_and_lookups() {
    let dir = keys_dir();
    let policy = match parse_in(dir.path(), VALID) {
        Ok(p) => p,
        Err(e) => panic!("valid policy refused:\n{e}"),
    };

    let okta = policy.idp_by_issuer("https://acme.okta.com").unwrap();
    assert_eq!(okta.id, "okta");
    assert_eq!(okta.algorithms, vec![Algorithm::Rs256, Algorithm::Es256]);
    assert_eq!(okta.groups_claim, "groups");
    assert_eq!(okta.subject_claim, "sub");
    assert_eq!(okta.max_age, Some(Duration::from_secs(3600)));
    let jwks = okta.jwks.as_ref().unwrap();
    assert_eq!(
        jwks.path.as_deref(),
        Some(dir.path().join("idp/okta.jwks.json").as_path())
    );
    assert_eq!(jwks.jwks["keys"][0]["kid"], "k1");
    let dev = policy.idp("dev").unwrap();
    assert!(dev.jwks.is_none(), "no jwks_file means discovery");
    assert_eq!(
        (dev.groups_claim.as_str(), dev.subject_claim.as_str()),
        ("roles", "email")
    );
    // Issuers are matched exactly as written: no URL normalisation (no added slash).
    assert!(policy.idp_by_issuer("https://acme.okta.com/").is_none());

    let same = policy.trusted_issuer("https://acme.okta.com").unwrap();
    assert!(!same.allow_jti_reuse && same.jwks.is_none());
    let partner = policy.trusted_issuer("http://idp.partner.test").unwrap();
    assert!(partner.allow_jti_reuse && partner.allow_insecure_http);
    assert_eq!(partner.algorithms, vec![Algorithm::Ps256]);

    let github = policy.resource("https://mcp.github.acme.example/").unwrap();
    assert_eq!(github.max_ttl, Duration::from_secs(300));
    assert!(!github.sender_constrained);
    assert!(github.defines("pull_request.merge") && !github.defines("github:deploy"));
    let repo = policy.resource("repo:acme/api").unwrap();
    assert_eq!(repo.max_ttl, Duration::from_secs(3600));
    assert!(repo.sender_constrained);

    let triage = policy.agent("triage-bot").unwrap();
    assert!(triage.enabled);
    assert!(matches!(&triage.credential, Credential::Jwks(j) if j.path.is_some()));
    assert_eq!(triage.idp_client_id("okta"), Some("0oa1triage"));
    assert_eq!(
        triage.client_id_at("https://as.acme.example"),
        "triage-at-github"
    );
    assert_eq!(
        triage.client_id_at("https://as2.acme.example"),
        "triage-bot"
    );
    assert!(triage.is_never("pull_request.merge"));
    assert_eq!(triage.max_ttl, Duration::from_secs(120));
    assert_eq!(triage.grants.len(), 1);

    let inline = policy.agent("inline-bot").unwrap();
    assert!(!inline.enabled && inline.accept_token_endpoint_aud && inline.dpop_bound_access_tokens);
    assert!(matches!(&inline.credential, Credential::Jwks(j) if j.path.is_none()));
    assert_eq!(inline.max_ttl, Duration::from_secs(600));

    let legacy = policy.agent("legacy-bot").unwrap();
    let Credential::ClientSecretSha256(hash) = legacy.credential else {
        panic!("expected a secret hash, got {:?}", legacy.credential);
    };
    assert_eq!(hash[..4], [0xcc, 0x00, 0x0e, 0x62]);
    assert_eq!(format!("{:?}", legacy.credential), "ClientSecretSha256(..)");

    let deploy = policy.agent("deploy-bot").unwrap();
    assert_eq!(
        deploy.credential,
        Credential::Workload {
            issuer: "https://k8s.example".into(),
            subject: "system:serviceaccount:ci:deploy".into(),
        }
    );

    let eng = policy.channel("slack:T01/C-eng-api").unwrap();
    assert_eq!(eng.members_group.as_deref(), Some("eng"));
    let grant = eng.grants_for("triage-bot").next().unwrap();
    assert!(grant.needs_approval("pull_request.create") && !grant.needs_approval("repo.read"));
    assert_eq!(
        grant.approval.as_ref().unwrap().approvers,
        vec![
            HumanMatch::Group("eng-leads".into()),
            HumanMatch::User("bob@acme.example".into())
        ]
    );
    // 2027-01-31T00:00:00Z
    assert_eq!(grant.expires, Some(1_801_353_600));
    assert!(!grant.is_expired_at(1_801_353_599) && grant.is_expired_at(1_801_353_600));
    // A bare TOML date-time works too: 12:00 at +02:00 is 10:00Z.
    let deploy_grant = eng.grants_for("deploy-bot").next().unwrap();
    assert_eq!(deploy_grant.expires, Some(1_801_353_600 + 10 * 3600));
    assert!(
        policy
            .channel("slack:T01/C-random")
            .unwrap()
            .grants
            .is_empty()
    );

    assert_eq!(policy.entitlements().len(), 2);
    assert_eq!(
        policy.entitlements()[1].who,
        HumanMatch::User("dave@acme.example".into())
    );
    assert_eq!(policy.agents().len(), 4);
    assert_eq!(policy.source(), "policy.toml");
    assert!(policy.agent("nobody").is_none() && policy.channel("nowhere").is_none());
}

#[test]
fn fingerprint_is_sha256_of_the_file_bytes() {
    let dir = keys_dir();
    let policy = parse_in(dir.path(), VALID).unwrap();
    assert_eq!(policy.fingerprint().len(), 64);
    assert_eq!(policy.fingerprint(), sha256_hex(VALID.as_bytes()));
    // FIPS 180-2 test vector.
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let edited = VALID.replace("max_ttl = \"2m\"", "max_ttl = \"3m\"");
    assert_ne!(
        parse_in(dir.path(), &edited).unwrap().fingerprint(),
        policy.fingerprint()
    );
}

#[test]
fn load_reads_the_file_and_resolves_paths_next_to_it() {
    let dir = keys_dir();
    let path = dir.path().join("lanyard-policy.toml");
    std::fs::write(&path, VALID).unwrap();
    let policy = load(&path).unwrap();
    assert_eq!(policy.source(), path.display().to_string());
    assert_eq!(policy.fingerprint(), sha256_hex(VALID.as_bytes()));

    let missing = dir.path().join("absent.toml");
    let errors = load(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors.errors()[0].message.starts_with("cannot read:"),
        "{errors}"
    );
    assert!(
        errors
            .to_string()
            .starts_with(&format!("{}:1:1: cannot read:", missing.display()))
    );
}

/// One file, many different mistakes: every one is reported, at its own line and field.
#[test]
fn reports_every_mistake_with_line_and_field() {
    let dir = keys_dir();
    let text = r#"version = 1
colour = "blue"

[[idp]]
id = "okta"
issuer = "http://acme.okta.com"
algorithms = ["RS256", "HS256", "none", "XX1"]
max_age = "soon"

[[idp]]
id = "okta"
issuer = "https://other.okta.com/?tenant=1"
algorithms = []

[[resource]]
uri = "https://mcp.github.acme.example/"
authorization_server = "https://as.acme.example"
actions = ["repo.read", "issue.comment", "pull_request.create", "repo.read"]
max_ttl = "2h"

[[resource]]
uri = "https://mcp.github.acme.example/"
authorization_server = "https://as.acme.example#frag"
actions = ["bad action"]

[[agent]]
id = "triage-bot"
owner = ""
credential = { jwks_file = "agents/triage-bot.jwks.json", client_secret_sha256 = "00" }
idp_client_ids = { okta = "0oa1", azure = "x" }
as_client_ids = { "https://nowhere.example" = "t" }
never = ["pull_request.create", "repo.delete"]
max_ttl = "10s"

[[agent]]
id = "triage-bot"
owner = "bob@acme.example"
credential = { jwks_file = "agents/missing.jwks.json" }
grants = [{ resource = "https://mcp.github.acme.example", actions = ["repo.read"] }]

[[agent]]
id = "hashy"
owner = "carol@acme.example"
credential = { client_secret_sha256 = "zz000e626ba67bed4834794d42288b228f012823877440d2bc5a3787cc6ffce9" }

[[agent]]
id = "leaky"
owner = "dave@acme.example"
credential = { jwks_file = "agents/leaky.jwks.json" }

[[agent]]
id = "typo"
owner = "erin@acme.example"
credentials = { jwks_file = "agents/triage-bot.jwks.json" }

[[agent]]
id = "wrong-type"
owner = "frank@acme.example"
enabled = "yes"
credential = { jwks_file = "agents/triage-bot.jwks.json" }

[[channel]]
id = "slack:T01/C-eng-api"

[[channel.grant]]
agent = "triage-bot"
resource = "https://mcp.github.acme.example/"
actions = ["repo.read", "issue.comment", "repo.write"]
approval = { actions = ["pull_request.create"], approvers = ["group:eng-leads", "bob"] }
expires = "2027-02-30"

[[channel.grant]]
agent = "ghost-bot"
resource = "https://mcp.github.acme.example/"
actions = ["repo.read"]

[[channel.grant]]
agent = "typo"
resource = "https://mcp.github.acme.example/"
actions = ["repo.read"]

[[entitlement]]
group = "eng"
user = "alice@acme.example"
resource = "https://mcp.github.acme.example/"
actions = ["repo.read"]

[[entitlement]]
group = "eng"
resource = "https://unknown.example/"
actions = ["repo.read"]
"#;
    let errors = parse_in(dir.path(), text).unwrap_err();
    let got = located(&errors);
    let expected: Vec<(usize, usize, &str, &str)> = vec![
        (2, 1, "colour", "unknown field `colour`"),
        (6, 10, "idp[0].issuer", "is not https"),
        (
            7,
            24,
            "idp[0].algorithms[1]",
            "`HS256` is a shared-secret (HMAC) algorithm",
        ),
        (7, 33, "idp[0].algorithms[2]", "`none` is never accepted"),
        (7, 41, "idp[0].algorithms[3]", "unknown algorithm `XX1`"),
        (8, 11, "idp[0].max_age", "`soon` is not a duration"),
        (
            11,
            6,
            "idp[1].id",
            "duplicate idp id `okta` (first on line 5)",
        ),
        (12, 10, "idp[1].issuer", "has a query"),
        (
            13,
            14,
            "idp[1].algorithms",
            "must name at least one algorithm",
        ),
        (
            18,
            65,
            "resource[0].actions[3]",
            "duplicate action `repo.read`",
        ),
        (19, 11, "resource[0].max_ttl", "must be between 30s and 1h"),
        (22, 7, "resource[1].uri", "duplicate resource uri"),
        (23, 24, "resource[1].authorization_server", "has a fragment"),
        (
            24,
            12,
            "resource[1].actions[0]",
            "`bad action` is not an action name",
        ),
        (28, 9, "agent[0].owner", "must not be empty"),
        (
            29,
            14,
            "agent[0].credential",
            "has several of `jwks_file`, `client_secret_sha256`",
        ),
        (
            30,
            35,
            "agent[0].idp_client_ids.azure",
            "unknown idp `azure`",
        ),
        (
            31,
            19,
            "agent[0].as_client_ids.\"https://nowhere.example\"",
            "not the authorization_server",
        ),
        (
            32,
            33,
            "agent[0].never[1]",
            "action `repo.delete` is not defined by any resource",
        ),
        (33, 11, "agent[0].max_ttl", "must be between 30s and 1h"),
        (
            36,
            6,
            "agent[1].id",
            "duplicate agent id `triage-bot` (first on line 27)",
        ),
        (
            38,
            28,
            "agent[1].credential.jwks_file",
            "cannot read JWKS file",
        ),
        (
            39,
            24,
            "agent[1].grants[0].resource",
            "unknown resource `https://mcp.github.acme.example`",
        ),
        (
            44,
            39,
            "agent[2].credential.client_secret_sha256",
            "64 hex digits",
        ),
        (
            49,
            28,
            "agent[3].credential.jwks_file",
            "carries private member `d`",
        ),
        (54, 1, "agent[4].credentials", "unknown field `credentials`"),
        (
            59,
            11,
            "agent[5].enabled",
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            68,
            42,
            "channel[0].grant[0].actions[2]",
            "action `repo.write` is not defined by resource",
        ),
        (
            69,
            25,
            "channel[0].grant[0].approval.actions[0]",
            "not one of this grant's actions",
        ),
        (
            69,
            81,
            "channel[0].grant[0].approval.approvers[1]",
            "`bob` is not \"group:<group>\"",
        ),
        (
            70,
            11,
            "channel[0].grant[0].expires",
            "`2027-02-30` is not an RFC 3339 date",
        ),
        (
            73,
            9,
            "channel[0].grant[1].agent",
            "unknown agent `ghost-bot`",
        ),
        (
            84,
            8,
            "entitlement[0].user",
            "exactly one of `group` or `user`, not both",
        ),
        (
            90,
            12,
            "entitlement[1].resource",
            "unknown resource `https://unknown.example/`",
        ),
    ];
    let shown = errors.to_string();
    assert_eq!(got.len(), expected.len(), "errors:\n{shown}");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((g.0, g.1, g.2), (e.0, e.1, e.2), "errors:\n{shown}");
        assert!(
            g.3.contains(e.3),
            "{:?} should contain {:?}; errors:\n{shown}",
            g.3,
            e.3
        );
    }
    // Display: one `file:line:col: field: message` per error.
    assert_eq!(shown.lines().count(), expected.len());
    assert!(
        shown.starts_with("policy.toml:2:1: colour: unknown field `colour`"),
        "{shown}"
    );
}

#[test]
fn syntax_error_gives_its_line() {
    let text = "version = 1\n\n[[agent]]\nid = \"a\"\nowner = alice\n";
    let errors = parse_in(Path::new("."), text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.errors()[0];
    assert_eq!((e.line, e.column, e.field.as_str()), (5, 9, ""));
    assert!(e.message.contains("string values must be quoted"), "{e}");
    assert!(
        e.to_string().starts_with("policy.toml:5:9: string values"),
        "{e}"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error_with_its_line() {
    let text = "version = 1\n[[agent]]\nid = \"a\"\nid = \"b\"\n";
    let errors = parse_in(Path::new("."), text).unwrap_err();
    assert_eq!(located(&errors), vec![(4, 1, "", "duplicate key")]);
}

#[test]
fn unknown_field_is_rejected_with_its_line() {
    let text = r#"version = 1

[[resource]]
uri = "https://api.example/"
authorization_server = "https://as.example"
actions = ["read"]
max_tll = "5m"
"#;
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let got = located(&errors);
    assert_eq!(got.len(), 1, "{errors}");
    assert_eq!(
        (got[0].0, got[0].1, got[0].2),
        (7, 1, "resource[0].max_tll")
    );
    assert!(
        got[0]
            .3
            .starts_with("unknown field `max_tll`, expected one of"),
        "{errors}"
    );
}

#[test]
fn unknown_field_in_nested_table_is_located() {
    let text = r#"version = 1
[[channel]]
id = "c"
[[channel.grant]]
agent = "a"
resource = "r"
actions = ["x"]
[[channel.grant]]
agent = "a"
resource = "r"
actions = ["x"]
approval = { actions = ["x"], approvers = ["user:u"], quorum = 2 }
"#;
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let got = located(&errors);
    assert_eq!(got.len(), 1, "{errors}");
    assert_eq!(
        (got[0].0, got[0].2),
        (12, "channel[0].grant[1].approval.quorum"),
        "{errors}"
    );
}

#[test]
fn missing_required_field_points_at_its_table() {
    let text = "version = 1\n\n[[idp]]\nid = \"okta\"\nissuer = \"https://acme.okta.com\"\n";
    let errors = parse_in(Path::new("."), text).unwrap_err();
    assert_eq!(
        located(&errors),
        vec![(3, 1, "idp[0]", "missing field `algorithms`")]
    );
}

#[test]
fn version_2_is_rejected_naming_the_supported_one() {
    // Only the version is reported: the rest follows another schema.
    let text = "version = 2\n\n[[robot]]\nname = \"r2\"\n";
    let errors = parse_in(Path::new("."), text).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "policy.toml:1:11: version: unsupported policy version 2: this lanyard supports version 1"
    );
}

#[test]
fn version_is_required_and_must_be_an_integer() {
    let errors = parse_in(Path::new("."), "[[idp]]\nfoo = 1\n").unwrap_err();
    let got = located(&errors);
    assert_eq!((got[0].0, got[0].1, got[0].2), (1, 1, "version"));
    assert!(got[0].3.contains("missing `version = 1`"));
    assert_eq!(
        (got[1].0, got[1].2),
        (2, "idp[0].foo"),
        "the rest is still checked"
    );

    let errors = parse_in(Path::new("."), "version = \"1\"\n").unwrap_err();
    assert_eq!(
        located(&errors),
        vec![(
            1,
            11,
            "version",
            "must be the integer 1 (the supported policy version)"
        )]
    );
}

#[test]
fn sections_must_be_arrays_of_tables() {
    let text = "version = 1\n[agent]\nid = \"a\"\n";
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let got = located(&errors);
    assert_eq!((got[0].0, got[0].2), (2, "agent"), "{errors}");
    assert!(got[0].3.contains("`[[agent]]`"));
}

#[test]
fn jwks_must_hold_public_keys_in_a_keys_array() {
    let dir = keys_dir();
    let agent = |cred: &str| {
        format!("version = 1\n[[agent]]\nid = \"a\"\nowner = \"o\"\ncredential = {{ {cred} }}\n")
    };
    let cases = [
        (
            r#"jwks_file = "agents/array.jwks.json""#,
            "must be a JSON object",
        ),
        (r#"jwks_file = "agents/empty.jwks.json""#, "`keys` is empty"),
        (
            r#"jwks_file = "agents/broken.jwks.json""#,
            "is not valid JSON",
        ),
        (
            r#"jwks_file = "agents/leaky.jwks.json""#,
            "key 0 (kid `k1`) carries private member `d`",
        ),
        (
            r#"jwks = '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}'"#,
            "carries private member `k`",
        ),
        (
            r#"jwks = '{"keys":[{"kty":"RSA","n":"x","e":"AQAB","p":"1","q":"2"}]}'"#,
            "`p`, `q`",
        ),
        (r#"jwks = '{"keys":[{"n":"x"}]}'"#, "has no string `kty`"),
        (r#"jwks = '{"kys":[]}'"#, "must have a `keys` array"),
        (r#"jwks = 'not json'"#, "inline JWKS is not valid JSON"),
    ];
    for (cred, needle) in cases {
        let errors = parse_in(dir.path(), &agent(cred)).unwrap_err();
        assert_eq!(errors.len(), 1, "{cred}: {errors}");
        let e = &errors.errors()[0];
        assert_eq!(e.line, 5, "{cred}: {errors}");
        assert!(
            e.field.starts_with("agent[0].credential.jwks"),
            "{cred}: {errors}"
        );
        assert!(e.message.contains(needle), "{cred}: {errors}");
    }
}

#[test]
fn credential_needs_exactly_one_variant() {
    let text = "version = 1\n[[agent]]\nid = \"a\"\nowner = \"o\"\ncredential = {}\n";
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let got = located(&errors);
    assert_eq!(
        (got[0].0, got[0].1, got[0].2),
        (5, 14, "agent[0].credential")
    );
    assert!(got[0].3.contains("needs exactly one of"));
}

#[test]
fn issuers_must_be_unique_but_may_repeat_across_roles() {
    let text = r#"version = 1
[[trusted_issuer]]
issuer = "https://idp.partner.example"
algorithms = ["ES256"]
[[trusted_issuer]]
issuer = "https://idp.partner.example"
algorithms = ["ES384"]
[[idp]]
id = "a"
issuer = "https://idp.partner.example"
algorithms = ["RS256"]
[[idp]]
id = "b"
issuer = "https://idp.partner.example"
algorithms = ["RS256"]
"#;
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let got = located(&errors);
    assert_eq!(got.len(), 2, "{errors}");
    assert_eq!((got[0].0, got[0].2), (6, "trusted_issuer[1].issuer"));
    assert_eq!((got[1].0, got[1].2), (14, "idp[1].issuer"));
    assert!(
        got[1].3.contains("already declared by idp `a` (line 10)"),
        "{errors}"
    );
}

#[test]
fn loopback_http_is_allowed_without_the_insecure_flag() {
    for (issuer, ok) in [
        ("http://localhost:9000", true),
        ("http://127.0.0.1", true),
        ("http://[::1]:8443/tenant", true),
        ("http://10.0.0.1", false),
        ("ftp://idp.example", false),
        ("https://user:pw@idp.example", false),
        ("https://idp.example/#x", false),
        ("idp.example", false),
    ] {
        let text = format!(
            "version = 1\n[[idp]]\nid = \"i\"\nissuer = \"{issuer}\"\nalgorithms = [\"RS256\"]\n"
        );
        assert_eq!(parse_in(Path::new("."), &text).is_ok(), ok, "{issuer}");
    }
}

#[test]
fn a_broken_element_does_not_cascade_into_unknown_references() {
    // The agent and the resource have a type error each; the grant naming them must not add
    // "unknown agent" / "unknown resource" / "action not defined" errors.
    let text = r#"version = 1
[[resource]]
uri = "https://api.example/"
authorization_server = "https://as.example"
actions = ["read"]
sender_constrained = "yes"
[[agent]]
id = "bot"
owner = "o"
credential = { client_secret_sha256 = "cc000e626ba67bed4834794d42288b228f012823877440d2bc5a3787cc6ffce9" }
enabled = 1
never = ["read"]
[[channel]]
id = "c"
[[channel.grant]]
agent = "bot"
resource = "https://api.example/"
actions = ["read", "write"]
"#;
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "resource[0].sender_constrained",
            "agent[0].enabled",
            "channel[0].grant[0].actions[1]"
        ],
        "{errors}"
    );
}

#[test]
fn duplicate_grant_in_a_channel_is_refused() {
    let text = r#"version = 1
[[resource]]
uri = "https://api.example/"
authorization_server = "https://as.example"
actions = ["read"]
[[agent]]
id = "bot"
owner = "o"
credential = { workload = { issuer = "https://k8s.example", subject = "sa" } }
[[channel]]
id = "c"
[[channel.grant]]
agent = "bot"
resource = "https://api.example/"
actions = ["read"]
[[channel.grant]]
agent = "bot"
resource = "https://api.example/"
actions = ["read"]
"#;
    let errors = parse_in(Path::new("."), text).unwrap_err();
    let got = located(&errors);
    assert_eq!(got.len(), 1, "{errors}");
    assert_eq!((got[0].0, got[0].2), (17, "channel[0].grant[1].agent"));
    assert!(got[0].3.contains("first on line 13"), "{errors}");
}

/// The shipped example must stay valid: people copy it.
#[test]
fn example_policy_checks() {
    let text = include_str!("../../policy.example.toml");
    let p = super::parse("policy.example.toml", text, std::path::Path::new(".")).unwrap();
    assert_eq!(p.agents().len(), 2);
    assert!(
        p.trusted_issuer("https://acme.okta.com/oauth2/xaa")
            .is_some()
    );
}
