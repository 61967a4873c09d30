//! Checklist §3 B: token endpoint hygiene (lines 9–17), run against every issuer's
//! `token_endpoint`.
//!
//! None of these requests authenticates a client: lanyard checks the form (method, content
//! type, size, duplicates) and the grant type before client authentication, so each one
//! must be answered with the form-level error, never 401. Every error response is also held
//! to lanyard's rule that errors are JSON with `Cache-Control: no-store` (checked in
//! [`expect_error`]), and every secret-looking value sent is a fresh marker that B17 looks
//! for in the responses.

use std::time::Duration;

use serde_json::{Map, Value, json};
use url::Url;

use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::Req;
use crate::jwt::{self, Signer};
use crate::oauth::{self, expect_error, marker};

/// Section B lines that probe the token endpoint directly, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "B9",
        line: 9,
        title: "GET /token is refused and issues nothing",
        clause: "6749 §3.2",
        target: Target::EachIssuer(b9_get_refused),
    },
    Case {
        id: "B10",
        line: 10,
        title: "JSON body instead of a form → 400 invalid_request",
        clause: "6749 §3.2, App. B",
        target: Target::EachIssuer(b10_json_body),
    },
    Case {
        id: "B11",
        line: 11,
        title: "missing grant_type → invalid_request; password/unknown → unsupported_grant_type",
        clause: "6749 §5.2",
        target: Target::EachIssuer(b11_grant_type),
    },
    Case {
        id: "B12",
        line: 12,
        title: "repeated grant_type / assertion / subject_token → 400 invalid_request",
        clause: "6749 §3.2",
        target: Target::EachIssuer(b12_duplicates),
    },
    Case {
        id: "B13",
        line: 13,
        title: "HTTP Basic plus client_assertion → 400 invalid_request",
        clause: "6749 §2.3",
        target: Target::EachIssuer(b13_two_auth_methods),
    },
    Case {
        id: "B14",
        line: 14,
        title: "70 KiB body and 17 KiB token → 413/400 quickly, no 5xx",
        clause: "lanyard choice",
        target: Target::EachIssuer(b14_size_limits),
    },
    Case {
        id: "B16",
        line: 16,
        title: "signing key or upstream JWKS unreachable → fail closed",
        clause: "DEVELOPERS \"fail closed\"",
        target: Target::Once(b16_fail_closed),
    },
];

/// Section B lines that report on the traffic of every other case; the registry runs them
/// after all sections.
pub const SUMMARY: &[Case] = &[
    Case {
        id: "B15",
        line: 15,
        title: "every successful token response is JSON with Cache-Control: no-store",
        clause: "6749 §5.1",
        target: Target::Once(b15_success_no_store),
    },
    Case {
        id: "B17",
        line: 17,
        title: "no response echoes a presented assertion, secret or token",
        clause: "lanyard choice",
        target: Target::Once(b17_no_echo),
    },
];

/// How long an oversized request may take to be refused (B14 "quickly").
const QUICKLY: Duration = Duration::from_secs(2);

/// Body size for the whole-body limit (lanyard's limit is 64 KiB).
const BIG_BODY: usize = 70 * 1024;

/// Size for a single assertion / subject token (lanyard's limit is 16 KiB).
const BIG_TOKEN: usize = 17 * 1024;

/// The issuer's token endpoint, or return the SKIP explaining why there is none.
macro_rules! token_endpoint_or_skip {
    ($iss:expr) => {
        match $iss.token_endpoint() {
            Ok(te) => te,
            Err(skip) => return Ok(skip),
        }
    };
}

/// The issuer's roles, or return the SKIP explaining they are unknown.
macro_rules! roles_or_skip {
    ($iss:expr) => {
        match $iss.known_roles() {
            Ok(roles) => roles,
            Err(skip) => return Ok(skip),
        }
    };
}

