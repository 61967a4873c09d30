//! Checklist §3 I: DPoP proof validation at the AS token endpoint (lines 99–104).
//!
//! Each probe sends a fresh real ID-JAG (no `cnf`) from leg 1 with one broken `DPoP`
//! header; a broken proof is refused before the ID-JAG is looked at, so the case ends with
//! the control: the same ID-JAG with a valid proof MUST be accepted (200, DPoP-bound).

use serde_json::{Map, Value, json};

use super::fixture::{Ask, TRIAGE, dpop_proof, need, proof_claims};
use super::h_sender_constraint::dpop_supported;
use super::leg2::{Leg2, Minted};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::http::Resp;
use crate::jwt::{self, Signer};
use crate::oauth::{expect_error, marker};

/// Section I, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "I99",
        line: 99,
        title: "two DPoP headers, or a DPoP value that is not a JWT → 400 invalid_dpop_proof",
        clause: "9449 §4.3 (1–2)",
        target: Target::Role(Role::As, i99_header_shape),
    },
    Case {
        id: "I100",
        line: 100,
        title: "proof typ ≠ dpop+jwt, alg none or HS256, or a jwk with d → 400 invalid_dpop_proof",
        clause: "9449 §4.3 (4, 5, 7)",
        target: Target::Role(Role::As, i100_proof_header),
    },
    Case {
        id: "I101",
        line: 101,
        title: "htm ≠ POST or htu ≠ the token endpoint → 400; htu with a query is the same URI",
        clause: "9449 §4.3 (8–9)",
        target: Target::Role(Role::As, i101_htm_htu),
    },
    Case {
        id: "I102",
        line: 102,
        title: "iat > 60 s old or beyond the leeway ahead, or a reused jti → 400 invalid_dpop_proof",
        clause: "9449 §4.3 (11), §11.1",
        target: Target::Role(Role::As, i102_iat_jti),
    },
    Case {
        id: "I103",
        line: 103,
        title: "nonces required and a proof without one → 400 use_dpop_nonce + DPoP-Nonce",
        clause: "9449 §8",
        target: Target::Role(Role::As, i103_nonce),
    },
    Case {
        id: "I104",
        line: 104,
        title: "agent with dpop_bound_access_tokens sends no DPoP → 400 invalid_request",
        clause: "9449 §5.2",
        target: Target::Role(Role::As, i104_dpop_bound_agent),
    },
];

/// Leeway (checklist notation).
const LEEWAY: i64 = 60;

/// The fixture, with DPoP advertised and triage-bot present, or the SKIP.
macro_rules! setup {
    ($cx:expr, $iss:expr) => {{
        let l2 = need!(Leg2::for_as($cx, $iss));
        need!(l2.agent(TRIAGE));
        need!(dpop_supported($iss));
        l2
    }};
}

/// One probe: a fresh ID-JAG, the given `DPoP` header values.
struct Probe<'a> {
    cx: &'a Ctx,
    l2: &'a Leg2,
    jag: String,
}

impl<'a> Probe<'a> {
    async fn new(cx: &'a Ctx, l2: &'a Leg2) -> Result<Self, String> {
        let jag = l2.id_jag(cx, &Ask::triage()).await?.jwt;
        Ok(Self { cx, l2, jag })
    }

    /// Sends the ID-JAG with each of `headers` as a `DPoP` header (none, one or several).
    async fn send(&self, headers: &[&str]) -> Result<Resp, String> {
        let agent = self
            .l2
            .agent(TRIAGE)
            .map_err(|_| "no triage-bot".to_owned())?;
        let mut req = self.l2.request(&Leg2::form(&self.jag), agent)?;
        for h in headers {
            req = req.header("DPoP", h).secret(jwt::signature_segment(h));
        }
        self.cx.http.send(req).await
    }

    /// Records the refusal of `proof` (or why it could not be built).
    async fn refused(&self, f: &mut Findings, label: &str, proof: Result<String, String>) {
        let result = match proof {
            Ok(p) => match self.send(&[&p]).await {
                Ok(resp) => expect_error(&resp, &[400], &["invalid_dpop_proof"]),
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("cannot build the proof: {e}")),
        };
        f.record(label, result);
    }

