//! Server configuration: a versioned TOML file → validated [`Settings`].
//!
//! The file is for operators (listen address, issuers, keys, store, logging). What agents may
//! do lives in the separate, human-owned policy file (`policy/`). Every field is documented
//! here and in `lanyard.example.toml`, which a unit test parses.
//!
//! Validation collects **every** error with its field path before giving up, so an operator
//! fixes a broken file in one round. A short list of environment variables ([`ENV_VARS`])
//! overrides deployment values and secrets; their errors name the variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::oauth::FormLimits;

/// The only configuration version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// Environment variables that override the file: (variable, field it overrides, meaning).
pub const ENV_VARS: &[(&str, &str, &str)] = &[
    (
        "LANYARD_CONFIG",
        "—",
        "path of the configuration file (instead of --config)",
    ),
    ("LANYARD_LISTEN", "server.listen", "socket address to bind"),
    (
        "LANYARD_LOG",
        "log.level",
        "tracing filter, e.g. `info` or `lanyard=debug`",
    ),
    ("LANYARD_LOG_FORMAT", "log.format", "`json` or `pretty`"),
    ("LANYARD_STORE_PATH", "store.path", "embedded store file"),
    (
        "LANYARD_REDIS_URL",
        "store.url",
        "Redis URL of the shared store; may carry a password (a secret)",
    ),
    (
        "LANYARD_KEYS_DIR",
        "keys.dir",
        "directory holding the signing keyrings (e.g. a mounted secret)",
    ),
    (
        "LANYARD_IDP_ISSUER",
        "idp.issuer",
        "issuer identifier of the IdP role",
    ),
    (
        "LANYARD_AS_ISSUER",
        "authorization_server.issuer",
        "issuer identifier of the resource-AS role",
    ),
    (
        "LANYARD_POLICY_FILE",
        "policy.file",
        "the human-owned policy file",
    ),
];

/// One configuration problem, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted field path (`server.listen`), or `<file>` for syntax errors.
    pub field: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, in operator terms.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// All problems found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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

// ---------------------------------------------------------------------------------------
// Validated settings.
// ---------------------------------------------------------------------------------------

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

pub use crate::oauth::issuer::{IssuerSettings, Role, SigningAlg};

/// The store backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// The embedded durable file store.
    Embedded {
        /// Its file.
        path: PathBuf,
    },
    /// A Redis server shared by every replica.
    Redis(RedisSettings),
}

/// A Redis URL. It may carry a password, so its `Debug` form hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Wrap a URL (checked by [`check_redis_url`] when it comes from configuration).
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: for connecting, never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("REDACTED"));
                }
                write!(f, "{:?}", u.as_str())
            }
            Err(_) => f.write_str("\"<unparsable redis url>\""),
        }
    }
}

/// Settings of the Redis store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Where the server is.
    pub url: RedisUrl,
    /// Prefix of every key lanyard writes, so that one Redis can serve several deployments.
    pub key_prefix: String,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for a reply.
    pub response_timeout: Duration,
}

/// Key settings shared by both issuers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// Keyrings live in `dir/idp` and `dir/as`.
    pub dir: PathBuf,
    /// Algorithm of newly generated keys.
    pub algorithm: SigningAlg,
    /// A rotated-in key is published this long before it signs anything.
    pub publish_lead: Duration,
    /// JWKS `Cache-Control: max-age`.
    pub jwks_max_age: Duration,
    /// How often keyrings are re-read.
    pub reload_interval: Duration,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Drain time on SIGTERM.
    pub shutdown_grace: Duration,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Form limits.
    pub form: FormLimits,
    /// Clock-skew leeway in seconds.
    pub leeway: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Store backend.
    pub store: StoreSettings,
    /// Keys.
    pub keys: KeySettings,
    /// IdP role, if enabled.
    pub idp: Option<IssuerSettings>,
    /// Resource-AS role, if enabled.
    pub authorization_server: Option<IssuerSettings>,
    /// The policy file.
    pub policy_file: PathBuf,
    /// How often the policy file is checked for changes.
    pub policy_reload_interval: Duration,
    /// How long a requested approval waits for a decision.
    pub approval_pending_ttl: Duration,
    /// How long a granted approval stays usable (once).
    pub approval_ttl: Duration,
    /// Whether outbound fetches may reach non-public addresses.
    pub allow_private_addresses: bool,
    /// Access requests, runtime grants and notifications.
    pub access: AccessSettings,
    /// TLS termination, when configured.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Rate limits and the concurrency cap.
    pub limits: LimitSettings,
}

