//! End to end: a real OIDC issuer → an ID-JAG from lanyard's IdP role → an access token from
//! lanyard's resource AS (trusting the IdP role as a separate trust domain) → the example
//! resource server (`examples/resource_server.rs`, a separate process) accepts the permitted
//! action and refuses another with 403 `insufficient_scope`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::flow::Flow;
use crate::support::{AS_ISSUER, IDP_ISSUER, SECRET, decode, sha256_hex};

const GITHUB: &str = "https://mcp.github.example/";

fn github_policy(idp_issuer: &str) -> String {
    format!(
        r#"version = 1
[[idp]]
id = "corp"
issuer = "{idp_issuer}"
algorithms = ["RS256"]

[[resource]]
uri = "{GITHUB}"
authorization_server = "{AS_ISSUER}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]

[[agent]]
id = "bot-secret"
owner = "alice@example.com"
credential = {{ client_secret_sha256 = "{sha}" }}
idp_client_ids = {{ corp = "bot-secret-sso" }}
never = ["pull_request.merge"]
grants = [{{ resource = "{GITHUB}", actions = ["repo.read", "issue.comment", "pull_request.merge"] }}]

[[entitlement]]
group = "staff"
resource = "{GITHUB}"
actions = ["repo.read", "issue.comment", "pull_request.create", "pull_request.merge"]
"#,
        sha = sha256_hex(SECRET)
    )
}

/// The example resource server as a child process; killed on drop.
struct ExampleRs {
    child: Child,
    base: String,
}

impl ExampleRs {
    fn start(jwks_uri: &str) -> Self {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_lanyard"))
            .parent()
            .unwrap()
            .join("examples/resource_server");
        assert!(
            bin.exists(),
            "{} missing: build it with `cargo build --examples` (scripts/test does)",
            bin.display()
        );
        let mut child = Command::new(bin)
            .args([
                "--issuer",
                AS_ISSUER,
                "--resource",
                GITHUB,
                "--jwks-uri",
                jwks_uri,
            ])
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Self { child, base }
    }
}

impl Drop for ExampleRs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn example_resource_server_enforces_one_action_per_route() {
    let f = Flow::start_with(github_policy);
    let id_jag = f.id_jag_for(GITHUB, "repo.read issue.comment pull_request.merge");
    let (_, jag) = decode(&id_jag);
    assert_eq!(jag["iss"], IDP_ISSUER);
    assert_eq!(
        jag["scope"], "repo.read issue.comment",
        "merge is on the agent's never list"
    );

    // Leg 2, asking for one action only.
    let r = f.redeem(&id_jag, &[("scope", "repo.read")]);
    assert_eq!(r.status(), 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "repo.read");
    assert!(body.get("refresh_token").is_none());
    let at = body["access_token"].as_str().unwrap().to_owned();
    let (h, c) = decode(&at);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(c["iss"], AS_ISSUER);
    assert_eq!(c["aud"], GITHUB);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["client_id"], "bot-secret");
    assert_eq!(c["act"]["sub"], "bot-secret");

    let rs = ExampleRs::start(&f.server.url("/as/jwks.json"));
    let ok = f
        .http
        .get(format!("{}/repos/acme/api", rs.base))
        .header("authorization", &format!("Bearer {at}"))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.body);
    assert_eq!(ok.json()["human"], "alice");
    assert_eq!(ok.json()["agent"], "bot-secret");

    // Commenting is in the ID-JAG but was not asked for in leg 2: 403 naming the action.
    let denied = f
        .http
        .post(format!("{}/repos/acme/api/issues/1/comments", rs.base))
        .header("authorization", &format!("Bearer {at}"))
        .send()
        .unwrap();
    assert_eq!(denied.status(), 403, "{}", denied.body);
    let challenge = denied.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="issue.comment""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(
            r#"resource_metadata="{}/.well-known/oauth-protected-resource""#,
            rs.base
        )),
        "{challenge}"
    );

    // The ID-JAG itself is not an access token.
    let wrong = f
        .http
        .get(format!("{}/repos/acme/api", rs.base))
        .header("authorization", &format!("Bearer {id_jag}"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );

    // No token at all: a challenge without an error code, naming the metadata.
    let none = f
        .http
        .get(format!("{}/repos/acme/api", rs.base))
        .send()
        .unwrap();
    assert_eq!(none.status(), 401);
    let md = f
        .http
        .get(format!("{}/.well-known/oauth-protected-resource", rs.base))
        .send()
        .unwrap();
    assert_eq!(md.json()["resource"], GITHUB);
    assert_eq!(md.json()["authorization_servers"][0], AS_ISSUER);
}

