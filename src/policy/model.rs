//! The validated policy: every reference resolved, every value checked. Built only by
//! [`parse`](super::parse) / [`load`](super::load).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A JWS algorithm the policy allows for verifying a signature. Only asymmetric algorithms
/// exist here: `none` and the `HS*` family are refused when the file is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// ECDSA on P-521 with SHA-512.
    Es512,
    /// EdDSA (RFC 8037), curve given by the key.
    EdDsa,
    /// Ed25519, the fully specified EdDSA identifier (RFC 9864).
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm, in the order error messages list them.
    pub const ALL: [Algorithm; 11] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Rs512,
        Algorithm::Ps256,
        Algorithm::Ps384,
        Algorithm::Ps512,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
        Algorithm::EdDsa,
        Algorithm::Ed25519,
    ];

    /// The JOSE `alg` value (RFC 7518 / RFC 8037 / RFC 9864).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
            Algorithm::EdDsa => "EdDSA",
            Algorithm::Ed25519 => "Ed25519",
        }
    }

    /// The algorithm whose JOSE `alg` value is exactly `alg` (case-sensitive, as in JOSE).
    pub fn from_jose(alg: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == alg)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JWKS held in the policy, already read and checked to be a JSON object with a non-empty
/// `keys` array of public keys (no private members). Parsing the keys is `crypto`'s job.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticJwks {
    /// The file it was read from (resolved against the policy file's directory), or `None`
    /// when it was given inline.
    pub path: Option<PathBuf>,
    /// The JWKS document.
    pub jwks: serde_json::Value,
}

/// An enterprise identity provider whose ID tokens lanyard's IdP role accepts (`[[idp]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Idp {
    /// Short unique name, referenced by agents' `idp_client_ids`.
    pub id: String,
    /// The issuer exactly as written; an ID token's `iss` must equal it byte for byte.
    pub issuer: String,
    /// Static keys (air-gapped deployments); `None` means OIDC discovery at `issuer`.
    pub jwks: Option<StaticJwks>,
    /// Algorithms accepted on its ID tokens (non-empty).
    pub algorithms: Vec<Algorithm>,
    /// The ID-token claim that carries the human's groups (default `groups`).
    pub groups_claim: String,
    /// The ID-token claim that becomes the ID-JAG `sub` the resource AS knows (default `sub`).
    pub subject_claim: String,
    /// Whether a non-loopback `http` issuer was explicitly allowed.
    pub allow_insecure_http: bool,
    /// When set, the ID token's `auth_time` must be at most this old.
    pub max_age: Option<Duration>,
}

/// An ID-JAG issuer of another trust domain trusted by the resource-AS role
/// (`[[trusted_issuer]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedIssuer {
    /// The issuer exactly as written; an ID-JAG's `iss` must equal it byte for byte.
    pub issuer: String,
    /// Static keys; `None` means RFC 8414 / OIDC discovery at `issuer`.
    pub jwks: Option<StaticJwks>,
    /// Algorithms accepted on its ID-JAGs (non-empty).
    pub algorithms: Vec<Algorithm>,
    /// Whether an ID-JAG `jti` from this issuer may be presented more than once.
    pub allow_jti_reuse: bool,
    /// Whether a non-loopback `http` issuer was explicitly allowed.
    pub allow_insecure_http: bool,
}

/// An API (for example an MCP server) and the actions it defines (`[[resource]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The resource identifier (RFC 8707) exactly as written; the access token's `aud`.
    pub uri: String,
    /// The issuer of its authorization server, i.e. the ID-JAG audience for it.
    pub authorization_server: String,
    /// The actions it defines, in file order, without duplicates (non-empty).
    pub actions: Vec<String>,
    /// Longest lifetime of a token for it (30s..=1h, default 5m).
    pub max_ttl: Duration,
    /// Whether tokens for it must be sender-constrained (DPoP-bound).
    pub sender_constrained: bool,
}

impl Resource {
    /// Whether this resource defines `action`.
    pub fn defines(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }
}

/// How an agent authenticates to lanyard.
#[derive(Clone, PartialEq)]
pub enum Credential {
    /// `private_key_jwt` (RFC 7523 client assertion) with these public keys, from
    /// `jwks_file` or inline `jwks`.
    Jwks(StaticJwks),
    /// `client_secret_basic` / `client_secret_post` with a generated high-entropy secret;
    /// the policy stores only its SHA-256, compared in constant time by the caller.
    ClientSecretSha256([u8; 32]),
    /// A workload-identity token (Kubernetes, SPIFFE, CI) from `issuer` naming `subject`.
    Workload {
        /// Issuer of the workload token (an absolute https URL, or loopback http).
        issuer: String,
        /// The exact `sub` the workload token must carry.
        subject: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Jwks(jwks) => f.debug_tuple("Jwks").field(&jwks.path).finish(),
            // A hash of a high-entropy secret is not the secret, but keep it out of logs.
            Credential::ClientSecretSha256(_) => f.write_str("ClientSecretSha256(..)"),
            Credential::Workload { issuer, subject } => f
                .debug_struct("Workload")
                .field("issuer", issuer)
                .field("subject", subject)
                .finish(),
        }
    }
}

/// A grant written on the agent itself, used when the request names no channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectGrant {
    /// URI of a declared resource.
    pub resource: String,
    /// Actions on it, each defined by that resource.
    pub actions: Vec<String>,
}

