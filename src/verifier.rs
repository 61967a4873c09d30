//! Verifying lanyard access tokens at a resource server (RFC 9068 §4, RFC 9449 §7).
//!
//! A resource server builds one [`Verifier`] for its resource identifier and lanyard's
//! resource-AS issuer. The verifier fetches lanyard's JWKS (through RFC 8414 discovery at the
//! issuer, or from a configured `jwks_uri`), caches it, refreshes it once — rate limited — on
//! an unknown `kid`, and fails closed when no keys can be had. Each request's presented
//! credentials ([`Presented`]) are checked in this order: scheme and header shape, compact
//! JWS, `typ: at+jwt`, pinned algorithm and signature, then the claims
//! ([`crate::core::access::check`]), then the DPoP binding: a bound token only with the
//! `DPoP` scheme and a proof whose key thumbprint is the token's `cnf.jkt`, whose `htm`/`htu`
//! name this request, whose `ath` is the token's hash, and whose `jti` has not been seen.
//!
//! The axum/tower layer that turns this into 401/403 responses with `WWW-Authenticate`
//! challenges lives in [`crate::http::require`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, UnixTime};
use crate::core::Rejection;
use crate::core::access::{self, Expected, Principal};
use crate::core::claims::AccessTokenIn;
use crate::crypto::dpop::{self, MAX_PROOF_AGE, ProofError};
use crate::crypto::verify;
use crate::idp::{Fetcher, KeySource, UpstreamKeys};

/// Most DPoP proof `jti`s remembered at once; beyond it new proofs are refused (fail closed)
/// until old ones age out of the acceptance window.
const MAX_REMEMBERED_PROOFS: usize = 200_000;

/// How a [`Verifier`] is set up.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// lanyard's resource-AS issuer identifier, exactly as in its metadata.
    pub issuer: String,
    /// This resource's identifier: the `aud` lanyard puts in tokens for it.
    pub audience: String,
    /// Where the keys are: `None` discovers `jwks_uri` through RFC 8414 metadata at the
    /// issuer (checking that the metadata names the issuer byte for byte).
    pub jwks_uri: Option<String>,
    /// The signing algorithms accepted (lanyard's `keys.algorithm`; ES256 by default).
    pub algorithms: Vec<&'static str>,
    /// Clock-skew leeway in seconds.
    pub leeway: u64,
    /// The longest token lifetime accepted, seconds.
    pub max_lifetime: u64,
    /// Refuse tokens that are not DPoP-bound (a sender-constrained resource).
    pub require_dpop: bool,
    /// Allow plain `http` key URLs beyond loopback (tests and labs only).
    pub allow_insecure_http: bool,
    /// lanyard's revocation feed (`{issuer}/revocations`) to follow, if any. With it, a
    /// token killed at lanyard (token, agent or channel grant) is refused here within
    /// `revocation_poll` (plus one fetch).
    pub revocations_uri: Option<String>,
    /// How often the feed is polled.
    pub revocation_poll: Duration,
    /// If the feed could not be read for this long, every token is refused (503): a
    /// verifier that cannot know about revocations fails closed.
    pub revocation_max_staleness: Duration,
}

impl VerifierConfig {
    /// Defaults: discovery, ES256, 60 s leeway, 1 h lifetime ceiling, bearer allowed.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: None,
            algorithms: vec!["ES256"],
            leeway: 60,
            max_lifetime: 3600,
            require_dpop: false,
            allow_insecure_http: false,
            revocations_uri: None,
            revocation_poll: Duration::from_secs(5),
            revocation_max_staleness: Duration::from_secs(60),
        }
    }
}

/// The authorization scheme a token was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    DPoP,
}

