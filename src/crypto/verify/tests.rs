//! Tests of `verify`.

use super::*;
use crate::config::SigningAlg;
use crate::crypto::{Keyring, SigningKey, Typ, b64, sign_jwt};

fn ring() -> (Keyring, Value) {
    let (k, _) = SigningKey::generate(SigningAlg::Es256, 0).expect("key");
    let ring = Keyring::from_keys(vec![k], 60);
    let jwks = ring.jwks(0);
    (ring, jwks)
}

#[test]
fn verifies_own_signature_and_refuses_tampering() {
    let (ring, jwks) = ring();
    let set = KeySet::from_jwks(&jwks, &["ES256"]).expect("set");
    let t = sign_jwt(
        ring.active(0).expect("key"),
        Typ::IdJag,
        &serde_json::json!({"a":1}),
    )
    .expect("sign");
    let jws = parse(&t).expect("parse");
    assert!(jws.header.typ_is("oauth-id-jag+jwt"));
    assert!(set.verify(&jws, &["ES256"]).is_ok());
    assert_eq!(
        set.verify(&jws, &["RS256"]).err(),
        Some(JwsError::Algorithm("ES256".into()))
    );
    // Flip one bit of the signature.
    let mut sig = jws.signature.clone();
    sig[0] ^= 1;
    let bad = format!("{}.{}", jws.signing_input, b64(sig));
    assert_eq!(
        set.verify(&parse(&bad).expect("parse"), &["ES256"]).err(),
        Some(JwsError::Signature)
    );
}

/// An RSA key whose public exponent is huge (3,070 bits here) or even, or whose modulus
/// is beyond 8192 bits, is refused before any verification could be slowed by it.
#[test]
fn rsa_keys_with_unbounded_exponent_or_modulus_are_refused() {
    let key = |n_bytes: usize, e: Vec<u8>| {
        let mut n = vec![0xc5u8; n_bytes];
        n[n_bytes - 1] |= 1;
        serde_json::json!({"kty": "RSA", "n": b64(n), "e": b64(e)})
            .as_object()
            .cloned()
            .expect("object")
    };
    let huge_e = {
        let mut e = vec![0xffu8; 384];
        e[383] = 0x01;
        e
    };
    for (m, why) in [
        (key(256, huge_e), "3070-bit exponent"),
        (
            key(256, vec![0x01, 0x00, 0x00, 0x00, 0x01]),
            "33-bit exponent",
        ),
        (key(256, vec![0x01, 0x00, 0x00]), "even exponent"),
        (key(256, vec![0x01]), "exponent 1"),
        (key(1025, vec![0x01, 0x00, 0x01]), "8200-bit modulus"),
        (
            {
                let mut m = key(256, vec![0x01, 0x00, 0x01]);
                let mut n = vec![0u8; 128];
                n.extend(vec![0xc5u8; 128]);
                m.insert("n".into(), b64(n).into());
                m
            },
            "1024-bit modulus padded to 256 bytes",
        ),
    ] {
        assert!(VerifyKey::from_jwk(&m, &["RS256"]).is_err(), "{why}");
    }
    assert!(rsa_exponent_ok(&[0x01, 0x00, 0x01]));
    assert!(rsa_exponent_ok(&[0x00, 0xff, 0xff, 0xff, 0xff]));
}

