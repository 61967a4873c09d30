//! Minting, decoding and verifying JWTs for cases: the runner's only josekit user.
//!
//! Cases need validly signed JWTs from keys the server has never seen (B13, D37, D38), from
//! a registered agent key (section C), deliberately broken ones (`alg:none`, HS256 with a
//! public key's bytes, a flipped signature byte), DPoP proofs carrying their public key, and
//! a look inside the JWTs the server issues (A7, section E).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::{self, ES256, ES384, ES512, EdDSA, HS256, JwsHeader, JwsSigner, JwsVerifier};
use josekit::jws::{PS256, PS384, PS512, RS256, RS384, RS512};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A signing key for this run: generated, loaded from a JWK, or a shared secret.
pub struct Signer {
    signer: Box<dyn JwsSigner>,
    /// The public JWK, when the key is asymmetric (DPoP proofs carry it).
    public_jwk: Option<Map<String, Value>>,
}

impl Signer {
    /// A fresh P-256 key with the given `kid`; no server trusts it.
    pub fn ephemeral_es256(kid: &str) -> Result<Self, String> {
        let pair = ES256
            .generate_key_pair()
            .map_err(|e| format!("cannot generate an ES256 key: {e}"))?;
        let mut signer = ES256
            .signer_from_der(pair.to_der_private_key())
            .map_err(|e| format!("cannot load the ES256 key: {e}"))?;
        signer.set_key_id(kid);
        Ok(Self {
            signer: Box::new(signer),
            public_jwk: Some(pair.to_jwk_public_key().into()),
        })
    }

    /// A fresh P-256 key with the given `kid`, and its private JWK (for probes that must put
    /// private material where only a public key belongs).
    pub fn ephemeral_es256_with_private(kid: &str) -> Result<(Self, Map<String, Value>), String> {
        let pair = ES256
            .generate_key_pair()
            .map_err(|e| format!("cannot generate an ES256 key: {e}"))?;
        let mut signer = ES256
            .signer_from_der(pair.to_der_private_key())
            .map_err(|e| format!("cannot load the ES256 key: {e}"))?;
        signer.set_key_id(kid);
        let private: Map<String, Value> = pair.to_jwk_key_pair().into();
        Ok((
            Self {
                signer: Box::new(signer),
                public_jwk: Some(pair.to_jwk_public_key().into()),
            },
            private,
        ))
    }

    /// A fresh 2048-bit RSA key signing RS256 with the given `kid`; no server trusts it.
    /// The `kid` may deliberately name a key the server does trust (a bad signature).
    pub fn ephemeral_rs256(kid: &str) -> Result<Self, String> {
        let pair = RS256
            .generate_key_pair(2048)
            .map_err(|e| format!("cannot generate an RSA key: {e}"))?;
        let mut signer = RS256
            .signer_from_der(pair.to_der_private_key())
            .map_err(|e| format!("cannot load the RSA key: {e}"))?;
        signer.set_key_id(kid);
        Ok(Self {
            signer: Box::new(signer),
            public_jwk: Some(pair.to_jwk_public_key().into()),
        })
    }

    /// A registered private JWK (bootstrap's `private_jwk`); its `kid` goes in the header.
    /// Only ES256 is needed by the demo agents.
    pub fn from_private_jwk(jwk: &Map<String, Value>) -> Result<Self, String> {
        let alg = jwk.get("alg").and_then(Value::as_str).unwrap_or("ES256");
        if alg != "ES256" {
            return Err(format!(
                "private JWK alg {alg:?} is not supported (ES256 only)"
            ));
        }
        let key = Jwk::from_map(jwk.clone()).map_err(|e| format!("bad private JWK: {e}"))?;
        let signer = ES256
            .signer_from_jwk(&key)
            .map_err(|e| format!("cannot load the private JWK: {e}"))?;
        let public = key
            .to_public_key()
            .map_err(|e| format!("cannot derive the public JWK: {e}"))?;
        Ok(Self {
            signer: Box::new(signer),
            public_jwk: Some(public.into()),
        })
    }

