//! The only outbound HTTP: discovery and JWKS of trusted upstream parties — enterprise IdPs
//! (OIDC discovery through `openidconnect`), trusted ID-JAG issuers and workload issuers
//! (RFC 8414, then OIDC discovery).
//!
//! Every fetch: https (http only on loopback, or where the policy explicitly allows it for
//! development), no redirects followed, connect and total timeouts, a response size cap.
//! Keys are cached per issuer and parsed once; an unknown `kid` triggers one rate-limited
//! refresh. If keys cannot be had, callers get [`Unavailable`] and issue nothing (fail
//! closed); the next request after the back-off tries again, so service resumes by itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use openidconnect::core::CoreProviderMetadata;
use openidconnect::{HttpRequest, HttpResponse, IssuerUrl};
use serde_json::Value;

use crate::crypto::verify::KeySet;

/// Largest discovery document or JWKS read.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Cached keys are re-fetched after this long even if every `kid` is known.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// At most one refresh per issuer within this interval (unknown `kid`s cannot hammer it).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// After a failed fetch, wait this long before trying again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);

/// Keys of an upstream party could not be obtained: answer 503, issue nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("keys unavailable for {issuer}: {reason}")]
pub struct Unavailable {
    /// The issuer.
    pub issuer: String,
    /// Why (for logs).
    pub reason: String,
}

/// A bounded HTTP client for discovery and JWKS.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    allow_private: bool,
}

/// Whether `ip` is outside the public internet: loopback, private (RFC 1918, unique local),
/// link-local, carrier-grade NAT, unspecified, broadcast, multicast, documentation.
pub fn is_non_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v) => {
            if let Some(m) = v.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(m));
            }
            let s = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// DNS resolution that drops non-public addresses (SSRF guard for discovery documents that
/// point elsewhere).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_non_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to non-public addresses (outbound.allow_private_addresses is off)"
                )
                .into());
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FetchError(String);

