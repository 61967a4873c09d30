//! Checklist §3 C: client authentication (lines 18–29).
//!
//! Every probe is an otherwise valid token exchange at the IdP-role issuer's token endpoint
//! (a fresh dev IdP ID token for a demo human, a permitted audience, resource and scope), so
//! that with a correct credential it would succeed; the credential is the only defect. The
//! `private_key_jwt` cases first send a *control*, the same request with a correct
//! assertion, and fail if that is refused: otherwise a server rejecting every assertion
//! would pass them all. C18 also runs at the AS-role issuer (jwt-bearer).
//!
//! lanyard answers every client-authentication failure 401 `invalid_client`; RFC 6749 §5.2
//! requires `WWW-Authenticate` when the client tried HTTP Basic, so the Basic probes check
//! it too.

use serde_json::{Value, json};

use super::fixture::{ALICE, Ask, Auth, DEPLOY, Fixture, RETIRED, TRIAGE, need};
use super::{Case, CaseFuture, CheckResult, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::{Req, Resp};
use crate::jwt::{self, Signer};
use crate::oauth::{self, expect_error, marker};

/// Section C, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "C18",
        line: 18,
        title: "no client authentication on TE or JB → 401 invalid_client",
        clause: "ID-JAG §9.1; MCP EMA §7.7",
        target: Target::EachIssuer(c18_no_auth),
    },
    Case {
        id: "C19",
        line: 19,
        title: "Basic with a wrong secret → 401 invalid_client + WWW-Authenticate: Basic",
        clause: "6749 §5.2",
        target: Target::Role(Role::Idp, c19_wrong_secret),
    },
    Case {
        id: "C20",
        line: 20,
        title: "client assertion aud = token endpoint URL → 401 invalid_client",
        clause: "7523bis",
        target: Target::Role(Role::Idp, c20_aud_token_endpoint),
    },
    Case {
        id: "C21",
        line: 21,
        title: "client assertion aud = [issuer, other] → 401 invalid_client",
        clause: "7523bis",
        target: Target::Role(Role::Idp, c21_aud_two_values),
    },
    Case {
        id: "C22",
        line: 22,
        title: "client assertion sub ≠ iss or ≠ the registered client → 401 invalid_client",
        clause: "7523 §3",
        target: Target::Role(Role::Idp, c22_sub_mismatch),
    },
    Case {
        id: "C23",
        line: 23,
        title: "expired client assertion or one without exp → 401 invalid_client",
        clause: "7523 §3",
        target: Target::Role(Role::Idp, c23_expired),
    },
    Case {
        id: "C24",
        line: 24,
        title: "client assertion jti replayed → 401 invalid_client (first use 200)",
        clause: "7523 §3 item 7; lanyard choice: single use",
        target: Target::Role(Role::Idp, c24_replay),
    },
    Case {
        id: "C25",
        line: 25,
        title: "client assertion exp − iat > 300 s or iat > 300 s old → 401 invalid_client",
        clause: "7523 §3 items 4, 6",
        target: Target::Role(Role::Idp, c25_lifetime),
    },
    Case {
        id: "C26",
        line: 26,
        title: "form client_id ≠ client assertion sub → 401 invalid_client",
        clause: "7521 §4.2",
        target: Target::Role(Role::Idp, c26_client_id_mismatch),
    },
    Case {
        id: "C27",
        line: 27,
        title: "HS256 client assertion for a private_key_jwt client → 401 invalid_client",
        clause: "8725 §3.1",
        target: Target::Role(Role::Idp, c27_hs256),
    },
    Case {
        id: "C28",
        line: 28,
        title: "client_assertion_type other than jwt-bearer → 401 invalid_client (or 400)",
        clause: "7523 §2.2",
        target: Target::Role(Role::Idp, c28_assertion_type),
    },
    Case {
        id: "C29",
        line: 29,
        title: "disabled agent with valid credentials → 401 invalid_client",
        clause: "6749 §5.2",
        target: Target::Role(Role::Idp, c29_disabled),
    },
];

/// A client-authentication failure: 401 `invalid_client`, and `WWW-Authenticate` naming
/// Basic when the client tried Basic (RFC 6749 §5.2).
fn expect_invalid_client(resp: &Resp, basic_tried: bool) -> Result<String, String> {
    let mut result = expect_error(resp, &[401], &["invalid_client"]);
    if basic_tried {
        let www = resp.header_joined("www-authenticate").unwrap_or_default();
        let names_basic = www
            .split(',')
            .any(|c| c.trim_start().to_ascii_lowercase().starts_with("basic"));
        if !names_basic {
            let problem = format!(
                "Basic was tried but WWW-Authenticate is {:?}, not a Basic challenge",
                if www.is_empty() {
                    "(none)"
                } else {
                    www.as_str()
                }
            );
            result = match result {
                Ok(_) => Err(problem),
                Err(e) => Err(format!("{e}, {problem}")),
            };
        }
    }
    result.map(|ok| {
        if basic_tried {
            format!("{ok} + Basic challenge")
        } else {
            ok
        }
    })
}