    /// HS256 with `secret` as the key and the given `kid` (an algorithm-confusion probe).
    pub fn hs256(secret: &[u8], kid: &str) -> Result<Self, String> {
        let mut signer = HS256
            .signer_from_bytes(secret)
            .map_err(|e| format!("cannot build an HS256 signer: {e}"))?;
        signer.set_key_id(kid);
        Ok(Self {
            signer: Box::new(signer),
            public_jwk: None,
        })
    }

    /// The public JWK, for asymmetric keys.
    pub fn public_jwk(&self) -> Option<&Map<String, Value>> {
        self.public_jwk.as_ref()
    }

    /// Signs exactly these header and payload bytes (base64url-encoded as given, so a
    /// header or payload may repeat a member or be anything at all). The header should name
    /// the key's `alg`; nothing is added to it.
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> Result<String, String> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self
            .signer
            .sign(input.as_bytes())
            .map_err(|e| format!("cannot sign: {e}"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// Signs `claims` (a JSON object) as a compact JWS with `typ`, `alg` and `kid` headers.
    pub fn sign(&self, typ: &str, claims: Value) -> Result<String, String> {
        let mut header = Map::new();
        header.insert("typ".to_owned(), Value::String(typ.to_owned()));
        self.sign_with_header(header, &claims)
    }

    /// Signs `claims` with the given header members; `alg` (and `kid`, when the key has
    /// one) are set from the key, overriding the map.
    pub fn sign_with_header(
        &self,
        header: Map<String, Value>,
        claims: &Value,
    ) -> Result<String, String> {
        if !claims.is_object() {
            return Err("JWT claims must be a JSON object".to_owned());
        }
        let header =
            JwsHeader::from_map(header).map_err(|e| format!("cannot build the JWS header: {e}"))?;
        let payload =
            serde_json::to_vec(claims).map_err(|e| format!("cannot encode the claims: {e}"))?;
        jws::serialize_compact(&payload, &header, self.signer.as_ref())
            .map_err(|e| format!("cannot sign the JWT: {e}"))
    }
}

/// An unsecured JWT (`alg` as given, normally `none`): header and claims as given, and the
/// signature segment as given (empty for a proper unsecured JWS).
pub fn unsigned(header: &Value, claims: &Value, signature: &str) -> Result<String, String> {
    let enc = |v: &Value| {
        serde_json::to_vec(v)
            .map(|b| URL_SAFE_NO_PAD.encode(b))
            .map_err(|e| format!("cannot encode JSON: {e}"))
    };
    Ok(format!("{}.{}.{signature}", enc(header)?, enc(claims)?))
}

/// A compact JWS with the given header and claims re-encoded and `signature` (a base64url
/// segment, typically the original token's) kept as it is.
pub fn reencode(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    signature: &str,
) -> Result<String, String> {
    unsigned(
        &Value::Object(header.clone()),
        &Value::Object(claims.clone()),
        signature,
    )
}

/// base64url without padding.
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64url_decode(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| format!("not base64url: {e}"))
}

/// An RFC 7518 §3.4 ES256 signature (R ‖ S, 64 bytes) re-encoded as an ASN.1 DER
/// `ECDSA-Sig-Value`, the form JWS forbids.
pub fn es256_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.len() != 64 {
        return Err(format!("ES256 signature of {} bytes, not 64", raw.len()));
    }
    let integer = |half: &[u8]| -> Vec<u8> {
        let trimmed: Vec<u8> = half.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if trimmed.is_empty() { vec![0] } else { trimmed };
        if body.first().is_some_and(|b| b & 0x80 != 0) {
            body.insert(0, 0);
        }
        // At most 33 bytes, so the short length form always fits.
        let mut out = vec![0x02, u8::try_from(body.len()).unwrap_or(33)];
        out.extend(body);
        out
    };
    let (r, s) = raw.split_at(32);
    let mut seq = integer(r);
    seq.extend(integer(s));
    let mut out = vec![0x30, u8::try_from(seq.len()).unwrap_or(70)];
    out.extend(seq);
    Ok(out)
}

