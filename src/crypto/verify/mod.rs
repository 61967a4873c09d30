//! Compact JWS parsing and signature verification against configured keys only.
//!
//! - Only legal compact serialization is read: three base64url segments over
//!   `[A-Za-z0-9_-]`, no padding (RFC 8725bis). Five segments (a JWE) is its own error.
//! - Keys come only from a configured JWK Set, never from `jwk`/`jku`/`x5u`/`x5c` headers
//!   (RFC 8725 §3.10). Each key is bound to exactly one algorithm, checked at verification
//!   time (RFC 8725 §3.1): HMAC and `none` cannot be configured at all, so an `HS256` token
//!   keyed with a public key finds no key.
//! - `crit` naming anything is refused (RFC 7515 §4.1.11: lanyard understands no extension).
//! - A header or payload that names any member twice, at any depth, is refused (checklist
//!   G91, lanyard choice): a JSON parser keeps one copy silently, and which one differs
//!   between parsers.
//! - A key set remembers which signatures it has already verified, and which ones lanyard
//!   itself made with one of its keys ([`KeySet::vouch`]), by the SHA-256 digest of the
//!   signed bytes and the signature. [`KeySet::verify_recalling`] does not verify a
//!   byte-identical token again: the same bytes under the same key verify the same way, and
//!   finding other bytes with the same digest is a SHA-256 second preimage. Everything else
//!   (pinned algorithm, `kid`, the key still being in the set) is checked every time, and the
//!   memory goes with the set when its keys are refreshed or rotated.

use base64::Engine as _;
use josekit::jwk::Jwk;
use josekit::jws::{
    ES256, ES384, ES512, EdDSA, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512,
};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;

use super::jwk;

/// Why a JWS was refused. Detail for logs; the wire gets a fixed text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url segments.
    #[error("not a compact JWS")]
    Shape,
    /// Five segments: an encrypted JWT, which is not accepted here.
    #[error("a JWE where a JWS is expected")]
    Encrypted,
    /// The header is not a JSON object of the expected shape, or repeats a member.
    #[error("bad JOSE header: {0}")]
    Header(String),
    /// The payload is not a JSON object.
    #[error("bad payload")]
    Payload,
    /// `crit` present.
    #[error("crit extension not understood")]
    Crit,
    /// `alg` outside the pinned set (including `none` and HMAC).
    #[error("algorithm {0} not allowed")]
    Algorithm(String),
    /// No configured key with that `kid` and algorithm.
    #[error("no matching key")]
    UnknownKey,
    /// Signature does not verify.
    #[error("bad signature")]
    Signature,
}

/// The protected header members lanyard reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Algorithm.
    pub alg: String,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Media type of the whole JWT.
    #[serde(default)]
    pub typ: Option<String>,
    /// Critical extensions.
    #[serde(default)]
    pub crit: Option<Value>,
    /// An embedded public key (DPoP proofs only; never trusted elsewhere).
    #[serde(default)]
    pub jwk: Option<Map<String, Value>>,
}

impl Header {
    /// Whether `typ` equals `expected`, compared case-insensitively, with or without the
    /// `application/` prefix (RFC 7515 §4.1.9, checklist D7).
    pub fn typ_is(&self, expected: &str) -> bool {
        self.typ.as_deref().is_some_and(|t| {
            let t = t
                .get(..12)
                .filter(|p| p.eq_ignore_ascii_case("application/"))
                .map_or(t, |_| &t[12..]);
            t.eq_ignore_ascii_case(expected)
        })
    }
}

/// A parsed, not yet verified compact JWS.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    /// The protected header.
    pub header: Header,
    /// `BASE64URL(header) . BASE64URL(payload)`, the signed bytes.
    pub signing_input: &'a str,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Longest RSA modulus accepted: 8192 bits.
const MAX_RSA_MODULUS_BYTES: usize = 1024;

