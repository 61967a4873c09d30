//! Checklist §3 D: token exchange → ID-JAG at the IdP-role issuer (lines 30–55).
//!
//! Unless a case says otherwise, each request is triage-bot (HTTP Basic) exchanging a fresh
//! dev IdP ID token of alice for an ID-JAG to the AS-role issuer, for the GitHub resource,
//! in the eng channel, asking for what that channel grants; the parameter under test is the
//! only thing changed. Where the checklist allows two codes (D1: `invalid_grant` or
//! RFC 8693's `invalid_request` for a bad subject token; D4: `access_denied` or
//! `invalid_grant` for a policy denial), either passes.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::fixture::{
    self, ALICE, Agent, Ask, Auth, BOB, CH_ENG, DEPLOY, Fixture, Form, GITHUB, Issued, TRIAGE,
    dpop_proof, need, proof_claims,
};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::Req;
use crate::jwt::{self, Signer};
use crate::oauth::{self, expect_error, marker};

/// Codes a bad subject token may get (D1).
const BAD_SUBJECT: &[&str] = &["invalid_grant", "invalid_request"];

/// Section D, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "D30",
        line: 30,
        title: "valid exchange → 200 id-jag, token_type N_A, JWT, expires_in ≤ 300, no refresh_token",
        clause: "ID-JAG §4.3.4",
        target: Target::Role(Role::Idp, d30_happy_path),
    },
    Case {
        id: "D31",
        line: 31,
        title: "narrowed grant → response scope = granted set = ID-JAG scope",
        clause: "8693 §2.2.1; ID-JAG §4.3.3",
        target: Target::Role(Role::Idp, d31_narrowed_scope),
    },
    Case {
        id: "D32",
        line: 32,
        title: "missing subject_token or subject_token_type → 400 invalid_request",
        clause: "8693 §2.1",
        target: Target::Role(Role::Idp, d32_missing_subject),
    },
    Case {
        id: "D33",
        line: 33,
        title: "missing audience → 400 invalid_request",
        clause: "ID-JAG §4.3",
        target: Target::Role(Role::Idp, d33_missing_audience),
    },
    Case {
        id: "D34",
        line: 34,
        title: "missing or non-id-jag requested_token_type → 400 invalid_request",
        clause: "lanyard choice",
        target: Target::Role(Role::Idp, d34_requested_token_type),
    },
    Case {
        id: "D35",
        line: 35,
        title: "subject_token_type access_token / jwt / saml2 (SAML off) → 400 invalid_request",
        clause: "8693 §2.2.2",
        target: Target::Role(Role::Idp, d35_subject_token_type),
    },
    Case {
        id: "D36",
        line: 36,
        title: "subject token not a well-formed JWT → 400 invalid_grant",
        clause: "D1",
        target: Target::Role(Role::Idp, d36_not_a_jwt),
    },
    Case {
        id: "D37",
        line: 37,
        title: "ID token from an untrusted iss → 400 invalid_grant",
        clause: "D1",
        target: Target::Role(Role::Idp, d37_untrusted_iss),
    },
    Case {
        id: "D38",
        line: 38,
        title: "ID token with a bad signature → 400 invalid_grant",
        clause: "D1",
        target: Target::Role(Role::Idp, d38_bad_signature),
    },
    Case {
        id: "D39",
        line: 39,
        title: "ID token with alg:none → 400 invalid_grant",
        clause: "D1",
        target: Target::Role(Role::Idp, d39_alg_none),
    },
    Case {
        id: "D40",
        line: 40,
        title: "ID token expired beyond leeway → 400 invalid_grant",
        clause: "D1",
        target: Target::Role(Role::Idp, d40_expired),
    },
    Case {
        id: "D41",
        line: 41,
        title: "ID token aud ≠ the agent's IdP client id → 400 invalid_grant",
        clause: "ID-JAG §4.3.3",
        target: Target::Role(Role::Idp, d41_wrong_aud),
    },
    Case {
        id: "D42",
        line: 42,
        title: "multi-aud ID token without azp = agent → 400 invalid_grant",
        clause: "OIDC Core §3.1.3.7; lanyard choice",
        target: Target::Role(Role::Idp, d42_multi_aud),
    },
    Case {
        id: "D43",
        line: 43,
        title: "an ID-JAG (or at+jwt) sent as an id_token → 400 invalid_grant",
        clause: "8725 §3.12",
        target: Target::Role(Role::Idp, d43_id_jag_as_subject),
    },
    Case {
        id: "D44",
        line: 44,
        title: "audience matching no configured RAS → 400 invalid_target",
        clause: "8693 §2.2.2",
        target: Target::Role(Role::Idp, d44_unknown_audience),
    },
    Case {
        id: "D45",
        line: 45,
        title: "two audience parameters → 400 invalid_target",
        clause: "chaining §2.3.3",
        target: Target::Role(Role::Idp, d45_two_audiences),
    },
    Case {
        id: "D46",
        line: 46,
        title: "resource not governed by the audience RAS → 400 invalid_target",
        clause: "MCP EMA §7.6.1; pending ID-JAG -05",
        target: Target::Role(Role::Idp, d46_foreign_resource),
    },
    Case {
        id: "D47",
        line: 47,
        title: "relative resource or one with a fragment → 400 invalid_target",
        clause: "8707 §2",
        target: Target::Role(Role::Idp, d47_bad_resource),
    },
    Case {
        id: "D48",
        line: 48,
        title: "no requested scope allowed by policy → 400 invalid_scope",
        clause: "6749 §5.2",
        target: Target::Role(Role::Idp, d48_scope_not_allowed),
    },
    Case {
        id: "D49",
        line: 49,
        title: "bad authorization_details → 400 invalid_authorization_details",
        clause: "9396 §5",
        target: Target::Role(Role::Idp, d49_bad_authorization_details),
    },
    Case {
        id: "D50",
        line: 50,
        title: "actor_token without actor_token_type, or the type alone → 400 invalid_request",
        clause: "8693 §2.1",
        target: Target::Role(Role::Idp, d50_actor_token),
    },
    Case {
        id: "D51",
        line: 51,
        title: "may_act not naming the agent → 400 invalid_request",
        clause: "8693 §4.4, §2.2.2",
        target: Target::Role(Role::Idp, d51_may_act),
    },
    Case {
        id: "D52",
        line: 52,
        title: "policy gives the agent nothing for this human → 400 access_denied",
        clause: "D4",
        target: Target::Role(Role::Idp, d52_policy_denial),
    },
    Case {
        id: "D53",
        line: 53,
        title: "auth_time older than max_age → 400 insufficient_user_authentication + max_age",
        clause: "ID-JAG §9.2",
        target: Target::Role(Role::Idp, d53_step_up),
    },
    Case {
        id: "D54",
        line: 54,
        title: "valid DPoP proof on TE → ID-JAG cnf.jkt = proof key thumbprint",
        clause: "ID-JAG §9.8; 9449 §6.1",
        target: Target::Role(Role::Idp, d54_dpop_bound),
    },
    Case {
        id: "D55",
        line: 55,
        title: "invalid DPoP proof on TE → 400 invalid_dpop_proof, nothing issued",
        clause: "9449 §5",
        target: Target::Role(Role::Idp, d55_bad_dpop),
    },
];

