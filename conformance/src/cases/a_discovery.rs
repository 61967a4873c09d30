//! Checklist §3 A: discovery and keys (lines 1–8).
//!
//! lanyard runs its two roles as two issuers (trust domains), so most lines here are checked
//! per issuer; where a line speaks of "the metadata" listing both roles' items (A2), the
//! union over the issuers is checked by a separate case.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use url::Url;

use super::fixture::{self, Ask, Auth, Fixture};
use super::{Case, CaseFuture, CheckResult, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::Req;
use crate::jwt;
use crate::oauth::{self, endpoint_url, is_asymmetric_alg, is_jwks_media_type, is_loopback};

/// Section A, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "A1",
        line: 1,
        title: "metadata issuer byte-equal",
        clause: "8414 §2, §3.3",
        target: Target::EachIssuer(a1_metadata_issuer),
    },
    Case {
        id: "A2",
        line: 2,
        title: "metadata has the required members; own grant listed; no `none` signing alg",
        clause: "8414 §2",
        target: Target::EachIssuer(a2_required_members),
    },
    Case {
        id: "A2.grants",
        line: 2,
        title: "grant_types_supported over all issuers lists token-exchange and jwt-bearer",
        clause: "8414 §2",
        target: Target::Once(a2_grant_union),
    },
    Case {
        id: "A2.introspection",
        line: 2,
        title: "introspection_endpoint is an absolute same-origin URL",
        clause: "8414 §2",
        target: Target::EachIssuer(a2_introspection_endpoint),
    },
    Case {
        id: "A2.revocation",
        line: 2,
        title: "revocation_endpoint is an absolute same-origin URL",
        clause: "8414 §2",
        target: Target::EachIssuer(a2_revocation_endpoint),
    },
    Case {
        id: "A3",
        line: 3,
        title: "RAS metadata lists the id-jag grant profile and jwt-bearer, no trusted issuers",
        clause: "ID-JAG §7.2, §9.4",
        target: Target::Role(Role::As, a3_ras_metadata),
    },
    Case {
        id: "A4",
        line: 4,
        title: "IdP metadata lists id-jag in identity_chaining_requested_token_types_supported",
        clause: "ID-JAG §7.1",
        target: Target::Role(Role::Idp, a4_idp_metadata),
    },
    Case {
        id: "A5",
        line: 5,
        title: "DPoP algs asymmetric only; RAR types include lanyard_action",
        clause: "9449 §5.1, 9396 §10",
        target: Target::EachIssuer(a5_dpop_and_rar),
    },
    Case {
        id: "A6",
        line: 6,
        title: "JWKS: public signing keys with unique kid, kty, use=sig, alg; cacheable",
        clause: "7517 §4–5",
        target: Target::EachIssuer(a6_jwks),
    },
    Case {
        id: "A8",
        line: 8,
        title: "previous key keeps validating after rotation; new key published before use",
        clause: "operational; 8725bis §3.1",
        target: Target::Once(a8_key_rotation),
    },
];

/// Section A lines that report on the tokens every other case obtained; the registry runs
/// them after sections C–E (and before the B summaries).
pub const SUMMARY: &[Case] = &[Case {
    id: "A7",
    line: 7,
    title: "every issued JWT's kid is in the JWKS with the same alg",
    clause: "8725 §3.1",
    target: Target::Once(a7_issued_kid_in_jwks),
}];

/// RFC 8414 §3.3: the `issuer` in the metadata must be the very string the metadata URL
/// was built from, and §2: https, no query or fragment (http tolerated on loopback only,
/// so a dev server can be tested).
fn a1_metadata_issuer<'a>(_cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let mut f = Findings::new();
        match Url::parse(&iss.issuer) {
            Ok(u) => {
                match u.scheme() {
                    "https" => {}
                    "http" if is_loopback(&u) => {}
                    scheme => f.fail(format!(
                        "issuer uses {scheme}: https is required except on loopback"
                    )),
                }
                if u.query().is_some() {
                    f.fail("issuer has a query component");
                }
                if u.fragment().is_some() {
                    f.fail("issuer has a fragment component");
                }
            }
            Err(e) => f.fail(format!(
                "issuer {:?} is not an absolute URL: {e}",
                iss.issuer
            )),
        }
        let (url, resp) = match (&iss.metadata_url, &iss.metadata_resp) {
            (Ok(url), Ok(resp)) => (url, resp),
            // The issuer checks above already explain an unusable URL; don't say it twice.
            (Err(_), _) if f.has_problems() => return Ok(f.outcome()),
            (Err(e), _) | (_, Err(e)) => {
                f.fail(e.clone());
                return Ok(f.outcome());
            }
        };
        if resp.status != 200 {
            f.fail(format!("GET {url}: expected 200, got {}", resp.summary()));
            return Ok(f.outcome());
        }
        if resp.media_type().as_deref() != Some("application/json") {
            f.fail(format!(
                "Content-Type is {:?}, not application/json",
                resp.header("content-type").unwrap_or("(none)")
            ));
        }
        match iss.metadata.as_ref().map(|m| m.get("issuer")) {
            None => f.fail(format!("GET {url}: body is not a JSON object")),
            Some(None) => f.fail("metadata has no issuer member"),
            Some(Some(Value::String(got))) if *got == iss.issuer => {
                f.note(format!("issuer={got}"));
            }
            Some(Some(got)) => f.fail(format!(
                "metadata issuer {got} is not byte-equal to the configured issuer {:?}",
                iss.issuer
            )),
        }
        Ok(f.outcome())
    })
}

