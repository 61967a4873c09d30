//! Typed JWT claims. Deserializing into structs (not `serde_json::Value`) is both cheaper
//! and stricter: serde refuses a repeated known member (checklist G91).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::UnixTime;

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several (or one, in an array).
    Many(Vec<String>),
}

impl Audience {
    /// Every value.
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(s) => std::slice::from_ref(s),
            Self::Many(v) => v,
        }
    }

    /// Exactly one value equal to `expected`, by exact string comparison (ID-JAG §4.4.1,
    /// RFC 7523bis: no normalisation of trailing slash, case or percent-encoding).
    pub fn is_exactly(&self, expected: &str) -> bool {
        matches!(self.values(), [one] if one == expected)
    }
}

/// A NumericDate: seconds, possibly with a fraction (RFC 7519 §2). Non-numbers are refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumericDate(pub f64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || v < 0.0 {
            return Err(serde::de::Error::custom("NumericDate out of range"));
        }
        Ok(Self(v))
    }
}

impl NumericDate {
    /// Whole seconds (fractions truncated toward the past).
    pub fn secs(self) -> UnixTime {
        self.0 as UnixTime
    }
}

/// An OpenID Connect ID token from an enterprise IdP (the subject token of leg 1).
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: Option<String>,
    /// Subject at the IdP.
    pub sub: Option<String>,
    /// Audience: the agent's client id at the IdP.
    pub aud: Option<Audience>,
    /// Authorized party (OIDC Core §2), required when `aud` has several values.
    pub azp: Option<String>,
    /// Expiry.
    pub exp: Option<NumericDate>,
    /// Issued at.
    pub iat: Option<NumericDate>,
    /// Not before.
    pub nbf: Option<NumericDate>,
    /// Authentication time.
    pub auth_time: Option<NumericDate>,
    /// Authentication context class.
    pub acr: Option<String>,
    /// Authentication methods.
    pub amr: Option<Vec<String>>,
    /// RFC 8693 §4.4: who may act for the subject.
    pub may_act: Option<Value>,
    /// Every other claim (groups, email, the mapped subject claim…).
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A `private_key_jwt` client assertion (RFC 7523 §3).
#[derive(Debug, Clone, Deserialize)]
pub struct ClientAssertionClaims {
    /// Issuer: the client id.
    pub iss: Option<String>,
    /// Subject: the client id.
    pub sub: Option<String>,
    /// This server's issuer identifier.
    pub aud: Option<Audience>,
    /// Expiry.
    pub exp: Option<NumericDate>,
    /// Issued at.
    pub iat: Option<NumericDate>,
    /// Not before.
    pub nbf: Option<NumericDate>,
    /// Unique id; single use.
    pub jti: Option<String>,
}

/// An RFC 8693 §4.1 actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's subject (an agent principal).
    pub sub: String,
    /// A prior actor, when delegation is chained.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub act: Option<Box<Actor>>,
}

/// An RFC 9396 authorization detail of type `lanyard_action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDetail {
    /// Always `lanyard_action`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Action names.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Resource (or channel) URIs.
    #[serde(default)]
    pub locations: Vec<String>,
}

/// The ID-JAG lanyard's IdP role signs (ID-JAG §3.1).
#[derive(Debug, Clone, Serialize)]
pub struct IdJagClaims<'a> {
    /// The IdP-role issuer.
    pub iss: &'a str,
    /// The subject the resource AS knows.
    pub sub: &'a str,
    /// The resource AS issuer.
    pub aud: &'a str,
    /// The agent's client id at that AS.
    pub client_id: &'a str,
    /// Unique id (≥ 128 bits).
    pub jti: &'a str,
    /// Issued at.
    pub iat: UnixTime,
    /// Expiry.
    pub exp: UnixTime,
    /// The granted resource.
    pub resource: &'a str,
    /// The granted actions, space-separated.
    pub scope: &'a str,
    /// The granted actions as RFC 9396 details.
    pub authorization_details: &'a [ActionDetail],
    /// The agent acting for the human.
    pub act: &'a Actor,
    /// The channel the request came from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// Copied from the ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// Copied from the ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<&'a str>,
    /// Copied from the ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<&'a [String]>,
    /// Copied from the ID token (CLIENTS.md: some verifiers want it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    /// Copied from the ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Proof-of-possession key binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<&'a Value>,
    /// The just-in-time approval used (id, approver, actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<&'a Value>,
}