/// The default request's agent and fixture, or return the SKIP.
macro_rules! setup {
    ($cx:expr, $iss:expr) => {{
        let fx = need!(Fixture::for_idp($cx, $iss));
        need!(fx.agent(TRIAGE));
        fx
    }};
}

/// Sends the default request (triage-bot, Basic, fresh ID token) with `edit` applied to
/// its form, and checks the refusal.
async fn probe(
    cx: &Ctx,
    fx: &Fixture,
    edit: impl FnOnce(Form) -> Form,
    codes: &[&str],
) -> Result<String, String> {
    probe_as(cx, fx, &Ask::triage(), edit, codes).await
}

/// [`probe`] for another ask (its agent authenticates with Basic).
async fn probe_as(
    cx: &Ctx,
    fx: &Fixture,
    ask: &Ask<'_>,
    edit: impl FnOnce(Form) -> Form,
    codes: &[&str],
) -> Result<String, String> {
    let agent = agent(fx, ask.agent)?;
    let id_token = fx.id_token_for(cx, ask).await?;
    let form = edit(fx.te_form(ask, &id_token));
    let resp = cx
        .http
        .send(fx.te_request(&form, agent, Auth::Basic)?)
        .await?;
    expect_error(&resp, &[400], codes)
}

/// Sends the default request with `subject_token` (whatever it is) in place of a fresh ID
/// token, and expects a bad-subject refusal (D1).
async fn subject_probe(cx: &Ctx, fx: &Fixture, subject_token: &str) -> Result<String, String> {
    let agent = agent(fx, TRIAGE)?;
    let form = fx.te_form(&Ask::triage(), subject_token);
    let resp = cx
        .http
        .send(fx.te_request(&form, agent, Auth::Basic)?)
        .await?;
    expect_error(&resp, &[400], BAD_SUBJECT)
}

