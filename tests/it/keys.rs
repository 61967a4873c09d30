//! Key rotation through the CLI, picked up by a running server without a restart
//! (checklist A7, A8).

use std::process::Command;

use crate::support::{
    SECRET, Site, decode, idp::TestIdp, lanyard_bin, reqwest::blocking_client, te_form,
};

fn keys(site: &Site, op: &str) -> String {
    let out = Command::new(lanyard_bin())
        .args(["keys", op, "--role", "idp", "--config"])
        .arg(site.path("lanyard.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {op}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn jwks_kids(v: &serde_json::Value) -> Vec<String> {
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Private keys are 0600 in a 0700 directory.
#[test]
fn generated_keys_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = Site::new("https://idp.example.com");
    let dir = site.path("keys/idp");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            e.metadata().unwrap().permissions().mode() & 0o777,
            0o600,
            "{:?}",
            e.path()
        );
    }
    assert!(keys(&site, "list").contains("active"));
}

/// A8: after rotation the previous key keeps validating until its tokens expire, and the new
/// key is published before its first use. A7: every token's kid is in the JWKS with its alg.
#[test]
fn rotation_publishes_before_use_and_keeps_the_old_key() {
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let http = blocking_client();
    let server = site.start();
    let exchange = || {
        let t = idp.id_token("alice", "bot-secret-sso");
        let r = http
            .post(server.url("/idp/token"))
            .basic("bot-secret", SECRET)
            .form(&te_form(&t, &[]))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.body);
        decode(r.json()["access_token"].as_str().unwrap()).0
    };
    let old = exchange();
    let jwks = http
        .get(server.url("/idp/jwks.json"))
        .send()
        .unwrap()
        .json();
    assert_eq!(
        jwks_kids(&jwks),
        vec![old["kid"].as_str().unwrap().to_owned()]
    );
    let published = &jwks["keys"][0];
    assert_eq!(
        published["alg"], old["alg"],
        "A7: the token's alg is its key's alg"
    );

    // Rotate with the default lead: the next key is published now but does not sign yet.
    let out = keys(&site, "rotate");
    assert!(out.contains("published now"), "{out}");
    server.signal("HUP");
    let mut kids = Vec::new();
    for _ in 0..200 {
        kids = jwks_kids(
            &http
                .get(server.url("/idp/jwks.json"))
                .send()
                .unwrap()
                .json(),
        );
        if kids.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(
        kids.len(),
        2,
        "the next key is published before its first use"
    );
    let still = exchange();
    assert_eq!(
        still["kid"], old["kid"],
        "the next key does not sign before its time"
    );
    assert!(keys(&site, "list").contains("next"));
}
