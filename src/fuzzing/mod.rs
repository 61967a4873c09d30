//! Invariants for the fuzz targets under `fuzz/`, shared with the corpus replay test
//! (`tests/it/fuzz_corpus.rs`) so that plain `cargo test` checks every checked-in input
//! against exactly what the fuzzer checked.
//!
//! Each target takes raw fuzz bytes, decodes a structured case from them (a [`Bytes`]
//! cursor: reading past the end yields zeros, so every input is a case), runs the code under
//! test and checks properties of the result — not just "does not panic":
//!
//! - [`form`]: `oauth::form`: the parse agrees with a reference decoding, limits hold,
//!   duplicates are reported exactly when a name repeats, serialize → parse is the identity.
//! - [`jws`]: `crypto::verify::parse` and `KeySet::verify`: an accepted token is exactly three
//!   canonical base64url segments, `signing_input` is its prefix, each error names a real
//!   defect; a token signed by a known key verifies only under its pinned algorithm and `kid`,
//!   and a flipped signature bit never verifies.
//! - [`claims`]: `core::validate::{times, jti}` and `core::access::check`: acceptance implies
//!   every time rule holds, each refusal names a rule that is broken, acceptance is monotone in
//!   `now` (a token only ever goes from valid to expired) and in the leeway.
//! - [`dpop`]: `crypto::dpop::validate`: an accepted proof has the right `typ`, an allowed
//!   `alg`, a public `jwk` whose thumbprint it reports, `htm`/`htu`/`iat`/`ath` that match;
//!   a tampered signature, another method or another access token are refused.
//! - [`policy`]: `policy::parse`: never panics, deterministic, and every error carries the
//!   file label and a line and column inside the file, sorted.
//!
//! A broken invariant is a [`Violation`] (the fuzz targets panic on it; the replay test fails).
//! Not part of lanyard's API.

mod claims;
mod dpop;
mod form;
mod jws;
mod policy;

use std::fmt;
use std::sync::OnceLock;

pub use claims::claims;
pub use dpop::dpop;
pub use form::form;
pub use jws::jws;
pub use policy::policy;

use crate::config::SigningAlg;
use crate::crypto::SigningKey;

/// An invariant that did not hold, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far an input got: refused somewhere, or accepted by the code under test. The replay
/// test uses it to show that the corpus reaches both sides of every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The input was refused (or was not a case at all).
    Refused,
    /// The input was accepted (parsed, verified, validated).
    Accepted,
}

/// The result of one fuzz case.
pub type Outcome = Result<Reached, Violation>;

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory), its invariant check, and the seeds it starts from.
pub struct Target {
    /// Name of the target.
    pub name: &'static str,
    /// Runs one case and checks its invariants.
    pub run: fn(&[u8]) -> Outcome,
    /// Hand-made starting inputs (valid tokens and the like the fuzzer would not guess).
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "form",
        run: form,
        seeds: form::seeds,
    },
    Target {
        name: "jws",
        run: jws,
        seeds: jws::seeds,
    },
    Target {
        name: "claims",
        run: claims,
        seeds: claims::seeds,
    },
    Target {
        name: "dpop",
        run: dpop,
        seeds: dpop::seeds,
    },
    Target {
        name: "policy",
        run: policy,
        seeds: policy::seeds,
    },
];

/// `ensure!(cond, "format", args…)`: return a [`Violation`] when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::fuzzing::Violation(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

/// A cursor over fuzz bytes. Reading past the end yields zeros (or empty slices), so every
/// input decodes to some case.
pub(crate) struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let t = self.take(N);
        if let Some(dst) = a.get_mut(..t.len()) {
            dst.copy_from_slice(t);
        }
        a
    }

    pub(crate) fn u8(&mut self) -> u8 {
        u8::from_le_bytes(self.array())
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A slice preceded by its `u16` length.
    pub(crate) fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

/// Builds seed inputs in the layout [`Bytes`] reads.
#[derive(Default)]
pub(crate) struct Seed(Vec<u8>);

impl Seed {
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn chunk(self, v: impl AsRef<[u8]>) -> Self {
        let v = v.as_ref();
        let n = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(n)
            .bytes(v.get(..usize::from(n)).unwrap_or_default())
    }
    pub(crate) fn bytes(mut self, v: impl AsRef<[u8]>) -> Self {
        self.0.extend_from_slice(v.as_ref());
        self
    }
    pub(crate) fn done(self) -> Vec<u8> {
        self.0
    }
}

/// One ES256 key per process, standing in for "a key the verifier knows" (JWS target) and
/// "the client's proof key" (DPoP target). Fuzz inputs cannot forge its signatures, so the
/// targets sign with it to get past signature checks and exercise what comes after.
pub(crate) fn known_key() -> Result<&'static SigningKey, Violation> {
    static KEY: OnceLock<Option<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::generate(SigningAlg::Es256, 0)
            .ok()
            .map(|(k, _)| k)
    })
    .as_ref()
    .ok_or_else(|| Violation("cannot generate the known ES256 key".into()))
}

/// Sign `signing_input` with the known key, as base64url.
pub(crate) fn sign_known(signing_input: &str) -> Result<String, Violation> {
    let sig = known_key()?
        .sign(signing_input.as_bytes())
        .map_err(|e| Violation(format!("signing with the known key failed: {e}")))?;
    Ok(crate::crypto::b64(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_reads_past_the_end_as_zeros() {
        let mut b = Bytes::new(&[1, 2, 3]);
        assert_eq!(b.u16(), 0x0201);
        assert_eq!(b.u32(), 3);
        assert_eq!(b.u64(), 0);
        assert_eq!(b.rest(), &[] as &[u8]);
    }

    #[test]
    fn seed_layout_matches_the_cursor() {
        let s = Seed::default()
            .u8(7)
            .u16(300)
            .u64(1_800_000_000)
            .chunk("abc")
            .bytes("rest")
            .done();
        let mut b = Bytes::new(&s);
        assert_eq!(b.u8(), 7);
        assert_eq!(b.u16(), 300);
        assert_eq!(b.u64(), 1_800_000_000);
        assert_eq!(b.chunk(), b"abc");
        assert_eq!(b.rest(), b"rest");
    }

    /// Every seed satisfies its target's invariants, and each target's seeds reach both
    /// acceptance and refusal (a seed set that never gets past the first check would make the
    /// fuzzer's start, and the replay, hollow).
    #[test]
    fn seeds_hold_and_reach_both_outcomes() {
        for t in TARGETS {
            let mut seen = Vec::new();
            for (i, s) in (t.seeds)().iter().enumerate() {
                match (t.run)(s) {
                    Ok(r) => seen.push(r),
                    Err(v) => panic!("{} seed {i}: {v}", t.name),
                }
            }
            assert!(
                seen.contains(&Reached::Accepted),
                "{}: no accepted seed",
                t.name
            );
            assert!(
                seen.contains(&Reached::Refused),
                "{}: no refused seed",
                t.name
            );
        }
    }
}