fn agent<'f>(fx: &'f Fixture, id: &str) -> Result<&'f Agent, String> {
    fx.agent(id)
        .map_err(|_| format!("bootstrap lists no demo agent {id}"))
}

/// A fresh real ID token (alice → triage-bot) decoded: header and claims to forge from.
async fn real_id_token(cx: &Ctx, fx: &Fixture) -> Result<(String, jwt::Decoded), String> {
    let token = fx.id_token_for(cx, &Ask::triage()).await?;
    let decoded = jwt::decode(&token).map_err(|e| format!("dev IdP ID token: {e}"))?;
    Ok((token, decoded))
}

/// The same ID-token claims, re-stamped now (so only the property under test is wrong).
fn fresh_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    let now = jwt::now();
    let mut c = claims.clone();
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + 600));
    c.insert("jti".into(), json!(marker("idtjti")));
    c
}

/// Every check D30 makes on one successful token-exchange response.
fn token_exchange_success(issued: &Issued) -> Result<String, String> {
    let b = &issued.body;
    let mut problems = Vec::new();
    match b.get("issued_token_type") {
        Some(Value::String(t)) if t == oauth::TOKEN_TYPE_ID_JAG => {}
        other => problems.push(format!("issued_token_type is {other:?}")),
    }
    match b.get("token_type") {
        Some(Value::String(t)) if t == "N_A" => {}
        other => problems.push(format!("token_type is {other:?}, not \"N_A\"")),
    }
    match b.get("expires_in").and_then(Value::as_i64) {
        Some(e) if e > 0 && e <= 300 => {}
        _ => problems.push(format!(
            "expires_in is {:?}, not a number in 1..=300",
            b.get("expires_in")
        )),
    }
    if b.contains_key("refresh_token") {
        problems.push("a refresh_token was returned".to_owned());
    }
    if problems.is_empty() {
        Ok(format!(
            "200 expires_in={} scope={}",
            b.get("expires_in")
                .map_or_else(String::new, Value::to_string),
            b.get("scope")
                .map_or_else(|| "(absent)".to_owned(), Value::to_string)
        ))
    } else {
        Err(problems.join(", "))
    }
}

fn d30_happy_path<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        need!(fx.agent(TRIAGE));
        need!(fx.agent(DEPLOY));
        let mut f = Findings::new();
        for (label, ask, auth) in [
            (
                "triage-bot, client_secret_basic",
                Ask::triage(),
                Auth::Basic,
            ),
            ("triage-bot, client_secret_post", Ask::triage(), Auth::Post),
            ("deploy-bot, private_key_jwt", Ask::deploy(), Auth::Key),
        ] {
            let result = match fx.obtain(cx, &ask, auth).await {
                Ok(issued) => token_exchange_success(&issued),
                Err(e) => Err(e),
            };
            f.record(label, result);
        }
        Ok(f.outcome())
    })
}

/// Space-separated scope as a set.
fn scope_set(s: &str) -> BTreeSet<&str> {
    s.split(' ').filter(|t| !t.is_empty()).collect()
}

