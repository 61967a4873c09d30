//! The load generator: `concurrency` keep-alive HTTP/1.1 connections, each running complete
//! two-leg flows back to back (closed loop) until the deadline:
//!
//! 1. token exchange at `/idp/token` (RFC 8693): the human's ID token (RS256, pre-minted) →
//!    an ID-JAG, authenticated with `client_secret_basic`, naming resource, scope, channel;
//! 2. jwt-bearer at `/as/token` (RFC 7523): that ID-JAG → an access token (ES256), with the
//!    scope leg 1 granted, the same client authentication; lanyard records the ID-JAG's `jti`
//!    in its store (single use) before answering.
//!
//! Each leg's latency is taken from just before the request is written to just after the
//! whole response body is read. The generator shares the cores with lanyard, so it is kept
//! lean: a minimal HTTP/1.1 client (one `write` per request, `Content-Length` framing, one
//! task per connection), leg-1 requests built once per flow, responses read by locating the
//! two string fields needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::site::{AS_ISSUER, World};

/// One flow, ready to send.
pub struct Prepared {
    auth: String,
    leg1: Vec<u8>,
}

/// What the workers share.
pub struct Target {
    addr: SocketAddr,
    flows: Vec<Prepared>,
}

fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A complete HTTP/1.1 request.
fn request(
    method: &str,
    path: &str,
    host: &SocketAddr,
    auth: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + 256);
    r.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n").as_bytes());
    if let Some(a) = auth {
        r.extend_from_slice(format!("authorization: {a}\r\n").as_bytes());
    }
    if method == "POST" {
        r.extend_from_slice(
            format!(
                "content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

impl Target {
    /// Prepare every flow of `world` with its pre-minted ID token.
    pub fn new(addr: SocketAddr, world: &World, id_tokens: &[String]) -> Result<Self, String> {
        let mut flows = Vec::with_capacity(world.flows.len());
        for (f, t) in world.flows.iter().zip(id_tokens) {
            let a = &world.agents[f.agent];
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&a.id),
                enc(&a.secret)
            ));
            let auth = format!("Basic {basic}");
            let body = format!(
                "grant_type={}&requested_token_type={}&subject_token_type={}&subject_token={t}&audience={}&resource={}&scope={}&channel={}",
                enc("urn:ietf:params:oauth:grant-type:token-exchange"),
                enc("urn:ietf:params:oauth:token-type:id-jag"),
                enc("urn:ietf:params:oauth:token-type:id_token"),
                enc(AS_ISSUER),
                enc(f.resource),
                enc(&f.scope),
                enc(&f.channel),
            );
            let leg1 = request("POST", "/idp/token", &addr, Some(&auth), body.as_bytes());
            flows.push(Prepared { auth, leg1 });
        }
        if flows.is_empty() {
            return Err("no flows".into());
        }
        Ok(Self { addr, flows })
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Send `req`; the status and the body (in `self.buf`, from the returned offset).
    async fn call(&mut self, req: &[u8]) -> Result<(u16, usize), String> {
        self.stream
            .write_all(req)
            .await
            .map_err(|e| e.to_string())?;
        self.buf.clear();
        let mut head: Option<(u16, usize, usize)> = None;
        loop {
            if let Some((status, start, len)) = head
                && self.buf.len() >= start + len
            {
                self.buf.truncate(start + len);
                return Ok((status, start));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            let n = self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            if head.is_none()
                && let Some(end) = find(&self.buf, b"\r\n\r\n")
            {
                head = Some(parse_head(&self.buf[..end])?.map_or(
                    Err("response without content-length".to_owned()),
                    |(status, len)| Ok((status, end + 4, len)),
                )?);
            }
        }
    }
}

/// Status and `Content-Length` of a response head.
fn parse_head(h: &[u8]) -> Result<Option<(u16, usize)>, String> {
    let text = std::str::from_utf8(h).map_err(|_| "non-UTF-8 response head".to_owned())?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let len = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    Ok(len.map(|l| (status, l)))
}

/// The string value of `"key":"…"` in a compact JSON body (token responses hold no escapes
/// in the fields read here).
pub fn json_str<'a>(body: &'a [u8], key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = body.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let len = body.get(start..)?.iter().position(|&b| b == b'"')?;
    std::str::from_utf8(body.get(start..start + len)?).ok()
}

/// Counts and latencies of one worker (or, merged, of a phase).
#[derive(Default)]
pub struct Stats {
    /// Leg 1 latencies of 200 responses, µs.
    pub leg1_us: Vec<u32>,
    /// Leg 2 latencies of 200 responses, µs.
    pub leg2_us: Vec<u32>,
    /// Flows whose both legs answered 200.
    pub flows: u64,
    /// Non-200 answers or transport errors, leg 1.
    pub errors1: u64,
    /// Non-200 answers or transport errors, leg 2.
    pub errors2: u64,
    /// The first failure seen.
    pub first_error: Option<String>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.leg1_us.extend(o.leg1_us);
        self.leg2_us.extend(o.leg2_us);
        self.flows += o.flows;
        self.errors1 += o.errors1;
        self.errors2 += o.errors2;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    /// Token responses (200) counted.
    pub fn responses(&self) -> u64 {
        (self.leg1_us.len() + self.leg2_us.len()) as u64
    }
}

fn leg2_request(t: &Target, auth: &str, assertion: &str, scope: &str) -> Vec<u8> {
    let body = format!(
        "grant_type={}&assertion={assertion}&scope={}",
        enc("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        enc(scope)
    );
    request("POST", "/as/token", &t.addr, Some(auth), body.as_bytes())
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn note(stats: &mut Stats, leg: u8, what: String) {
    if leg == 1 {
        stats.errors1 += 1;
    } else {
        stats.errors2 += 1;
    }
    if stats.first_error.is_none() {
        stats.first_error = Some(format!("leg {leg}: {what}"));
    }
}

/// Both legs of flow `i`; the two response bodies, or `None` after a failure (counted in
/// `stats`). An `Err` is a broken connection.
async fn flow(
    conn: &mut Conn,
    t: &Target,
    i: usize,
    stats: &mut Stats,
    keep: bool,
) -> Result<Option<(Vec<u8>, Vec<u8>)>, String> {
    let p = &t.flows[i % t.flows.len()];
    let start = Instant::now();
    let (status, at) = conn.call(&p.leg1).await?;
    let mid = Instant::now();
    let body = &conn.buf[at..];
    let (Some(id_jag), Some(scope)) = (
        json_str(body, "access_token").filter(|_| status == 200),
        json_str(body, "scope"),
    ) else {
        note(
            stats,
            1,
            format!("HTTP {status} {}", String::from_utf8_lossy(body)),
        );
        return Ok(None);
    };
    stats.leg1_us.push(micros(mid - start));
    let req2 = leg2_request(t, &p.auth, id_jag, scope);
    let body1 = if keep { body.to_vec() } else { Vec::new() };
    let (status2, at2) = conn.call(&req2).await?;
    let end = Instant::now();
    let body2 = &conn.buf[at2..];
    if status2 != 200 || json_str(body2, "access_token").is_none() {
        note(
            stats,
            2,
            format!("HTTP {status2} {}", String::from_utf8_lossy(body2)),
        );
        return Ok(None);
    }
    stats.leg2_us.push(micros(end - mid));
    stats.flows += 1;
    Ok(Some((
        body1,
        if keep { body2.to_vec() } else { Vec::new() },
    )))
}

async fn worker(t: Arc<Target>, first: usize, until: Instant) -> Stats {
    let mut stats = Stats::default();
    let mut i = first;
    let mut conn = None;
    while Instant::now() < until {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::open(t.addr).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    note(&mut stats, 1, e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        if let Err(e) = flow(c, &t, i, &mut stats, false).await {
            // The connection is broken: count it and open a new one.
            note(&mut stats, 1, format!("transport: {e}"));
            conn = None;
        }
        i += 1;
    }
    stats
}

/// Run `concurrency` connections for `duration`; the merged stats and the wall time from the
/// start to the last flow's end.
pub async fn phase(t: &Arc<Target>, concurrency: usize, duration: Duration) -> (Stats, Duration) {
    let start = Instant::now();
    let until = start + duration;
    let n = t.flows.len();
    let handles: Vec<_> = (0..concurrency.max(1))
        .map(|w| tokio::spawn(worker(t.clone(), w * n / concurrency.max(1), until)))
        .collect();
    let mut all = Stats::default();
    for h in handles {
        match h.await {
            Ok(s) => all.merge(s),
            Err(e) => note(&mut all, 1, format!("worker failed: {e}")),
        }
    }
    (all, start.elapsed())
}

/// One flow, checked in full: both response bodies, for the sample and the crypto phase.
pub async fn one_flow(t: &Arc<Target>, i: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut conn = Conn::open(t.addr).await?;
    let mut stats = Stats::default();
    match flow(&mut conn, t, i, &mut stats, true).await? {
        Some(bodies) => Ok(bodies),
        None => Err(stats.first_error.unwrap_or_default()),
    }
}

/// GET `path`; the status.
pub async fn get_status(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut conn = Conn::open(addr).await?;
    let (status, _) = conn.call(&request("GET", path, &addr, None, &[])).await?;
    Ok(status)
}

/// The `q`-quantile (0..=1) of sorted samples, in milliseconds.
pub fn quantile_ms(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn token_fields_are_read_from_a_compact_body() {
        let body = br#"{"access_token":"a.b.c","issued_token_type":"x","scope":"repo.read issue.comment"}"#;
        assert_eq!(json_str(body, "access_token"), Some("a.b.c"));
        assert_eq!(json_str(body, "scope"), Some("repo.read issue.comment"));
        assert_eq!(json_str(body, "missing"), None);
    }

    #[test]
    fn response_heads_give_status_and_length() {
        let h = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 42";
        assert_eq!(parse_head(h), Ok(Some((200, 42))));
        assert_eq!(
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked"),
            Ok(None)
        );
        assert!(parse_head(b"garbage").is_err());
    }

    #[test]
    fn quantiles_of_sorted_samples() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(quantile_ms(&v, 0.5), 51.0);
        assert_eq!(quantile_ms(&v, 0.99), 99.0);
        assert_eq!(quantile_ms(&v, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(enc("a b/c:d"), "a+b%2Fc%3Ad");
        assert_eq!(enc("slack:T01/C000-eng"), "slack%3AT01%2FC000-eng");
    }
}