/// An RSA public exponent (big-endian bytes) that is odd, ≥ 3 and < 2^32 (RFC 8017 §3.1
/// allows any odd e ≥ 3; every real key uses 65537).
fn rsa_exponent_ok(e: &[u8]) -> bool {
    let digits = e
        .iter()
        .skip_while(|b| **b == 0)
        .copied()
        .collect::<Vec<u8>>();
    if digits.len() > 4 {
        return false;
    }
    let v = digits
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    v >= 3 && v % 2 == 1
}

fn b64d(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Parse a compact JWS strictly.
pub fn parse(token: &str) -> Result<Jws<'_>, JwsError> {
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(JwsError::Shape);
    }
    let dots = token.bytes().filter(|&b| b == b'.').count();
    if dots == 4 {
        return Err(JwsError::Encrypted);
    }
    if dots != 2 {
        return Err(JwsError::Shape);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(JwsError::Shape);
    };
    if h.is_empty() || p.is_empty() {
        return Err(JwsError::Shape);
    }
    let header_bytes = b64d(h).ok_or(JwsError::Shape)?;
    let payload = b64d(p).ok_or(JwsError::Shape)?;
    let signature = b64d(s).ok_or(JwsError::Shape)?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(|e| JwsError::Header(e.to_string()))?;
    if !unique_members(&header_bytes) {
        return Err(JwsError::Header("a member appears twice".into()));
    }
    if header.crit.is_some() {
        return Err(JwsError::Crit);
    }
    // The payload must be a JSON object; its members are read by a typed struct later.
    if payload.first().copied() != Some(b'{') && !payload.trim_ascii_start().starts_with(b"{") {
        return Err(JwsError::Payload);
    }
    if !unique_members(&payload) {
        return Err(JwsError::Payload);
    }
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(Jws {
        header,
        signing_input,
        payload,
        signature,
    })
}

/// Whether `json` is one JSON value in which no object names a member twice (members are
/// compared after unescaping, so `"a"` and `"\u0061"` are the same name). Invalid JSON is
/// `false` too.
pub(crate) fn unique_members(json: &[u8]) -> bool {
    serde_json::from_slice::<UniqueMembers>(json).is_ok()
}

/// Deserializes any JSON value, failing on a repeated member name in any object.
struct UniqueMembers;

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueMembersVisitor)
    }
}

struct UniqueMembersVisitor;

impl<'de> Visitor<'de> for UniqueMembersVisitor {
    type Value = UniqueMembers;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }

    fn visit_unit<E: de::Error>(self) -> Result<UniqueMembers, E> {
        Ok(UniqueMembers)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueMembers, A::Error> {
        while seq.next_element::<UniqueMembers>()?.is_some() {}
        Ok(UniqueMembers)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMembers, A::Error> {
        // Tokens' objects have a few dozen members at most: a linear scan over names that
        // borrow the input (escaped names are the only copies) costs less than hashing.
        let mut seen: Vec<Name<'de>> = Vec::with_capacity(16);
        while let Some(name) = map.next_key::<Name<'de>>()? {
            if seen.iter().any(|s| s.as_str() == name.as_str()) {
                return Err(de::Error::custom("duplicate member"));
            }
            seen.push(name);
            map.next_value::<UniqueMembers>()?;
        }
        Ok(UniqueMembers)
    }
}

/// A member name, borrowed from the input unless it had to be unescaped.
enum Name<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Name<'_> {
    fn as_str(&self) -> &str {
        match self {
            Name::Borrowed(s) => s,
            Name::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
        Ok(Name::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
        Ok(Name::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
        Ok(Name::Owned(v))
    }
}

/// A verification key bound to one algorithm.
pub struct VerifyKey {
    /// Its `kid`, if the JWK had one.
    pub kid: Option<String>,
    /// The one algorithm it verifies.
    pub alg: &'static str,
    /// RFC 7638 thumbprint.
    pub thumbprint: String,
    verifier: Box<dyn JwsVerifier>,
    /// ring's copy, which verifies instead of `verifier` where it applies (`crypto::fast`).
    fast: Option<super::fast::FastVerifier>,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Every asymmetric algorithm lanyard can verify. Nothing else can be pinned.
pub const ASYMMETRIC_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    "Ed25519",
];

fn intern(alg: &str) -> Option<&'static str> {
    ASYMMETRIC_ALGS.iter().copied().find(|a| *a == alg)
}

/// Algorithms a key's type and curve can serve.
fn compatible(m: &Map<String, Value>) -> &'static [&'static str] {
    let crv = m.get("crv").and_then(Value::as_str);
    match (m.get("kty").and_then(Value::as_str), crv) {
        (Some("EC"), Some("P-256")) => &["ES256"],
        (Some("EC"), Some("P-384")) => &["ES384"],
        (Some("EC"), Some("P-521")) => &["ES512"],
        (Some("RSA"), _) => &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        (Some("OKP"), Some("Ed25519")) => &["EdDSA", "Ed25519"],
        _ => &[],
    }
}