/// A deploy-bot (`private_key_jwt`) token exchange with a fresh ID token and the given
/// assertion, `client_id` (if any) and assertion type.
async fn key_exchange(
    cx: &Ctx,
    fx: &Fixture,
    assertion: &str,
    client_id: Option<&str>,
    assertion_type: &str,
) -> Result<Resp, String> {
    let ask = Ask::deploy();
    let id_token = fx.id_token_for(cx, &ask).await?;
    let mut form = fx.te_form(&ask, &id_token);
    if let Some(id) = client_id {
        form.add("client_id", id);
    }
    form.add("client_assertion_type", assertion_type);
    form.add("client_assertion", assertion);
    cx.http.send(fx.te_post(&form)).await
}

/// The same request with a correct deploy-bot assertion must succeed, or the case cannot
/// tell a rejected defect from a rejected client.
async fn key_control(cx: &Ctx, fx: &Fixture, f: &mut Findings) -> Result<(), String> {
    let resp = fx.exchange(cx, &Ask::deploy(), Auth::Key).await?;
    if resp.status == 200 {
        f.note("control with a valid assertion: 200");
        Ok(())
    } else {
        Err(format!(
            "control request with a valid {DEPLOY} assertion was refused ({}), so a 401 \
             below would prove nothing (see D30)",
            resp.summary()
        ))
    }
}

/// An edit applied to the default valid client-assertion claims.
type ClaimsEdit = Box<dyn FnOnce(&mut serde_json::Map<String, Value>)>;

/// Runs labelled assertion probes for deploy-bot after the control. Each probe's claims
/// edit is applied to the default valid claims.
async fn assertion_probes(cx: &Ctx, iss: &Issuer, probes: Vec<(&str, ClaimsEdit)>) -> CheckResult {
    let fx = need!(Fixture::for_idp(cx, iss));
    let agent = need!(fx.agent(DEPLOY));
    let mut f = Findings::new();
    key_control(cx, &fx, &mut f).await?;
    for (label, edit) in probes {
        let assertion = fx.assertion(agent, edit)?;
        let resp = key_exchange(
            cx,
            &fx,
            &assertion,
            Some(&agent.client_id),
            oauth::CLIENT_ASSERTION_JWT_BEARER,
        )
        .await?;
        f.record(label, expect_invalid_client(&resp, false));
    }
    Ok(f.outcome())
}

/// No credential at all, and a bare `client_id` with no secret (what a public client or a
/// generic RFC 8693 library sends), at each issuer with its own grant.
fn c18_no_auth<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let roles = need!(iss.known_roles());
        let mut f = Findings::new();
        for &role in roles {
            match role {
                Role::Idp => {
                    let fx = need!(Fixture::for_idp(cx, iss));
                    let agent = need!(fx.agent(TRIAGE));
                    let ask = Ask::triage();
                    for with_client_id in [false, true] {
                        let id_token = fx.id_token_for(cx, &ask).await?;
                        let mut form = fx.te_form(&ask, &id_token);
                        if with_client_id {
                            form.add("client_id", &agent.client_id);
                        }
                        let resp = cx.http.send(fx.te_post(&form)).await?;
                        let label = if with_client_id {
                            "TE with client_id only"
                        } else {
                            "TE without credentials"
                        };
                        f.record(label, expect_invalid_client(&resp, false));
                    }
                }
                Role::As => {
                    let te = need!(iss.token_endpoint());
                    // The best assertion available: a real ID-JAG for triage-bot when the
                    // IdP role can issue one, else a marker.
                    let assertion = match Fixture::any(cx) {
                        Ok(fx) => match fx.obtain(cx, &Ask::triage(), Auth::Basic).await {
                            Ok(issued) => issued.jwt,
                            Err(e) => {
                                f.note(format!("no ID-JAG to present ({e}); sent a marker"));
                                marker("assertion")
                            }
                        },
                        Err(_) => marker("assertion"),
                    };
                    for with_client_id in [false, true] {
                        let mut req = Req::post(&te)
                            .param("grant_type", oauth::GRANT_JWT_BEARER)
                            .param("assertion", &assertion)
                            .secret(jwt::signature_segment(&assertion));
                        if with_client_id {
                            req = req.param("client_id", TRIAGE);
                        }
                        let resp = cx.http.send(req).await?;
                        let label = if with_client_id {
                            "JB with client_id only"
                        } else {
                            "JB without credentials"
                        };
                        f.record(label, expect_invalid_client(&resp, false));
                    }
                }
            }
        }
        Ok(f.outcome())
    })
}

