//! No secrets in logs: the whole flow with `LANYARD_LOG=debug` (every crate at debug), then
//! every log line is searched for every token, assertion, ID token, client secret and DPoP
//! proof the test used — whole, and each JWT's payload and signature segment alone. None may
//! appear. Failures (a wrong secret, a replayed ID-JAG, garbage tokens, a tampered ID token,
//! a bad DPoP proof) are included: error paths are where detail tends to leak.

use base64::Engine as _;
use serde_json::json;

use crate::support::flow::{Flow, JWT_BEARER};
use crate::support::reqwest::Resp;
use crate::support::{AS_ISSUER, IDP_ISSUER, SECRET, client_assertion, standard_policy, te_form};

const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const WRONG_SECRET: &str = "wr0ng-5ecret-fedcba9876543210fedcba98765432";

fn policy(idp_issuer: &str) -> String {
    format!(
        "{}\n[control_plane]\nclient_ids = {{ corp = \"lanyard-console\" }}\nadmins = [\"group:lanyard-admins\"]\n",
        standard_policy(idp_issuer)
    )
}

/// A DPoP proof (RFC 9449 §4.2) by `key` for `POST url`.
fn dpop_proof(key: &josekit::jwk::alg::ec::EcKeyPair, url: &str, jti: &str) -> String {
    use josekit::jwk::KeyPair as _;
    let signer = josekit::jws::ES256
        .signer_from_jwk(&key.to_jwk_key_pair())
        .unwrap();
    let mut h = josekit::jws::JwsHeader::new();
    h.set_token_type("dpop+jwt");
    h.set_jwk(key.to_jwk_public_key());
    let c = json!({"jti": jti, "htm": "POST", "htu": url, "iat": crate::support::now()});
    let p = josekit::jwt::JwtPayload::from_map(c.as_object().unwrap().clone()).unwrap();
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap()
}

/// Everything secret the test sent or received, by a label for the failure message.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, label: &str, value: &str) {
        assert!(value.len() >= 16, "{label} is too short to search for");
        self.0.push((label.to_owned(), value.to_owned()));
    }

    /// A JWT whole, and its payload and signature segments alone.
    fn jwt(&mut self, label: &str, jwt: &str) {
        self.add(label, jwt);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3, "{label} is not a compact JWS");
        self.add(&format!("{label} payload"), parts[1]);
        self.add(&format!("{label} signature"), parts[2]);
    }
}

