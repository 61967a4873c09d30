//! Rate limits: per remote address (at the HTTP edge) and per client (once it has
//! authenticated), on `/token`, `/introspect` and `/revoke`.
//!
//! With a store shared between replicas (Redis), the limits are fixed-window counters in the
//! store (`count` requests per window of `per`), so that every replica counts against one
//! budget; otherwise, token buckets in this process (capacity `burst`). If the shared store
//! fails, this process's buckets take over.
//!
//! A client's budget is charged only by requests that **authenticated as that client**,
//! keyed by its policy id, in one step (take a token, or be refused): a caller who merely
//! presents an agent's id with a wrong secret cannot spend the agent's budget and lock it
//! out. Failed authentications are counted apart, per client id as presented, in this
//! process; once that budget is spent a failing request is answered 429 instead of 401. A
//! request that authenticates is never refused by the failure budget, so the real agent is
//! served even while someone else, from the same address, keeps failing as it. (What stops
//! guessing is the secret's ≥ 128 bits; the failure budget keeps the noise down and shows in
//! the logs.)
//!
//! A request over a limit is answered 429 with `Retry-After` and the RFC 6749 error body
//! `{"error":"temporarily_unavailable"}` (the registered code that says "try later";
//! `slow_down` belongs to the device-flow polling of RFC 8628).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::UnixTime;
use crate::config::{LimitSettings, Rate};
use crate::oauth::{ErrorCode, OAuthError};
use crate::store::Store;

/// Most keys tracked per limit; beyond it, idle buckets are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One limit: a token bucket per key.
#[derive(Debug)]
struct Limit {
    rate: Rate,
    capacity: f64,
    /// Tokens added per second.
    refill: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limit {
    fn new(rate: Rate, burst: Option<u32>) -> Self {
        Self {
            rate,
            capacity: f64::from(burst.unwrap_or(rate.count).max(1)),
            refill: f64::from(rate.count) / rate.per.as_secs_f64(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `key` at `now`, or say how long until one is available.
    fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let (cap, refill) = (self.capacity, self.refill);
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * refill < cap
            });
            if map.len() >= MAX_KEYS {
                // Every tracked key is busy: refuse the newcomer rather than grow unbounded.
                return Err(Duration::from_secs(1));
            }
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.refill).min(self.capacity);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.refill))
        }
    }
}

/// What a budget is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Requests from one remote address.
    Address,
    /// Requests that authenticated as one client (by policy id).
    Client,
    /// Failed authentications naming one client id (counted in this process only).
    Failure,
}

impl Kind {
    const fn tag(self) -> &'static str {
        match self {
            Self::Address => "a",
            Self::Client => "c",
            Self::Failure => "f",
        }
    }
}

/// The limits in force for this process.
#[derive(Debug)]
pub struct Limiter {
    per_client: Option<Limit>,
    per_address: Option<Limit>,
    failures: Option<Limit>,
}

impl Limiter {
    /// Build from settings. Failures are limited at the per-client rate.
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            per_client: s.per_client.map(|r| Limit::new(r, s.burst)),
            per_address: s.per_address.map(|r| Limit::new(r, s.burst)),
            failures: s.per_client.map(|r| Limit::new(r, s.burst)),
        }
    }

    fn limit(&self, kind: Kind) -> Option<&Limit> {
        match kind {
            Kind::Address => self.per_address.as_ref(),
            Kind::Client => self.per_client.as_ref(),
            Kind::Failure => self.failures.as_ref(),
        }
    }

    /// Whether an address limit is configured (else the edge does not look one up).
    pub fn limits_addresses(&self) -> bool {
        self.per_address.is_some()
    }

    /// Count one request of `kind` by `id`: in the shared store when there is one (not for
    /// failures), else in this process. `Err` carries the wait before a retry.
    pub async fn check(
        &self,
        store: &dyn Store,
        unix: UnixTime,
        kind: Kind,
        id: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(limit) = self.limit(kind) else {
            return Ok(());
        };
        if kind == Kind::Failure {
            return limit.take(id, now);
        }
        let per = limit.rate.per.as_secs().max(1);
        let window = unix / per;
        let key = shared_key(kind, id, window);
        match store.count_hit(&key, per + 1).await {
            Ok(Some(n)) if n > u64::from(limit.rate.count) => Err(Duration::from_secs(
                ((window + 1) * per).saturating_sub(unix),
            )),
            Ok(Some(_)) => Ok(()),
            Ok(None) => limit.take(id, now),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate-limit counter unavailable; limiting in this process");
                limit.take(id, now)
            }
        }
    }
}

/// The store key of a fixed window: ids are hashed, so that their length and characters do
/// not matter.
fn shared_key(kind: Kind, id: &str, window: u64) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(id.as_bytes());
    let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{hex}:{window}", kind.tag())
}

/// The 429 answer for a request over a limit, with `Retry-After` in whole seconds, rounded
/// up, at least 1 (RFC 9110 §10.2.3 delta-seconds).
pub fn too_many(wait: Duration) -> OAuthError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = u32::try_from(secs.max(1)).unwrap_or(u32::MAX);
    OAuthError {
        retry_after: Some(secs),
        ..OAuthError::new(ErrorCode::TooManyRequests, "too many requests; retry later")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(count: u32, burst: Option<u32>) -> Limiter {
        Limiter::new(&LimitSettings {
            per_client: Some(Rate {
                count,
                per: Duration::from_secs(1),
            }),
            per_address: None,
            burst,
            max_concurrent_requests: 10,
        })
    }

    #[test]
    fn bucket_allows_burst_then_refuses_until_refilled() {
        let l = limiter(2, Some(3));
        let c = l.limit(Kind::Client).expect("client limit");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(c.take("a", t0).is_ok());
        }
        let wait = c.take("a", t0).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(c.take("b", t0).is_ok(), "other clients unaffected");
        assert!(c.take("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(c.take("a", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn failures_and_successes_are_separate_budgets() {
        let l = limiter(1, Some(2));
        let t0 = Instant::now();
        let (ok, bad) = (
            l.limit(Kind::Client).expect("client"),
            l.limit(Kind::Failure).expect("failures"),
        );
        assert!(bad.take("bot", t0).is_ok());
        assert!(bad.take("bot", t0).is_ok());
        assert!(bad.take("bot", t0).is_err(), "failures spent");
        assert!(
            ok.take("bot", t0).is_ok(),
            "the client's own budget is whole"
        );
    }

    #[test]
    fn shared_keys_differ_by_kind_and_hide_the_id() {
        let a = shared_key(Kind::Client, "bot", 7);
        assert_ne!(a, shared_key(Kind::Address, "bot", 7));
        assert!(!a.contains("bot"));
        assert!(a.ends_with(":7"));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(too_many(Duration::from_millis(1500)).retry_after, Some(2));
        assert_eq!(too_many(Duration::ZERO).retry_after, Some(1));
        assert_eq!(too_many(Duration::from_secs(3)).status(), 429);
    }
}