fn c19_wrong_secret<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(TRIAGE));
        let ask = Ask::triage();
        let id_token = fx.id_token_for(cx, &ask).await?;
        let wrong = marker("wrongsecret");
        let req = fx
            .te_post(&fx.te_form(&ask, &id_token))
            .basic(&agent.client_id, &wrong);
        let resp = cx.http.send(req).await?;
        expect_invalid_client(&resp, true).map(Outcome::pass)
    })
}

/// deploy-bot is not configured for the legacy token-endpoint `aud` (bootstrap does not
/// expose that flag; the demo policy does not set it).
fn c20_aud_token_endpoint<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let te = need!(iss.token_endpoint());
        assertion_probes(
            cx,
            iss,
            vec![(
                "aud = token endpoint URL",
                Box::new(move |c| {
                    c.insert("aud".into(), json!(te));
                }),
            )],
        )
        .await
    })
}

fn c21_aud_two_values<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let issuer = iss.issuer.clone();
        assertion_probes(
            cx,
            iss,
            vec![(
                "aud = [issuer, https://other.example/]",
                Box::new(move |c| {
                    c.insert("aud".into(), json!([issuer, "https://other.example/"]));
                }),
            )],
        )
        .await
    })
}

/// Three ways the subject can disagree: with `iss`, or both naming another registered
/// agent while the key is deploy-bot's.
fn c22_sub_mismatch<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(DEPLOY));
        let other = TRIAGE;
        let mut f = Findings::new();
        key_control(cx, &fx, &mut f).await?;
        let probes: Vec<(&str, ClaimsEdit)> = vec![
            (
                "iss = deploy-bot, sub = triage-bot",
                Box::new(move |c| {
                    c.insert("sub".into(), json!(other));
                }),
            ),
            (
                "iss = triage-bot, sub = deploy-bot",
                Box::new(move |c| {
                    c.insert("iss".into(), json!(other));
                }),
            ),
        ];
        for (label, edit) in probes {
            let assertion = fx.assertion(agent, edit)?;
            let resp = key_exchange(
                cx,
                &fx,
                &assertion,
                Some(&agent.client_id),
                oauth::CLIENT_ASSERTION_JWT_BEARER,
            )
            .await?;
            f.record(label, expect_invalid_client(&resp, false));
        }
        // iss = sub = client_id = triage-bot, but signed with deploy-bot's key.
        let assertion = fx.assertion(agent, |c| {
            c.insert("iss".into(), json!(other));
            c.insert("sub".into(), json!(other));
        })?;
        let resp = key_exchange(
            cx,
            &fx,
            &assertion,
            Some(other),
            oauth::CLIENT_ASSERTION_JWT_BEARER,
        )
        .await?;
        f.record(
            "iss = sub = client_id = triage-bot, signed by deploy-bot's key",
            expect_invalid_client(&resp, false),
        );
        Ok(f.outcome())
    })
}

fn c23_expired<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        assertion_probes(
            cx,
            iss,
            vec![
                (
                    "exp = now − 120 (beyond 60 s leeway)",
                    Box::new(|c| {
                        let now = jwt::now();
                        c.insert("iat".into(), json!(now - 180));
                        c.insert("exp".into(), json!(now - 120));
                    }),
                ),
                (
                    "no exp",
                    Box::new(|c| {
                        c.remove("exp");
                    }),
                ),
            ],
        )
        .await
    })
}

/// The same assertion twice, each time with a fresh ID token: the first use succeeds, the
/// second is a replay.
fn c24_replay<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(DEPLOY));
        let assertion = fx.assertion(agent, |_| {})?;
        let send = || {
            key_exchange(
                cx,
                &fx,
                &assertion,
                Some(&agent.client_id),
                oauth::CLIENT_ASSERTION_JWT_BEARER,
            )
        };
        let first = send().await?;
        if first.status != 200 {
            return Err(format!(
                "first use of a valid assertion was refused: {}",
                first.summary()
            ));
        }
        let second = send().await?;
        expect_invalid_client(&second, false)
            .map(|ok| Outcome::pass(format!("first 200, replay {ok}")))
            .map_err(|e| format!("replay: {e}"))
    })
}

