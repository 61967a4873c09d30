//! The embedded store and the keys survive SIGKILL.

use crate::support::{
    IDP_ISSUER, Site, client_assertion, decode, idp::TestIdp, reqwest::blocking_client, te_form,
};

/// A request's effects (its replay mark, its audit record) are durable before its response:
/// after `kill -9` and a restart, the used client assertion is still refused as a replay, the
/// signing key is the same, and the audit trail holds the issuance.
#[test]
fn state_and_keys_survive_sigkill() {
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let http = blocking_client();
    let server = site.start();
    let jwks_before = http
        .get(server.url("/idp/jwks.json"))
        .send()
        .unwrap()
        .json();

    let assertion = client_assertion(&site, IDP_ISSUER, "restart-jti-1");
    let id_token = idp.id_token("alice", "bot-key-sso");
    let mut form = te_form(&id_token, &[]);
    form.extend([
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ]);
    let r = http
        .post(server.url("/idp/token"))
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    let (hdr, claims) = decode(r.json()["access_token"].as_str().unwrap());
    server.kill9();

    let server = site.start();
    let r = http
        .post(server.url("/idp/token"))
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "the replay mark survived SIGKILL: {}",
        r.body
    );
    let jwks_after = http
        .get(server.url("/idp/jwks.json"))
        .send()
        .unwrap()
        .json();
    assert_eq!(jwks_before, jwks_after, "keys intact");
    assert!(
        jwks_after["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == hdr["kid"])
    );
    drop(server);

    // The audit trail holds the issued token's record, chained.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let entries = rt.block_on(async {
        use lanyard::store::Store as _;
        let store =
            lanyard::store::embedded::EmbeddedStore::open(&site.path("data/lanyard.redb")).unwrap();
        store.audit_since(0, 100).await.unwrap()
    });
    let issued: Vec<_> = entries
        .iter()
        .filter_map(|e| serde_json::from_slice::<serde_json::Value>(&e.body).ok())
        .filter(|v| v["decision"] == "issued")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["token_id"], claims["jti"]);
    assert_eq!(issued[0]["human"], "alice");
    for w in entries.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash, "audit chain links");
    }
}
