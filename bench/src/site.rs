//! The benchmark's world: resources and their actions, groups and entitlements, humans,
//! agents with their own secrets, channels with grants — written as a lanyard policy — and the
//! flows that world allows (agent, human, channel, resource, scope).
//!
//! Every flow is valid by construction (the agent's grant in the channel ∩ the human's
//! entitlement ∩ what is asked, minus the agent's `never` list, holds at least one action that
//! needs no approval), so any non-200 during the run is a finding, not noise.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The IdP-role issuer identifier (reached over 127.0.0.1; the name is only an identifier).
pub const IDP_ISSUER: &str = "https://lanyard.bench.example/idp";
/// The resource-AS issuer identifier.
pub const AS_ISSUER: &str = "https://lanyard.bench.example/as";

/// A deterministic generator (xorshift64*), so that every run drives the same world.
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `p_percent` %.
    pub fn chance(&mut self, p_percent: u64) -> bool {
        self.next() % 100 < p_percent
    }
}

/// A resource (an MCP server or API) and its actions.
pub struct Resource {
    /// RFC 8707 identifier.
    pub uri: &'static str,
    /// Actions it defines.
    pub actions: &'static [&'static str],
    /// Actions that need a named human's just-in-time approval in channels.
    pub sensitive: &'static [&'static str],
}

/// The resources every run uses.
pub const RESOURCES: &[Resource] = &[
    Resource {
        uri: "https://mcp.github.bench.example/",
        actions: &[
            "repo.read",
            "issue.comment",
            "pull_request.create",
            "pull_request.merge",
        ],
        sensitive: &["pull_request.merge"],
    },
    Resource {
        uri: "https://tickets.bench.example/",
        actions: &["ticket.read", "ticket.comment", "ticket.close"],
        sensitive: &[],
    },
    Resource {
        uri: "https://drive.bench.example/",
        actions: &["file.read", "file.write", "file.share"],
        sensitive: &["file.share"],
    },
    Resource {
        uri: "https://calendar.bench.example/",
        actions: &["event.read", "event.create"],
        sensitive: &[],
    },
];

/// A group and what it entitles: `(resource index into [`RESOURCES`], actions)`.
pub type Group = (&'static str, &'static [(usize, &'static [&'static str])]);

/// Groups (from the IdP's `groups` claim) and what each entitles.
pub const GROUPS: &[Group] = &[
    (
        "eng",
        &[
            (
                0,
                &[
                    "repo.read",
                    "issue.comment",
                    "pull_request.create",
                    "pull_request.merge",
                ],
            ),
            (1, &["ticket.read", "ticket.comment"]),
        ],
    ),
    (
        "support",
        &[
            (1, &["ticket.read", "ticket.comment", "ticket.close"]),
            (0, &["repo.read"]),
        ],
    ),
    (
        "sales",
        &[
            (2, &["file.read", "file.write", "file.share"]),
            (3, &["event.read", "event.create"]),
        ],
    ),
    (
        "ops",
        &[
            (0, &["repo.read", "issue.comment"]),
            (1, &["ticket.read", "ticket.close"]),
            (2, &["file.read"]),
        ],
    ),
];

/// Every human is in this group too.
const STAFF: Group = ("staff", &[(3, &["event.read", "event.create"])]);

/// A human at the enterprise IdP.
pub struct Human {
    /// Subject.
    pub sub: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Groups (always including `staff`).
    pub groups: Vec<&'static str>,
}

/// An agent and its credential.
pub struct Agent {
    /// Client id at lanyard.
    pub id: String,
    /// Its client id at the enterprise IdP (the ID token's `aud`).
    pub sso_id: String,
    /// Its `client_secret_basic` secret.
    pub secret: String,
    /// Actions it must never hold.
    pub never: Vec<&'static str>,
}