/// Access requests, runtime grants and notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessSettings {
    /// Lifetime of a runtime grant when none is asked for.
    pub runtime_grant_ttl: Duration,
    /// Longest lifetime of a runtime grant (and of a pending access request).
    pub runtime_grant_max_ttl: Duration,
    /// Webhook for access-request events, if any.
    pub webhook_url: Option<url::Url>,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            runtime_grant_ttl: Duration::from_secs(7 * 86_400),
            runtime_grant_max_ttl: Duration::from_secs(30 * 86_400),
            webhook_url: None,
        }
    }
}

/// Whether a webhook URL is acceptable: `https`, or `http` to a loopback address.
pub fn webhook_url_ok(u: &url::Url) -> bool {
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

/// A steady rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// Parse `"50/s"`, `"600/m"`, `"1000/h"`.
    pub fn parse(s: &str) -> Option<Self> {
        let (n, unit) = s.trim().split_once('/')?;
        let count: u32 = n.trim().parse().ok().filter(|c| *c > 0)?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        Some(Self { count, per })
    }
}

/// `[limits]` and `server.max_concurrent_requests`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Per client id (`None`: off).
    pub per_client: Option<Rate>,
    /// Per remote address (`None`: off).
    pub per_address: Option<Rate>,
    /// Bucket capacity; `None`: each rate's own count.
    pub burst: Option<u32>,
    /// Requests served at once.
    pub max_concurrent_requests: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_client: Some(Rate {
                count: 50,
                per: Duration::from_secs(1),
            }),
            per_address: Some(Rate {
                count: 100,
                per: Duration::from_secs(1),
            }),
            burst: None,
            max_concurrent_requests: 1024,
        }
    }
}

impl Settings {
    /// The issuers served, IdP first.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerSettings> {
        self.idp.iter().chain(self.authorization_server.iter())
    }

    /// How long a replaced signing key of issuer `i` stays published (seconds): the role's
    /// longest token plus the leeway, so that every token it signed can still be verified.
    pub fn key_retention(&self, i: &IssuerSettings) -> u64 {
        i.max_token_ttl.as_secs() + self.leeway
    }
}

impl PartialEq for FormLimits {
    fn eq(&self, o: &Self) -> bool {
        self.max_token_bytes == o.max_token_bytes
            && self.max_value_bytes == o.max_value_bytes
            && self.max_params == o.max_params
    }
}

/// Parse and validate a configuration text. `base` resolves relative paths (the file's
/// directory); `env` looks up the override variables (pass `|k| std::env::var(k).ok()`).
pub fn parse(
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        ConfigErrors(vec![ConfigError {
            field: "<file>".into(),
            line,
            message: e.message().to_owned(),
        }])
    })?;
    validate(raw, base, env, text)
}

/// Read, parse and validate a file.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            field: "<file>".into(),
            line: None,
            message: format!("cannot read {}: {e}", path.display()),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, env)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Finds the line of `key = ` inside `[table]` for error messages; best effort.
fn find_line(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut in_table = table.is_empty();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.starts_with('[') {
            in_table = l.trim_matches(|c| c == '[' || c == ']').trim() == table;
            continue;
        }
        if in_table
            && l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    None
}

struct Collector<'a> {
    errors: Vec<ConfigError>,
    text: &'a str,
}

impl Collector<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        let (table, key) = field.rsplit_once('.').unwrap_or(("", field));
        self.errors.push(ConfigError {
            field: field.to_owned(),
            line: find_line(self.text, table, key),
            message: message.into(),
        });
    }

    fn env_push(&mut self, var: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: format!("${var}"),
            line: None,
            message: message.into(),
        });
    }

    /// A duration field with a default and bounds.
    fn duration(
        &mut self,
        field: &str,
        value: Option<&str>,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(v) = value else { return default };
        match humantime::parse_duration(v) {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                self.push(
                    field,
                    format!(
                        "must be between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                default
            }
            Err(e) => {
                self.push(
                    field,
                    format!("not a duration ({e}); write e.g. \"30s\" or \"5m\""),
                );
                default
            }
        }
    }
}

