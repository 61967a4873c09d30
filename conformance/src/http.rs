//! The runner's HTTP layer: hand-built requests, fully read responses, and two
//! cross-cutting observations that later cases report on (B15, B17).
//!
//! Requests are built by hand rather than with reqwest's `.form()` because the cases must send
//! things a well-behaved client never would: duplicated parameters, JSON where a form is
//! expected, oversized bodies, two client authentication methods at once.

use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// Every request gives up after this long; a hung server is a failure, not a hang.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Responses are read up to this size; anything past it is dropped (and said so in
/// `Resp::truncated`), so a misbehaving server cannot exhaust the runner's memory.
const MAX_BODY: usize = 1 << 20;

/// An HTTP client that never follows redirects (a redirect at a token endpoint is itself a
/// finding) and records what every case's traffic revealed.
pub struct Http {
    client: reqwest::Client,
    observed: Mutex<Observed>,
}

/// What the runner noticed across all requests, for the cases that run last.
#[derive(Default)]
struct Observed {
    /// The case currently running, so a leak can be attributed to it.
    current_case: String,
    /// Responses to requests that carried at least one secret marker (B17).
    secret_bearing: usize,
    /// One line per response that echoed a secret marker (B17).
    leaks: Vec<String>,
    /// Every response that looked like a successful token response (B15).
    token_successes: Vec<TokenSuccess>,
}

/// A 2xx response whose JSON body carries `access_token`: a token was issued.
#[derive(Clone, Debug)]
pub struct TokenSuccess {
    /// `case: METHOD url` of the request that produced it.
    pub origin: String,
    /// The URL the request went to (which issuer's token endpoint issued the token).
    pub url: String,
    /// The issued `access_token` when it is a string (A7 looks inside JWTs).
    pub access_token: Option<String>,
    /// The response's media type (lower case, parameters dropped).
    pub content_type: Option<String>,
    /// Whether `Cache-Control` carried `no-store`.
    pub no_store: bool,
}

/// A snapshot of what the runner observed, handed to the summary cases.
pub struct Observations {
    /// How many responses were checked for leaked secret markers.
    pub secret_bearing: usize,
    /// One description per leak.
    pub leaks: Vec<String>,
    /// Every successful token response seen.
    pub token_successes: Vec<TokenSuccess>,
}

/// One request, described completely before it is sent.
pub struct Req {
    method: reqwest::Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Body,
    /// Values that must never come back in a response (B17).
    secrets: Vec<String>,
}

enum Body {
    Empty,
    /// Form pairs in order; duplicates are kept on purpose.
    Form(Vec<(String, String)>),
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Req {
    /// A `GET` with no body.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(reqwest::Method::GET, url)
    }

    /// A `POST`; add a body with [`Req::param`] or [`Req::raw`].
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(reqwest::Method::POST, url)
    }

    fn new(method: reqwest::Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
            secrets: Vec::new(),
        }
    }

    /// Appends one `application/x-www-form-urlencoded` pair. Calling it twice with the same
    /// name sends the parameter twice, which is the point for RFC 6749 §3.2 checks.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        let pair = (name.to_owned(), value.to_owned());
        match &mut self.body {
            Body::Form(pairs) => pairs.push(pair),
            body => *body = Body::Form(vec![pair]),
        }
        self
    }

    /// Appends several form pairs in order (duplicates allowed).
    pub fn params<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        pairs
            .iter()
            .fold(self, |req, (k, v)| req.param(k.as_ref(), v.as_ref()))
    }

    /// Replaces the body with raw bytes under the given `Content-Type`.
    pub fn raw(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Raw {
            content_type: content_type.to_owned(),
            bytes: bytes.into(),
        };
        self
    }

    /// Adds a header; the same name may be added more than once.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// HTTP Basic client authentication as RFC 6749 §2.3.1 specifies it: both halves are
    /// form-urlencoded before base64. The secret and the encoded header are both registered
    /// as secrets, so an echo of either is caught.
    pub fn basic(self, client_id: &str, secret: &str) -> Self {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let creds = STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
        self.header("Authorization", &format!("Basic {creds}"))
            .secret(secret)
            .secret(&creds)
    }

    /// Registers a value that must not appear in the response body or headers (B17).
    /// Register a distinctive marker, not a whole oversized value: an echo of the first
    /// hundred characters must still be caught.
    pub fn secret(mut self, value: &str) -> Self {
        if !value.is_empty() {
            self.secrets.push(value.to_owned());
        }
        self
    }

    /// `METHOD url`, for messages. The query is elided: it may carry a marker secret, and
    /// it makes lines unreadably long.
    fn describe(&self) -> String {
        match self.url.split_once('?') {
            Some((path, _)) => format!("{} {path}?…", self.method),
            None => format!("{} {}", self.method, self.url),
        }
    }
}