fn verifier(alg: &str, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, String> {
    let e = |e: josekit::JoseError| e.to_string();
    Ok(match alg {
        "RS256" => Box::new(RS256.verifier_from_jwk(jwk).map_err(e)?),
        "RS384" => Box::new(RS384.verifier_from_jwk(jwk).map_err(e)?),
        "RS512" => Box::new(RS512.verifier_from_jwk(jwk).map_err(e)?),
        "PS256" => Box::new(PS256.verifier_from_jwk(jwk).map_err(e)?),
        "PS384" => Box::new(PS384.verifier_from_jwk(jwk).map_err(e)?),
        "PS512" => Box::new(PS512.verifier_from_jwk(jwk).map_err(e)?),
        "ES256" => Box::new(ES256.verifier_from_jwk(jwk).map_err(e)?),
        "ES384" => Box::new(ES384.verifier_from_jwk(jwk).map_err(e)?),
        "ES512" => Box::new(ES512.verifier_from_jwk(jwk).map_err(e)?),
        "EdDSA" | "Ed25519" => Box::new(EdDSA.verifier_from_jwk(jwk).map_err(e)?),
        other => return Err(format!("algorithm {other} cannot verify")),
    })
}

impl VerifyKey {
    /// Keys for one public JWK: one per algorithm in `allowed` that the key can serve (just
    /// its own `alg` if it names one).
    pub fn from_jwk(m: &Map<String, Value>, allowed: &[&str]) -> Result<Vec<VerifyKey>, String> {
        if jwk::has_private_member(m) {
            return Err("key carries private or symmetric material".into());
        }
        if m.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            return Err("key is not for signatures".into());
        }
        let thumbprint = jwk::thumbprint(m).ok_or("unsupported key type")?;
        if m.get("kty").and_then(Value::as_str) == Some("RSA") {
            // Leading zero bytes carry no bits: a padded short modulus is still short.
            let n = m
                .get("n")
                .and_then(Value::as_str)
                .and_then(b64d)
                .map_or(0, |n| n.iter().skip_while(|b| **b == 0).count());
            if n < 256 {
                return Err("RSA key shorter than 2048 bits".into());
            }
            if n > MAX_RSA_MODULUS_BYTES {
                return Err("RSA key longer than 8192 bits".into());
            }
            // A huge public exponent makes every verification slow (a denial of service
            // through a DPoP proof's own key): accept odd exponents of at most 32 bits.
            let e = m.get("e").and_then(Value::as_str).and_then(b64d);
            if !e.as_deref().is_some_and(rsa_exponent_ok) {
                return Err("RSA public exponent must be odd, at least 3 and at most 2^32".into());
            }
        }
        let own = m.get("alg").and_then(Value::as_str);
        let kid = m.get("kid").and_then(Value::as_str).map(str::to_owned);
        // josekit compares a JWK's own `alg` with its algorithm name; strip it since we bind
        // the algorithm ourselves (and RFC 9864's "Ed25519" is EdDSA to josekit).
        let mut bare = m.clone();
        bare.remove("alg");
        let jwk = Jwk::from_map(bare).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for alg in compatible(m) {
            if !allowed.contains(alg) || own.is_some_and(|o| o != *alg) {
                continue;
            }
            let Some(alg) = intern(alg) else { continue };
            out.push(VerifyKey {
                kid: kid.clone(),
                alg,
                thumbprint: thumbprint.clone(),
                verifier: verifier(alg, &jwk)?,
                fast: super::fast::FastVerifier::from_jwk(alg, m),
            });
        }
        if out.is_empty() {
            return Err("key serves none of the allowed algorithms".into());
        }
        Ok(out)
    }

    /// Whether this key is one the token asks for: its algorithm, and its `kid` if it names
    /// one.
    fn serves(&self, jws: &Jws<'_>, alg: &str) -> bool {
        self.alg == alg && (jws.header.kid.is_none() || self.kid == jws.header.kid)
    }

    /// Verify a signature over `input`.
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.fast {
            Some(f) => f.verify(input, signature),
            None => self.verifier.verify(input, signature).is_ok(),
        }
    }
}

