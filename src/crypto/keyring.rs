//! A role's signing keys on disk, and their rotation.
//!
//! A keyring is a directory (`<keys.dir>/idp`, `<keys.dir>/as`) holding one PKCS#8 PEM file
//! per private key (mode 0600, directory 0700, git-ignored) and a manifest
//! `keyring.json` listing each key's `kid`, algorithm, file and `use_from` time. The state
//! of every key is *derived* from the manifest and the clock, never stored:
//!
//! - the **active** key is the one with the latest `use_from` not after now: it signs;
//! - a key whose `use_from` is still ahead is **next**: already published in the JWKS, so
//!   verifiers have it cached before its first signature (checklist A8);
//! - a key replaced by a successor stays **published** until the successor's `use_from` plus
//!   the role's longest token lifetime plus leeway: the last token it signed has expired;
//! - after that it is **expired**, dropped from the JWKS, and `keys rotate` deletes its file.
//!
//! `kid` is the key's RFC 7638 thumbprint.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, RS256};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CryptoError, Typ, b64, jwk};
use crate::clock::UnixTime;
use crate::config::SigningAlg;

/// The manifest's file name inside a keyring directory.
pub const MANIFEST: &str = "keyring.json";

/// A key as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// JWA algorithm.
    pub alg: String,
    /// Private key file name, relative to the keyring directory.
    pub file: String,
    /// When the key was made.
    pub created_at: UnixTime,
    /// From when it signs.
    pub use_from: UnixTime,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    keys: Vec<KeyEntry>,
}

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Active,
    /// No longer signing; published until the given time.
    Retiring(UnixTime),
    /// No longer published.
    Expired,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Next => f.write_str("next"),
            Self::Active => f.write_str("active"),
            Self::Retiring(t) => write!(f, "retiring (published until {})", fmt_time(*t)),
            Self::Expired => f.write_str("expired"),
        }
    }
}

/// Format a Unix time as RFC 3339.
pub fn fmt_time(t: UnixTime) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
        .to_string()
}

/// A keyring problem: missing, unreadable, inconsistent.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No manifest or no key.
    #[error("no signing key in {0}: run `lanyard keys generate`")]
    Missing(PathBuf),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A file is not what it should be.
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// `keys generate` on a keyring that already has keys.
    #[error("{0} already holds keys: use `lanyard keys rotate`")]
    Exists(PathBuf),
}

