//! Compact JWS signing with a header built once per key.

use serde::Serialize;

use super::{SigningKey, b64};

/// The JOSE `typ` of a token lanyard signs. Distinct types keep the validation rules of
/// different JWT kinds mutually exclusive (RFC 8725 §3.11–3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typ {
    /// `oauth-id-jag+jwt` (ID-JAG §3.1).
    IdJag,
    /// `at+jwt` (RFC 9068 §2.1).
    AccessToken,
    /// `JWT`: ID tokens of the dev IdP.
    IdToken,
}

impl Typ {
    /// Every type, in the order of [`SigningKey`]'s header cache.
    pub const ALL: [Typ; 3] = [Typ::IdJag, Typ::AccessToken, Typ::IdToken];

    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IdJag => crate::oauth::urn::TYP_ID_JAG,
            Self::AccessToken => crate::oauth::urn::TYP_ACCESS_TOKEN,
            Self::IdToken => "JWT",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::IdJag => 0,
            Self::AccessToken => 1,
            Self::IdToken => 2,
        }
    }
}

/// A signing or randomness failure. Never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// josekit or OpenSSL failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The claims could not be serialized.
    #[error("claims not serializable: {0}")]
    Claims(String),
    /// The system's random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

/// Sign `claims` as a compact JWS with `key`, whose protected header is
/// `{"alg":…,"kid":…,"typ":…}`.
pub fn sign_jwt(
    key: &SigningKey,
    typ: Typ,
    claims: &impl Serialize,
) -> Result<String, CryptoError> {
    let payload = serde_json::to_vec(claims).map_err(|e| CryptoError::Claims(e.to_string()))?;
    let header = key.header_b64(typ);
    let mut out = String::with_capacity(header.len() + payload.len() * 4 / 3 + 100);
    out.push_str(header);
    out.push('.');
    out.push_str(&b64(&payload));
    let sig = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64(sig));
    Ok(out)
}