    /// The control: the same ID-JAG with a valid proof by `key` → 200 DPoP-bound.
    async fn control(&self, f: &mut Findings, key: &Signer) {
        let result = async {
            let proof = self.l2.proof(key)?;
            let m = Minted::from_response(&self.send(&[&proof]).await?)?;
            if m.token_type().eq_ignore_ascii_case("DPoP") {
                Ok(())
            } else {
                Err(format!("token_type {:?}, not DPoP", m.token_type()))
            }
        }
        .await;
        match result {
            Ok(()) => f.note("control (same ID-JAG, valid proof): 200 DPoP"),
            Err(e) => f.fail(format!("control (same ID-JAG, valid proof): {e}")),
        }
    }
}

fn key() -> Result<Signer, String> {
    Signer::ephemeral_es256(&marker("dpopkid"))
}

fn i99_header_shape<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let probe = Probe::new(cx, &l2).await?;
        let k = key()?;
        let mut f = Findings::new();
        let (a, b) = (l2.proof(&k)?, l2.proof(&k)?);
        let resp = probe.send(&[&a, &b]).await?;
        f.record(
            "two DPoP headers (both valid proofs)",
            expect_error(&resp, &[400], &["invalid_dpop_proof"]),
        );
        let c = l2.proof(&k)?;
        let resp = probe.send(&[&format!("{c}, {c}")]).await?;
        f.record(
            "one DPoP header holding two proofs",
            expect_error(&resp, &[400], &["invalid_dpop_proof"]),
        );
        probe
            .refused(&mut f, "an opaque string", Ok(marker("dpop")))
            .await;
        probe
            .refused(&mut f, "an empty value", Ok(String::new()))
            .await;
        let two = l2.proof(&k)?;
        let two = two
            .rsplit_once('.')
            .map(|(i, _)| i.to_owned())
            .unwrap_or_default();
        probe
            .refused(&mut f, "a JWT without its signature", Ok(two))
            .await;
        probe.control(&mut f, &k).await;
        Ok(f.outcome())
    })
}

fn i100_proof_header<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let probe = Probe::new(cx, &l2).await?;
        let k = key()?;
        let public = Value::Object(k.public_jwk().cloned().unwrap_or_default());
        let claims = || proof_claims(&l2.token_endpoint);
        let mut f = Findings::new();
        for typ in [None, Some("JWT"), Some("at+jwt"), Some("dpop")] {
            let mut h = Map::new();
            if let Some(t) = typ {
                h.insert("typ".into(), json!(t));
            }
            h.insert("jwk".into(), public.clone());
            probe
                .refused(
                    &mut f,
                    &format!("typ {typ:?}"),
                    k.sign_with_header(h, &claims()),
                )
                .await;
        }
        for alg in ["none", "NONE"] {
            let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": public});
            probe
                .refused(
                    &mut f,
                    &format!("alg {alg:?}"),
                    jwt::unsigned(&header, &claims(), ""),
                )
                .await;
        }
        // HS256 keyed with the public JWK's own bytes, the JWK in the header.
        let secret = serde_json::to_vec(&public).map_err(|e| e.to_string())?;
        let mut h = Map::new();
        h.insert("typ".into(), json!("dpop+jwt"));
        h.insert("jwk".into(), public.clone());
        probe
            .refused(
                &mut f,
                "alg HS256 (MACed with the jwk's bytes)",
                Signer::hs256(&secret, "").and_then(|s| s.sign_with_header(h, &claims())),
            )
            .await;
        // A proof carrying its private key.
        let (pk, private) = Signer::ephemeral_es256_with_private(&marker("dpopkid"))?;
        let mut h = Map::new();
        h.insert("typ".into(), json!("dpop+jwt"));
        h.insert("jwk".into(), Value::Object(private));
        probe
            .refused(
                &mut f,
                "jwk containing d",
                pk.sign_with_header(h, &claims()),
            )
            .await;
        // No jwk at all.
        let mut h = Map::new();
        h.insert("typ".into(), json!("dpop+jwt"));
        probe
            .refused(&mut f, "no jwk", k.sign_with_header(h, &claims()))
            .await;
        probe.control(&mut f, &k).await;
        Ok(f.outcome())
    })
}