/// A parsed private key ready to sign, with its public JWK and prebuilt headers.
pub struct SigningKey {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// From when it signs.
    pub use_from: UnixTime,
    public_jwk: Map<String, Value>,
    signer: Box<dyn JwsSigner>,
    /// ring's copy of an ES256 key, which signs instead of `signer` (see `crypto::fast`).
    fast: Option<super::fast::FastSigner>,
    headers: [String; 3],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl SigningKey {
    /// Parse a PKCS#8 PEM private key.
    pub fn from_pem(pem: &[u8], alg: SigningAlg, use_from: UnixTime) -> Result<Self, String> {
        let mut fast = None;
        let (signer, mut public): (Box<dyn JwsSigner>, Map<String, Value>) = match alg {
            SigningAlg::Es256 => {
                let kp = ES256.key_pair_from_pem(pem).map_err(|e| e.to_string())?;
                fast = fast_es256(&kp);
                (
                    Box::new(ES256.signer_from_pem(pem).map_err(|e| e.to_string())?),
                    kp.to_jwk_public_key().into(),
                )
            }
            SigningAlg::Rs256 => {
                let kp = RS256.key_pair_from_pem(pem).map_err(|e| e.to_string())?;
                let n = kp
                    .to_jwk_public_key()
                    .parameter("n")
                    .and_then(Value::as_str)
                    .map(str::len)
                    .unwrap_or(0);
                // RFC 7518 §3.3: at least 2048 bits (342 base64url characters).
                if n < 342 {
                    return Err("RSA key shorter than 2048 bits".into());
                }
                (
                    Box::new(RS256.signer_from_pem(pem).map_err(|e| e.to_string())?),
                    kp.to_jwk_public_key().into(),
                )
            }
            SigningAlg::EdDsa => (
                Box::new(EdDSA.signer_from_pem(pem).map_err(|e| e.to_string())?),
                EdDSA
                    .key_pair_from_pem(pem)
                    .map_err(|e| e.to_string())?
                    .to_jwk_public_key()
                    .into(),
            ),
        };
        let kid = jwk::thumbprint(&public).ok_or("unsupported key type")?;
        public.retain(|k, _| !jwk::PRIVATE_MEMBERS.contains(&k.as_str()));
        public.insert("kid".into(), kid.clone().into());
        public.insert("use".into(), "sig".into());
        public.insert("alg".into(), alg.as_str().into());
        let headers = Typ::ALL.map(|t| {
            let h = serde_json::json!({"alg": alg.as_str(), "kid": kid, "typ": t.as_str()});
            b64(h.to_string())
        });
        Ok(Self {
            kid,
            alg,
            use_from,
            public_jwk: public,
            signer,
            fast,
            headers,
        })
    }

    /// Make a new key in memory; returns it with its PKCS#8 PEM.
    pub fn generate(alg: SigningAlg, use_from: UnixTime) -> Result<(Self, Vec<u8>), KeyError> {
        let gen_err = |e: josekit::JoseError| KeyError::Generate(e.to_string());
        let pem = match alg {
            SigningAlg::Es256 => ES256
                .generate_key_pair()
                .map_err(gen_err)?
                .to_pem_private_key(),
            SigningAlg::Rs256 => RS256
                .generate_key_pair(2048)
                .map_err(gen_err)?
                .to_pem_private_key(),
            SigningAlg::EdDsa => EdDSA
                .generate_key_pair(EdCurve::Ed25519)
                .map_err(gen_err)?
                .to_pem_private_key(),
        };
        let key = Self::from_pem(&pem, alg, use_from).map_err(KeyError::Generate)?;
        Ok((key, pem))
    }

    /// The private JWK of a PEM key, with `kid`, `alg` and `use` set. For dev mode's demo
    /// agent credentials only; lanyard's own private keys never leave their files.
    pub fn private_jwk_from_pem(pem: &[u8], alg: SigningAlg) -> Result<Map<String, Value>, String> {
        let jwk = match alg {
            SigningAlg::Es256 => ES256
                .key_pair_from_pem(pem)
                .map_err(|e| e.to_string())?
                .to_jwk_key_pair(),
            SigningAlg::Rs256 => RS256
                .key_pair_from_pem(pem)
                .map_err(|e| e.to_string())?
                .to_jwk_key_pair(),
            SigningAlg::EdDsa => EdDSA
                .key_pair_from_pem(pem)
                .map_err(|e| e.to_string())?
                .to_jwk_key_pair(),
        };
        let mut m: Map<String, Value> = jwk.into();
        let kid = jwk::thumbprint(&m).ok_or("unsupported key type")?;
        m.insert("kid".into(), kid.into());
        m.insert("alg".into(), alg.as_str().into());
        m.insert("use".into(), "sig".into());
        Ok(m)
    }

    /// The public JWK as published (`kid`, `use`, `alg`; no private member).
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.public_jwk
    }

    pub(crate) fn header_b64(&self, typ: Typ) -> &str {
        &self.headers[typ.index()]
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if let Some(f) = &self.fast {
            return f
                .sign(message)
                .ok_or_else(|| CryptoError::Sign("ring ECDSA signing failed".into()));
        }
        self.signer
            .sign(message)
            .map_err(|e| CryptoError::Sign(e.to_string()))
    }
}

