//! Checklist §3 E: the content of an issued ID-JAG (lines 56–59).
//!
//! Each case obtains its own ID-JAGs from the IdP-role issuer (dev server demo: triage-bot
//! with a client secret, deploy-bot with `private_key_jwt`, alice in the eng channel) and
//! looks inside them; the signature is verified against the issuer's published JWKS.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::fixture::{
    self, ALICE, Ask, Auth, DEPLOY, Fixture, GITHUB, Issued, TRIAGE, agent_secret, need,
};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::jwt;
use crate::oauth::is_asymmetric_alg;

/// Section E, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "E56",
        line: 56,
        title: "header typ oauth-id-jag+jwt, asymmetric pinned alg, kid (verifies with JWKS)",
        clause: "ID-JAG §3.1",
        target: Target::Role(Role::Idp, e56_header),
    },
    Case {
        id: "E57",
        line: 57,
        title: "claims iss, sub, aud, client_id, jti, iat/exp, grants, auth context",
        clause: "ID-JAG §3.1, §4.3.3, §6",
        target: Target::Role(Role::Idp, e57_claims),
    },
    Case {
        id: "E58",
        line: 58,
        title: "two identical TE requests → different jti",
        clause: "7519 §4.1.7",
        target: Target::Role(Role::Idp, e58_unique_jti),
    },
    Case {
        id: "E59",
        line: 59,
        title: "ID-JAG embeds no ID token, refresh token or client secret",
        clause: "lanyard choice",
        target: Target::Role(Role::Idp, e59_no_embedded_secrets),
    },
];

/// Leeway on `iat` = now (checklist notation).
const LEEWAY: i64 = 60;

fn e56_header<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        need!(fx.agent(TRIAGE));
        need!(fx.agent(DEPLOY));
        let keys = fixture::jwks(cx, iss).await?;
        let mut f = Findings::new();
        for (label, ask, auth) in [
            ("triage-bot", Ask::triage(), Auth::Basic),
            ("deploy-bot", Ask::deploy(), Auth::Key),
        ] {
            let result = match fx.obtain(cx, &ask, auth).await {
                Ok(issued) => header_checks(&issued, &keys),
                Err(e) => Err(e),
            };
            f.record(label, result);
        }
        Ok(f.outcome())
    })
}

fn header_checks(issued: &Issued, keys: &[Map<String, Value>]) -> Result<String, String> {
    let h = &issued.decoded.header;
    let mut problems = Vec::new();
    // D7: lanyard always emits the short form.
    match h.get("typ") {
        Some(Value::String(t)) if t == "oauth-id-jag+jwt" => {}
        other => problems.push(format!("typ is {other:?}, not \"oauth-id-jag+jwt\"")),
    }
    match h.get("alg").and_then(Value::as_str) {
        Some(alg) if is_asymmetric_alg(alg) => {}
        other => problems.push(format!("alg {other:?} is not an asymmetric signature alg")),
    }
    let jwks = fixture::check_against_jwks(&issued.jwt, keys);
    if let Err(e) = &jwks {
        problems.push(e.clone());
    }
    for member in ["jku", "x5u", "jwk"] {
        if h.contains_key(member) {
            problems.push(format!(
                "header carries {member} (verifiers must not use it)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "typ oauth-id-jag+jwt, {}",
            jwks.unwrap_or_default()
        ))
    } else {
        Err(problems.join(", "))
    }
}

/// The `authorization_details` E57 requests explicitly in its second exchange.
fn requested_details() -> Value {
    json!([{"type": "lanyard_action", "actions": ["repo.read"], "locations": [GITHUB]}])
}

fn e57_claims<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let alice = need!(fx.human(ALICE));
        need!(fx.agent(TRIAGE));
        need!(fx.agent(DEPLOY));
        let mut f = Findings::new();
        for (label, ask, auth) in [
            ("triage-bot", Ask::triage(), Auth::Basic),
            ("deploy-bot", Ask::deploy(), Auth::Key),
        ] {
            match fx.obtain(cx, &ask, auth).await {
                Ok(issued) => {
                    claim_checks(&fx, &ask, &alice.sub, &issued, None, label, &mut f);
                }
                Err(e) => f.fail(format!("{label}: {e}")),
            }
        }
        // With authorization_details requested: the granted details are in the claim.
        let ask = Ask {
            scope: None,
            ..Ask::triage()
        };
        let details = requested_details();
        let agent = need!(fx.agent(TRIAGE));
        let id_token = fx.id_token_for(cx, &ask).await?;
        let form = fx
            .te_form(&ask, &id_token)
            .plus("authorization_details", &details.to_string());
        let resp = cx
            .http
            .send(fx.te_request(&form, agent, Auth::Basic)?)
            .await?;
        match Issued::from_response(&resp, id_token) {
            Ok(issued) => claim_checks(
                &fx,
                &ask,
                &alice.sub,
                &issued,
                Some(&details),
                "triage-bot with authorization_details",
                &mut f,
            ),
            Err(e) => f.fail(format!("triage-bot with authorization_details: {e}")),
        }
        f.note("tenant: single-tenant issuer, not required");
        f.note("aud alias: none configured in the demo, not tried");
        Ok(f.outcome())
    })
}

