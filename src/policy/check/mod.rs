//! From text to a validated [`Policy`], collecting every error with its position and field.
//!
//! Three passes over one span-aware parse (`toml::de::DeTable`):
//! 1. syntax: a TOML syntax error stops here (recovery after one produces noise);
//! 2. shape: each `[[section]]` element is deserialized on its own into the strict raw types,
//!    so a type error or unknown field in one element does not hide errors in the others;
//! 3. meaning: references, actions, URLs, durations, keys — all checked, all reported.
//!
//! Names declared by an element that failed pass 2 are still registered (read straight from
//! the parse tree) so that one typo does not cascade into "unknown agent" errors elsewhere.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{PolicyErrors, Sink};
use super::jwks;
use super::model::{
    Agent, Algorithm, Approval, Channel, ChannelGrant, ControlPlane, Credential, DirectGrant,
    Entitlement, HumanMatch, Idp, Resource, StaticJwks, TrustedIssuer,
};
use super::raw::{
    RawAgent, RawChannel, RawChannelGrant, RawControlPlane, RawCredential, RawDirectGrant,
    RawEntitlement, RawIdp, RawResource, RawTrustedIssuer, SpannedList, SpannedMap,
};
use super::time;
use super::{Policy, SUPPORTED_VERSION};

mod fields;
mod values;

use values::*;

/// The top-level keys a policy file may have.
const TOP_LEVEL: [&str; 8] = [
    "version",
    "control_plane",
    "idp",
    "trusted_issuer",
    "resource",
    "agent",
    "channel",
    "entitlement",
];

const MIN_TTL: Duration = Duration::from_secs(30);
const MAX_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_RESOURCE_TTL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_AGENT_TTL: Duration = Duration::from_secs(10 * 60);

/// Parses and validates a whole policy file.
pub(super) fn check(file: &str, text: &str, base_dir: &Path) -> Result<Policy, PolicyErrors> {
    let mut cx = Checker {
        sink: Sink::new(file, text),
        base_dir,
    };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.sink.error(&span, "", e.message());
            return Err(PolicyErrors::new(cx.sink.into_errors()));
        }
    };

    // Pass 2: the version, then the shape of each section, element by element.
    if !cx.version(root.get_ref().get("version")) {
        // A file written for another version follows another schema: checking it against
        // this one would only bury the one error that matters.
        return Err(PolicyErrors::new(cx.sink.into_errors()));
    }
    let mut sections: HashMap<&str, &Spanned<DeValue<'_>>> = HashMap::new();
    for (key, value) in root.get_ref().iter() {
        let name: &str = key.get_ref();
        match TOP_LEVEL.iter().find(|k| **k == name) {
            Some(known) => {
                sections.insert(known, value);
            }
            None => cx.sink.error(
                &key.span(),
                key_path("", name),
                format!(
                    "unknown field `{name}`, expected one of {}",
                    TOP_LEVEL.map(|k| format!("`{k}`")).join(", ")
                ),
            ),
        }
    }
    let idps: Vec<Elem<'_, '_, RawIdp>> = cx.section("idp", sections.get("idp").copied());
    let issuers: Vec<Elem<'_, '_, RawTrustedIssuer>> =
        cx.section("trusted_issuer", sections.get("trusted_issuer").copied());
    let resources: Vec<Elem<'_, '_, RawResource>> =
        cx.section("resource", sections.get("resource").copied());
    let agents: Vec<Elem<'_, '_, RawAgent>> = cx.section("agent", sections.get("agent").copied());
    let channels: Vec<Elem<'_, '_, RawChannel>> =
        cx.section("channel", sections.get("channel").copied());
    let entitlements: Vec<Elem<'_, '_, RawEntitlement>> =
        cx.section("entitlement", sections.get("entitlement").copied());

    // Pass 3: meaning.
    let known = Known::collect(&idps, &resources, &agents);
    let v_idps = cx.idps(&idps);
    let v_issuers = cx.trusted_issuers(&issuers);
    let v_resources = cx.resources(&resources);
    let v_agents = cx.agents(&agents, &known);
    let v_channels = cx.channels(&channels, &known);
    let v_entitlements = cx.entitlements(&entitlements, &known);
    let v_control = sections
        .get("control_plane")
        .and_then(|node| cx.control_plane(node, &known));

    if cx.sink.count() > 0 {
        return Err(PolicyErrors::new(cx.sink.into_errors()));
    }
    Ok(Policy::from_parts(
        file,
        text,
        v_idps,
        v_issuers,
        v_resources,
        v_agents,
        v_channels,
        v_entitlements,
        v_control,
    ))
}