/// A DPoP proof (RFC 9449 §4.2) by `key` for `method url`, with `ath` when given.
fn dpop_proof(
    key: &josekit::jwk::alg::ec::EcKeyPair,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    jti: &str,
) -> String {
    use base64::Engine as _;
    use josekit::jwk::KeyPair as _;
    use sha2::Digest as _;
    let signer = josekit::jws::ES256
        .signer_from_jwk(&key.to_jwk_key_pair())
        .unwrap();
    let mut h = josekit::jws::JwsHeader::new();
    h.set_token_type("dpop+jwt");
    h.set_jwk(key.to_jwk_public_key());
    let mut c = serde_json::json!({
        "jti": jti, "htm": method, "htu": url, "iat": crate::support::now(),
    });
    if let Some(at) = access_token {
        c["ath"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(at.as_bytes()))
            .into();
    }
    let p = josekit::jwt::JwtPayload::from_map(c.as_object().unwrap().clone()).unwrap();
    josekit::jwt::encode_with_signer(&p, &h, &signer).unwrap()
}

/// RFC 9449 §5, §7: a proof at leg 2 binds the token; the resource server then wants the
/// `DPoP` scheme, a fresh proof by the same key with `ath`, and never the same proof twice.
#[test]
fn dpop_bound_token_needs_a_fresh_matching_proof_at_the_resource_server() {
    let f = Flow::start_with(github_policy);
    let key = josekit::jws::ES256.generate_key_pair().unwrap();
    let id_jag = f.id_jag_for(GITHUB, "repo.read");
    // htu is the token endpoint as published (the issuer's URL), not the loopback address.
    let token_url = f.server.url("/as/token");
    let proof = dpop_proof(&key, "POST", &format!("{AS_ISSUER}/token"), None, "p-token");
    let r = f
        .http
        .post(token_url)
        .basic("bot-secret", SECRET)
        .header("dpop", &proof)
        .form(&[
            ("grant_type", crate::support::flow::JWT_BEARER),
            ("assertion", &id_jag),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.json()["token_type"], "DPoP");
    let at = r.json()["access_token"].as_str().unwrap().to_owned();
    let (_, c) = decode(&at);
    assert!(c["cnf"]["jkt"].is_string());

    let rs = ExampleRs::start(&f.server.url("/as/jwks.json"));
    let url = format!("{}/repos/acme/api", rs.base);
    let call = |scheme: &str, proof: Option<&str>| {
        let mut req = f
            .http
            .get(url.clone())
            .header("authorization", &format!("{scheme} {at}"));
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send().unwrap()
    };
    let good = dpop_proof(&key, "GET", &url, Some(&at), "p-rs-1");
    assert_eq!(call("DPoP", Some(&good)).status(), 200);

    let replay = call("DPoP", Some(&good));
    assert_eq!(replay.status(), 401, "a proof is single use");
    assert!(
        replay
            .header("www-authenticate")
            .unwrap()
            .starts_with("DPoP ")
    );

    let bearer = call("Bearer", None);
    assert_eq!(bearer.status(), 401, "a bound token is not a bearer token");
    assert!(
        bearer
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );

    let other_key = josekit::jws::ES256.generate_key_pair().unwrap();
    let stolen = dpop_proof(&other_key, "GET", &url, Some(&at), "p-rs-2");
    assert_eq!(
        call("DPoP", Some(&stolen)).status(),
        401,
        "proof by another key"
    );

    let no_ath = dpop_proof(&key, "GET", &url, None, "p-rs-3");
    assert_eq!(
        call("DPoP", Some(&no_ath)).status(),
        401,
        "proof without ath"
    );

    let wrong_url = dpop_proof(
        &key,
        "GET",
        &format!("{}/other", rs.base),
        Some(&at),
        "p-rs-4",
    );
    assert_eq!(
        call("DPoP", Some(&wrong_url)).status(),
        401,
        "proof for another URL"
    );

    assert_eq!(
        call("DPoP", None).status(),
        401,
        "DPoP scheme without a proof"
    );
}