/// What a request presented, already split out of its headers.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The scheme.
    pub scheme: Scheme,
    /// The access token.
    pub token: &'a str,
    /// The `DPoP` header values (RFC 9449 §4.3 (1): exactly one when the scheme is DPoP).
    pub proofs: &'a [&'a str],
    /// The request method (for `htm`).
    pub method: &'a str,
    /// The request URL as the client used it, without query (for `htu`).
    pub url: &'a str,
}

/// Why a token was refused: each maps to an RFC 6750 / RFC 9449 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable here (401 `invalid_token`). The detail is for logs.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The DPoP proof is not acceptable (401 `invalid_dpop_proof`).
    #[error("invalid DPoP proof: {0}")]
    InvalidProof(&'static str),
    /// lanyard's keys cannot be obtained: nothing is accepted (503).
    #[error("issuer keys unavailable")]
    KeysUnavailable,
    /// The revocation feed has not been read recently enough: nothing is accepted (503).
    #[error("revocation state stale")]
    RevocationsStale,
}

/// What the followed revocation feed says is dead.
#[derive(Debug, Default)]
struct RevokedState {
    /// Feed position read so far.
    cursor: u64,
    /// When the feed was last read completely; `None` before the first read.
    fresh_at: Option<std::time::Instant>,
    /// Revoked token ids → until (unix seconds; `u64::MAX` = no end).
    tokens: HashMap<String, UnixTime>,
    /// Agent → (revoked_at, until): its tokens issued at or before `revoked_at` are dead.
    agents: HashMap<String, (UnixTime, UnixTime)>,
    /// (agent, channel) → (revoked_at, until).
    grants: HashMap<(String, String), (UnixTime, UnixTime)>,
}

impl RevokedState {
    fn apply(&mut self, entry: &serde_json::Value) {
        use serde_json::Value;
        let s = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
        let revoked_at = entry.get("revoked_at").and_then(Value::as_u64).unwrap_or(0);
        // `until: null` = no end; `until: 0` = lifted.
        let until = match entry.get("until") {
            Some(Value::Null) | None => UnixTime::MAX,
            Some(v) => v.as_u64().unwrap_or(UnixTime::MAX),
        };
        let lifted = until == 0;
        match (s("kind").as_deref(), s("jti"), s("client_id"), s("channel")) {
            (Some("token"), Some(jti), _, _) => {
                if lifted {
                    self.tokens.remove(&jti);
                } else {
                    self.tokens.insert(jti, until);
                }
            }
            (Some("agent"), _, Some(agent), _) => {
                if lifted {
                    self.agents.remove(&agent);
                } else {
                    self.agents.insert(agent, (revoked_at, until));
                }
            }
            (Some("channel_grant"), _, Some(agent), Some(channel)) => {
                if lifted {
                    self.grants.remove(&(agent, channel));
                } else {
                    self.grants.insert((agent, channel), (revoked_at, until));
                }
            }
            _ => tracing::warn!("unknown revocation feed entry ignored"),
        }
    }

    fn prune(&mut self, now: UnixTime) {
        self.tokens.retain(|_, u| *u > now);
        self.agents.retain(|_, (_, u)| *u > now);
        self.grants.retain(|_, (_, u)| *u > now);
    }

    /// Why `p` is dead, if it is.
    fn kills(&self, p: &Principal) -> Option<&'static str> {
        if self.tokens.contains_key(&p.token_id) {
            return Some("token revoked");
        }
        if self
            .agents
            .get(&p.agent_principal())
            .is_some_and(|(at, _)| p.issued_at <= *at)
        {
            return Some("agent revoked");
        }
        if let Some(ch) = &p.channel
            && self
                .grants
                .get(&(p.agent_principal(), ch.clone()))
                .is_some_and(|(at, _)| p.issued_at <= *at)
        {
            return Some("channel grant withdrawn");
        }
        None
    }
}