/// The PEM `SubjectPublicKeyInfo` of a P-256 public JWK (what an algorithm-confusion attacker
/// would feed an HMAC verifier as its "secret").
pub fn p256_public_pem(jwk: &Map<String, Value>) -> Result<String, String> {
    if jwk.get("kty").and_then(Value::as_str) != Some("EC")
        || jwk.get("crv").and_then(Value::as_str) != Some("P-256")
    {
        return Err("not a P-256 JWK".to_owned());
    }
    let coord = |name: &str| -> Result<Vec<u8>, String> {
        let s = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("JWK lacks {name}"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| format!("JWK {name} is not base64url: {e}"))?;
        if bytes.len() == 32 {
            Ok(bytes)
        } else {
            Err(format!("JWK {name} is {} bytes, not 32", bytes.len()))
        }
    };
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 04 ‖ x ‖ y }.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    der.extend(coord("x")?);
    der.extend(coord("y")?);
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    Ok(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    ))
}

/// A decoded (not verified) compact JWS.
pub struct Decoded {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The claims set.
    pub claims: Map<String, Value>,
}

/// Splits and decodes a compact JWS without verifying it: exactly three segments, base64url
/// without padding, a JSON object header and payload.
pub fn decode(compact: &str) -> Result<Decoded, String> {
    let parts: Vec<&str> = compact.split('.').collect();
    let [h, p, _s] = parts.as_slice() else {
        return Err(format!(
            "not a compact JWS: {} segment(s), not 3",
            parts.len()
        ));
    };
    let object = |seg: &str, what: &str| -> Result<Map<String, Value>, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(seg)
            .map_err(|e| format!("{what} is not base64url: {e}"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(format!("{what} is not a JSON object")),
            Err(e) => Err(format!("{what} is not JSON: {e}")),
        }
    };
    Ok(Decoded {
        header: object(h, "header")?,
        claims: object(p, "payload")?,
    })
}

/// The same compact JWS with one bit of its signature flipped (a bad signature on real
/// content). The flip is made on the decoded bytes, so it always changes the signature.
pub fn flip_signature_bit(compact: &str) -> Result<String, String> {
    let Some((signing_input, sig)) = compact.rsplit_once('.') else {
        return Err("not a compact JWS".to_owned());
    };
    let mut bytes = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|e| format!("signature is not base64url: {e}"))?;
    let mid = bytes.len() / 2;
    let Some(b) = bytes.get_mut(mid) else {
        return Err("empty signature".to_owned());
    };
    *b ^= 0x01;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Verifies a compact JWS with one public JWK, using the JWS header's `alg` (which must be
/// an asymmetric algorithm this runner knows, and match the key's own `alg` if it has one).
pub fn verify(compact: &str, jwk: &Map<String, Value>) -> Result<(), String> {
    let alg = decode(compact)?
        .header
        .get("alg")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or("header has no string alg")?;
    if let Some(key_alg) = jwk.get("alg").and_then(Value::as_str)
        && key_alg != alg
    {
        return Err(format!(
            "header alg {alg} differs from the key's alg {key_alg}"
        ));
    }
    let key = Jwk::from_map(jwk.clone()).map_err(|e| format!("unusable JWK: {e}"))?;
    let verifier: Box<dyn JwsVerifier> = match alg.as_str() {
        "ES256" => Box::new(ES256.verifier_from_jwk(&key).map_err(ke)?),
        "ES384" => Box::new(ES384.verifier_from_jwk(&key).map_err(ke)?),
        "ES512" => Box::new(ES512.verifier_from_jwk(&key).map_err(ke)?),
        "RS256" => Box::new(RS256.verifier_from_jwk(&key).map_err(ke)?),
        "RS384" => Box::new(RS384.verifier_from_jwk(&key).map_err(ke)?),
        "RS512" => Box::new(RS512.verifier_from_jwk(&key).map_err(ke)?),
        "PS256" => Box::new(PS256.verifier_from_jwk(&key).map_err(ke)?),
        "PS384" => Box::new(PS384.verifier_from_jwk(&key).map_err(ke)?),
        "PS512" => Box::new(PS512.verifier_from_jwk(&key).map_err(ke)?),
        "EdDSA" | "Ed25519" => Box::new(EdDSA.verifier_from_jwk(&key).map_err(ke)?),
        other => return Err(format!("alg {other:?} is not one this runner verifies")),
    };
    jws::deserialize_compact(compact, verifier.as_ref())
        .map(|_| ())
        .map_err(|e| format!("signature does not verify: {e}"))
}