fn validate(
    mut raw: RawConfig,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    text: &str,
) -> Result<Settings, ConfigErrors> {
    let mut c = Collector {
        errors: Vec::new(),
        text,
    };

    match raw.version {
        Some(CONFIG_VERSION) => {}
        Some(v) => c.push(
            "version",
            format!("version {v} is not supported; this build reads version {CONFIG_VERSION}"),
        ),
        None => c.push(
            "version",
            format!("missing; write `version = {CONFIG_VERSION}`"),
        ),
    }

    // Environment overrides are applied before validation so their values are checked too.
    // Paths from the environment are taken relative to the working directory.
    let mut env_paths: Vec<&str> = Vec::new();
    if let Some(v) = env("LANYARD_LISTEN") {
        raw.server.listen = Some(v);
    }
    if let Some(v) = env("LANYARD_LOG") {
        raw.log.level = Some(v);
    }
    if let Some(v) = env("LANYARD_LOG_FORMAT") {
        raw.log.format = Some(v);
    }
    if let Some(v) = env("LANYARD_STORE_PATH") {
        raw.store.path = Some(v);
        env_paths.push("store");
    }
    let redis_url_from_env = match env("LANYARD_REDIS_URL") {
        Some(v) => {
            raw.store.url = Some(v);
            true
        }
        None => false,
    };
    if let Some(v) = env("LANYARD_KEYS_DIR") {
        raw.keys.dir = Some(v);
        env_paths.push("keys");
    }
    if let Some(v) = env("LANYARD_POLICY_FILE") {
        raw.policy.file = Some(v);
        env_paths.push("policy");
    }
    for (var, slot) in [
        ("LANYARD_IDP_ISSUER", &mut raw.idp),
        ("LANYARD_AS_ISSUER", &mut raw.authorization_server),
    ] {
        if let Some(v) = env(var) {
            match slot {
                Some(t) => t.issuer = Some(v),
                None => c.env_push(
                    var,
                    "overrides an issuer whose role is not configured; add its table to the file",
                ),
            }
        }
    }
    let resolve = |p: &str, key: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() || env_paths.contains(&key) {
            p
        } else {
            base.join(p)
        }
    };

    let listen = match raw
        .server
        .listen
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()
    {
        Ok(a) => a,
        Err(_) => {
            c.push(
                "server.listen",
                "not a socket address, e.g. \"127.0.0.1:8080\" or \"[::]:8443\"",
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };
    let request_timeout = c.duration(
        "server.request_timeout",
        raw.server.request_timeout.as_deref(),
        Duration::from_secs(10),
        Duration::from_millis(100),
        Duration::from_secs(300),
    );
    let shutdown_grace = c.duration(
        "server.shutdown_grace",
        raw.server.shutdown_grace.as_deref(),
        Duration::from_secs(20),
        Duration::ZERO,
        Duration::from_secs(600),
    );
    let leeway = c
        .duration(
            "server.leeway",
            raw.server.leeway.as_deref(),
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::from_secs(300),
        )
        .as_secs();
    let max_body_bytes = raw.server.max_body_bytes.unwrap_or(64 * 1024);
    if !(1024..=1024 * 1024).contains(&max_body_bytes) {
        c.push("server.max_body_bytes", "must be between 1024 and 1048576");
    }
    let max_token_bytes = raw.server.max_token_bytes.unwrap_or(16 * 1024);
    if max_token_bytes < 1024 || max_token_bytes > max_body_bytes {
        c.push(
            "server.max_token_bytes",
            "must be at least 1024 and at most server.max_body_bytes",
        );
    }

    let log_format = match raw.log.format.as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("pretty") => LogFormat::Pretty,
        Some(_) => {
            c.push("log.format", "must be \"json\" or \"pretty\"");
            LogFormat::Json
        }
    };
    let log_level = raw.log.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        c.push(
            "log.level",
            "not a tracing filter, e.g. \"info\" or \"lanyard=debug,info\"",
        );
    }

    let store = match raw.store.backend.as_deref() {
        None | Some("embedded") => {
            let redis_only = [
                ("store.url", raw.store.url.is_some() && !redis_url_from_env),
                ("store.key_prefix", raw.store.key_prefix.is_some()),
                ("store.connect_timeout", raw.store.connect_timeout.is_some()),
                (
                    "store.response_timeout",
                    raw.store.response_timeout.is_some(),
                ),
            ];
            for (field, set) in redis_only {
                if set {
                    c.push(field, "only used with backend = \"redis\"");
                }
            }
            if redis_url_from_env {
                c.env_push(
                    "LANYARD_REDIS_URL",
                    "set, but store.backend is \"embedded\": set backend = \"redis\" or unset the variable",
                );
            }
            StoreSettings::Embedded {
                path: resolve(
                    raw.store.path.as_deref().unwrap_or("data/lanyard.redb"),
                    "store",
                ),
            }
        }
        Some("redis") => StoreSettings::Redis(redis_settings(
            &mut c,
            &raw.store,
            redis_url_from_env,
            env_paths.contains(&"store"),
        )),
        Some(_) => {
            c.push("store.backend", "must be \"embedded\" or \"redis\"");
            StoreSettings::Embedded {
                path: PathBuf::new(),
            }
        }
    };

    let algorithm = match raw.keys.algorithm.as_deref() {
        None => SigningAlg::Es256,
        Some(a) => SigningAlg::parse(a).unwrap_or_else(|| {
            c.push(
                "keys.algorithm",
                "must be \"ES256\", \"RS256\" or \"EdDSA\"",
            );
            SigningAlg::Es256
        }),
    };
    let jwks_max_age = c.duration(
        "keys.jwks_max_age",
        raw.keys.jwks_max_age.as_deref(),
        Duration::from_secs(300),
        Duration::ZERO,
        Duration::from_secs(86_400),
    );
    let publish_lead = c.duration(
        "keys.publish_lead",
        raw.keys.publish_lead.as_deref(),
        jwks_max_age,
        Duration::ZERO,
        Duration::from_secs(7 * 86_400),
    );
    if publish_lead < jwks_max_age {
        c.push(
            "keys.publish_lead",
            "must be at least keys.jwks_max_age, or verifiers with a cached JWKS would meet a key they have not seen",
        );
    }
    let keys = KeySettings {
        dir: resolve(raw.keys.dir.as_deref().unwrap_or("keys/local"), "keys"),
        algorithm,
        publish_lead,
        jwks_max_age,
        reload_interval: c.duration(
            "keys.reload_interval",
            raw.keys.reload_interval.as_deref(),
            Duration::from_secs(5),
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
    };

    let idp = issuer(
        &mut c,
        "idp",
        Role::Idp,
        raw.idp.as_ref(),
        Duration::from_secs(300),
        Duration::from_secs(300),
    );
    let ras = issuer(
        &mut c,
        "authorization_server",
        Role::AuthorizationServer,
        raw.authorization_server.as_ref(),
        Duration::from_secs(600),
        Duration::from_secs(3600),
    );
    match (&idp, &ras) {
        (None, None) if c.errors.is_empty() => c.push(
            "authorization_server",
            "no role is enabled: configure [idp], [authorization_server] or both",
        ),
        (Some(a), Some(b)) if a.issuer == b.issuer || a.path == b.path => c.push(
            "authorization_server.issuer",
            "the two roles are separate trust domains: give them distinct issuer paths",
        ),
        _ => {}
    }

    let policy_file = resolve(
        raw.policy.file.as_deref().unwrap_or("policy.toml"),
        "policy",
    );
    let policy_reload_interval = c.duration(
        "policy.reload_interval",
        raw.policy.reload_interval.as_deref(),
        Duration::from_secs(5),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    );

    let approval_pending_ttl = c.duration(
        "approvals.pending_ttl",
        raw.approvals.pending_ttl.as_deref(),
        Duration::from_secs(15 * 60),
        Duration::from_secs(1),
        Duration::from_secs(24 * 3600),
    );
    let approval_ttl = c.duration(
        "approvals.approved_ttl",
        raw.approvals.approved_ttl.as_deref(),
        Duration::from_secs(5 * 60),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );

    let runtime_grant_max_ttl = c.duration(
        "runtime_grants.max_ttl",
        raw.runtime_grants.max_ttl.as_deref(),
        Duration::from_secs(30 * 86_400),
        Duration::from_secs(60),
        Duration::from_secs(366 * 86_400),
    );
    let runtime_grant_ttl = c.duration(
        "runtime_grants.default_ttl",
        raw.runtime_grants.default_ttl.as_deref(),
        Duration::from_secs(7 * 86_400).min(runtime_grant_max_ttl),
        Duration::from_secs(60),
        runtime_grant_max_ttl,
    );
    let webhook_url =
        raw.notifications
            .webhook_url
            .as_deref()
            .and_then(|w| match url::Url::parse(w) {
                Ok(u) if webhook_url_ok(&u) => Some(u),
                _ => {
                    c.push(
                        "notifications.webhook_url",
                        "must be an https URL, or http on a loopback address",
                    );
                    None
                }
            });
    let tls = raw.server.tls.as_ref().map(|t| {
        let mut file = |key: &str, v: &Option<String>| -> PathBuf {
            match v {
                Some(p) => resolve(p, "tls"),
                None => {
                    c.push(&format!("server.tls.{key}"), "missing: a PEM file");
                    PathBuf::new()
                }
            }
        };
        let cert_file = file("cert_file", &t.cert_file);
        let key_file = file("key_file", &t.key_file);
        let client_ca_file = t.client_ca_file.as_deref().map(|p| resolve(p, "tls"));
        let require_client_cert = t.require_client_cert.unwrap_or(false);
        if require_client_cert && client_ca_file.is_none() {
            c.push(
                "server.tls.require_client_cert",
                "needs server.tls.client_ca_file",
            );
        }
        crate::tls::TlsSettings {
            cert_file,
            key_file,
            client_ca_file,
            require_client_cert,
        }
    });
    let defaults = LimitSettings::default();
    let mut rate = |field: &str, v: &Option<String>, d: Option<Rate>| match v.as_deref() {
        None => d,
        Some("off") => None,
        Some(s) => match Rate::parse(s) {
            Some(r) => Some(r),
            None => {
                c.push(
                    field,
                    "not a rate: write e.g. \"50/s\", \"600/m\", \"1000/h\" or \"off\"",
                );
                d
            }
        },
    };
    let per_client = rate(
        "limits.per_client",
        &raw.limits.per_client,
        defaults.per_client,
    );
    let per_address = rate(
        "limits.per_address",
        &raw.limits.per_address,
        defaults.per_address,
    );
    if raw.limits.burst == Some(0) {
        c.push("limits.burst", "must be at least 1");
    }
    let max_concurrent_requests = raw
        .server
        .max_concurrent_requests
        .unwrap_or(defaults.max_concurrent_requests);
    if !(1..=1_000_000).contains(&max_concurrent_requests) {
        c.push(
            "server.max_concurrent_requests",
            "must be between 1 and 1000000",
        );
    }
    let limits = LimitSettings {
        per_client,
        per_address,
        burst: raw.limits.burst,
        max_concurrent_requests,
    };

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Settings {
        listen,
        request_timeout,
        shutdown_grace,
        max_body_bytes,
        form: FormLimits {
            max_token_bytes,
            ..FormLimits::default()
        },
        leeway,
        log_format,
        log_level,
        store,
        keys,
        idp,
        authorization_server: ras,
        policy_file,
        policy_reload_interval,
        approval_pending_ttl,
        approval_ttl,
        allow_private_addresses: raw.outbound.allow_private_addresses.unwrap_or(false),
        access: AccessSettings {
            runtime_grant_ttl,
            runtime_grant_max_ttl,
            webhook_url,
        },
        tls,
        limits,
    })
}

