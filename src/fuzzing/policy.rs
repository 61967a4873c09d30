//! The policy file (`policy::parse`).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Outcome, Reached, ensure};
use crate::policy::parse;

/// The file label errors must carry.
const LABEL: &str = "fuzz/policy.toml";

/// Input: the policy text (invalid UTF-8 is replaced, as a reader would have to). JWKS files
/// it names resolve against a directory that does not exist, so relative ones never read.
pub fn policy(data: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(data);
    let base = Path::new("/nonexistent/lanyard-fuzz");
    let r = parse(LABEL, &text, base);
    // Deterministic: the same text gives the same result.
    let again = parse(LABEL, &text, base);
    let errs = match (&r, &again) {
        (Ok(p), Ok(q)) => {
            ensure!(p.fingerprint() == q.fingerprint(), "fingerprint not stable");
            let hex: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            ensure!(
                p.fingerprint() == hex,
                "fingerprint is not the SHA-256 of the text"
            );
            ensure!(p.source() == LABEL, "source is not the label");
            return Ok(Reached::Accepted);
        }
        (Err(e), Err(f)) => {
            ensure!(e == f, "errors not stable across two parses");
            e
        }
        _ => return Err(super::Violation("parse is not deterministic".into())),
    };
    // Every error: this file, a line and column inside it, sorted by position.
    ensure!(!errs.is_empty(), "refused with no error");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut last = (0, 0);
    for e in errs {
        ensure!(e.file == LABEL, "error for another file: {:?}", e.file);
        let Some(line) = e.line.checked_sub(1).and_then(|i| lines.get(i)) else {
            return Err(super::Violation(format!(
                "line {} outside the file's {} lines: {e}",
                e.line,
                lines.len()
            )));
        };
        ensure!(
            e.column >= 1 && e.column <= line.chars().count() + 1,
            "column {} outside line {} ({} characters): {e}",
            e.column,
            e.line,
            line.chars().count()
        );
        ensure!((e.line, e.column) >= last, "errors not sorted by position");
        last = (e.line, e.column);
        ensure!(
            e.to_string()
                .starts_with(&format!("{LABEL}:{}:{}: ", e.line, e.column)),
            "display does not start with file:line:col"
        );
        ensure!(!e.message.is_empty(), "empty message");
    }
    Ok(Reached::Refused)
}

pub(super) fn seeds() -> Vec<Vec<u8>> {
    let full = r#"version = 1
[[idp]]
id = "corp"
issuer = "https://idp.example"
algorithms = ["RS256"]

[[trusted_issuer]]
issuer = "https://other.example/idp"
jwks = '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}'
algorithms = ["ES256"]

[[resource]]
uri = "https://api.example/"
authorization_server = "https://as.example/as"
actions = ["read", "write", "admin"]
max_ttl = "5m"

[[agent]]
id = "bot"
owner = "alice@example.com"
credential = { client_secret_sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }
idp_client_ids = { corp = "bot-sso" }
never = ["admin"]
max_ttl = "10m"
grants = [{ resource = "https://api.example/", actions = ["read", "write"] }]

[[channel]]
id = "slack:T1/C1"
[[channel.grant]]
agent = "bot"
resource = "https://api.example/"
actions = ["read", "write"]
approval = { actions = ["write"], approvers = "group:leads" }
expires = "2030-01-31"

[[entitlement]]
group = "staff"
resource = "https://api.example/"
actions = ["read", "write", "admin"]

[control_plane]
client_ids = { corp = "console" }
admins = ["group:admins"]
"#;
    vec![
        full.as_bytes().to_vec(),
        include_bytes!("../../policy.example.toml").to_vec(),
        b"version = 1\n".to_vec(),
        b"version = 2\n[[agent]]\nid = \"x\"\n".to_vec(),
        b"version = 1\n[[agent]]\nid = \"x\"\nnever = [\"nope\"]\ncredential = { jwks_file = \"a.json\" }\n".to_vec(),
        b"version = 1\n[[resource]\nuri = 3\n".to_vec(),
        b"\xff\xfe[\r\n".to_vec(),
        Vec::new(),
    ]
}
