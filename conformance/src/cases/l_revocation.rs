//! Checklist §3 L: RFC 7009 revocation (lines 113–118).
//!
//! Lines 113–117 run at every issuer that advertises a `revocation_endpoint` and whose
//! tokens the runner can obtain (see section K: ID-JAGs at the IdP-role issuer, access
//! tokens at the AS-role issuer). Whether a revocation took effect is read back through
//! introspection by the token's own agent, so each case needs the introspection endpoint
//! too, and checks first that the token was active.
//!
//! Line 118 (a revoked agent) uses lanyard's admin API (`/admin/v1`, a human's ID token
//! from the dev IdP for the bootstrap's `admin_client_id`) to disable deploy-bot, and always
//! re-enables it before returning, on every path, so that no later case finds it disabled.
//! It runs last among the sections for the same reason.

use serde_json::{Value, json};

use super::fixture::{ALICE, Ask, DEPLOY, Fixture, TRIAGE, need};
use super::k_introspection::{
    Live, Scene, UNKNOWN_HINT, auth_of, authenticated, expect_inactive, expect_invalid_client,
    jwt_bearer, not_tokens, unauthenticated_probes, with_token,
};
use super::{Case, CaseFuture, CheckResult, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::{Req, Resp};
use crate::jwt;
use crate::oauth::{self, expect_error, marker};

/// Section L, in checklist order; L118 disables an agent for a while, so the registry runs
/// this section after every other one that makes requests.
pub const CASES: &[Case] = &[
    Case {
        id: "L113",
        line: 113,
        title: "unauthenticated revocation → 401 invalid_client (token stays active)",
        clause: "7009 §2.1",
        target: Target::EachIssuer(l113_unauthenticated),
    },
    Case {
        id: "L114",
        line: 114,
        title: "revoking an own token → 200, then introspection active:false; also with a \
                wrong token_type_hint",
        clause: "7009 §2.1–2.2",
        target: Target::EachIssuer(l114_revoke_own),
    },
    Case {
        id: "L115",
        line: 115,
        title: "unknown, garbage or foreign-issuer token → 200, no error, nothing revoked",
        clause: "7009 §2.2",
        target: Target::EachIssuer(l115_unknown),
    },
    Case {
        id: "L116",
        line: 116,
        title: "another agent's token → 400 invalid_request, and it stays active",
        clause: "7009 §2.1; lanyard choice",
        target: Target::EachIssuer(l116_other_agent),
    },
    Case {
        id: "L117",
        line: 117,
        title: "missing token → 400 invalid_request; unsupported token_type_hint → 400 \
                unsupported_token_type",
        clause: "7009 §2.2.1",
        target: Target::EachIssuer(l117_bad_request),
    },
    Case {
        id: "L118",
        line: 118,
        title: "disabled agent: TE and JB → 401 invalid_client; its live tokens introspect \
                active:false",
        clause: "DESIGN",
        target: Target::Once(l118_revoked_agent),
    },
];

/// The scene of `iss` with both status endpoints and triage-bot, or return the SKIP.
macro_rules! setup {
    ($cx:expr, $iss:expr) => {{
        let sc = need!(Scene::new($cx, $iss));
        need!(sc.revocation_endpoint());
        need!(sc.introspection_endpoint());
        need!(sc.fx.agent(TRIAGE));
        sc
    }};
}

/// A fresh live triage-bot token, checked active through introspection first (so that a
/// later `active:false` means something).
async fn live_triage(cx: &Ctx, sc: &Scene) -> Result<Live, String> {
    let live = sc.token(cx, &Ask::triage(), None).await?;
    sc.still_active(cx, TRIAGE, &live.compact)
        .await
        .map_err(|e| format!("control (triage-bot sees its fresh token) failed: {e}"))?;
    Ok(live)
}

/// RFC 7009 §2.2: 200, and whatever body there is carries no `error`.
fn expect_revocation_ok(resp: &Resp) -> Result<String, String> {
    if resp.status != 200 {
        return Err(format!("expected 200, got {}", resp.summary()));
    }
    match resp.json() {
        Some(Value::Object(b)) if b.contains_key("error") => {
            Err(format!("200 with an error member: {}", resp.summary()))
        }
        _ => Ok("200".to_owned()),
    }
}

fn l113_unauthenticated<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let url = need!(sc.revocation_endpoint()).to_owned();
        let live = live_triage(cx, &sc).await?;
        let mut f = Findings::new();
        for (label, req, basic) in unauthenticated_probes(&url, &live.compact) {
            let resp = cx.http.send(req).await?;
            f.record(label, expect_invalid_client(&resp, basic));
        }
        match sc.still_active(cx, TRIAGE, &live.compact).await {
            Ok(()) => f.note("the token is still active afterwards"),
            Err(e) => f.fail(format!("after the refused requests: {e}")),
        }
        Ok(f.outcome())
    })
}