/// ring's copy of an ES256 key, if its signature verifies under josekit with the same key
/// (checked once, at load); otherwise josekit keeps signing.
fn fast_es256(kp: &josekit::jwk::alg::ec::EcKeyPair) -> Option<super::fast::FastSigner> {
    let fast = super::fast::FastSigner::es256(&kp.to_jwk_key_pair().into())?;
    let probe = b"lanyard signing key self-check";
    let sig = fast.sign(probe)?;
    let verifier = ES256.verifier_from_jwk(&kp.to_jwk_public_key()).ok()?;
    if josekit::jws::JwsVerifier::verify(&verifier, probe, &sig).is_ok() {
        Some(fast)
    } else {
        tracing::warn!("ES256 key: ring's signature did not verify; signing through josekit");
        None
    }
}

/// A role's loaded keys, sorted by `use_from`.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<SigningKey>,
    retention: u64,
}

impl Keyring {
    /// Load a keyring directory. `retention` = the role's longest token lifetime plus
    /// leeway, in seconds: how long a replaced key stays published.
    pub fn load(dir: &Path, retention: u64) -> Result<Self, KeyError> {
        let manifest = read_manifest(dir)?;
        if manifest.keys.is_empty() {
            return Err(KeyError::Missing(dir.to_owned()));
        }
        let mut keys = Vec::with_capacity(manifest.keys.len());
        for e in manifest.keys {
            let path = dir.join(&e.file);
            let alg = SigningAlg::parse(&e.alg).ok_or_else(|| {
                KeyError::Invalid(dir.join(MANIFEST), format!("unknown algorithm {}", e.alg))
            })?;
            let meta = std::fs::metadata(&path).map_err(|err| KeyError::Io(path.clone(), err))?;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "private key file is readable by group or others; expected mode 0600");
            }
            let pem = std::fs::read(&path).map_err(|err| KeyError::Io(path.clone(), err))?;
            let key = SigningKey::from_pem(&pem, alg, e.use_from)
                .map_err(|m| KeyError::Invalid(path.clone(), m))?;
            if key.kid != e.kid {
                return Err(KeyError::Invalid(
                    path,
                    "key does not match the kid in the manifest".into(),
                ));
            }
            keys.push(key);
        }
        Ok(Self::from_keys(keys, retention))
    }

    /// A keyring from keys already in memory (dev mode, tests).
    pub fn from_keys(mut keys: Vec<SigningKey>, retention: u64) -> Self {
        keys.sort_by_key(|k| k.use_from);
        Self { keys, retention }
    }

    /// The key that signs at `now`.
    pub fn active(&self, now: UnixTime) -> Option<&SigningKey> {
        self.keys.iter().rev().find(|k| k.use_from <= now)
    }

    /// The state of the key at `index` at `now`.
    fn state(&self, index: usize, now: UnixTime) -> KeyState {
        key_state(
            self.keys.iter().map(|k| k.use_from),
            index,
            now,
            self.retention,
        )
    }

    /// The keys published at `now`.
    pub fn published(&self, now: UnixTime) -> impl Iterator<Item = &SigningKey> {
        (0..self.keys.len())
            .filter(move |&i| self.state(i, now) != KeyState::Expired)
            .filter_map(|i| self.keys.get(i))
    }

    /// The JWK Set at `now` (RFC 7517 §5), newest key first.
    pub fn jwks(&self, now: UnixTime) -> Value {
        let mut keys: Vec<Value> = self
            .published(now)
            .map(|k| Value::Object(k.public_jwk.clone()))
            .collect();
        keys.reverse();
        serde_json::json!({ "keys": keys })
    }

    /// A published key by `kid`.
    pub fn by_kid(&self, kid: &str, now: UnixTime) -> Option<&SigningKey> {
        self.published(now).find(|k| k.kid == kid)
    }
}

