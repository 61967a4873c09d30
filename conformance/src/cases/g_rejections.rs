//! Checklist §3 G: jwt-bearer with an ID-JAG, rejections (lines 65–93). Each is 400
//! `invalid_grant` unless the line says otherwise.
//!
//! Every case starts from a real ID-JAG obtained through leg 1 (triage-bot for alice in the
//! eng channel, GitHub resource) and changes one thing. Where the change breaks the
//! signature, the forgery is signed by the dev test issuer (a second trusted issuer whose key
//! bootstrap hands out) when there is one, so the property under test is the only thing
//! wrong; otherwise the real ID-JAG is re-encoded and the case says so. Every case ends with
//! a control: the unaltered assertion MUST be accepted (for a real ID-JAG, after the probes,
//! which also shows that no refused probe used up its `jti`).

use std::net::TcpListener;

use serde_json::{Map, Value, json};

use super::fixture::{self, ALICE, Ask, DEPLOY, GITHUB, TRIAGE, need};
use super::leg2::{Forge, Leg2, TYP_ID_JAG, with_duplicate};
use super::{Case, CaseFuture, Ctx, Findings, Issuer, Outcome, Role, Target, check};
use crate::jwt::{self, Signer};
use crate::oauth::{self, expect_error, marker};

/// Section G, in checklist order.
pub const CASES: &[Case] = &[
    Case {
        id: "G65",
        line: 65,
        title: "missing assertion → 400 invalid_request",
        clause: "7523 §2.1",
        target: Target::Role(Role::As, g65_missing_assertion),
    },
    Case {
        id: "G66.segments",
        line: 66,
        title: "assertion with 2 or 4 segments → 400 invalid_grant",
        clause: "8725bis; 7519 §7.2",
        target: Target::Role(Role::As, g66_segments),
    },
    Case {
        id: "G66.base64url",
        line: 66,
        title: "real ID-JAG with + / = space or non-ASCII in a segment → 400 invalid_grant",
        clause: "8725bis; 7519 §7.2",
        target: Target::Role(Role::As, g66_base64url),
    },
    Case {
        id: "G66.json",
        line: 66,
        title: "header or payload not a JSON object → 400 invalid_grant",
        clause: "7519 §7.2",
        target: Target::Role(Role::As, g66_json),
    },
    Case {
        id: "G67",
        line: 67,
        title: "a JWE (5 segments), encryption not configured → 400 invalid_grant",
        clause: "8725 §3.3",
        target: Target::Role(Role::As, g67_jwe),
    },
    Case {
        id: "G68",
        line: 68,
        title: "typ absent, JWT, at+jwt, dpop+jwt, txntoken+jwt, client-authentication+jwt → 400",
        clause: "ID-JAG §4.4.1; 8725 §3.11–3.12",
        target: Target::Role(Role::As, g68_typ),
    },
    Case {
        id: "G69",
        line: 69,
        title: "iss missing or not a configured trusted issuer → 400 invalid_grant",
        clause: "ID-JAG §4.4.1",
        target: Target::Role(Role::As, g69_iss),
    },
    Case {
        id: "G70.own-issuer",
        line: 70,
        title: "iss = the AS role's own issuer → 400 invalid_grant",
        clause: "ID-JAG §9.3; D3",
        target: Target::Role(Role::As, g70_own_issuer),
    },
    Case {
        id: "G70.same-domain",
        line: 70,
        title: "iss = lanyard's IdP role in the same trust domain → 400 invalid_grant",
        clause: "ID-JAG §9.3; D3",
        target: Target::Role(Role::As, g70_same_domain),
    },
    Case {
        id: "G71",
        line: 71,
        title: "one signature byte flipped → 400 invalid_grant",
        clause: "7515 §5.2",
        target: Target::Role(Role::As, g71_flipped),
    },
    Case {
        id: "G72",
        line: 72,
        title: "alg none/None/NONE/nOnE, with or without a signature → 400 invalid_grant",
        clause: "8725 §3.1–3.2; 8725bis",
        target: Target::Role(Role::As, g72_alg_none),
    },
    Case {
        id: "G73",
        line: 73,
        title: "HS256 MACed with the issuer's public key (JWK or PEM) → 400 invalid_grant",
        clause: "8725 §2.1, §3.1",
        target: Target::Role(Role::As, g73_alg_confusion),
    },
    Case {
        id: "G74.pinned",
        line: 74,
        title: "alg outside the issuer's pinned set (RS256/PS256 for an ES256 issuer) → 400",
        clause: "8725 §3.1",
        target: Target::Role(Role::As, g74_pinned),
    },
    Case {
        id: "G74.mismatch",
        line: 74,
        title: "alg/key mismatch (ES256 header, kid of an RSA key) → 400 invalid_grant",
        clause: "8725 §3.1",
        target: Target::Role(Role::As, g74_mismatch),
    },
    Case {
        id: "G75",
        line: 75,
        title: "key only in a jwk/jku/x5u header → 400, and jku/x5u never fetched",
        clause: "8725 §3.10",
        target: Target::Role(Role::As, g75_header_keys),
    },
    Case {
        id: "G76",
        line: 76,
        title: "unknown kid, also after the rate-limited JWKS refresh → 400 invalid_grant",
        clause: "8725 §3.1",
        target: Target::Role(Role::As, g76_unknown_kid),
    },
    Case {
        id: "G77",
        line: 77,
        title: "crit naming an extension lanyard does not understand → 400 invalid_grant",
        clause: "7515 §4.1.11",
        target: Target::Role(Role::As, g77_crit),
    },
    Case {
        id: "G78",
        line: 78,
        title: "aud missing, another server, [lanyard, other], or the token endpoint → 400",
        clause: "ID-JAG §4.4.1",
        target: Target::Role(Role::As, g78_aud),
    },
    Case {
        id: "G79",
        line: 79,
        title: "aud ≠ issuer only by trailing slash, case or percent-encoding → 400 (exact match)",
        clause: "7523bis; 3986 §6.2.1",
        target: Target::Role(Role::As, g79_aud_exact),
    },
    Case {
        id: "G80",
        line: 80,
        title: "client_id missing or ≠ the authenticated agent (agent A's ID-JAG by agent B) → 400",
        clause: "ID-JAG §4.4.1",
        target: Target::Role(Role::As, g80_client_id),
    },
    Case {
        id: "G81.reject",
        line: 81,
        title: "exp missing, non-numeric, or past beyond the leeway → 400 invalid_grant",
        clause: "7523 §3",
        target: Target::Role(Role::As, g81_exp_reject),
    },
    Case {
        id: "G81.leeway",
        line: 81,
        title: "exp past by less than the leeway → 200",
        clause: "7523 §3",
        target: Target::Role(Role::As, g81_exp_leeway),
    },
    Case {
        id: "G82",
        line: 82,
        title: "iat missing or beyond the leeway in the future; nbf beyond it → 400 invalid_grant",
        clause: "7519 §4.1.5; ID-JAG §3.1",
        target: Target::Role(Role::As, g82_iat_nbf),
    },
    Case {
        id: "G83",
        line: 83,
        title: "exp − iat > 600 s → 400 invalid_grant (600 s exactly is accepted)",
        clause: "7523 §3 item 4",
        target: Target::Role(Role::As, g83_lifetime),
    },
    Case {
        id: "G84",
        line: 84,
        title: "jti missing, empty, not a string, or longer than 256 characters → 400",
        clause: "ID-JAG §3.1",
        target: Target::Role(Role::As, g84_jti),
    },
    Case {
        id: "G85.replay",
        line: 85,
        title: "the same (iss, jti) a second time before exp → 400 invalid_grant",
        clause: "D2; MCP EMA §7.4.2",
        target: Target::Role(Role::As, g85_replay),
    },
    Case {
        id: "G85.reuse-allowed",
        line: 85,
        title: "an issuer configured to allow reuse → 200 both times",
        clause: "D2",
        target: Target::Role(Role::As, g85_reuse_allowed),
    },
    Case {
        id: "G86.sub",
        line: 86,
        title: "sub missing, empty or not a string → 400 invalid_grant",
        clause: "chaining §2.4.2; 8725 §3.8",
        target: Target::Role(Role::As, g86_sub),
    },
    Case {
        id: "G86.unknown",
        line: 86,
        title: "sub not resolvable to a known human, JIT provisioning disabled → 400",
        clause: "chaining §2.4.2",
        target: Target::Role(Role::As, g86_unknown_human),
    },
    Case {
        id: "G87",
        line: 87,
        title: "resource claim naming a resource this RAS does not serve → 400 invalid_grant",
        clause: "D5; MCP EMA §7.6.2",
        target: Target::Role(Role::As, g87_foreign_resource),
    },
    Case {
        id: "G88",
        line: 88,
        title: "request resource outside the ID-JAG resource set → 400 invalid_target",
        clause: "8707 §2.2",
        target: Target::Role(Role::As, g88_resource_param),
    },
    Case {
        id: "G89",
        line: 89,
        title: "request scope absent from the ID-JAG → 400 invalid_scope",
        clause: "7521 §4.1",
        target: Target::Role(Role::As, g89_scope_param),
    },
    Case {
        id: "G90.claim",
        line: 90,
        title: "authorization_details claim not a valid RFC 9396 array → 400 invalid_grant",
        clause: "9396 §5",
        target: Target::Role(Role::As, g90_details_claim),
    },
    Case {
        id: "G90.request",
        line: 90,
        title: "request authorization_details beyond the claim → 400 invalid_authorization_details",
        clause: "9396 §5",
        target: Target::Role(Role::As, g90_details_request),
    },
    Case {
        id: "G91",
        line: 91,
        title: "duplicate member names in the JOSE header or payload → 400 invalid_grant",
        clause: "7515 §4; 7519 §4; lanyard choice",
        target: Target::Role(Role::As, g91_duplicates),
    },
    Case {
        id: "G92",
        line: 92,
        title: "ES256 signature in DER form or not 64 bytes → 400 invalid_grant",
        clause: "7518 §3.4",
        target: Target::Role(Role::As, g92_es256_form),
    },
    Case {
        id: "G93",
        line: 93,
        title: "workload JWT (typ JWT, aud = token endpoint) as the assertion → 400, and vice versa",
        clause: "8725 §3.12",
        target: Target::Role(Role::As, g93_workload),
    },
];