/// Every E57 check on one ID-JAG, recorded under `label`.
fn claim_checks(
    fx: &Fixture,
    ask: &Ask<'_>,
    human_sub: &str,
    issued: &Issued,
    details: Option<&Value>,
    label: &str,
    f: &mut Findings,
) {
    let c = &issued.decoded.claims;
    let body = &issued.body;
    let id_token = jwt::decode(&issued.id_token)
        .map(|d| d.claims)
        .unwrap_or_default();
    let mut p: Vec<String> = Vec::new();
    let str_claim = |n: &str| c.get(n).and_then(Value::as_str);

    if str_claim("iss") != Some(fx.idp_issuer.as_str()) {
        p.push(format!(
            "iss {:?} ≠ IdP issuer {:?}",
            c.get("iss"),
            fx.idp_issuer
        ));
    }
    if str_claim("sub") != Some(human_sub) {
        p.push(format!(
            "sub {:?} ≠ the human's sub {human_sub:?}",
            c.get("sub")
        ));
    }
    if id_token.get("sub") != c.get("sub") {
        p.push(format!(
            "sub {:?} ≠ the ID token's sub {:?}",
            c.get("sub"),
            id_token.get("sub")
        ));
    }
    match c.get("aud") {
        Some(Value::String(a)) if *a == fx.audience => {}
        Some(Value::Array(a)) if a.len() == 1 && a[0] == json!(fx.audience) => {}
        other => p.push(format!(
            "aud {other:?} is not exactly one RAS issuer {:?}",
            fx.audience
        )),
    }
    if str_claim("client_id") != Some(ask.agent) {
        p.push(format!(
            "client_id {:?} ≠ {:?}",
            c.get("client_id"),
            ask.agent
        ));
    }
    match str_claim("jti") {
        Some(jti) => {
            let bits = entropy_bits(jti);
            if bits < 128 {
                p.push(format!("jti {jti:?} carries about {bits} bits (< 128)"));
            }
        }
        None => p.push(format!("jti {:?} is not a string", c.get("jti"))),
    }
    let now = jwt::now();
    match (
        c.get("iat").and_then(Value::as_i64),
        c.get("exp").and_then(Value::as_i64),
    ) {
        (Some(iat), Some(exp)) => {
            if (iat - now).abs() > LEEWAY {
                p.push(format!("iat {iat} is not now ({now} ± {LEEWAY} s)"));
            }
            if exp <= iat || exp - iat > 300 {
                p.push(format!("exp − iat = {} (must be in 1..=300)", exp - iat));
            }
        }
        (iat, exp) => p.push(format!("iat {iat:?} / exp {exp:?} not both integers")),
    }
    // The granted resource/scope/details are in the ID-JAG and agree with the response.
    if let Some(resource) = ask.resource {
        match c.get("resource") {
            Some(Value::String(r)) if r == resource => {}
            Some(Value::Array(a)) if a.len() == 1 && a[0] == json!(resource) => {}
            other => p.push(format!("resource claim {other:?} ≠ requested {resource:?}")),
        }
        if let Some(r) = body.get("resource")
            && Some(r) != c.get("resource")
        {
            p.push(format!(
                "response resource {r} ≠ claim {:?}",
                c.get("resource")
            ));
        }
    }
    match (body.get("scope"), c.get("scope")) {
        (Some(r), Some(claim)) if r != claim => {
            p.push(format!("response scope {r} ≠ ID-JAG scope {claim}"));
        }
        (None, claim) => {
            if let Some(requested) = ask.scope
                && claim != Some(&json!(requested))
            {
                p.push(format!(
                    "no response scope (so all of {requested:?} granted) but ID-JAG scope is \
                     {claim:?}"
                ));
            }
        }
        (Some(r), None) if details.is_none() => {
            p.push(format!(
                "response scope {r} but the ID-JAG has no scope claim"
            ));
        }
        _ => {}
    }
    if let Some(requested) = details {
        match c.get("authorization_details") {
            Some(Value::Array(granted)) => {
                if let Err(e) = details_within(granted, requested) {
                    p.push(e);
                }
                match body.get("authorization_details") {
                    Some(r) if r == &Value::Array(granted.clone()) => {}
                    Some(r) => p.push(format!(
                        "response authorization_details {r} ≠ the claim {}",
                        Value::Array(granted.clone())
                    )),
                    None => f.note(format!(
                        "{label}: response omits authorization_details (allowed when granted = \
                         requested)"
                    )),
                }
            }
            other => p.push(format!(
                "authorization_details requested but the claim is {other:?}"
            )),
        }
    } else if let (Some(r), Some(claim)) = (
        body.get("authorization_details"),
        c.get("authorization_details"),
    ) && r != claim
    {
        p.push(format!(
            "response authorization_details {r} ≠ claim {claim}"
        ));
    }
    // The authentication context is copied from the ID token.
    for name in ["auth_time", "acr", "amr"] {
        if let Some(v) = id_token.get(name)
            && c.get(name) != Some(v)
        {
            p.push(format!(
                "{name} {:?} not copied from the ID token ({v})",
                c.get(name)
            ));
        }
    }
    // lanyard's own contract (beyond line 57): act.sub is the agent, channel as sent.
    if let Some(act) = c.get("act")
        && act.get("sub").and_then(Value::as_str) != Some(ask.agent)
    {
        p.push(format!("act {act} does not name the agent {:?}", ask.agent));
    }
    if let (Some(sent), Some(claim)) = (ask.channel, c.get("channel"))
        && claim != &json!(sent)
    {
        p.push(format!("channel claim {claim} ≠ sent {sent:?}"));
    }
    for problem in p {
        f.fail(format!("{label}: {problem}"));
    }
    let copied: Vec<&str> = ["email", "email_verified"]
        .into_iter()
        .filter(|n| id_token.contains_key(*n) && c.get(*n) == id_token.get(*n))
        .collect();
    f.note(format!(
        "{label}: jti ~{} bits, exp−iat={}, scope={}, act={}, channel={}, copied {copied:?}",
        c.get("jti").and_then(Value::as_str).map_or(0, entropy_bits),
        match (
            c.get("exp").and_then(Value::as_i64),
            c.get("iat").and_then(Value::as_i64)
        ) {
            (Some(e), Some(i)) => (e - i).to_string(),
            _ => "?".to_owned(),
        },
        c.get("scope")
            .map_or_else(|| "-".to_owned(), Value::to_string),
        c.get("act")
            .map_or_else(|| "-".to_owned(), Value::to_string),
        c.get("channel")
            .map_or_else(|| "-".to_owned(), Value::to_string),
    ));
}