/// RFC 8414 §2 members lanyard always publishes, the grant of each role the issuer holds,
/// and no `none` among the client-authentication signing algorithms.
fn a2_required_members<'a>(_cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let meta = match iss.meta() {
            Ok(m) => m,
            Err(skip) => return Ok(skip),
        };
        let mut f = Findings::new();
        for name in ["token_endpoint", "jwks_uri"] {
            if let Err(e) = endpoint_url(name, meta.get(name)) {
                f.fail(e);
            }
        }
        if meta.contains_key("authorization_endpoint") {
            let value = meta.get("authorization_endpoint");
            if let Err(e) = endpoint_url("authorization_endpoint", value) {
                f.fail(e);
            }
        }
        // Present even though lanyard has no authorization endpoint: RFC 8414 §2 makes it
        // REQUIRED regardless, and it may be empty.
        if let Err(e) = string_array(meta, "response_types_supported") {
            f.fail(e);
        }
        match string_array(meta, "grant_types_supported") {
            Ok(grants) => {
                if iss.roles.is_empty() {
                    f.fail("grant_types_supported lists neither token-exchange nor jwt-bearer");
                }
                for role in &iss.roles {
                    if !grants.contains(&role.grant_type()) {
                        f.fail(format!(
                            "grant_types_supported lacks {} although this is the {} issuer",
                            role.grant_type(),
                            role.name()
                        ));
                    }
                }
                f.note(format!("grant_types_supported={grants:?}"));
            }
            Err(e) => f.fail(e),
        }
        match string_array(meta, "token_endpoint_auth_methods_supported") {
            Ok(methods) if methods.is_empty() => {
                f.fail("token_endpoint_auth_methods_supported is empty");
            }
            Ok(_) => {}
            Err(e) => f.fail(e),
        }
        match string_array(meta, "token_endpoint_auth_signing_alg_values_supported") {
            Ok(algs) if algs.iter().any(|a| a.eq_ignore_ascii_case("none")) => f.fail(
                "token_endpoint_auth_signing_alg_values_supported lists none (RFC 8414 §2 MUST NOT)",
            ),
            Ok(algs) => f.note(format!("client auth algs={algs:?}")),
            Err(e) => f.fail(e),
        }
        Ok(f.outcome())
    })
}

/// The checklist asks one metadata document to list both grants; lanyard deploys each role
/// as its own issuer, so the union is what must hold. A role that is not deployed at all
/// cannot be checked: that is a skip, not a failure.
fn a2_grant_union(cx: &Ctx) -> CaseFuture<'_> {
    check(async move {
        let union: BTreeSet<&str> = cx
            .issuers
            .iter()
            .filter_map(|i| i.metadata.as_ref())
            .filter_map(|m| m.get("grant_types_supported"))
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let mut missing = Vec::new();
        let mut undeployed = Vec::new();
        for role in Role::ALL {
            if union.contains(role.grant_type()) {
                continue;
            }
            if cx.with_role(role).next().is_some() {
                missing.push(format!(
                    "{} (the {} role is deployed)",
                    role.grant_type(),
                    role.name()
                ));
            } else {
                undeployed.push(role.name());
            }
        }
        if !missing.is_empty() {
            return Err(format!("no issuer lists {}", missing.join(", ")));
        }
        if !undeployed.is_empty() {
            let unknown = cx.issuers.iter().any(|i| i.roles.is_empty());
            return Ok(Outcome::skip(format!(
                "role not deployed{}: {} (no issuer is known to hold it)",
                if unknown {
                    " or unknown (see A1/A2)"
                } else {
                    ""
                },
                undeployed.join(", ")
            )));
        }
        Ok(Outcome::pass("both URNs listed across the issuers"))
    })
}