/// RFC 8725 §2.1: `alg: none` and HMAC keyed with a public key never verify.
#[test]
fn none_and_hmac_confusion_are_refused() {
    let (_, jwks) = ring();
    let set = KeySet::from_jwks(&jwks, &["ES256"]).expect("set");
    let header = b64(r#"{"alg":"none","typ":"JWT"}"#);
    let t = format!("{header}.{}.", b64("{}"));
    assert!(matches!(
        set.verify(&parse(&t).expect("parse"), &["ES256"]),
        Err(JwsError::Algorithm(_))
    ));
    let header = b64(r#"{"alg":"HS256"}"#);
    let t = format!("{header}.{}.{}", b64("{}"), b64([0u8; 32]));
    assert!(matches!(
        set.verify(&parse(&t).expect("parse"), &["ES256", "HS256"]),
        Err(JwsError::Algorithm(_))
    ));
}

#[test]
fn strict_shape() {
    assert_eq!(parse("a.b").err(), Some(JwsError::Shape));
    assert_eq!(parse("a.b.c.d.e").err(), Some(JwsError::Encrypted));
    assert_eq!(parse("a+b.c.d").err(), Some(JwsError::Shape));
    assert_eq!(parse("YQ==.e30.").err(), Some(JwsError::Shape));
    let dup = format!("{}.{}.", b64(r#"{"alg":"ES256","alg":"RS256"}"#), b64("{}"));
    assert!(matches!(parse(&dup), Err(JwsError::Header(_))));
    let crit = format!(
        "{}.{}.",
        b64(r#"{"alg":"ES256","crit":["exp"]}"#),
        b64("{}")
    );
    assert_eq!(parse(&crit).err(), Some(JwsError::Crit));
    let arr = format!("{}.{}.", b64(r#"{"alg":"ES256"}"#), b64("[1]"));
    assert_eq!(parse(&arr).err(), Some(JwsError::Payload));
}

/// Checklist G91: any repeated member, known or not, at any depth, even with the same
/// value, in the header or the payload.
#[test]
fn repeated_members_are_refused_anywhere() {
    let tok = |h: &str, p: &str| format!("{}.{}.", b64(h), b64(p));
    let ok = r#"{"alg":"ES256","typ":"JWT"}"#;
    assert!(parse(&tok(ok, r#"{"a":{"b":1,"c":[{"d":1}]}}"#)).is_ok());
    // The same name in different objects; distinct names, escaped or not.
    assert!(parse(&tok(ok, r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#)).is_ok());
    assert!(parse(&tok(ok, r#"{"a":1,"\u0062":1,"a\n":1}"#)).is_ok());
    assert!(matches!(
        parse(&tok(r#"{"alg":"ES256","x":1,"x":1}"#, "{}")),
        Err(JwsError::Header(_))
    ));
    for payload in [
        r#"{"aud":"a","aud":"a"}"#,
        r#"{"x-unknown":1,"x-unknown":2}"#,
        r#"{"act":{"sub":"a","sub":"b"}}"#,
        r#"{"l":[{"k":1,"k":1}]}"#,
        r#"{"a":1,"a":1}"#,
        // Names compare after unescaping: an escaped copy is the same member, whichever
        // of the two comes first.
        r#"{"a":1,"\u0061":1}"#,
        r#"{"\u0061":1,"a":1}"#,
        r#"{"\u0061":1,"\u0061":1}"#,
    ] {
        assert_eq!(
            parse(&tok(ok, payload)).err(),
            Some(JwsError::Payload),
            "{payload}"
        );
    }
}

#[test]
fn typ_comparison_accepts_application_prefix_case_insensitively() {
    let h = |t: &str| Header {
        alg: "ES256".into(),
        kid: None,
        typ: Some(t.into()),
        crit: None,
        jwk: None,
    };
    assert!(h("application/oauth-id-jag+jwt").typ_is("oauth-id-jag+jwt"));
    assert!(h("OAUTH-ID-JAG+JWT").typ_is("oauth-id-jag+jwt"));
    assert!(!h("JWT").typ_is("oauth-id-jag+jwt"));
    assert!(!h("application/at+jwt").typ_is("oauth-id-jag+jwt"));
}

fn es256_token(ring: &Keyring) -> String {
    sign_jwt(
        ring.active(0).expect("key"),
        Typ::IdJag,
        &serde_json::json!({"sub":"alice"}),
    )
    .expect("sign")
}

/// The same token with its signature's last byte flipped: it never verifies.
fn forged(token: &str) -> String {
    let jws = parse(token).expect("parse");
    let mut sig = jws.signature.clone();
    if let Some(b) = sig.last_mut() {
        *b ^= 1;
    }
    format!("{}.{}", jws.signing_input, b64(sig))
}

/// A signature verified with `Keep` is remembered for exactly those bytes and that key,
/// until its time; a tampered copy is verified (and refused) as before.
#[test]
fn kept_signatures_are_recalled_for_identical_bytes_only() {
    let (ring, jwks) = ring();
    let set = KeySet::from_jwks(&jwks, &["ES256"]).expect("set");
    let t = es256_token(&ring);
    let jws = parse(&t).expect("parse");
    let d = digest(jws.signing_input.as_bytes(), &jws.signature);
    assert_eq!(set.known.recall(&d, 100, false), None);
    let keep = Recall::Keep { until: 160 };
    assert!(set.verify_recalling(&jws, &["ES256"], 100, keep).is_ok());
    assert_eq!(set.known.recall(&d, 160, false), Some(0));
    assert_eq!(set.known.recall(&d, 161, false), None, "past its time");
    // Recalled, and still under the pinned algorithms: a pin that excludes ES256 wins.
    assert!(set.verify_recalling(&jws, &["ES256"], 120, keep).is_ok());
    assert!(matches!(
        set.verify_recalling(&jws, &["RS256"], 120, keep),
        Err(JwsError::Algorithm(_))
    ));
    let bad = forged(&t);
    let bad = parse(&bad).expect("parse");
    assert_eq!(
        set.verify_recalling(&bad, &["ES256"], 120, keep).err(),
        Some(JwsError::Signature)
    );
    // A refused signature is never remembered.
    let bd = digest(bad.signing_input.as_bytes(), &bad.signature);
    assert_eq!(set.known.recall(&bd, 120, false), None);
    // `Once` does not remember what it verifies.
    let t2 = es256_token(&ring);
    let jws2 = parse(&t2).expect("parse");
    assert!(
        set.verify_recalling(&jws2, &["ES256"], 100, Recall::Once)
            .is_ok()
    );
    let d2 = digest(jws2.signing_input.as_bytes(), &jws2.signature);
    assert_eq!(set.known.recall(&d2, 100, false), None);
}

/// What lanyard vouches for is taken as verified once, under the key it names only, by
/// the set it was told to, while that set lasts. Shown with a signature that would not
/// verify, so a recall is visible.
#[test]
fn vouched_tokens_are_recalled_once_under_the_named_key_only() {
    let (signer, jwks) = ring();
    let key = signer.active(0).expect("key");
    let set = KeySet::from_jwks(&jwks, &["ES256"]).expect("set");
    let bad = forged(&es256_token(&signer));
    let jws = parse(&bad).expect("parse");
    let verify = |set: &KeySet| {
        set.verify_recalling(&jws, &["ES256"], 100, Recall::Once)
            .err()
    };
    // A key the set does not hold, or another algorithm: nothing is remembered.
    set.vouch(&bad, "another-kid", "ES256", 100, 400);
    set.vouch(&bad, &key.kid, "RS256", 100, 400);
    assert_eq!(verify(&set), Some(JwsError::Signature));
    // An expired vouch is not remembered.
    set.vouch(&bad, &key.kid, "ES256", 100, 99);
    assert_eq!(verify(&set), Some(JwsError::Signature));
    set.vouch(&bad, &key.kid, "ES256", 100, 400);
    // A refreshed set (the same JWKS fetched again) knows nothing of it.
    let refreshed = KeySet::from_jwks(&jwks, &["ES256"]).expect("set");
    assert_eq!(verify(&refreshed), Some(JwsError::Signature));
    assert_eq!(verify(&set), None, "recalled");
    assert_eq!(verify(&set), Some(JwsError::Signature), "only once");
    // A set whose keys no longer include the signer's: the key is unknown.
    let (_, other_jwks) = ring();
    let rotated = KeySet::from_jwks(&other_jwks, &["ES256"]).expect("set");
    rotated.vouch(&bad, &key.kid, "ES256", 100, 400);
    assert_eq!(verify(&rotated), Some(JwsError::UnknownKey));
}

/// A full shard drops expired entries (at most once a second) before giving up on a new
/// one; what does not fit is verified again next time, never refused.
#[test]
fn a_full_shard_sweeps_expired_entries_before_refusing_new_ones() {
    let known = Known::with_capacity(2);
    // Three digests in the same shard.
    let d = |n: u8| {
        let mut x = [n; 32];
        x[0] = n * SHARDS as u8;
        x
    };
    known.remember(d(1), 0, 100, 150);
    known.remember(d(2), 0, 100, 100);
    known.remember(d(3), 0, 100, 150);
    assert_eq!(
        known.recall(&d(3), 100, false),
        None,
        "full, nothing expired"
    );
    known.remember(d(3), 0, 100, 150);
    assert_eq!(
        known.recall(&d(3), 100, false),
        None,
        "no second sweep this second"
    );
    known.remember(d(3), 0, 101, 150);
    assert_eq!(known.recall(&d(3), 101, false), Some(0), "d(2) swept out");
    assert_eq!(known.recall(&d(2), 100, false), None);
    assert_eq!(known.recall(&d(1), 101, false), Some(0));
    // Remembered for at most MAX_RECALL.
    known.remember(d(1), 0, 200, u64::MAX);
    assert_eq!(known.recall(&d(1), 200 + MAX_RECALL, false), Some(0));
    assert_eq!(known.recall(&d(1), 201 + MAX_RECALL, false), None);
}

#[test]
fn private_keys_are_refused_in_a_trusted_set() {
    let m = serde_json::json!({"keys":[{"kty":"oct","k":"c2VjcmV0"}]});
    assert!(KeySet::from_jwks(&m, &["ES256"]).is_err());
}