fn token_of(r: &Resp, what: &str) -> String {
    assert_eq!(r.status(), 200, "{what}: {}", r.body);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

/// DESIGN "Logging": never a token, assertion or secret in any event — at debug level too.
#[test]
fn debug_logs_of_the_whole_flow_hold_no_token_assertion_or_secret() {
    let f = Flow::start_with_env(policy, &[("LANYARD_LOG", "debug")]);
    let http = &f.http;
    let (idp_token, as_token) = (f.server.url("/idp/token"), f.server.url("/as/token"));
    let mut s = Secrets::default();
    s.add("client secret", SECRET);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot-secret:{SECRET}"));
    s.add("basic credentials", &basic);

    // Leg 1, client_secret_basic.
    let id_token = f.idp.id_token("alice", "bot-secret-sso");
    s.jwt("ID token (bot-secret)", &id_token);
    let r = http
        .post(idp_token.clone())
        .basic("bot-secret", SECRET)
        .form(&te_form(&id_token, &[("scope", "read write")]))
        .send()
        .unwrap();
    let id_jag = token_of(&r, "leg 1, client_secret_basic");
    s.jwt("ID-JAG (bot-secret)", &id_jag);

    // Leg 1, private_key_jwt.
    let id_token_key = f.idp.id_token("alice", "bot-key-sso");
    s.jwt("ID token (bot-key)", &id_token_key);
    let assertion = client_assertion(&f.site, IDP_ISSUER, "log-scan-ca-1");
    s.jwt("client assertion (leg 1)", &assertion);
    let r = http
        .post(idp_token.clone())
        .form(&te_form(
            &id_token_key,
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        ))
        .send()
        .unwrap();
    let id_jag_key = token_of(&r, "leg 1, private_key_jwt");
    s.jwt("ID-JAG (bot-key)", &id_jag_key);

    // Leg 2, client_secret_basic with a DPoP proof.
    let dpop_key = josekit::jws::ES256.generate_key_pair().unwrap();
    let proof = dpop_proof(&dpop_key, &format!("{AS_ISSUER}/token"), "log-scan-proof-1");
    s.jwt("DPoP proof", &proof);
    let r = http
        .post(as_token.clone())
        .basic("bot-secret", SECRET)
        .header("dpop", &proof)
        .form(&[("grant_type", JWT_BEARER), ("assertion", &id_jag)])
        .send()
        .unwrap();
    let access_token = token_of(&r, "leg 2, DPoP");
    assert_eq!(r.json()["token_type"], "DPoP");
    s.jwt("access token (bot-secret)", &access_token);

    // Leg 2, private_key_jwt.
    let assertion2 = client_assertion(&f.site, AS_ISSUER, "log-scan-ca-2");
    s.jwt("client assertion (leg 2)", &assertion2);
    let r = http
        .post(as_token.clone())
        .form(&[
            ("grant_type", JWT_BEARER),
            ("assertion", &id_jag_key),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", &assertion2),
        ])
        .send()
        .unwrap();
    let access_token_key = token_of(&r, "leg 2, private_key_jwt");
    s.jwt("access token (bot-key)", &access_token_key);

    // Introspection and revocation.
    let introspect = |token: &str| {
        http.post(f.server.url("/as/introspect"))
            .basic("bot-secret", SECRET)
            .form(&[("token", token)])
            .send()
            .unwrap()
    };
    let r = introspect(&access_token);
    assert_eq!(r.json()["active"], true, "{}", r.body);
    let r = http
        .post(f.server.url("/as/revoke"))
        .basic("bot-secret", SECRET)
        .form(&[("token", &access_token)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "revoke: {}", r.body);
    assert_eq!(introspect(&access_token).json()["active"], false);

    // The admin API: whoami and a token kill switch, with a human admin's ID token.
    let admin = f.idp.id_token_with(
        "carol",
        "lanyard-console",
        json!({ "groups": ["lanyard-admins"] }),
    );
    s.jwt("admin ID token", &admin);
    let r = http
        .get(f.server.url("/admin/v1/whoami"))
        .header("authorization", &format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "whoami: {}", r.body);
    let r = http
        .post(f.server.url("/admin/v1/tokens/revoke"))
        .header("authorization", &format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(json!({ "token": access_token_key }).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "admin revoke: {}", r.body);

    // Failures.
    s.add("wrong client secret", WRONG_SECRET);
    let fresh_id_token = f.idp.id_token("alice", "bot-secret-sso");
    s.jwt("ID token (wrong secret)", &fresh_id_token);
    let r = http
        .post(idp_token.clone())
        .basic("bot-secret", WRONG_SECRET)
        .form(&te_form(&fresh_id_token, &[("scope", "read")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "wrong secret: {}", r.body);

    let r = f.redeem(&id_jag, &[]);
    assert_eq!(r.status(), 400, "replayed ID-JAG: {}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant");

    let r = http
        .post(idp_token.clone())
        .form(&te_form(
            &id_token_key,
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "replayed client assertion: {}", r.body);

    let garbage = "garbage-token-7f3a9c1e5b2d8a4f6e0c";
    s.add("garbage token", garbage);
    let garbage_jwt =
        "eyJhbGciOiJFUzI1NiJ9.eyJnYXJiYWdlIjoiZ2FyYmFnZSJ9.Z2FyYmFnZS1zaWduYXR1cmUtYnl0ZXM";
    s.jwt("garbage JWT", garbage_jwt);
    for t in [garbage, garbage_jwt] {
        assert_eq!(introspect(t).json()["active"], false);
        let r = f.redeem(t, &[]);
        assert_eq!(r.status(), 400, "garbage assertion: {}", r.body);
        let r = http
            .post(idp_token.clone())
            .basic("bot-secret", SECRET)
            .form(&te_form(t, &[]))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "garbage subject token: {}", r.body);
        let r = http
            .get(f.server.url("/admin/v1/whoami"))
            .header("authorization", &format!("Bearer {t}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "garbage admin token: {}", r.body);
    }

    // A tampered ID token: its signature no longer verifies.
    let tampered = {
        let (head, sig) = fresh_id_token.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{head}.{flipped}{}", &sig[1..])
    };
    s.jwt("tampered ID token", &tampered);
    let r = http
        .post(idp_token.clone())
        .basic("bot-secret", SECRET)
        .form(&te_form(&tampered, &[]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "tampered ID token: {}", r.body);

    // A DPoP proof for another URL.
    let id_jag2 = f.id_jag("read");
    s.jwt("ID-JAG (bad DPoP)", &id_jag2);
    let bad_proof = dpop_proof(
        &dpop_key,
        "https://elsewhere.example/token",
        "log-scan-proof-2",
    );
    s.jwt("bad DPoP proof", &bad_proof);
    let r = http
        .post(as_token)
        .basic("bot-secret", SECRET)
        .header("dpop", &bad_proof)
        .form(&[("grant_type", JWT_BEARER), ("assertion", &id_jag2)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "bad DPoP proof: {}", r.body);

    // Every request above has been answered, and each request's log event is written before
    // its response; a last marked request shows the reader has caught up.
    let r = http
        .get(f.server.url("/healthz"))
        .header("x-request-id", "log-scan-end")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut caught_up = false;
    for _ in 0..500 {
        if f.server.log_text().contains("log-scan-end") {
            caught_up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(caught_up, "the marker request never reached the log");

    let lines = f.server.logs.lock().unwrap().clone();
    // The scan is only worth something if the logs are there: debug events, the issuance
    // and denial events, and a failure reason.
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"DEBUG\"")),
        "no debug events: is LANYARD_LOG honoured?"
    );
    // An issued token is named on its request's one log line (span fields).
    assert!(
        lines.iter().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v["message"] == "request"
                    && v["span"]["grant"].is_string()
                    && v["span"]["agent"].is_string()
                    && v["span"]["jti"].is_string()
            })
        }),
        "no request line names the token it issued"
    );
    for needle in [
        "token request denied",
        "client authentication failed",
        "token revoked",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "no {needle:?} event in the log"
        );
    }
    let mut leaks = Vec::new();
    for (label, value) in &s.0 {
        for (i, line) in lines.iter().enumerate() {
            if line.contains(value.as_str()) {
                leaks.push(format!("{label} in log line {i}: {line}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} secrets in {} log lines:\n{}",
        leaks.len(),
        lines.len(),
        leaks.join("\n")
    );
}
