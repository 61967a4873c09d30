//! Leg 1 over HTTP, with a real OIDC issuer beside lanyard: each client authentication
//! method, fail-closed when the IdP's keys cannot be had, and recovery without a restart.

use crate::support::{
    AS_ISSUER, IDP_ISSUER, SECRET, Site, client_assertion, decode, idp::TestIdp,
    reqwest::blocking_client, te_form,
};

fn assert_id_jag(body: &serde_json::Value, agent: &str) {
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:id-jag"
    );
    assert_eq!(body["token_type"], "N_A");
    assert!(body.get("refresh_token").is_none());
    let (h, c) = decode(body["access_token"].as_str().unwrap());
    assert_eq!(h["typ"], "oauth-id-jag+jwt");
    assert_eq!(c["iss"], IDP_ISSUER);
    assert_eq!(c["aud"], AS_ISSUER);
    assert_eq!(c["client_id"], agent);
    assert_eq!(c["act"]["sub"], agent);
    assert_eq!(c["sub"], "alice");
    assert!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap() <= 300);
}

#[test]
fn issues_id_jag_for_each_client_authentication_method() {
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let http = blocking_client();
    let server = site.start();
    let url = server.url("/idp/token");

    // client_secret_basic
    let t = idp.id_token("alice", "bot-secret-sso");
    let r = http
        .post(url.clone())
        .basic("bot-secret", SECRET)
        .form(&te_form(&t, &[("scope", "read write admin")]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_id_jag(&r.json(), "bot-secret");
    assert_eq!(
        r.json()["scope"],
        "read write",
        "admin is on the agent's never list"
    );

    // client_secret_post
    let t = idp.id_token("alice", "bot-secret-sso");
    let r = http
        .post(url.clone())
        .form(&te_form(
            &t,
            &[("client_id", "bot-secret"), ("client_secret", SECRET)],
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_id_jag(&r.json(), "bot-secret");

    // private_key_jwt
    let t = idp.id_token("alice", "bot-key-sso");
    let a = client_assertion(&site, IDP_ISSUER, "te-jti-1");
    let r = http
        .post(url.clone())
        .form(&te_form(
            &t,
            &[
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &a),
            ],
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    assert_id_jag(&r.json(), "bot-key");
    assert_eq!(r.json()["scope"], "read", "bot-key's grant is read only");

    // An ID token issued to another agent's SSO client is refused.
    let t = idp.id_token("alice", "bot-key-sso");
    let r = http
        .post(url)
        .basic("bot-secret", SECRET)
        .form(&te_form(&t, &[]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json()["error"], "invalid_grant");
}

/// Checklist B16 / issue: upstream keys unreachable → 503, nothing issued; service resumes
/// when the IdP is back, without a restart.
#[test]
fn fails_closed_when_idp_keys_are_unreachable_and_recovers() {
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let http = blocking_client();
    let server = site.start();
    let url = server.url("/idp/token");
    idp.set_down(true);
    let t = idp.id_token("alice", "bot-secret-sso");
    let r = http
        .post(url.clone())
        .basic("bot-secret", SECRET)
        .form(&te_form(&t, &[]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503, "{}", r.body);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert!(r.header("retry-after").is_some());
    assert!(r.json().get("access_token").is_none());

    idp.set_down(false);
    // The failure back-off is short; poll until the next attempt refetches.
    let mut status = 0;
    for _ in 0..300 {
        let t = idp.id_token("alice", "bot-secret-sso");
        let r = http
            .post(url.clone())
            .basic("bot-secret", SECRET)
            .form(&te_form(&t, &[]))
            .send()
            .unwrap();
        status = r.status();
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(status, 200, "issuance resumed without a restart");
}

/// Issue 9: outbound fetches never reach loopback or private addresses unless the operator
/// allows it — a discovery document cannot point lanyard at an internal service. Nothing is
/// issued (503, fail closed).
#[test]
fn refuses_to_fetch_idp_keys_from_a_private_address_unless_allowed() {
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    site.write_config("[outbound]\nallow_private_addresses = false\n");
    let server = site.start();
    let http = blocking_client();
    let t = idp.id_token("alice", "bot-secret-sso");
    let r = http
        .post(server.url("/idp/token"))
        .basic("bot-secret", SECRET)
        .form(&te_form(&t, &[]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503, "{}", r.body);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    // The log reader thread may lag the response a little: poll, bounded.
    let t0 = std::time::Instant::now();
    while !server.log_text().contains("non-public address refused")
        && t0.elapsed() < std::time::Duration::from_secs(5)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        server.log_text().contains("non-public address refused"),
        "the refusal is logged with its reason:\n{}",
        server.log_text()
    );
}
