//! The policy decision: effective grant = the agent's grant in this channel ∩ the human's
//! own entitlement ∩ the request, minus the agent's `never` list (DESIGN points 2–3).
//!
//! Pure: a policy snapshot, the verified human, the request and `now` in; a [`Decision`] or
//! a [`Rejection`] out. A channel member without access to a resource gets nothing for it
//! through an agent — the agent never does what the human could not (no confused deputy).
//!
//! **Runtime grants** ([`RuntimeGrant`], made by an admin or by an approved access request,
//! kept in the store) move an agent's channel grant only *within* the human-owned policy file
//! ([`channel_actions`]):
//! - `extend` makes actions of the policy's channel grants for that agent, channel and
//!   resource apply although the file's grant has expired, until the runtime grant expires
//!   (its lifetime is capped by configuration). It can add no action that no channel grant
//!   in the file names for that agent, channel and resource.
//! - `narrow` restricts the agent, in that channel on that resource, to a subset of actions
//!   until it expires (several narrow grants intersect).
//!
//! Everything else still applies on top: the human's entitlement, the `never` list,
//! just-in-time approval marks (taken from every file grant, expired or not), and the kill
//! switches (a withdrawn channel grant stays withdrawn). Direct (channel-less) grants are not
//! affected.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::policy::{Agent, Channel, HumanMatch, Policy, Resource};

use super::Rejection;

/// The human a request acts for, as the trusted IdP asserted them.
///
/// Built once per request from a verified ID token (the subject mapped per IdP, the groups
/// from the IdP's groups claim), and used for both sides of the rules that concern people:
/// the entitlement half of the intersection, a channel's member group, and who may decide
/// an approval (every name counts, so that the four-eyes rule cannot be dodged by signing
/// in under another of one's own identifiers).
#[derive(Debug, Clone, Default)]
pub struct Human {
    /// The subject the resource AS knows (after the per-IdP mapping).
    pub sub: String,
    /// Names a policy `user = …` may use for this human (subject, email, username).
    pub names: Vec<String>,
    /// Groups from the IdP's groups claim.
    pub groups: Vec<String>,
}

impl Human {
    /// Whether this human is the one (or in the group) `who` names.
    pub fn matches(&self, who: &HumanMatch) -> bool {
        match who {
            HumanMatch::Group(g) => self.groups.iter().any(|x| x == g),
            HumanMatch::User(u) => self.names.iter().any(|x| x == u),
        }
    }
}

/// What is asked for on one resource.
///
/// `None` and an empty list differ: `scope` absent asks for whatever the grant allows, an
/// explicit empty set asks for nothing (and so gets `invalid_scope`).
#[derive(Debug, Clone, Default)]
pub struct Asked<'a> {
    /// The channel named by the request; `None` = the agent's direct grants.
    pub channel: Option<&'a str>,
    /// Actions from `scope`; `None` = no scope parameter.
    pub scope: Option<Vec<&'a str>>,
    /// Actions from `authorization_details` for this resource; `None` = none sent.
    pub details: Option<Vec<&'a str>>,
    /// Actions a valid just-in-time approval for this very request covers.
    pub approved: Vec<&'a str>,
    /// The agent's live runtime grants (any channel; the decision picks what applies).
    pub runtime: &'a [RuntimeGrant],
}

/// What a runtime grant does to the policy's channel grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeEffect {
    /// Keeps (or makes again) these of the file's actions applying past the file's expiry.
    Extend,
    /// Restricts the agent to these actions.
    Narrow,
}

/// A time-bound change to one agent's channel grant, made at runtime by a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeGrant {
    /// The channel.
    pub channel: String,
    /// The resource.
    pub resource: String,
    /// The actions it extends or narrows to.
    pub actions: Vec<String>,
    /// What it does.
    pub effect: RuntimeEffect,
    /// When it stops applying (unix seconds).
    pub expires_at: UnixTime,
}

impl RuntimeGrant {
    /// Whether it is in force for `channel` and `resource` at `now`. Its end is exclusive,
    /// like a token's `exp` without leeway: a runtime grant is the store's own record, no
    /// other clock is involved, so no skew needs forgiving.
    fn applies(&self, channel: &str, resource: &str, now: UnixTime) -> bool {
        self.channel == channel && self.resource == resource && now < self.expires_at
    }
}