/// State of key `index` among keys whose `use_from` times (sorted) are given.
fn key_state(
    mut use_from: impl Iterator<Item = UnixTime> + Clone,
    index: usize,
    now: UnixTime,
    retention: u64,
) -> KeyState {
    let Some(own) = use_from.clone().nth(index) else {
        return KeyState::Expired;
    };
    if own > now {
        return KeyState::Next;
    }
    // A key stops signing when its immediate successor starts.
    match use_from.nth(index + 1) {
        Some(successor) if successor <= now => {
            let until = successor.saturating_add(retention);
            if now < until {
                KeyState::Retiring(until)
            } else {
                KeyState::Expired
            }
        }
        _ => KeyState::Active,
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest, KeyError> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(dir.to_owned()));
        }
        Err(e) => return Err(KeyError::Io(path, e)),
    };
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| KeyError::Invalid(path.clone(), e.to_string()))?;
    if m.version != 1 {
        return Err(KeyError::Invalid(
            path,
            format!("manifest version {} is not supported", m.version),
        ));
    }
    Ok(m)
}

/// The manifest's modification time, for reload-on-change.
pub fn manifest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.join(MANIFEST))
        .and_then(|m| m.modified())
        .ok()
}

fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| KeyError::Io(dir.to_owned(), e))
}

/// Write `data` to `path` atomically with mode 0600: temp file, fsync, rename, fsync dir.
fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    let io = |e| KeyError::Io(path.to_owned(), e);
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

fn add_key(
    dir: &Path,
    manifest: &mut Manifest,
    alg: SigningAlg,
    now: UnixTime,
    use_from: UnixTime,
) -> Result<KeyEntry, KeyError> {
    let (key, pem) = SigningKey::generate(alg, use_from)?;
    let file = format!("{}.pem", key.kid);
    write_private(&dir.join(&file), &pem)?;
    let entry = KeyEntry {
        kid: key.kid.clone(),
        alg: alg.as_str().into(),
        file,
        created_at: now,
        use_from,
    };
    manifest.keys.push(entry.clone());
    manifest.version = 1;
    let json =
        serde_json::to_vec_pretty(&*manifest).map_err(|e| KeyError::Generate(e.to_string()))?;
    write_private(&dir.join(MANIFEST), &json)?;
    Ok(entry)
}

/// `lanyard keys generate`: the first key of a keyring, active at once.
pub fn generate(dir: &Path, alg: SigningAlg, now: UnixTime) -> Result<KeyEntry, KeyError> {
    ensure_dir(dir)?;
    let mut manifest = match read_manifest(dir) {
        Ok(m) if !m.keys.is_empty() => return Err(KeyError::Exists(dir.to_owned())),
        Ok(m) => m,
        Err(KeyError::Missing(_)) => Manifest::default(),
        Err(e) => return Err(e),
    };
    add_key(dir, &mut manifest, alg, now, now)
}

/// `lanyard keys rotate`: add a key that starts signing `publish_lead` from now (published
/// at once), and delete keys that are no longer published.
pub fn rotate(
    dir: &Path,
    alg: SigningAlg,
    now: UnixTime,
    publish_lead: u64,
    retention: u64,
) -> Result<(KeyEntry, Vec<String>), KeyError> {
    let mut manifest = read_manifest(dir)?;
    // A pending next key must take over before another is queued behind it, or the chain of
    // "published before first use" would depend on its start time.
    let use_from = now.saturating_add(publish_lead);
    let mut removed = Vec::new();
    let froms: Vec<UnixTime> = {
        manifest.keys.sort_by_key(|k| k.use_from);
        manifest.keys.iter().map(|k| k.use_from).collect()
    };
    let mut keep = Vec::new();
    for (i, e) in manifest.keys.drain(..).enumerate() {
        if key_state(froms.iter().copied(), i, now, retention) == KeyState::Expired {
            removed.push(e);
        } else {
            keep.push(e);
        }
    }
    manifest.keys = keep;
    let entry = add_key(dir, &mut manifest, alg, now, use_from)?;
    // Files are deleted only once the manifest no longer names them.
    for e in &removed {
        let _ = std::fs::remove_file(dir.join(&e.file));
    }
    Ok((entry, removed.into_iter().map(|e| e.kid).collect()))
}