/// triage-bot asks for all four GitHub actions in the eng channel: pull_request.create
/// needs approval (held back) and pull_request.merge is on its never list.
fn d31_narrowed_scope<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        // pull_request.merge is on triage-bot's never list (pull_request.create is left out:
        // asking for it explicitly starts a just-in-time approval instead).
        let requested = "repo.read issue.comment pull_request.merge";
        let ask = Ask {
            scope: Some(requested),
            ..Ask::triage()
        };
        let issued = fx.obtain(cx, &ask, Auth::Basic).await?;
        let Some(Value::String(granted)) = issued.body.get("scope") else {
            return Err(format!(
                "response has no string scope although fewer scopes than requested can be \
                 granted ({:?})",
                issued.body.get("scope")
            ));
        };
        let want = scope_set(requested);
        let got = scope_set(granted);
        if got.is_empty() || !got.is_subset(&want) || got == want {
            return Err(format!(
                "requested {requested:?}, response scope {granted:?}: expected a non-empty \
                 strict subset (pull_request.create needs approval, pull_request.merge is \
                 never granted to triage-bot)"
            ));
        }
        match issued.claim("scope") {
            Some(Value::String(claim)) if claim == granted => {
                Ok(Outcome::pass(format!("granted {granted:?} = ID-JAG scope")))
            }
            Some(Value::String(claim)) if scope_set(claim) == got => Ok(Outcome::pass(format!(
                "granted {granted:?} = ID-JAG scope {claim:?} (same set, other order)"
            ))),
            other => Err(format!(
                "response scope {granted:?} but ID-JAG scope claim {other:?}"
            )),
        }
    })
}

fn d32_missing_subject<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let mut f = Findings::new();
        for name in ["subject_token", "subject_token_type"] {
            f.record(
                &format!("no {name}"),
                probe(cx, &fx, |form| form.without(name), &["invalid_request"]).await,
            );
        }
        Ok(f.outcome())
    })
}

fn d33_missing_audience<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        probe(
            cx,
            &fx,
            |form| form.without("audience"),
            &["invalid_request"],
        )
        .await
        .map(Outcome::pass)
    })
}

fn d34_requested_token_type<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let mut f = Findings::new();
        f.record(
            "no requested_token_type",
            probe(
                cx,
                &fx,
                |form| form.without("requested_token_type"),
                &["invalid_request"],
            )
            .await,
        );
        f.record(
            "requested_token_type=…:access_token",
            probe(
                cx,
                &fx,
                |form| form.with("requested_token_type", fixture::TOKEN_TYPE_ACCESS_TOKEN),
                &["invalid_request"],
            )
            .await,
        );
        Ok(f.outcome())
    })
}

/// The dev server does not enable SAML, so `saml2` is unsupported there.
fn d35_subject_token_type<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let mut f = Findings::new();
        for (label, ty) in [
            ("…:access_token", fixture::TOKEN_TYPE_ACCESS_TOKEN),
            ("…:jwt", fixture::TOKEN_TYPE_JWT),
            ("…:saml2 (SAML not enabled)", fixture::TOKEN_TYPE_SAML2),
        ] {
            f.record(
                label,
                probe(
                    cx,
                    &fx,
                    |form| form.with("subject_token_type", ty),
                    &["invalid_request"],
                )
                .await,
            );
        }
        Ok(f.outcome())
    })
}

fn d36_not_a_jwt<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let mut f = Findings::new();
        let opaque = marker("opaque");
        let three = format!("{}.{}.{}", marker("h"), marker("p"), marker("s"));
        let two = format!("eyJhbGciOiJSUzI1NiJ9.{}", marker("p"));
        for (label, token) in [
            ("opaque string", opaque.as_str()),
            ("three non-JSON segments", three.as_str()),
            ("two segments", two.as_str()),
        ] {
            f.record(label, subject_probe(cx, &fx, token).await);
        }
        Ok(f.outcome())
    })
}

/// The real ID token's claims, re-signed by a key of the runner's, with `iss` an issuer no
/// one configured (under .invalid, so a server that tried to discover it cannot).
fn d37_untrusted_iss<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let (_, real) = real_id_token(cx, &fx).await?;
        let mut claims = fresh_claims(&real.claims);
        claims.insert("iss".into(), json!("https://untrusted-idp.invalid/"));
        let signer = Signer::ephemeral_rs256(&marker("kid"))?;
        let token = signer.sign("JWT", Value::Object(claims))?;
        subject_probe(cx, &fx, &token).await.map(Outcome::pass)
    })
}