/// The keys of one trusted party, and the signatures already known to verify under them.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    known: Known,
}

/// How [`KeySet::verify_recalling`] treats a token's signature once it is known good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Remember it until this time (the token's `exp`; capped at [`MAX_RECALL`] from now):
    /// for tokens presented many times, such as a human's ID token.
    Keep {
        /// Unix seconds.
        until: u64,
    },
    /// Forget it once recalled, and do not remember a newly verified one: for single-use
    /// tokens such as an ID-JAG, which [`KeySet::vouch`] remembers when lanyard signs it.
    Once,
}

/// The longest a verified signature is remembered, whatever the token's `exp`.
pub const MAX_RECALL: u64 = 3600;

/// Shards of the known-signature memory; each is locked on its own.
const SHARDS: usize = 16;

/// Entries per shard (16 × 4,096 = 65,536 signatures, about 6 MiB at most per key set). A
/// full shard drops expired entries at most once a second; if it is still full, a new
/// signature is simply not remembered and is verified again next time.
const PER_SHARD: usize = 4096;

/// Digest of the bytes a signature check depends on: the signing input and the signature.
type Digest = [u8; 32];

fn digest(signing_input: &[u8], signature: &[u8]) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(signing_input.len() as u64).to_be_bytes());
    ctx.update(signing_input);
    ctx.update(signature);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Index of the key in its set.
    key: usize,
    /// Unix seconds after which the entry is dropped.
    until: u64,
}

#[derive(Debug, Default)]
struct Shard {
    seen: HashMap<Digest, Seen>,
    /// When expired entries were last dropped.
    swept: u64,
}

/// Signatures known to verify under a key of the set.
#[derive(Debug)]
struct Known {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl Default for Known {
    fn default() -> Self {
        Self::with_capacity(PER_SHARD)
    }
}

impl Known {
    fn with_capacity(per_shard: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard,
        }
    }

    fn shard(&self, d: &Digest) -> Option<std::sync::MutexGuard<'_, Shard>> {
        // A poisoned shard is only ever a missed shortcut: the signature is verified.
        self.shards
            .get(usize::from(d[0]) % SHARDS)
            .and_then(|m| m.lock().ok())
    }

    fn remember(&self, d: Digest, key: usize, now: u64, until: u64) {
        let until = until.min(now.saturating_add(MAX_RECALL));
        if until < now {
            return;
        }
        let Some(mut shard) = self.shard(&d) else {
            return;
        };
        if shard.seen.len() >= self.per_shard && !shard.seen.contains_key(&d) {
            if shard.swept == now {
                return;
            }
            shard.swept = now;
            shard.seen.retain(|_, s| s.until >= now);
            if shard.seen.len() >= self.per_shard {
                return;
            }
        }
        shard.seen.insert(d, Seen { key, until });
    }

    /// The key under which this digest is known good, if it is and has not expired.
    fn recall(&self, d: &Digest, now: u64, once: bool) -> Option<usize> {
        let mut shard = self.shard(d)?;
        let seen = if once {
            shard.seen.remove(d)?
        } else {
            *shard.seen.get(d)?
        };
        (seen.until >= now).then_some(seen.key)
    }
}