fn ke(e: josekit::JoseError) -> String {
    format!("cannot build a verifier from the JWK: {e}")
}

/// The RFC 7638 JWK SHA-256 thumbprint, base64url: the required members in lexicographic
/// order, no whitespace.
pub fn thumbprint(jwk: &Map<String, Value>) -> Result<String, String> {
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("JWK has no kty")?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => return Err(format!("no RFC 7638 member list for kty {other:?}")),
    };
    let mut canonical = Map::new();
    for m in members {
        let v = jwk
            .get(*m)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("JWK lacks string member {m}"))?;
        canonical.insert((*m).to_owned(), Value::String(v.to_owned()));
    }
    // serde_json's Map is ordered by key (no preserve_order feature), so this is canonical.
    let json = serde_json::to_string(&Value::Object(canonical))
        .map_err(|e| format!("cannot encode the JWK: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(json.as_bytes())))
}

/// The signature segment of a compact JWS: random, long and unique, so it makes a good
/// marker for spotting an echoed JWT (B17).
pub fn signature_segment(compact: &str) -> &str {
    compact.rsplit('.').next().unwrap_or(compact)
}

/// Whether the string has the shape of a compact JWS (three dot-separated segments).
pub fn is_compact(s: &str) -> bool {
    s.split('.').count() == 3
}

/// Seconds since the epoch, for `iat`/`exp` claims.
pub fn now() -> i64 {
    i64::try_from(crate::oauth::since_epoch().as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let map = jwk.as_object().unwrap().clone();
        assert_eq!(
            thumbprint(&map).as_deref(),
            Ok("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn der_encoding_of_an_es256_signature() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a leading zero
        raw[31] = 1;
        raw[63] = 7; // s is 7 after trimming
        let der = es256_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(usize::from(der[1]), der.len() - 2);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 7]);
        assert!(es256_raw_to_der(&raw[..63]).is_err());
    }

    #[test]
    fn p256_pem_round_trips_through_josekit() {
        let signer = Signer::ephemeral_es256("k").unwrap();
        let pem = p256_public_pem(signer.public_jwk().unwrap()).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(ES256.verifier_from_pem(pem.as_bytes()).is_ok());
    }

    #[test]
    fn es256_sign_verify_roundtrip_and_flip() {
        let signer = Signer::ephemeral_es256("k1").unwrap();
        let jwt = signer.sign("JWT", json!({"a": 1})).unwrap();
        let mut public = signer.public_jwk().cloned().unwrap_or_default();
        public.insert("kid".into(), json!("k1"));
        assert_eq!(verify(&jwt, &public), Ok(()));
        let flipped = flip_signature_bit(&jwt).unwrap();
        assert!(verify(&flipped, &public).is_err());
        let d = decode(&jwt).unwrap();
        assert_eq!(d.header.get("kid"), Some(&json!("k1")));
        assert_eq!(d.claims.get("a"), Some(&json!(1)));
    }
}
