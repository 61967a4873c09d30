//! The only user of josekit (and of ring): lanyard's signing keys, JWT signing, JWK
//! thumbprints.
//!
//! Keys are parsed once (at load or reload), never per request; each JOSE header is
//! serialized once per key and reused. The operations of every token request go through
//! ring ([`fast`]), the rest through josekit.

pub mod dpop;
mod fast;
pub mod jwk;
pub mod keyring;
pub mod sign;
pub mod verify;

pub use keyring::{KeyError, Keyring, SigningKey};
pub use sign::{CryptoError, Typ, sign_jwt};

use base64::Engine as _;

/// base64url without padding (RFC 7515 §2).
pub fn b64(data: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// 128 bits or more of randomness as base64url: `jti` values, ids, secrets.
pub fn random_id(bytes: usize) -> Result<String, CryptoError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(b64(buf))
}
