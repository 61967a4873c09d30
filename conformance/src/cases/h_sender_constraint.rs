//! Checklist §3 H: sender constraint on the ID-JAG exchange (lines 94–98).
//!
//! A key-bound ID-JAG comes from the real leg 1 with a DPoP proof at the IdP role (D54), so
//! its `cnf.jkt` is the thumbprint of a key the runner holds. Each refusal is followed by a
//! control: the same ID-JAG with a proof by the bound key MUST be accepted (which also shows
//! that the refusal did not use up its `jti`).

use serde_json::Value;

use super::fixture::{Ask, TRIAGE, need};
use super::leg2::{Leg2, Minted};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::jwt::{self, Signer};
use crate::oauth::{self, expect_error, marker};

/// Section H, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "H94",
        line: 94,
        title: "ID-JAG with cnf.jkt and no DPoP header → 400 invalid_grant",
        clause: "ID-JAG §9.8",
        target: Target::Role(Role::As, h94_bound_without_proof),
    },
    Case {
        id: "H95",
        line: 95,
        title: "ID-JAG with cnf.jkt and a valid proof by another key → 400 invalid_grant",
        clause: "ID-JAG §9.8",
        target: Target::Role(Role::As, h95_bound_other_key),
    },
    Case {
        id: "H96",
        line: 96,
        title: "ID-JAG with cnf.jkt and a matching proof → 200 DPoP, token cnf.jkt = ID-JAG's",
        clause: "ID-JAG §9.8; 9449 §6.1",
        target: Target::Role(Role::As, h96_bound_matching),
    },
    Case {
        id: "H97.unbound",
        line: 97,
        title: "ID-JAG without cnf and a valid proof → 200 with a DPoP-bound access token",
        clause: "ID-JAG §9.8",
        target: Target::Role(Role::As, h97_unbound_with_proof),
    },
    Case {
        id: "H97.required",
        line: 97,
        title: "resource requiring sender-constrained tokens and no proof → 400 invalid_grant",
        clause: "ID-JAG §9.8",
        target: Target::Role(Role::As, h97_required),
    },
    Case {
        id: "H98",
        line: 98,
        title: "grant_type jwt-dpop while not advertised → 400 unsupported_grant_type",
        clause: "D6",
        target: Target::Role(Role::As, h98_jwt_dpop),
    },
];

/// draft-parecki-oauth-jwt-dpop-grant.
const GRANT_JWT_DPOP: &str = "urn:ietf:params:oauth:grant-type:jwt-dpop";

/// The AS advertises DPoP with ES256 (the runner's proof algorithm), or the SKIP.
pub fn dpop_supported(iss: &Issuer) -> Result<(), Outcome> {
    let algs: Vec<&str> = iss
        .metadata
        .as_ref()
        .and_then(|m| m.get("dpop_signing_alg_values_supported"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if algs.is_empty() {
        Err(Outcome::skip(
            "DPoP not advertised (no dpop_signing_alg_values_supported in the AS metadata)",
        ))
    } else if !algs.contains(&"ES256") {
        Err(Outcome::skip(format!(
            "DPoP advertised with {algs:?}, but this runner signs proofs with ES256 only"
        )))
    } else {
        Ok(())
    }
}

/// The leg-2 fixture with DPoP available, triage-bot and a fresh proof key.
macro_rules! setup {
    ($cx:expr, $iss:expr) => {{
        let l2 = need!(Leg2::for_as($cx, $iss));
        need!(l2.agent(TRIAGE));
        need!(dpop_supported($iss));
        l2
    }};
}

fn key() -> Result<Signer, String> {
    Signer::ephemeral_es256(&marker("dpopkid"))
}

fn thumbprint(key: &Signer) -> Result<String, String> {
    jwt::thumbprint(key.public_jwk().ok_or("no public JWK")?)
}

/// The control after a refusal: the bound ID-JAG with a proof by its own key → 200 DPoP.
async fn control(cx: &Ctx, l2: &Leg2, jag: &str, key: &Signer, f: &mut Findings) {
    let result = async {
        let agent = l2.agent(TRIAGE).map_err(|_| "no triage-bot".to_owned())?;
        let proof = l2.proof(key)?;
        let resp = l2.send(cx, agent, &Leg2::form(jag), Some(&proof)).await?;
        Minted::from_response(&resp).map(|_| "200".to_owned())
    }
    .await;
    match result {
        Ok(_) => f.note("control (same ID-JAG, proof by the bound key): 200"),
        Err(e) => f.fail(format!(
            "control (same ID-JAG, proof by the bound key): {e}"
        )),
    }
}

fn h94_bound_without_proof<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = need!(l2.agent(TRIAGE));
        let k = key()?;
        let jag = l2.bound_id_jag(cx, &Ask::triage(), &k).await?;
        let mut f = Findings::new();
        f.record("no DPoP header", l2.refused(cx, agent, &jag.jwt).await);
        control(cx, &l2, &jag.jwt, &k, &mut f).await;
        Ok(f.outcome())
    })
}

fn h95_bound_other_key<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = need!(l2.agent(TRIAGE));
        let k = key()?;
        let jag = l2.bound_id_jag(cx, &Ask::triage(), &k).await?;
        let other = key()?;
        let proof = l2.proof(&other)?;
        let resp = l2
            .send(cx, agent, &Leg2::form(&jag.jwt), Some(&proof))
            .await?;
        let mut f = Findings::new();
        f.record(
            "valid proof by another key",
            expect_error(&resp, &[400], &["invalid_grant"]),
        );
        control(cx, &l2, &jag.jwt, &k, &mut f).await;
        Ok(f.outcome())
    })
}

