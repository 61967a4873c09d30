//! The issuers lanyard serves, in OAuth terms: which token role each plays, its identifier
//! and path (RFC 8414), and the algorithm of its own signing keys. Configuration builds
//! these ([`crate::config`] re-exports them); metadata, keys and grants read them.

use std::time::Duration;

/// Signature algorithm of lanyard's own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    /// ECDSA P-256 SHA-256 (default).
    Es256,
    /// RSASSA-PKCS1-v1_5 SHA-256, 2048-bit keys.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlg {
    /// The JWA name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parse a JWA name (case-sensitive, RFC 8725bis).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

/// Which token role an issuer plays. Separate trust domains (DESIGN, "Trust domains").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Issues ID-JAGs (RFC 8693 token exchange).
    Idp,
    /// Issues access tokens (RFC 7523 jwt-bearer with an ID-JAG).
    AuthorizationServer,
}

impl Role {
    /// Short name, also the keyring directory name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idp => "idp",
            Self::AuthorizationServer => "as",
        }
    }
}

/// One issuer this process serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    /// Its role.
    pub role: Role,
    /// The issuer identifier exactly as configured (published byte for byte).
    pub issuer: String,
    /// The issuer's path with no trailing slash (`""` for a root issuer); endpoints hang
    /// under it and the RFC 8414 §3.1 well-known URL inserts it.
    pub path: String,
    /// Longest lifetime of a token this issuer signs.
    pub max_token_ttl: Duration,
    /// Whether DPoP proofs at this token endpoint must carry a server nonce.
    pub require_dpop_nonce: bool,
}

impl IssuerSettings {
    /// An absolute URL of an endpoint under this issuer (`token`, `jwks.json`, …).
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.issuer.trim_end_matches('/'))
    }
}

/// Whether a URL's host is a loopback name or address (`localhost`, 127.0.0.0/8, `::1`):
/// the one place plain `http` is allowed for issuers, webhooks and discovery without an
/// explicit opt-in.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}