fn c25_lifetime<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        assertion_probes(
            cx,
            iss,
            vec![
                (
                    "exp − iat = 400",
                    Box::new(|c| {
                        let now = jwt::now();
                        c.insert("iat".into(), json!(now));
                        c.insert("exp".into(), json!(now + 400));
                    }),
                ),
                (
                    "iat 400 s old, exp in 60 s",
                    Box::new(|c| {
                        let now = jwt::now();
                        c.insert("iat".into(), json!(now - 400));
                        c.insert("exp".into(), json!(now + 60));
                    }),
                ),
            ],
        )
        .await
    })
}

/// A valid deploy-bot assertion, but the form says it is triage-bot.
fn c26_client_id_mismatch<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(DEPLOY));
        let mut f = Findings::new();
        key_control(cx, &fx, &mut f).await?;
        let assertion = fx.assertion(agent, |_| {})?;
        let resp = key_exchange(
            cx,
            &fx,
            &assertion,
            Some(TRIAGE),
            oauth::CLIENT_ASSERTION_JWT_BEARER,
        )
        .await?;
        f.record(
            "client_id = triage-bot, assertion sub = deploy-bot",
            expect_invalid_client(&resp, false),
        );
        Ok(f.outcome())
    })
}

/// HS256 under deploy-bot's kid, keyed with an arbitrary secret and (the classic
/// confusion) with the bytes of deploy-bot's public JWK.
fn c27_hs256<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(DEPLOY));
        let mut f = Findings::new();
        key_control(cx, &fx, &mut f).await?;
        let kid = agent
            .private_jwk
            .as_ref()
            .and_then(|j| j.get("kid"))
            .and_then(Value::as_str)
            .unwrap_or(DEPLOY)
            .to_owned();
        let public = jwt::Signer::from_private_jwk(
            agent.private_jwk.as_ref().ok_or("deploy-bot has no JWK")?,
        )?
        .public_jwk()
        .map(|j| Value::Object(j.clone()).to_string())
        .unwrap_or_default();
        let arbitrary = marker("hmackey");
        for (label, key) in [
            ("HS256 with an arbitrary secret", arbitrary.as_bytes()),
            ("HS256 keyed with the public JWK", public.as_bytes()),
        ] {
            let signer = Signer::hs256(key, &kid)?;
            let claims = Value::Object(fx.assertion_claims(agent));
            let assertion = signer.sign("JWT", claims)?;
            let resp = key_exchange(
                cx,
                &fx,
                &assertion,
                Some(&agent.client_id),
                oauth::CLIENT_ASSERTION_JWT_BEARER,
            )
            .await?;
            f.record(label, expect_invalid_client(&resp, false));
        }
        Ok(f.outcome())
    })
}

fn c28_assertion_type<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(DEPLOY));
        let mut f = Findings::new();
        key_control(cx, &fx, &mut f).await?;
        let assertion = fx.assertion(agent, |_| {})?;
        let resp = key_exchange(cx, &fx, &assertion, Some(&agent.client_id), "urn:foo").await?;
        let result = if resp.status == 400 {
            expect_error(&resp, &[400], &["invalid_request"])
        } else {
            expect_invalid_client(&resp, false)
        };
        f.record("client_assertion_type=urn:foo", result);
        Ok(f.outcome())
    })
}

/// retired-bot's own, correct secret, by Basic and by post.
fn c29_disabled<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let fx = need!(Fixture::for_idp(cx, iss));
        let agent = need!(fx.agent(RETIRED));
        if agent.enabled {
            return Ok(Outcome::skip(format!(
                "bootstrap says {RETIRED} is enabled: no disabled demo agent"
            )));
        }
        if agent.secret.is_none() {
            return Ok(Outcome::skip(format!("{RETIRED} has no client_secret")));
        }
        let ask = Ask {
            agent: RETIRED,
            user: ALICE,
            ..Ask::triage()
        };
        let mut f = Findings::new();
        for (label, auth, basic) in [
            ("Basic with the correct secret", Auth::Basic, true),
            (
                "client_secret_post with the correct secret",
                Auth::Post,
                false,
            ),
        ] {
            let id_token = fx.id_token_for(cx, &ask).await?;
            let req = fx.te_request(&fx.te_form(&ask, &id_token), agent, auth)?;
            let resp = cx.http.send(req).await?;
            f.record(label, expect_invalid_client(&resp, basic));
        }
        Ok(f.outcome())
    })
}