/// An agent's grant in a channel.
pub struct ChannelGrant {
    /// Index into the agents.
    pub agent: usize,
    /// Index into [`RESOURCES`].
    pub resource: usize,
    /// Granted actions.
    pub actions: Vec<&'static str>,
    /// Of those, the ones needing approval.
    pub approval: Vec<&'static str>,
}

/// A channel (a Slack channel, a Teams chat…).
pub struct Channel {
    /// Id.
    pub id: String,
    /// Its members' group (index into [`GROUPS`]).
    pub group: usize,
    /// Agents' grants there.
    pub grants: Vec<ChannelGrant>,
}

/// One kind of flow: this agent, for this human, in this channel, asks for these actions on
/// this resource.
#[derive(Clone)]
pub struct FlowSpec {
    /// Index into the agents.
    pub agent: usize,
    /// Index into the humans.
    pub human: usize,
    /// Channel id.
    pub channel: String,
    /// Resource URI.
    pub resource: &'static str,
    /// The requested scope (space-separated actions).
    pub scope: String,
}

/// The generated world.
pub struct World {
    /// Humans.
    pub humans: Vec<Human>,
    /// Agents.
    pub agents: Vec<Agent>,
    /// Channels.
    pub channels: Vec<Channel>,
    /// Valid flows.
    pub flows: Vec<FlowSpec>,
}

/// How big a world.
pub struct Size {
    /// Agents.
    pub agents: usize,
    /// Humans.
    pub humans: usize,
    /// Channels.
    pub channels: usize,
    /// Distinct flows (each gets its own pre-minted ID token).
    pub flows: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

const AGENT_NAMES: &[&str] = &[
    "triage", "deploy", "review", "oncall", "release", "support", "sales", "calendar", "docs",
    "security", "billing", "hiring", "standup", "incident", "qa", "research",
];

fn entitled(h: &Human, resource: usize) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (g, ents) in GROUPS.iter().chain(std::iter::once(&STAFF)) {
        if h.groups.contains(g) {
            for (r, acts) in ents.iter() {
                if *r == resource {
                    out.extend(acts.iter().copied());
                }
            }
        }
    }
    out
}

