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
use crate::crypto::{Keyring, keyring};
use crate::grants::cx::{ActivePolicy, GrantCx, IssuerRuntime};
use crate::idp::Fetcher;
use crate::oauth::metadata::{self, Capabilities};
use crate::store::Store;

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

/// Everything a request needs: the grant context (dereferenced to, so that `broker.store`
/// and `broker.issuer(..)` read through), plus what belongs to this process's life — the TLS
/// configuration, the files watched for reloads, and whether it is draining.
pub struct Broker {
    cx: GrantCx,
    /// TLS configuration in force, when lanyard terminates TLS.
    pub tls: Option<crate::tls::TlsReloader>,
    /// Each issuer's key directory and the manifest time last loaded from it.
    key_watch: Vec<(Role, PathBuf, std::sync::Mutex<Option<SystemTime>>)>,
    policy_mtime: std::sync::Mutex<Option<SystemTime>>,
    draining: AtomicBool,
}

impl std::ops::Deref for Broker {
    type Target = GrantCx;

    fn deref(&self) -> &GrantCx {
        &self.cx
    }
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
        let mut key_watch = Vec::new();
        let mut runtime = |i: &IssuerSettings| -> Result<IssuerRuntime, StartError> {
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
            key_watch.push((
                i.role,
                dir.clone(),
                std::sync::Mutex::new(keyring::manifest_mtime(&dir)),
            ));
            Ok(IssuerRuntime {
                settings: i.clone(),
                keys: ArcSwap::from_pointee(ring),
                metadata_json: serde_json::to_vec(&metadata::document(i, &caps))
                    .unwrap_or_default(),
            })
        };
        let idp = settings.idp.as_ref().map(&mut runtime).transpose()?;
        let ras = settings
            .authorization_server
            .as_ref()
            .map(&mut runtime)
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
        let policy_mtime = std::sync::Mutex::new(mtime(&settings.policy_file));
        let cx = GrantCx::new(
            settings,
            clock,
            store,
            ActivePolicy::build(policy, None),
            fetcher,
            idp,
            ras,
        );
        Ok(Self {
            cx,
            tls,
            key_watch,
            policy_mtime,
            draining: AtomicBool::new(false),
        })
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
        for (role, dir, seen) in &self.key_watch {
            let Some(i) = self.issuer(*role) else {
                continue;
            };
            let now_mtime = keyring::manifest_mtime(dir);
            let Ok(mut seen) = seen.lock() else {
                continue;
            };
            if !force && *seen == now_mtime {
                continue;
            }
            match Keyring::load(dir, self.settings.key_retention(&i.settings)) {
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
