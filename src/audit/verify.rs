//! Walk the audit chain and name the first record that does not check out.
//!
//! Each stored entry carries its position (`seq`, from 1), the hash of the entry before it
//! (zeros for the first) and its own hash, `SHA-256(prev_hash ‖ seq ‖ body)`. Walking from the
//! start, a record is sound when
//!
//! 1. its `seq` is the next one (a gap is a removed record, a smaller one a reordering);
//! 2. its `prev_hash` is the hash of the record before it (catches a record removed or moved
//!    together with its stored hashes);
//! 3. its hash is the hash of its own `prev_hash`, `seq` and body (catches an edited body);
//! 4. its body is a JSON object;
//! 5. its body holds no token-like value (a compact JWS or JWE) and no credential field
//!    (`client_secret`, `assertion`, `subject_token`, …): records name tokens by `jti`, never
//!    carry them.
//!
//! What a chain cannot show by itself: someone who can write the store may cut records off the
//! end, or rewrite every record from some point on and recompute the hashes. Both are caught by
//! comparing the head hash that `audit verify` prints with a copy kept elsewhere (a ticket, a
//! log shipper, a second store).

use std::fmt;

use serde_json::Value;

use crate::store::AuditEntry;

/// What a verified chain looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedCount {
    /// How many records were checked, all sound.
    pub records: u64,
    /// The hash of the last one (zeros for an empty chain): keep it elsewhere to detect a later
    /// truncation or a rewrite from some point on.
    pub head: [u8; 32],
}

/// The first record that does not check out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The record's position (for a missing record, the position that is missing).
    pub seq: u64,
    /// Why.
    pub reason: Finding,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}", self.seq, self.reason)
    }
}

impl std::error::Error for Broken {}

/// Why a record does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// The next record in the store has a later position: this one was removed.
    #[error("missing: the record after {before} in the store is {found}")]
    Missing {
        /// The last sound position (0 at the start).
        before: u64,
        /// The position found instead.
        found: u64,
    },
    /// A record with an earlier (or the same) position comes where this one should.
    #[error("out of order: record {found} comes after record {before}")]
    OutOfOrder {
        /// The last sound position.
        before: u64,
        /// The position found.
        found: u64,
    },
    /// `prev_hash` is not the previous record's hash.
    #[error(
        "its previous-record hash does not match record {before}: a record was removed, replaced or moved"
    )]
    PrevHash {
        /// The position it should link to (0: the start of the chain, all zeros).
        before: u64,
    },
    /// The stored hash is not the hash of the record's contents.
    #[error("its hash does not match its contents: the record was edited")]
    Hash,
    /// The body does not parse as JSON.
    #[error("its body is not JSON")]
    NotJson,
    /// The body is JSON but not an object.
    #[error("its body is not a JSON object")]
    NotObject,
    /// A value looks like a compact JWS or JWE.
    #[error(
        "it holds a token-like value (compact JWS/JWE) at `{path}`; records must never hold tokens"
    )]
    Token {
        /// Where, as `field`, `field.sub` or `field[0]`.
        path: String,
    },
    /// A field is named like a credential.
    #[error("it has a credential field `{path}`; records must never hold secrets or assertions")]
    Credential {
        /// Where.
        path: String,
    },
}

/// Field names that only a credential would use. A record names tokens by `token_id` (a
/// `jti`) and humans, agents and approvers by id; none of these belong in it.
const CREDENTIAL_FIELDS: &[&str] = &[
    "access_token",
    "actor_token",
    "assertion",
    "client_assertion",
    "client_secret",
    "dpop",
    "id_token",
    "password",
    "refresh_token",
    "secret",
    "subject_token",
];