impl World {
    /// Generate a world of `size` from `seed`. Secrets come from lanyard's random source.
    pub fn generate(size: &Size, seed: u64) -> Result<Self, String> {
        let mut rng = Rng::new(seed);
        let humans: Vec<Human> = (0..size.humans.max(1))
            .map(|i| {
                let mut groups = vec!["staff"];
                let n = 1 + rng.below(2);
                for _ in 0..n {
                    let (g, _) = GROUPS[rng.below(GROUPS.len())];
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
                Human {
                    sub: format!("00u{i:06}"),
                    email: format!("user{i}@bench.example"),
                    name: format!("User {i}"),
                    groups,
                }
            })
            .collect();
        let mut agents = Vec::new();
        for i in 0..size.agents.max(1) {
            let base = AGENT_NAMES[i % AGENT_NAMES.len()];
            let id = if i < AGENT_NAMES.len() {
                format!("{base}-bot")
            } else {
                format!("{base}-bot-{i}")
            };
            let secret = lanyard::crypto::random_id(32).map_err(|e| e.to_string())?;
            let never = if rng.chance(40) {
                vec!["pull_request.merge"]
            } else {
                Vec::new()
            };
            agents.push(Agent {
                sso_id: format!("0oa{id}"),
                id,
                secret,
                never,
            });
        }
        let mut channels = Vec::new();
        for j in 0..size.channels.max(1) {
            let group = j % GROUPS.len();
            let (gname, ents) = GROUPS[group];
            let mut grants = Vec::new();
            let members = 2 + rng.below(4);
            for _ in 0..members {
                let agent = rng.below(agents.len());
                let (resource, _) = ents[rng.below(ents.len())];
                if grants
                    .iter()
                    .any(|g: &ChannelGrant| g.agent == agent && g.resource == resource)
                {
                    continue;
                }
                let r = &RESOURCES[resource];
                // Channels grant generously; the human's entitlement narrows it.
                let actions: Vec<&'static str> = r
                    .actions
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(75))
                    .collect();
                if actions.is_empty() {
                    continue;
                }
                let approval = actions
                    .iter()
                    .copied()
                    .filter(|a| r.sensitive.contains(a))
                    .collect();
                grants.push(ChannelGrant {
                    agent,
                    resource,
                    actions,
                    approval,
                });
            }
            channels.push(Channel {
                id: format!("slack:T01/C{j:03}-{gname}"),
                group,
                grants,
            });
        }
        let mut flows = Vec::new();
        let mut tries = 0usize;
        while flows.len() < size.flows.max(1) {
            tries += 1;
            if tries > size.flows.max(1) * 1000 {
                return Err("the generated world allows too few flows; change --seed".into());
            }
            let ch = &channels[rng.below(channels.len())];
            if ch.grants.is_empty() {
                continue;
            }
            let g = &ch.grants[rng.below(ch.grants.len())];
            let (gname, _) = GROUPS[ch.group];
            let human = rng.below(humans.len());
            let h = &humans[human];
            if !h.groups.contains(&gname) {
                continue;
            }
            let ent = entitled(h, g.resource);
            let agent = &agents[g.agent];
            let allowed: Vec<&str> = g
                .actions
                .iter()
                .copied()
                .filter(|a| ent.contains(a) && !agent.never.contains(a))
                .collect();
            let ready: Vec<&str> = allowed
                .iter()
                .copied()
                .filter(|a| !g.approval.contains(a))
                .collect();
            if ready.is_empty() {
                continue;
            }
            // One or two actions that need no approval. (Asking for one that does is answered
            // `approval_required` until a human approves: a different path, not measured here.)
            let mut scope = vec![ready[rng.below(ready.len())]];
            let other = ready[rng.below(ready.len())];
            if rng.chance(50) && !scope.contains(&other) {
                scope.push(other);
            }
            flows.push(FlowSpec {
                agent: g.agent,
                human,
                channel: ch.id.clone(),
                resource: RESOURCES[g.resource].uri,
                scope: scope.join(" "),
            });
        }
        Ok(Self {
            humans,
            agents,
            channels,
            flows,
        })
    }

    /// The lanyard policy file for this world, trusting `idp_issuer` (the bench's OIDC
    /// issuer) for ID tokens and lanyard's own IdP role (keys in `idp_role_jwks`) for
    /// ID-JAGs, as a separate trust domain.
    pub fn policy(&self, idp_issuer: &str, idp_role_jwks: &str) -> String {
        let mut p = String::new();
        let _ = write!(
            p,
            r#"# lanyard-bench policy (generated).
version = 1

[[idp]]
id = "corp"
issuer = "{idp_issuer}"
algorithms = ["RS256"]
groups_claim = "groups"
subject_claim = "sub"
max_age = "12h"

[[trusted_issuer]]
issuer = "{IDP_ISSUER}"
jwks_file = "{idp_role_jwks}"
algorithms = ["ES256"]
"#
        );
        for r in RESOURCES {
            let _ = write!(
                p,
                "\n[[resource]]\nuri = \"{}\"\nauthorization_server = \"{AS_ISSUER}\"\nactions = {}\nmax_ttl = \"5m\"\n",
                r.uri,
                list(r.actions)
            );
        }
        for a in &self.agents {
            let sha = hex(&Sha256::digest(a.secret.as_bytes()));
            let _ = write!(
                p,
                "\n[[agent]]\nid = \"{}\"\nowner = \"owner-of-{}@bench.example\"\ncredential = {{ client_secret_sha256 = \"{sha}\" }}\nidp_client_ids = {{ corp = \"{}\" }}\nnever = {}\nmax_ttl = \"10m\"\n",
                a.id,
                a.id,
                a.sso_id,
                list(&a.never)
            );
        }
        for c in &self.channels {
            let _ = write!(
                p,
                "\n[[channel]]\nid = \"{}\"\nmembers_group = \"{}\"\n",
                c.id, GROUPS[c.group].0
            );
            for g in &c.grants {
                let _ = write!(
                    p,
                    "[[channel.grant]]\nagent = \"{}\"\nresource = \"{}\"\nactions = {}\n",
                    self.agents[g.agent].id,
                    RESOURCES[g.resource].uri,
                    list(&g.actions)
                );
                if !g.approval.is_empty() {
                    let _ = writeln!(
                        p,
                        "approval = {{ actions = {}, approvers = [\"group:{}-leads\"] }}",
                        list(&g.approval),
                        GROUPS[c.group].0
                    );
                }
            }
        }
        for (g, ents) in GROUPS.iter().chain(std::iter::once(&STAFF)) {
            for (r, acts) in ents.iter() {
                let _ = write!(
                    p,
                    "\n[[entitlement]]\ngroup = \"{g}\"\nresource = \"{}\"\nactions = {}\n",
                    RESOURCES[*r].uri,
                    list(acts)
                );
            }
        }
        p
    }
}

fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use lanyard::core::grant::{Asked, Human as PolicyHuman, decide};

    fn world() -> World {
        World::generate(
            &Size {
                agents: 16,
                humans: 400,
                channels: 12,
                flows: 300,
            },
            42,
        )
        .unwrap()
    }

    /// The generated policy passes `lanyard policy check`, and lanyard's own decision grants
    /// every generated flow at least one action it asked for — so any non-200 in a run is a
    /// finding about lanyard, not about the bench.
    #[test]
    fn every_generated_flow_is_granted_by_the_generated_policy() {
        let w = world();
        let dir = tempfile::tempdir().unwrap();
        let (key, _) =
            lanyard::crypto::SigningKey::generate(lanyard::config::SigningAlg::Es256, 0).unwrap();
        let jwks =
            serde_json::json!({ "keys": [serde_json::Value::Object(key.public_jwk().clone())] });
        std::fs::write(dir.path().join("role.jwks.json"), jwks.to_string()).unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, w.policy("http://127.0.0.1:9", "role.jwks.json")).unwrap();
        let policy = lanyard::policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for f in &w.flows {
            let h = &w.humans[f.human];
            let human = PolicyHuman {
                sub: h.sub.clone(),
                names: vec![h.sub.clone(), h.email.clone()],
                groups: h.groups.iter().map(|g| (*g).to_owned()).collect(),
            };
            let agent = policy.agent(&w.agents[f.agent].id).unwrap();
            let resource = policy.resource(f.resource).unwrap();
            let asked = Asked {
                channel: Some(&f.channel),
                scope: Some(f.scope.split(' ').collect()),
                details: None,
                approved: Vec::new(),
                runtime: &[],
            };
            let d = decide(&policy, agent, &human, resource, &asked, 0)
                .unwrap_or_else(|r| panic!("{} {} {}: {r:?}", f.channel, f.resource, f.scope));
            assert!(!d.actions.is_empty());
            // Asked for explicitly, an action needing approval is answered `approval_required`.
            assert!(d.needs_approval.is_empty(), "{} {}", f.channel, f.scope);
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_world() {
        let (a, b) = (world(), world());
        let key = |w: &World| {
            w.flows
                .iter()
                .map(|f| format!("{} {} {} {}", f.agent, f.human, f.channel, f.scope))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        // Several agents, channels and resources are exercised, not one.
        let distinct = |f: &dyn Fn(&FlowSpec) -> String| {
            a.flows
                .iter()
                .map(f)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        assert!(distinct(&|f| f.agent.to_string()) > 5);
        assert!(distinct(&|f| f.channel.clone()) > 5);
        assert!(distinct(&|f| f.resource.to_owned()) >= 3);
    }
}
