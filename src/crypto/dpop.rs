//! RFC 9449 DPoP proof validation (§4.3), without the stateful parts: the caller checks
//! `jti` single use and server nonces through the store.

use serde::Deserialize;

use sha2::{Digest, Sha256};

use super::verify::{self, VerifyKey};
use super::{b64, jwk};
use crate::clock::UnixTime;

/// Algorithms accepted on proofs (advertised as `dpop_signing_alg_values_supported`).
pub const DPOP_ALGS: &[&str] = &["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"];

/// How old a proof's `iat` may be (RFC 9449 §11.1: accept proofs only briefly).
pub const MAX_PROOF_AGE: u64 = 60;

/// Why a proof was refused (for logs; the wire says `invalid_dpop_proof`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not a single well-formed JWT.
    #[error("malformed proof")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("typ is not dpop+jwt")]
    Type,
    /// `alg` not allowed, or the `jwk` is unusable or private.
    #[error("bad alg or jwk")]
    Key,
    /// The signature does not verify with the embedded key.
    #[error("bad signature")]
    Signature,
    /// A required claim is missing.
    #[error("missing claim")]
    Claims,
    /// `htm` or `htu` does not match the request.
    #[error("htm/htu mismatch")]
    Target,
    /// `iat` outside the window.
    #[error("iat outside the accepted window")]
    Time,
    /// `ath` does not match the access token.
    #[error("ath mismatch")]
    Ath,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<crate::core::claims::NumericDate>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// A verified proof.
#[derive(Debug, Clone)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof key: the `cnf.jkt` it binds to.
    pub jkt: String,
    /// The proof's `jti` (for the replay check).
    pub jti: String,
    /// When it was made.
    pub iat: UnixTime,
    /// The server nonce it carries, if any.
    pub nonce: Option<String>,
}

/// Normalise an HTTP URI for `htu` comparison (RFC 9449 §4.3 (9)): scheme and host lowercased,
/// default port dropped, query and fragment ignored.
fn normalise(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{host}{port}{}", url.scheme(), url.path()))
}

/// The `ath` value of an access token: base64url SHA-256 of its ASCII.
pub fn ath(access_token: &str) -> String {
    b64(Sha256::digest(access_token.as_bytes()))
}