fn a2_introspection_endpoint<'a>(_cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(same_origin_endpoint(iss, "introspection_endpoint"))
}

fn a2_revocation_endpoint<'a>(_cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(same_origin_endpoint(iss, "revocation_endpoint"))
}

/// Both issuers serve introspection and revocation (sections K and L), so the checklist's
/// MUST applies: absence fails; the endpoint must live on the issuer's own origin.
async fn same_origin_endpoint(iss: &Issuer, name: &str) -> CheckResult {
    let meta = match iss.meta() {
        Ok(m) => m,
        Err(skip) => return Ok(skip),
    };
    if !meta.contains_key(name) {
        return Err(format!(
            "{name} missing (RFC 8414 §2; checklist line 2 MUST)"
        ));
    }
    let url = endpoint_url(name, meta.get(name))?;
    let issuer = Url::parse(&iss.issuer).map_err(|e| format!("issuer is not a URL: {e}"))?;
    if url.origin() != issuer.origin() {
        return Err(format!(
            "{name} {url} is not on the issuer's origin {}",
            issuer.origin().ascii_serialization()
        ));
    }
    Ok(Outcome::pass(format!("{name}={url}")))
}

/// ID-JAG §7.2 (profile and grant) and §9.4: the metadata must not reveal which IdPs this
/// RAS trusts. Without the server's trust list, the runner checks the issuers it knows of
/// (from bootstrap and flags) and any member whose name talks about trust.
fn a3_ras_metadata<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let meta = match iss.meta() {
            Ok(m) => m,
            Err(skip) => return Ok(skip),
        };
        let mut f = Findings::new();
        match string_array(meta, "authorization_grant_profiles_supported") {
            Ok(p) if p.contains(&oauth::PROFILE_ID_JAG) => {}
            Ok(p) => f.fail(format!(
                "authorization_grant_profiles_supported {p:?} lacks {}",
                oauth::PROFILE_ID_JAG
            )),
            Err(e) => f.fail(e),
        }
        match string_array(meta, "grant_types_supported") {
            Ok(g) if g.contains(&oauth::GRANT_JWT_BEARER) => {}
            Ok(_) => f.fail(format!(
                "grant_types_supported lacks {}",
                oauth::GRANT_JWT_BEARER
            )),
            Err(e) => f.fail(e),
        }
        let others: Vec<String> = cx
            .known_issuers()
            .into_iter()
            .filter(|o| !same_issuer_modulo_slash(o, &iss.issuer))
            .collect();
        let mut leaks = Vec::new();
        scan_for_trust_disclosure(&Value::Object(meta.clone()), "", &others, &mut leaks);
        for leak in leaks {
            f.fail(leak);
        }
        f.note(format!(
            "compared against {} other known issuer(s)",
            others.len()
        ));
        Ok(f.outcome())
    })
}

/// An issuer listed with or without a trailing slash still discloses it.
fn same_issuer_modulo_slash(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Walks the metadata: any string value naming another known issuer, and any member name
/// containing "trusted", is reported with its JSON path.
fn scan_for_trust_disclosure(value: &Value, path: &str, others: &[String], out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            if others.iter().any(|o| same_issuer_modulo_slash(o, s)) {
                out.push(format!("{path} names another issuer {s:?} (ID-JAG §9.4)"));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                scan_for_trust_disclosure(item, &format!("{path}[{i}]"), others, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if key.to_ascii_lowercase().contains("trusted") {
                    out.push(format!(
                        "member {child:?} looks like a trust list (ID-JAG §9.4)"
                    ));
                }
                scan_for_trust_disclosure(item, &child, others, out);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// ID-JAG §7.1 (and lanyard always advertises it, so absence fails).
fn a4_idp_metadata<'a>(_cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let meta = match iss.meta() {
            Ok(m) => m,
            Err(skip) => return Ok(skip),
        };
        let name = "identity_chaining_requested_token_types_supported";
        let types = string_array(meta, name)?;
        if types.contains(&oauth::TOKEN_TYPE_ID_JAG) {
            Ok(Outcome::pass(format!("{name}={types:?}")))
        } else {
            Err(format!(
                "{name} {types:?} lacks {}",
                oauth::TOKEN_TYPE_ID_JAG
            ))
        }
    })
}