/// The agent's side of a channel decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelActions<'p> {
    /// What the agent may do there, before the human's side.
    pub actions: Vec<&'p str>,
    /// Which of those need a just-in-time approval.
    pub approval_actions: Vec<&'p str>,
    /// Who may approve them.
    pub approvers: Vec<HumanMatch>,
}

/// The actions the file's channel grants give `agent` in `ch` on `resource` at `now`, with
/// its runtime grants applied (see the module documentation for the rule). Never an action
/// that no grant of the file names for that agent, channel and resource.
///
/// Both legs call this one function, so that a runtime grant made at one replica means the
/// same at the IdP role and at the resource AS. An expired file grant contributes only the
/// actions a live `extend` names; every live `narrow` must name an action for it to stay;
/// approval marks and approvers are collected from every file grant the action came
/// through, expired or not (an approval requirement is never lifted by a runtime grant).
pub fn channel_actions<'p>(
    ch: &'p Channel,
    agent: &str,
    resource: &str,
    runtime: &[RuntimeGrant],
    now: UnixTime,
) -> ChannelActions<'p> {
    let grants: Vec<_> = ch
        .grants
        .iter()
        .filter(|g| g.agent == agent && g.resource == resource)
        .collect();
    let live = runtime.iter().filter(|r| r.applies(&ch.id, resource, now));
    let extended: Vec<&str> = live
        .clone()
        .filter(|r| r.effect == RuntimeEffect::Extend)
        .flat_map(|r| r.actions.iter().map(String::as_str))
        .collect();
    let narrowed: Vec<&RuntimeGrant> = live.filter(|r| r.effect == RuntimeEffect::Narrow).collect();
    let mut out = ChannelActions::default();
    for g in &grants {
        for a in &g.actions {
            let allowed = (!g.is_expired_at(now) || extended.contains(&a.as_str()))
                && narrowed.iter().all(|n| n.actions.contains(a));
            if allowed && !out.actions.contains(&a.as_str()) {
                out.actions.push(a);
            }
        }
    }
    // Approval marks hold whichever grant an action came through.
    for g in &grants {
        for a in out.actions.iter().filter(|a| g.needs_approval(a)) {
            if !out.approval_actions.contains(a) {
                out.approval_actions.push(a);
            }
        }
        if let Some(ap) = &g.approval {
            for who in &ap.approvers {
                if !out.approvers.contains(who) {
                    out.approvers.push(who.clone());
                }
            }
        }
    }
    out
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The granted actions, in the resource's order.
    pub actions: Vec<String>,
    /// Requested and otherwise allowed actions held back because they need a human's
    /// just-in-time approval.
    pub needs_approval: Vec<String>,
    /// Who may approve them, from the channel grants.
    pub approvers: Vec<HumanMatch>,
    /// Whether the request named actions itself (scope or details), rather than taking
    /// whatever the grant allows.
    pub explicit: bool,
}

