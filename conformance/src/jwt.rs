//! Minting JWTs for cases: the runner's only josekit user.
//!
//! Sections A and B only need a syntactically real, validly signed JWT from a key the server
//! has never seen (B13). Later sections add signers for registered agent keys and
//! deliberately broken tokens here.

use josekit::jwk::KeyPair as _;
use josekit::jws::alg::ecdsa::EcdsaJwsSigner;
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::Value;

/// An ES256 key generated for this run; no server trusts it.
pub struct Signer {
    signer: EcdsaJwsSigner,
    kid: String,
}

impl Signer {
    /// A fresh P-256 key with the given `kid`.
    pub fn ephemeral_es256(kid: &str) -> Result<Self, String> {
        let pair = ES256
            .generate_key_pair()
            .map_err(|e| format!("cannot generate an ES256 key: {e}"))?;
        let signer = ES256
            .signer_from_der(pair.to_der_private_key())
            .map_err(|e| format!("cannot load the ES256 key: {e}"))?;
        Ok(Self {
            signer,
            kid: kid.to_owned(),
        })
    }

    /// Signs `claims` (a JSON object) as a compact JWS with `typ`, `alg` and `kid` headers.
    pub fn sign(&self, typ: &str, claims: Value) -> Result<String, String> {
        let Value::Object(map) = claims else {
            return Err("JWT claims must be a JSON object".to_owned());
        };
        let payload =
            JwtPayload::from_map(map).map_err(|e| format!("cannot build the JWT payload: {e}"))?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(self.kid.as_str());
        jwt::encode_with_signer(&payload, &header, &self.signer)
            .map_err(|e| format!("cannot sign the JWT: {e}"))
    }
}

/// The signature segment of a compact JWS: random, long and unique, so it makes a good
/// marker for spotting an echoed JWT (B17).
pub fn signature_segment(compact: &str) -> &str {
    compact.rsplit('.').next().unwrap_or(compact)
}

/// Seconds since the epoch, for `iat`/`exp` claims.
pub fn now() -> i64 {
    i64::try_from(crate::oauth::since_epoch().as_secs()).unwrap_or(i64::MAX)
}
