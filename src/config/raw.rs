//! The configuration file as written (serde, `deny_unknown_fields`). Every field is
//! optional, so that validation, not serde, reports what is missing — all at once.

use super::*;

// ---------------------------------------------------------------------------------------
// The file as written (serde). Every field is optional so that validation, not serde,
// reports what is missing — all at once.
// ---------------------------------------------------------------------------------------

/// The configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Format version; must be 1.
    pub version: Option<u32>,
    /// HTTP listener and request limits.
    #[serde(default)]
    pub server: RawServer,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
    /// Where runtime state (replay marks, revocations, approvals, audit) lives.
    #[serde(default)]
    pub store: RawStore,
    /// Signing keys of both issuers.
    #[serde(default)]
    pub keys: RawKeys,
    /// The IdP role: issues ID-JAGs.
    pub idp: Option<RawIssuer>,
    /// The resource-authorization-server role: issues access tokens.
    pub authorization_server: Option<RawIssuer>,
    /// The human-owned policy file.
    #[serde(default)]
    pub policy: RawPolicy,
    /// Just-in-time approvals of sensitive actions.
    #[serde(default)]
    pub approvals: RawApprovals,
    /// Outbound fetches (IdP discovery, JWKS).
    #[serde(default)]
    pub outbound: RawOutbound,
    /// Runtime grants made by admins or approved access requests.
    #[serde(default)]
    pub runtime_grants: RawRuntimeGrants,
    /// Where the control plane tells humans about access requests.
    #[serde(default)]
    pub notifications: RawNotifications,
    /// Rate limits on the token, introspection and revocation endpoints.
    #[serde(default)]
    pub limits: RawLimits,
}

/// `[outbound]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    /// Allow discovery and JWKS fetches to loopback, private, link-local and other
    /// non-public addresses. Default `false`: a discovery document cannot point lanyard at
    /// an internal service. Set it for IdPs inside your network.
    pub allow_private_addresses: Option<bool>,
}

/// `[runtime_grants]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntimeGrants {
    /// Lifetime of a runtime grant when none is asked for. Default `7d`.
    pub default_ttl: Option<String>,
    /// Longest lifetime of a runtime grant. Default `30d`.
    pub max_ttl: Option<String>,
}

/// `[notifications]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// An `https` URL (or `http` on a loopback address) that receives a JSON POST for every
    /// access-request event. Best effort; never delays a request.
    pub webhook_url: Option<String>,
}

/// `[approvals]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApprovals {
    /// How long a requested approval waits for a human's decision. Default `15m`.
    pub pending_ttl: Option<String>,
    /// How long a granted approval may be used (once). Default `5m`.
    pub approved_ttl: Option<String>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Socket address to bind. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Longest a request may take before a 503. Default `10s`.
    pub request_timeout: Option<String>,
    /// How long SIGTERM waits for in-flight requests. Default `20s`.
    pub shutdown_grace: Option<String>,
    /// Largest request body in bytes. Default 65536.
    pub max_body_bytes: Option<usize>,
    /// Largest assertion / token parameter in bytes. Default 16384.
    pub max_token_bytes: Option<usize>,
    /// Clock-skew leeway for `exp`/`iat`/`nbf`. Default `60s`, at most `5m`.
    pub leeway: Option<String>,
    /// Requests served at once; more are answered 503. Default 1024.
    pub max_concurrent_requests: Option<usize>,
    /// `[server.tls]`: terminate TLS here.
    pub tls: Option<RawTls>,
}

/// `[server.tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain. Required.
    pub cert_file: Option<String>,
    /// PEM private key. Required.
    pub key_file: Option<String>,
    /// PEM CA certificates client certificates must chain to.
    pub client_ca_file: Option<String>,
    /// Refuse clients without a valid certificate. Default false.
    pub require_client_cert: Option<bool>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Requests per client id, e.g. `"50/s"`. Default `"50/s"`; `"off"` disables.
    pub per_client: Option<String>,
    /// Requests per remote address, e.g. `"100/s"`. Default `"100/s"`; `"off"` disables.
    pub per_address: Option<String>,
    /// How many requests above the steady rate may arrive at once. Default: one second's worth.
    pub burst: Option<u32>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `json` (default outside dev mode) or `pretty`.
    pub format: Option<String>,
    /// A tracing filter. Default `info`.
    pub level: Option<String>,
}

/// `[store]`
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `embedded` (default): a durable file store on this node. `redis`: a Redis server
    /// shared by every replica.
    pub backend: Option<String>,
    /// The embedded store's file. Default `data/lanyard.redb`.
    pub path: Option<String>,
    /// Redis only, required: `redis://`, `rediss://` (TLS) or `unix://` URL. May carry a
    /// password; also `LANYARD_REDIS_URL`.
    pub url: Option<String>,
    /// Redis only: prefix of every key lanyard writes. Default `lanyard:`.
    pub key_prefix: Option<String>,
    /// Redis only: longest wait for a connection. Default `1s`.
    pub connect_timeout: Option<String>,
    /// Redis only: longest wait for a reply. Default `1s`.
    pub response_timeout: Option<String>,
}

impl fmt::Debug for RawStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStore")
            .field("backend", &self.backend)
            .field("path", &self.path)
            .field("url", &self.url.as_ref().map(|u| RedisUrl(u.clone())))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// `[keys]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Directory with one keyring per role (`idp/`, `as/`). Default `keys/local`.
    pub dir: Option<String>,
    /// Algorithm for new keys: `ES256` (default), `RS256` or `EdDSA`.
    pub algorithm: Option<String>,
    /// How long a rotated-in key is published before it signs. Default = `jwks_max_age`.
    pub publish_lead: Option<String>,
    /// `Cache-Control: max-age` of the JWKS. Default `5m`.
    pub jwks_max_age: Option<String>,
    /// How often the keyrings are re-read from disk. Default `5s`.
    pub reload_interval: Option<String>,
}

/// `[idp]` or `[authorization_server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// Whether this role is served. Default true when the table is present.
    pub enabled: Option<bool>,
    /// The issuer identifier: https (http only on loopback), no query or fragment.
    pub issuer: Option<String>,
    /// Longest lifetime of a token this role issues. IdP: default and maximum `5m`.
    /// Authorization server: ceiling over every agent and resource, default `10m`, max `1h`.
    pub max_token_ttl: Option<String>,
    /// Require a server-issued `nonce` in DPoP proofs at this token endpoint (RFC 9449 §8).
    /// Default false.
    pub require_dpop_nonce: Option<bool>,
}

/// `[policy]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Path of the policy file. Default `policy.toml`.
    pub file: Option<String>,
    /// How often the file is checked for changes. Default `5s`.
    pub reload_interval: Option<String>,
}
