//! Compact JWS parsing and verification (`crypto::verify`).

use base64::Engine as _;
use serde_json::json;

use super::{Bytes, Outcome, Reached, Seed, Violation, ensure, known_key, sign_known};
use crate::crypto::b64;
use crate::crypto::verify::{ASYMMETRIC_ALGS, Header, Jws, JwsError, KeySet, parse};

/// Input: a mode byte, then
/// - mode 0: the token text as is;
/// - mode 1: header bytes (length-prefixed), payload bytes (length-prefixed), signature bytes,
///   each base64url-encoded into a token;
/// - mode 2: header bytes (length-prefixed) and payload bytes, signed by the known key.
pub fn jws(data: &[u8]) -> Outcome {
    let mut b = Bytes::new(data);
    match b.u8() % 3 {
        0 => match std::str::from_utf8(b.rest()) {
            Ok(token) => check_parse(token),
            Err(_) => Ok(Reached::Refused),
        },
        1 => {
            let (h, p, s) = (b.chunk(), b.chunk(), b.rest());
            built(h, p, s)
        }
        _ => {
            let (h, p) = (b.chunk(), b.rest());
            signed(h, p)
        }
    }
}

fn b64d(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

fn starts_as_object(payload: &[u8]) -> bool {
    payload.trim_ascii_start().starts_with(b"{")
}

/// What holds of any string given to `parse`, accepted or not.
fn check_parse(token: &str) -> Outcome {
    let alphabet = token
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.');
    let segments: Vec<&str> = token.split('.').collect();
    let r = parse(token);
    let jws = match r {
        Ok(j) => j,
        Err(JwsError::Encrypted) => {
            ensure!(
                alphabet && segments.len() == 5,
                "Encrypted for a token without five segments"
            );
            return Ok(Reached::Refused);
        }
        Err(JwsError::Shape) => {
            let bad_segment = match segments.as_slice() {
                [h, p, s] => {
                    h.is_empty()
                        || p.is_empty()
                        || b64d(h).is_none()
                        || b64d(p).is_none()
                        || b64d(s).is_none()
                }
                _ => true,
            };
            ensure!(
                !alphabet || (segments.len() != 5 && bad_segment),
                "Shape for three well-formed segments"
            );
            return Ok(Reached::Refused);
        }
        Err(JwsError::Header(_)) => {
            let header = segments.first().and_then(|h| b64d(h));
            ensure!(
                header.is_some_and(|h| serde_json::from_slice::<Header>(&h).is_err()
                    || !crate::crypto::verify::unique_members(&h)),
                "Header error for a header that reads with unique members"
            );
            return Ok(Reached::Refused);
        }
        Err(JwsError::Crit) => {
            let header = segments
                .first()
                .and_then(|h| b64d(h))
                .and_then(|h| serde_json::from_slice::<Header>(&h).ok());
            ensure!(
                header.is_some_and(|h| h.crit.is_some()),
                "Crit for a header without crit"
            );
            return Ok(Reached::Refused);
        }
        Err(JwsError::Payload) => {
            let payload = segments.get(1).and_then(|p| b64d(p));
            ensure!(
                payload.is_some_and(
                    |p| !starts_as_object(&p) || !crate::crypto::verify::unique_members(&p)
                ),
                "Payload error for an object payload with unique members"
            );
            return Ok(Reached::Refused);
        }
        Err(e) => {
            return Err(Violation(format!(
                "parse returned a verification error: {e}"
            )));
        }
    };
    // Accepted: three canonical base64url segments, the first two non-empty.
    ensure!(alphabet, "accepted characters outside base64url");
    let [h, p, s] = segments.as_slice() else {
        return Err(Violation(format!("accepted {} segments", segments.len())));
    };
    ensure!(
        !h.is_empty() && !p.is_empty(),
        "accepted an empty header or payload"
    );
    ensure!(
        jws.signing_input.len() == h.len() + 1 + p.len()
            && token.starts_with(jws.signing_input)
            && token.as_bytes().get(jws.signing_input.len()) == Some(&b'.'),
        "signing_input is not `header.payload` of the token"
    );
    ensure!(
        b64(&jws.payload) == *p,
        "payload segment is not canonical base64url"
    );
    ensure!(
        b64(&jws.signature) == *s,
        "signature segment is not canonical base64url"
    );
    ensure!(
        b64d(h).is_some_and(|hb| b64(hb) == *h),
        "header segment is not canonical base64url"
    );
    ensure!(
        starts_as_object(&jws.payload),
        "accepted a payload that is not an object"
    );
    ensure!(jws.header.crit.is_none(), "accepted a crit header");
    ensure!(
        format!("{}.{}", jws.signing_input, b64(&jws.signature)) == token,
        "the parts do not reassemble into the token"
    );
    Ok(Reached::Accepted)
}

/// Mode 1: a token assembled from decoded parts parses iff each part is acceptable, and then
/// yields those parts back.
fn built(h: &[u8], p: &[u8], s: &[u8]) -> Outcome {
    let token = format!("{}.{}.{}", b64(h), b64(p), b64(s));
    let reached = check_parse(&token)?;
    let header_ok = serde_json::from_slice::<Header>(h).is_ok_and(|h| h.crit.is_none());
    let unique = |j: &[u8]| crate::crypto::verify::unique_members(j);
    let expect = header_ok && unique(h) && !p.is_empty() && starts_as_object(p) && unique(p);
    ensure!(
        (reached == Reached::Accepted) == expect,
        "parse accepted={:?} but the parts say {expect}",
        reached
    );
    if let Ok(j) = parse(&token) {
        ensure!(
            j.payload == p && j.signature == s,
            "parts not returned as given"
        );
    }
    Ok(reached)
}

/// Mode 2: signed by the known key, the token verifies exactly when its header asks for the
/// key's algorithm (and its `kid`, if any); `none`, HMAC and other algorithms never verify
/// whatever the pinned list says; a flipped bit or another signing input never verifies.
fn signed(h: &[u8], p: &[u8]) -> Outcome {
    let key = known_key()?;
    let input = format!("{}.{}", b64(h), b64(p));
    let token = format!("{input}.{}", sign_known(&input)?);
    check_parse(&token)?;
    let Ok(jws) = parse(&token) else {
        return Ok(Reached::Refused);
    };
    let set = KeySet::from_jwks(&json!({ "keys": [key.public_jwk()] }), &["ES256"])
        .map_err(|e| Violation(format!("known key unusable: {e}")))?;
    let alg = jws.header.alg.clone();
    let kid_ok = jws.header.kid.as_deref().is_none_or(|k| k == key.kid);
    let pinned = ["ES256", alg.as_str()];
    let r = set.verify(&jws, &pinned);
    let want = if !ASYMMETRIC_ALGS.contains(&alg.as_str()) {
        Err(JwsError::Algorithm(alg.chars().take(20).collect()))
    } else if alg != "ES256" || !kid_ok {
        Err(JwsError::UnknownKey)
    } else {
        Ok(())
    };
    ensure!(
        r.as_ref().map(|_| ()).map_err(Clone::clone) == want,
        "verify({alg:?}, kid ok: {kid_ok}) gave {:?}, expected {want:?}",
        r.as_ref().map(|k| k.alg)
    );
    // Pinning excludes: the same token under a pin list without its algorithm is refused.
    let other = if alg == "RS256" { "PS256" } else { "RS256" };
    ensure!(
        matches!(set.verify(&jws, &[other]), Err(JwsError::Algorithm(_))),
        "verified under a pin list without its algorithm"
    );
    if want.is_err() {
        return Ok(Reached::Refused);
    }
    let mut sig = jws.signature.clone();
    if let Some(b) = sig.last_mut() {
        *b ^= 1;
    }
    let flipped = Jws {
        signature: sig,
        ..jws.clone()
    };
    ensure!(
        set.verify(&flipped, &pinned).err() == Some(JwsError::Signature),
        "a flipped signature bit verified"
    );
    let other_input = format!("{input}A");
    let moved = Jws {
        signing_input: &other_input,
        ..jws.clone()
    };
    ensure!(
        set.verify(&moved, &pinned).err() == Some(JwsError::Signature),
        "the signature verified over another input"
    );
    Ok(Reached::Accepted)
}

pub(super) fn seeds() -> Vec<Vec<u8>> {
    let raw = |t: &str| Seed::default().u8(0).bytes(t).done();
    let built =
        |h: &str, p: &str, s: &[u8]| Seed::default().u8(1).chunk(h).chunk(p).bytes(s).done();
    let signed = |h: &str, p: &str| Seed::default().u8(2).chunk(h).bytes(p).done();
    let kid = known_key().map(|k| k.kid.clone()).unwrap_or_default();
    vec![
        raw("eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2ln"),
        raw("a.b.c.d.e"),
        raw("YQ==.e30."),
        built(
            r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
            r#"{"sub":"x"}"#,
            b"sig",
        ),
        built(r#"{"alg":"ES256","alg":"RS256"}"#, "{}", b""),
        built(r#"{"alg":"ES256","crit":["exp"]}"#, "{}", b""),
        built(r#"{"alg":"none"}"#, " [1]", b""),
        signed(
            r#"{"alg":"ES256","typ":"at+jwt"}"#,
            r#"{"iss":"https://as.example/as"}"#,
        ),
        signed(&format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#), "{}"),
        signed(r#"{"alg":"ES256","kid":"another"}"#, "{}"),
        signed(r#"{"alg":"HS256"}"#, "{}"),
        signed(r#"{"alg":"none"}"#, "{}"),
        signed(r#"{"alg":"RS256"}"#, "{}"),
    ]
}