/// A response read in full (up to [`MAX_BODY`]).
pub struct Resp {
    /// The HTTP status code.
    pub status: u16,
    /// All response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Whether the body was cut at [`MAX_BODY`].
    pub truncated: bool,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Http {
    /// A client with a 10 s timeout and no redirect following.
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("lanyard-conformance/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", chain(&e)))?;
        Ok(Self {
            client,
            observed: Mutex::new(Observed::default()),
        })
    }

    /// Names the case whose requests follow, so observations can be attributed.
    pub fn set_current_case(&self, id: &str) {
        if let Ok(mut o) = self.observed.lock() {
            o.current_case = id.to_owned();
        }
    }

    /// A copy of everything observed so far.
    pub fn observations(&self) -> Observations {
        match self.observed.lock() {
            Ok(o) => Observations {
                secret_bearing: o.secret_bearing,
                leaks: o.leaks.clone(),
                token_successes: o.token_successes.clone(),
            },
            // Only a panic while holding the lock could poison it, and the runner does not
            // panic; report nothing rather than invent observations.
            Err(_) => Observations {
                secret_bearing: 0,
                leaks: Vec::new(),
                token_successes: Vec::new(),
            },
        }
    }

    /// Sends the request and reads the response. A network error, a timeout or an
    /// unbuildable request comes back as `Err` with a readable reason, never a panic.
    pub async fn send(&self, req: Req) -> Result<Resp, String> {
        let what = req.describe();
        let mut builder = self.client.request(req.method.clone(), &req.url);
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("{what}: bad header name {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| format!("{what}: bad header value: {e}"))?;
            builder = builder.header(name, value);
        }
        builder = match &req.body {
            Body::Empty => builder,
            Body::Form(pairs) => {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    ser.append_pair(k, v);
                }
                builder
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(ser.finish())
            }
            Body::Raw {
                content_type,
                bytes,
            } => builder
                .header("Content-Type", content_type.as_str())
                .body(bytes.clone()),
        };

        let started = Instant::now();
        let mut resp = builder
            .send()
            .await
            .map_err(|e| format!("{what}: {}", chain(&e.without_url())))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("{what}: reading the body: {}", chain(&e.without_url())))?
        {
            let room = MAX_BODY.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let resp = Resp {
            status,
            headers,
            body,
            truncated,
            elapsed: started.elapsed(),
        };
        self.observe(&req, &what, &resp);
        Ok(resp)
    }

    /// Records leaks (B17) and issued tokens (B15) for the summary cases.
    fn observe(&self, req: &Req, what: &str, resp: &Resp) {
        let Ok(mut o) = self.observed.lock() else {
            return;
        };
        let origin = format!("{}: {what}", o.current_case);
        if !req.secrets.is_empty() {
            o.secret_bearing += 1;
            for secret in &req.secrets {
                if let Some(place) = resp.find(secret.as_bytes()) {
                    o.leaks
                        .push(format!("{origin} echoed a sent secret in the {place}"));
                }
            }
        }
        let issued = (200..300)
            .contains(&resp.status)
            .then(|| resp.json())
            .flatten()
            .and_then(|v| v.get("access_token").cloned());
        if let Some(token) = issued {
            o.token_successes.push(TokenSuccess {
                origin,
                url: req.url.clone(),
                access_token: token.as_str().map(str::to_owned),
                content_type: resp.media_type(),
                no_store: resp.cache_control_has("no-store"),
            });
        }
    }
}

impl Resp {
    /// The body as JSON, if it parses.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The first value of a header, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of a header, joined with ", " (how HTTP combines repeated fields).
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub fn media_type(&self) -> Option<String> {
        let ct = self.header("content-type")?;
        let media = ct.split(';').next().unwrap_or_default().trim();
        Some(media.to_ascii_lowercase())
    }

    /// Whether `Cache-Control` has the directive (case-insensitive, any position).
    pub fn cache_control_has(&self, directive: &str) -> bool {
        self.cache_control_directives()
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(directive))
    }

    /// The `max-age` value of `Cache-Control`, if present and numeric.
    pub fn max_age(&self) -> Option<u64> {
        self.cache_control_directives()
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("max-age"))
            .and_then(|(_, value)| value?.trim_matches('"').parse().ok())
    }

    fn cache_control_directives(&self) -> Vec<(String, Option<String>)> {
        let Some(joined) = self.header_joined("cache-control") else {
            return Vec::new();
        };
        joined
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| match d.split_once('=') {
                Some((name, value)) => (name.trim().to_owned(), Some(value.trim().to_owned())),
                None => (d.to_owned(), None),
            })
            .collect()
    }

    /// Where `needle` occurs in the response, if anywhere: "body" or "header <name>".
    fn find(&self, needle: &[u8]) -> Option<String> {
        if contains(&self.body, needle) {
            return Some("body".to_owned());
        }
        self.headers
            .iter()
            .find(|(_, value)| contains(value.as_bytes(), needle))
            .map(|(name, _)| format!("header {name}"))
    }

    /// A one-line description for failure messages: status, media type, and the OAuth
    /// `error` or a short body excerpt.
    pub fn summary(&self) -> String {
        let media = self
            .media_type()
            .unwrap_or_else(|| "no content-type".to_owned());
        let tail = match self.json() {
            Some(Value::Object(map)) if map.contains_key("error") => {
                format!(
                    "error={}",
                    map.get("error").map_or_else(String::new, Value::to_string)
                )
            }
            _ if self.body.is_empty() => "empty body".to_owned(),
            _ => {
                let text = String::from_utf8_lossy(&self.body);
                let excerpt: String = text.chars().take(80).collect();
                let more = if text.chars().count() > 80 { "…" } else { "" };
                format!("body {excerpt:?}{more}")
            }
        };
        let cut = if self.truncated {
            " (body cut at 1 MiB)"
        } else {
            ""
        };
        format!("{} {media} {tail}{cut}", self.status)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An error and its causes on one line: reqwest's top-level message alone ("error sending
/// request") does not say whether it was a refused connection, TLS, or a timeout.
fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
