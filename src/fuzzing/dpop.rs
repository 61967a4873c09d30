//! DPoP proof validation (`crypto::dpop::validate`, RFC 9449 §4.3).

use serde_json::{Map, Value, json};

use super::{Bytes, Outcome, Reached, Seed, Violation, ensure, known_key, sign_known};
use crate::clock::UnixTime;
use crate::crypto::b64;
use crate::crypto::dpop::{DPOP_ALGS, MAX_PROOF_AGE, ProofError, ath, validate};
use crate::crypto::jwk;
use crate::crypto::verify::parse;

/// The token endpoint the proofs are checked against.
const URI: &str = "https://as.example/as/token";
/// The access token presented with the proof when the case asks for one.
const ACCESS_TOKEN: &str = "fuzz-access-token";
/// The `now` of the seeds; small offsets from it are cheap for the fuzzer to reach.
const NOW: UnixTime = 1_800_000_000;

/// The `typ` header choices in signed mode.
const TYPS: [Option<&str>; 4] = [Some("dpop+jwt"), Some("DPoP+JWT"), Some("jwt"), None];
/// The `alg` header choices in signed mode (the signature is always ES256).
const ALGS: [&str; 4] = ["ES256", "RS256", "none", "EdDSA"];

/// Input: a mode byte (bit 0: signed mode; bit 1: `now` is any u64 instead of [`NOW`] plus a
/// small offset), `now`, leeway (u8), a flag for presenting an access token, then
/// - raw mode: the proof text;
/// - signed mode: a choice byte (`typ`, `alg`, embedded `jwk`) and the payload bytes, signed
///   with the known key.
pub fn dpop(data: &[u8]) -> Outcome {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let now = if mode & 2 == 0 {
        NOW.saturating_add(u64::from(b.u16())).saturating_sub(300)
    } else {
        b.u64()
    };
    let leeway = u64::from(b.u8());
    let at = b.bool().then_some(ACCESS_TOKEN);
    if mode & 1 == 0 {
        let Ok(proof) = std::str::from_utf8(b.rest()) else {
            return Ok(Reached::Refused);
        };
        return check(proof, at, leeway, now, false);
    }
    let choice = b.u8();
    let key = known_key()?;
    let typ = TYPS[usize::from(choice & 3)];
    let alg = ALGS[usize::from((choice >> 2) & 3)];
    let mut header = Map::new();
    header.insert("alg".into(), alg.into());
    if let Some(t) = typ {
        header.insert("typ".into(), t.into());
    }
    let ours = (choice >> 4) & 3;
    match ours {
        0 => {
            header.insert("jwk".into(), Value::Object(key.public_jwk().clone()));
        }
        1 => {}
        2 => {
            let mut with_private = key.public_jwk().clone();
            with_private.insert("d".into(), "AAAA".into());
            header.insert("jwk".into(), Value::Object(with_private));
        }
        _ => {
            header.insert("jwk".into(), json!({"kty": "oct", "k": "AAAA"}));
        }
    }
    let input = format!(
        "{}.{}",
        b64(Value::Object(header).to_string()),
        b64(b.rest())
    );
    let proof = format!("{input}.{}", sign_known(&input)?);
    let genuine = ours == 0 && alg == "ES256";
    let reached = check(&proof, at, leeway, now, genuine)?;
    if reached == Reached::Accepted {
        ensure!(
            genuine && typ.is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")),
            "accepted a proof with typ {typ:?}, alg {alg}, jwk choice {ours}"
        );
    }
    Ok(reached)
}

