//! The validated settings the server runs with: every value checked, every path resolved,
//! every default applied.

use super::*;

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
pub struct RedisUrl(pub(super) String);

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
        "http" => crate::oauth::issuer::is_loopback(u),
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