fn l114_revoke_own<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let right = match sc.role {
            Role::Idp => oauth::TOKEN_TYPE_ID_JAG,
            Role::As => "access_token",
        };
        let mut f = Findings::new();
        for (label, hint) in [
            ("no hint".to_owned(), None),
            (format!("hint {right}"), Some(right)),
            ("wrong hint refresh_token".to_owned(), Some("refresh_token")),
        ] {
            let result = async {
                let live = live_triage(cx, &sc).await?;
                let resp = sc.revoke(cx, TRIAGE, &live.compact, hint).await?;
                let revoked = expect_revocation_ok(&resp)?;
                let after = sc.introspect(cx, TRIAGE, &live.compact).await?;
                let inactive =
                    expect_inactive(&after).map_err(|e| format!("{revoked}, then {e}"))?;
                Ok(format!("active, revoke {revoked}, then {inactive}"))
            }
            .await;
            f.record(&label, result);
        }
        Ok(f.outcome())
    })
}

fn l115_unknown<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let live = live_triage(cx, &sc).await?;
        let mut f = Findings::new();
        // The forged copies reuse the live token's claims: revoking by an unverified jti
        // would kill the real one, which is checked below.
        for (label, token) in not_tokens(&sc, &live)? {
            let resp = sc.revoke(cx, TRIAGE, &token, None).await?;
            f.record(label, expect_revocation_ok(&resp));
        }
        match sc.still_active(cx, TRIAGE, &live.compact).await {
            Ok(()) => f.note("the live token the forgeries copy is still active"),
            Err(e) => f.fail(format!(
                "after revoking its forged copies, the live token: {e}"
            )),
        }
        match sc.other(cx) {
            Ok(other) if other.introspection_endpoint().is_ok() => {
                let result = async {
                    let theirs = other.token(cx, &Ask::triage(), None).await?;
                    let resp = sc.revoke(cx, TRIAGE, &theirs.compact, None).await?;
                    let ok = expect_revocation_ok(&resp)?;
                    other
                        .still_active(cx, TRIAGE, &theirs.compact)
                        .await
                        .map_err(|e| format!("{ok}, but at its own issuer: {e}"))?;
                    Ok(format!("{ok}, still active at {}", other.issuer))
                }
                .await;
                f.record(&format!("live token of {}", other.issuer), result);
            }
            Ok(other) => f.note(format!(
                "other issuer's token: not tried ({} advertises no introspection_endpoint)",
                other.issuer
            )),
            Err(why) => f.note(format!("other issuer's token: not tried ({why})")),
        }
        Ok(f.outcome())
    })
}

fn l116_other_agent<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        need!(sc.fx.agent(DEPLOY));
        let theirs = sc.token(cx, &Ask::deploy(), None).await?;
        sc.still_active(cx, DEPLOY, &theirs.compact)
            .await
            .map_err(|e| format!("control (deploy-bot sees its fresh token) failed: {e}"))?;
        let mut f = Findings::new();
        let resp = sc.revoke(cx, TRIAGE, &theirs.compact, None).await?;
        f.record(
            "triage-bot revokes deploy-bot's token",
            expect_error(&resp, &[400], &["invalid_request"]),
        );
        match sc.still_active(cx, DEPLOY, &theirs.compact).await {
            Ok(()) => f.note("deploy-bot still sees it active:true"),
            Err(e) => f.fail(format!("the token was revoked by another agent: {e}")),
        }
        Ok(f.outcome())
    })
}

