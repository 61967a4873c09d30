//! Rate limits on `/token`, `/introspect` and `/revoke`: per remote address, and per client
//! id. With a store shared between replicas (Redis), the address and client limits are
//! fixed-window counters in the store (`count` requests per window of `per`), so that every
//! replica counts against one budget; otherwise, token buckets in this process (capacity
//! `burst`). If the shared store fails, this process's buckets take over.
//!
//! A client's budget is charged only for requests that **authenticated as that client**
//! (the handler marks its response with [`AuthenticatedClient`]): a caller who merely
//! presents an agent's id with a wrong secret cannot spend the agent's budget and lock it
//! out. Failed authentications are charged instead to the pair (client id as presented,
//! remote address), in this process, at the per-client rate: one address guessing a
//! client's secret is slowed down without touching anyone else. Before the request runs,
//! both budgets are only looked at; a request whose client budget or whose failure budget
//! is spent is answered 429 without authenticating it.
//!
//! A request over a limit is answered 429 with `Retry-After` and the RFC 6749 error body
//! `{"error":"temporarily_unavailable"}` (the registered code that says "try later";
//! `slow_down` belongs to the device-flow polling of RFC 8628).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::app::Broker;
use crate::config::{LimitSettings, Rate};
use crate::oauth::OAuthError;

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

    /// Whether one token for `key` is available at `now`, taking nothing.
    fn peek(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(map) = self.buckets.lock() else {
            return Ok(());
        };
        let Some(b) = map.get(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        let tokens = (b.tokens + elapsed * self.refill).min(self.capacity);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.refill))
        }
    }

    /// Spend one token for `key` after the fact (a request already answered). The bucket
    /// may go below zero (requests that were admitted together), down to `-capacity`.
    fn charge(&self, key: &str, now: Instant) {
        if self.take(key, now).is_ok() {
            return;
        }
        if let Ok(mut map) = self.buckets.lock()
            && let Some(b) = map.get_mut(key)
        {
            b.tokens = (b.tokens - 1.0).max(-self.capacity);
        }
    }
}

/// Set by a handler on its response once the request authenticated as this client (its
/// policy id): only such requests spend the client's budget.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient(pub String);

/// The limits in force for this process.
#[derive(Debug)]
pub struct Limiter {
    per_client: Option<Limit>,
    per_address: Option<Limit>,
}

impl Limiter {
    /// Build from settings.
    pub fn new(s: &LimitSettings) -> Self {
        Self {
            per_client: s.per_client.map(|r| Limit::new(r, s.burst)),
            per_address: s.per_address.map(|r| Limit::new(r, s.burst)),
        }
    }

    /// Count a request by client `id` at `now` in this process; `Err` carries the wait
    /// before a retry.
    pub fn check_client(&self, id: &str, now: Instant) -> Result<(), Duration> {
        self.per_client.as_ref().map_or(Ok(()), |l| l.take(id, now))
    }

    fn limit(&self, kind: Kind) -> Option<&Limit> {
        match kind {
            Kind::Address => self.per_address.as_ref(),
            Kind::Client | Kind::Failure => self.per_client.as_ref(),
        }
    }

    /// Count a request in the shared store when there is one, else in this process.
    async fn check(&self, b: &Broker, kind: Kind, id: &str, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit(kind) else {
            return Ok(());
        };
        let (key, per, window, unix) = shared_window(b, limit, kind, id);
        match b.store.count_hit(&key, per + 1).await {
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

    /// Whether a request of `kind` by `id` would be admitted, counting nothing. Failures are
    /// counted in this process only.
    async fn peek(&self, b: &Broker, kind: Kind, id: &str, now: Instant) -> Result<(), Duration> {
        let Some(limit) = self.limit(kind) else {
            return Ok(());
        };
        if kind == Kind::Failure {
            return limit.peek(id, now);
        }
        let (key, per, window, unix) = shared_window(b, limit, kind, id);
        match b.store.hits(&key).await {
            Ok(Some(n)) if n >= u64::from(limit.rate.count) => Err(Duration::from_secs(
                ((window + 1) * per).saturating_sub(unix),
            )),
            Ok(Some(_)) => Ok(()),
            Ok(None) | Err(_) => limit.peek(id, now),
        }
    }

    /// Count an answered request of `kind` by `id` (shared when the store is).
    async fn charge(&self, b: &Broker, kind: Kind, id: &str, now: Instant) {
        let Some(limit) = self.limit(kind) else {
            return;
        };
        if kind == Kind::Failure {
            return limit.charge(id, now);
        }
        let (key, per, _, _) = shared_window(b, limit, kind, id);
        match b.store.count_hit(&key, per + 1).await {
            Ok(Some(_)) => {}
            Ok(None) => limit.charge(id, now),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate-limit counter unavailable; limiting in this process");
                limit.charge(id, now);
            }
        }
    }

    /// Whether a client id is needed at all (else the body is not read here).
    pub fn limits_clients(&self) -> bool {
        self.per_client.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Address,
    /// Requests that authenticated as the client.
    Client,
    /// Failed authentications, keyed by (client id as presented, address).
    Failure,
}

/// The shared counter of `id`'s current window: (key, window length, window number, now).
fn shared_window(b: &Broker, limit: &Limit, kind: Kind, id: &str) -> (String, u64, u64, u64) {
    let per = limit.rate.per.as_secs().max(1);
    let unix = b.clock.now();
    let window = unix / per;
    (shared_key(kind, id, window), per, window, unix)
}

/// The store key of a fixed window: ids are hashed, so that their length and characters do
/// not matter.
fn shared_key(kind: Kind, id: &str, window: u64) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(id.as_bytes());
    let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    let k = match kind {
        Kind::Address => "a",
        Kind::Client => "c",
        Kind::Failure => "f",
    };
    format!("{k}:{hex}:{window}")
}

fn too_many(wait: Duration) -> Response {
    // Whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3 delta-seconds).
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = u32::try_from(secs.max(1)).unwrap_or(u32::MAX);
    OAuthError::unavailable("too many requests; retry later", secs)
        .with_status(429)
        .into_response()
}

/// The client id of HTTP Basic authentication (RFC 6749 §2.3.1), percent-decoded.
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, _) = text.split_once(':')?;
    crate::oauth::client_auth::form_value_decode(user)
}