/// An ID-JAG as the resource AS reads it (ID-JAG §3.1, §4.4.1).
#[derive(Debug, Clone, Deserialize)]
pub struct IdJagIn {
    /// Issuer.
    pub iss: Option<String>,
    /// The human.
    pub sub: Option<Value>,
    /// This AS.
    pub aud: Option<Audience>,
    /// The client at this AS.
    pub client_id: Option<String>,
    /// Unique id.
    pub jti: Option<Value>,
    /// Expiry.
    pub exp: Option<NumericDate>,
    /// Issued at.
    pub iat: Option<NumericDate>,
    /// Not before.
    pub nbf: Option<NumericDate>,
    /// Granted resource(s).
    pub resource: Option<ResourceClaim>,
    /// Granted scope.
    pub scope: Option<String>,
    /// Granted details.
    pub authorization_details: Option<Value>,
    /// Prior actor.
    pub act: Option<Actor>,
    /// lanyard: the channel.
    pub channel: Option<String>,
    /// Key binding.
    pub cnf: Option<Confirmation>,
    /// Authentication time.
    pub auth_time: Option<NumericDate>,
    /// Authentication context.
    pub acr: Option<String>,
    /// Authentication methods.
    pub amr: Option<Vec<String>>,
    /// A just-in-time approval (id, approver, actions).
    pub approval: Option<Value>,
}

/// `resource`: one URI or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ResourceClaim {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl ResourceClaim {
    /// Every value.
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(s) => std::slice::from_ref(s),
            Self::Many(v) => v,
        }
    }
}

/// RFC 7800 / RFC 9449 §6 confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// JWK SHA-256 thumbprint.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jkt: Option<String>,
    /// Certificate thumbprint (mTLS); lanyard does not bind to it and refuses ID-JAGs that do.
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none", default)]
    pub x5t_s256: Option<String>,
    /// Any other confirmation member (RFC 7800 `jwk`, `jwe`, `kid`, `jku`, …): kept so that
    /// an assertion bound by a method lanyard does not enforce is refused, not unbound.
    #[serde(flatten, skip_serializing)]
    pub other: serde_json::Map<String, Value>,
}

impl Confirmation {
    /// A binding to one DPoP key, by its thumbprint (RFC 9449 §6.1).
    pub fn jkt(jkt: String) -> Self {
        Self {
            jkt: Some(jkt),
            x5t_s256: None,
            other: serde_json::Map::new(),
        }
    }
}

/// The RFC 9068 access token lanyard's resource AS signs.
#[derive(Debug, Clone, Serialize)]
pub struct AccessTokenClaims<'a> {
    /// The AS issuer.
    pub iss: &'a str,
    /// The human.
    pub sub: &'a str,
    /// The one resource.
    pub aud: &'a str,
    /// The agent's client id here.
    pub client_id: &'a str,
    /// Issued at.
    pub iat: UnixTime,
    /// Expiry.
    pub exp: UnixTime,
    /// Unique id.
    pub jti: &'a str,
    /// Granted actions, space-separated.
    pub scope: &'a str,
    /// Granted actions as details.
    pub authorization_details: &'a [ActionDetail],
    /// The agent, with prior actors nested.
    pub act: &'a Actor,
    /// The channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// Key binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Authentication time of the human, from the ID-JAG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<UnixTime>,
    /// The just-in-time approval the ID-JAG carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<&'a Value>,
}

/// An access token as a resource server reads it (RFC 9068 §2.2, checklist J106).
#[derive(Debug, Clone, Deserialize)]
pub struct AccessTokenIn {
    /// Issuer.
    pub iss: Option<String>,
    /// The human.
    pub sub: Option<String>,
    /// The resource.
    pub aud: Option<Audience>,
    /// The agent.
    pub client_id: Option<String>,
    /// Expiry.
    pub exp: Option<NumericDate>,
    /// Issued at.
    pub iat: Option<NumericDate>,
    /// Not before.
    pub nbf: Option<NumericDate>,
    /// Unique id.
    pub jti: Option<String>,
    /// Granted actions, space-separated.
    pub scope: Option<String>,
    /// Granted actions as RFC 9396 details.
    pub authorization_details: Option<Vec<ActionDetail>>,
    /// The agent, with prior actors nested.
    pub act: Option<Actor>,
    /// The channel.
    pub channel: Option<String>,
    /// Key binding.
    pub cnf: Option<Confirmation>,
    /// A just-in-time approval, when one was used.
    pub approval: Option<Value>,
}