/// Only what is advertised can be checked: DPoP and RAR support arrive with later issues.
fn a5_dpop_and_rar<'a>(_cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let meta = match iss.meta() {
            Ok(m) => m,
            Err(skip) => return Ok(skip),
        };
        let dpop = "dpop_signing_alg_values_supported";
        let rar = "authorization_details_types_supported";
        if !meta.contains_key(dpop) && !meta.contains_key(rar) {
            return Ok(Outcome::skip(format!(
                "neither {dpop} nor {rar} advertised: DPoP and RAR not supported yet"
            )));
        }
        let mut f = Findings::new();
        if meta.contains_key(dpop) {
            match string_array(meta, dpop) {
                Ok(algs) if algs.is_empty() => f.fail(format!("{dpop} is empty")),
                Ok(algs) => {
                    let bad: Vec<&str> = algs
                        .iter()
                        .copied()
                        .filter(|a| !is_asymmetric_alg(a))
                        .collect();
                    if bad.is_empty() {
                        f.note(format!("{dpop}={algs:?}"));
                    } else {
                        f.fail(format!("{dpop} lists non-asymmetric algs {bad:?}"));
                    }
                }
                Err(e) => f.fail(e),
            }
        } else {
            f.note(format!("{dpop} not advertised"));
        }
        if meta.contains_key(rar) {
            match string_array(meta, rar) {
                Ok(types) if types.contains(&"lanyard_action") => {
                    f.note(format!("{rar}={types:?}"))
                }
                Ok(types) => f.fail(format!("{rar} {types:?} lacks lanyard_action")),
                Err(e) => f.fail(e),
            }
        } else {
            f.note(format!("{rar} not advertised"));
        }
        Ok(f.outcome())
    })
}

/// RFC 7517 members a verifier needs to pick a key without guessing, no private or
/// symmetric material, and a `max-age` so verifiers neither hammer the endpoint nor cache
/// a rotated-out set forever.
fn a6_jwks<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let meta = match iss.meta() {
            Ok(m) => m,
            Err(skip) => return Ok(skip),
        };
        let url = endpoint_url("jwks_uri", meta.get("jwks_uri"))?;
        let resp = cx.http.send(Req::get(url.as_str())).await?;
        if resp.status != 200 {
            return Err(format!("GET {url}: expected 200, got {}", resp.summary()));
        }
        let mut f = Findings::new();
        let media = resp.media_type();
        if !is_jwks_media_type(media.as_deref()) {
            f.fail(format!(
                "Content-Type {:?} is neither application/json nor application/jwk-set+json",
                resp.header("content-type").unwrap_or("(none)")
            ));
        }
        match resp.max_age() {
            Some(age) => f.note(format!("max-age={age}")),
            None => f.fail(format!(
                "Cache-Control {:?} has no max-age",
                resp.header_joined("cache-control")
                    .unwrap_or_else(|| "(none)".to_owned())
            )),
        }
        let body = resp.json();
        let keys = match body.as_ref().and_then(|b| b.get("keys")) {
            Some(Value::Array(keys)) if !keys.is_empty() => keys,
            Some(Value::Array(_)) => return Err("keys is empty".to_owned()),
            Some(_) => return Err("keys is not an array".to_owned()),
            None => return Err(format!("body is not a JWK Set: {}", resp.summary())),
        };
        let mut kids = BTreeSet::new();
        for (i, key) in keys.iter().enumerate() {
            let Some(key) = key.as_object() else {
                f.fail(format!("keys[{i}] is not an object"));
                continue;
            };
            let kid = key.get("kid").and_then(Value::as_str).unwrap_or_default();
            let at = if kid.is_empty() {
                format!("keys[{i}]")
            } else {
                format!("key {kid:?}")
            };
            for problem in jwk_problems(key) {
                f.fail(format!("{at}: {problem}"));
            }
            if !kid.is_empty() && !kids.insert(kid) {
                f.fail(format!("{at}: kid is not unique"));
            }
        }
        f.note(format!("{} key(s) {:?}", keys.len(), kids));
        Ok(f.outcome())
    })
}

/// Everything wrong with one published JWK.
fn jwk_problems(key: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for member in ["kid", "kty", "alg"] {
        match key.get(member) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => problems.push(format!("{member} is not a non-empty string")),
            None => problems.push(format!("no {member}")),
        }
    }
    match key.get("use") {
        Some(Value::String(u)) if u == "sig" => {}
        Some(other) => problems.push(format!("use is {other}, not \"sig\"")),
        None => problems.push("no use".to_owned()),
    }
    if let Some(alg) = key.get("alg").and_then(Value::as_str)
        && !is_asymmetric_alg(alg)
    {
        problems.push(format!("alg {alg:?} is not an asymmetric signature alg"));
    }
    // RFC 7518 §6.2.2, §6.3.2 private members, and §6.4.1 `k` (a symmetric key).
    let private: Vec<&str> = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .into_iter()
        .filter(|m| key.contains_key(*m))
        .collect();
    if !private.is_empty() {
        problems.push(format!("publishes private/symmetric members {private:?}"));
    }
    problems
}

