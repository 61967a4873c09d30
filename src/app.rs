//! Composition root: validated settings → a [`Broker`] holding the store, the keyrings, the
//! policy and the clock, and the reloading of keys and policy. Serving it is
//! [`crate::server`]'s job.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::clock::Clock;
use crate::config::{IssuerSettings, Role, Settings, StoreSettings};
use crate::crypto::verify::KeySet;
use crate::crypto::{Keyring, keyring};
use crate::idp::{Fetcher, KeySource, Upstreams};
use crate::metrics::Metrics;
use crate::oauth::metadata::{self, Capabilities};
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

/// One issuer (trust domain) served by this process.
pub struct IssuerRuntime {
    /// Its settings.
    pub settings: IssuerSettings,
    /// Its signing keys; swapped whole on reload.
    pub keys: ArcSwap<Keyring>,
    /// The metadata document, serialized once.
    pub metadata_json: Vec<u8>,
    key_dir: PathBuf,
    key_mtime: std::sync::Mutex<Option<SystemTime>>,
}

/// Whether opening the store may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOpen {
    /// The server: a first start creates an empty store.
    CreateIfMissing,
    /// Tools (`audit verify|export`): read what a server wrote; a missing store is an error.
    Existing,
}

/// Open the configured store backend. The embedded store is held by one process at a time:
/// while a server runs, another process gets [`crate::store::StoreError::InUse`].
pub fn open_store(
    settings: &StoreSettings,
    mode: StoreOpen,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, crate::store::StoreError> {
    use crate::store::embedded::EmbeddedStore;
    Ok(match (settings, mode) {
        (StoreSettings::Embedded { path }, StoreOpen::CreateIfMissing) => {
            Arc::new(EmbeddedStore::open(path)?)
        }
        (StoreSettings::Embedded { path }, StoreOpen::Existing) => {
            Arc::new(EmbeddedStore::open_existing(path)?)
        }
        // Shared state: nothing is created locally, and the data is wherever Redis keeps it.
        (StoreSettings::Redis(r), _) => Arc::new(crate::store::redis::RedisStore::open(r, clock)?),
    })
}

/// Everything a request needs.
pub struct Broker {
    /// Settings.
    pub settings: Settings,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Runtime state.
    pub store: Arc<dyn Store>,
    /// The human-owned policy and what is derived from it; swapped whole on reload.
    pub policy: ArcSwap<ActivePolicy>,
    /// Bounded HTTP client for upstream discovery and JWKS.
    pub fetcher: Fetcher,
    /// Request metrics.
    pub metrics: Metrics,
    /// TLS configuration in force, when lanyard terminates TLS.
    pub tls: Option<crate::tls::TlsReloader>,
    /// Rate limits on the token, introspection and revocation endpoints.
    pub limiter: crate::limits::Limiter,
    idp: Option<IssuerRuntime>,
    ras: Option<IssuerRuntime>,
    policy_mtime: std::sync::Mutex<Option<SystemTime>>,
    draining: AtomicBool,
}

/// What the optional features of this build advertise.
pub fn capabilities() -> Capabilities {
    Capabilities {
        authorization_details: true,
        dpop_algs: crate::crypto::dpop::DPOP_ALGS.to_vec(),
        introspection: true,
        revocation: true,
    }
}

/// A startup failure, with an operator-facing message.
pub type StartError = String;

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Broker {
    /// Open the store, load the keyrings and the policy. Any failure stops startup.
    pub fn open(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        let store = open_store(&settings.store, StoreOpen::CreateIfMissing, clock.clone())
            .map_err(|e| format!("store: {e}"))?;
        Self::with_store(settings, clock, store)
    }

    /// Build around a given store.
    pub fn with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        let caps = capabilities();
        let runtime = |i: &IssuerSettings| -> Result<IssuerRuntime, StartError> {
            let dir = settings.keys.dir.join(i.role.as_str());
            let ring = Keyring::load(&dir, settings.key_retention(i))
                .map_err(|e| format!("{} keys: {e}", i.role.as_str()))?;
            if ring.active(clock.now()).is_none() {
                return Err(format!(
                    "{} keys: no key is active yet in {}",
                    i.role.as_str(),
                    dir.display()
                ));
            }
            Ok(IssuerRuntime {
                settings: i.clone(),
                keys: ArcSwap::from_pointee(ring),
                metadata_json: serde_json::to_vec(&metadata::document(i, &caps))
                    .unwrap_or_default(),
                key_mtime: std::sync::Mutex::new(keyring::manifest_mtime(&dir)),
                key_dir: dir,
            })
        };
        let idp = settings.idp.as_ref().map(&runtime).transpose()?;
        let ras = settings
            .authorization_server
            .as_ref()
            .map(&runtime)
            .transpose()?;
        let policy = crate::policy::load(&settings.policy_file)
            .map_err(|e| format!("policy {}:\n{e}", settings.policy_file.display()))?;
        let fetcher = Fetcher::new(Duration::from_secs(5), settings.allow_private_addresses)
            .map_err(|e| format!("http client: {e}"))?;
        let tls = settings
            .tls
            .clone()
            .map(crate::tls::TlsReloader::new)
            .transpose()
            .map_err(|e| format!("tls: {e}"))?;
        Ok(Self {
            tls,
            limiter: crate::limits::Limiter::new(&settings.limits),
            policy_mtime: std::sync::Mutex::new(mtime(&settings.policy_file)),
            settings,
            clock,
            store,
            policy: ArcSwap::from_pointee(ActivePolicy::build(policy, None)),
            fetcher,
            metrics: Metrics::default(),
            idp,
            ras,
            draining: AtomicBool::new(false),
        })
    }

    /// The issuer playing `role`, if enabled.
    pub fn issuer(&self, role: Role) -> Option<&IssuerRuntime> {
        match role {
            Role::Idp => self.idp.as_ref(),
            Role::AuthorizationServer => self.ras.as_ref(),
        }
    }

    /// Every enabled issuer.
    pub fn issuers(&self) -> impl Iterator<Item = &IssuerRuntime> {
        self.idp.iter().chain(self.ras.iter())
    }

    /// Whether SIGTERM has been received.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Start draining: readiness turns false while in-flight requests finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Re-read keyrings whose manifest changed (or all, when `force`). A keyring that fails to
    /// load is reported and the one in force stays.
    pub fn reload_keys(&self, force: bool) {
        for i in self.issuers() {
            let now_mtime = keyring::manifest_mtime(&i.key_dir);
            let Ok(mut seen) = i.key_mtime.lock() else {
                continue;
            };
            if !force && *seen == now_mtime {
                continue;
            }
            match Keyring::load(&i.key_dir, self.settings.key_retention(&i.settings)) {
                Ok(ring) => {
                    let kids: Vec<_> = ring
                        .published(self.clock.now())
                        .map(|k| k.kid.clone())
                        .collect();
                    i.keys.store(Arc::new(ring));
                    *seen = now_mtime;
                    tracing::info!(role = i.settings.role.as_str(), ?kids, "keyring reloaded");
                }
                Err(e) => {
                    tracing::error!(role = i.settings.role.as_str(), error = %e, "keyring reload failed; keeping the keys in force")
                }
            }
        }
    }

    /// Re-read the policy file if it changed (or when `force`). A file that does not check is
    /// refused and the last good policy stays in force.
    pub fn reload_policy(&self, force: bool) {
        let path = &self.settings.policy_file;
        let now_mtime = mtime(path);
        let Ok(mut seen) = self.policy_mtime.lock() else {
            return;
        };
        if !force && *seen == now_mtime {
            return;
        }
        *seen = now_mtime;
        match crate::policy::load(path) {
            Ok(p) => {
                let fp = p.fingerprint().to_owned();
                let old = self.policy.load_full();
                if fp != old.policy.fingerprint() {
                    self.policy
                        .store(Arc::new(ActivePolicy::build(p, Some(&old))));
                    tracing::info!(fingerprint = %fp, "policy reloaded");
                }
            }
            Err(e) => {
                tracing::error!(file = %path.display(), errors = %e, "policy refused; keeping the last good policy")
            }
        }
    }
}