/// Decide what `agent`, acting for `human`, gets on `resource` at the IdP role (the token
/// exchange leg, ID-JAG §4.3.3): the ID-JAG can never carry more than this.
///
/// The order of the steps is the order of the reasons a refusal gives:
/// 1. the agent's side — its grants in the named channel (a channel that restricts members
///    to a group refuses a human outside it before anything else: the channel is asserted
///    by the agent's platform, and this bounds what a false channel could win), or its
///    direct grants without a channel;
/// 2. the human's side — the entitlements their groups give on this resource;
/// 3. the request — `scope` and `authorization_details` only narrow (RFC 6749 §3.3: the
///    server may grant less than asked and says so in `scope`);
/// 4. the `never` list removes what no grant may give;
/// 5. actions marked for just-in-time approval are held back unless this very request
///    carries an approval for them.
///
/// When the agent's and the human's sides leave nothing, the answer is `access_denied`
/// whatever was asked (checklist D52); when only the request's narrowing leaves nothing, it
/// is `invalid_scope` (D48), or `invalid_authorization_details` when only details named
/// actions. Actions held back for approval are not a refusal: the grant handler turns them
/// into a pending approval.
pub fn decide(
    policy: &Policy,
    agent: &Agent,
    human: &Human,
    resource: &Resource,
    asked: &Asked<'_>,
    now: UnixTime,
) -> Result<Decision, Rejection> {
    // The agent's side: its grants in the channel, or its direct grants.
    let mut agent_actions: Vec<&str> = Vec::new();
    let mut approval_actions: Vec<&str> = Vec::new();
    let mut approvers: Vec<HumanMatch> = Vec::new();
    match asked.channel {
        Some(id) => {
            let ch = policy
                .channel(id)
                .ok_or(Rejection::Denied("unknown channel"))?;
            if let Some(g) = &ch.members_group
                && !human.groups.iter().any(|x| x == g)
            {
                return Err(Rejection::Denied("human is not a member of the channel"));
            }
            let c = channel_actions(ch, &agent.id, &resource.uri, asked.runtime, now);
            agent_actions = c.actions;
            approval_actions = c.approval_actions;
            approvers = c.approvers;
        }
        None => {
            for g in agent.grants.iter().filter(|g| g.resource == resource.uri) {
                agent_actions.extend(g.actions.iter().map(String::as_str));
            }
        }
    }
    // The human's side: every entitlement that names them on this resource.
    let entitled: Vec<&str> = policy
        .entitlements()
        .iter()
        .filter(|e| e.resource == resource.uri && human.matches(&e.who))
        .flat_map(|e| e.actions.iter().map(String::as_str))
        .collect();
    let base: Vec<&str> = resource
        .actions
        .iter()
        .map(String::as_str)
        .filter(|a| agent_actions.contains(a) && entitled.contains(a) && !agent.is_never(a))
        .collect();
    if base.is_empty() {
        return Err(Rejection::Denied(
            "no grant for this agent, human and resource",
        ));
    }
    let wanted: Option<Vec<&str>> = match (&asked.scope, &asked.details) {
        (None, None) => None,
        (s, d) => Some(
            s.iter()
                .flatten()
                .chain(d.iter().flatten())
                .copied()
                .collect(),
        ),
    };
    let granted: Vec<&str> = match &wanted {
        None => base.clone(),
        Some(w) => base.iter().copied().filter(|a| w.contains(a)).collect(),
    };
    if granted.is_empty() {
        return Err(if asked.scope.is_some() {
            Rejection::Scope
        } else {
            Rejection::AuthorizationDetails("no requested action is allowed")
        });
    }
    // Actions needing approval are held back unless this request's approval covers them;
    // the grant handler turns a held-back action the agent asked for into a pending approval.
    let (needs, ready): (Vec<&str>, Vec<&str>) = granted
        .iter()
        .partition(|a| approval_actions.contains(a) && !asked.approved.contains(a));
    Ok(Decision {
        actions: ready.into_iter().map(str::to_owned).collect(),
        needs_approval: needs.into_iter().map(str::to_owned).collect(),
        approvers,
        explicit: wanted.is_some(),
    })
}

/// What the ID-JAG and the request ask of the resource AS.
#[derive(Debug, Clone, Copy, Default)]
pub struct RsAsked<'a> {
    /// The ID-JAG's channel.
    pub channel: Option<&'a str>,
    /// The ID-JAG's actions on the resource; `None` = it names none.
    pub from_id_jag: Option<&'a [&'a str]>,
    /// The request's `scope` / details; `None` = it narrows nothing.
    pub requested: Option<&'a [&'a str]>,
    /// Actions the ID-JAG's just-in-time approval covers.
    pub approved: &'a [&'a str],
    /// The agent's live runtime grants.
    pub runtime: &'a [RuntimeGrant],
}

