//! Form parsing (`oauth::form`): RFC 6749 §3.2 strictness with size limits.

use std::collections::BTreeMap;

use super::{Bytes, Outcome, Reached, Seed, Violation, ensure};
use crate::oauth::form::{FormError, FormLimits, FormParams, TOKEN_PARAMS};

/// Input: one mode byte; in odd modes three bytes of small limits (so the fuzzer reaches them
/// easily); then the body.
pub fn form(data: &[u8]) -> Outcome {
    let mut b = Bytes::new(data);
    let limits = if b.bool() {
        FormLimits {
            max_token_bytes: 1 + usize::from(b.u8()),
            max_value_bytes: 1 + usize::from(b.u8() % 64),
            max_params: 1 + usize::from(b.u8() % 16),
        }
    } else {
        FormLimits::default()
    };
    check(b.rest(), &limits)
}

fn limit_for(name: &str, l: &FormLimits) -> usize {
    if TOKEN_PARAMS.contains(&name) {
        l.max_token_bytes
    } else {
        l.max_value_bytes
    }
}

fn check(body: &[u8], limits: &FormLimits) -> Outcome {
    // The reference: the URL Standard's decoding, every pair, empty values included.
    let all: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let replaced = all
        .iter()
        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
    let too_long =
        |k: &str, v: &str| v.len() > limit_for(k, limits) || k.len() > limits.max_value_bytes;
    let kept: Vec<(String, String)> = all.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();

    let f = match FormParams::parse(body, limits) {
        Ok(f) => f,
        Err(FormError::NotUtf8) => {
            ensure!(
                replaced,
                "NotUtf8 for a body that decodes without replacement"
            );
            return Ok(Reached::Refused);
        }
        Err(FormError::TooManyParams) => {
            ensure!(
                all.len() > limits.max_params && kept.len() >= limits.max_params,
                "TooManyParams with {} pairs ({} non-empty), limit {}",
                all.len(),
                kept.len(),
                limits.max_params
            );
            return Ok(Reached::Refused);
        }
        Err(FormError::TooLong(name)) => {
            ensure!(
                name.chars().count() <= 40,
                "TooLong carries an unbounded name"
            );
            ensure!(
                all.iter()
                    .any(|(k, v)| too_long(k, v) && k.chars().take(40).eq(name.chars())),
                "TooLong({name:?}) but no such pair is over its limit"
            );
            return Ok(Reached::Refused);
        }
        Err(FormError::Duplicate(n)) => {
            return Err(Violation(format!(
                "parse reported Duplicate({n:?}); only `one` may"
            )));
        }
    };

    // Accepted: exactly the reference's non-empty pairs, in order, each within its limits.
    ensure!(!replaced, "accepted a body with invalid UTF-8");
    ensure!(
        f.pairs() == kept.as_slice(),
        "pairs differ from the reference decoding"
    );
    ensure!(
        kept.len() <= limits.max_params,
        "accepted {} pairs over the limit {}",
        kept.len(),
        limits.max_params
    );
    for (k, v) in &all {
        ensure!(
            !too_long(k, v),
            "accepted parameter {k:?} over its size limit"
        );
    }

    // Duplicates: `one` refuses exactly the names that repeat; `all` and `has` agree.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, _) in &kept {
        *counts.entry(k.as_str()).or_default() += 1;
    }
    for (&name, &n) in &counts {
        let first = kept
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        match (n, f.one(name)) {
            (1, Ok(got)) => ensure!(got == first, "one({name:?}) returned another value"),
            (_, Err(FormError::Duplicate(d))) if n > 1 => {
                ensure!(d == name, "Duplicate names {d:?}, not {name:?}")
            }
            (n, got) => {
                return Err(Violation(format!(
                    "one({name:?}) with {n} occurrences gave {got:?}"
                )));
            }
        }
        ensure!(f.all(name).count() == n, "all({name:?}) count differs");
        ensure!(f.has(name), "has({name:?}) is false for a present name");
        ensure!(
            f.ensure_single(&[name]).is_ok() == (n == 1),
            "ensure_single({name:?}) disagrees with {n} occurrences"
        );
    }
    let absent = "\u{1}absent";
    if !counts.contains_key(absent) {
        ensure!(
            f.one(absent) == Ok(None) && !f.has(absent),
            "a name never sent is present"
        );
    }
    // An empty value counts as absent.
    for (k, v) in &all {
        if v.is_empty() && !counts.contains_key(k.as_str()) {
            ensure!(!f.has(k), "empty-valued {k:?} counts as present");
        }
    }

    // Serialize → parse is the identity on an accepted form.
    let again = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(f.pairs())
        .finish();
    match FormParams::parse(again.as_bytes(), limits) {
        Ok(g) => ensure!(
            g.pairs() == f.pairs(),
            "re-parse of the re-serialized form differs"
        ),
        Err(e) => return Err(Violation(format!("re-serialized form refused: {e}"))),
    }
    Ok(Reached::Accepted)
}

pub(super) fn seeds() -> Vec<Vec<u8>> {
    let default = |body: &str| Seed::default().u8(0).bytes(body).done();
    let small = |t: u8, v: u8, p: u8, body: &str| {
        Seed::default().u8(1).u8(t).u8(v).u8(p).bytes(body).done()
    };
    vec![
        default(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=eyJhbGciOiJFUzI1NiJ9.e30.c2ln&scope=read+write",
        ),
        default(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&resource=https%3A%2F%2Fa%2F&resource=https%3A%2F%2Fb%2F&audience=x&scope=",
        ),
        default("grant_type=a&grant_type=b"),
        default("scope=%FF"),
        default("a=1&&b=&=c&d"),
        small(4, 3, 2, "assertion=abcd&scope=abc"),
        small(4, 3, 2, "assertion=abcde"),
        small(40, 8, 2, "a=1&b=2&c=3"),
    ]
}