/// RFC 6749 §3.2: the token endpoint is POST only. The GET carries a grant in its query so
/// that a server which ignores the method would have something to issue a token for.
fn b9_get_refused<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = token_endpoint_or_skip!(iss);
        let role = iss.roles.first().copied().unwrap_or(Role::As);
        let token = marker("get");
        let mut url = Url::parse(&te).map_err(|e| format!("token_endpoint: {e}"))?;
        url.query_pairs_mut()
            .extend_pairs(role.grant_params(cx, &token));
        let resp = cx.http.send(Req::get(url.as_str()).secret(&token)).await?;
        if resp.status == 405 {
            let mut f = Findings::new();
            f.record("GET", expect_error(&resp, &[405], &[]));
            // RFC 9110 §15.5.6: a 405 MUST say which methods are allowed.
            let allow = resp.header_joined("allow").unwrap_or_default();
            if !allow
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case("POST"))
            {
                f.fail(format!(
                    "405 without an Allow header listing POST (Allow: {allow:?})"
                ));
            }
            Ok(f.outcome())
        } else {
            expect_error(&resp, &[405, 400], &["invalid_request"]).map(Outcome::pass)
        }
    })
}

/// A JSON body is not `application/x-www-form-urlencoded` (RFC 6749 §4.1.3 and every
/// grant's request format), so the request is malformed, not an unknown grant.
fn b10_json_body<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = token_endpoint_or_skip!(iss);
        let role = iss.roles.first().copied().unwrap_or(Role::As);
        let token = marker("json");
        let body: Map<String, Value> = role
            .grant_params(cx, &token)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let bytes = serde_json::to_vec(&body).map_err(|e| format!("encoding JSON: {e}"))?;
        let req = Req::post(te).raw("application/json", bytes).secret(&token);
        let resp = cx.http.send(req).await?;
        expect_error(&resp, &[400], &["invalid_request"]).map(Outcome::pass)
    })
}

/// RFC 6749 §5.2 distinguishes a missing grant type (malformed request) from one the
/// server does not support. §3.2: a parameter with an empty value counts as absent.
fn b11_grant_type<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = token_endpoint_or_skip!(iss);
        let password = marker("password");
        let probes = [
            (
                "no grant_type",
                Req::post(&te).param("scope", "openid"),
                "invalid_request",
            ),
            (
                "empty grant_type",
                Req::post(&te)
                    .param("grant_type", "")
                    .param("scope", "openid"),
                "invalid_request",
            ),
            (
                "grant_type=password",
                Req::post(&te)
                    .param("grant_type", "password")
                    .param("username", "conformance")
                    .param("password", &password)
                    .secret(&password),
                "unsupported_grant_type",
            ),
            (
                "grant_type=urn:example:unknown",
                Req::post(&te).param("grant_type", "urn:example:unknown"),
                "unsupported_grant_type",
            ),
        ];
        let mut f = Findings::new();
        for (label, req, code) in probes {
            f.record(label, probe(cx, req, &[400], &[code]).await);
        }
        Ok(f.outcome())
    })
}

/// RFC 6749 §3.2: request parameters MUST NOT be included more than once. The duplicate is
/// the only defect in each request, and lanyard finds it before client authentication.
fn b12_duplicates<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = token_endpoint_or_skip!(iss);
        let roles = roles_or_skip!(iss);
        let mut f = Findings::new();
        for &role in roles {
            let token = marker("dup");
            let params = role.grant_params(cx, &token);

            let twice_grant = Req::post(&te)
                .param("grant_type", role.grant_type())
                .params(&params)
                .secret(&token);
            f.record(
                &format!("grant_type twice ({})", role.name()),
                probe(cx, twice_grant, &[400], &["invalid_request"]).await,
            );

            let second = marker("dup");
            let twice_token = Req::post(&te)
                .params(&params)
                .param(role.token_param(), &second)
                .secret(&token)
                .secret(&second);
            f.record(
                &format!("{} twice", role.token_param()),
                probe(cx, twice_token, &[400], &["invalid_request"]).await,
            );
        }
        Ok(f.outcome())
    })
}

/// RFC 6749 §2.3: a client uses one authentication method per request. The client assertion
/// is a real, signed JWT (from a key no server trusts) so the request is well-formed in
/// every respect except the second method.
fn b13_two_auth_methods<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = token_endpoint_or_skip!(iss);
        let Some(&role) = roles_or_skip!(iss).first() else {
            return Ok(Outcome::skip("issuer role unknown"));
        };
        let client_id = marker("client");
        let secret = marker("secret");
        let token = marker("grant");
        let signer = Signer::ephemeral_es256(&marker("kid"))?;
        let now = jwt::now();
        let assertion = signer.sign(
            "JWT",
            json!({
                "iss": client_id, "sub": client_id, "aud": iss.issuer,
                "jti": marker("jti"), "iat": now, "exp": now + 60,
            }),
        )?;
        let req = Req::post(&te)
            .params(&role.grant_params(cx, &token))
            .param("client_assertion_type", oauth::CLIENT_ASSERTION_JWT_BEARER)
            .param("client_assertion", &assertion)
            .basic(&client_id, &secret)
            .secret(&token)
            .secret(jwt::signature_segment(&assertion));
        probe(cx, req, &[400], &["invalid_request"])
            .await
            .map(Outcome::pass)
    })
}