/// Leeway (checklist notation).
const LEEWAY: i64 = 60;

/// Who holds a key, the public JWK, and the claims to MAC under it (G73).
type KeyTarget = (String, Map<String, Value>, Map<String, Value>);

/// Encoded JSON bytes, or why they could not be made.
type Bytes = Result<Vec<u8>, String>;

/// The leg-2 fixture and triage-bot, or return the SKIP.
macro_rules! setup {
    ($cx:expr, $iss:expr) => {{
        let l2 = need!(Leg2::for_as($cx, $iss));
        need!(l2.agent(TRIAGE));
        l2
    }};
}

fn triage(l2: &Leg2) -> Result<&fixture::Agent, String> {
    l2.agent(TRIAGE)
        .map_err(|_| "bootstrap lists no demo agent triage-bot".to_owned())
}

fn g65_missing_assertion<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let issued = l2.id_jag(cx, &Ask::triage()).await?;
        let mut f = Findings::new();
        let form = Leg2::form(&issued.jwt).without("assertion");
        let resp = l2.send(cx, agent, &form, None).await?;
        f.record(
            "no assertion",
            expect_error(&resp, &[400], &["invalid_request"]),
        );
        let form = Leg2::form(&issued.jwt).with("assertion", "");
        let resp = l2.send(cx, agent, &form, None).await?;
        f.record(
            "empty assertion",
            expect_error(&resp, &[400], &["invalid_request", "invalid_grant"]),
        );
        match l2.accepted(cx, agent, &issued.jwt).await {
            Ok(_) => f.note("control (the same request with the assertion): 200"),
            Err(e) => f.fail(format!(
                "control (the same request with the assertion): {e}"
            )),
        }
        Ok(f.outcome())
    })
}