fn l117_bad_request<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let sc = setup!(cx, iss);
        let url = need!(sc.revocation_endpoint()).to_owned();
        let triage = sc.agent(TRIAGE)?;
        let mut f = Findings::new();
        let unknown = marker("token");
        expect_revocation_ok(
            &sc.revoke(cx, TRIAGE, &unknown, Some("access_token"))
                .await?,
        )
        .map_err(|e| format!("control (an unknown token, hint access_token) failed: {e}"))?;
        f.note("control (unknown token, hint access_token): 200");
        let probes = [
            ("no token", Req::post(&url)),
            (
                "token_type_hint only",
                Req::post(&url).param("token_type_hint", "access_token"),
            ),
            ("empty token", Req::post(&url).param("token", "")),
        ];
        for (label, req) in probes {
            let req = authenticated(req, &sc.fx, triage, &sc.issuer)?;
            let resp = cx.http.send(req).await?;
            f.record(label, expect_error(&resp, &[400], &["invalid_request"]));
        }
        // An unsupported hint on a live token: refused, and the token is left alone.
        let live = live_triage(cx, &sc).await?;
        let resp = sc
            .revoke(cx, TRIAGE, &live.compact, Some(UNKNOWN_HINT))
            .await?;
        f.record(
            &format!("token_type_hint={UNKNOWN_HINT}"),
            expect_error(&resp, &[400], &["unsupported_token_type"]),
        );
        if let Err(e) = sc.still_active(cx, TRIAGE, &live.compact).await {
            f.fail(format!(
                "after the unsupported-hint request, the token: {e}"
            ));
        }
        Ok(f.outcome())
    })
}

/// Where the admin API is: lanyard serves it at the server root, which the dev IdP's mint
/// endpoint (`{base}/dev-idp/mint`) gives away.
fn admin_base(fx: &Fixture) -> Result<String, Outcome> {
    fx.mint_endpoint
        .strip_suffix("/dev-idp/mint")
        .map(|b| format!("{b}/admin/v1"))
        .ok_or_else(|| {
            Outcome::skip(format!(
                "cannot locate the admin API: the dev IdP mint endpoint {} is not \
                 {{base}}/dev-idp/mint",
                fx.mint_endpoint
            ))
        })
}

/// An admin API call: `POST {admin}/agents/{agent}/{action}` with the human's ID token.
async fn admin_post(
    cx: &Ctx,
    admin: &str,
    id_token: &str,
    agent: &str,
    action: &str,
) -> Result<Resp, String> {
    let body = json!({"reason": format!("lanyard conformance L118 ({action})")});
    let req = Req::post(format!("{admin}/agents/{agent}/{action}"))
        .header("Authorization", &format!("Bearer {id_token}"))
        .raw("application/json", body.to_string())
        .secret(jwt::signature_segment(id_token));
    cx.http.send(req).await
}

/// What L118 works with.
struct Kill<'a> {
    idp: &'a Scene,
    as_: &'a Scene,
    admin: String,
    admin_token: String,
}

fn l118_revoked_agent(cx: &Ctx) -> CaseFuture<'_> {
    check(async move {
        let idp_iss = match cx.with_role(Role::Idp).next() {
            Some(i) => i,
            None => return Ok(Outcome::skip("no IdP-role issuer under test")),
        };
        let idp = need!(Scene::new(cx, idp_iss));
        let as_ = match idp.other(cx) {
            Ok(s) if s.role == Role::As => s,
            Ok(_) | Err(_) => {
                return Ok(Outcome::skip(
                    "the AS-role issuer is not under test: no access token to kill",
                ));
            }
        };
        for sc in [&idp, &as_] {
            need!(sc.introspection_endpoint());
        }
        let agent = need!(idp.fx.agent(DEPLOY));
        if !agent.enabled {
            return Ok(Outcome::skip(format!(
                "bootstrap says {DEPLOY} is disabled"
            )));
        }
        let admin_client = cx
            .bootstrap
            .as_ref()
            .and_then(|b| b.get("admin_client_id"))
            .and_then(Value::as_str);
        let Some(admin_client) = admin_client else {
            return Ok(Outcome::skip(
                "bootstrap has no admin_client_id: no human ID token for the admin API",
            ));
        };
        need!(idp.fx.human(ALICE));
        let admin = need!(admin_base(&idp.fx));
        let admin_token = idp.fx.id_token(cx, ALICE, admin_client, None).await?;
        let kill = Kill {
            idp: &idp,
            as_: &as_,
            admin,
            admin_token,
        };
        kill_and_restore(cx, &kill).await
    })
}

