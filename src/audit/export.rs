//! Audit records as JSON lines, filtered by time, human, agent, channel and decision.
//!
//! One record per line: the record's own fields with its chain position `seq` and chain
//! `hash` (lower-case hex) added, so that a line can be traced back to the store and compared
//! with `audit verify`'s head hash. The chain is checked while exporting: a broken chain does
//! not stop the export (the records are still evidence), but it is reported in the
//! [`Summary`]. A value that looks like a token (or a field named like a credential) is
//! written as `"[redacted]"`, so that an export never spreads a credential that should not
//! have been recorded in the first place.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value};

use super::verify::{self, Broken, ChainVerifier};
use crate::clock::UnixTime;
use crate::store::AuditEntry;

/// Which records to write. Every set field must match; `since` is inclusive and `until`
/// exclusive, so consecutive windows neither overlap nor leave a gap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Records at or after this time.
    pub since: Option<UnixTime>,
    /// Records before this time.
    pub until: Option<UnixTime>,
    /// The human the agent acted for.
    pub human: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// The channel.
    pub channel: Option<String>,
    /// The decision (`issued`, `denied`, …).
    pub decision: Option<String>,
}

impl Filter {
    /// Whether a parsed record matches. A record without `at` matches no time bound; a record
    /// without a field matches no filter on that field.
    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        let at = record.get("at").and_then(Value::as_u64);
        let text = |k: &str| record.get(k).and_then(Value::as_str);
        let is =
            |want: &Option<String>, k: &str| want.as_deref().is_none_or(|w| text(k) == Some(w));
        self.since.is_none_or(|s| at.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| at.is_some_and(|t| t < u))
            && is(&self.human, "human")
            && is(&self.agent, "agent")
            && is(&self.channel, "channel")
            && is(&self.decision, "decision")
    }
}

/// A time argument that is neither RFC 3339 nor whole seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 time (2025-01-31T09:00:00Z, 2025-01-31T10:00:00+01:00) or unix seconds")]
pub struct BadTime;

/// Parse `--since` / `--until`: unix seconds, or RFC 3339 with `Z` or a numeric offset.
/// Fractions of a second are dropped.
pub fn parse_time(s: &str) -> Result<UnixTime, BadTime> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| BadTime);
    }
    let upper = s.to_ascii_uppercase();
    // humantime reads UTC only; apply a numeric offset ourselves.
    let (utc, offset) = match upper.len().checked_sub(6).and_then(|i| {
        let (head, tail) = (upper.get(..i)?, upper.get(i..)?);
        let t = tail.as_bytes();
        let sign = match t.first()? {
            b'+' => 1i64,
            b'-' => -1,
            _ => return None,
        };
        if t.get(3) != Some(&b':') {
            return None;
        }
        let hh: i64 = tail.get(1..3)?.parse().ok()?;
        let mm: i64 = tail.get(4..6)?.parse().ok()?;
        (hh < 24 && mm < 60).then(|| (format!("{head}Z"), sign * (hh * 3600 + mm * 60)))
    }) {
        Some(v) => v,
        None => (upper, 0),
    };
    let t = humantime::parse_rfc3339(&utc).map_err(|_| BadTime)?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| BadTime)?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| BadTime)? - offset;
    UnixTime::try_from(secs).map_err(|_| BadTime)
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    hash: String,
    #[serde(flatten)]
    record: &'a Map<String, Value>,
}

const REDACTED: &str = "[redacted]";

fn redact(key: &str, v: &mut Value) {
    if verify::is_credential_field(key) {
        *v = Value::String(REDACTED.into());
        return;
    }
    match v {
        Value::String(s) if verify::looks_like_token(s) => *v = Value::String(REDACTED.into()),
        Value::Array(items) => items.iter_mut().for_each(|i| redact("", i)),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact(k, v)),
        _ => {}
    }
}

