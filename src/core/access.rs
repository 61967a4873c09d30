//! What a resource server checks in a lanyard access token once its signature is verified
//! (RFC 9068 §4, checklist J107): issuer, audience, times, the identity claims, and the
//! set of actions it carries. Pure: claims, expectations and `now` in, a [`Principal`] or a
//! [`Rejection`] out.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Rejection;
use super::claims::{AccessTokenIn, Actor};
use super::validate::{self, TimeRules};
use crate::clock::UnixTime;

/// What the resource server expects.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The issuer, compared byte for byte (RFC 9068 §4 item 3).
    pub issuer: &'a str,
    /// This resource's identifier: the token's `aud` must contain it (item 4).
    pub audience: &'a str,
    /// Clock-skew leeway, seconds.
    pub leeway: u64,
    /// The longest token lifetime accepted (`exp − iat`), seconds.
    pub max_lifetime: u64,
}

/// Who is acting and what the token allows, handed to the resource server's handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The responsible human (`sub`).
    pub human: String,
    /// The agent (`client_id`).
    pub agent: String,
    /// The delegation chain (`act`): the agent first, earlier actors nested.
    pub actor: Actor,
    /// The channel the agent acts in, if the token names one.
    pub channel: Option<String>,
    /// Every action the token grants on this resource.
    pub actions: BTreeSet<String>,
    /// The token's `jti` (for the resource server's own audit).
    pub token_id: String,
    /// Issued at.
    pub issued_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// The approval (id and approver) when a just-in-time approval was used.
    pub approval: Option<Value>,
    /// The DPoP key thumbprint the token is bound to, if any.
    pub jkt: Option<String>,
}

impl Principal {
    /// The agent principal (the current actor, `act.sub`), the name revocations use.
    pub fn agent_principal(&self) -> String {
        self.actor.sub.clone()
    }

    /// Whether the token grants `action` on this resource.
    pub fn allows(&self, action: &str) -> bool {
        self.actions.contains(action)
    }
}

