//! TLS termination with rustls: certificate and key loaded from PEM files, reloaded when they
//! change without dropping the listener, and optional client certificates (mTLS).
//!
//! With `require_client_cert`, a client without a certificate signed by `client_ca_file` is
//! refused during the TLS handshake, on every endpoint of the listener (health probes too).
//! Without it, a certificate is asked for but optional: one that is presented must verify.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// `[server.tls]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Refuse the handshake of a client without a valid certificate.
    pub require_client_cert: bool,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A file holds no usable PEM item of the expected kind.
    #[error("{0}: {1}")]
    Pem(PathBuf, &'static str),
    /// rustls refused the combination (key does not match the certificate, bad CA, ...).
    #[error("{0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Io(path.to_owned(), e))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem(path.to_owned(), "not a PEM certificate file"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(path.to_owned(), "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).map_err(|e| TlsError::Io(path.to_owned(), e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "TLS private key file is readable by group or others; expected mode 0600");
        }
    }
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| TlsError::Pem(path.to_owned(), "no usable PRIVATE KEY block"))
}

/// Build a rustls server configuration from the files named in `s`.
pub fn load(s: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = certs(&s.cert_file)?;
    let key = key(&s.key_file)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &s.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Rustls(format!("{}: {e}", ca.display())))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if s.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| TlsError::Rustls(format!("{}: {e}", ca.display())))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn mtimes(s: &TlsSettings) -> [Option<SystemTime>; 3] {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    [
        m(&s.cert_file),
        m(&s.key_file),
        s.client_ca_file.as_deref().and_then(m),
    ]
}

/// The TLS configuration in force, swapped whole when its files change.
pub struct TlsReloader {
    settings: TlsSettings,
    config: ArcSwap<ServerConfig>,
    seen: Mutex<[Option<SystemTime>; 3]>,
}

impl TlsReloader {
    /// Load the files once; a failure stops startup.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let seen = mtimes(&settings);
        let config = load(&settings)?;
        Ok(Self {
            settings,
            config: ArcSwap::from_pointee(config),
            seen: Mutex::new(seen),
        })
    }

    /// The configuration new connections are accepted with.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Re-read the files if any changed (or when `force`). Files that do not load — e.g. a
    /// certificate replaced before its key — are reported and the configuration in force
    /// stays; they are tried again on the next call.
    pub fn reload(&self, force: bool) {
        let now = mtimes(&self.settings);
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if !force && *seen == now {
            return;
        }
        match load(&self.settings) {
            Ok(cfg) => {
                self.config.store(Arc::new(cfg));
                *seen = now;
                tracing::info!(cert = %self.settings.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; keeping the certificate in force")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = p.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn settings(dir: &Path) -> TlsSettings {
        TlsSettings {
            cert_file: dir.join("c.pem"),
            key_file: dir.join("k.pem"),
            client_ca_file: None,
            require_client_cert: false,
        }
    }

    #[test]
    fn certificate_and_key_that_do_not_match_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let (c1, k1) = pair("a.test");
        let (_, k2) = pair("b.test");
        std::fs::write(&s.cert_file, &c1).unwrap();
        std::fs::write(&s.key_file, &k2).unwrap();
        assert!(matches!(load(&s), Err(TlsError::Rustls(_))));
        std::fs::write(&s.key_file, &k1).unwrap();
        assert!(load(&s).is_ok());
    }

    #[test]
    fn files_without_pem_blocks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let (c, k) = pair("a.test");
        std::fs::write(&s.cert_file, "not pem").unwrap();
        std::fs::write(&s.key_file, &k).unwrap();
        assert!(matches!(load(&s), Err(TlsError::Pem(..))));
        std::fs::write(&s.cert_file, &c).unwrap();
        std::fs::write(&s.key_file, &c).unwrap();
        assert!(matches!(load(&s), Err(TlsError::Pem(..))));
        let missing = TlsSettings {
            cert_file: dir.path().join("none.pem"),
            ..s
        };
        assert!(matches!(load(&missing), Err(TlsError::Io(..))));
    }

    #[test]
    fn reload_keeps_the_config_in_force_until_the_files_load() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let (c1, k1) = pair("a.test");
        std::fs::write(&s.cert_file, &c1).unwrap();
        std::fs::write(&s.key_file, &k1).unwrap();
        let r = TlsReloader::new(s.clone()).unwrap();
        let first = r.current();

        // Certificate replaced, key not yet: refused, the old config stays.
        let (c2, k2) = pair("b.test");
        std::fs::write(&s.cert_file, &c2).unwrap();
        r.reload(true);
        assert!(Arc::ptr_eq(&first, &r.current()));

        // The key follows: the next reload takes both.
        std::fs::write(&s.key_file, &k2).unwrap();
        r.reload(true);
        assert!(!Arc::ptr_eq(&first, &r.current()));

        // Nothing changed: no reload without force.
        let second = r.current();
        r.reload(false);
        assert!(Arc::ptr_eq(&second, &r.current()));
    }
}
