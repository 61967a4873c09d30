//! What went wrong, independent of how a grant reports it on the wire.

/// A reason to refuse. The `&'static str` details are fixed texts for logs and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// A JWT is not a well-formed compact JWS, or its JSON is malformed.
    Malformed(&'static str),
    /// `typ` is wrong for this kind of JWT (RFC 8725 §3.11–3.12).
    WrongType,
    /// `iss` is missing or not trusted here.
    UntrustedIssuer,
    /// The issuer is lanyard's own IdP role in the same trust domain (checklist D3).
    SelfIssued,
    /// Signature, algorithm or key did not check out.
    BadSignature(&'static str),
    /// Keys of the issuer cannot be obtained right now: fail closed (503).
    KeysUnavailable,
    /// `aud` does not name the expected recipient.
    Audience,
    /// `client_id` / `azp` does not match the authenticated client.
    ClientMismatch,
    /// A time claim is missing or out of range.
    Time(&'static str),
    /// `jti` missing, empty or too long.
    Jti,
    /// `jti` already used.
    Replay,
    /// `sub` missing or unresolvable.
    Subject,
    /// `may_act` does not name the authenticated agent (RFC 8693 §4.4).
    MayAct,
    /// The user authenticated too long ago for this audience (ID-JAG §9.2).
    AuthTooOld {
        /// The configured maximum, in seconds.
        max_age: u64,
    },
    /// The requested audience or resource is unknown or not governed by it.
    Target(&'static str),
    /// A requested scope is not allowed.
    Scope,
    /// `authorization_details` malformed or exceeding what is allowed.
    AuthorizationDetails(&'static str),
    /// Valid subject, but policy gives this agent nothing here for this human.
    Denied(&'static str),
    /// The request itself is malformed (parameter level).
    Request(&'static str),
}