/// What holds of any proof; `genuine`: signed by the key in its own header under its alg.
fn check(proof: &str, at: Option<&str>, leeway: u64, now: UnixTime, genuine: bool) -> Outcome {
    let run = |method: &str, at: Option<&str>, now: UnixTime| {
        validate(proof, method, URI, at, leeway, now)
    };
    let r = run("POST", at, now);
    if genuine {
        ensure!(
            r.as_ref().err() != Some(&ProofError::Signature),
            "a genuine signature was refused"
        );
    }
    let p = match r {
        Ok(p) => p,
        Err(_) => return Ok(Reached::Refused),
    };
    // Header: typ, alg, a public jwk whose thumbprint is the binding.
    let jws = parse(proof).map_err(|e| Violation(format!("accepted an unparsable proof: {e}")))?;
    ensure!(
        jws.header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")),
        "accepted typ {:?}",
        jws.header.typ
    );
    ensure!(
        DPOP_ALGS.contains(&jws.header.alg.as_str()),
        "accepted alg {:?}",
        jws.header.alg
    );
    let Some(key) = jws.header.jwk.as_ref() else {
        return Err(Violation("accepted a proof without jwk".into()));
    };
    ensure!(!jwk::has_private_member(key), "accepted a private jwk");
    ensure!(
        jwk::thumbprint(key).as_deref() == Some(p.jkt.as_str()) && p.jkt.len() == 43,
        "jkt is not the jwk's SHA-256 thumbprint"
    );
    // Claims: jti, htm, htu, iat, ath, nonce as the proof says.
    let c: Value = serde_json::from_slice(&jws.payload)
        .map_err(|_| Violation("accepted a payload that is not JSON".into()))?;
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    ensure!(
        s("jti") == Some(p.jti.as_str()) && !p.jti.is_empty() && p.jti.len() <= 256,
        "jti not carried over or out of bounds"
    );
    ensure!(s("htm") == Some("POST"), "accepted htm {:?}", c.get("htm"));
    let htu = s("htu").and_then(|u| url::Url::parse(u).ok());
    ensure!(
        htu.as_ref().is_some_and(|u| u.scheme() == "https"
            && u.host_str() == Some("as.example")
            && u.port_or_known_default() == Some(443)
            && u.path() == "/as/token"),
        "accepted htu {:?} for {URI}",
        c.get("htu")
    );
    ensure!(
        c.get("iat").and_then(Value::as_f64).map(|f| f as UnixTime) == Some(p.iat),
        "iat not carried over"
    );
    let (n, i, l) = (u128::from(now), u128::from(p.iat), u128::from(leeway));
    ensure!(
        // Checklist I102: at most MAX_PROOF_AGE old; the leeway is for clocks ahead only.
        i <= n + l && n <= i + u128::from(MAX_PROOF_AGE),
        "accepted iat {} at now {now} with leeway {leeway}",
        p.iat
    );
    if let Some(at) = at {
        ensure!(
            s("ath") == Some(ath(at).as_str()),
            "accepted a wrong or missing ath"
        );
    }
    ensure!(p.nonce.as_deref() == s("nonce"), "nonce not carried over");

    // The same proof is refused for another method, another access token, a flipped
    // signature bit, and outside its time window; accepted at the window's edges.
    ensure!(
        run("GET", at, now).err() == Some(ProofError::Target),
        "accepted for another method"
    );
    // (Unless the proof carries that token's hash: libFuzzer learns compared values.)
    if s("ath") != Some(ath("another-token").as_str()) {
        ensure!(
            run("POST", Some("another-token"), now).err() == Some(ProofError::Ath),
            "accepted with another access token"
        );
    }
    let (input, sig) = proof.rsplit_once('.').unwrap_or((proof, ""));
    let mut bytes = jws.signature.clone();
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
    let flipped = format!("{input}.{}", b64(bytes));
    if flipped.rsplit_once('.').map(|(_, s2)| s2) != Some(sig) {
        ensure!(
            validate(&flipped, "POST", URI, at, leeway, now).err() == Some(ProofError::Signature),
            "a flipped signature bit was accepted"
        );
    }
    let newest = p.iat.saturating_sub(leeway);
    let oldest = p.iat.saturating_add(MAX_PROOF_AGE);
    for t in [newest, oldest] {
        let r2 = run("POST", at, t);
        ensure!(
            r2.as_ref().map(|q| &q.jkt) == Ok(&p.jkt),
            "valid at {now}, {:?} at {t} inside the window",
            r2.err()
        );
    }
    if let Some(t) = oldest.checked_add(1).filter(|_| oldest < UnixTime::MAX) {
        ensure!(
            run("POST", at, t).err() == Some(ProofError::Time),
            "accepted after the window"
        );
    }
    if let Some(t) = p.iat.checked_sub(leeway + 1) {
        ensure!(
            run("POST", at, t).err() == Some(ProofError::Time),
            "accepted before the window"
        );
    }
    Ok(Reached::Accepted)
}

pub(super) fn seeds() -> Vec<Vec<u8>> {
    let claims = |iat: u64, extra: Value| {
        let mut c = json!({"jti": "p1", "htm": "POST", "htu": "https://AS.example:443/as/token?x=1", "iat": iat});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        c.to_string()
    };
    // Signed mode, now = NOW (offset 300 cancels the -300), leeway 5.
    let signed = |choice: u8, with_at: bool, payload: String| {
        Seed::default()
            .u8(1)
            .u16(300)
            .u8(5)
            .u8(u8::from(with_at))
            .u8(choice)
            .bytes(payload)
            .done()
    };
    let ath_claim = json!({"ath": ath(ACCESS_TOKEN), "nonce": "n1"});
    let mut out = vec![
        signed(0, false, claims(NOW, json!({}))),
        signed(0, true, claims(NOW - 30, ath_claim)),
        signed(1, false, claims(NOW, json!({}))),
        signed(2, false, claims(NOW, json!({}))),
        signed(0b0000_0100, false, claims(NOW, json!({}))),
        signed(0b0001_0000, false, claims(NOW, json!({}))),
        signed(0b0010_0000, false, claims(NOW, json!({}))),
        signed(0, false, claims(NOW - 120, json!({}))),
        signed(
            0,
            false,
            claims(NOW, json!({"htu": "https://as.example/other"})),
        ),
        signed(0, false, claims(NOW, json!({"jti": ""}))),
        signed(0, false, "[]".into()),
    ];
    // Raw mode: a genuine proof's text, and garbage.
    if let Ok(key) = known_key() {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
        let input = format!(
            "{}.{}",
            b64(header.to_string()),
            b64(claims(NOW, json!({})))
        );
        if let Ok(sig) = sign_known(&input) {
            let raw = |p: &str| Seed::default().u8(0).u16(300).u8(5).u8(0).bytes(p).done();
            out.push(raw(&format!("{input}.{sig}")));
            out.push(raw("not-a-jwt"));
        }
    }
    out
}