/// `client_id`, else the `sub` of an (unverified) `client_assertion`, from a form body.
fn form_client_id(body: &[u8]) -> Option<String> {
    let mut assertion = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "client_id" => return Some(v.into_owned()),
            "client_assertion" => assertion = Some(v.into_owned()),
            _ => {}
        }
    }
    let payload = assertion?.split('.').nth(1)?.to_owned();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// Middleware on the limited endpoints: the address first, then the client id.
pub async fn limit(State(b): State<Arc<Broker>>, req: Request, next: Next) -> Response {
    let now = Instant::now();
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    if let Some(addr) = &addr
        && let Err(wait) = b.limiter.check(&b, Kind::Address, addr, now).await
    {
        return too_many(wait);
    }
    if !b.limiter.limits_clients() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (id, body) = match basic_client_id(&parts.headers) {
        Some(id) => (Some(id), body),
        None => {
            // The handler reads the body again; an oversized one is refused there first.
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > b.settings.max_body_bytes) {
                return next.run(Request::from_parts(parts, body)).await;
            }
            match axum::body::to_bytes(body, b.settings.max_body_bytes).await {
                Ok(bytes) => (form_client_id(&bytes), Body::from(bytes)),
                Err(_) => {
                    return OAuthError::invalid_request("request body too large")
                        .with_status(413)
                        .into_response();
                }
            }
        }
    };
    // Look, do not count: a request is charged to a client only once it proved to be it.
    let failure_key = id
        .as_ref()
        .map(|id| format!("{id}\u{1f}{}", addr.as_deref().unwrap_or("")));
    if let (Some(id), Some(fk)) = (&id, &failure_key) {
        if let Err(wait) = b.limiter.peek(&b, Kind::Failure, fk, now).await {
            return too_many(wait);
        }
        if let Err(wait) = b.limiter.peek(&b, Kind::Client, id, now).await {
            return too_many(wait);
        }
    }
    let resp = next.run(Request::from_parts(parts, body)).await;
    if let Some(AuthenticatedClient(who)) = resp.extensions().get::<AuthenticatedClient>() {
        b.limiter
            .charge(&b, Kind::Client, who, Instant::now())
            .await;
    } else if resp.status() == axum::http::StatusCode::UNAUTHORIZED
        && let Some(fk) = &failure_key
    {
        b.limiter
            .charge(&b, Kind::Failure, fk, Instant::now())
            .await;
    }
    resp
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
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_client("a", t0).is_ok());
        }
        let wait = l.check_client("a", t0).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.check_client("b", t0).is_ok(), "other clients unaffected");
        assert!(l.check_client("a", t0 + Duration::from_millis(500)).is_ok());
        assert!(
            l.check_client("a", t0 + Duration::from_millis(500))
                .is_err()
        );
    }

    #[test]
    fn client_id_is_read_from_basic_form_or_assertion() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic YSUyMGI6cw==".parse().unwrap());
        assert_eq!(basic_client_id(&h).as_deref(), Some("a b"));
        assert_eq!(
            form_client_id(b"grant_type=x&client_id=bot%201").as_deref(),
            Some("bot 1")
        );
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"k"}"#);
        let form = format!("client_assertion=e30.{payload}.sig");
        assert_eq!(form_client_id(form.as_bytes()).as_deref(), Some("k"));
        assert_eq!(form_client_id(b"grant_type=x"), None);
    }
}