/// One export line for an entry whose body parsed as `record`: the record with `seq` and
/// `hash` added (a `seq` or `hash` of its own is replaced) and token-like values redacted.
/// No trailing newline.
pub fn line(entry: &AuditEntry, mut record: Map<String, Value>) -> String {
    record.remove("seq");
    record.remove("hash");
    record.iter_mut().for_each(|(k, v)| redact(k, v));
    let l = Line {
        seq: entry.seq,
        hash: super::hex(&entry.hash),
        record: &record,
    };
    // A map of JSON values always serializes.
    serde_json::to_string(&l).unwrap_or_default()
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Entries read from the store.
    pub read: u64,
    /// Lines written.
    pub written: u64,
    /// Entries whose body is not a JSON object (never written).
    pub unreadable: u64,
    /// The first record where the chain does not check out, if any.
    pub broken: Option<Broken>,
}

/// Writes matching entries as JSON lines while checking the chain; fed page by page.
#[derive(Debug)]
pub struct Exporter {
    filter: Filter,
    chain: ChainVerifier,
    summary: Summary,
}

impl Exporter {
    /// An exporter at the start of the chain.
    pub fn new(filter: Filter) -> Self {
        Self {
            filter,
            chain: ChainVerifier::new(),
            summary: Summary {
                read: 0,
                written: 0,
                unreadable: 0,
                broken: None,
            },
        }
    }

    /// Take the next entry of the chain; write it to `out` if it matches.
    pub fn push(&mut self, entry: &AuditEntry, out: &mut dyn Write) -> io::Result<()> {
        self.summary.read += 1;
        if self.summary.broken.is_none()
            && let Err(b) = self.chain.push(entry)
        {
            self.summary.broken = Some(b);
        }
        let record = match serde_json::from_slice::<Value>(&entry.body) {
            Ok(Value::Object(m)) => m,
            _ => {
                self.summary.unreadable += 1;
                return Ok(());
            }
        };
        if self.filter.matches(&record) {
            out.write_all(line(entry, record).as_bytes())?;
            out.write_all(b"\n")?;
            self.summary.written += 1;
        }
        Ok(())
    }

    /// The outcome.
    pub fn finish(self) -> Summary {
        self.summary
    }
}