/// Granted details stay within the requested ones: each granted `lanyard_action` element's
/// actions and locations were requested.
fn details_within(granted: &[Value], requested: &Value) -> Result<(), String> {
    let strings = |v: &Value, key: &str| -> BTreeSet<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let req = requested.as_array().cloned().unwrap_or_default();
    let req_actions: BTreeSet<String> = req.iter().flat_map(|e| strings(e, "actions")).collect();
    let req_locations: BTreeSet<String> =
        req.iter().flat_map(|e| strings(e, "locations")).collect();
    if granted.is_empty() {
        return Err("authorization_details claim is an empty array".to_owned());
    }
    for g in granted {
        if g.get("type").and_then(Value::as_str) != Some("lanyard_action") {
            return Err(format!("granted element {g} is not lanyard_action"));
        }
        if !strings(g, "actions").is_subset(&req_actions)
            || !strings(g, "locations").is_subset(&req_locations)
        {
            return Err(format!(
                "granted element {g} exceeds the requested {requested}"
            ));
        }
    }
    Ok(())
}

/// A rough entropy estimate of a random identifier: 4 bits per character for hex, 6 for
/// base64url, 4 per hex digit of a UUID minus its fixed bits; an upper bound otherwise.
fn entropy_bits(jti: &str) -> u32 {
    let len = u32::try_from(jti.chars().count()).unwrap_or(u32::MAX);
    let is_uuid = jti.len() == 36
        && jti.chars().enumerate().all(|(i, ch)| {
            matches!(i, 8 | 13 | 18 | 23) == (ch == '-') && (ch == '-' || ch.is_ascii_hexdigit())
        });
    if is_uuid {
        122
    } else if jti.chars().all(|ch| ch.is_ascii_hexdigit()) {
        len.saturating_mul(4)
    } else {
        len.saturating_mul(6)
    }
}