/// Check verified claims against `expected` at `now` (RFC 9068 §4, in the order a resource
/// server reports refusals):
/// - `iss` is lanyard's resource-AS issuer, byte for byte (a token of the IdP role, or of any
///   other issuer sharing the keys, is not an access token here);
/// - `aud` names exactly this resource (lanyard mints one audience per token, so a token with
///   several is not one of lanyard's);
/// - `exp`, `iat` and `nbf` within the leeway, the lifetime within the issuer's ceiling;
/// - `jti`, `sub`, `client_id` and `act` present, `act.sub` naming the agent principal that
///   revocations use;
/// - the actions from `scope` and `lanyard_action` details for this resource, which the
///   resource server then matches to the operation it is asked for.
///
/// The signature and `typ` (`at+jwt`, RFC 9068 §2.1) are the verifier's, checked before.
pub fn check(
    c: AccessTokenIn,
    expected: &Expected<'_>,
    now: UnixTime,
) -> Result<Principal, Rejection> {
    if c.iss.as_deref() != Some(expected.issuer) {
        return Err(Rejection::UntrustedIssuer);
    }
    // RFC 9068 §4: the audience must contain this resource. lanyard mints one `aud`; a
    // token naming several resources is not one lanyard made, so exactly one is required.
    if !c
        .aud
        .as_ref()
        .is_some_and(|a| a.is_exactly(expected.audience))
    {
        return Err(Rejection::Audience);
    }
    validate::times(
        c.exp,
        c.iat,
        c.nbf,
        TimeRules {
            leeway: expected.leeway,
            max_lifetime: expected.max_lifetime,
            max_age: None,
            require_iat: true,
        },
        now,
    )?;
    let token_id = validate::jti(c.jti.as_deref())?.to_owned();
    let human = c.sub.filter(|s| !s.is_empty()).ok_or(Rejection::Subject)?;
    let agent = c
        .client_id
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::ClientMismatch)?;
    // RFC 8693 §4.1: the outermost actor is the current one, and lanyard names the agent.
    let actor = c
        .act
        .filter(|a| a.sub == agent)
        .ok_or(Rejection::ClientMismatch)?;
    let mut actions: BTreeSet<String> = c
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for d in c.authorization_details.unwrap_or_default() {
        if d.kind != "lanyard_action" {
            continue;
        }
        // A detail for another location grants nothing here (RFC 9396 §2.2).
        if d.locations.is_empty() || d.locations.iter().any(|l| l == expected.audience) {
            actions.extend(d.actions);
        }
    }
    let jkt = match c.cnf {
        None => None,
        Some(cnf) => match (cnf.jkt, cnf.x5t_s256) {
            (Some(j), None) if !j.is_empty() => Some(j),
            // A binding this verifier cannot check fails closed.
            _ => return Err(Rejection::Malformed("unsupported cnf")),
        },
    };
    Ok(Principal {
        human,
        agent,
        actor,
        channel: c.channel,
        actions,
        token_id,
        issued_at: c.iat.map(|e| e.secs()).unwrap_or_default(),
        expires_at: c.exp.map(|e| e.secs()).unwrap_or_default(),
        approval: c.approval,
        jkt,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: UnixTime = 1_800_000_000;
    const ISS: &str = "https://as.example/as";
    const RS: &str = "https://mcp.github.example/";
    const EXPECTED: Expected<'static> = Expected {
        issuer: ISS,
        audience: RS,
        leeway: 60,
        max_lifetime: 3600,
    };

    /// The claims of a valid access token for `bot` acting for alice on the test resource.
    fn claims() -> serde_json::Value {
        json!({
            "iss": ISS, "sub": "alice", "aud": RS, "client_id": "triage-bot",
            "iat": NOW - 10, "exp": NOW + 290, "jti": "t1",
            "scope": "repo.read issue.comment",
            "authorization_details": [
                {"type": "lanyard_action", "actions": ["repo.read"], "locations": [RS]},
                {"type": "lanyard_action", "actions": ["tickets.close"], "locations": ["https://tickets.example/"]}
            ],
            "act": {"sub": "triage-bot"}, "channel": "slack:T01/C-eng-api",
        })
    }

    /// Check `v` as the resource server would at `NOW`.
    fn run(v: serde_json::Value) -> Result<Principal, Rejection> {
        check(serde_json::from_value(v).unwrap(), &EXPECTED, NOW)
    }

    /// The valid claims with `k` set to `v`.
    fn with(k: &str, v: serde_json::Value) -> serde_json::Value {
        let mut c = claims();
        c[k] = v;
        c
    }

    /// The valid claims without `k`.
    fn without(k: &str) -> serde_json::Value {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(k);
        c
    }

    /// RFC 9068 §4 (checklist J106): a valid access token names the human (`sub`), the agent
    /// (`client_id`, `act`), the channel and the actions a resource server may allow.
    #[test]
    fn valid_token_yields_human_agent_channel_and_actions() {
        let p = run(claims()).unwrap();
        assert_eq!(p.human, "alice");
        assert_eq!(p.agent, "triage-bot");
        assert_eq!(p.channel.as_deref(), Some("slack:T01/C-eng-api"));
        assert!(p.allows("repo.read") && p.allows("issue.comment"));
        assert!(
            !p.allows("tickets.close"),
            "a detail for another location grants nothing here"
        );
        assert_eq!(p.jkt, None);
    }

    /// RFC 9068 §4 and checklist J107, one row per rule.
    /// RFC 9068 §4: what a resource server refuses, one row per claim rule.
    #[test]
    fn rejections_table() {
        let rows: Vec<(&str, serde_json::Value, Rejection)> = vec![
            ("iss missing", without("iss"), Rejection::UntrustedIssuer),
            (
                "iss other",
                with("iss", json!("https://evil.example/as")),
                Rejection::UntrustedIssuer,
            ),
            (
                "iss trailing slash",
                with("iss", json!(format!("{ISS}/"))),
                Rejection::UntrustedIssuer,
            ),
            ("aud missing", without("aud"), Rejection::Audience),
            (
                "aud other",
                with("aud", json!("https://tickets.example/")),
                Rejection::Audience,
            ),
            (
                "aud two members",
                with("aud", json!([RS, "https://tickets.example/"])),
                Rejection::Audience,
            ),
            (
                "expired",
                with("exp", json!(NOW - 61)),
                Rejection::Time("expired"),
            ),
            (
                "exp missing",
                without("exp"),
                Rejection::Time("exp missing"),
            ),
            (
                "iat missing",
                without("iat"),
                Rejection::Time("iat missing"),
            ),
            (
                "iat future",
                with("iat", json!(NOW + 120)),
                Rejection::Time("iat in the future"),
            ),
            (
                "nbf future",
                with("nbf", json!(NOW + 120)),
                Rejection::Time("not yet valid"),
            ),
            (
                "lifetime",
                with("exp", json!(NOW + 7200)),
                Rejection::Time("lifetime too long"),
            ),
            ("jti missing", without("jti"), Rejection::Jti),
            ("sub empty", with("sub", json!("")), Rejection::Subject),
            (
                "client_id missing",
                without("client_id"),
                Rejection::ClientMismatch,
            ),
            ("act missing", without("act"), Rejection::ClientMismatch),
            (
                "act other agent",
                with("act", json!({"sub": "deploy-bot"})),
                Rejection::ClientMismatch,
            ),
            (
                "cnf x5t",
                with("cnf", json!({"x5t#S256": "abc"})),
                Rejection::Malformed("unsupported cnf"),
            ),
        ];
        for (name, v, want) in rows {
            assert_eq!(run(v).unwrap_err(), want, "{name}");
        }
    }

    /// The same leeway as at the token endpoint: an `exp` a few seconds past still verifies.
    #[test]
    fn exp_within_leeway_is_accepted() {
        assert!(run(with("exp", json!(NOW - 30))).is_ok());
    }

    /// RFC 9449 §6.1: a DPoP-bound token reports `cnf.jkt`, for the proof check that follows.
    #[test]
    fn bound_token_reports_its_thumbprint() {
        let p = run(with("cnf", json!({"jkt": "abc"}))).unwrap();
        assert_eq!(p.jkt.as_deref(), Some("abc"));
    }

    /// RFC 8693 §4.1: a nested actor chain reaches the resource server whole.
    #[test]
    fn nested_actor_is_kept() {
        let p = run(with(
            "act",
            json!({"sub": "triage-bot", "act": {"sub": "planner"}}),
        ))
        .unwrap();
        assert_eq!(p.actor.act.unwrap().sub, "planner");
    }
}