/// The dev IdP's issuer and claims with a signature that is not the dev IdP's: a runner
/// key under the dev IdP's own kid, a runner key under an unknown kid, and a real ID token
/// with one signature bit flipped.
fn d38_bad_signature<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let (_, real) = real_id_token(cx, &fx).await?;
        let real_kid = real
            .header
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or("no-kid")
            .to_owned();
        let claims = Value::Object(fresh_claims(&real.claims));
        let mut f = Findings::new();
        let same_kid = Signer::ephemeral_rs256(&real_kid)?.sign("JWT", claims.clone())?;
        f.record(
            "runner key under the dev IdP's kid",
            subject_probe(cx, &fx, &same_kid).await,
        );
        let other_kid = Signer::ephemeral_rs256(&marker("kid"))?.sign("JWT", claims)?;
        f.record(
            "runner key under an unknown kid",
            subject_probe(cx, &fx, &other_kid).await,
        );
        let (fresh, _) = real_id_token(cx, &fx).await?;
        let flipped = jwt::flip_signature_bit(&fresh)?;
        f.record(
            "real ID token, one signature bit flipped",
            subject_probe(cx, &fx, &flipped).await,
        );
        Ok(f.outcome())
    })
}

fn d39_alg_none<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let (real_token, real) = real_id_token(cx, &fx).await?;
        let mut header = real.header.clone();
        header.insert("alg".into(), json!("none"));
        let header = Value::Object(header);
        let claims = Value::Object(fresh_claims(&real.claims));
        let mut f = Findings::new();
        let empty_sig = jwt::unsigned(&header, &claims, "")?;
        f.record(
            "alg none, empty signature",
            subject_probe(cx, &fx, &empty_sig).await,
        );
        let kept_sig = jwt::unsigned(&header, &claims, jwt::signature_segment(&real_token))?;
        f.record(
            "alg none, real signature kept",
            subject_probe(cx, &fx, &kept_sig).await,
        );
        Ok(f.outcome())
    })
}

fn d40_expired<'a>(_cx: &'a Ctx, _iss: &'a Issuer) -> CaseFuture<'a> {
    check(async {
        Ok(Outcome::skip(
            "needs an IdP token expired beyond leeway (the dev IdP mints exp = now+600 and a \
             self-signed one fails the signature first); covered by unit tests \
             (core::validate time table)",
        ))
    })
}

fn d41_wrong_aud<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let deploy = need!(fx.agent(DEPLOY));
        // A real ID token of alice addressed to deploy-bot's SSO client, sent by triage-bot.
        let token = fx.id_token(cx, ALICE, &deploy.idp_client_id, None).await?;
        subject_probe(cx, &fx, &token)
            .await
            .map(|ok| Outcome::pass(format!("aud={}: {ok}", deploy.idp_client_id)))
    })
}

fn d42_multi_aud<'a>(_cx: &'a Ctx, _iss: &'a Issuer) -> CaseFuture<'a> {
    check(async {
        Ok(Outcome::skip(
            "needs a multi-audience ID token from a trusted IdP: the dev IdP mints a single \
             aud and a self-signed one fails the signature first; covered by unit tests",
        ))
    })
}

/// A fresh ID-JAG, and a lanyard access token (`at+jwt`) obtained for it from the AS-role
/// issuer when that leg is available, each presented as an `id_token`.
fn d43_id_jag_as_subject<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let agent = agent(&fx, TRIAGE)?;
        let issued = fx.obtain(cx, &Ask::triage(), Auth::Basic).await?;
        let mut f = Findings::new();
        f.record(
            "fresh ID-JAG as id_token",
            subject_probe(cx, &fx, &issued.jwt).await,
        );
        match fx.access_token(cx, agent, &issued).await {
            Ok(at) => {
                let typ = jwt::decode(&at)
                    .ok()
                    .and_then(|d| d.header.get("typ").cloned())
                    .unwrap_or(Value::Null);
                f.record(
                    &format!("access token (typ {typ}) as id_token"),
                    subject_probe(cx, &fx, &at).await,
                );
            }
            Err(e) => f.note(format!("no access token to present ({e}): not tried")),
        }
        Ok(f.outcome())
    })
}

fn d44_unknown_audience<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        probe(
            cx,
            &fx,
            |form| form.with("audience", "https://unknown-as.example/"),
            &["invalid_target"],
        )
        .await
        .map(Outcome::pass)
    })
}

fn d45_two_audiences<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let audience = fx.audience.clone();
        let mut f = Findings::new();
        f.record(
            "the AS issuer twice",
            probe(
                cx,
                &fx,
                |form| form.plus("audience", &audience),
                &["invalid_target"],
            )
            .await,
        );
        f.record(
            "the AS issuer and another",
            probe(
                cx,
                &fx,
                |form| form.plus("audience", "https://other-as.example/"),
                &["invalid_target"],
            )
            .await,
        );
        Ok(f.outcome())
    })
}