/// One element of a `[[section]]`, deserialized on its own.
struct Elem<'d, 't, T> {
    /// Field path of the element, e.g. `agent[1]`.
    path: String,
    /// Its node in the parse tree (used to read names out of elements that failed).
    node: &'d Spanned<DeValue<'t>>,
    /// The element, or `None` if it did not have the right shape (error already reported).
    raw: Option<T>,
}

/// Names declared anywhere in the file, for reference checks.
#[derive(Default)]
struct Known {
    idps: HashSet<String>,
    agents: HashSet<String>,
    /// Resource URI → the actions it defines (`None`: unreadable, skip action checks).
    resources: HashMap<String, Option<HashSet<String>>>,
    /// Every action of every resource, and whether that list is complete.
    all_actions: HashSet<String>,
    all_actions_complete: bool,
    /// Every resource's `authorization_server`, and whether that list is complete.
    as_issuers: HashSet<String>,
    as_issuers_complete: bool,
}

impl Known {
    fn collect(
        idps: &[Elem<'_, '_, RawIdp>],
        resources: &[Elem<'_, '_, RawResource>],
        agents: &[Elem<'_, '_, RawAgent>],
    ) -> Self {
        let mut known = Known {
            all_actions_complete: true,
            as_issuers_complete: true,
            ..Known::default()
        };
        for e in idps {
            let id = match &e.raw {
                Some(raw) => Some(raw.id.get_ref().clone()),
                None => peek_str(e.node, "id"),
            };
            known.idps.extend(id);
        }
        for e in agents {
            let id = match &e.raw {
                Some(raw) => Some(raw.id.get_ref().clone()),
                None => peek_str(e.node, "id"),
            };
            known.agents.extend(id);
        }
        for e in resources {
            let (uri, actions, as_issuer) = match &e.raw {
                Some(raw) => (
                    Some(raw.uri.get_ref().clone()),
                    Some(
                        raw.actions
                            .get_ref()
                            .iter()
                            .map(|a| a.get_ref().clone())
                            .collect(),
                    ),
                    Some(raw.authorization_server.get_ref().clone()),
                ),
                None => (
                    peek_str(e.node, "uri"),
                    peek_strs(e.node, "actions"),
                    peek_str(e.node, "authorization_server"),
                ),
            };
            match &actions {
                Some(actions) => known.all_actions.extend(actions.iter().cloned()),
                None => known.all_actions_complete = false,
            }
            match as_issuer {
                Some(iss) => {
                    known.as_issuers.insert(iss);
                }
                None => known.as_issuers_complete = false,
            }
            // The first declaration wins, as for every duplicate.
            if let Some(uri) = uri {
                known.resources.entry(uri).or_insert(actions);
            }
        }
        known
    }
}

struct Checker<'a> {
    sink: Sink<'a>,
    base_dir: &'a Path,
}

