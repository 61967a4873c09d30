//! JWK helpers that do not need a key object.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Members a published JWK must never carry (RFC 7517 §9.2, checklist A6).
pub const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: the required members of its
/// key type, in lexicographic order, with no whitespace. `None` for an unsupported key type.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    // Members are listed in lexicographic order; serde_json escapes strings as RFC 7638 wants.
    let canonical = match s("kty")? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            Value::from(s("crv")?),
            Value::from(s("x")?),
            Value::from(s("y")?)
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            Value::from(s("e")?),
            Value::from(s("n")?)
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            Value::from(s("crv")?),
            Value::from(s("x")?)
        ),
        _ => return None,
    };
    Some(super::b64(Sha256::digest(canonical.as_bytes())))
}

/// Whether a JWK carries private or symmetric key material.
pub fn has_private_member(jwk: &Map<String, Value>) -> bool {
    PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's worked example.
    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk: Value = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let m = jwk.as_object().expect("object");
        assert_eq!(
            thumbprint(m).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn private_members_are_detected() {
        let m = serde_json::json!({"kty":"EC","d":"x"});
        assert!(has_private_member(m.as_object().expect("object")));
        let m = serde_json::json!({"kty":"oct","k":"x"});
        assert!(has_private_member(m.as_object().expect("object")));
    }
}
