//! `lanyard serve --dev`, like `vault server -dev`: one command, nothing to prepare.
//!
//! Binds loopback only, makes throw-away keys and data in a temporary directory (deleted on
//! exit), serves both roles as separate trust domains, loads a demo policy (two agents, two
//! channels, two humans with different entitlements) and runs a built-in **dev IdP**: a real
//! OIDC issuer with discovery and JWKS that mints ID tokens for the demo humans on request.
//! The dev IdP is INSECURE by design (anyone on loopback can mint any demo user's token) and
//! exists only in dev mode. `GET /dev/bootstrap` hands the demo credentials to the
//! conformance runner and the walkthrough.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::Broker;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, IssuerSettings, Role, Settings, SigningAlg, StoreSettings};
use crate::crypto::{SigningKey, Typ, keyring, random_id, sign_jwt};
use crate::oauth::{FormLimits, OAuthError};

/// Path of the dev IdP under the server's origin.
pub const DEV_IDP_PATH: &str = "/dev-idp";

/// A demo human known to the dev IdP.
#[derive(Debug, Clone)]
pub struct DevHuman {
    /// Login name used with the mint endpoint.
    pub username: &'static str,
    /// Stable subject identifier.
    pub sub: &'static str,
    /// Email address.
    pub email: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Groups (the entitlement side of the intersection).
    pub groups: &'static [&'static str],
}

/// A demo agent and its throw-away credentials.
#[derive(Debug, Clone)]
pub struct DevAgent {
    /// Client id at lanyard.
    pub client_id: &'static str,
    /// Its client id at the dev IdP (the ID token's `aud`).
    pub idp_client_id: &'static str,
    /// Accountable human.
    pub owner: &'static str,
    /// `client_secret_basic`/`post` secret, if it uses one.
    pub secret: Option<String>,
    /// `private_key_jwt` private JWK, if it uses one.
    pub private_jwk: Option<Value>,
    /// Whether the policy enables it.
    pub enabled: bool,
    /// Its `max_ttl` in the demo policy, seconds.
    pub max_ttl_secs: u64,
    /// Whether the policy sets `dpop_bound_access_tokens` for it.
    pub dpop_bound_access_tokens: bool,
}

/// Dev-mode state held by the broker.
pub struct DevState {
    /// The dev IdP's issuer.
    pub idp_issuer: String,
    /// The server's origin (`http://127.0.0.1:PORT`).
    pub origin: String,
    idp_key: SigningKey,
    /// Demo humans.
    pub humans: Vec<DevHuman>,
    /// Demo agents.
    pub agents: Vec<DevAgent>,
    /// The dev test ID-JAG issuer (INSECURE: its private key is handed out by bootstrap).
    pub test_issuer: DevTestIssuer,
    _dir: tempfile::TempDir,
}

/// A second ID-JAG issuer trusted by the resource-AS role in dev mode only, whose private
/// key `/dev/bootstrap` hands out, so that the conformance runner can sign ID-JAGs with
/// altered claims as a trusted issuer (checklist F61, F62, G81–G93). INSECURE by design, like
/// the dev IdP. It allows `jti` reuse (checklist D2's per-issuer flag, G85).
#[derive(Debug, Clone)]
pub struct DevTestIssuer {
    /// Its issuer identifier (nothing is served there: its keys are a static JWKS file).
    pub issuer: String,
    /// Its ES256 private JWK (with `kid`).
    pub private_jwk: Value,
}

const HUMANS: &[DevHuman] = &[
    DevHuman {
        username: "alice",
        sub: "00u-alice",
        email: "alice@example.com",
        name: "Alice (engineering lead)",
        groups: &["eng", "eng-leads"],
    },
    DevHuman {
        username: "bob",
        sub: "00u-bob",
        email: "bob@example.com",
        name: "Bob (support)",
        groups: &["support"],
    },
];