impl Checker<'_> {
    // ----- shape -------------------------------------------------------------------------

    /// Checks `version`; returns `false` when the rest of the file must not be checked.
    fn version(&mut self, version: Option<&Spanned<DeValue<'_>>>) -> bool {
        let Some(value) = version else {
            self.sink.error(
                &(0..0),
                "version",
                format!("missing `version = {SUPPORTED_VERSION}`"),
            );
            return true;
        };
        match i64::deserialize_from(value) {
            Ok(v) if v == SUPPORTED_VERSION => true,
            Ok(v) => {
                self.sink.error(
                    &value.span(),
                    "version",
                    format!(
                        "unsupported policy version {v}: this lanyard supports version \
                         {SUPPORTED_VERSION}"
                    ),
                );
                false
            }
            Err(_) => {
                self.sink.error(
                    &value.span(),
                    "version",
                    format!(
                        "must be the integer {SUPPORTED_VERSION} (the supported policy version)"
                    ),
                );
                false
            }
        }
    }

    /// Deserializes each element of an array-of-tables section separately.
    fn section<'d, 't, T: DeserializeOwned>(
        &mut self,
        name: &str,
        value: Option<&'d Spanned<DeValue<'t>>>,
    ) -> Vec<Elem<'d, 't, T>> {
        let Some(value) = value else {
            return Vec::new();
        };
        let Some(array) = value.get_ref().as_array() else {
            self.sink.error(
                &value.span(),
                name,
                format!("expected an array of tables (`[[{name}]]`)"),
            );
            return Vec::new();
        };
        let mut out = Vec::with_capacity(array.len());
        for (i, node) in array.iter().enumerate() {
            let path = format!("{name}[{i}]");
            let raw = match T::deserialize_from(node) {
                Ok(raw) => Some(raw),
                Err(e) => {
                    let span = e.span().unwrap_or_else(|| node.span());
                    let field = format!("{path}{}", locate(node, span.start).unwrap_or_default());
                    self.sink.error(&span, field, e.message());
                    None
                }
            };
            out.push(Elem { path, node, raw });
        }
        out
    }

    // ----- sections ------------------------------------------------------------------------

    fn idps(&mut self, elems: &[Elem<'_, '_, RawIdp>]) -> Vec<Idp> {
        let mut ids = HashMap::new();
        let mut issuers: HashMap<String, (String, usize)> = HashMap::new();
        let mut out = Vec::new();
        for e in elems {
            let Some(raw) = &e.raw else { continue };
            let p = &e.path;
            let before = self.sink.count();
            self.ident(&raw.id, &format!("{p}.id"));
            self.unique(&mut ids, &raw.id, &format!("{p}.id"), "idp id");
            let issuer_field = format!("{p}.issuer");
            self.issuer_url(
                &raw.issuer,
                &issuer_field,
                Http::Flag(raw.allow_insecure_http),
            );
            self.unique_issuer(
                &mut issuers,
                &raw.issuer,
                &issuer_field,
                "idp",
                raw.id.get_ref(),
            );
            let jwks = raw
                .jwks_file
                .as_ref()
                .and_then(|f| self.jwks_file(f, &format!("{p}.jwks_file")));
            let algorithms = self.algorithms(&raw.algorithms, &format!("{p}.algorithms"));
            let groups_claim = self.name_or(
                raw.groups_claim.as_ref(),
                &format!("{p}.groups_claim"),
                "groups",
            );
            let subject_claim = self.name_or(
                raw.subject_claim.as_ref(),
                &format!("{p}.subject_claim"),
                "sub",
            );
            let max_age = raw.max_age.as_ref().and_then(|m| {
                let parsed = time::parse_duration(m.get_ref()).and_then(|d| {
                    if d.is_zero() {
                        Err("must be longer than zero".to_owned())
                    } else {
                        Ok(d)
                    }
                });
                self.ok(parsed, &m.span(), &format!("{p}.max_age"))
            });
            if self.sink.count() == before {
                out.push(Idp {
                    id: raw.id.get_ref().clone(),
                    issuer: raw.issuer.get_ref().clone(),
                    jwks,
                    algorithms,
                    groups_claim,
                    subject_claim,
                    allow_insecure_http: raw.allow_insecure_http,
                    max_age,
                });
            }
        }
        out
    }

    fn trusted_issuers(&mut self, elems: &[Elem<'_, '_, RawTrustedIssuer>]) -> Vec<TrustedIssuer> {
        let mut issuers: HashMap<String, (String, usize)> = HashMap::new();
        let mut out = Vec::new();
        for e in elems {
            let Some(raw) = &e.raw else { continue };
            let p = &e.path;
            let before = self.sink.count();
            let issuer_field = format!("{p}.issuer");
            self.issuer_url(
                &raw.issuer,
                &issuer_field,
                Http::Flag(raw.allow_insecure_http),
            );
            self.unique_issuer(
                &mut issuers,
                &raw.issuer,
                &issuer_field,
                "trusted_issuer",
                p,
            );
            let jwks = raw
                .jwks_file
                .as_ref()
                .and_then(|f| self.jwks_file(f, &format!("{p}.jwks_file")));
            let algorithms = self.algorithms(&raw.algorithms, &format!("{p}.algorithms"));
            if self.sink.count() == before {
                out.push(TrustedIssuer {
                    issuer: raw.issuer.get_ref().clone(),
                    jwks,
                    algorithms,
                    allow_jti_reuse: raw.allow_jti_reuse,
                    allow_insecure_http: raw.allow_insecure_http,
                });
            }
        }
        out
    }

    fn resources(&mut self, elems: &[Elem<'_, '_, RawResource>]) -> Vec<Resource> {
        let mut uris = HashMap::new();
        let mut out = Vec::new();
        for e in elems {
            let Some(raw) = &e.raw else { continue };
            let p = &e.path;
            let before = self.sink.count();
            self.resource_uri(&raw.uri, &format!("{p}.uri"));
            self.unique(&mut uris, &raw.uri, &format!("{p}.uri"), "resource uri");
            self.issuer_url(
                &raw.authorization_server,
                &format!("{p}.authorization_server"),
                Http::LoopbackOnly,
            );
            let actions = self.defined_actions(&raw.actions, &format!("{p}.actions"));
            let max_ttl = self.ttl(
                raw.max_ttl.as_ref(),
                &format!("{p}.max_ttl"),
                DEFAULT_RESOURCE_TTL,
            );
            if self.sink.count() == before {
                out.push(Resource {
                    uri: raw.uri.get_ref().clone(),
                    authorization_server: raw.authorization_server.get_ref().clone(),
                    actions,
                    max_ttl,
                    sender_constrained: raw.sender_constrained,
                });
            }
        }
        out
    }

    fn agents(&mut self, elems: &[Elem<'_, '_, RawAgent>], known: &Known) -> Vec<Agent> {
        let mut ids = HashMap::new();
        let mut out = Vec::new();
        for e in elems {
            let Some(raw) = &e.raw else { continue };
            let p = &e.path;
            let before = self.sink.count();
            self.ident(&raw.id, &format!("{p}.id"));
            self.unique(&mut ids, &raw.id, &format!("{p}.id"), "agent id");
            self.name(&raw.owner, &format!("{p}.owner"));
            let credential = self.credential(&raw.credential, &format!("{p}.credential"));
            let idp_client_ids =
                self.client_ids(&raw.idp_client_ids, &format!("{p}.idp_client_ids"), |key| {
                    (!known.idps.contains(key))
                        .then(|| format!("unknown idp `{key}` (no [[idp]] has this id)"))
                });
            let as_client_ids =
                self.client_ids(&raw.as_client_ids, &format!("{p}.as_client_ids"), |key| {
                    (known.as_issuers_complete && !known.as_issuers.contains(key)).then(|| {
                        format!("`{key}` is not the authorization_server of any declared resource")
                    })
                });
            let never = self.never(&raw.never, &format!("{p}.never"), known);
            let max_ttl = self.ttl(
                raw.max_ttl.as_ref(),
                &format!("{p}.max_ttl"),
                DEFAULT_AGENT_TTL,
            );
            let grants = self.direct_grants(&raw.grants, &format!("{p}.grants"), known);
            if let (true, Some(credential)) = (self.sink.count() == before, credential) {
                out.push(Agent {
                    id: raw.id.get_ref().clone(),
                    owner: raw.owner.get_ref().clone(),
                    enabled: raw.enabled.unwrap_or(true),
                    credential,
                    accept_token_endpoint_aud: raw.accept_token_endpoint_aud,
                    idp_client_ids,
                    as_client_ids,
                    never,
                    max_ttl,
                    dpop_bound_access_tokens: raw.dpop_bound_access_tokens,
                    grants,
                });
            }
        }
        out
    }

    fn channels(&mut self, elems: &[Elem<'_, '_, RawChannel>], known: &Known) -> Vec<Channel> {
        let mut ids = HashMap::new();
        let mut out = Vec::new();
        for e in elems {
            let Some(raw) = &e.raw else { continue };
            let p = &e.path;
            let before = self.sink.count();
            self.name(&raw.id, &format!("{p}.id"));
            self.unique(&mut ids, &raw.id, &format!("{p}.id"), "channel id");
            if let Some(group) = &raw.members_group {
                self.name(group, &format!("{p}.members_group"));
            }
            let mut pairs: HashMap<(String, String), usize> = HashMap::new();
            let mut grants = Vec::new();
            for (i, g) in raw.grant.iter().enumerate() {
                let gp = format!("{p}.grant[{i}]");
                if let Some(grant) = self.channel_grant(g.get_ref(), &gp, known, &mut pairs) {
                    grants.push(grant);
                }
            }
            if self.sink.count() == before {
                out.push(Channel {
                    id: raw.id.get_ref().clone(),
                    members_group: raw.members_group.as_ref().map(|g| g.get_ref().clone()),
                    grants,
                });
            }
        }
        out
    }

    fn entitlements(
        &mut self,
        elems: &[Elem<'_, '_, RawEntitlement>],
        known: &Known,
    ) -> Vec<Entitlement> {
        let mut out = Vec::new();
        for e in elems {
            let Some(raw) = &e.raw else { continue };
            let p = &e.path;
            let before = self.sink.count();
            let who = match (&raw.group, &raw.user) {
                (Some(group), None) => {
                    self.name(group, &format!("{p}.group"));
                    Some(HumanMatch::Group(group.get_ref().clone()))
                }
                (None, Some(user)) => {
                    self.name(user, &format!("{p}.user"));
                    Some(HumanMatch::User(user.get_ref().clone()))
                }
                (Some(_), Some(user)) => {
                    self.sink.error(
                        &user.span(),
                        format!("{p}.user"),
                        "give exactly one of `group` or `user`, not both",
                    );
                    None
                }
                (None, None) => {
                    self.sink.error(
                        &e.node.span(),
                        p.as_str(),
                        "give exactly one of `group` or `user`",
                    );
                    None
                }
            };
            let resource = self.resource_ref(&raw.resource, &format!("{p}.resource"), known);
            let actions = self.granted_actions(
                &raw.actions,
                &format!("{p}.actions"),
                resource,
                &raw.resource,
            );
            if let (true, Some(who)) = (self.sink.count() == before, who) {
                out.push(Entitlement {
                    who,
                    resource: raw.resource.get_ref().clone(),
                    actions,
                });
            }
        }
        out
    }

    // ----- parts of an agent or a channel ---------------------------------------------------

    fn credential(&mut self, cred: &Spanned<RawCredential>, field: &str) -> Option<Credential> {
        let raw = cred.get_ref();
        let given: Vec<&str> = [
            raw.jwks_file.as_ref().map(|_| "jwks_file"),
            raw.jwks.as_ref().map(|_| "jwks"),
            raw.client_secret_sha256
                .as_ref()
                .map(|_| "client_secret_sha256"),
            raw.workload.as_ref().map(|_| "workload"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() != 1 {
            let message = if given.is_empty() {
                "needs exactly one of `jwks_file`, `jwks`, `client_secret_sha256`, `workload`"
                    .to_owned()
            } else {
                format!(
                    "has several of {}: give exactly one",
                    given
                        .iter()
                        .map(|g| format!("`{g}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            self.sink.error(&cred.span(), field, message);
            return None;
        }
        if let Some(file) = &raw.jwks_file {
            return self
                .jwks_file(file, &format!("{field}.jwks_file"))
                .map(Credential::Jwks);
        }
        if let Some(inline) = &raw.jwks {
            return match jwks::parse_inline(inline.get_ref()) {
                Ok(jwks) => Some(Credential::Jwks(StaticJwks { path: None, jwks })),
                Err(problems) => {
                    for problem in problems {
                        self.sink
                            .error(&inline.span(), format!("{field}.jwks"), problem);
                    }
                    None
                }
            };
        }
        if let Some(hash) = &raw.client_secret_sha256 {
            let parsed = decode_sha256_hex(hash.get_ref());
            return self
                .ok(
                    parsed,
                    &hash.span(),
                    &format!("{field}.client_secret_sha256"),
                )
                .map(Credential::ClientSecretSha256);
        }
        if let Some(workload) = &raw.workload {
            let w = workload.get_ref();
            let before = self.sink.count();
            self.issuer_url(
                &w.issuer,
                &format!("{field}.workload.issuer"),
                Http::LoopbackOnly,
            );
            self.name(&w.subject, &format!("{field}.workload.subject"));
            return (self.sink.count() == before).then(|| Credential::Workload {
                issuer: w.issuer.get_ref().clone(),
                subject: w.subject.get_ref().clone(),
            });
        }
        None
    }

    /// `idp_client_ids` / `as_client_ids`: every key passes `key_problem`, every value is a
    /// name.
    fn client_ids(
        &mut self,
        map: &SpannedMap,
        field: &str,
        key_problem: impl Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value) in map {
            let kf = key_path(field, key.get_ref());
            if let Some(problem) = key_problem(key.get_ref()) {
                self.sink.error(&key.span(), kf.as_str(), problem);
            }
            self.name(value, &kf);
            out.insert(key.get_ref().clone(), value.get_ref().clone());
        }
        out
    }

    /// `never`: each action must be defined by some resource.
    fn never(&mut self, list: &[Spanned<String>], field: &str, known: &Known) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, action) in list.iter().enumerate() {
            let f = format!("{field}[{i}]");
            let a = action.get_ref();
            if !seen.insert(a.as_str()) {
                self.sink
                    .error(&action.span(), f, format!("duplicate action `{a}`"));
                continue;
            }
            if known.all_actions_complete && !known.all_actions.contains(a) {
                self.sink.error(
                    &action.span(),
                    f,
                    format!("action `{a}` is not defined by any resource"),
                );
            }
            out.push(a.clone());
        }
        out
    }

    fn direct_grants(
        &mut self,
        grants: &[Spanned<RawDirectGrant>],
        field: &str,
        known: &Known,
    ) -> Vec<DirectGrant> {
        let mut seen = HashMap::new();
        let mut out = Vec::new();
        for (i, g) in grants.iter().enumerate() {
            let gp = format!("{field}[{i}]");
            let raw = g.get_ref();
            let resource = self.resource_ref(&raw.resource, &format!("{gp}.resource"), known);
            self.unique(
                &mut seen,
                &raw.resource,
                &format!("{gp}.resource"),
                "grant for resource",
            );
            let actions = self.granted_actions(
                &raw.actions,
                &format!("{gp}.actions"),
                resource,
                &raw.resource,
            );
            out.push(DirectGrant {
                resource: raw.resource.get_ref().clone(),
                actions,
            });
        }
        out
    }

    fn channel_grant(
        &mut self,
        raw: &RawChannelGrant,
        gp: &str,
        known: &Known,
        pairs: &mut HashMap<(String, String), usize>,
    ) -> Option<ChannelGrant> {
        let before = self.sink.count();
        let agent = raw.agent.get_ref();
        if !known.agents.contains(agent) {
            self.sink.error(
                &raw.agent.span(),
                format!("{gp}.agent"),
                format!("unknown agent `{agent}` (no [[agent]] has this id)"),
            );
        }
        let resource = self.resource_ref(&raw.resource, &format!("{gp}.resource"), known);
        let pair = (agent.clone(), raw.resource.get_ref().clone());
        let (line, _) = self.sink.position(raw.agent.span().start);
        if let Some(first) = pairs.get(&pair) {
            self.sink.error(
                &raw.agent.span(),
                format!("{gp}.agent"),
                format!(
                    "duplicate grant for agent `{agent}` on resource `{}` in this channel \
                     (first on line {first})",
                    raw.resource.get_ref()
                ),
            );
        } else {
            pairs.insert(pair, line);
        }
        let actions = self.granted_actions(
            &raw.actions,
            &format!("{gp}.actions"),
            resource,
            &raw.resource,
        );
        let approval = raw.approval.as_ref().map(|a| {
            let a = a.get_ref();
            let ap = format!("{gp}.approval");
            let mut seen = HashSet::new();
            let mut approval_actions = Vec::new();
            if a.actions.get_ref().is_empty() {
                self.sink.error(
                    &a.actions.span(),
                    format!("{ap}.actions"),
                    "must name at least one action",
                );
            }
            for (i, action) in a.actions.get_ref().iter().enumerate() {
                let name = action.get_ref();
                let f = format!("{ap}.actions[{i}]");
                if !seen.insert(name.as_str()) {
                    self.sink
                        .error(&action.span(), f, format!("duplicate action `{name}`"));
                } else if !actions.contains(name) {
                    self.sink.error(
                        &action.span(),
                        f,
                        format!("approval action `{name}` is not one of this grant's actions"),
                    );
                } else {
                    approval_actions.push(name.clone());
                }
            }
            let approvers = self.approvers(&a.approvers, &format!("{ap}.approvers"));
            Approval {
                actions: approval_actions,
                approvers,
            }
        });
        let expires = raw.expires.as_ref().and_then(|x| {
            self.ok(
                time::parse_rfc3339(&x.get_ref().0),
                &x.span(),
                &format!("{gp}.expires"),
            )
        });
        (self.sink.count() == before).then(|| ChannelGrant {
            agent: agent.clone(),
            resource: raw.resource.get_ref().clone(),
            actions,
            approval,
            expires,
        })
    }

    fn control_plane(
        &mut self,
        node: &Spanned<DeValue<'_>>,
        known: &Known,
    ) -> Option<ControlPlane> {
        let raw = match RawControlPlane::deserialize_from(node) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or_else(|| node.span());
                let field = format!(
                    "control_plane{}",
                    locate(node, span.start).unwrap_or_default()
                );
                self.sink.error(&span, field, e.message());
                return None;
            }
        };
        if raw.client_ids.is_empty() {
            self.sink.error(
                &node.span(),
                "control_plane.client_ids",
                "must name lanyard's console client id at one [[idp]] at least",
            );
        }
        let client_ids = self.client_ids(&raw.client_ids, "control_plane.client_ids", |key| {
            (!known.idps.contains(key))
                .then(|| format!("unknown idp `{key}` (no [[idp]] has this id)"))
        });
        let mut role = |list: &Option<SpannedList>, field: &str| match list {
            Some(l) => self.approvers(l, field),
            None => Vec::new(),
        };
        Some(ControlPlane {
            client_ids,
            admins: role(&raw.admins, "control_plane.admins"),
            approvers: role(&raw.approvers, "control_plane.approvers"),
            auditors: role(&raw.auditors, "control_plane.auditors"),
        })
    }

    fn approvers(&mut self, list: &SpannedList, field: &str) -> Vec<HumanMatch> {
        if list.get_ref().is_empty() {
            self.sink
                .error(&list.span(), field, "must name at least one approver");
        }
        let mut out = Vec::new();
        for (i, approver) in list.get_ref().iter().enumerate() {
            let text = approver.get_ref();
            let parsed = match text.split_once(':') {
                Some(("group", g)) if valid_name(g).is_ok() => {
                    Some(HumanMatch::Group(g.to_owned()))
                }
                Some(("user", u)) if valid_name(u).is_ok() => Some(HumanMatch::User(u.to_owned())),
                _ => None,
            };
            match parsed {
                Some(m) => out.push(m),
                None => self.sink.error(
                    &approver.span(),
                    format!("{field}[{i}]"),
                    format!("`{text}` is not \"group:<group>\" or \"user:<user>\""),
                ),
            }
        }
        out
    }
}