/// Live tokens first, then disable, probe, and re-enable whatever happened in between.
async fn kill_and_restore(cx: &Ctx, k: &Kill<'_>) -> CheckResult {
    let mut f = Findings::new();
    // Before: an access token (leg 1 then leg 2) and a second, unused ID-JAG, both live.
    let at = k.as_.token(cx, &Ask::deploy(), None).await?;
    let jag = k.idp.token(cx, &Ask::deploy(), None).await?;
    k.as_
        .still_active(cx, DEPLOY, &at.compact)
        .await
        .map_err(|e| format!("control: deploy-bot's fresh access token: {e}"))?;
    k.idp
        .still_active(cx, DEPLOY, &jag.compact)
        .await
        .map_err(|e| format!("control: deploy-bot's fresh ID-JAG: {e}"))?;
    f.note("before: access token and ID-JAG active, TE and JB 200");

    let disabled = while_disabled(cx, k, &at, &jag, &mut f).await;
    // Always re-enable, even when disabling or a probe failed half-way.
    let enable = admin_post(cx, &k.admin, &k.admin_token, DEPLOY, "enable").await;
    if let Err(e) = disabled {
        f.fail(e);
    }
    match enable {
        Ok(r) if r.status == 200 => f.note("re-enabled (200)"),
        Ok(r) => {
            f.fail(format!(
                "re-enabling {DEPLOY} failed ({}): later runs may find it disabled",
                r.summary()
            ));
            return Ok(f.outcome());
        }
        Err(e) => {
            f.fail(format!("re-enabling {DEPLOY} failed ({e})"));
            return Ok(f.outcome());
        }
    }
    // After re-enabling: the tokens issued before stay dead; the agent works again.
    f.record(
        "old access token after re-enable",
        expect_inactive(&k.as_.introspect(cx, DEPLOY, &at.compact).await?),
    );
    f.record(
        "old ID-JAG after re-enable",
        expect_inactive(&k.idp.introspect(cx, DEPLOY, &jag.compact).await?),
    );
    let fx = &k.idp.fx;
    let resp = fx
        .exchange(
            cx,
            &Ask::deploy(),
            auth_of(fx.agent(DEPLOY).map_err(|_| "no deploy-bot")?),
        )
        .await?;
    if resp.status == 200 {
        f.note("control: TE after re-enable 200");
    } else {
        f.fail(format!(
            "TE after re-enable refused ({}): the 401s prove nothing",
            resp.summary()
        ));
    }
    Ok(f.outcome())
}

/// Disables deploy-bot and checks that nothing it asks for succeeds.
async fn while_disabled(
    cx: &Ctx,
    k: &Kill<'_>,
    at: &Live,
    unused_jag: &Live,
    f: &mut Findings,
) -> Result<(), String> {
    let resp = admin_post(cx, &k.admin, &k.admin_token, DEPLOY, "disable").await?;
    if resp.status != 200 {
        return Err(format!(
            "POST {}/agents/{DEPLOY}/disable as alice: {}",
            k.admin,
            resp.summary()
        ));
    }
    f.note("disabled via the admin API (200)");
    let fx = &k.idp.fx;
    let agent = fx.agent(DEPLOY).map_err(|_| "no deploy-bot".to_owned())?;
    let te = fx.exchange(cx, &Ask::deploy(), auth_of(agent)).await?;
    f.record("TE (private_key_jwt)", expect_invalid_client(&te, false));
    let as_te = fx
        .as_token_endpoint
        .as_deref()
        .ok_or("the AS-role issuer is not under test")?;
    let jb = jwt_bearer(
        cx,
        fx,
        agent,
        &k.as_.issuer,
        as_te,
        &unused_jag.compact,
        None,
    )
    .await?;
    f.record(
        "JB with an unused ID-JAG issued before",
        expect_invalid_client(&jb, false),
    );
    let url = k
        .as_
        .introspection_endpoint()
        .map_err(|_| "no introspection_endpoint".to_owned())?;
    let req = authenticated(
        with_token(Req::post(url), &at.compact),
        fx,
        agent,
        &k.as_.issuer,
    )?;
    f.record(
        "introspection of its access token",
        expect_invalid_client(&cx.http.send(req).await?, false),
    );
    Ok(())
}
