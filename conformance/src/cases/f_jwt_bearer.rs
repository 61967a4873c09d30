//! Checklist §3 F: jwt-bearer with an ID-JAG at the resource-AS role, happy paths (lines
//! 60–64).
//!
//! Every ID-JAG comes from the real leg 1 (a dev IdP ID token of alice exchanged at the IdP
//! role by the agent, in the eng channel, for the GitHub resource) unless the case needs a
//! header or claim lanyard's IdP role never emits (a one-element `aud` array, the long `typ`
//! spelling, an upstream `act`): those are signed by the dev test issuer, a second trusted
//! ID-JAG issuer whose key bootstrap hands out, and SKIP without it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::fixture::{Ask, DEPLOY, TRIAGE, need};
use super::leg2::{Leg2, Minted};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};

/// Section F, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "F60",
        line: 60,
        title: "valid ID-JAG → 200 Bearer, access_token, expires_in ≤ agent max, scope, no refresh_token",
        clause: "ID-JAG §4.4.2–4.4.3",
        target: Target::Role(Role::As, f60_happy_path),
    },
    Case {
        id: "F61",
        line: 61,
        title: "aud as a one-element array [issuer] → 200",
        clause: "ID-JAG §4.4.1",
        target: Target::Role(Role::As, f61_aud_array),
    },
    Case {
        id: "F62",
        line: 62,
        title: "typ application/oauth-id-jag+jwt (any case) → 200",
        clause: "D7",
        target: Target::Role(Role::As, f62_long_typ),
    },
    Case {
        id: "F63",
        line: 63,
        title: "request scope ⊂ ID-JAG scope → token and response scope = requested ∩ ID-JAG ∩ policy",
        clause: "7521 §4.1; MCP EMA §7.2.1",
        target: Target::Role(Role::As, f63_scope_subset),
    },
    Case {
        id: "F64",
        line: 64,
        title: "ID-JAG with act → access token act.sub = agent, the ID-JAG's act nested",
        clause: "8693 §4.1",
        target: Target::Role(Role::As, f64_act_nesting),
    },
];

/// Longest token lifetime any lanyard policy allows (policy `max_ttl` is 30s..=1h), used
/// when bootstrap does not say the agent's own maximum.
const POLICY_MAX_TTL: u64 = 3600;

/// Space-separated scope as a set.
pub fn scope_set(s: &str) -> BTreeSet<&str> {
    s.split(' ').filter(|t| !t.is_empty()).collect()
}

/// Every F60 check on one successful response; `max_ttl` is the agent's maximum.
fn token_response_checks(
    m: &Minted,
    max_ttl: u64,
    id_jag_scope: Option<&str>,
) -> Result<String, String> {
    let b = &m.body;
    let mut p = Vec::new();
    if !m.token_type().eq_ignore_ascii_case("Bearer") {
        p.push(format!(
            "token_type is {:?}, not \"Bearer\"",
            b.get("token_type")
        ));
    }
    let expires_in = b.get("expires_in").and_then(Value::as_u64);
    match expires_in {
        Some(e) if e > 0 && e <= max_ttl => {}
        _ => p.push(format!(
            "expires_in is {:?}, not a number in 1..={max_ttl}",
            b.get("expires_in")
        )),
    }
    if b.contains_key("refresh_token") {
        p.push("a refresh_token was returned".to_owned());
    }
    let scope = b.get("scope").and_then(Value::as_str);
    match (scope, m.claim("scope").and_then(Value::as_str)) {
        (Some(r), Some(c)) if scope_set(r) == scope_set(c) && !scope_set(r).is_empty() => {}
        (r, c) => p.push(format!(
            "response scope {r:?} is not the granted scope (token scope {c:?})"
        )),
    }
    if let (Some(r), Some(granted)) = (scope, id_jag_scope)
        && !scope_set(r).is_subset(&scope_set(granted))
    {
        p.push(format!("scope {r:?} exceeds the ID-JAG scope {granted:?}"));
    }
    if p.is_empty() {
        Ok(format!(
            "200 Bearer expires_in={} (max {max_ttl}) scope={:?}",
            expires_in.unwrap_or(0),
            scope.unwrap_or("")
        ))
    } else {
        Err(p.join(", "))
    }
}

fn f60_happy_path<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = need!(Leg2::for_as(cx, iss));
        let mut f = Findings::new();
        for (label, ask) in [
            ("triage-bot, client_secret_basic", Ask::triage()),
            ("deploy-bot, private_key_jwt", Ask::deploy()),
        ] {
            let agent = need!(l2.agent(ask.agent));
            let max = agent.max_ttl.unwrap_or(POLICY_MAX_TTL);
            let result = async {
                let issued = l2.id_jag(cx, &ask).await?;
                let minted = l2.accepted(cx, agent, &issued.jwt).await?;
                token_response_checks(&minted, max, issued.claim("scope").and_then(Value::as_str))
            }
            .await;
            f.record(label, result);
            if agent.max_ttl.is_none() {
                f.note(format!(
                    "{label}: bootstrap gives no max_ttl, checked against the policy ceiling"
                ));
            }
        }
        Ok(f.outcome())
    })
}

fn f61_aud_array<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = need!(Leg2::for_as(cx, iss));
        let t = need!(l2.test_issuer());
        let agent = need!(l2.agent(TRIAGE));
        let real = l2.id_jag(cx, &Ask::triage()).await?;
        let mut claims = t.claims_from(&real);
        claims.insert("aud".into(), json!([l2.as_issuer]));
        let token = t.sign(&t.header(), &claims)?;
        let m = l2.accepted(cx, agent, &token).await?;
        Ok(Outcome::pass(format!(
            "aud [{:?}] (signed by the dev test issuer): 200 {}",
            l2.as_issuer,
            m.token_type()
        )))
    })
}