impl Fetcher {
    /// A client with no redirects and the given total timeout; `allow_private` lets it reach
    /// loopback and private addresses (otherwise names resolving only to them, and such IP
    /// literals, are refused).
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder();
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .user_agent(concat!("lanyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    async fn execute(&self, req: HttpRequest) -> Result<HttpResponse, FetchError> {
        let url = req.uri().to_string();
        // IP literals never reach the resolver: check them here.
        if !self.allow_private
            && let Some(ip) = req
                .uri()
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok())
            && is_non_public(ip)
        {
            return Err(FetchError(format!(
                "GET {url}: non-public address refused (outbound.allow_private_addresses is off)"
            )));
        }
        let mut resp = self
            .client
            .request(req.method().clone(), &url)
            .headers(req.headers().clone())
            .body(req.body().clone())
            .send()
            .await
            .map_err(|e| FetchError(format!("GET {url}: {e}")))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError(format!("GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(FetchError(format!(
                    "GET {url}: response larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// GET a JSON document (bounded, no redirects).
    pub async fn get_json(&self, url: &str) -> Result<Value, String> {
        let req = openidconnect::http::Request::builder()
            .uri(url)
            .header("accept", "application/json")
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let resp = self.execute(req).await.map_err(|e| e.0)?;
        if resp.status() != openidconnect::http::StatusCode::OK {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        serde_json::from_slice(resp.body()).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

/// How an upstream party's keys are found.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// OpenID Connect discovery at the issuer (enterprise IdPs), through `openidconnect`.
    OidcDiscovery,
    /// RFC 8414 metadata, then OIDC discovery (ID-JAG issuers, workload issuers).
    AsMetadata,
    /// A JWKS fetched from an explicitly configured URL (a resource server that is told
    /// where lanyard's keys are instead of discovering them).
    JwksUri(String),
    /// A static JWKS from the policy (air-gapped).
    Static(Value),
}

/// One upstream party's keys, cached.
pub struct UpstreamKeys {
    /// Issuer identifier.
    pub issuer: String,
    source: KeySource,
    algs: Vec<&'static str>,
    insecure_http: bool,
    cached: ArcSwapOption<(KeySet, Instant)>,
    refresh: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl UpstreamKeys {
    /// A party with pinned algorithms.
    pub fn new(
        issuer: &str,
        source: KeySource,
        algs: Vec<&'static str>,
        insecure_http: bool,
    ) -> Self {
        let me = Self {
            issuer: issuer.to_owned(),
            source,
            algs,
            insecure_http,
            cached: ArcSwapOption::empty(),
            refresh: tokio::sync::Mutex::new(None),
        };
        if let KeySource::Static(jwks) = &me.source {
            match KeySet::from_jwks(jwks, &me.algs) {
                Ok(k) => me.cached.store(Some(Arc::new((k, Instant::now())))),
                Err(e) => tracing::error!(issuer, error = %e, "static JWKS has no usable key"),
            }
        }
        me
    }

    /// Whether this entry describes the same party as `other` (to keep caches on reload).
    pub fn same_as(&self, source: &KeySource, algs: &[&'static str], insecure_http: bool) -> bool {
        &self.source == source && self.algs == algs && self.insecure_http == insecure_http
    }

    /// Tell the cached keys that `token`, just signed by lanyard with its key `kid`, verifies
    /// ([`KeySet::vouch`]). Nothing happens if no keys are cached or none is that key.
    pub fn vouch(&self, token: &str, kid: &str, alg: &str, now: u64, until: u64) {
        if let Some(c) = self.cached.load().as_ref() {
            c.0.vouch(token, kid, alg, now, until);
        }
    }

    /// The pinned algorithms.
    pub fn algorithms(&self) -> &[&'static str] {
        &self.algs
    }

    /// Keys able to verify a token with this `kid`: cached ones, refreshed once (rate
    /// limited) if the `kid` is unknown or the cache is old or empty.
    pub async fn keys_for(
        &self,
        fetcher: &Fetcher,
        kid: Option<&str>,
    ) -> Result<Arc<(KeySet, Instant)>, Unavailable> {
        let current = self.cached.load_full();
        if let Some(c) = &current
            && kid.is_none_or(|k| c.0.has_kid(k))
            && c.1.elapsed() < MAX_KEY_AGE
        {
            return Ok(c.clone());
        }
        if matches!(self.source, KeySource::Static(_)) {
            return current.ok_or_else(|| self.unavailable("static JWKS has no usable key"));
        }
        let mut last = self.refresh.lock().await;
        // Another request may have refreshed while we waited for the lock.
        if let Some(c) = self.cached.load_full()
            && kid.is_none_or(|k| c.0.has_kid(k))
            && c.1.elapsed() < MAX_KEY_AGE
        {
            return Ok(c);
        }
        if let Some((at, ok)) = *last {
            let wait = if ok {
                MIN_REFRESH_INTERVAL
            } else {
                FAILURE_BACKOFF
            };
            if at.elapsed() < wait {
                // Too soon to ask again: answer from the cache (an unknown kid then fails
                // verification), or fail closed if there is nothing cached.
                return current
                    .ok_or_else(|| self.unavailable("previous fetch failed; backing off"));
            }
        }
        let fetched = self.fetch(fetcher).await;
        *last = Some((Instant::now(), fetched.is_ok()));
        match fetched {
            Ok(jwks) => match KeySet::from_jwks(&jwks, &self.algs) {
                Ok(set) => {
                    let entry = Arc::new((set, Instant::now()));
                    self.cached.store(Some(entry.clone()));
                    tracing::info!(issuer = %self.issuer, "upstream keys refreshed");
                    Ok(entry)
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, error = %e, "upstream JWKS unusable");
                    current.ok_or_else(|| self.unavailable(&e))
                }
            },
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "upstream key fetch failed");
                // Keys already known stay usable through an outage of the JWKS endpoint.
                current.ok_or_else(|| self.unavailable(&e))
            }
        }
    }

    fn unavailable(&self, reason: &str) -> Unavailable {
        Unavailable {
            issuer: self.issuer.clone(),
            reason: reason.to_owned(),
        }
    }

    fn check_url(&self, url: &str) -> Result<(), String> {
        let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        match u.scheme() {
            "https" => Ok(()),
            "http" if crate::oauth::issuer::is_loopback(&u) || self.insecure_http => Ok(()),
            _ => Err(format!("{url}: https required")),
        }
    }

    async fn fetch(&self, f: &Fetcher) -> Result<Value, String> {
        self.check_url(&self.issuer)?;
        match &self.source {
            KeySource::Static(v) => Ok(v.clone()),
            KeySource::JwksUri(u) => {
                self.check_url(u)?;
                f.get_json(u).await
            }
            KeySource::OidcDiscovery => {
                let issuer = IssuerUrl::new(self.issuer.clone()).map_err(|e| e.to_string())?;
                let client = |req: HttpRequest| {
                    let f = f.clone();
                    async move { f.execute(req).await }
                };
                let md = CoreProviderMetadata::discover_async(issuer, &client)
                    .await
                    .map_err(|e| {
                        let mut msg = e.to_string();
                        let mut src = std::error::Error::source(&e);
                        while let Some(s) = src {
                            msg.push_str(&format!(": {s}"));
                            src = s.source();
                        }
                        msg
                    })?;
                self.check_url(md.jwks_uri().as_str())?;
                serde_json::to_value(md.jwks()).map_err(|e| e.to_string())
            }
            KeySource::AsMetadata => {
                let u = url::Url::parse(&self.issuer).map_err(|e| e.to_string())?;
                let path = u.path().trim_end_matches('/');
                let origin = u.origin().ascii_serialization();
                let candidates = [
                    format!("{origin}/.well-known/oauth-authorization-server{path}"),
                    format!(
                        "{}/.well-known/openid-configuration",
                        self.issuer.trim_end_matches('/')
                    ),
                ];
                let mut last_err = String::new();
                for c in candidates {
                    match f.get_json(&c).await {
                        Ok(md) => {
                            // RFC 8414 §3.3: the document must name exactly this issuer.
                            if md.get("issuer").and_then(Value::as_str)
                                != Some(self.issuer.as_str())
                            {
                                return Err(format!("{c}: issuer mismatch"));
                            }
                            let jwks_uri = md
                                .get("jwks_uri")
                                .and_then(Value::as_str)
                                .ok_or(format!("{c}: no jwks_uri"))?;
                            self.check_url(jwks_uri)?;
                            return f.get_json(jwks_uri).await;
                        }
                        Err(e) => last_err = e,
                    }
                }
                Err(last_err)
            }
        }
    }
}

/// Every upstream party of the current policy, by issuer.
#[derive(Default)]
pub struct Upstreams {
    by_issuer: HashMap<String, Arc<UpstreamKeys>>,
}

impl Upstreams {
    /// Build for a new policy, keeping caches of parties that did not change.
    pub fn rebuild(&self, wanted: Vec<(String, KeySource, Vec<&'static str>, bool)>) -> Self {
        let mut by_issuer = HashMap::new();
        for (issuer, source, algs, insecure) in wanted {
            let entry = match self.by_issuer.get(&issuer) {
                Some(old) if old.same_as(&source, &algs, insecure) => old.clone(),
                _ => Arc::new(UpstreamKeys::new(&issuer, source, algs, insecure)),
            };
            by_issuer.insert(issuer, entry);
        }
        Self { by_issuer }
    }

    /// The party with this issuer.
    pub fn get(&self, issuer: &str) -> Option<&Arc<UpstreamKeys>> {
        self.by_issuer.get(issuer)
    }
}

#[cfg(test)]
mod tests {
    use super::is_non_public;

    #[test]
    fn non_public_addresses_table() {
        for (ip, want) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("100.128.0.1", false),
            ("0.1.2.3", true),
            ("8.8.8.8", false),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("2001:4860:4860::8888", false),
        ] {
            assert_eq!(is_non_public(ip.parse().unwrap()), want, "{ip}");
        }
    }
}
