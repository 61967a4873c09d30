//! The command line: a bad config or policy reports every error with its field path.

use std::process::Command;

use crate::support::{lanyard_bin, standard_policy};

#[test]
fn bad_config_reports_every_error_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lanyard.toml");
    std::fs::write(
        &cfg,
        r#"version = 1
[server]
listen = "not-an-address"
request_timeout = "soon"
[keys]
algorithm = "HS256"
[idp]
issuer = "http://idp.example.com"
[authorization_server]
issuer = "https://as.example.com/?q=1"
"#,
    )
    .unwrap();
    let out = Command::new(lanyard_bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad config exits 2");
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "server.listen",
        "server.request_timeout",
        "keys.algorithm",
        "idp.issuer",
        "authorization_server.issuer",
    ] {
        assert!(err.contains(field), "missing {field} in:\n{err}");
    }
    assert!(err.contains("line 3"), "errors carry their line:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn policy_check_reports_every_error_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, standard_policy("https://idp.example.com")).unwrap();
    std::fs::write(dir.path().join("bot-key.jwks.json"), r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f2Cn-sK3npyCD0Hmxal_ZADGK7AUxd3Gu_h93MWOrxA","y":"hqhUr8DeAeVhMzF0eIx99Z24WY7YXXYHdpUVI00HLNA"}]}"#).unwrap();
    let out = Command::new(lanyard_bin())
        .args(["policy", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"version = 1
[[resource]]
uri = "https://api.example/"
authorization_server = "https://as.example"
actions = ["read"]

[[agent]]
id = "bot"
owner = "alice@example.com"
credential = { client_secret_sha256 = "nothex" }
never = ["launch"]

[[channel]]
id = "c1"
[[channel.grant]]
agent = "ghost"
resource = "https://api.example/"
actions = ["write"]
"#,
    )
    .unwrap();
    let out = Command::new(lanyard_bin())
        .args(["policy", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let label = bad.display().to_string();
    for (line, field) in [
        (10, "agent[0].credential"),
        (11, "agent[0].never[0]"),
        (16, "channel[0].grant[0].agent"),
        (18, "channel[0].grant[0].actions[0]"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("{label}:{line}:")) && l.contains(field)),
            "missing {label}:{line}: {field} in:\n{err}"
        );
    }
}

#[test]
fn server_refuses_to_start_with_a_bad_policy() {
    let idp = crate::support::idp::TestIdp::start();
    let site = crate::support::Site::new(&idp.issuer);
    site.write_policy("version = 1\n[[agent]]\nid = \"x\"\n");
    let out = Command::new(lanyard_bin())
        .args(["serve", "--config"])
        .arg(site.path("lanyard.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy") && err.contains("agent[0]"), "{err}");
}
