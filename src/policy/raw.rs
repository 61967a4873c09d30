//! The file as written: private serde types, strict (`deny_unknown_fields`), with spans on
//! every value a semantic check may need to point at. `check.rs` turns these into the
//! validated types of `model.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;

/// A list whose own position and whose items' positions are both known.
pub(super) type SpannedList = Spanned<Vec<Spanned<String>>>;

/// A string-to-string table (`idp_client_ids`, `as_client_ids`) with positions.
pub(super) type SpannedMap = BTreeMap<Spanned<String>, Spanned<String>>;

/// One `[[idp]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdp {
    pub id: Spanned<String>,
    pub issuer: Spanned<String>,
    pub jwks_file: Option<Spanned<String>>,
    pub algorithms: SpannedList,
    pub groups_claim: Option<Spanned<String>>,
    pub subject_claim: Option<Spanned<String>>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub max_age: Option<Spanned<String>>,
}

/// One `[[trusted_issuer]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrustedIssuer {
    pub issuer: Spanned<String>,
    pub jwks_file: Option<Spanned<String>>,
    pub algorithms: SpannedList,
    #[serde(default)]
    pub allow_jti_reuse: bool,
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// One `[[resource]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResource {
    pub uri: Spanned<String>,
    pub authorization_server: Spanned<String>,
    pub actions: SpannedList,
    pub max_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub sender_constrained: bool,
}

/// One `[[agent]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub id: Spanned<String>,
    pub owner: Spanned<String>,
    pub enabled: Option<bool>,
    pub credential: Spanned<RawCredential>,
    #[serde(default)]
    pub accept_token_endpoint_aud: bool,
    #[serde(default)]
    pub idp_client_ids: SpannedMap,
    #[serde(default)]
    pub as_client_ids: SpannedMap,
    #[serde(default)]
    pub never: Vec<Spanned<String>>,
    pub max_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    #[serde(default)]
    pub grants: Vec<Spanned<RawDirectGrant>>,
}

/// `credential = { ... }`: all variants optional here, "exactly one" is checked later so
/// that zero or several variants get a clear message instead of a serde one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub jwks_file: Option<Spanned<String>>,
    pub jwks: Option<Spanned<String>>,
    pub client_secret_sha256: Option<Spanned<String>>,
    pub workload: Option<Spanned<RawWorkload>>,
}

/// `credential = { workload = { issuer, subject } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    pub issuer: Spanned<String>,
    pub subject: Spanned<String>,
}

/// One entry of an agent's `grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectGrant {
    pub resource: Spanned<String>,
    pub actions: SpannedList,
}

/// One `[[channel]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    pub id: Spanned<String>,
    pub members_group: Option<Spanned<String>>,
    #[serde(default)]
    pub grant: Vec<Spanned<RawChannelGrant>>,
}

/// One `[[channel.grant]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannelGrant {
    pub agent: Spanned<String>,
    pub resource: Spanned<String>,
    pub actions: SpannedList,
    pub approval: Option<Spanned<RawApproval>>,
    pub expires: Option<Spanned<RawExpires>>,
}

/// `approval = { actions, approvers }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    pub actions: SpannedList,
    pub approvers: SpannedList,
}

/// One `[[entitlement]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEntitlement {
    pub group: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub resource: Spanned<String>,
    pub actions: SpannedList,
}

/// `expires`, as text: either a quoted RFC 3339 string or a bare TOML date / date-time
/// (rendered back to its RFC 3339 text, so both go through the same parser).
#[derive(Debug)]
pub(super) struct RawExpires(pub String);

impl<'de> Deserialize<'de> for RawExpires {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExpiresVisitor)
    }
}

struct ExpiresVisitor;

impl<'de> Visitor<'de> for ExpiresVisitor {
    type Value = RawExpires;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 date (\"2027-01-31\") or timestamp (\"2027-01-31T12:00:00Z\")")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawExpires(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        // toml hands a bare datetime over as a one-entry map with a private key.
        let dt = toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(RawExpires(dt.to_string()))
    }
}

/// `[control_plane]`: which humans may use the admin API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControlPlane {
    pub client_ids: SpannedMap,
    pub admins: Option<SpannedList>,
    pub approvers: Option<SpannedList>,
    pub auditors: Option<SpannedList>,
}