/// Validate a proof for `method` at `uri` (§4.3 checks 2–9 and 11; the caller does 1, 10 and
/// the replay check). `access_token`, at a resource server, demands a matching `ath`.
pub fn validate(
    proof: &str,
    method: &str,
    uri: &str,
    access_token: Option<&str>,
    leeway: u64,
    now: UnixTime,
) -> Result<Proof, ProofError> {
    let jws = verify::parse(proof).map_err(|_| ProofError::Malformed)?;
    if jws
        .header
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some("dpop+jwt")
    {
        return Err(ProofError::Type);
    }
    let alg = jws.header.alg.as_str();
    if !DPOP_ALGS.contains(&alg) {
        return Err(ProofError::Key);
    }
    let key = jws.header.jwk.as_ref().ok_or(ProofError::Key)?;
    if jwk::has_private_member(key) {
        return Err(ProofError::Key);
    }
    let keys = VerifyKey::from_jwk(key, &[alg]).map_err(|_| ProofError::Key)?;
    let k = keys.first().ok_or(ProofError::Key)?;
    if !k.verify(jws.signing_input.as_bytes(), &jws.signature) {
        return Err(ProofError::Signature);
    }
    let c: Claims = serde_json::from_slice(&jws.payload).map_err(|_| ProofError::Malformed)?;
    let (Some(jti), Some(htm), Some(htu), Some(iat)) = (c.jti, c.htm, c.htu, c.iat) else {
        return Err(ProofError::Claims);
    };
    if jti.is_empty() || jti.len() > 256 {
        return Err(ProofError::Claims);
    }
    if htm != method || normalise(&htu).is_none() || normalise(&htu) != normalise(uri) {
        return Err(ProofError::Target);
    }
    // Checklist I102: at most MAX_PROOF_AGE old (the age bound already is the tolerance, no
    // leeway on top), and at most the leeway ahead.
    let iat = iat.secs();
    if iat > now.saturating_add(leeway) || now > iat.saturating_add(MAX_PROOF_AGE) {
        return Err(ProofError::Time);
    }
    if let Some(at) = access_token
        && c.ath.as_deref() != Some(ath(at).as_str())
    {
        return Err(ProofError::Ath);
    }
    let jkt = jwk::thumbprint(key).ok_or(ProofError::Key)?;
    Ok(Proof {
        jkt,
        jti,
        iat,
        nonce: c.nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::KeyPair as _;
    use serde_json::Value;

    const NOW: UnixTime = 1_800_000_000;
    const URI: &str = "https://as.example/as/token";

    fn proof(typ: &str, htm: &str, htu: &str, iat: u64, private_in_jwk: bool) -> String {
        let kp = josekit::jws::ES256.generate_key_pair().expect("key");
        let mut jwk: serde_json::Map<String, Value> = if private_in_jwk {
            kp.to_jwk_key_pair().into()
        } else {
            kp.to_jwk_public_key().into()
        };
        jwk.remove("alg");
        let header = serde_json::json!({"typ": typ, "alg": "ES256", "jwk": jwk});
        let claims = serde_json::json!({"jti": "j1", "htm": htm, "htu": htu, "iat": iat});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signer = josekit::jws::ES256
            .signer_from_jwk(&kp.to_jwk_key_pair())
            .expect("signer");
        use josekit::jws::JwsSigner as _;
        let sig = signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", b64(sig))
    }

    #[test]
    fn valid_proof_yields_thumbprint() {
        let p = proof(
            "dpop+jwt",
            "POST",
            "https://AS.example/as/token?x=1",
            NOW,
            false,
        );
        let v = validate(&p, "POST", URI, None, 60, NOW).expect("valid");
        assert_eq!(v.jkt.len(), 43);
    }

    /// One row per RFC 9449 §4.3 rule.
    #[test]
    fn proof_rules_table() {
        let rows = [
            (proof("jwt", "POST", URI, NOW, false), ProofError::Type),
            (
                proof("dpop+jwt", "GET", URI, NOW, false),
                ProofError::Target,
            ),
            (
                proof("dpop+jwt", "POST", "https://as.example/other", NOW, false),
                ProofError::Target,
            ),
            (
                proof("dpop+jwt", "POST", URI, NOW - 61, false),
                ProofError::Time,
            ),
            (
                proof("dpop+jwt", "POST", URI, NOW - 90, false),
                ProofError::Time,
            ),
            (
                proof("dpop+jwt", "POST", URI, NOW + 61, false),
                ProofError::Time,
            ),
            (proof("dpop+jwt", "POST", URI, NOW, true), ProofError::Key),
        ];
        for (i, (p, want)) in rows.iter().enumerate() {
            assert_eq!(
                validate(p, "POST", URI, None, 60, NOW).err().as_ref(),
                Some(want),
                "row {i}"
            );
        }
        assert_eq!(
            validate("not-a-jwt", "POST", URI, None, 60, NOW).err(),
            Some(ProofError::Malformed)
        );
    }

    #[test]
    fn proof_up_to_sixty_seconds_old_or_a_leeway_ahead_is_accepted() {
        for iat in [NOW - 60, NOW + 60] {
            let p = proof("dpop+jwt", "POST", URI, iat, false);
            assert!(
                validate(&p, "POST", URI, None, 60, NOW).is_ok(),
                "iat {iat}"
            );
        }
    }

    #[test]
    fn resource_server_demands_ath() {
        let p = proof("dpop+jwt", "POST", URI, NOW, false);
        assert_eq!(
            validate(&p, "POST", URI, Some("token"), 60, NOW).err(),
            Some(ProofError::Ath)
        );
    }
}