/// The demo resources' identifiers (RFC 8707).
pub const GITHUB: &str = "https://mcp.github.example/";
/// The demo ticket system.
pub const TICKETS: &str = "https://tickets.example/";
/// A demo resource whose access tokens must be DPoP-bound (`sender_constrained`).
pub const SECRETS: &str = "https://mcp.secrets.example/";
/// The channel granting triage-bot access to [`SECRETS`].
pub const CH_SECRETS: &str = "slack:T01/C-secrets";
/// Path of the dev test ID-JAG issuer under the server's origin (see [`DevTestIssuer`]).
pub const DEV_TEST_ISSUER_PATH: &str = "/dev-test-issuer";
/// File (next to the policy) holding the dev test issuer's public JWKS.
const DEV_TEST_ISSUER_JWKS: &str = "dev-test-issuer.jwks.json";

/// Demo entities that exist for the conformance suite (checklist G85, H97, H104): a second
/// trusted ID-JAG issuer allowing `jti` reuse, a resource requiring sender-constrained tokens
/// (and a channel and entitlement reaching it), and an agent whose tokens must be DPoP-bound.
fn conformance_policy(test_issuer: &str, as_role: &str, dpop_secret_sha: &str) -> String {
    format!(
        r#"
# --- Conformance fixtures (dev mode only) -------------------------------------------------
# A second trusted ID-JAG issuer whose PRIVATE key /dev/bootstrap hands out (INSECURE by
# design, like the dev IdP): the conformance runner signs ID-JAGs with altered claims as a
# trusted issuer. Reuse of its ID-JAGs is allowed (checklist D2's per-issuer flag).
[[trusted_issuer]]
issuer = "{test_issuer}"
jwks_file = "{DEV_TEST_ISSUER_JWKS}"
algorithms = ["ES256"]
allow_jti_reuse = true

# Access tokens for this resource must be DPoP-bound.
[[resource]]
uri = "{SECRETS}"
authorization_server = "{as_role}"
actions = ["secret.read"]
max_ttl = "5m"
sender_constrained = true

[[channel]]
id = "{CH_SECRETS}"
members_group = "eng"
[[channel.grant]]
agent = "triage-bot"
resource = "{SECRETS}"
actions = ["secret.read"]

[[entitlement]]
group = "eng"
resource = "{SECRETS}"
actions = ["secret.read"]

# Its access tokens must be DPoP-bound (RFC 9449 §5.2 dpop_bound_access_tokens).
[[agent]]
id = "dpop-bot"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{dpop_secret_sha}" }}
idp_client_ids = {{ dev-idp = "dpop-bot-sso" }}
dpop_bound_access_tokens = true
max_ttl = "5m"
grants = [{{ resource = "{GITHUB}", actions = ["repo.read"] }}]
"#
    )
}

fn demo_policy(
    dev_idp: &str,
    idp_role: &str,
    as_role: &str,
    triage_secret_sha: &str,
    deploy_jwks: &str,
    retired_secret_sha: &str,
) -> String {
    format!(
        r#"# lanyard DEMO policy, generated by `lanyard serve --dev`. Not for production.
version = 1

# The built-in dev IdP (INSECURE, dev mode only). Its keys are found by OIDC discovery.
[[idp]]
id = "dev-idp"
issuer = "{dev_idp}"
algorithms = ["RS256"]
groups_claim = "groups"
subject_claim = "sub"
max_age = "1h"

# Dev mode only: the resource-AS role trusts lanyard's own IdP role, named here explicitly
# as a separate trust domain (its own issuer and keys). Production trusts other issuers.
[[trusted_issuer]]
issuer = "{idp_role}"
algorithms = ["ES256"]

[[resource]]
uri = "{GITHUB}"
authorization_server = "{as_role}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]
max_ttl = "5m"

[[resource]]
uri = "{TICKETS}"
authorization_server = "{as_role}"
actions = ["ticket.read", "ticket.comment", "ticket.close"]
max_ttl = "5m"

[[agent]]
id = "triage-bot"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{triage_secret_sha}" }}
idp_client_ids = {{ dev-idp = "triage-bot-sso" }}
never = ["pull_request.merge"]
max_ttl = "10m"
grants = [{{ resource = "{GITHUB}", actions = ["repo.read"] }}]

[[agent]]
id = "deploy-bot"
owner = "bob@example.com"
credential = {{ jwks = '{deploy_jwks}' }}
idp_client_ids = {{ dev-idp = "deploy-bot-sso" }}
max_ttl = "5m"

# Switched off by its owner: it authenticates correctly but gets nothing (401).
[[agent]]
id = "retired-bot"
owner = "alice@example.com"
enabled = false
credential = {{ client_secret_sha256 = "{retired_secret_sha}" }}
idp_client_ids = {{ dev-idp = "retired-bot-sso" }}

[[channel]]
id = "slack:T01/C-eng-api"
members_group = "eng"
[[channel.grant]]
agent = "triage-bot"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]
approval = {{ actions = ["pull_request.create"], approvers = ["group:eng-leads"] }}
[[channel.grant]]
agent = "deploy-bot"
resource = "{GITHUB}"
actions = ["repo.read", "pull_request.merge"]

[[channel]]
id = "slack:T01/C-support"
[[channel.grant]]
agent = "triage-bot"
resource = "{TICKETS}"
actions = ["ticket.read", "ticket.comment", "ticket.close"]
[[channel.grant]]
agent = "triage-bot"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment"]

[[entitlement]]
group = "eng"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[entitlement]]
group = "support"
resource = "{TICKETS}"
actions = ["ticket.read", "ticket.comment"]