/// A non-human principal with its own credential (`[[agent]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Unique principal name; also its client id at lanyard.
    pub id: String,
    /// The accountable human.
    pub owner: String,
    /// Whether it may get tokens at all (default `true`).
    pub enabled: bool,
    /// How it authenticates.
    pub credential: Credential,
    /// Whether a client assertion may name the token endpoint (rather than the issuer) as
    /// its `aud` (legacy clients; default `false`).
    pub accept_token_endpoint_aud: bool,
    /// Its client id at each declared IdP (key: [`Idp::id`]); an ID token's `aud` must be it.
    pub idp_client_ids: BTreeMap<String, String>,
    /// Its client id at each resource authorization server (key: that issuer), where it
    /// differs from [`Agent::id`]. Use [`Agent::client_id_at`].
    pub as_client_ids: BTreeMap<String, String>,
    /// Actions it must never hold, whatever any grant says; each is defined by some resource.
    pub never: Vec<String>,
    /// Longest lifetime of a token it gets (30s..=1h, default 10m).
    pub max_ttl: Duration,
    /// Whether its access tokens must be DPoP-bound.
    pub dpop_bound_access_tokens: bool,
    /// Grants used when the request names no channel.
    pub grants: Vec<DirectGrant>,
}

impl Agent {
    /// Its client id at the resource authorization server `as_issuer` (default: its id).
    pub fn client_id_at(&self, as_issuer: &str) -> &str {
        self.as_client_ids
            .get(as_issuer)
            .map_or(self.id.as_str(), String::as_str)
    }

    /// Its client id at the IdP with id `idp_id`, if one is configured.
    pub fn idp_client_id(&self, idp_id: &str) -> Option<&str> {
        self.idp_client_ids.get(idp_id).map(String::as_str)
    }

    /// Whether `action` is on its `never` list.
    pub fn is_never(&self, action: &str) -> bool {
        self.never.iter().any(|a| a == action)
    }
}

/// Which humans something applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HumanMatch {
    /// Every human whose groups claim carries this group.
    Group(String),
    /// One human, by the user name the IdP asserts.
    User(String),
}

impl std::str::FromStr for HumanMatch {
    type Err = &'static str;

    /// `group:…` or `user:…`, the form the policy file and stored records use.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("group", g)) if !g.is_empty() => Ok(Self::Group(g.to_owned())),
            Some(("user", u)) if !u.is_empty() => Ok(Self::User(u.to_owned())),
            _ => Err("expected group:NAME or user:NAME"),
        }
    }
}

// Stored and sent as its `group:…` / `user:…` text, parsed once when read.
impl serde::Serialize for HumanMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for HumanMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HumanMatch::Group(g) => write!(f, "group:{g}"),
            HumanMatch::User(u) => write!(f, "user:{u}"),
        }
    }
}

/// Just-in-time approval required for some actions of a channel grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// Actions needing approval for each use (a subset of the grant's actions).
    pub actions: Vec<String>,
    /// Who may approve (non-empty).
    pub approvers: Vec<HumanMatch>,
}

/// What one agent may do in one channel on one resource (`[[channel.grant]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelGrant {
    /// Id of a declared agent.
    pub agent: String,
    /// URI of a declared resource.
    pub resource: String,
    /// Actions on it, each defined by that resource.
    pub actions: Vec<String>,
    /// Actions that need a named approver for each use, if any.
    pub approval: Option<Approval>,
    /// Unix time (seconds) at which the grant stops applying, if any.
    pub expires: Option<u64>,
}

impl ChannelGrant {
    /// Whether the grant no longer applies at `now` (unix seconds).
    pub fn is_expired_at(&self, now: u64) -> bool {
        self.expires.is_some_and(|end| now >= end)
    }

    /// Whether `action` needs just-in-time approval under this grant.
    pub fn needs_approval(&self, action: &str) -> bool {
        self.approval
            .as_ref()
            .is_some_and(|a| a.actions.iter().any(|x| x == action))
    }
}

/// A place agents act in (for example a Slack channel) and what they may do there
/// (`[[channel]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Unique channel id as the agent's platform asserts it.
    pub id: String,
    /// When set, the requesting human must carry this group.
    pub members_group: Option<String>,
    /// The grants, in file order.
    pub grants: Vec<ChannelGrant>,
}

impl Channel {
    /// The grants naming `agent`.
    pub fn grants_for<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a ChannelGrant> {
        self.grants.iter().filter(move |g| g.agent == agent)
    }
}

/// What a human may do, the human side of the intersection (`[[entitlement]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entitlement {
    /// Who it applies to (`group = ...` or `user = ...`).
    pub who: HumanMatch,
    /// URI of a declared resource.
    pub resource: String,
    /// Actions on it, each defined by that resource.
    pub actions: Vec<String>,
}

/// Who may use the human control plane (`[control_plane]`). Humans sign in at a trusted
/// `[[idp]]`; their ID token's `aud` must be lanyard's console client id at that IdP, and
/// their roles come from that IdP's groups claim or user name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ControlPlane {
    /// IdP id → lanyard's console client id there (the admin ID token's `aud`).
    pub client_ids: BTreeMap<String, String>,
    /// May change agents, grants and revocations.
    pub admins: Vec<HumanMatch>,
    /// May approve or deny just-in-time requests and access requests.
    pub approvers: Vec<HumanMatch>,
    /// May read the audit trail.
    pub auditors: Vec<HumanMatch>,
}
