//! Validation: the file as written ([`RawConfig`]) and the environment overrides become
//! [`Settings`], with every problem collected (field path, line where known) before
//! giving up.

use super::*;

pub(super) struct Collector<'a> {
    pub(super) errors: Vec<ConfigError>,
    pub(super) text: &'a str,
}

impl Collector<'_> {
    pub(super) fn push(&mut self, field: &str, message: impl Into<String>) {
        let (table, key) = field.rsplit_once('.').unwrap_or(("", field));
        self.errors.push(ConfigError {
            field: field.to_owned(),
            line: find_line(self.text, table, key),
            message: message.into(),
        });
    }

    pub(super) fn env_push(&mut self, var: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: format!("${var}"),
            line: None,
            message: message.into(),
        });
    }

    /// A duration field with a default and bounds.
    pub(super) fn duration(
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

pub(super) fn validate(
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
pub(super) fn redis_settings(
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

pub(super) fn issuer(
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
        "http" if crate::oauth::issuer::is_loopback(&url) => {}
        "http" => return Err("must be https (plain http only on a loopback host)"),
        _ => return Err("must be an https URL"),
    }
    Ok(url.path().trim_end_matches('/').to_owned())
}