fn i101_htm_htu<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let probe = Probe::new(cx, &l2).await?;
        let k = key()?;
        let te = l2.token_endpoint.clone();
        let mut f = Findings::new();
        let edits: Vec<(&str, &str, Value)> = vec![
            ("htm GET", "htm", json!("GET")),
            ("htm post (lower case)", "htm", json!("post")),
            (
                "htu of another server",
                "htu",
                json!("https://other.example/token"),
            ),
            (
                "htu of the IdP role's token endpoint",
                "htu",
                json!(l2.fx.token_endpoint),
            ),
            ("htu with another path", "htu", json!(format!("{te}/x"))),
            ("htm missing", "htm", Value::Null),
            ("htu missing", "htu", Value::Null),
        ];
        for (label, member, value) in edits {
            let mut c = proof_claims(&te);
            if let Some(o) = c.as_object_mut() {
                if value.is_null() {
                    o.remove(member);
                } else {
                    o.insert(member.into(), value);
                }
            }
            probe.refused(&mut f, label, dpop_proof(&k, &c)).await;
        }
        // htu is compared without its query and fragment: this proof is valid.
        let with_query = json!({"jti": marker("dpopjti"), "htm": "POST", "htu": format!("{te}?x=1#frag"), "iat": jwt::now()});
        let result = async {
            let proof = dpop_proof(&k, &with_query)?;
            Minted::from_response(&probe.send(&[&proof]).await?).map(|_| ())
        }
        .await;
        match result {
            Ok(()) => {
                f.note("control (htu with ?query#fragment, otherwise the token endpoint): 200")
            }
            Err(e) => f.fail(format!(
                "control (htu with ?query#fragment, otherwise the token endpoint): {e}"
            )),
        }
        Ok(f.outcome())
    })
}

fn i102_iat_jti<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let probe = Probe::new(cx, &l2).await?;
        let k = key()?;
        let te = l2.token_endpoint.clone();
        let now = jwt::now();
        let mut f = Findings::new();
        let times: Vec<(String, Value)> = vec![
            ("iat 90 s old (> 60 s)".to_owned(), json!(now - 90)),
            ("iat 10 minutes old".to_owned(), json!(now - 600)),
            (
                format!("iat {} s ahead (twice the leeway)", 2 * LEEWAY),
                json!(now + 2 * LEEWAY),
            ),
            ("iat missing".to_owned(), Value::Null),
            ("iat a string".to_owned(), json!(now.to_string())),
        ];
        for (label, iat) in times {
            let mut c = proof_claims(&te);
            if let Some(o) = c.as_object_mut() {
                if iat.is_null() {
                    o.remove("iat");
                } else {
                    o.insert("iat".into(), iat);
                }
            }
            probe.refused(&mut f, &label, dpop_proof(&k, &c)).await;
        }
        // jti reuse: a proof that just served a successful request, sent again with another
        // ID-JAG.
        let proof = l2.proof(&k)?;
        match Minted::from_response(&probe.send(&[&proof]).await?) {
            Ok(first) => f.note(format!(
                "control (the first ID-JAG, valid proof, first use): 200 {}",
                first.token_type()
            )),
            Err(e) => f.fail(format!(
                "control (the first ID-JAG, valid proof, first use): {e} (if 400 \
                 invalid_grant, a probe above was accepted and used the ID-JAG up)"
            )),
        }
        let second = Probe::new(cx, &l2).await?;
        second
            .refused(
                &mut f,
                "the same proof (jti) again, another ID-JAG",
                Ok(proof),
            )
            .await;
        let mut missing = proof_claims(&te);
        if let Some(o) = missing.as_object_mut() {
            o.remove("jti");
        }
        second
            .refused(&mut f, "jti missing", dpop_proof(&k, &missing))
            .await;
        second.control(&mut f, &k).await;
        Ok(f.outcome())
    })
}