/// The `[store]` table with `backend = "redis"`.
fn redis_settings(
    c: &mut Collector<'_>,
    raw: &RawStore,
    url_from_env: bool,
    path_from_env: bool,
) -> RedisSettings {
    if raw.path.is_some() {
        if path_from_env {
            c.env_push(
                "LANYARD_STORE_PATH",
                "set, but store.backend is \"redis\": unset the variable",
            );
        } else {
            c.push("store.path", "only used with backend = \"embedded\"");
        }
    }
    let url = match raw.url.as_deref() {
        None => {
            c.push(
                "store.url",
                "missing: the Redis URL, e.g. \"redis://redis.internal:6379/0\" (or set LANYARD_REDIS_URL)",
            );
            String::new()
        }
        Some(u) => {
            if let Err(m) = check_redis_url(u) {
                if url_from_env {
                    c.env_push("LANYARD_REDIS_URL", m);
                } else {
                    c.push("store.url", m);
                }
            }
            u.to_owned()
        }
    };
    let key_prefix = raw.key_prefix.clone().unwrap_or_else(|| "lanyard:".into());
    if key_prefix.is_empty()
        || key_prefix.len() > 64
        || key_prefix
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        c.push(
            "store.key_prefix",
            "must be 1 to 64 characters with no spaces or control characters, e.g. \"lanyard:\"",
        );
    }
    let timeout = |c: &mut Collector<'_>, field: &str, v: Option<&str>| {
        c.duration(
            field,
            v,
            Duration::from_secs(1),
            Duration::from_millis(50),
            Duration::from_secs(60),
        )
    };
    RedisSettings {
        url: RedisUrl(url),
        key_prefix,
        connect_timeout: timeout(c, "store.connect_timeout", raw.connect_timeout.as_deref()),
        response_timeout: timeout(c, "store.response_timeout", raw.response_timeout.as_deref()),
    }
}

