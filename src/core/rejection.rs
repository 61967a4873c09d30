//! What went wrong, independent of how a grant reports it on the wire.

/// A reason to refuse. The `&'static str` details are fixed texts for logs and audit.
///
/// One vocabulary for both legs and the resource-server check: each grant maps it to its
/// own wire error in an exhaustive `match` (the same malformed token is `invalid_request`
/// where RFC 8693 says so and `invalid_grant` where RFC 7523 does), so adding a variant
/// makes every mapping fail to compile until it has decided what the variant means there.
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

impl Rejection {
    /// A stable snake_case name of the kind of refusal, for logs, audit and metrics.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::WrongType => "wrong_type",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::SelfIssued => "self_issued",
            Self::BadSignature(_) => "bad_signature",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Audience => "audience",
            Self::ClientMismatch => "client_mismatch",
            Self::Time(_) => "time",
            Self::Jti => "jti",
            Self::Replay => "replay",
            Self::Subject => "subject",
            Self::MayAct => "may_act",
            Self::AuthTooOld { .. } => "auth_too_old",
            Self::Target(_) => "target",
            Self::Scope => "scope",
            Self::AuthorizationDetails(_) => "authorization_details",
            Self::Denied(_) => "denied",
            Self::Request(_) => "request",
        }
    }

    /// The fixed text that says what was wrong (never input).
    pub const fn detail(&self) -> &'static str {
        match self {
            Self::Malformed(d)
            | Self::BadSignature(d)
            | Self::Time(d)
            | Self::Target(d)
            | Self::AuthorizationDetails(d)
            | Self::Denied(d)
            | Self::Request(d) => d,
            Self::WrongType => "typ is wrong for this kind of token",
            Self::UntrustedIssuer => "issuer missing or not trusted here",
            Self::SelfIssued => "issued by this server's own IdP role in the same trust domain",
            Self::KeysUnavailable => "the issuer's keys cannot be obtained now",
            Self::Audience => "aud does not name this recipient",
            Self::ClientMismatch => "client_id does not match the authenticated client",
            Self::Jti => "jti missing, empty or too long",
            Self::Replay => "jti already used",
            Self::Subject => "sub missing or unresolvable",
            Self::MayAct => "may_act does not name the authenticated agent",
            Self::AuthTooOld { .. } => "the human authenticated too long ago for this audience",
            Self::Scope => "a requested scope is not allowed",
        }
    }
}

/// `kind: detail`, as logs and audit records carry it (for `AuthTooOld`, with the maximum).
impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AuthTooOld { max_age } => {
                write!(
                    f,
                    "{}: {} (max_age {max_age} s)",
                    self.kind(),
                    self.detail()
                )
            }
            _ => write!(f, "{}: {}", self.kind(), self.detail()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_text_names_the_kind_and_the_fixed_detail() {
        assert_eq!(
            Rejection::Denied("human is not a member of the channel").to_string(),
            "denied: human is not a member of the channel"
        );
        assert_eq!(
            Rejection::KeysUnavailable.to_string(),
            "keys_unavailable: the issuer's keys cannot be obtained now"
        );
        assert_eq!(
            Rejection::AuthTooOld { max_age: 300 }.to_string(),
            "auth_too_old: the human authenticated too long ago for this audience (max_age 300 s)"
        );
    }
}