/// Adaptive: a valid proof without a nonce either gets `use_dpop_nonce` (the server requires
/// nonces: then the nonce it hands out must work) or 200 (it does not: SKIP).
fn i103_nonce<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let probe = Probe::new(cx, &l2).await?;
        let k = key()?;
        let resp = probe.send(&[&l2.proof(&k)?]).await?;
        if resp.status == 200 {
            return Ok(Outcome::skip(
                "the AS is not configured to require DPoP nonces (a valid proof without a nonce \
                 got 200; the dev server runs with require_dpop_nonce = false)",
            ));
        }
        let mut f = Findings::new();
        f.record(
            "proof without a nonce",
            expect_error(&resp, &[400], &["use_dpop_nonce"]),
        );
        let Some(nonce) = resp.header("dpop-nonce").map(str::to_owned) else {
            f.fail("use_dpop_nonce without a DPoP-Nonce header");
            return Ok(f.outcome());
        };
        let mut bad = proof_claims(&l2.token_endpoint);
        bad["nonce"] = json!(marker("nonce"));
        probe
            .refused_nonce(
                &mut f,
                "a nonce the server never issued",
                dpop_proof(&k, &bad),
            )
            .await;
        let mut good = proof_claims(&l2.token_endpoint);
        good["nonce"] = json!(nonce);
        let result = async {
            let proof = dpop_proof(&k, &good)?;
            Minted::from_response(&probe.send(&[&proof]).await?).map(|_| ())
        }
        .await;
        match result {
            Ok(()) => f.note("control (the issued nonce): 200"),
            Err(e) => f.fail(format!("control (the issued nonce): {e}")),
        }
        Ok(f.outcome())
    })
}

impl Probe<'_> {
    /// Records the refusal of `proof` with `use_dpop_nonce` (or `invalid_dpop_proof`) and a
    /// fresh `DPoP-Nonce`.
    async fn refused_nonce(&self, f: &mut Findings, label: &str, proof: Result<String, String>) {
        let result = match proof {
            Ok(p) => match self.send(&[&p]).await {
                Ok(resp) => expect_error(&resp, &[400], &["use_dpop_nonce", "invalid_dpop_proof"])
                    .and_then(|ok| {
                        if ok.ends_with("use_dpop_nonce") && resp.header("dpop-nonce").is_none() {
                            Err("use_dpop_nonce without a DPoP-Nonce header".to_owned())
                        } else {
                            Ok(ok)
                        }
                    }),
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("cannot build the proof: {e}")),
        };
        f.record(label, result);
    }
}

/// Needs an agent registered with `dpop_bound_access_tokens = true` (bootstrap says which).
fn i104_dpop_bound_agent<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = need!(Leg2::for_as(cx, iss));
        need!(dpop_supported(iss));
        let Some(agent_id) = l2
            .fx
            .agents()
            .iter()
            .find(|a| a.dpop_bound && a.enabled)
            .map(|a| a.client_id.clone())
        else {
            return Ok(Outcome::skip(
                "bootstrap lists no enabled agent with dpop_bound_access_tokens = true",
            ));
        };
        let agent = need!(l2.agent(&agent_id));
        // Its direct grant (no channel): alice, GitHub, repo.read.
        let ask = Ask {
            agent: &agent_id,
            channel: None,
            scope: Some("repo.read"),
            ..Ask::triage()
        };
        let jag = l2.id_jag(cx, &ask).await?;
        let mut f = Findings::new();
        let resp = l2.redeem(cx, agent, &jag.jwt).await?;
        f.record(
            &format!("{agent_id} without a DPoP header"),
            expect_error(&resp, &[400], &["invalid_request"]),
        );
        let k = key()?;
        let result = async {
            let proof = l2.proof(&k)?;
            let m = Minted::from_response(
                &l2.send(cx, agent, &Leg2::form(&jag.jwt), Some(&proof))
                    .await?,
            )?;
            if m.token_type().eq_ignore_ascii_case("DPoP") {
                Ok(())
            } else {
                Err(format!("token_type {:?}, not DPoP", m.token_type()))
            }
        }
        .await;
        match result {
            Ok(()) => f.note(format!(
                "control ({agent_id}, same ID-JAG with a proof): 200 DPoP"
            )),
            Err(e) => f.fail(format!(
                "control ({agent_id}, same ID-JAG with a proof): {e}"
            )),
        }
        Ok(f.outcome())
    })
}