/// A Redis URL lanyard can use: `redis://host[:port][/db]`, `rediss://…` (TLS) or
/// `unix:///path/to/socket`. The message never repeats the URL (it may hold a password).
pub fn check_redis_url(u: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(u)
        .map_err(|_| "not a URL; write e.g. \"redis://redis.internal:6379/0\"")?;
    match url.scheme() {
        "redis" | "rediss" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err("names no host; write e.g. \"redis://redis.internal:6379/0\"");
            }
            let db = url.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u16>().is_err() {
                return Err("the path must be a database number, e.g. \"/0\"");
            }
        }
        "unix" => {
            if url.path().len() <= 1 {
                return Err("names no socket; write e.g. \"unix:///run/redis/redis.sock\"");
            }
        }
        _ => return Err("must be a redis://, rediss:// or unix:// URL"),
    }
    if url.fragment().is_some() {
        return Err("a Redis URL has no fragment");
    }
    Ok(())
}

fn issuer(
    c: &mut Collector<'_>,
    table: &str,
    role: Role,
    raw: Option<&RawIssuer>,
    default_ttl: Duration,
    max_ttl: Duration,
) -> Option<IssuerSettings> {
    let raw = raw?;
    if raw.enabled == Some(false) {
        return None;
    }
    let field = format!("{table}.issuer");
    let ttl = c.duration(
        &format!("{table}.max_token_ttl"),
        raw.max_token_ttl.as_deref(),
        default_ttl,
        Duration::from_secs(30),
        max_ttl,
    );
    let Some(iss) = raw.issuer.as_deref() else {
        c.push(
            &field,
            "missing: the issuer identifier, e.g. \"https://lanyard.example.com/as\"",
        );
        return None;
    };
    match check_issuer(iss) {
        Ok(path) => Some(IssuerSettings {
            role,
            issuer: iss.to_owned(),
            path,
            max_token_ttl: ttl,
            require_dpop_nonce: raw.require_dpop_nonce.unwrap_or(false),
        }),
        Err(m) => {
            c.push(&field, m);
            None
        }
    }
}