fn f62_long_typ<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = need!(Leg2::for_as(cx, iss));
        let t = need!(l2.test_issuer());
        let agent = need!(l2.agent(TRIAGE));
        let real = l2.id_jag(cx, &Ask::triage()).await?;
        let mut f = Findings::new();
        for typ in [
            "application/oauth-id-jag+jwt",
            "Application/OAuth-ID-JAG+JWT",
        ] {
            let mut header = t.header();
            header.insert("typ".into(), json!(typ));
            let result = match t.sign(&header, &t.claims_from(&real)) {
                Ok(token) => l2
                    .accepted(cx, agent, &token)
                    .await
                    .map(|_| "200".to_owned()),
                Err(e) => Err(e),
            };
            f.record(&format!("typ {typ:?}"), result);
        }
        f.note("signed by the dev test issuer (lanyard's IdP role always emits the short form)");
        Ok(f.outcome())
    })
}

/// triage-bot's real ID-JAG grants repo.read and issue.comment; the request asks for
/// issue.comment alone.
fn f63_scope_subset<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = need!(Leg2::for_as(cx, iss));
        let agent = need!(l2.agent(TRIAGE));
        let issued = l2.id_jag(cx, &Ask::triage()).await?;
        let id_jag_scope = issued
            .claim("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let want = "issue.comment";
        if !scope_set(&id_jag_scope).contains(want) || scope_set(&id_jag_scope).len() < 2 {
            return Ok(Outcome::skip(format!(
                "leg 1 granted scope {id_jag_scope:?}: no strict subset containing {want} to ask for"
            )));
        }
        let form = Leg2::form(&issued.jwt).plus("scope", want);
        let resp = l2.send(cx, agent, &form, None).await?;
        let m = Minted::from_response(&resp)?;
        let mut f = Findings::new();
        match m.body.get("scope").and_then(Value::as_str) {
            Some(s) if scope_set(s) == scope_set(want) => {}
            other => f.fail(format!("response scope {other:?}, expected {want:?}")),
        }
        match m.claim("scope").and_then(Value::as_str) {
            Some(s) if scope_set(s) == scope_set(want) => {}
            other => f.fail(format!("access token scope {other:?}, expected {want:?}")),
        }
        f.note(format!(
            "ID-JAG scope {id_jag_scope:?}, requested {want:?}, granted {want:?}"
        ));
        Ok(f.outcome())
    })
}

/// The access token's `act` must be `{sub: <agent>, act: <the ID-JAG's act>}`.
/// The outer `act.sub` is the agent; the ID-JAG's `act` is nested — except that an ID-JAG
/// whose own `act.sub` already is this agent (lanyard's IdP role writes one) adds no earlier
/// actor, so what nests is whatever that `act` itself nested (lanyard choice: no
/// self-delegation in the chain).
fn act_check(m: &Minted, agent: &str, id_jag_act: &Value) -> Result<String, String> {
    let act = m.claim("act").ok_or("access token has no act")?;
    let mut p = Vec::new();
    if act.get("sub").and_then(Value::as_str) != Some(agent) {
        p.push(format!(
            "outer act.sub is {:?}, not {agent:?}",
            act.get("sub")
        ));
    }
    let expected = if id_jag_act.get("sub").and_then(Value::as_str) == Some(agent) {
        id_jag_act.get("act")
    } else {
        Some(id_jag_act)
    };
    if act.get("act") != expected {
        p.push(format!(
            "nested act is {:?}, expected {expected:?} from the ID-JAG's {id_jag_act}",
            act.get("act")
        ));
    }
    if p.is_empty() {
        Ok(format!("act {act}"))
    } else {
        Err(p.join(", "))
    }
}

fn f64_act_nesting<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = need!(Leg2::for_as(cx, iss));
        let agent = need!(l2.agent(TRIAGE));
        need!(l2.agent(DEPLOY));
        let mut f = Findings::new();
        // lanyard's IdP role names the requesting agent as act in every ID-JAG.
        let issued = l2.id_jag(cx, &Ask::triage()).await?;
        match issued.claim("act").cloned() {
            Some(act) => {
                let result = match l2.accepted(cx, agent, &issued.jwt).await {
                    Ok(m) => act_check(&m, TRIAGE, &act),
                    Err(e) => Err(e),
                };
                f.record("real ID-JAG", result);
            }
            None => f.note("real ID-JAG has no act: not tried"),
        }
        // An upstream actor the AS has never heard of, from the test issuer.
        match l2.test_issuer_opt() {
            Some(t) => {
                let upstream =
                    json!({"sub": "upstream-orchestrator", "act": {"sub": "human-proxy"}});
                let mut claims = t.claims_from(&issued);
                claims.insert("act".into(), upstream.clone());
                let result = match t.sign(&t.header(), &claims) {
                    Ok(token) => match l2.accepted(cx, agent, &token).await {
                        Ok(m) => act_check(&m, TRIAGE, &upstream),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                f.record("test-issuer ID-JAG with a two-level upstream act", result);
            }
            None => f.note("no test issuer: upstream act not tried"),
        }
        if !f.has_problems() && issued.claim("act").is_none() && l2.test_issuer_opt().is_none() {
            return Ok(Outcome::skip(
                "no ID-JAG with act available (the IdP role emits none and no test issuer)",
            ));
        }
        Ok(f.outcome())
    })
}