/// Two byte-identical requests (same ID token, same form, same Basic credentials).
fn e58_unique_jti<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(TRIAGE));
        let ask = Ask::triage();
        let id_token = fx.id_token_for(cx, &ask).await?;
        let form = fx.te_form(&ask, &id_token);
        let mut jtis = Vec::new();
        for n in ["first", "second"] {
            let resp = cx
                .http
                .send(fx.te_request(&form, agent, Auth::Basic)?)
                .await?;
            let issued = Issued::from_response(&resp, id_token.clone())
                .map_err(|e| format!("{n} request: {e}"))?;
            jtis.push(issued.claim("jti").cloned().unwrap_or(Value::Null));
        }
        match jtis.as_slice() {
            [a, b] if a.is_string() && a != b => Ok(Outcome::pass(format!("jti {a} ≠ {b}"))),
            [a, b] => Err(format!(
                "jti values {a} and {b} are not two different strings"
            )),
            _ => Err("two responses expected".to_owned()),
        }
    })
}

fn e59_no_embedded_secrets<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let triage = need!(fx.agent(TRIAGE));
        let deploy = need!(fx.agent(DEPLOY));
        let secret = agent_secret(triage)?.to_owned();
        let private_d = deploy
            .private_jwk
            .as_ref()
            .and_then(|j| j.get("d"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut f = Findings::new();
        for (label, ask, auth, forbidden) in [
            (
                "triage-bot Basic",
                Ask::triage(),
                Auth::Basic,
                secret.clone(),
            ),
            ("triage-bot post", Ask::triage(), Auth::Post, secret.clone()),
            (
                "deploy-bot private_key_jwt",
                Ask::deploy(),
                Auth::Key,
                private_d.clone(),
            ),
        ] {
            let issued = match fx.obtain(cx, &ask, auth).await {
                Ok(i) => i,
                Err(e) => {
                    f.fail(format!("{label}: {e}"));
                    continue;
                }
            };
            f.record(label, embedded(&issued, &forbidden));
        }
        Ok(f.outcome())
    })
}

/// Looks for the ID token (whole, or its signature), the credential, and any member named
/// like a token or secret, in the decoded header and claims and in the compact form.
fn embedded(issued: &Issued, credential: &str) -> Result<String, String> {
    let text = format!(
        "{} {} {}",
        Value::Object(issued.decoded.header.clone()),
        Value::Object(issued.decoded.claims.clone()),
        issued.jwt
    );
    let mut problems = Vec::new();
    let needles = [
        ("the ID token", issued.id_token.as_str()),
        (
            "the ID token's signature",
            jwt::signature_segment(&issued.id_token),
        ),
        ("the client credential", credential),
    ];
    for (what, needle) in needles {
        if !needle.is_empty() && text.contains(needle) {
            problems.push(format!("contains {what}"));
        }
    }
    let mut names = Vec::new();
    member_names(&Value::Object(issued.decoded.claims.clone()), &mut names);
    for name in names {
        let lower = name.to_ascii_lowercase();
        if [
            "id_token",
            "refresh_token",
            "client_secret",
            "client_assertion",
            "subject_token",
        ]
        .iter()
        .any(|n| lower.contains(n))
        {
            problems.push(format!("has a member named {name:?}"));
        }
    }
    if problems.is_empty() {
        Ok(String::new())
    } else {
        Err(problems.join(", "))
    }
}

fn member_names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                out.push(k.clone());
                member_names(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| member_names(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_estimates() {
        assert_eq!(entropy_bits("BwIOgHF4QBFWOK4pocqQUz6F"), 144);
        assert_eq!(entropy_bits("00112233445566778899aabbccddeeff"), 128);
        assert_eq!(entropy_bits("123e4567-e89b-12d3-a456-426614174000"), 122);
        assert_eq!(entropy_bits("abc"), 12);
    }
}