/// `lanyard keys list`: every key with its state at `now`.
pub fn list(
    dir: &Path,
    now: UnixTime,
    retention: u64,
) -> Result<Vec<(KeyEntry, KeyState)>, KeyError> {
    let mut m = read_manifest(dir)?;
    m.keys.sort_by_key(|k| k.use_from);
    let froms: Vec<UnixTime> = m.keys.iter().map(|k| k.use_from).collect();
    Ok(m.keys
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let s = key_state(froms.iter().copied(), i, now, retention);
            (e, s)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixTime = 1_800_000_000;

    #[test]
    fn key_states_follow_the_clock() {
        // Keys starting at T, T+100 (rotated in), retention 50.
        let froms = [T, T + 100];
        let st = |i, now| key_state(froms.iter().copied(), i, now, 50);
        assert_eq!(st(0, T), KeyState::Active);
        assert_eq!(
            st(1, T),
            KeyState::Next,
            "next key is published before its first use"
        );
        assert_eq!(st(0, T + 100), KeyState::Retiring(T + 150));
        assert_eq!(st(1, T + 100), KeyState::Active);
        assert_eq!(st(0, T + 149), KeyState::Retiring(T + 150));
        assert_eq!(
            st(0, T + 150),
            KeyState::Expired,
            "dropped once its last token has expired"
        );
    }

    #[test]
    fn generate_rotate_and_prune() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("as");
        let first = generate(&d, SigningAlg::Es256, T).expect("generate");
        assert!(matches!(
            generate(&d, SigningAlg::Es256, T),
            Err(KeyError::Exists(_))
        ));
        let mode = std::fs::metadata(d.join(&first.file))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key is 0600");
        assert_eq!(
            std::fs::metadata(&d).expect("dir").permissions().mode() & 0o777,
            0o700
        );

        let (next, removed) = rotate(&d, SigningAlg::Es256, T + 10, 300, 600).expect("rotate");
        assert!(removed.is_empty());
        let ring = Keyring::load(&d, 600).expect("load");
        assert_eq!(
            ring.active(T + 10).map(|k| k.kid.as_str()),
            Some(first.kid.as_str())
        );
        let kids: Vec<_> = ring.published(T + 10).map(|k| k.kid.clone()).collect();
        assert_eq!(
            kids,
            vec![first.kid.clone(), next.kid.clone()],
            "next key is in the JWKS before use"
        );
        assert_eq!(
            ring.active(T + 310).map(|k| k.kid.as_str()),
            Some(next.kid.as_str())
        );
        assert!(
            ring.by_kid(&first.kid, T + 909).is_some(),
            "old key kept while its tokens live"
        );
        assert!(ring.by_kid(&first.kid, T + 910).is_none());

        let (_, removed) = rotate(&d, SigningAlg::Es256, T + 1000, 300, 600).expect("rotate again");
        assert_eq!(removed, vec![first.kid.clone()]);
        assert!(!d.join(&first.file).exists(), "expired key file deleted");
    }

    #[test]
    fn jwks_has_no_private_member_and_every_algorithm_signs() {
        for alg in [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa] {
            let (key, _) = SigningKey::generate(alg, T).expect("generate");
            let ring = Keyring::from_keys(vec![key], 60);
            let jwks = ring.jwks(T);
            let k = &jwks["keys"][0];
            assert_eq!(k["alg"], alg.as_str());
            assert_eq!(k["use"], "sig");
            assert!(
                !jwk::has_private_member(k.as_object().expect("object")),
                "{alg:?}"
            );
            let active = ring.active(T).expect("active");
            let jwt =
                super::super::sign_jwt(active, Typ::AccessToken, &serde_json::json!({"sub":"x"}))
                    .expect("sign");
            assert_eq!(jwt.split('.').count(), 3);
        }
    }
}