/// Export a whole chain held in memory.
pub fn export<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    filter: Filter,
    out: &mut dyn Write,
) -> io::Result<Summary> {
    let mut x = Exporter::new(filter);
    for e in entries {
        x.push(e, out)?;
    }
    Ok(x.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::Finding;

    const JWS: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

    fn chain(bodies: &[String]) -> Vec<AuditEntry> {
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

    fn rec(at: u64, decision: &str, agent: &str, human: &str, channel: Option<&str>) -> String {
        let mut v = serde_json::json!({
            "at": at, "event": "token_exchange", "decision": decision,
            "agent": agent, "human": human, "reason": "r", "issuer": "https://lanyard.test/idp",
        });
        if let Some(c) = channel {
            v["channel"] = c.into();
        }
        v.to_string()
    }

    fn sample() -> Vec<AuditEntry> {
        chain(&[
            rec(100, "issued", "bot", "alice", Some("eng")),
            rec(200, "denied", "bot", "alice", None),
            rec(300, "issued", "other", "bob", Some("eng")),
            rec(400, "denied", "other", "alice", Some("ops")),
            rec(500, "issued", "bot", "bob", None),
        ])
    }

    fn seqs(filter: Filter) -> Vec<u64> {
        let mut out = Vec::new();
        let s = export(&sample(), filter, &mut out).expect("export");
        assert_eq!(s.broken, None);
        String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("each line is JSON")["seq"]
                    .as_u64()
                    .expect("seq")
            })
            .collect()
    }

    #[test]
    fn filters_select_the_matching_records() {
        let s = |v: &str| Some(v.to_owned());
        let cases: Vec<(&str, Filter, Vec<u64>)> = vec![
            (
                "no filter writes all",
                Filter::default(),
                vec![1, 2, 3, 4, 5],
            ),
            (
                "since is inclusive",
                Filter {
                    since: Some(300),
                    ..Filter::default()
                },
                vec![3, 4, 5],
            ),
            (
                "until is exclusive",
                Filter {
                    until: Some(300),
                    ..Filter::default()
                },
                vec![1, 2],
            ),
            (
                "a window",
                Filter {
                    since: Some(200),
                    until: Some(400),
                    ..Filter::default()
                },
                vec![2, 3],
            ),
            (
                "by agent",
                Filter {
                    agent: s("bot"),
                    ..Filter::default()
                },
                vec![1, 2, 5],
            ),
            (
                "by human",
                Filter {
                    human: s("alice"),
                    ..Filter::default()
                },
                vec![1, 2, 4],
            ),
            (
                "by channel (records without one never match)",
                Filter {
                    channel: s("eng"),
                    ..Filter::default()
                },
                vec![1, 3],
            ),
            (
                "by decision",
                Filter {
                    decision: s("denied"),
                    ..Filter::default()
                },
                vec![2, 4],
            ),
            (
                "filters combine",
                Filter {
                    agent: s("bot"),
                    decision: s("issued"),
                    since: Some(150),
                    ..Filter::default()
                },
                vec![5],
            ),
            (
                "nothing matches an unknown agent",
                Filter {
                    agent: s("nobody"),
                    ..Filter::default()
                },
                vec![],
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(seqs(f), want, "{name}");
        }
    }

    #[test]
    fn a_line_is_the_record_with_seq_and_hash() {
        let c = sample();
        let mut out = Vec::new();
        export(&c, Filter::default(), &mut out).expect("export");
        let text = String::from_utf8(out).expect("utf-8");
        let first = text.lines().next().expect("a line");
        assert!(first.starts_with(r#"{"seq":1,"hash":""#), "{first}");
        let v: Value = serde_json::from_str(first).expect("json");
        assert_eq!(v["hash"], crate::audit::hex(&c[0].hash));
        assert_eq!(v["agent"], "bot");
        assert_eq!(v["channel"], "eng");
        assert_eq!(text.lines().count(), 5, "one line per record");
    }

    #[test]
    fn export_redacts_tokens_and_credentials_and_reports_them() {
        let c = chain(&[
            rec(1, "issued", "bot", "alice", None),
            format!(
                r#"{{"at":2,"agent":"bot","reason":"got {JWS}","client_secret":"hunter2","x":["{JWS}"]}}"#
            ),
        ]);
        let mut out = Vec::new();
        let s = export(&c, Filter::default(), &mut out).expect("export");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains(JWS), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 3, "{text}");
        assert_eq!(s.written, 2);
        assert_eq!(s.broken.map(|b| b.seq), Some(2), "the finding is reported");
    }

    #[test]
    fn a_broken_chain_is_still_exported_and_reported() {
        let mut c = sample();
        c[2].body = rec(300, "denied", "other", "bob", Some("eng")).into_bytes();
        let mut out = Vec::new();
        let s = export(&c, Filter::default(), &mut out).expect("export");
        assert_eq!(s.written, 5);
        assert_eq!(s.read, 5);
        assert_eq!(
            s.broken,
            Some(Broken {
                seq: 3,
                reason: Finding::Hash
            })
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_counted_not_written() {
        let c = chain(&[rec(1, "issued", "bot", "alice", None), "garbage".into()]);
        let mut out = Vec::new();
        let s = export(&c, Filter::default(), &mut out).expect("export");
        assert_eq!((s.written, s.unreadable), (1, 1));
        assert_eq!(s.broken.map(|b| b.reason), Some(Finding::NotJson));
    }

    #[test]
    fn parse_time_reads_unix_seconds_and_rfc3339() {
        for (s, want) in [
            ("0", Ok(0)),
            ("1700000000", Ok(1_700_000_000)),
            ("2023-11-14T22:13:20Z", Ok(1_700_000_000)),
            ("2023-11-14t22:13:20z", Ok(1_700_000_000)),
            ("2023-11-14T22:13:20.999Z", Ok(1_700_000_000)),
            ("2023-11-14T23:13:20+01:00", Ok(1_700_000_000)),
            ("2023-11-14T17:13:20-05:00", Ok(1_700_000_000)),
            ("2023-11-14T22:13:20+00:00", Ok(1_700_000_000)),
            ("1970-01-01T00:30:00+01:00", Err(BadTime)),
            ("yesterday", Err(BadTime)),
            ("2023-11-14", Err(BadTime)),
            ("-5", Err(BadTime)),
            ("", Err(BadTime)),
            ("99999999999999999999999", Err(BadTime)),
        ] {
            assert_eq!(parse_time(s), want, "{s}");
        }
    }
}