/// RFC 8414 §2: an https URL with no query or fragment. Plain http is allowed only on a
/// loopback host, for development. Returns the path without its trailing slash.
pub fn check_issuer(iss: &str) -> Result<String, &'static str> {
    let url = url::Url::parse(iss).map_err(|_| "not an absolute URL")?;
    if url.query().is_some() || url.fragment().is_some() || iss.contains(['?', '#']) {
        return Err("an issuer has no query or fragment (RFC 8414 §2)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an issuer carries no user information");
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err("must be https (plain http only on a loopback host)"),
        _ => return Err("must be an https URL"),
    }
    Ok(url.path().trim_end_matches('/').to_owned())
}

/// Whether a URL's host is a loopback name or address.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn runtime_grant_lifetimes_and_webhook_are_checked() {
        let base = include_str!("../lanyard.example.toml");
        let s = parse(base, Path::new("/etc/lanyard"), &no_env).expect("example config is valid");
        assert_eq!(s.access.runtime_grant_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(
            s.access.runtime_grant_max_ttl,
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(s.access.webhook_url, None);
        let with = |hook: &str| {
            let text = base.replace(
                "# webhook_url = \"https://hooks.example.com/lanyard\"",
                &format!("webhook_url = \"{hook}\""),
            );
            parse(&text, Path::new("/etc/lanyard"), &no_env).map(|s| s.access.webhook_url)
        };
        assert!(with("https://hooks.example.com/x").is_ok_and(|u| u.is_some()));
        assert!(with("http://127.0.0.1:9/x").is_ok_and(|u| u.is_some()));
        assert!(with("http://localhost:9/x").is_ok_and(|u| u.is_some()));
        let e = with("http://hooks.example.com/x").expect_err("plain http off loopback");
        assert!(e.0.iter().any(|e| e.field == "notifications.webhook_url"));
        assert!(with("ftp://127.0.0.1/x").is_err());
        let long = base.replace("default_ttl = \"7d\"", "default_ttl = \"60d\"");
        assert!(
            parse(&long, Path::new("/etc/lanyard"), &no_env).is_err(),
            "default above max"
        );
    }

    /// The shipped example must stay valid: operators copy it.
    #[test]
    fn example_config_parses() {
        let text = include_str!("../lanyard.example.toml");
        let s = parse(text, Path::new("/etc/lanyard"), &no_env).expect("example config is valid");
        assert_eq!(s.idp.as_ref().map(|i| i.path.as_str()), Some("/idp"));
        assert_eq!(
            s.authorization_server.as_ref().map(|i| i.path.as_str()),
            Some("/as")
        );
        assert_eq!(s.keys.algorithm, SigningAlg::Es256);
    }

    #[test]
    fn every_error_is_reported_with_its_field() {
        let text = r#"
version = 1
[server]
listen = "nowhere"
leeway = "forever"
[keys]
algorithm = "HS256"
[idp]
issuer = "http://idp.example.com"
[authorization_server]
issuer = "https://as.example.com?x=1"
max_token_ttl = "2h"
"#;
        let errs = parse(text, Path::new("."), &no_env).expect_err("invalid").0;
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "server.listen",
                "server.leeway",
                "keys.algorithm",
                "idp.issuer",
                "authorization_server.max_token_ttl",
                "authorization_server.issuer",
            ]
        );
        assert_eq!(errs[0].line, Some(4));
        assert_eq!(errs[2].line, Some(7));
        assert_eq!(errs[5].line, Some(11));
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let errs = parse(
            "version = 1\n[server]\nlisten_addr = \"x\"\n",
            Path::new("."),
            &no_env,
        )
        .expect_err("unknown field")
        .0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(3));
        assert!(
            errs[0].message.contains("listen_addr"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn wrong_version_is_refused() {
        let errs = parse(
            "version = 2\n[idp]\nissuer = \"https://a.example\"\n",
            Path::new("."),
            &no_env,
        )
        .expect_err("version")
        .0;
        assert_eq!(errs[0].field, "version");
    }

    #[test]
    fn roles_must_be_distinct_trust_domains() {
        let text = "version = 1\n[idp]\nissuer = \"https://x.example/t\"\n[authorization_server]\nissuer = \"https://x.example/t/\"\n";
        let errs = parse(text, Path::new("."), &no_env)
            .expect_err("same path")
            .0;
        assert_eq!(errs[0].field, "authorization_server.issuer");
    }

    #[test]
    fn environment_overrides_file_and_is_validated() {
        let text = "version = 1\n[authorization_server]\nissuer = \"https://as.example\"\n";
        let env = |k: &str| match k {
            "LANYARD_AS_ISSUER" => Some("https://other.example/as".to_owned()),
            "LANYARD_LISTEN" => Some("0.0.0.0:9000".to_owned()),
            "LANYARD_IDP_ISSUER" => Some("https://idp.example".to_owned()),
            _ => None,
        };
        let errs = parse(text, Path::new("."), &env)
            .expect_err("idp override without table")
            .0;
        assert_eq!(errs[0].field, "$LANYARD_IDP_ISSUER");
        let env2 = |k: &str| {
            if k == "LANYARD_IDP_ISSUER" {
                None
            } else {
                env(k)
            }
        };
        let s = parse(text, Path::new("."), &env2).expect("valid");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(
            s.authorization_server.map(|i| i.issuer),
            Some("https://other.example/as".to_owned())
        );
    }

    /// The example's commented Redis fields, switched on, form a valid Redis configuration.
    #[test]
    fn example_config_parses_with_tls_and_limits() {
        let text = include_str!("../lanyard.example.toml")
            .replace("# [server.tls]", "[server.tls]")
            .replace("# cert_file = ", "cert_file = ")
            .replace("# key_file = ", "key_file = ")
            .replace("# client_ca_file = ", "client_ca_file = ")
            .replace(
                "# require_client_cert = false",
                "require_client_cert = true",
            )
            .replace("# burst = ", "burst = ");
        let s = parse(&text, Path::new("/etc/lanyard"), &no_env).expect("tls example is valid");
        let tls = s.tls.expect("tls configured");
        assert_eq!(tls.cert_file, Path::new("/etc/lanyard/tls/server.pem"));
        assert_eq!(tls.key_file, Path::new("/etc/lanyard/tls/server.key"));
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/lanyard/tls/clients-ca.pem"))
        );
        assert!(tls.require_client_cert);
        let one_sec = Duration::from_secs(1);
        assert_eq!(
            s.limits.per_client,
            Some(Rate {
                count: 50,
                per: one_sec
            })
        );
        assert_eq!(
            s.limits.per_address,
            Some(Rate {
                count: 100,
                per: one_sec
            })
        );
        assert_eq!(s.limits.burst, Some(50));
        assert_eq!(s.limits.max_concurrent_requests, 1024);
    }

    #[test]
    fn tls_and_limit_mistakes_are_reported_by_field() {
        let text = "version = 1\n[server.tls]\nkey_file = \"k.pem\"\nrequire_client_cert = true\n[limits]\nper_client = \"fast\"\nper_address = \"off\"\nburst = 0\n";
        let e = parse(text, Path::new("/x"), &no_env).expect_err("refused");
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "server.tls.cert_file",
            "server.tls.require_client_cert",
            "limits.per_client",
            "limits.burst",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
        assert!(!fields.contains(&"limits.per_address"));
    }

    #[test]
    fn rates_parse_per_second_minute_and_hour() {
        assert_eq!(
            Rate::parse("600/m"),
            Some(Rate {
                count: 600,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(
            Rate::parse(" 5 / h"),
            Some(Rate {
                count: 5,
                per: Duration::from_secs(3600)
            })
        );
        for bad in ["0/s", "5", "5/d", "-1/s", "x/s"] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn example_config_parses_with_the_redis_backend() {
        let text = include_str!("../lanyard.example.toml")
            .replace("backend = \"embedded\"", "backend = \"redis\"")
            .replace("path = \"data/lanyard.redb\"", "")
            .replace("# url = ", "url = ")
            .replace("# key_prefix = ", "key_prefix = ")
            .replace("# connect_timeout = ", "connect_timeout = ")
            .replace("# response_timeout = ", "response_timeout = ");
        let s = parse(&text, Path::new("/etc/lanyard"), &no_env).expect("redis example is valid");
        let StoreSettings::Redis(r) = s.store else {
            panic!("not the redis backend: {:?}", s.store)
        };
        assert_eq!(r.url.expose(), "redis://redis.internal:6379/0");
        assert_eq!(r.key_prefix, "lanyard:");
        assert_eq!(r.connect_timeout, Duration::from_secs(1));
    }

    const REDIS_BASE: &str =
        "version = 1\n[authorization_server]\nissuer = \"https://as.example\"\n";

    #[test]
    fn redis_url_comes_from_the_environment_and_is_hidden_from_logs() {
        let text = format!("{REDIS_BASE}[store]\nbackend = \"redis\"\nkey_prefix = \"prod:\"\n");
        let env = |k: &str| {
            (k == "LANYARD_REDIS_URL")
                .then(|| "rediss://lanyard:hunter2@redis.example:6380/2".to_owned())
        };
        let s = parse(&text, Path::new("."), &env).expect("valid");
        let StoreSettings::Redis(r) = &s.store else {
            panic!("not redis")
        };
        assert_eq!(r.key_prefix, "prod:");
        assert_eq!(
            r.url.expose(),
            "rediss://lanyard:hunter2@redis.example:6380/2"
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis.example"), "{shown}");
    }

    #[test]
    fn redis_settings_are_checked_with_their_field() {
        let errs = |store: &str, env: &dyn Fn(&str) -> Option<String>| -> Vec<String> {
            parse(
                &format!("{REDIS_BASE}[store]\n{store}"),
                Path::new("."),
                env,
            )
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|e| e.field)
            .collect()
        };
        assert_eq!(errs("backend = \"redis\"\n", &no_env), ["store.url"]);
        assert_eq!(
            errs(
                "backend = \"redis\"\nurl = \"http://redis:6379\"\npath = \"x.redb\"\nkey_prefix = \"\"\nconnect_timeout = \"1ms\"\n",
                &no_env
            ),
            [
                "store.path",
                "store.url",
                "store.key_prefix",
                "store.connect_timeout"
            ]
        );
        assert_eq!(
            errs("url = \"redis://r:6379\"\nkey_prefix = \"x:\"\n", &no_env),
            ["store.url", "store.key_prefix"],
            "redis fields with the embedded backend"
        );
        let bad_env = |k: &str| (k == "LANYARD_REDIS_URL").then(|| "redis://".to_owned());
        assert_eq!(
            errs("backend = \"redis\"\n", &bad_env),
            ["$LANYARD_REDIS_URL"]
        );
        let env = |k: &str| (k == "LANYARD_REDIS_URL").then(|| "redis://r:6379".to_owned());
        assert_eq!(
            errs("backend = \"embedded\"\n", &env),
            ["$LANYARD_REDIS_URL"],
            "a Redis URL set for an embedded store is a mistake, not ignored"
        );
        assert_eq!(
            errs("backend = \"memcached\"\n", &no_env),
            ["store.backend"]
        );
    }

    #[test]
    fn redis_url_rules() {
        assert!(check_redis_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_redis_url("redis://:pw@redis.internal").is_ok());
        assert!(check_redis_url("rediss://u:pw@redis.example:6380/3").is_ok());
        assert!(check_redis_url("unix:///run/redis/redis.sock").is_ok());
        assert!(check_redis_url("redis://").is_err());
        assert!(check_redis_url("redis://h/notadb").is_err());
        assert!(check_redis_url("unix://").is_err());
        assert!(check_redis_url("http://h:6379").is_err());
        assert!(check_redis_url("h:6379").is_err());
        assert!(
            check_redis_url("redis://u:secretpw@").is_err_and(|m| !m.contains("secretpw")),
            "messages never repeat the URL"
        );
    }

    #[test]
    fn issuer_rules() {
        assert_eq!(check_issuer("https://a.example/as"), Ok("/as".into()));
        assert_eq!(check_issuer("https://a.example"), Ok("".into()));
        assert_eq!(check_issuer("http://127.0.0.1:8080/idp"), Ok("/idp".into()));
        assert_eq!(check_issuer("http://localhost:1/"), Ok("".into()));
        assert!(check_issuer("http://a.example").is_err());
        assert!(check_issuer("https://a.example/#f").is_err());
        assert!(check_issuer("https://u:p@a.example").is_err());
        assert!(check_issuer("a.example").is_err());
    }
}