/// What the resource AS grants on `resource` (ID-JAG §4.4, MCP EMA §7.2.1): the request ∩
/// the ID-JAG ∩ this server's own policy for the agent (its grant in the ID-JAG's channel, or
/// its direct grants), minus its `never` list. `from_id_jag` = `None` when the ID-JAG names no
/// actions (then this server's policy alone bounds the grant); `requested` = `None` when the
/// request narrows nothing.
pub fn decide_resource_server(
    policy: &Policy,
    agent: &Agent,
    resource: &Resource,
    ask: &RsAsked<'_>,
    now: UnixTime,
) -> Result<Decision, Rejection> {
    let RsAsked {
        channel,
        from_id_jag,
        requested,
        approved,
        runtime,
    } = *ask;
    let mut agent_actions: Vec<&str> = Vec::new();
    let mut approval_actions: Vec<&str> = Vec::new();
    match channel {
        Some(id) => {
            let ch = policy
                .channel(id)
                .ok_or(Rejection::Denied("unknown channel"))?;
            let c = channel_actions(ch, &agent.id, &resource.uri, runtime, now);
            agent_actions = c.actions;
            approval_actions = c.approval_actions;
        }
        None => {
            for g in agent.grants.iter().filter(|g| g.resource == resource.uri) {
                agent_actions.extend(g.actions.iter().map(String::as_str));
            }
        }
    }
    // RFC 7521 §4.1: a request may only narrow what the grant carries.
    if let (Some(req), Some(idjag)) = (requested, from_id_jag)
        && req.iter().any(|a| !idjag.contains(a))
    {
        return Err(Rejection::Scope);
    }
    let granted: Vec<&str> = resource
        .actions
        .iter()
        .map(String::as_str)
        .filter(|a| agent_actions.contains(a) && !agent.is_never(a))
        .filter(|a| from_id_jag.is_none_or(|i| i.contains(a)))
        .filter(|a| requested.is_none_or(|r| r.contains(a)))
        .collect();
    if granted.is_empty() {
        return Err(if requested.is_some() {
            Rejection::Scope
        } else {
            Rejection::Denied("nothing this server allows")
        });
    }
    // An action needing approval passes only with the ID-JAG's approval naming it.
    let (needs, ready): (Vec<&str>, Vec<&str>) = granted
        .iter()
        .partition(|a| approval_actions.contains(a) && !approved.contains(a));
    if ready.is_empty() {
        return Err(Rejection::Denied(
            "every requested action needs a human's approval",
        ));
    }
    Ok(Decision {
        actions: ready.into_iter().map(str::to_owned).collect(),
        needs_approval: needs.into_iter().map(str::to_owned).collect(),
        approvers: Vec::new(),
        explicit: requested.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;
    const GH: &str = "https://mcp.github.example/";

    /// The policy of these tests: one resource (GH) with four actions; agent `bot` with a
    /// direct read grant and `pull_request.merge` on its `never` list; channels `eng`
    /// (members of `eng` only, create needs a lead's approval), `open` and `expired`; an
    /// entitlement per group.
    fn policy() -> Policy {
        let text = format!(
            r#"
version = 1
[[resource]]
uri = "{GH}"
authorization_server = "https://as.example"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[agent]]
id = "bot"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{h}" }}
never = ["pull_request.merge"]
grants = [{{ resource = "{GH}", actions = ["repo.read"] }}]

[[channel]]
id = "eng"
members_group = "eng"
[[channel.grant]]
agent = "bot"
resource = "{GH}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]
approval = {{ actions = ["pull_request.create"], approvers = ["group:leads"] }}

[[channel]]
id = "open"
[[channel.grant]]
agent = "bot"
resource = "{GH}"
actions = ["repo.read", "issue.comment"]

[[channel]]
id = "expired"
[[channel.grant]]
agent = "bot"
resource = "{GH}"
actions = ["repo.read"]
expires = "2020-01-01"

[[entitlement]]
group = "eng"
resource = "{GH}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[entitlement]]
user = "carol@example.com"
resource = "{GH}"
actions = ["repo.read"]
"#,
            h = "0".repeat(64)
        );
        crate::policy::parse("test.toml", &text, std::path::Path::new("."))
            .expect("test policy is valid")
    }

    /// A human in `groups` known by `email`.
    fn human(groups: &[&str], email: &str) -> Human {
        Human {
            sub: "s".into(),
            names: vec![email.into()],
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// Decide at the IdP role for `bot` and the human, in `channel`, asking `scope`.
    fn run(
        h: &Human,
        channel: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<String>, Rejection> {
        let p = policy();
        let agent = p.agent("bot").expect("agent").clone();
        let res = p.resource(GH).expect("resource").clone();
        let asked = Asked {
            channel,
            scope: scope.map(|s| s.split(' ').collect()),
            details: None,
            approved: Vec::new(),
            runtime: &[],
        };
        decide(&p, &agent, h, &res, &asked, NOW).map(|d| d.actions)
    }

    /// DESIGN point 2: effective permission = agent's grant in the channel ∩ the human's
    /// entitlement ∩ the request.
    #[test]
    fn grant_is_intersection_of_agent_channel_and_human() {
        let alice = human(&["eng"], "alice@example.com");
        // Channel allows four, alice is entitled to four, never removes merge, approval holds
        // back pull_request.create: two remain.
        assert_eq!(
            run(&alice, Some("eng"), None),
            Ok(vec!["repo.read".into(), "issue.comment".into()])
        );
        // The request narrows further.
        assert_eq!(
            run(&alice, Some("eng"), Some("issue.comment")),
            Ok(vec!["issue.comment".into()])
        );
        // Without a channel, only the agent's direct grants apply.
        assert_eq!(run(&alice, None, None), Ok(vec!["repo.read".into()]));
    }

    /// The confused deputy of the seed critique: a member of an open channel who has no
    /// entitlement on the resource gets nothing through the agent, whatever the channel allows.
    /// The confused deputy: a member of the channel who holds no entitlement on the resource
    /// gets nothing through the agent, whatever the agent's own grant there says.
    #[test]
    fn channel_member_without_access_gets_nothing_through_the_agent() {
        let bob = human(&["support"], "bob@example.com");
        assert_eq!(
            run(&bob, Some("open"), None),
            Err(Rejection::Denied(
                "no grant for this agent, human and resource"
            ))
        );
        // And a members-only channel refuses non-members outright.
        assert_eq!(
            run(&bob, Some("eng"), None),
            Err(Rejection::Denied("human is not a member of the channel"))
        );
        // A user entitlement counts, but only for what it names.
        let carol = human(&[], "carol@example.com");
        assert_eq!(
            run(&carol, Some("open"), None),
            Ok(vec!["repo.read".into()])
        );
    }

    /// An action on the `never` list is never granted, whatever the channel and human allow.
    /// The agent's `never` list removes an action that a channel grant, a direct grant and the
    /// human's entitlement all allow.
    #[test]
    fn never_list_wins_over_every_grant() {
        let alice = human(&["eng"], "alice@example.com");
        assert_eq!(
            run(&alice, Some("eng"), Some("pull_request.merge")),
            Err(Rejection::Scope)
        );
        let got =
            run(&alice, Some("eng"), Some("repo.read pull_request.merge")).expect("partial grant");
        assert!(!got.contains(&"pull_request.merge".to_owned()));
    }

    /// DESIGN point 5: an action marked for approval is held back (and named with its
    /// approvers) until the request carries an approval for it.
    #[test]
    fn approval_actions_are_held_back_unless_approved() {
        let alice = human(&["eng"], "alice@example.com");
        let p = policy();
        let agent = p.agent("bot").expect("agent").clone();
        let res = p.resource(GH).expect("resource").clone();
        let mut asked = Asked {
            channel: Some("eng"),
            scope: Some(vec!["pull_request.create"]),
            details: None,
            approved: Vec::new(),
            runtime: &[],
        };
        let d = decide(&p, &agent, &alice, &res, &asked, NOW).expect("decision");
        assert!(d.actions.is_empty());
        assert_eq!(d.needs_approval, vec!["pull_request.create".to_owned()]);
        assert!(d.explicit);
        assert!(!d.approvers.is_empty(), "the grant names its approvers");
        asked.approved = vec!["pull_request.create"];
        let d = decide(&p, &agent, &alice, &res, &asked, NOW).expect("decision");
        assert_eq!(d.actions, vec!["pull_request.create".to_owned()]);
        assert!(d.needs_approval.is_empty());
    }

    /// A channel grant past its `expires` date, or a channel the policy does not name, gives
    /// nothing (no fallback to the agent's direct grants).
    #[test]
    fn expired_and_unknown_channels_grant_nothing() {
        let alice = human(&["eng"], "alice@example.com");
        assert_eq!(
            run(&alice, Some("expired"), None),
            Err(Rejection::Denied(
                "no grant for this agent, human and resource"
            ))
        );
        assert_eq!(
            run(&alice, Some("nope"), None),
            Err(Rejection::Denied("unknown channel"))
        );
    }

    /// Resource AS: requested ∩ ID-JAG ∩ own policy; a request beyond the ID-JAG is refused.
    /// ID-JAG §4.4, RFC 7521 §4.1 (checklist F63, G89): at the resource AS the grant is the
    /// request ∩ the ID-JAG ∩ this server's own policy for the agent.
    #[test]
    fn resource_server_grant_is_request_and_id_jag_and_policy() {
        let p = policy();
        let agent = p.agent("bot").expect("agent").clone();
        let res = p.resource(GH).expect("resource").clone();
        let d = |ch, idjag: Option<&[&str]>, req: Option<&[&str]>| {
            let ask = RsAsked {
                channel: ch,
                from_id_jag: idjag,
                requested: req,
                approved: &[],
                runtime: &[],
            };
            decide_resource_server(&p, &agent, &res, &ask, NOW).map(|d| d.actions)
        };
        assert_eq!(
            d(Some("open"), Some(&["repo.read", "issue.comment"]), None),
            Ok(vec!["repo.read".into(), "issue.comment".into()])
        );
        assert_eq!(
            d(
                Some("open"),
                Some(&["repo.read", "issue.comment"]),
                Some(&["issue.comment"])
            ),
            Ok(vec!["issue.comment".into()])
        );
        assert_eq!(
            d(Some("open"), Some(&["repo.read"]), Some(&["issue.comment"])),
            Err(Rejection::Scope)
        );
        // The ID-JAG cannot widen this server's policy: no direct grant for issue.comment.
        assert_eq!(
            d(None, Some(&["issue.comment"]), None),
            Err(Rejection::Denied("nothing this server allows"))
        );
        // The never list holds here too.
        assert_eq!(
            d(Some("eng"), Some(&["pull_request.merge"]), None),
            Err(Rejection::Denied("nothing this server allows"))
        );
    }

    /// RFC 6749 §3.3 (checklist D31, D48): scope values the policy does not allow are dropped
    /// from the grant; when nothing is left, the answer is `invalid_scope`.
    #[test]
    fn unknown_scope_values_are_dropped_but_nothing_allowed_is_invalid_scope() {
        let alice = human(&["eng"], "alice@example.com");
        assert_eq!(
            run(&alice, Some("open"), Some("repo.read admin")),
            Ok(vec!["repo.read".into()])
        );
        assert_eq!(
            run(&alice, Some("open"), Some("admin")),
            Err(Rejection::Scope)
        );
    }

    /// A runtime grant of `effect` on `actions` for `bot` in `channel` on GH, expiring at
    /// `expires_at`.
    fn rg(
        channel: &str,
        actions: &[&str],
        effect: RuntimeEffect,
        expires_at: UnixTime,
    ) -> RuntimeGrant {
        RuntimeGrant {
            channel: channel.into(),
            resource: GH.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            effect,
            expires_at,
        }
    }

    /// Runtime grants move within the file only: a table of (runtime grants, channel, what
    /// the agent gets before the human's side).
    /// A runtime grant never adds an action no file grant names: `extend` revives expired
    /// file grants' actions for its lifetime, `narrow` restricts, both stop at expiry.
    #[test]
    fn runtime_grants_only_narrow_or_extend_within_the_policy_file() {
        use RuntimeEffect::{Extend, Narrow};
        let p = policy();
        let later = NOW + 60;
        let cases: Vec<(&str, Vec<RuntimeGrant>, &str, Vec<&str>)> = vec![
            (
                "no runtime grant",
                vec![],
                "open",
                vec!["repo.read", "issue.comment"],
            ),
            ("expired file grant, nothing", vec![], "expired", vec![]),
            (
                "extend re-enables an expired file grant",
                vec![rg("expired", &["repo.read"], Extend, later)],
                "expired",
                vec!["repo.read"],
            ),
            (
                "extend cannot add an action the file does not grant there",
                vec![rg(
                    "expired",
                    &["repo.read", "issue.comment", "admin"],
                    Extend,
                    later,
                )],
                "expired",
                vec!["repo.read"],
            ),
            (
                "extend adds nothing to a live grant",
                vec![rg("open", &["pull_request.create"], Extend, later)],
                "open",
                vec!["repo.read", "issue.comment"],
            ),
            (
                "an expired runtime grant does nothing",
                vec![rg("expired", &["repo.read"], Extend, NOW)],
                "expired",
                vec![],
            ),
            (
                "another channel's runtime grant does nothing",
                vec![rg("open", &["repo.read"], Extend, later)],
                "expired",
                vec![],
            ),
            (
                "narrow restricts to a subset",
                vec![rg("open", &["issue.comment"], Narrow, later)],
                "open",
                vec!["issue.comment"],
            ),
            (
                "narrow cannot widen",
                vec![rg(
                    "open",
                    &["issue.comment", "pull_request.create"],
                    Narrow,
                    later,
                )],
                "open",
                vec!["issue.comment"],
            ),
            (
                "narrow grants intersect",
                vec![
                    rg("open", &["issue.comment", "repo.read"], Narrow, later),
                    rg("open", &["repo.read"], Narrow, later),
                ],
                "open",
                vec!["repo.read"],
            ),
            (
                "an expired narrow grant lifts",
                vec![rg("open", &["issue.comment"], Narrow, NOW - 1)],
                "open",
                vec!["repo.read", "issue.comment"],
            ),
            (
                "narrow applies to an extended grant too",
                vec![
                    rg("expired", &["repo.read"], Extend, later),
                    rg("expired", &["issue.comment"], Narrow, later),
                ],
                "expired",
                vec![],
            ),
        ];
        for (what, runtime, channel, want) in cases {
            let ch = p.channel(channel).expect("channel");
            let got = channel_actions(ch, "bot", GH, &runtime, NOW);
            assert_eq!(got.actions, want, "{what}");
            // Another agent never benefits from bot's runtime grants.
            assert!(
                channel_actions(ch, "other", GH, &runtime, NOW)
                    .actions
                    .is_empty(),
                "{what}"
            );
        }
    }

    /// Both legs honour runtime grants; the human's side and the never list still bound them.
    /// A runtime grant applies at both legs alike, and still only within what the human's own
    /// entitlement allows.
    #[test]
    fn runtime_grant_takes_effect_in_both_legs_within_the_human_side() {
        let p = policy();
        let agent = p.agent("bot").expect("agent").clone();
        let res = p.resource(GH).expect("resource").clone();
        let runtime = vec![rg(
            "expired",
            &["repo.read"],
            RuntimeEffect::Extend,
            NOW + 60,
        )];
        let ask = |h: &Human| {
            let asked = Asked {
                channel: Some("expired"),
                runtime: &runtime,
                ..Asked::default()
            };
            decide(&p, &agent, h, &res, &asked, NOW).map(|d| d.actions)
        };
        assert_eq!(
            ask(&human(&["eng"], "alice@example.com")),
            Ok(vec!["repo.read".into()])
        );
        assert!(ask(&human(&["support"], "bob@example.com")).is_err());
        let rs = RsAsked {
            channel: Some("expired"),
            from_id_jag: Some(&["repo.read"]),
            requested: None,
            approved: &[],
            runtime: &runtime,
        };
        assert_eq!(
            decide_resource_server(&p, &agent, &res, &rs, NOW).map(|d| d.actions),
            Ok(vec!["repo.read".into()])
        );
        let none = RsAsked { runtime: &[], ..rs };
        assert!(decide_resource_server(&p, &agent, &res, &none, NOW).is_err());
    }
}
