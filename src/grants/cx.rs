//! What every grant runs with: the grant context ([`GrantCx`]), the policy in force with
//! what is derived from it ([`ActivePolicy`]), and each issuer served ([`IssuerRuntime`]).
//!
//! The composition root (`app`) builds a [`GrantCx`] once at start and keeps it
//! current (policy and key reloads swap the `ArcSwap`s inside it); the grants only read it.
//! It holds the parts a grant may touch — settings, clock, store, policy, upstream key
//! fetching, the client rate limits and the metrics — and nothing of HTTP, TLS or process
//! life (those are the broker's and the HTTP layer's).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::{IssuerSettings, Role, Settings};
use crate::crypto::Keyring;
use crate::crypto::verify::KeySet;
use crate::idp::{Fetcher, KeySource, Upstreams};
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::policy::{Credential, Policy};
use crate::store::Store;

/// The policy in force with everything derived from it once per load: agents'
/// `private_key_jwt` keys parsed, upstream key caches (kept across reloads when unchanged).
pub struct ActivePolicy {
    /// The policy file.
    pub policy: Policy,
    /// Parsed client-assertion keys, by agent id.
    pub agent_keys: std::collections::HashMap<String, KeySet>,
    /// Enterprise IdPs, trusted ID-JAG issuers and workload issuers, by issuer.
    pub upstreams: Upstreams,
}

fn algs(list: &[crate::policy::Algorithm]) -> Vec<&'static str> {
    list.iter().map(|a| a.as_str()).collect()
}

impl ActivePolicy {
    /// Derive from a policy, reusing upstream caches of `previous` where nothing changed.
    pub fn build(policy: Policy, previous: Option<&ActivePolicy>) -> Self {
        let mut agent_keys = std::collections::HashMap::new();
        for a in policy.agents() {
            if let Credential::Jwks(j) = &a.credential {
                match KeySet::from_jwks(&j.jwks, crate::oauth::metadata::CLIENT_ASSERTION_ALGS) {
                    Ok(k) => {
                        agent_keys.insert(a.id.clone(), k);
                    }
                    Err(e) => {
                        tracing::error!(agent = %a.id, error = %e, "agent JWKS has no usable key; the agent cannot authenticate")
                    }
                }
            }
        }
        let source = |j: &Option<crate::policy::StaticJwks>, d: KeySource| match j {
            Some(s) => KeySource::Static(s.jwks.clone()),
            None => d,
        };
        let mut wanted = Vec::new();
        for i in policy.idps() {
            wanted.push((
                i.issuer.clone(),
                source(&i.jwks, KeySource::OidcDiscovery),
                algs(&i.algorithms),
                i.allow_insecure_http,
            ));
        }
        for t in policy.trusted_issuers() {
            wanted.push((
                t.issuer.clone(),
                source(&t.jwks, KeySource::AsMetadata),
                algs(&t.algorithms),
                t.allow_insecure_http,
            ));
        }
        for a in policy.agents() {
            if let Credential::Workload { issuer, .. } = &a.credential
                && !wanted.iter().any(|(i, ..)| i == issuer)
            {
                wanted.push((
                    issuer.clone(),
                    KeySource::AsMetadata,
                    crate::crypto::verify::ASYMMETRIC_ALGS.to_vec(),
                    false,
                ));
            }
        }
        let upstreams = match previous {
            Some(p) => p.upstreams.rebuild(wanted),
            None => Upstreams::default().rebuild(wanted),
        };
        Self {
            policy,
            agent_keys,
            upstreams,
        }
    }
}

/// Most refusal audit records queued at once; beyond, they are dropped and counted
/// (`lanyard_denial_audit_dropped_total`). Issuance never depends on this: an issued token's
/// record is written before the token is signed.
pub const MAX_QUEUED_DENIAL_WRITES: usize = 4096;

/// One issuer (trust domain) served by this process.
pub struct IssuerRuntime {
    /// Its settings.
    pub settings: IssuerSettings,
    /// Its signing keys; swapped whole on reload.
    pub keys: ArcSwap<Keyring>,
    /// The metadata document, serialized once.
    pub metadata_json: Vec<u8>,
}

/// The parts every grant may use.
pub struct GrantCx {
    /// Settings.
    pub settings: Settings,
    /// The clock (the only source of `now`).
    pub clock: Arc<dyn Clock>,
    /// Runtime state.
    pub store: Arc<dyn Store>,
    /// The human-owned policy and what is derived from it; swapped whole on reload.
    pub policy: ArcSwap<ActivePolicy>,
    /// Bounded HTTP client for upstream discovery and JWKS.
    pub fetcher: Fetcher,
    /// Rate limits of authenticated clients (and of failed authentications).
    pub limiter: Limiter,
    /// Counters rendered at `/metrics`.
    pub metrics: Metrics,
    /// Room for refusal audit records written in the background (see `Trail::deny`): a
    /// flood of bad requests cannot queue unbounded work behind the store.
    pub denial_writes: Arc<tokio::sync::Semaphore>,
    idp: Option<IssuerRuntime>,
    ras: Option<IssuerRuntime>,
}

impl GrantCx {
    /// Assemble a context (the composition root does, once).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        policy: ActivePolicy,
        fetcher: Fetcher,
        idp: Option<IssuerRuntime>,
        ras: Option<IssuerRuntime>,
    ) -> Self {
        Self {
            limiter: Limiter::new(&settings.limits),
            metrics: Metrics::default(),
            denial_writes: Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED_DENIAL_WRITES)),
            settings,
            clock,
            store,
            policy: ArcSwap::from_pointee(policy),
            fetcher,
            idp,
            ras,
        }
    }

    /// The issuer playing `role`, if enabled.
    pub fn issuer(&self, role: Role) -> Option<&IssuerRuntime> {
        match role {
            Role::Idp => self.idp.as_ref(),
            Role::AuthorizationServer => self.ras.as_ref(),
        }
    }

    /// Every enabled issuer, the IdP role first.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerRuntime> {
        self.idp.iter().chain(self.ras.iter())
    }
}