/// The demo has one RAS, so no resource is governed by another configured AS; a resource
/// governed by no configured AS is what can be sent.
fn d46_foreign_resource<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        probe(
            cx,
            &fx,
            |form| form.with("resource", "https://unknown.example/"),
            &["invalid_target"],
        )
        .await
        .map(|ok| {
            Outcome::pass(format!(
                "{ok} (resource governed by no configured AS; the demo has no second AS)"
            ))
        })
    })
}

fn d47_bad_resource<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let mut f = Findings::new();
        let fragment = format!("{GITHUB}#frag");
        for (label, resource) in [("/relative", "/relative"), ("with #frag", &fragment)] {
            f.record(
                label,
                probe(
                    cx,
                    &fx,
                    |form| form.with("resource", resource),
                    &["invalid_target"],
                )
                .await,
            );
        }
        Ok(f.outcome())
    })
}

fn d48_scope_not_allowed<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        probe(
            cx,
            &fx,
            |form| form.with("scope", "admin.nuke"),
            &["invalid_scope"],
        )
        .await
        .map(Outcome::pass)
    })
}

fn d49_bad_authorization_details<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let element =
            json!({"type": "lanyard_action", "actions": ["repo.read"], "locations": [GITHUB]});
        let mut f = Findings::new();
        let probes = [
            ("invalid JSON", "[{\"type\":".to_owned()),
            ("an object, not an array", element.to_string()),
            (
                "an element without type",
                json!([{"actions": ["repo.read"], "locations": [GITHUB]}]).to_string(),
            ),
            (
                "an element with a non-string type",
                json!([{"type": 5, "actions": ["repo.read"], "locations": [GITHUB]}]).to_string(),
            ),
            (
                "type \"other\" (not supported)",
                json!([{"type": "other", "actions": ["repo.read"], "locations": [GITHUB]}])
                    .to_string(),
            ),
        ];
        for (label, value) in probes {
            f.record(
                label,
                probe(
                    cx,
                    &fx,
                    |form| form.with("authorization_details", &value),
                    &["invalid_authorization_details"],
                )
                .await,
            );
        }
        Ok(f.outcome())
    })
}

fn d50_actor_token<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let actor = marker("actor");
        let mut f = Findings::new();
        f.record(
            "actor_token alone",
            probe(
                cx,
                &fx,
                |form| form.plus("actor_token", &actor),
                &["invalid_request"],
            )
            .await,
        );
        f.record(
            "actor_token_type alone",
            probe(
                cx,
                &fx,
                |form| form.plus("actor_token_type", fixture::TOKEN_TYPE_ACCESS_TOKEN),
                &["invalid_request"],
            )
            .await,
        );
        Ok(f.outcome())
    })
}

fn d51_may_act<'a>(_cx: &'a Ctx, _iss: &'a Issuer) -> CaseFuture<'a> {
    check(async {
        Ok(Outcome::skip(
            "needs an IdP that issues may_act; covered by unit/integration tests",
        ))
    })
}

/// bob is not in group eng, which the eng channel requires of its members.
fn d52_policy_denial<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        need!(fx.human(BOB));
        let ask = Ask {
            user: BOB,
            channel: Some(CH_ENG),
            ..Ask::triage()
        };
        probe_as(
            cx,
            &fx,
            &ask,
            |form| form,
            &["access_denied", "invalid_grant"],
        )
        .await
        .map(|ok| Outcome::pass(format!("bob in {CH_ENG}: {ok}")))
    })
}

fn d53_step_up<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        let agent = agent(&fx, TRIAGE)?;
        let max_age = fx.max_age.unwrap_or(3600);
        let ago = max_age * 2;
        let ask = Ask::triage();
        let id_token = fx
            .id_token(cx, ask.user, &agent.idp_client_id, Some(ago))
            .await?;
        let form = fx.te_form(&ask, &id_token);
        let resp = cx
            .http
            .send(fx.te_request(&form, agent, Auth::Basic)?)
            .await?;
        let ok = expect_error(&resp, &[400], &["insufficient_user_authentication"])?;
        match resp.json().as_ref().and_then(|b| b.get("max_age")) {
            Some(v) if v.as_u64().is_some() => Ok(Outcome::pass(format!(
                "auth_time {ago} s ago: {ok}, max_age={v} (configured {max_age})"
            ))),
            Some(v) => Err(format!("{ok} but max_age is not a number: {v}")),
            None => Err(format!(
                "{ok} but the body has no max_age (SHOULD include it)"
            )),
        }
    })
}