/// Verifies lanyard access tokens for one resource.
pub struct Verifier {
    config: VerifierConfig,
    keys: UpstreamKeys,
    fetcher: Fetcher,
    clock: Arc<dyn Clock>,
    /// DPoP proof `jti` → when it stops mattering (RFC 9449 §11.1).
    seen_proofs: Mutex<HashMap<String, UnixTime>>,
    /// The followed revocation feed.
    revoked: Mutex<RevokedState>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier; keys are fetched on first use.
    pub fn new(config: VerifierConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let source = match &config.jwks_uri {
            Some(u) => KeySource::JwksUri(u.clone()),
            None => KeySource::AsMetadata,
        };
        let keys = UpstreamKeys::new(
            &config.issuer,
            source,
            config.algorithms.clone(),
            config.allow_insecure_http,
        );
        Ok(Self {
            keys,
            // The resource server's operator configures these URLs (often a cluster-internal
            // address of lanyard), so non-public addresses are allowed here.
            fetcher: Fetcher::new(Duration::from_secs(5), true)?,
            clock,
            seen_proofs: Mutex::new(HashMap::new()),
            revoked: Mutex::new(RevokedState::default()),
            config,
        })
    }

    /// Follow the revocation feed in the background (if configured): read it now and then
    /// every `revocation_poll`. Returns `None` without a feed.
    pub fn follow_revocations(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let uri = self.config.revocations_uri.clone()?;
        let me = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let Some(v) = me.upgrade() else { return };
                if let Err(e) = v.poll_revocations(&uri).await {
                    tracing::warn!(error = %e, "revocation feed unreadable");
                }
                let wait = v.config.revocation_poll;
                drop(v);
                tokio::time::sleep(wait).await;
            }
        }))
    }

    /// Read the feed from the current cursor to its end.
    pub async fn poll_revocations(&self, uri: &str) -> Result<(), String> {
        let u = url::Url::parse(uri).map_err(|e| e.to_string())?;
        if u.scheme() != "https"
            && !(u.scheme() == "http"
                && (crate::oauth::issuer::is_loopback(&u) || self.config.allow_insecure_http))
        {
            return Err(format!("{uri}: https required"));
        }
        let now = self.clock.now();
        let mut cursor = self.revoked.lock().map_err(|_| "poisoned")?.cursor;
        loop {
            let page = self
                .fetcher
                .get_json(&format!("{uri}?after={cursor}"))
                .await?;
            let entries = page
                .get("revocations")
                .and_then(serde_json::Value::as_array)
                .ok_or("feed without revocations")?;
            let next = page
                .get("next")
                .and_then(serde_json::Value::as_u64)
                .ok_or("feed without next")?;
            let mut st = self.revoked.lock().map_err(|_| "poisoned")?;
            for e in entries {
                st.apply(e);
            }
            st.cursor = next;
            if entries.is_empty() || next == cursor {
                st.prune(now);
                st.fresh_at = Some(std::time::Instant::now());
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verify what a request presented.
    pub async fn verify(&self, p: Presented<'_>) -> Result<Principal, VerifyError> {
        use VerifyError::{InvalidProof, InvalidToken};
        let now = self.clock.now();
        let jws = verify::parse(p.token).map_err(|_| InvalidToken("not a compact JWS"))?;
        // RFC 9068 §4 item 2 / RFC 8725 §3.11: only an access token is an access token.
        if !jws.header.typ_is("at+jwt") {
            return Err(InvalidToken("typ is not at+jwt"));
        }
        let keys = self
            .keys
            .keys_for(&self.fetcher, jws.header.kid.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %e.issuer, reason = %e.reason, "access token keys unavailable");
                VerifyError::KeysUnavailable
            })?;
        keys.0
            .verify(&jws, &self.config.algorithms)
            .map_err(|_| InvalidToken("signature, algorithm or key"))?;
        let claims: AccessTokenIn =
            serde_json::from_slice(&jws.payload).map_err(|_| InvalidToken("malformed claims"))?;
        let expected = Expected {
            issuer: &self.config.issuer,
            audience: &self.config.audience,
            leeway: self.config.leeway,
            max_lifetime: self.config.max_lifetime,
        };
        let principal = access::check(claims, &expected, now).map_err(|r| {
            InvalidToken(match r {
                Rejection::UntrustedIssuer => "issuer",
                Rejection::Audience => "audience",
                Rejection::Time(t) => t,
                _ => "claims",
            })
        })?;
        match (p.scheme, principal.jkt.as_deref()) {
            // RFC 9449 §7.2: a bound token presented as a bearer token is refused.
            (Scheme::Bearer, Some(_)) => {
                return Err(InvalidToken("DPoP-bound token sent as Bearer"));
            }
            (Scheme::Bearer, None) if self.config.require_dpop => {
                return Err(InvalidToken("this resource requires DPoP-bound tokens"));
            }
            (Scheme::Bearer, None) => {}
            (Scheme::DPoP, None) => return Err(InvalidToken("DPoP scheme with an unbound token")),
            (Scheme::DPoP, Some(jkt)) => {
                let [proof] = p.proofs else {
                    return Err(InvalidProof("exactly one DPoP header required"));
                };
                let v = dpop::validate(
                    proof,
                    p.method,
                    p.url,
                    Some(p.token),
                    self.config.leeway,
                    now,
                )
                .map_err(|e| match e {
                    ProofError::Ath => InvalidToken("ath does not match the token"),
                    ProofError::Malformed => InvalidProof("malformed"),
                    ProofError::Type => InvalidProof("typ"),
                    ProofError::Key => InvalidProof("alg or jwk"),
                    ProofError::Signature => InvalidProof("signature"),
                    ProofError::Claims => InvalidProof("claims"),
                    ProofError::Target => InvalidProof("htm/htu"),
                    ProofError::Time => InvalidProof("iat"),
                })?;
                if v.jkt != jkt {
                    return Err(InvalidToken("proof key is not the token's cnf.jkt"));
                }
                let until = v
                    .iat
                    .saturating_add(MAX_PROOF_AGE)
                    .saturating_add(2 * self.config.leeway);
                self.first_use_of_proof(&v.jti, until, now)?;
            }
        }
        if let Some(uri) = &self.config.revocations_uri {
            let never_read = self
                .revoked
                .lock()
                .map_err(|_| VerifyError::RevocationsStale)?
                .fresh_at
                .is_none();
            if never_read && let Err(e) = self.poll_revocations(uri).await {
                tracing::warn!(error = %e, "revocation feed unreadable");
            }
            let st = self
                .revoked
                .lock()
                .map_err(|_| VerifyError::RevocationsStale)?;
            if st
                .fresh_at
                .is_none_or(|t| t.elapsed() > self.config.revocation_max_staleness)
            {
                return Err(VerifyError::RevocationsStale);
            }
            if let Some(why) = st.kills(&principal) {
                return Err(InvalidToken(why));
            }
        }
        Ok(principal)
    }

    /// RFC 9449 §11.1: a proof is accepted once. Proofs are short-lived, so an in-memory
    /// record of those still inside the window suffices for one resource-server process.
    fn first_use_of_proof(
        &self,
        jti: &str,
        until: UnixTime,
        now: UnixTime,
    ) -> Result<(), VerifyError> {
        let mut seen = self
            .seen_proofs
            .lock()
            .map_err(|_| VerifyError::InvalidProof("replay cache unavailable"))?;
        if seen.len() >= MAX_REMEMBERED_PROOFS {
            seen.retain(|_, t| *t > now);
            if seen.len() >= MAX_REMEMBERED_PROOFS {
                return Err(VerifyError::InvalidProof("replay cache full"));
            }
        }
        if seen.get(jti).is_some_and(|t| *t > now) {
            return Err(VerifyError::InvalidProof("proof jti replayed"));
        }
        seen.insert(jti.to_owned(), until);
        Ok(())
    }
}
