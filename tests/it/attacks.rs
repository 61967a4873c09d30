//! Attacks on the jwt-bearer leg (checklist G), each a named test. Forged ID-JAGs are signed
//! with the trusted IdP role's real private key where the attack is about the claims, so
//! that the claim check itself — not the signature — is what refuses them.

use base64::Engine as _;
use josekit::jws::{ES256, HS256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Value, json};

use crate::support::flow::{Flow, JWT_BEARER};
use crate::support::{AS_ISSUER, IDP_ISSUER, decode, now};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Claims of a well-formed ID-JAG for `bot-secret` at lanyard's AS, acting for alice.
fn claims() -> Value {
    let n = now();
    json!({
        "iss": IDP_ISSUER, "sub": "alice", "aud": AS_ISSUER, "client_id": "bot-secret",
        "jti": format!("forged-{}", rand_suffix()), "iat": n, "exp": n + 120,
        "resource": crate::support::API, "scope": "read",
        "act": {"sub": "bot-secret"},
    })
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Sign `claims` with the IdP role's active private key (read from the site's key dir).
fn sign_as_idp_role(f: &Flow, typ: &str, claims: &Value) -> String {
    let genuine = f.id_jag("read");
    let (h, _) = decode(&genuine);
    let kid = h["kid"].as_str().unwrap();
    let pem = std::fs::read(f.site.path(&format!("keys/idp/{kid}.pem"))).unwrap();
    let signer = ES256.signer_from_pem(&pem).unwrap();
    let mut header = JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(kid);
    let payload = JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    jwt::encode_with_signer(&payload, &header, &signer).unwrap()
}

fn assert_invalid_grant(r: &crate::support::reqwest::Resp, what: &str) {
    assert_eq!(r.status(), 400, "{what}: {}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant", "{what}: {}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn control_forged_id_jag_with_correct_claims_is_accepted() {
    // Without this, every rejection below could be the signing helper's fault.
    let f = Flow::start();
    let t = sign_as_idp_role(&f, "oauth-id-jag+jwt", &claims());
    let r = f.redeem(&t, &[]);
    assert_eq!(r.status(), 200, "{}", r.body);
}

/// RFC 8725 §3.1–3.2: `none`, in any letter case, with or without a signature.
#[test]
fn rejects_alg_none_in_any_case() {
    let f = Flow::start();
    let genuine = f.id_jag("read");
    let mut parts = genuine.split('.');
    let (_, payload, sig) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({"alg": alg, "typ": "oauth-id-jag+jwt"})
            .to_string()
            .as_bytes());
        for s in ["", sig] {
            let r = f.redeem(&format!("{h}.{payload}.{s}"), &[]);
            assert_invalid_grant(&r, &format!("alg {alg}, signature {:?}", !s.is_empty()));
        }
    }
    // The untouched ID-JAG still works: the refusals were about the algorithm.
    assert_eq!(f.redeem(&genuine, &[]).status(), 200);
}

/// RFC 8725 §2.1: HS256 MACed with the issuer's public key (as JWK JSON or the JWKS body).
#[test]
fn rejects_hs256_keyed_with_the_issuer_public_key() {
    let f = Flow::start();
    let jwks = f
        .http
        .get(f.server.url("/idp/jwks.json"))
        .send()
        .unwrap()
        .body;
    let jwk = serde_json::from_str::<Value>(&jwks).unwrap()["keys"][0].to_string();
    for secret in [jwk.as_bytes(), jwks.as_bytes()] {
        let signer = HS256.signer_from_bytes(secret).unwrap();
        let mut header = JwsHeader::new();
        header.set_token_type("oauth-id-jag+jwt");
        let payload = JwtPayload::from_map(claims().as_object().unwrap().clone()).unwrap();
        let t = jwt::encode_with_signer(&payload, &header, &signer).unwrap();
        assert_invalid_grant(&f.redeem(&t, &[]), "HS256 with the public key");
    }
}

/// ID-JAG §4.4.1: an ID-JAG for another authorization server, validly signed.
#[test]
fn rejects_foreign_aud() {
    let f = Flow::start();
    for aud in [
        json!("https://other-as.example/as"),
        json!(format!("{AS_ISSUER}/")),
        json!("https://LANYARD.test/as"),
        json!(f.server.url("/as/token")),
    ] {
        let mut c = claims();
        c["aud"] = aud.clone();
        let t = sign_as_idp_role(&f, "oauth-id-jag+jwt", &c);
        assert_invalid_grant(&f.redeem(&t, &[]), &format!("aud {aud}"));
    }
}

