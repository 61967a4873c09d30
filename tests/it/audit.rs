//! The audit trail's tooling against a real server's store: `lanyard audit verify` and
//! `lanyard audit export` after issued and denied exchanges, the store held by a running
//! server refused with a clear message, and an edited, a deleted and a reordered record each
//! named by `audit verify`.

use std::path::Path;
use std::process::{Command, Output};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use crate::support::{
    IDP_ISSUER, SECRET, Site, client_assertion, idp::TestIdp, reqwest::blocking_client, te_form,
};

/// The embedded store's audit table: `seq → prev_hash (32) ‖ hash (32) ‖ body`.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Run `lanyard audit …` against the site's config; `store` overrides the store file.
fn audit(site: &Site, args: &[&str], store: Option<&Path>) -> Output {
    let mut cmd = Command::new(crate::support::lanyard_bin());
    cmd.arg("audit")
        .args(args)
        .arg("--config")
        .arg(site.path("lanyard.toml"))
        .env_remove("LANYARD_CONFIG")
        .env_remove("LANYARD_STORE_PATH");
    if let Some(p) = store {
        cmd.env("LANYARD_STORE_PATH", p);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Edit the stored audit table of a (closed) store file.
fn edit_audit(path: &Path, f: impl FnOnce(&mut redb::Table<u64, &[u8]>)) {
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(AUDIT).unwrap();
        f(&mut t);
    }
    tx.commit().unwrap();
}

fn raw(t: &redb::Table<u64, &[u8]>, seq: u64) -> Vec<u8> {
    t.get(seq).unwrap().unwrap().value().to_vec()
}

fn read_bodies(path: &Path) -> Vec<(u64, serde_json::Value)> {
    let db = redb::Database::create(path).unwrap();
    let tx = db.begin_read().unwrap();
    let t = tx.open_table(AUDIT).unwrap();
    t.iter()
        .unwrap()
        .map(|i| {
            let (k, v) = i.unwrap();
            (k.value(), serde_json::from_slice(&v.value()[64..]).unwrap())
        })
        .collect()
}

/// Issue 7 "what it must show" 3, embedded mode: an untouched store verifies; editing,
/// deleting or reordering one record makes `audit verify` fail and name it; `audit export`
/// writes only the asked-for agent's records and never a token or a secret.
#[test]
fn audit_verify_and_export_over_a_real_trail() {
    let idp = TestIdp::start();
    let site = Site::new(&idp.issuer);
    let http = blocking_client();
    let mut server = site.start();
    let url = server.url("/idp/token");
    let store = site.path("data/lanyard.redb");

    // While the server holds the embedded store, the tools refuse with a clear message.
    let out = audit(&site, &["verify"], None);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains("stop the server"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Every credential and token presented, to look for in the trail afterwards.
    let mut presented = vec![SECRET.to_owned()];
    let key_auth = |a: &str| -> Vec<(&'static str, String)> {
        vec![
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion", a.to_owned()),
        ]
    };
    let post =
        |presented: &mut Vec<String>, t: &str, basic: bool, extra: Vec<(&'static str, String)>| {
            presented.push(t.to_owned());
            presented.extend(
                extra
                    .iter()
                    .filter(|(k, _)| *k == "client_assertion")
                    .map(|(_, v)| v.clone()),
            );
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let req = http.post(url.clone()).form(&te_form(t, &extra));
            let req = if basic {
                req.basic("bot-secret", SECRET)
            } else {
                req
            };
            req.send().unwrap()
        };

    // Denials first: their records are written in the background, so the durable issuances
    // that follow are queued behind them.
    let r = post(
        &mut presented,
        &idp.id_token("alice", "bot-key-sso"),
        true,
        vec![],
    );
    assert_eq!(r.status(), 400, "an ID token of another agent: {}", r.body);
    let a = client_assertion(&site, IDP_ISSUER, "audit-jti-1");
    let r = post(
        &mut presented,
        &idp.id_token("alice", "bot-secret-sso"),
        false,
        key_auth(&a),
    );
    assert_eq!(
        r.status(),
        400,
        "bot-key with bot-secret's token: {}",
        r.body
    );
    // Issuances.
    let r = post(
        &mut presented,
        &idp.id_token("alice", "bot-secret-sso"),
        true,
        vec![("scope", "read".into())],
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    presented.push(r.json()["access_token"].as_str().unwrap().to_owned());
    let r = post(
        &mut presented,
        &idp.id_token("bob", "bot-secret-sso"),
        true,
        vec![],
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    presented.push(r.json()["access_token"].as_str().unwrap().to_owned());
    let a = client_assertion(&site, IDP_ISSUER, "audit-jti-2");
    let r = post(
        &mut presented,
        &idp.id_token("carol", "bot-key-sso"),
        false,
        key_auth(&a),
    );
    assert_eq!(r.status(), 200, "{}", r.body);
    presented.push(r.json()["access_token"].as_str().unwrap().to_owned());

    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "clean stop: {status:?}");

    // An untouched store verifies, with every decision counted.
    let out = audit(&site, &["verify"], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("5 records, chain intact\n"), "{stdout}");
    assert!(stdout.contains("head: record 5 hash "), "{stdout}");

    // Export one agent's records: JSON lines of that agent only, each with seq and hash,
    // holding none of the tokens, assertions or secrets presented.
    let out = audit(&site, &["export", "--agent", "bot-secret"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    let records: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{lines}");
    for r in &records {
        assert_eq!(r["agent"], "bot-secret", "{r}");
        assert!(
            r["seq"].as_u64().is_some_and(|s| (1..=5).contains(&s)),
            "{r}"
        );
        let hash = r["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64, "{r}");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{r}");
    }
    let decisions: Vec<_> = records.iter().map(|r| r["decision"].clone()).collect();
    assert_eq!(decisions, ["denied", "issued", "issued"], "{lines}");
    let humans: Vec<_> = records.iter().map(|r| r["human"].clone()).collect();
    assert_eq!(humans[1..], ["alice", "bob"], "{lines}");
    for p in &presented {
        assert!(
            !lines.contains(p.as_str()),
            "the export holds a credential: {lines}"
        );
    }
    assert!(!lines.contains("eyJ"), "nothing token-like: {lines}");
    assert!(text(&out.stderr).contains("exported 3 of 5 records"));

    // Filters combine; --output writes the same lines to a file.
    let file = site.path("bot-secret-denied.jsonl");
    let out = audit(
        &site,
        &[
            "export",
            "--agent",
            "bot-secret",
            "--decision",
            "denied",
            "--output",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert_eq!(written.lines().next(), lines.lines().next());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = audit(
        &site,
        &["export", "--since", "2000-01-01T00:00:00Z", "--until", "1"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "an empty window");
    let out = audit(&site, &["export", "--since", "yesterday"], None);
    assert_eq!(out.status.code(), Some(2), "a bad time is a usage error");

    // Three copies of the store, each tampered with one way.
    let edited = site.path("edited.redb");
    let deleted = site.path("deleted.redb");
    let reordered = site.path("reordered.redb");
    for p in [&edited, &deleted, &reordered] {
        std::fs::copy(&store, p).unwrap();
    }
    // The record of bob's issuance (seq 4): claim it was alice.
    let bodies = read_bodies(&edited);
    let (seq, _) = bodies
        .iter()
        .find(|(_, b)| b["human"] == "bob")
        .expect("bob's record");
    let seq = *seq;
    edit_audit(&edited, |t| {
        let raw = raw(t, seq);
        let body = String::from_utf8(raw[64..].to_vec()).unwrap();
        let forged = body.replace("\"bob\"", "\"alice\"");
        assert_ne!(body, forged);
        let mut v = raw[..64].to_vec();
        v.extend_from_slice(forged.as_bytes());
        t.insert(seq, v.as_slice()).unwrap();
    });
    edit_audit(&deleted, |t| {
        t.remove(2).unwrap();
    });
    edit_audit(&reordered, |t| {
        let (two, three) = (raw(t, 2), raw(t, 3));
        t.insert(2, three.as_slice()).unwrap();
        t.insert(3, two.as_slice()).unwrap();
    });
    for (path, seq, why) in [
        (&edited, seq, "the record was edited"),
        (&deleted, 2, "missing"),
        (&reordered, 2, "previous-record hash does not match"),
    ] {
        let out = audit(&site, &["verify"], Some(path));
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {stdout}{}",
            path.display(),
            text(&out.stderr)
        );
        assert!(
            stdout.starts_with(&format!("record {seq}: ")),
            "{}: {stdout}",
            path.display()
        );
        assert!(stdout.contains(why), "{}: {stdout}", path.display());
        assert!(
            stdout.contains(&format!("chain broken at record {seq}")),
            "{stdout}"
        );
        // Export still writes the records, and fails naming the same record.
        let out = audit(&site, &["export"], Some(path));
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(&format!("audit chain broken: record {seq}: ")),
            "{}",
            text(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
    }

    // A record cut too short to hold its hashes: every record before it is checked, and the
    // break is placed after the last one that verifies.
    let cut = site.path("cut.redb");
    std::fs::copy(&store, &cut).unwrap();
    edit_audit(&cut, |t| {
        t.insert(3, &b"short"[..]).unwrap();
    });
    let out = audit(&site, &["verify"], Some(&cut));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("audit entry 3 too short"), "{stdout}");
    assert!(stdout.contains("chain broken after record 2"), "{stdout}");

    // The original, untouched, still verifies.
    let out = audit(&site, &["verify"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // A store that does not exist is not created.
    let missing = site.path("nowhere.redb");
    let out = audit(&site, &["verify"], Some(&missing));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("no store at"),
        "{}",
        text(&out.stderr)
    );
    assert!(!missing.exists());
}