fn g66_segments<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag().jwt.clone();
        let (input, sig) = real.rsplit_once('.').ok_or("ID-JAG is not a compact JWS")?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "2 segments (signature dropped)",
                Ok(input.to_owned()),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "4 segments (signature repeated)",
                Ok(format!("{real}.{sig}")),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "3 segments, trailing dot",
                Ok(format!("{real}.")),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// The real ID-JAG's own bytes with characters a lenient base64 decoder would skip or
/// accept: a server that decodes that leniently verifies the real signature and accepts.
fn g66_base64url<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag().jwt.clone();
        let parts: Vec<&str> = real.split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Err("ID-JAG is not a compact JWS".to_owned());
        };
        let mut f = Findings::new();
        // '=' padding on the segment that needs it (an ES256 signature always does).
        let padded = [*h, *p, *s]
            .iter()
            .position(|seg| seg.len() % 4 != 0)
            .map(|i| {
                let mut segs = [h.to_string(), p.to_string(), s.to_string()];
                let pad = "=".repeat((4 - segs[i].len() % 4) % 4);
                segs[i].push_str(&pad);
                segs.join(".")
            });
        match padded {
            Some(t) => forge.probe(cx, &mut f, "'=' padding", Ok(t)).await,
            None => f.note("no segment needs padding: '=' not tried"),
        }
        // The standard alphabet: '-' → '+', '_' → '/'.
        let standard: String = real
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '/',
                c => c,
            })
            .collect();
        if standard == real {
            f.note("the ID-JAG has no '-' or '_': '+' '/' not tried");
        } else {
            forge
                .probe(cx, &mut f, "standard alphabet ('+', '/')", Ok(standard))
                .await;
        }
        let mid = p.len() / 2;
        let (p1, p2) = p.split_at(mid);
        forge
            .probe(
                cx,
                &mut f,
                "a space inside the payload",
                Ok(format!("{h}.{p1} {p2}.{s}")),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "a newline inside the payload",
                Ok(format!("{h}.{p1}\n{p2}.{s}")),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "non-ASCII 'é' inside the payload",
                Ok(format!("{h}.{p1}é{p2}.{s}")),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g66_json<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let (h, c) = forge.base();
        let hj = serde_json::to_vec(&h).map_err(|e| e.to_string())?;
        let cj = serde_json::to_vec(&c).map_err(|e| e.to_string())?;
        let header_array =
            serde_json::to_vec(&json!([Value::Object(h.clone())])).map_err(|e| e.to_string())?;
        let claims_array =
            serde_json::to_vec(&json!([Value::Object(c.clone())])).map_err(|e| e.to_string())?;
        let mut f = Findings::new();
        let probes: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            ("header a JSON array", header_array, cj.clone()),
            ("header a JSON string", b"\"ES256\"".to_vec(), cj.clone()),
            ("header not JSON", b"alg=ES256".to_vec(), cj.clone()),
            ("payload a JSON array", hj.clone(), claims_array),
            ("payload a JSON number", hj.clone(), b"42".to_vec()),
            ("payload not JSON", hj.clone(), b"iss=x&sub=y".to_vec()),
            (
                "payload JSON with trailing garbage",
                hj,
                [cj, b"}".to_vec()].concat(),
            ),
        ];
        for (label, header, payload) in probes {
            forge
                .probe(cx, &mut f, label, forge.raw(&header, &payload))
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g67_jwe<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let header =
            json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "typ": TYP_ID_JAG, "cty": "JWT"});
        let jwe = format!(
            "{}.{}.{}.{}.{}",
            jwt::b64url(header.to_string()),
            jwt::b64url(marker("cek")),
            jwt::b64url(&marker("iv")[..12]),
            jwt::b64url(forge.real_id_jag().jwt.as_bytes()),
            jwt::b64url(&marker("tag")[..16]),
        );
        let mut f = Findings::new();
        forge.probe(cx, &mut f, "5-segment JWE", Ok(jwe)).await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g68_typ<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "typ absent",
                forge.forge(|h, _| {
                    h.remove("typ");
                }),
            )
            .await;
        for typ in [
            "JWT",
            "at+jwt",
            "application/at+jwt",
            "dpop+jwt",
            "txntoken+jwt",
            "client-authentication+jwt",
            "id-jag+jwt",
            "oauth-id-jag",
        ] {
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("typ {typ:?}"),
                    forge.forge(|h, _| {
                        h.insert("typ".into(), json!(typ));
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g69_iss<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "iss missing",
                forge.forge(|_, c| {
                    c.remove("iss");
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "iss null",
                forge.forge(|_, c| {
                    c.insert("iss".into(), Value::Null);
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "iss of an unconfigured issuer",
                forge.forge(|_, c| {
                    c.insert("iss".into(), json!("https://untrusted-idp.invalid/"));
                }),
            )
            .await;
        // Signed by a key of the unconfigured issuer itself (the runner's).
        let (_, claims) = forge.base();
        let mut claims = claims;
        claims.insert("iss".into(), json!("https://untrusted-idp.invalid/"));
        let own = Signer::ephemeral_es256(&marker("kid"))?;
        let mut header = Map::new();
        header.insert("typ".into(), json!(TYP_ID_JAG));
        forge
            .probe(
                cx,
                &mut f,
                "unconfigured issuer, signed with its own key",
                own.sign_with_header(header, &Value::Object(claims)),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// The AS role's own issuer as `iss`: the RAS's own trust domain is not an ID-JAG issuer.
fn g70_own_issuer<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        if l2.fx.idp_issuer == l2.as_issuer {
            f.fail(format!(
                "the IdP role and the AS role share the issuer {:?}: one trust domain holds \
                 both roles (D3)",
                l2.as_issuer
            ));
        } else {
            f.note(format!(
                "IdP-role issuer {:?} ≠ AS issuer {:?}",
                l2.fx.idp_issuer, l2.as_issuer
            ));
        }
        let as_issuer = l2.as_issuer.clone();
        forge
            .probe(
                cx,
                &mut f,
                "iss = the AS role's own issuer",
                forge.forge(|_, c| {
                    c.insert("iss".into(), json!(as_issuer));
                }),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g70_same_domain<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        Ok(Outcome::skip(format!(
            "needs a deployment whose AS does not name its own IdP role ({}) in \
             [[trusted_issuer]]; the dev server names it there as a separate trust domain \
             (D3's allowed case, which F60 exercises), and the runner cannot sign as the IdP \
             role; G70.own-issuer covers the AS's own issuer",
            l2.fx.idp_issuer
        )))
    })
}

fn g71_flipped<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag().jwt.clone();
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "one signature bit flipped",
                jwt::flip_signature_bit(&real),
            )
            .await;
        // The last base64url character carries padding bits for a 64-byte signature: change
        // a middle character instead so the decoded bytes certainly differ.
        let (input, sig) = real.rsplit_once('.').ok_or("not a compact JWS")?;
        let mut chars: Vec<char> = sig.chars().collect();
        let i = chars.len() / 3;
        if let Some(c) = chars.get_mut(i) {
            *c = if *c == 'A' { 'B' } else { 'A' };
        }
        let changed: String = chars.into_iter().collect();
        forge
            .probe(
                cx,
                &mut f,
                "one signature character changed",
                Ok(format!("{input}.{changed}")),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g72_alg_none<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag();
        let sig = jwt::signature_segment(&real.jwt).to_owned();
        let mut f = Findings::new();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let mut h = real.decoded.header.clone();
            h.insert("alg".into(), json!(alg));
            let c = &real.decoded.claims;
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("alg {alg:?}, empty signature"),
                    jwt::reencode(&h, c, ""),
                )
                .await;
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("alg {alg:?}, real signature kept"),
                    jwt::reencode(&h, c, &sig),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// HS256 with the issuer's public key as the HMAC secret: the JWK JSON as published and,
/// for P-256 keys, the PEM. Tried against the IdP role's keys and, when present, the test
/// issuer's (whose claims then carry its `iss`).
fn g73_alg_confusion<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let idp = cx
            .with_role(Role::Idp)
            .find(|i| i.issuer == l2.fx.idp_issuer)
            .ok_or("the IdP-role issuer is not under test")?;
        let keys = fixture::jwks(cx, idp).await?;
        let real = forge.real_id_jag();
        let mut targets: Vec<KeyTarget> = keys
            .into_iter()
            .map(|k| ("IdP role".to_owned(), k, real.decoded.claims.clone()))
            .collect();
        if let Some(t) = l2.test_issuer_opt() {
            let mut public = t.public_jwk.clone();
            public.insert("kid".into(), json!(t.kid));
            targets.push(("test issuer".to_owned(), public, t.claims_from(real)));
        }
        let mut f = Findings::new();
        for (who, key, claims) in targets {
            let kid = key
                .get("kid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut secrets: Vec<(String, Vec<u8>)> = vec![(
                "JWK JSON".to_owned(),
                serde_json::to_vec(&key).map_err(|e| e.to_string())?,
            )];
            if let Ok(pem) = jwt::p256_public_pem(&key) {
                secrets.push(("PEM".to_owned(), pem.into_bytes()));
            }
            for (form, secret) in secrets {
                let mut header = Map::new();
                header.insert("typ".into(), json!(TYP_ID_JAG));
                let token = Signer::hs256(&secret, &kid)
                    .and_then(|s| s.sign_with_header(header, &Value::Object(claims.clone())));
                forge
                    .probe(cx, &mut f, &format!("{who} key {kid:?} as {form}"), token)
                    .await;
            }
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g74_pinned<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag();
        let real_alg = real
            .decoded
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kid = real
            .decoded
            .header
            .get("kid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if real_alg.starts_with("RS") || real_alg.starts_with("PS") {
            return Ok(Outcome::skip(format!(
                "the IdP role signs with {real_alg}: this case sends RSA algorithms to an EC issuer"
            )));
        }
        let mut f = Findings::new();
        let mut header = Map::new();
        header.insert("typ".into(), json!(TYP_ID_JAG));
        let rsa = Signer::ephemeral_rs256(&kid)?;
        forge
            .probe(
                cx,
                &mut f,
                &format!("RS256 under the {real_alg} issuer's kid"),
                rsa.sign_with_header(header.clone(), &Value::Object(real.decoded.claims.clone())),
            )
            .await;
        if let Some(t) = l2.test_issuer_opt() {
            let rsa = Signer::ephemeral_rs256(&t.kid)?;
            forge
                .probe(
                    cx,
                    &mut f,
                    "RS256 under the ES256-pinned test issuer's kid",
                    rsa.sign_with_header(header, &Value::Object(t.claims_from(real))),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// Needs a trusted ID-JAG issuer publishing an RSA key: then an ES256 header names it.
fn g74_mismatch<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let idp = cx
            .with_role(Role::Idp)
            .find(|i| i.issuer == l2.fx.idp_issuer)
            .ok_or("the IdP-role issuer is not under test")?;
        let keys = fixture::jwks(cx, idp).await?;
        let Some(rsa_kid) = keys
            .iter()
            .find(|k| k.get("kty").and_then(Value::as_str) == Some("RSA"))
            .and_then(|k| k.get("kid").and_then(Value::as_str))
            .map(str::to_owned)
        else {
            return Ok(Outcome::skip(
                "no trusted ID-JAG issuer here publishes an RSA key (the IdP role's JWKS and the \
                 test issuer hold EC keys only), so no kid of an RSA key can be named; \
                 G74.pinned covers the algorithm pin",
            ));
        };
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let mut header = Map::new();
        header.insert("typ".into(), json!(TYP_ID_JAG));
        let ec = Signer::ephemeral_es256(&rsa_kid)?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "ES256 header naming an RSA key's kid",
                ec.sign_with_header(
                    header,
                    &Value::Object(forge.real_id_jag().decoded.claims.clone()),
                ),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// Signed by a runner key that the header carries (`jwk`) or points to (`jku`, `x5u` on a
/// listener of the runner's): the server must neither trust nor fetch it.
fn g75_header_keys<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let kid = marker("kid");
        let own = Signer::ephemeral_es256(&kid)?;
        let public = Value::Object(own.public_jwk().cloned().unwrap_or_default());
        let claims = Value::Object(forge.real_id_jag().decoded.claims.clone());
        let mut f = Findings::new();
        let variants: Vec<(&str, &str, Value)> = vec![
            ("jwk", "key in a jwk header", public.clone()),
            (
                "jku",
                "key behind a jku URL",
                json!(format!("http://127.0.0.1:{port}/jwks.json")),
            ),
            (
                "x5u",
                "key behind an x5u URL",
                json!(format!("http://127.0.0.1:{port}/cert.pem")),
            ),
        ];
        for (member, label, value) in variants {
            let mut header = Map::new();
            header.insert("typ".into(), json!(TYP_ID_JAG));
            header.insert(member.into(), value);
            forge
                .probe(cx, &mut f, label, own.sign_with_header(header, &claims))
                .await;
        }
        let server_local = url::Url::parse(&l2.token_endpoint)
            .map(|u| oauth::is_loopback(&u))
            .unwrap_or(false);
        match listener.accept() {
            Ok((_, peer)) => f.fail(format!(
                "the server connected to the jku/x5u listener (from {peer}): header URLs must \
                 never be fetched"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if server_local {
                    f.note("jku/x5u listener never contacted");
                } else {
                    f.note("jku/x5u listener not contacted (server not on loopback: it could not reach it anyway)");
                }
            }
            Err(e) => f.note(format!("listener check inconclusive: {e}")),
        }
        f.note("x5c not tried: the runner cannot mint an X.509 chain");
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g76_unknown_kid<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag();
        let mut header = Map::new();
        header.insert("typ".into(), json!(TYP_ID_JAG));
        let claims = Value::Object(real.decoded.claims.clone());
        let mut f = Findings::new();
        for attempt in ["first try", "again, after the refresh it triggered"] {
            let own = Signer::ephemeral_es256(&marker("kid"))?;
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("runner key under an unknown kid ({attempt})"),
                    own.sign_with_header(header.clone(), &claims),
                )
                .await;
        }
        // The trusted issuer's genuine signature under a kid it does not publish.
        let mut h = real.decoded.header.clone();
        h.insert("kid".into(), json!(marker("kid")));
        forge
            .probe(
                cx,
                &mut f,
                "real signature, kid replaced by an unknown one",
                jwt::reencode(&h, &real.decoded.claims, jwt::signature_segment(&real.jwt)),
            )
            .await;
        if let Some(t) = l2.test_issuer_opt() {
            let mut h = t.header();
            h.insert("kid".into(), json!(marker("kid")));
            forge
                .probe(
                    cx,
                    &mut f,
                    "test issuer's genuine signature under an unknown kid",
                    t.sign(&h, &t.claims_from(real)),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g77_crit<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "crit [\"urn:example:ext\"] with the member",
                forge.forge(|h, _| {
                    h.insert("crit".into(), json!(["urn:example:ext"]));
                    h.insert("urn:example:ext".into(), json!(true));
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "crit [\"b64\"] with b64 false",
                forge.forge(|h, _| {
                    h.insert("crit".into(), json!(["b64"]));
                    h.insert("b64".into(), json!(false));
                }),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g78_aud<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let me = l2.as_issuer.clone();
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "aud missing",
                forge.forge(|_, c| {
                    c.remove("aud");
                }),
            )
            .await;
        let values = [
            (
                "another server's issuer",
                json!("https://other-as.example/"),
            ),
            ("[lanyard, other]", json!([me, "https://other-as.example/"])),
            ("[other, lanyard]", json!(["https://other-as.example/", me])),
            ("[lanyard, lanyard]", json!([me, me])),
            ("[]", json!([])),
            ("the token endpoint URL", json!(l2.token_endpoint)),
            ("the IdP role's issuer", json!(l2.fx.idp_issuer)),
        ];
        for (label, aud) in values {
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("aud {label}"),
                    forge.forge(|_, c| {
                        c.insert("aud".into(), aud);
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// Variants of the issuer that RFC 3986 normalisation would call equal.
fn near_misses(issuer: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match issuer.strip_suffix('/') {
        Some(bare) => out.push(("trailing slash removed", bare.to_owned())),
        None => out.push(("trailing slash added", format!("{issuer}/"))),
    }
    out.push(("upper case", issuer.to_ascii_uppercase()));
    if let Ok(u) = url::Url::parse(issuer) {
        let host_upper = issuer.replacen(
            u.host_str().unwrap_or_default(),
            &u.host_str().unwrap_or_default().to_ascii_uppercase(),
            1,
        );
        if host_upper != issuer {
            out.push(("host in upper case", host_upper));
        }
        // Percent-encode the first unreserved letter of the path.
        let path = u.path();
        if let Some((i, ch)) = path.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
            let start = issuer.len() - path.len() - u.query().map_or(0, |q| q.len() + 1);
            let at = start + i;
            if issuer.get(at..at + 1) == Some(&ch.to_string()) {
                out.push((
                    "percent-encoded path letter",
                    format!("{}%{:02X}{}", &issuer[..at], ch as u32, &issuer[at + 1..]),
                ));
            }
        }
        if u.port().is_none() {
            let default = if u.scheme() == "https" { 443 } else { 80 };
            let host = u.host_str().unwrap_or_default();
            out.push((
                "explicit default port",
                issuer.replacen(host, &format!("{host}:{default}"), 1),
            ));
        }
    }
    out
}

fn g79_aud_exact<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        for (label, aud) in near_misses(&l2.as_issuer) {
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("{label} ({aud})"),
                    forge.forge(|_, c| {
                        c.insert("aud".into(), json!(aud));
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g80_client_id<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        need!(l2.agent(DEPLOY));
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "client_id missing",
                forge.forge(|_, c| {
                    c.remove("client_id");
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "client_id deploy-bot, presented by triage-bot",
                forge.forge(|_, c| {
                    c.insert("client_id".into(), json!(DEPLOY));
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "client_id \"TRIAGE-BOT\" (case differs)",
                forge.forge(|_, c| {
                    c.insert("client_id".into(), json!(TRIAGE.to_ascii_uppercase()));
                }),
            )
            .await;
        // A genuine ID-JAG minted for deploy-bot, presented by triage-bot.
        let deploy_jag = l2.id_jag(cx, &Ask::deploy()).await?;
        forge
            .probe(
                cx,
                &mut f,
                "real ID-JAG minted for deploy-bot, presented by triage-bot",
                Ok(deploy_jag.jwt),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g81_exp_reject<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let now = jwt::now();
        let mut f = Findings::new();
        let edits: Vec<(&str, Option<Value>, Option<i64>)> = vec![
            ("exp missing", None, None),
            ("exp a string", Some(json!((now + 300).to_string())), None),
            ("exp null", Some(Value::Null), None),
            ("exp negative", Some(json!(-1)), None),
            (
                "exp past by twice the leeway",
                Some(json!(now - 2 * LEEWAY)),
                Some(now - 2 * LEEWAY - 300),
            ),
        ];
        for (label, exp, iat) in edits {
            forge
                .probe(
                    cx,
                    &mut f,
                    label,
                    forge.forge(|_, c| {
                        match exp {
                            Some(v) => c.insert("exp".into(), v),
                            None => c.remove("exp"),
                        };
                        if let Some(i) = iat {
                            c.insert("iat".into(), json!(i));
                        }
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// Only a trusted issuer's valid signature can show acceptance: needs the test issuer.
fn g81_exp_leeway<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let t = need!(l2.test_issuer());
        let agent = triage(&l2)?;
        let real = l2.id_jag(cx, &Ask::triage()).await?;
        let now = jwt::now();
        let mut claims = t.claims_from(&real);
        claims.insert("exp".into(), json!(now - LEEWAY / 2));
        claims.insert("iat".into(), json!(now - LEEWAY / 2 - 300));
        let token = t.sign(&t.header(), &claims)?;
        l2.accepted(cx, agent, &token).await?;
        Ok(Outcome::pass(format!(
            "exp {} s ago (leeway {LEEWAY} s), signed by the dev test issuer: 200",
            LEEWAY / 2
        )))
    })
}

fn g82_iat_nbf<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let now = jwt::now();
        let ahead = now + 2 * LEEWAY;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "iat missing",
                forge.forge(|_, c| {
                    c.remove("iat");
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "iat a string",
                forge.forge(|_, c| {
                    c.insert("iat".into(), json!(now.to_string()));
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "iat twice the leeway in the future",
                forge.forge(|_, c| {
                    c.insert("iat".into(), json!(ahead));
                    c.insert("exp".into(), json!(ahead + 300));
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "nbf twice the leeway in the future",
                forge.forge(|_, c| {
                    c.insert("nbf".into(), json!(ahead));
                }),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g83_lifetime<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let now = jwt::now();
        let mut f = Findings::new();
        for lifetime in [601, 3600, 86_400 * 365] {
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("exp − iat = {lifetime} s"),
                    forge.forge(|_, c| {
                        c.insert("iat".into(), json!(now));
                        c.insert("exp".into(), json!(now + lifetime));
                    }),
                )
                .await;
        }
        // The ceiling itself is accepted (only a trusted signature can show it).
        if let Some(t) = l2.test_issuer_opt() {
            let mut c = t.claims_from(forge.real_id_jag());
            c.insert("iat".into(), json!(now));
            c.insert("exp".into(), json!(now + 600));
            let result = match t.sign(&t.header(), &c) {
                Ok(token) => l2
                    .accepted(cx, agent, &token)
                    .await
                    .map(|_| "200".to_owned()),
                Err(e) => Err(e),
            };
            f.record("exp − iat = 600 s exactly (test issuer)", result);
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g84_jti<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        let long = "j".repeat(257);
        let edits: Vec<(&str, Option<Value>)> = vec![
            ("jti missing", None),
            ("jti empty", Some(json!(""))),
            ("jti a number", Some(json!(12_345_678))),
            ("jti null", Some(Value::Null)),
            ("jti of 257 characters", Some(json!(long))),
        ];
        for (label, jti) in edits {
            forge
                .probe(
                    cx,
                    &mut f,
                    label,
                    forge.forge(|_, c| {
                        match jti {
                            Some(v) => c.insert("jti".into(), v),
                            None => c.remove("jti"),
                        };
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g85_replay<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let issued = l2.id_jag(cx, &Ask::triage()).await?;
        l2.accepted(cx, agent, &issued.jwt)
            .await
            .map_err(|e| format!("first presentation: {e}"))?;
        let second = l2.refused(cx, agent, &issued.jwt).await;
        let second = second.map_err(|e| format!("second presentation of the same ID-JAG: {e}"))?;
        Ok(Outcome::pass(format!(
            "IdP-role ID-JAG (default single use): first 200, second {second}"
        )))
    })
}

fn g85_reuse_allowed<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let t = need!(l2.test_issuer());
        if !t.allow_jti_reuse {
            return Ok(Outcome::skip(
                "bootstrap's test issuer is not configured with allow_jti_reuse: no issuer \
                 allowing reuse to test",
            ));
        }
        let agent = triage(&l2)?;
        let real = l2.id_jag(cx, &Ask::triage()).await?;
        let token = t.sign(&t.header(), &t.claims_from(&real))?;
        let mut f = Findings::new();
        for n in ["first", "second", "third"] {
            f.record(
                &format!("{n} presentation"),
                l2.accepted(cx, agent, &token)
                    .await
                    .map(|_| "200".to_owned()),
            );
        }
        f.note("the same test-issuer ID-JAG (allow_jti_reuse = true)");
        Ok(f.outcome())
    })
}

fn g86_sub<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        let edits: Vec<(&str, Option<Value>)> = vec![
            ("sub missing", None),
            ("sub empty", Some(json!(""))),
            ("sub a number", Some(json!(42))),
            ("sub an object", Some(json!({"id": ALICE}))),
            ("sub null", Some(Value::Null)),
        ];
        for (label, sub) in edits {
            forge
                .probe(
                    cx,
                    &mut f,
                    label,
                    forge.forge(|_, c| {
                        match sub {
                            Some(v) => c.insert("sub".into(), v),
                            None => c.remove("sub"),
                        };
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g86_unknown_human<'a>(_cx: &'a Ctx, _iss: &'a Issuer) -> CaseFuture<'a> {
    check(async {
        Ok(Outcome::skip(
            "lanyard's resource AS keeps no directory of humans and has no JIT-provisioning \
             switch: any non-empty string sub from a trusted issuer becomes the token's \
             subject, so the 'JIT provisioning disabled' configuration does not exist to test",
        ))
    })
}

fn g87_foreign_resource<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let mut f = Findings::new();
        let values = [
            (
                "a resource nobody serves",
                json!("https://unknown-rs.example/"),
            ),
            (
                "[GitHub, a resource nobody serves]",
                json!([GITHUB, "https://unknown-rs.example/"]),
            ),
            (
                "GitHub with a different case",
                json!(GITHUB.to_ascii_uppercase()),
            ),
        ];
        for (label, resource) in values {
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("resource claim {label}"),
                    forge.forge(|_, c| {
                        c.insert("resource".into(), resource);
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// A real ID-JAG for GitHub; the request names another resource.
fn g88_resource_param<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let jwt = forge.real_id_jag().jwt.clone();
        let other = cx
            .bootstrap
            .as_ref()
            .and_then(|b| b.get("resources"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().filter_map(Value::as_str).find(|r| *r != GITHUB))
            .map(str::to_owned);
        let mut f = Findings::new();
        let mut probes = vec![(
            "https://unknown.example/".to_owned(),
            "a resource nobody serves",
        )];
        if let Some(o) = other {
            probes.insert(0, (o, "another resource this AS serves"));
        }
        for (resource, label) in probes {
            let form = Leg2::form(&jwt).plus("resource", &resource);
            let resp = l2.send(cx, agent, &form, None).await?;
            f.record(
                &format!("{label} ({resource})"),
                expect_error(&resp, &[400], &["invalid_target"]),
            );
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g89_scope_param<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let jwt = forge.real_id_jag().jwt.clone();
        let mut f = Findings::new();
        for scope in ["pull_request.create", "repo.read pull_request.create"] {
            let form = Leg2::form(&jwt).plus("scope", scope);
            let resp = l2.send(cx, agent, &form, None).await?;
            f.record(
                &format!("scope {scope:?}"),
                expect_error(&resp, &[400], &["invalid_scope"]),
            );
        }
        f.note(format!(
            "ID-JAG scope {}",
            forge
                .real_id_jag()
                .claim("scope")
                .map_or_else(|| "-".to_owned(), Value::to_string)
        ));
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g90_details_claim<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let element =
            json!({"type": "lanyard_action", "actions": ["repo.read"], "locations": [GITHUB]});
        let values = [
            ("an object, not an array", element.clone()),
            (
                "a JSON string of the array",
                json!(json!([element]).to_string()),
            ),
            (
                "an element without type",
                json!([{"actions": ["repo.read"], "locations": [GITHUB]}]),
            ),
            (
                "an element with a numeric type",
                json!([{"type": 7, "actions": ["repo.read"]}]),
            ),
            (
                "an element that is not an object",
                json!(["lanyard_action"]),
            ),
        ];
        let mut f = Findings::new();
        for (label, details) in values {
            forge
                .probe(
                    cx,
                    &mut f,
                    &format!("authorization_details {label}"),
                    forge.forge(|_, c| {
                        c.insert("authorization_details".into(), details);
                    }),
                )
                .await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g90_details_request<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let jwt = forge.real_id_jag().jwt.clone();
        let beyond = json!([{"type": "lanyard_action", "actions": ["pull_request.create"], "locations": [GITHUB]}]);
        let mixed = json!([{"type": "lanyard_action", "actions": ["repo.read", "pull_request.merge"], "locations": [GITHUB]}]);
        let mut f = Findings::new();
        for (label, details) in [
            ("an action the claim lacks", beyond),
            ("one granted and one not", mixed),
        ] {
            let form = Leg2::form(&jwt).plus("authorization_details", &details.to_string());
            let resp = l2.send(cx, agent, &form, None).await?;
            f.record(
                label,
                expect_error(&resp, &[400], &["invalid_authorization_details"]),
            );
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

fn g91_duplicates<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let (h, c) = forge.base();
        let enc = |m: &Map<String, Value>| serde_json::to_vec(m).map_err(|e| e.to_string());
        let get = |m: &Map<String, Value>, k: &str| m.get(k).cloned().unwrap_or(Value::Null);
        let mut f = Findings::new();
        // Same value twice: a parser keeping either copy accepts, so only a duplicate check
        // refuses.
        let probes: Vec<(&str, Bytes, Bytes)> = vec![
            (
                "header typ twice (same value)",
                with_duplicate(&h, "typ", &get(&h, "typ")),
                enc(&c),
            ),
            (
                "header alg twice (same value)",
                with_duplicate(&h, "alg", &get(&h, "alg")),
                enc(&c),
            ),
            (
                "header kid twice (same value)",
                with_duplicate(&h, "kid", &get(&h, "kid")),
                enc(&c),
            ),
            (
                "payload aud twice (same value)",
                enc(&h),
                with_duplicate(&c, "aud", &get(&c, "aud")),
            ),
            (
                "payload aud twice (other server first)",
                enc(&h),
                with_duplicate(&c, "aud", &json!("https://other-as.example/")),
            ),
            (
                "payload sub twice (bob first)",
                enc(&h),
                with_duplicate(&c, "sub", &json!("00u-bob")),
            ),
            (
                "payload client_id twice (same value)",
                enc(&h),
                with_duplicate(&c, "client_id", &get(&c, "client_id")),
            ),
            (
                "payload unregistered member twice",
                enc(&h),
                with_duplicate(
                    &[("x-lanyard-test".to_owned(), json!(1))]
                        .into_iter()
                        .chain(c.clone())
                        .collect(),
                    "x-lanyard-test",
                    &json!(2),
                ),
            ),
        ];
        for (label, header, payload) in probes {
            let token = match (header, payload) {
                (Ok(hh), Ok(pp)) => forge.raw(&hh, &pp),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            forge.probe(cx, &mut f, label, token).await;
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// The real ES256 signature re-encoded in DER: a verifier that accepts DER accepts it, the
/// real issuer's genuine signature.
fn g92_es256_form<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::real(cx, &l2, agent, &Ask::triage()).await?;
        let real = forge.real_id_jag().jwt.clone();
        let alg = forge
            .real_id_jag()
            .decoded
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("");
        if alg != "ES256" {
            return Ok(Outcome::skip(format!(
                "the IdP role signs with {alg}, not ES256"
            )));
        }
        let (input, sig) = real.rsplit_once('.').ok_or("not a compact JWS")?;
        let raw = jwt::b64url_decode(sig).map_err(|e| format!("signature: {e}"))?;
        let der = jwt::es256_raw_to_der(&raw)?;
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                &format!("DER form ({} bytes)", der.len()),
                Ok(format!("{input}.{}", jwt::b64url(&der))),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "63 bytes (last byte dropped)",
                Ok(format!("{input}.{}", jwt::b64url(&raw[..63]))),
            )
            .await;
        let mut longer = raw.clone();
        longer.push(0);
        forge
            .probe(
                cx,
                &mut f,
                "65 bytes (a zero appended)",
                Ok(format!("{input}.{}", jwt::b64url(&longer))),
            )
            .await;
        let mut lead = vec![0u8];
        lead.extend(&raw);
        forge
            .probe(
                cx,
                &mut f,
                "65 bytes (a zero prepended)",
                Ok(format!("{input}.{}", jwt::b64url(&lead))),
            )
            .await;
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}

/// A workload JWT-SVID shape (typ JWT, aud = the token endpoint, a SPIFFE sub) where an
/// ID-JAG is expected; and an ID-JAG where a client assertion is expected.
fn g93_workload<'a>(cx: &'a Ctx, iss: &'a Issuer) -> CaseFuture<'a> {
    check(async move {
        let l2 = setup!(cx, iss);
        let agent = triage(&l2)?;
        let forge = Forge::new(cx, &l2, agent, &Ask::triage()).await?;
        let te = l2.token_endpoint.clone();
        let now = jwt::now();
        let mut f = Findings::new();
        forge
            .probe(
                cx,
                &mut f,
                "JWT-SVID shape (typ JWT, aud = token endpoint, SPIFFE sub)",
                forge.forge(|h, c| {
                    h.insert("typ".into(), json!("JWT"));
                    let iss = c.get("iss").cloned().unwrap_or(Value::Null);
                    c.clear();
                    c.insert("iss".into(), iss);
                    c.insert("sub".into(), json!("spiffe://example.org/agent/triage-bot"));
                    c.insert("aud".into(), json!(te));
                    c.insert("jti".into(), json!(marker("svid")));
                    c.insert("iat".into(), json!(now));
                    c.insert("exp".into(), json!(now + 300));
                }),
            )
            .await;
        forge
            .probe(
                cx,
                &mut f,
                "ID-JAG claims with typ JWT",
                forge.forge(|h, _| {
                    h.insert("typ".into(), json!("JWT"));
                }),
            )
            .await;
        // Vice versa: an ID-JAG as deploy-bot's client assertion (its key-based credential).
        match l2.agent(DEPLOY) {
            Ok(deploy) => {
                let jag = l2.id_jag(cx, &Ask::deploy()).await?;
                let form = Leg2::form(&forge.real_id_jag().jwt)
                    .plus("client_id", &deploy.client_id)
                    .plus("client_assertion_type", oauth::CLIENT_ASSERTION_JWT_BEARER)
                    .plus("client_assertion", &jag.jwt);
                let req = fixture::register(
                    crate::http::Req::post(&l2.token_endpoint).params(&form.0),
                    &form,
                );
                let resp = cx.http.send(req).await?;
                f.record(
                    "vice versa: deploy-bot's ID-JAG as its client assertion",
                    expect_error(&resp, &[401], &["invalid_client"]),
                );
            }
            Err(_) => f.note("no key-authenticated demo agent: vice versa not tried"),
        }
        forge.finish(cx, &mut f).await;
        Ok(f.outcome())
    })
}