/// ID-JAG §4.4.1: `aud` must be this issuer alone; an array with a second member is refused
/// (audience injection), a one-element array is fine.
#[test]
fn rejects_aud_array_with_two_members() {
    let f = Flow::start();
    let mut c = claims();
    c["aud"] = json!([AS_ISSUER, "https://other-as.example/as"]);
    let t = sign_as_idp_role(&f, "oauth-id-jag+jwt", &c);
    assert_invalid_grant(&f.redeem(&t, &[]), "two-member aud");
    let mut c = claims();
    c["aud"] = json!([AS_ISSUER]);
    let t = sign_as_idp_role(&f, "oauth-id-jag+jwt", &c);
    assert_eq!(f.redeem(&t, &[]).status(), 200, "one-element aud array");
}

/// D2 / MCP EMA §7.4.2: an ID-JAG is single use.
#[test]
fn rejects_reused_jti() {
    let f = Flow::start();
    let t = f.id_jag("read");
    assert_eq!(f.redeem(&t, &[]).status(), 200);
    assert_invalid_grant(&f.redeem(&t, &[]), "second redemption");
}

/// ID-JAG §4.4.1: `client_id` binds the ID-JAG to the agent it was minted for.
#[test]
fn rejects_another_agents_id_jag() {
    let f = Flow::start();
    let t = f.id_jag("read");
    let assertion = crate::support::client_assertion(&f.site, AS_ISSUER, "ca-other-agent");
    let r = f
        .http
        .post(f.server.url("/as/token"))
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &t),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ])
        .send()
        .unwrap();
    assert_invalid_grant(&r, "bot-secret's ID-JAG presented by bot-key");
    // bot-secret itself can still redeem it: the refusal did not consume it.
    assert_eq!(f.redeem(&t, &[]).status(), 200);
}

/// RFC 8725 §3.12: a workload JWT-SVID (`typ: JWT`, `aud` = token endpoint) is never
/// validated as an ID-JAG, even when signed by a trusted key.
#[test]
fn rejects_jwt_svid_where_an_id_jag_belongs() {
    let f = Flow::start();
    let n = now();
    let svid = json!({
        "iss": IDP_ISSUER, "sub": "spiffe://example.org/ns/ci/sa/bot-secret",
        "aud": f.server.url("/as/token"), "jti": format!("svid-{}", rand_suffix()),
        "iat": n, "exp": n + 120, "client_id": "bot-secret",
    });
    for typ in ["JWT", "jwt"] {
        let t = sign_as_idp_role(&f, typ, &svid);
        assert_invalid_grant(&f.redeem(&t, &[]), &format!("JWT-SVID typ {typ}"));
    }
    // The same claims with an ID-JAG's aud but still typ JWT: refused on typ alone.
    let mut c = claims();
    c["sub"] = json!("alice");
    let t = sign_as_idp_role(&f, "JWT", &c);
    assert_invalid_grant(&f.redeem(&t, &[]), "ID-JAG claims with typ JWT");
}

/// Issue 24 #4 (ID-JAG §9.8, RFC 7800 §3): an ID-JAG bound by a confirmation method lanyard
/// does not enforce (`jwk`, `kid`, `jku`, mTLS `x5t#S256`, or any of them beside `jkt`) is
/// refused, never redeemed for an unbound Bearer token.
#[test]
fn rejects_id_jag_bound_by_a_confirmation_method_it_cannot_enforce() {
    let f = Flow::start();
    let jwk = json!({"kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    for cnf in [
        json!({"jwk": jwk}),
        json!({"kid": "k1"}),
        json!({"jku": "https://keys.example/jwks"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "jwk": jwk}),
        json!({}),
    ] {
        let mut c = claims();
        c["cnf"] = cnf.clone();
        let t = sign_as_idp_role(&f, "oauth-id-jag+jwt", &c);
        assert_invalid_grant(&f.redeem(&t, &[]), &format!("cnf {cnf}"));
    }
    // Control: the same claims without cnf are redeemed.
    let t = sign_as_idp_role(&f, "oauth-id-jag+jwt", &claims());
    assert_eq!(f.redeem(&t, &[]).status(), 200);
}