impl KeySet {
    /// Build from a JWK Set. Keys that cannot be used are skipped (RFC 7517 §5); a set with
    /// no usable key is an error.
    pub fn from_jwks(jwks: &Value, allowed: &[&str]) -> Result<Self, String> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JWK Set")?;
        let mut out = Vec::new();
        let mut last_err = String::from("no keys");
        for k in keys {
            let Some(m) = k.as_object() else { continue };
            match VerifyKey::from_jwk(m, allowed) {
                Ok(v) => out.extend(v),
                Err(e) => last_err = e,
            }
        }
        if out.is_empty() {
            return Err(format!("no usable key: {last_err}"));
        }
        Ok(Self {
            keys: out,
            known: Known::default(),
        })
    }

    /// Whether a key with this `kid` exists (for the refresh-on-unknown-kid rule).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Verify `jws` with a key of this set under the pinned algorithms. A token without `kid`
    /// is tried against every key of its algorithm.
    pub fn verify(&self, jws: &Jws<'_>, pinned: &[&str]) -> Result<&VerifyKey, JwsError> {
        let alg = pinned_alg(jws, pinned)?;
        self.check(jws, alg).map(|(_, k)| k)
    }

    /// [`verify`](Self::verify), except that a signature this set already knows to verify
    /// under one of its keys (the same signing input and signature, and that key still
    /// matching the token's `alg` and `kid`) is not verified again. What is remembered, and
    /// for how long, is `recall`'s choice.
    pub fn verify_recalling(
        &self,
        jws: &Jws<'_>,
        pinned: &[&str],
        now: u64,
        recall: Recall,
    ) -> Result<&VerifyKey, JwsError> {
        let alg = pinned_alg(jws, pinned)?;
        let d = digest(jws.signing_input.as_bytes(), &jws.signature);
        if let Some(k) = self
            .known
            .recall(&d, now, recall == Recall::Once)
            .and_then(|i| self.keys.get(i))
            .filter(|k| k.serves(jws, alg))
        {
            return Ok(k);
        }
        let (i, k) = self.check(jws, alg)?;
        if let Recall::Keep { until } = recall {
            self.known.remember(d, i, now, until);
        }
        Ok(k)
    }

    /// Remember that `token`, which lanyard has just signed with its key `kid` under `alg`,
    /// verifies; if this set holds that key (same thumbprint, same algorithm), the token's
    /// next [`verify_recalling`](Self::verify_recalling) skips the signature check. Nothing
    /// is remembered for a key this set does not hold.
    pub fn vouch(&self, token: &str, kid: &str, alg: &str, now: u64, until: u64) {
        let Some(i) = self
            .keys
            .iter()
            .position(|k| k.thumbprint == kid && k.alg == alg)
        else {
            return;
        };
        let Some((signing_input, sig)) = token.rsplit_once('.') else {
            return;
        };
        let Some(sig) = b64d(sig) else { return };
        self.known
            .remember(digest(signing_input.as_bytes(), &sig), i, now, until);
    }

    /// The key of this set that verifies `jws` under `alg`, with its index.
    fn check(&self, jws: &Jws<'_>, alg: &str) -> Result<(usize, &VerifyKey), JwsError> {
        let mut candidates = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.serves(jws, alg))
            .peekable();
        if candidates.peek().is_none() {
            return Err(JwsError::UnknownKey);
        }
        candidates
            .find(|(_, k)| k.verify(jws.signing_input.as_bytes(), &jws.signature))
            .ok_or(JwsError::Signature)
    }
}

/// The token's `alg`, if it is pinned and one lanyard can verify.
fn pinned_alg<'j>(jws: &'j Jws<'_>, pinned: &[&str]) -> Result<&'j str, JwsError> {
    let alg = jws.header.alg.as_str();
    if !pinned.contains(&alg) || intern(alg).is_none() {
        return Err(JwsError::Algorithm(alg.chars().take(20).collect()));
    }
    Ok(alg)
}

#[cfg(test)]
mod tests;