/// Every JWT the run was issued (the `access_token` of every successful token response, from
/// any case) is checked against the JWKS of the issuer whose token endpoint issued it: its
/// `kid` is published, its `alg` is that key's `alg`, and the signature verifies. Run on its
/// own (`--only A7`), the case obtains an ID-JAG itself.
fn a7_issued_kid_in_jwks(cx: &Ctx) -> CaseFuture<'_> {
    check(async move {
        let mut issued = issued_jwts(cx);
        let mut obtained_here = false;
        if issued.is_empty() {
            let fx = match Fixture::any(cx) {
                Ok(fx) => fx,
                Err(Outcome::Skip(why)) => {
                    return Ok(Outcome::skip(format!(
                        "no JWT was issued in this run, and none can be obtained: {why}"
                    )));
                }
                Err(other) => return Ok(other),
            };
            if let Err(e) = fx.obtain(cx, &Ask::triage(), Auth::Basic).await {
                return Ok(Outcome::skip(format!(
                    "no JWT was issued in this run, and obtaining an ID-JAG failed (see \
                     D30): {e}"
                )));
            }
            obtained_here = true;
            issued = issued_jwts(cx);
        }
        let mut f = Findings::new();
        let mut jwks_cache: Vec<(String, JwksResult)> = Vec::new();
        let mut counts: Vec<(String, usize, BTreeSet<String>)> = Vec::new();
        for (url, origin, token) in &issued {
            let Some(iss) = cx.issuers.iter().find(|i| {
                i.token_endpoint()
                    .is_ok_and(|te| te.trim_end_matches('/') == url.trim_end_matches('/'))
            }) else {
                f.fail(format!(
                    "{origin}: issued by {url}, no issuer's token_endpoint"
                ));
                continue;
            };
            if !jwks_cache.iter().any(|(label, _)| *label == iss.label) {
                jwks_cache.push((iss.label.clone(), fixture::jwks(cx, iss).await));
            }
            let keys = match jwks_cache.iter().find(|(label, _)| *label == iss.label) {
                Some((_, Ok(keys))) => keys,
                Some((_, Err(e))) => {
                    f.fail(format!("{origin}: {e}"));
                    continue;
                }
                None => continue,
            };
            match fixture::check_against_jwks(token, keys) {
                Ok(kid) => match counts.iter_mut().find(|(l, _, _)| *l == iss.label) {
                    Some((_, n, kids)) => {
                        *n += 1;
                        kids.insert(kid);
                    }
                    None => counts.push((iss.label.clone(), 1, BTreeSet::from([kid]))),
                },
                Err(e) => f.fail(format!("{origin}: {e}")),
            }
        }
        for (label, n, kids) in counts {
            f.note(format!("{n} JWT(s) from {label} verified ({kids:?})"));
        }
        if obtained_here {
            f.note("obtained by this case (no other case issued a token)");
        }
        Ok(f.outcome())
    })
}

/// An issuer's published keys, or why they could not be fetched.
type JwksResult = Result<Vec<Map<String, Value>>, String>;

/// `(request URL, origin, compact JWT)` for every JWT-shaped `access_token` issued so far.
fn issued_jwts(cx: &Ctx) -> Vec<(String, String, String)> {
    cx.http
        .observations()
        .token_successes
        .into_iter()
        .filter_map(|s| {
            let token = s.access_token?;
            jwt::is_compact(&token).then_some((s.url, s.origin, token))
        })
        .collect()
}

fn a8_key_rotation(_cx: &Ctx) -> CaseFuture<'_> {
    check(async {
        Ok(Outcome::skip(
            "needs an operator key rotation; covered by the integration test tests/it/keys.rs",
        ))
    })
}

/// A metadata member that must be a JSON array of strings.
fn string_array<'m>(meta: &'m Map<String, Value>, name: &str) -> Result<Vec<&'m str>, String> {
    match meta.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| format!("{name} has a non-string element {v}"))
            })
            .collect(),
        Some(other) => Err(format!("{name} is not an array: {other}")),
        None => Err(format!("{name} missing")),
    }
}
