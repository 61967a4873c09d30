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

/// Issue 6: `kill -9` during a burst of revocations on the embedded store loses none that
/// was acknowledged. Four clients revoke token ids as fast as they can; the server is killed
/// mid-burst; after a restart every revocation that got a 200 is still in force.
#[test]
fn acknowledged_revocations_survive_sigkill_mid_burst() {
    use std::sync::{Arc, Mutex};
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let policy = std::fs::read_to_string(site.path("policy.toml")).unwrap();
    site.write_policy(&format!(
        "{policy}\n[control_plane]\nclient_ids = {{ corp = \"lanyard-console\" }}\nadmins = [\"group:lanyard-admins\"]\n"
    ));
    let admin = idp.id_token_with(
        "carol",
        "lanyard-console",
        serde_json::json!({"groups": ["lanyard-admins"]}),
    );
    let server = site.start();
    let url = server.url("/admin/v1/tokens/revoke");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (url, admin, acked) = (url.clone(), admin.clone(), acked.clone());
            std::thread::spawn(move || {
                let http = blocking_client();
                for i in 0..10_000 {
                    let jti = format!("burst-{w}-{i}");
                    let r = http
                        .post(url.clone())
                        .header("authorization", &format!("Bearer {admin}"))
                        .header("content-type", "application/json")
                        .body(serde_json::json!({ "jti": jti }).to_string())
                        .send();
                    match r {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(jti),
                        Ok(r) => panic!("revocation refused: {} {}", r.status(), r.body),
                        // The server is gone: stop.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    // Kill once a good number of revocations has been acknowledged (bounded wait).
    let t0 = std::time::Instant::now();
    while acked.lock().unwrap().len() < 200 && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill9();
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200, "only {} acknowledged", acked.len());

    let server = site.start();
    let http = blocking_client();
    let r = http
        .get(server.url("/admin/v1/revocations"))
        .header("authorization", &format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.body);
    let live: std::collections::HashSet<String> = r.json()["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["subject"]["jti"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|j| !live.contains(*j)).collect();
    eprintln!(
        "{} revocations acknowledged before SIGKILL, {} in force after restart, {} lost",
        acked.len(),
        live.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged revocations lost: {lost:?}");
}