/// lanyard refuses a body over 64 KiB and a single assertion or subject token over 16 KiB,
/// before parsing any JWT: oversized input must cost the server next to nothing.
fn b14_size_limits<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = token_endpoint_or_skip!(iss);
        let roles = roles_or_skip!(iss);
        let mut f = Findings::new();
        for &role in roles {
            let param = role.token_param();
            for (label, size) in [
                (format!("70 KiB body ({param})"), BIG_BODY),
                (format!("17 KiB {param}"), BIG_TOKEN),
            ] {
                let mark = marker("big");
                let token = padded(&mark, size);
                let req = Req::post(&te)
                    .params(&role.grant_params(cx, &token))
                    .secret(&mark);
                let result = match cx.http.send(req).await {
                    Ok(resp) => {
                        let mut result = expect_error(&resp, &[413, 400], &[]);
                        if resp.elapsed > QUICKLY {
                            let slow = format!("took {:?} (limit {QUICKLY:?})", resp.elapsed);
                            result = match result {
                                Ok(_) => Err(slow),
                                Err(e) => Err(format!("{e}, {slow}")),
                            };
                        }
                        result.map(|ok| format!("{ok} in {} ms", resp.elapsed.as_millis()))
                    }
                    Err(e) => Err(e),
                };
                f.record(&label, result);
            }
        }
        Ok(f.outcome())
    })
}

/// `prefix` followed by filler up to `size` bytes (the prefix is the marker B17 looks for).
fn padded(prefix: &str, size: usize) -> String {
    let mut s = String::with_capacity(size.max(prefix.len()));
    s.push_str(prefix);
    while s.len() < size {
        s.push('A');
    }
    s
}

fn b16_fail_closed(_cx: &Ctx) -> CaseFuture<'_> {
    check(async {
        Ok(Outcome::skip(
            "needs fault injection; covered by integration tests",
        ))
    })
}

/// Reports on every token response the run produced, whichever case produced it.
fn b15_success_no_store(cx: &Ctx) -> CaseFuture<'_> {
    check(async move {
        let successes = cx.http.observations().token_successes;
        if successes.is_empty() {
            return Ok(Outcome::skip(
                "no token flow available yet (no successful token response observed)",
            ));
        }
        let mut f = Findings::new();
        for s in &successes {
            if s.content_type.as_deref() != Some("application/json") {
                f.fail(format!("{}: Content-Type {:?}", s.origin, s.content_type));
            }
            if !s.no_store {
                f.fail(format!("{}: no Cache-Control: no-store", s.origin));
            }
        }
        f.note(format!(
            "{} successful token response(s) checked",
            successes.len()
        ));
        Ok(f.outcome())
    })
}

/// Reports on every response to a request that carried a secret marker, from any case.
/// Only the wire is visible here; log lines are the integration tests' business.
fn b17_no_echo(cx: &Ctx) -> CaseFuture<'_> {
    check(async move {
        let obs = cx.http.observations();
        if obs.secret_bearing == 0 {
            return Ok(Outcome::skip(
                "no request carried a secret marker (the cases that send them were skipped)",
            ));
        }
        if obs.leaks.is_empty() {
            Ok(Outcome::pass(format!(
                "{} response(s) checked, none echoed a sent secret",
                obs.secret_bearing
            )))
        } else {
            Err(obs.leaks.join("; "))
        }
    })
}

/// Sends a request that must be refused and checks the refusal. A 401 gets a hint, because
/// it means the server authenticated the client before checking the form.
async fn probe(cx: &Ctx, req: Req, statuses: &[u16], codes: &[&str]) -> Result<String, String> {
    let resp = cx.http.send(req).await?;
    expect_error(&resp, statuses, codes).map_err(|e| {
        if resp.status == 401 {
            format!("{e} (form and grant_type checks must come before client authentication)")
        } else {
            e
        }
    })
}