/// Checks a DPoP-bound access token response against the expected thumbprint.
fn bound_response(m: &Minted, jkt: &str) -> Result<String, String> {
    let mut p = Vec::new();
    if !m.token_type().eq_ignore_ascii_case("DPoP") {
        p.push(format!(
            "token_type is {:?}, not \"DPoP\"",
            m.body.get("token_type")
        ));
    }
    match m
        .claim("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str)
    {
        Some(got) if got == jkt => {}
        other => p.push(format!(
            "access token cnf.jkt is {other:?}, expected {jkt:?}"
        )),
    }
    if p.is_empty() {
        Ok(format!("200 DPoP, cnf.jkt={jkt}"))
    } else {
        Err(p.join(", "))
    }
}

fn h96_bound_matching<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = need!(l2.agent(TRIAGE));
        let k = key()?;
        let jkt = thumbprint(&k)?;
        let jag = l2.bound_id_jag(cx, &Ask::triage(), &k).await?;
        let id_jag_jkt = jag
            .claim("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if id_jag_jkt != jkt {
            return Err(format!(
                "leg 1 bound the ID-JAG to {id_jag_jkt:?}, not the proof key {jkt:?} (see D54)"
            ));
        }
        let proof = l2.proof(&k)?;
        let resp = l2
            .send(cx, agent, &Leg2::form(&jag.jwt), Some(&proof))
            .await?;
        let m = Minted::from_response(&resp)?;
        bound_response(&m, &id_jag_jkt).map(Outcome::pass)
    })
}

fn h97_unbound_with_proof<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = need!(l2.agent(TRIAGE));
        let jag = l2.id_jag(cx, &Ask::triage()).await?;
        if jag.claim("cnf").is_some() {
            return Err(format!(
                "leg 1 without DPoP gave an ID-JAG with cnf {:?}",
                jag.claim("cnf")
            ));
        }
        let k = key()?;
        let jkt = thumbprint(&k)?;
        let proof = l2.proof(&k)?;
        let resp = l2
            .send(cx, agent, &Leg2::form(&jag.jwt), Some(&proof))
            .await?;
        let m = Minted::from_response(&resp)?;
        bound_response(&m, &jkt).map(Outcome::pass)
    })
}

/// Needs a resource configured with `sender_constrained = true`: bootstrap's
/// `sender_constrained_resource` names it, with the channel and scope that reach it.
fn h97_required<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let Some(sc) = cx
            .bootstrap
            .as_ref()
            .and_then(|b| b.get("sender_constrained_resource"))
            .and_then(Value::as_object)
        else {
            return Ok(Outcome::skip(
                "bootstrap names no sender_constrained_resource: no resource configured to \
                 require sender-constrained tokens is known",
            ));
        };
        let s = |k: &str| sc.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(resource), Some(agent_id)) = (s("resource"), s("agent")) else {
            return Ok(Outcome::skip(
                "bootstrap sender_constrained_resource lacks resource or agent",
            ));
        };
        let agent = need!(l2.agent(&agent_id));
        let (scope, channel) = (s("scope"), s("channel"));
        let ask = Ask {
            agent: &agent_id,
            user: super::fixture::ALICE,
            resource: Some(&resource),
            scope: scope.as_deref(),
            channel: channel.as_deref(),
        };
        let jag = l2.id_jag(cx, &ask).await?;
        let mut f = Findings::new();
        f.record(
            &format!("no DPoP proof for {resource}"),
            l2.refused(cx, agent, &jag.jwt).await,
        );
        let k = key()?;
        let jkt = thumbprint(&k)?;
        let result = async {
            let proof = l2.proof(&k)?;
            let resp = l2
                .send(cx, agent, &Leg2::form(&jag.jwt), Some(&proof))
                .await?;
            bound_response(&Minted::from_response(&resp)?, &jkt)
        }
        .await;
        match result {
            Ok(d) => f.note(format!("control (same ID-JAG with a proof): {d}")),
            Err(e) => f.fail(format!("control (same ID-JAG with a proof): {e}")),
        }
        Ok(f.outcome())
    })
}

fn h98_jwt_dpop<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = need!(l2.agent(TRIAGE));
        let advertised = iss
            .metadata
            .as_ref()
            .and_then(|m| m.get("grant_types_supported"))
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|g| g == GRANT_JWT_DPOP));
        if advertised {
            return Ok(Outcome::skip(
                "the AS advertises the jwt-dpop grant type, which D6 then allows as an alias",
            ));
        }
        let jag = l2.id_jag(cx, &Ask::triage()).await?;
        let k = key()?;
        let form = Leg2::form(&jag.jwt).with("grant_type", GRANT_JWT_DPOP);
        let resp = l2.send(cx, agent, &form, Some(&l2.proof(&k)?)).await?;
        let mut f = Findings::new();
        f.record(
            "grant_type jwt-dpop with a DPoP proof",
            expect_error(&resp, &[400], &["unsupported_grant_type"]),
        );
        let form = Leg2::form(&jag.jwt).with("grant_type", oauth::GRANT_JWT_BEARER);
        let result = async {
            let resp = l2.send(cx, agent, &form, Some(&l2.proof(&k)?)).await?;
            Minted::from_response(&resp).map(|_| ())
        }
        .await;
        match result {
            Ok(()) => f.note("control (same ID-JAG as jwt-bearer + DPoP): 200"),
            Err(e) => f.fail(format!("control (same ID-JAG as jwt-bearer + DPoP): {e}")),
        }
        Ok(f.outcome())
    })
}