/// Checks entries one at a time, so that a long chain can be paged out of the store.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    records: u64,
    prev: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// At the start of the chain.
    pub fn new() -> Self {
        Self {
            records: 0,
            prev: [0; 32],
        }
    }

    /// Check the next entry. After an `Err`, the verifier stays where it was.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), Broken> {
        let before = self.records;
        let expected = before + 1;
        let broken = |seq, reason| Broken { seq, reason };
        if e.seq > expected {
            return Err(broken(
                expected,
                Finding::Missing {
                    before,
                    found: e.seq,
                },
            ));
        }
        if e.seq < expected {
            return Err(broken(
                e.seq,
                Finding::OutOfOrder {
                    before,
                    found: e.seq,
                },
            ));
        }
        if e.prev_hash != self.prev {
            return Err(broken(e.seq, Finding::PrevHash { before }));
        }
        if AuditEntry::chain_hash(&e.prev_hash, e.seq, &e.body) != e.hash {
            return Err(broken(e.seq, Finding::Hash));
        }
        check_body(&e.body).map_err(|f| broken(e.seq, f))?;
        self.records = expected;
        self.prev = e.hash;
        Ok(())
    }

    /// What has been verified so far.
    pub fn verified(&self) -> VerifiedCount {
        VerifiedCount {
            records: self.records,
            head: self.prev,
        }
    }
}

/// Verify a whole chain, from its first entry.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<VerifiedCount, Broken> {
    let mut v = ChainVerifier::new();
    for e in entries {
        v.push(e)?;
    }
    Ok(v.verified())
}

/// Parse a record body and check that it holds no token and no credential field.
pub fn check_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, Finding> {
    let v: Value = serde_json::from_slice(body).map_err(|_| Finding::NotJson)?;
    let Value::Object(map) = v else {
        return Err(Finding::NotObject);
    };
    for (k, v) in &map {
        scan(k, v)?;
    }
    Ok(map)
}

fn scan(path: &str, v: &Value) -> Result<(), Finding> {
    let leaf = path.rsplit(['.', '[']).next().unwrap_or(path);
    if is_credential_field(leaf) {
        return Err(Finding::Credential {
            path: path.to_owned(),
        });
    }
    if looks_like_token(path) {
        return Err(Finding::Token {
            path: path.to_owned(),
        });
    }
    match v {
        Value::String(s) if looks_like_token(s) => Err(Finding::Token {
            path: path.to_owned(),
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| scan(&format!("{path}[{i}]"), v)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| scan(&format!("{path}.{k}"), v)),
        _ => Ok(()),
    }
}

/// Whether a field name is one only a credential would use (`client_secret`, `assertion`,
/// `subject_token`, …), compared without regard to case.
pub fn is_credential_field(name: &str) -> bool {
    CREDENTIAL_FIELDS
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
}

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Whether `s` contains a compact JWS (`header.payload.signature`) or JWE (five parts): a
/// base64url run that decodes to a JSON object with an `alg` member (a JOSE header always has
/// one), followed by at least two more dot-separated base64url parts.
pub fn looks_like_token(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s.get(i..).and_then(|rest| rest.find("ey")) {
        let start = i + off;
        i = start + 2;
        if start > 0 && b.get(start - 1).copied().is_some_and(b64url) {
            continue;
        }
        let end = start
            + b.get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| b64url(**c))
                .count();
        let Some(header) = s.get(start..end) else {
            continue;
        };
        if !jose_header(header) {
            continue;
        }
        // At least two more parts: `.payload.` and whatever follows (possibly empty).
        let rest = b.get(end..).unwrap_or_default();
        let mut dots = 0;
        let mut j = 0;
        while rest.get(j) == Some(&b'.') {
            dots += 1;
            j += 1;
            j += rest
                .get(j..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| b64url(**c))
                .count();
        }
        if dots >= 2 {
            return true;
        }
    }
    false
}

