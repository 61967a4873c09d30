//! The policy: a human-owned TOML file, reviewed like code, that says which IdPs and
//! issuers are trusted, which agents exist, which resources and actions there are, what each
//! agent may do in each channel, and what each human may do.
//!
//! [`load`] / [`parse`] turn the file into a validated [`Policy`] or refuse it with
//! [`PolicyErrors`]: *every* problem found, each with file, line, column and field path
//! (`agent[1].never[0]: action `x` is not defined by any resource`). Loading reads the JWKS
//! files the policy names, so a policy that loads holds only usable, public keys. Nothing
//! here reads the clock: grant expiry is stored and compared against a `now` passed in.
//!
//! Layout:
//! - `raw.rs`: the file as written (private serde types, `deny_unknown_fields`, spans);
//! - `check.rs`: raw → validated, collecting every error;
//! - `model.rs`: the validated types exposed to the rest of lanyard;
//! - `jwks.rs`: reading JWKS and refusing private key material;
//! - `time.rs`: durations and RFC 3339 dates, clock-free;
//! - `error.rs`: [`PolicyError`], [`PolicyErrors`], byte offset → line/column.

mod check;
mod error;
mod jwks;
mod model;
mod raw;
mod time;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use error::{PolicyError, PolicyErrors};
pub use model::{
    Agent, Algorithm, Approval, Channel, ChannelGrant, ControlPlane, Credential, DirectGrant,
    Entitlement, HumanMatch, Idp, Resource, StaticJwks, TrustedIssuer,
};

/// The policy file version this build understands (`version = 1`).
pub const SUPPORTED_VERSION: i64 = 1;

/// Reads, parses and validates the policy file at `path`. Relative paths inside it (JWKS
/// files) are resolved against the file's directory; errors are labelled with `path`.
pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
    let label = path.display().to_string();
    let whole_file = |message: String| {
        PolicyErrors::new(vec![PolicyError {
            file: label.clone(),
            line: 1,
            column: 1,
            field: String::new(),
            message,
        }])
    };
    let bytes = std::fs::read(path).map_err(|e| whole_file(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        whole_file(format!(
            "not UTF-8 (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
    parse(&label, &text, base_dir)
}

/// Parses and validates policy `text`. `file_label` names the file in errors; `base_dir`
/// resolves relative paths inside it (JWKS files, which are read here).
pub fn parse(file_label: &str, text: &str, base_dir: &Path) -> Result<Policy, PolicyErrors> {
    check::check(file_label, text, base_dir)
}

/// A validated policy snapshot: every reference resolves, every action exists, every key is
/// public. Lookups by id, URI or issuer are O(1).
///
/// Collections are reachable through accessors (not public fields) so that the lookup
/// indexes built at load time cannot go stale.
#[derive(Debug, Clone)]
pub struct Policy {
    source: String,
    fingerprint: String,
    idps: Vec<Idp>,
    trusted_issuers: Vec<TrustedIssuer>,
    resources: Vec<Resource>,
    agents: Vec<Agent>,
    channels: Vec<Channel>,
    entitlements: Vec<Entitlement>,
    control_plane: Option<ControlPlane>,
    idp_by_id: HashMap<String, usize>,
    idp_by_issuer: HashMap<String, usize>,
    trusted_by_issuer: HashMap<String, usize>,
    resource_by_uri: HashMap<String, usize>,
    agent_by_id: HashMap<String, usize>,
    channel_by_id: HashMap<String, usize>,
}

impl Policy {
    /// Builds the snapshot and its indexes from validated parts (uniqueness already checked).
    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        source: &str,
        text: &str,
        idps: Vec<Idp>,
        trusted_issuers: Vec<TrustedIssuer>,
        resources: Vec<Resource>,
        agents: Vec<Agent>,
        channels: Vec<Channel>,
        entitlements: Vec<Entitlement>,
        control_plane: Option<ControlPlane>,
    ) -> Self {
        fn index<T>(items: &[T], key: impl Fn(&T) -> &str) -> HashMap<String, usize> {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| (key(item).to_owned(), i))
                .collect()
        }
        Policy {
            source: source.to_owned(),
            fingerprint: sha256_hex(text.as_bytes()),
            idp_by_id: index(&idps, |i| &i.id),
            idp_by_issuer: index(&idps, |i| &i.issuer),
            trusted_by_issuer: index(&trusted_issuers, |t| &t.issuer),
            resource_by_uri: index(&resources, |r| &r.uri),
            agent_by_id: index(&agents, |a| &a.id),
            channel_by_id: index(&channels, |c| &c.id),
            idps,
            trusted_issuers,
            resources,
            agents,
            channels,
            entitlements,
            control_plane,
        }
    }

    /// Who may use the admin API; `None` when the policy has no `[control_plane]` (the
    /// admin API then refuses everyone).
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        self.control_plane.as_ref()
    }

    /// The agent with this id (its client id at lanyard).
    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agent_by_id.get(id).and_then(|&i| self.agents.get(i))
    }

    /// The resource with exactly this URI.
    pub fn resource(&self, uri: &str) -> Option<&Resource> {
        self.resource_by_uri
            .get(uri)
            .and_then(|&i| self.resources.get(i))
    }

    /// The enterprise IdP whose issuer is exactly `iss` (an ID token's `iss`).
    pub fn idp_by_issuer(&self, iss: &str) -> Option<&Idp> {
        self.idp_by_issuer.get(iss).and_then(|&i| self.idps.get(i))
    }

    /// The enterprise IdP with this id.
    pub fn idp(&self, id: &str) -> Option<&Idp> {
        self.idp_by_id.get(id).and_then(|&i| self.idps.get(i))
    }

    /// The trusted ID-JAG issuer whose issuer is exactly `iss` (an ID-JAG's `iss`).
    pub fn trusted_issuer(&self, iss: &str) -> Option<&TrustedIssuer> {
        self.trusted_by_issuer
            .get(iss)
            .and_then(|&i| self.trusted_issuers.get(i))
    }

    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channel_by_id
            .get(id)
            .and_then(|&i| self.channels.get(i))
    }

    /// Every `[[idp]]`, in file order.
    pub fn idps(&self) -> &[Idp] {
        &self.idps
    }

    /// Every `[[trusted_issuer]]`, in file order.
    pub fn trusted_issuers(&self) -> &[TrustedIssuer] {
        &self.trusted_issuers
    }

    /// Every `[[resource]]`, in file order.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// Every `[[agent]]`, in file order.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// Every `[[channel]]`, in file order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Every `[[entitlement]]`, in file order.
    pub fn entitlements(&self) -> &[Entitlement] {
        &self.entitlements
    }

    /// SHA-256 of the policy file's bytes, lowercase hex, for audit records. (JWKS files it
    /// names are not included.)
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The file label the policy was loaded from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}