[[entitlement]]
group = "support"
resource = "{GITHUB}"
actions = ["repo.read"]

# The admin API (/admin/v1): humans sign in at the dev IdP with client_id=lanyard-console.
[control_plane]
client_ids = {{ dev-idp = "lanyard-console" }}
admins = ["group:eng-leads"]
approvers = ["group:eng-leads"]
auditors = ["group:eng-leads"]
"#
    )
}

/// Run the dev server on `listen` (default 127.0.0.1:8080; loopback only).
pub async fn serve(listen: Option<String>) -> Result<(), String> {
    crate::telemetry::init(config::LogFormat::Pretty, "info");
    let addr: SocketAddr = listen
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()
        .map_err(|_| "--listen: not a socket address".to_owned())?;
    if !addr.ip().is_loopback() {
        return Err("dev mode binds a loopback address only".into());
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (broker, state, banner) = build(bound, Arc::new(SystemClock))?;
    // Not println!: a reader that closes stdout once it has the banner (the walkthrough
    // test does) must not make the server panic on EPIPE.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{banner}").and_then(|()| out.flush());
    }
    let broker = Arc::new(broker);
    let extra = routes(&broker, Arc::new(state));
    crate::server::run(broker, listener, Some(extra)).await
}

/// Build a dev broker for a server at `addr`; returns it with the printed walkthrough.
pub fn build(
    addr: SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<(Broker, DevState, String), String> {
    let dir = tempfile::Builder::new()
        .prefix("lanyard-dev-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let origin = format!("http://{addr}");
    let now = clock.now();
    let issuer = |role: Role, path: &str, ttl: u64| IssuerSettings {
        role,
        issuer: format!("{origin}{path}"),
        path: path.into(),
        max_token_ttl: Duration::from_secs(ttl),
        require_dpop_nonce: false,
    };
    let settings = Settings {
        listen: addr,
        request_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        max_body_bytes: 64 * 1024,
        form: FormLimits::default(),
        leeway: 60,
        log_format: config::LogFormat::Pretty,
        log_level: "info".into(),
        store: dev_store(dir.path())?,
        keys: config::KeySettings {
            dir: dir.path().join("keys"),
            algorithm: SigningAlg::Es256,
            publish_lead: Duration::from_secs(300),
            jwks_max_age: Duration::from_secs(300),
            reload_interval: Duration::from_secs(5),
        },
        idp: Some(issuer(Role::Idp, "/idp", 300)),
        authorization_server: Some(issuer(Role::AuthorizationServer, "/as", 600)),
        policy_file: dir.path().join("policy.toml"),
        policy_reload_interval: Duration::from_secs(5),
        // Dev mode's IdP and trusted issuer are this very process on loopback.
        allow_private_addresses: true,
        approval_pending_ttl: Duration::from_secs(15 * 60),
        approval_ttl: Duration::from_secs(5 * 60),
        access: config::AccessSettings::default(),
        tls: None,
        // The conformance runner drives the dev server hard from one address: no rate
        // limits here (the concurrency cap stays).
        limits: config::LimitSettings {
            per_client: None,
            per_address: None,
            ..config::LimitSettings::default()
        },
    };
    for i in settings.issuers() {
        keyring::generate(
            &settings.keys.dir.join(i.role.as_str()),
            SigningAlg::Es256,
            now,
        )
        .map_err(|e| e.to_string())?;
    }
    // Agents' throw-away credentials: a high-entropy secret for one, a key pair for the other.
    let triage_secret = random_id(32).map_err(|e| e.to_string())?;
    let triage_sha = hex(&Sha256::digest(triage_secret.as_bytes()));
    let retired_secret = random_id(32).map_err(|e| e.to_string())?;
    let retired_sha = hex(&Sha256::digest(retired_secret.as_bytes()));
    let (deploy_key, deploy_pem) =
        SigningKey::generate(SigningAlg::Es256, now).map_err(|e| e.to_string())?;
    let deploy_private = Value::Object(SigningKey::private_jwk_from_pem(
        &deploy_pem,
        SigningAlg::Es256,
    )?);
    let deploy_jwks =
        json!({ "keys": [Value::Object(deploy_key.public_jwk().clone())] }).to_string();
    let dev_idp = format!("{origin}{DEV_IDP_PATH}");
    let idp_role = settings
        .idp
        .as_ref()
        .map(|i| i.issuer.clone())
        .unwrap_or_default();
    let as_role = settings
        .authorization_server
        .as_ref()
        .map(|i| i.issuer.clone())
        .unwrap_or_default();
    // Conformance fixtures: the dev test issuer's key pair and the DPoP-bound agent's secret.
    let (test_key, test_pem) =
        SigningKey::generate(SigningAlg::Es256, now).map_err(|e| e.to_string())?;
    let test_private = Value::Object(SigningKey::private_jwk_from_pem(
        &test_pem,
        SigningAlg::Es256,
    )?);
    let test_issuer = format!("{origin}{DEV_TEST_ISSUER_PATH}");
    std::fs::write(
        dir.path().join(DEV_TEST_ISSUER_JWKS),
        json!({ "keys": [Value::Object(test_key.public_jwk().clone())] }).to_string(),
    )
    .map_err(|e| e.to_string())?;
    let dpop_secret = random_id(32).map_err(|e| e.to_string())?;
    let dpop_sha = hex(&Sha256::digest(dpop_secret.as_bytes()));
    let policy = demo_policy(
        &dev_idp,
        &idp_role,
        &as_role,
        &triage_sha,
        &deploy_jwks,
        &retired_sha,
    ) + &conformance_policy(&test_issuer, &as_role, &dpop_sha);
    std::fs::write(&settings.policy_file, policy).map_err(|e| e.to_string())?;
    let (idp_key, _) = SigningKey::generate(SigningAlg::Rs256, now).map_err(|e| e.to_string())?;
    let agents = vec![
        DevAgent {
            client_id: "triage-bot",
            idp_client_id: "triage-bot-sso",
            owner: "alice@example.com",
            secret: Some(triage_secret.clone()),
            private_jwk: None,
            enabled: true,
            max_ttl_secs: 600,
            dpop_bound_access_tokens: false,
        },
        DevAgent {
            client_id: "deploy-bot",
            idp_client_id: "deploy-bot-sso",
            owner: "bob@example.com",
            secret: None,
            private_jwk: Some(deploy_private),
            enabled: true,
            max_ttl_secs: 300,
            dpop_bound_access_tokens: false,
        },
        DevAgent {
            client_id: "retired-bot",
            idp_client_id: "retired-bot-sso",
            owner: "alice@example.com",
            secret: Some(retired_secret),
            private_jwk: None,
            enabled: false,
            max_ttl_secs: 600,
            dpop_bound_access_tokens: false,
        },
        DevAgent {
            client_id: "dpop-bot",
            idp_client_id: "dpop-bot-sso",
            owner: "alice@example.com",
            secret: Some(dpop_secret),
            private_jwk: None,
            enabled: true,
            max_ttl_secs: 300,
            dpop_bound_access_tokens: true,
        },
    ];
    let banner = walkthrough(&origin, &idp_role, &as_role, &dev_idp, dir.path());
    let state = DevState {
        idp_issuer: dev_idp,
        origin: origin.clone(),
        idp_key,
        humans: HUMANS.to_vec(),
        agents,
        test_issuer: DevTestIssuer {
            issuer: test_issuer,
            private_jwk: test_private,
        },
        _dir: dir,
    };
    let broker = Broker::open(settings, clock)?;
    Ok((broker, state, banner))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn walkthrough(origin: &str, idp: &str, ras: &str, dev_idp: &str, dir: &std::path::Path) -> String {
    let commands = walkthrough_commands(origin, idp, ras, dev_idp);
    format!(
        r#"
================================================================================
 lanyard DEV MODE — INSECURE, for trying things out on this machine only.
 Throw-away keys, data and demo policy in {dir} (deleted on exit).
================================================================================
 IdP role (issues ID-JAGs)          {idp}
 resource AS role (access tokens)   {ras}
 dev IdP (mints demo ID tokens)     {dev_idp}   <- INSECURE, dev only
 demo resource server (GitHub MCP)  {origin}{DEV_RS_PATH}
 demo credentials                   {origin}/dev/bootstrap

 Walkthrough (copy-paste; needs only curl and sed):

{commands}================================================================================
"#,
        dir = dir.display()
    )
}

/// The walkthrough's shell commands (README.md shows them for `127.0.0.1:8080`; a unit test
/// keeps the two identical).
pub fn walkthrough_commands(origin: &str, idp: &str, ras: &str, dev_idp: &str) -> String {
    format!(
        r#"# 0. A JSON string-field reader, so that nothing beyond curl and sed is needed
field() {{ sed -E 's/.*"'"$1"'":"([^"]*)".*/\1/'; }}
SECRET=$(curl -s {origin}/dev/bootstrap | field triage_bot_secret)

# 1. Metadata and keys of both issuers (RFC 8414 path-inserted well-known URLs)
curl -s {origin}/.well-known/oauth-authorization-server/idp
curl -s {origin}/.well-known/oauth-authorization-server/as
curl -s {idp}/jwks.json

# 2. Alice signs in at the dev IdP; her ID token is issued to triage-bot's SSO client
ID_TOKEN=$(curl -s -d user=alice -d client_id=triage-bot-sso {dev_idp}/mint | field id_token)

# 3. triage-bot exchanges it for an ID-JAG for the GitHub MCP server, in #eng-api
ID_JAG=$(curl -s -u triage-bot:$SECRET {idp}/token \
  -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
  -d requested_token_type=urn:ietf:params:oauth:token-type:id-jag \
  -d subject_token_type=urn:ietf:params:oauth:token-type:id_token \
  -d subject_token=$ID_TOKEN -d audience={ras} \
  -d resource={GITHUB} -d scope="repo.read issue.comment" \
  -d channel=slack:T01/C-eng-api | field access_token)

# 4. triage-bot redeems the ID-JAG at the resource AS for an access token to read only
ACCESS_TOKEN=$(curl -s -u triage-bot:$SECRET {ras}/token \
  -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
  -d assertion=$ID_JAG -d scope=repo.read | field access_token)

# 5. It calls the demo GitHub MCP server: reading is allowed, commenting is 403
curl -s -H "Authorization: Bearer $ACCESS_TOKEN" {origin}{DEV_RS_PATH}/repos/acme/api
curl -s -i -X POST -H "Authorization: Bearer $ACCESS_TOKEN" \
  {origin}{DEV_RS_PATH}/repos/acme/api/issues/1/comments
"#
    )
}

/// Routes of the dev IdP and the bootstrap document.
/// Dev mode keeps its state in a throw-away embedded store, or — with `LANYARD_REDIS_URL`
/// set — in that Redis under a fresh key prefix (to try, and test, the shared-store mode
/// with nothing else to configure).
fn dev_store(dir: &std::path::Path) -> Result<StoreSettings, String> {
    match std::env::var("LANYARD_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            config::check_redis_url(&url).map_err(|e| format!("LANYARD_REDIS_URL: {e}"))?;
            Ok(StoreSettings::Redis(config::RedisSettings {
                url: config::RedisUrl::new(url),
                key_prefix: format!("lanyard-dev-{}:", random_id(6).map_err(|e| e.to_string())?),
                connect_timeout: Duration::from_secs(1),
                response_timeout: Duration::from_secs(1),
            }))
        }
        _ => Ok(StoreSettings::Embedded {
            path: dir.join("data/lanyard.redb"),
        }),
    }
}

/// Where the demo resource server is mounted in dev mode.
pub const DEV_RS_PATH: &str = "/dev-rs/github";

/// Dev-mode routes: bootstrap, the dev IdP, and the demo resource server for [`GITHUB`]
/// (verifying the AS role's tokens through RFC 8414 discovery over loopback, like any
/// resource server would).
pub fn routes(b: &Broker, d: Arc<DevState>) -> Router<Arc<Broker>> {
    let mut r = Router::new();
    if let Some(ras) = b.issuer(Role::AuthorizationServer) {
        let mut cfg = crate::verifier::VerifierConfig::new(ras.settings.issuer.clone(), GITHUB);
        cfg.algorithms = vec![b.settings.keys.algorithm.as_str()];
        cfg.revocations_uri = Some(format!("{}/revocations", ras.settings.issuer));
        cfg.revocation_poll = Duration::from_secs(2);
        match crate::verifier::Verifier::new(cfg, Arc::new(SystemClock)) {
            Ok(verifier) => {
                let verifier = Arc::new(verifier);
                verifier.follow_revocations();
                let guard = Arc::new(crate::http::require::Guard {
                    verifier,
                    public_origin: d.origin.clone(),
                    resource_metadata: format!(
                        "{}{DEV_RS_PATH}{}",
                        d.origin,
                        crate::http::demo_rs::METADATA_PATH
                    ),
                });
                r = r.nest_service(
                    DEV_RS_PATH,
                    crate::http::demo_rs::router(
                        guard,
                        "Demo GitHub MCP server (lanyard dev mode)",
                    ),
                );
            }
            Err(e) => tracing::error!(error = %e, "demo resource server not mounted"),
        }
    }
    r.route("/dev/bootstrap", get(bootstrap))
        .route(
            &format!("{DEV_IDP_PATH}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(&format!("{DEV_IDP_PATH}/jwks.json"), get(jwks))
        .route(&format!("{DEV_IDP_PATH}/mint"), post(mint))
        .layer(Extension(d))
}

async fn bootstrap(
    State(b): State<Arc<Broker>>,
    Extension(d): Extension<Arc<DevState>>,
) -> Result<Response, OAuthError> {
    let body = json!({
        "warning": "lanyard dev mode: INSECURE demo credentials, never use outside this machine",
        "idp_issuer": b.issuer(Role::Idp).map(|i| i.settings.issuer.clone()),
        "as_issuer": b.issuer(Role::AuthorizationServer).map(|i| i.settings.issuer.clone()),
        "dev_idp": { "issuer": d.idp_issuer, "mint_endpoint": format!("{}/mint", d.idp_issuer) },
        "agents": d.agents.iter().map(|a| json!({
            "client_id": a.client_id,
            "idp_client_id": a.idp_client_id,
            "owner": a.owner,
            "client_secret": a.secret,
            "private_jwk": a.private_jwk,
            "enabled": a.enabled,
            "max_ttl": a.max_ttl_secs,
            "dpop_bound_access_tokens": a.dpop_bound_access_tokens,
        })).collect::<Vec<_>>(),
        "humans": d.humans.iter().map(|h| json!({
            "username": h.username, "sub": h.sub, "email": h.email, "groups": h.groups,
        })).collect::<Vec<_>>(),
        "resources": [GITHUB, TICKETS, SECRETS],
        "dev_idp_max_age": 3600,
        "admin_client_id": "lanyard-console",
        "channels": ["slack:T01/C-eng-api", "slack:T01/C-support", CH_SECRETS],
        // Conformance fixtures (see `conformance_policy`).
        "test_id_jag_issuer": {
            "issuer": d.test_issuer.issuer,
            "private_jwk": d.test_issuer.private_jwk,
            "allow_jti_reuse": true,
        },
        "sender_constrained_resource": {
            "resource": SECRETS,
            "channel": CH_SECRETS,
            "agent": "triage-bot",
            "scope": "secret.read",
        },
        // The walkthrough reads this one with sed (no jq needed).
        "triage_bot_secret": d.agents.iter().find(|a| a.client_id == "triage-bot").and_then(|a| a.secret.clone()),
        "demo_resource_servers": [{
            "resource": GITHUB,
            "base_url": format!("{}{DEV_RS_PATH}", d.origin),
            "resource_metadata": format!("{}{DEV_RS_PATH}{}", d.origin, crate::http::demo_rs::METADATA_PATH),
            "routes": crate::http::demo_rs::ROUTES.iter().map(|(m, p, a)| json!({
                "method": m, "path": p, "action": a,
            })).collect::<Vec<_>>(),
        }],
    });
    Ok(crate::http::response::no_store_json(
        axum::http::StatusCode::OK,
        body.to_string().into_bytes(),
    ))
}

async fn discovery(Extension(d): Extension<Arc<DevState>>) -> Result<Response, OAuthError> {
    Ok(axum::Json(json!({
        "issuer": d.idp_issuer,
        "jwks_uri": format!("{}/jwks.json", d.idp_issuer),
        // The dev IdP has no browser login: ID tokens come from POST {issuer}/mint.
        "authorization_endpoint": format!("{}/mint", d.idp_issuer),
        "token_endpoint": format!("{}/mint", d.idp_issuer),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [d.idp_key.alg.as_str()],
    }))
    .into_response())
}

async fn jwks(Extension(d): Extension<Arc<DevState>>) -> Result<Response, OAuthError> {
    Ok(
        axum::Json(json!({ "keys": [Value::Object(d.idp_key.public_jwk().clone())] }))
            .into_response(),
    )
}

/// `POST /dev-idp/mint` with `user` (alice, bob) and `client_id` (the agent's SSO client id):
/// an ID token for that human, as an enterprise IdP would issue after a login. Optional
/// `auth_time_ago` (seconds) back-dates the login, to try `max_age` step-up.
async fn mint(
    State(b): State<Arc<Broker>>,
    Extension(d): Extension<Arc<DevState>>,
    req: Request,
) -> Result<Response, OAuthError> {
    let (parts, body) = req.into_parts();
    let form =
        crate::http::extract::oauth_form(&parts.headers, body, 64 * 1024, &FormLimits::default())
            .await?;
    let user = form
        .one("user")
        .ok()
        .flatten()
        .ok_or_else(|| OAuthError::invalid_request("missing user"))?;
    let human = d
        .humans
        .iter()
        .find(|h| h.username == user)
        .ok_or_else(|| OAuthError::invalid_request("unknown demo user"))?;
    let aud = form
        .one("client_id")
        .ok()
        .flatten()
        .unwrap_or("triage-bot-sso");
    let now = b.clock.now();
    let ago: u64 = form
        .one("auth_time_ago")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let claims = json!({
        "iss": d.idp_issuer,
        "sub": human.sub,
        "aud": aud,
        "iat": now,
        "exp": now + 600,
        "auth_time": now.saturating_sub(ago),
        "amr": ["pwd"],
        "email": human.email,
        "email_verified": true,
        "name": human.name,
        "groups": human.groups,
        "jti": random_id(16).map_err(|_| OAuthError::new(crate::oauth::ErrorCode::ServerError, "internal error"))?,
    });
    let token = sign_jwt(&d.idp_key, Typ::IdToken, &claims)
        .map_err(|_| OAuthError::new(crate::oauth::ErrorCode::ServerError, "internal error"))?;
    let body = json!({ "id_token": token, "token_type": "N_A", "expires_in": 600 });
    Ok(crate::http::response::no_store_json(
        axum::http::StatusCode::OK,
        body.to_string().into_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's walkthrough is the one `serve --dev` prints for its default address.
    #[test]
    fn readme_walkthrough_matches_the_printed_one() {
        let o = "http://127.0.0.1:8080";
        let cmds = walkthrough_commands(
            o,
            &format!("{o}/idp"),
            &format!("{o}/as"),
            &format!("{o}{DEV_IDP_PATH}"),
        );
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&cmds),
            "README.md's walkthrough block must be exactly:\n{cmds}"
        );
    }
}