/// The IdP issuer's advertised DPoP algorithms, or the SKIP when it advertises none.
fn dpop_algs(iss: &Issuer) -> Result<Vec<String>, Outcome> {
    let algs: Vec<String> = iss
        .metadata
        .as_ref()
        .and_then(|m| m.get("dpop_signing_alg_values_supported"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if algs.is_empty() {
        Err(Outcome::skip(
            "DPoP not advertised (no dpop_signing_alg_values_supported in the IdP metadata)",
        ))
    } else if !algs.iter().any(|a| a == "ES256") {
        Err(Outcome::skip(format!(
            "DPoP advertised with {algs:?}, but this runner signs proofs with ES256 only"
        )))
    } else {
        Ok(algs)
    }
}

/// The default exchange with a `DPoP` header.
async fn dpop_exchange(cx: &Ctx, fx: &Fixture, proof: &str) -> Result<crate::http::Resp, String> {
    let ask = Ask::triage();
    let agent = agent(fx, TRIAGE)?;
    let id_token = fx.id_token_for(cx, &ask).await?;
    let req: Req = fx
        .te_request(&fx.te_form(&ask, &id_token), agent, Auth::Basic)?
        .header("DPoP", proof)
        .secret(jwt::signature_segment(proof));
    cx.http.send(req).await
}

fn d54_dpop_bound<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        need!(dpop_algs(iss));
        let signer = Signer::ephemeral_es256(&marker("dpopkid"))?;
        let jkt = jwt::thumbprint(signer.public_jwk().ok_or("no public JWK")?)?;
        let proof = dpop_proof(&signer, &proof_claims(&fx.token_endpoint))?;
        let resp = dpop_exchange(cx, &fx, &proof).await?;
        let issued = Issued::from_response(&resp, String::new())?;
        let mut f = Findings::new();
        match issued.body.get("token_type") {
            Some(Value::String(t)) if t == "N_A" => {}
            other => f.fail(format!(
                "token_type is {other:?}: it stays N_A with DPoP (ID-JAG §4.3.4)"
            )),
        }
        match issued.claim("cnf").and_then(|c| c.get("jkt")) {
            Some(Value::String(got)) if *got == jkt => f.note(format!("cnf.jkt={jkt}")),
            Some(other) => f.fail(format!("cnf.jkt is {other}, expected {jkt:?}")),
            None => f.fail(format!(
                "ID-JAG has no cnf.jkt (cnf={:?}); expected {jkt:?}",
                issued.claim("cnf")
            )),
        }
        Ok(f.outcome())
    })
}

fn d55_bad_dpop<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = setup!(cx, iss);
        need!(dpop_algs(iss));
        let signer = Signer::ephemeral_es256(&marker("dpopkid"))?;
        let te = fx.token_endpoint.clone();
        let mut proofs: Vec<(&str, String)> = Vec::new();
        let mut get = proof_claims(&te);
        get["htm"] = json!("GET");
        proofs.push(("htm=GET", dpop_proof(&signer, &get)?));
        proofs.push((
            "htu of another endpoint",
            dpop_proof(&signer, &proof_claims("https://other.example/token"))?,
        ));
        let mut stale = proof_claims(&te);
        stale["iat"] = json!(jwt::now() - 600);
        proofs.push(("iat 10 minutes old", dpop_proof(&signer, &stale)?));
        // Signed by one key, carrying another's public JWK.
        let other = Signer::ephemeral_es256(&marker("dpopkid"))?;
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert(
            "jwk".into(),
            Value::Object(other.public_jwk().cloned().unwrap_or_default()),
        );
        proofs.push((
            "signature by a key other than the jwk header's",
            signer.sign_with_header(header, &proof_claims(&te))?,
        ));
        proofs.push(("not a JWT", marker("dpop")));
        let mut f = Findings::new();
        for (label, proof) in proofs {
            let resp = dpop_exchange(cx, &fx, &proof).await?;
            f.record(label, expect_error(&resp, &[400], &["invalid_dpop_proof"]));
        }
        Ok(f.outcome())
    })
}