fn jose_header(part: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|v| v.get("alg").is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact JWS as an agent would present it (the signature need not verify).
    const JWS: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

    fn chain(bodies: &[&str]) -> Vec<AuditEntry> {
        let mut prev = [0u8; 32];
        let mut out = Vec::new();
        for (i, b) in bodies.iter().enumerate() {
            let seq = i as u64 + 1;
            let hash = AuditEntry::chain_hash(&prev, seq, b.as_bytes());
            out.push(AuditEntry {
                seq,
                prev_hash: prev,
                hash,
                body: b.as_bytes().to_vec(),
            });
            prev = hash;
        }
        out
    }

    fn good() -> Vec<AuditEntry> {
        chain(&[
            r#"{"at":10,"decision":"issued","agent":"bot","human":"alice","token_id":"j1"}"#,
            r#"{"at":11,"decision":"denied","agent":"bot","reason":"Scope"}"#,
            r#"{"at":12,"decision":"issued","agent":"other","human":"bob","token_id":"j2"}"#,
            r#"{"at":13,"decision":"denied","agent":"other","reason":"Replay"}"#,
        ])
    }

    /// Recompute hashes from `from` on, as an attacker who edits must to hide an edit.
    fn rehash(mut c: Vec<AuditEntry>, from: usize) -> Vec<AuditEntry> {
        for i in from..c.len() {
            if i > 0 {
                c[i].prev_hash = c[i - 1].hash;
            }
            c[i].hash = AuditEntry::chain_hash(&c[i].prev_hash, c[i].seq, &c[i].body);
        }
        c
    }

    type Case = (&'static str, fn() -> Vec<AuditEntry>, Result<u64, Broken>);

    fn broken(seq: u64, reason: Finding) -> Result<u64, Broken> {
        Err(Broken { seq, reason })
    }

    #[test]
    fn verify_chain_names_the_first_broken_record() {
        let cases: Vec<Case> = vec![
            ("an untouched chain verifies", good, Ok(4)),
            ("an empty chain verifies", Vec::new, Ok(0)),
            (
                "an edited body breaks its own hash",
                || {
                    let mut c = good();
                    c[1].body =
                        br#"{"at":11,"decision":"issued","agent":"bot","reason":"Scope"}"#.to_vec();
                    c
                },
                broken(2, Finding::Hash),
            ),
            (
                "an edited body with its hash recomputed breaks the next link",
                || {
                    let mut c = good();
                    c[1].body = br#"{"at":11,"decision":"issued"}"#.to_vec();
                    c[1].hash = AuditEntry::chain_hash(&c[1].prev_hash, 2, &c[1].body);
                    c
                },
                broken(3, Finding::PrevHash { before: 2 }),
            ),
            (
                "a removed record is named by its position",
                || {
                    let mut c = good();
                    c.remove(1);
                    c
                },
                broken(
                    2,
                    Finding::Missing {
                        before: 1,
                        found: 3,
                    },
                ),
            ),
            (
                "a removed first record is named",
                || good().split_off(1),
                broken(
                    1,
                    Finding::Missing {
                        before: 0,
                        found: 2,
                    },
                ),
            ),
            (
                "a removed record with the rest renumbered breaks the link",
                || {
                    let mut c = good();
                    c.remove(1);
                    for (i, e) in c.iter_mut().enumerate() {
                        e.seq = i as u64 + 1;
                    }
                    c
                },
                broken(2, Finding::PrevHash { before: 1 }),
            ),
            (
                "a reordered pair is found where the order breaks",
                || {
                    let mut c = good();
                    c.swap(1, 2);
                    c
                },
                broken(
                    2,
                    Finding::Missing {
                        before: 1,
                        found: 3,
                    },
                ),
            ),
            (
                "a pair swapped under their positions breaks the link",
                || {
                    let mut c = good();
                    let (a, b) = (c[1].clone(), c[2].clone());
                    c[1] = AuditEntry { seq: 2, ..b };
                    c[2] = AuditEntry { seq: 3, ..a };
                    c
                },
                broken(2, Finding::PrevHash { before: 1 }),
            ),
            (
                "a pair of bodies swapped breaks the first one's hash",
                || {
                    let mut c = good();
                    let b1 = c[1].body.clone();
                    c[1].body = c[2].body.clone();
                    c[2].body = b1;
                    c
                },
                broken(2, Finding::Hash),
            ),
            (
                "a duplicated record is out of order",
                || {
                    let mut c = good();
                    let d = c[1].clone();
                    c.insert(2, d);
                    c
                },
                broken(
                    2,
                    Finding::OutOfOrder {
                        before: 2,
                        found: 2,
                    },
                ),
            ),
            (
                "a wrong previous hash is named",
                || {
                    let mut c = good();
                    c[2].prev_hash[0] ^= 1;
                    c[2].hash = AuditEntry::chain_hash(&c[2].prev_hash, 3, &c[2].body);
                    c
                },
                broken(3, Finding::PrevHash { before: 2 }),
            ),
            (
                "a first record that does not start from zeros is named",
                || {
                    let mut c = good();
                    c[0].prev_hash = [7; 32];
                    rehash(c, 0)
                },
                broken(1, Finding::PrevHash { before: 0 }),
            ),
            (
                "a token in a body is a finding even when the chain links",
                || {
                    chain(&[
                        r#"{"at":1,"decision":"issued"}"#,
                        &format!(r#"{{"at":2,"decision":"denied","reason":"bad {JWS}"}}"#),
                    ])
                },
                broken(
                    2,
                    Finding::Token {
                        path: "reason".into(),
                    },
                ),
            ),
            (
                "a nested token is found with its path",
                || chain(&[&format!(r#"{{"at":1,"extra":{{"list":["x","{JWS}"]}}}}"#)]),
                broken(
                    1,
                    Finding::Token {
                        path: "extra.list[1]".into(),
                    },
                ),
            ),
            (
                "a credential field is a finding",
                || chain(&[r#"{"at":1,"client_secret":"hunter2"}"#]),
                broken(
                    1,
                    Finding::Credential {
                        path: "client_secret".into(),
                    },
                ),
            ),
            (
                "a body that is not JSON is a finding",
                || chain(&[r#"{"at":1}"#, "not json"]),
                broken(2, Finding::NotJson),
            ),
            (
                "a body that is not an object is a finding",
                || chain(&["[1,2]"]),
                broken(1, Finding::NotObject),
            ),
        ];
        for (name, make, want) in cases {
            let got = verify_chain(&make()).map(|v| v.records);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn head_is_the_last_hash() {
        let c = good();
        let v = verify_chain(&c).expect("good chain");
        assert_eq!(v.head, c[3].hash);
        assert_eq!(
            verify_chain(&[]).expect("empty").head,
            [0; 32],
            "empty chain has the zero head"
        );
    }

    #[test]
    fn paging_gives_the_same_answer_as_one_pass() {
        let c = good();
        let mut v = ChainVerifier::new();
        for page in c.chunks(3) {
            for e in page {
                v.push(e).expect("sound");
            }
        }
        assert_eq!(
            v.verified(),
            verify_chain(&c).expect("sound"),
            "pages of any size"
        );
    }

    #[test]
    fn token_detection_finds_jose_and_spares_ordinary_text() {
        let jwe = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXY.Y2lwaGVy.dGFn";
        let unsecured = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.";
        for (s, want) in [
            (JWS, true),
            (&format!("Bearer {JWS}") as &str, true),
            (&format!("token={JWS}&x=1"), true),
            (jwe, true),
            (unsecured, true),
            ("eyes.eyebrows.eyelids", false),
            ("alice@example.com", false),
            ("https://api.example/", false),
            ("Denied(\"no grant\")", false),
            // A base64url JSON object without `alg` is not a JOSE header.
            ("eyJzdWIiOiJhIn0.eyJzdWIiOiJhIn0.x", false),
            // A header alone, without the parts that follow, is not a token.
            ("eyJhbGciOiJFUzI1NiJ9", false),
            ("", false),
        ] {
            assert_eq!(looks_like_token(s), want, "{s}");
        }
    }

    #[test]
    fn broken_displays_seq_and_reason() {
        let b = Broken {
            seq: 7,
            reason: Finding::Hash,
        };
        assert_eq!(
            b.to_string(),
            "record 7: its hash does not match its contents: the record was edited"
        );
    }
}
