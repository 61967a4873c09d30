//! OAuth wire vocabulary the cases share: URNs, the RFC 6749 §5.2 error-response check,
//! URL rules, and distinctive secret markers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};
use url::{Host, Url};

use crate::http::Resp;

/// RFC 8693 §2.1.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 7523 §2.1.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// ID-JAG §10.
pub const TOKEN_TYPE_ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// RFC 8693 §3.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// ID-JAG §7.2, §10.
pub const PROFILE_ID_JAG: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
/// RFC 7523 §2.2.
pub const CLIENT_ASSERTION_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Checks that `resp` is an RFC 6749 §5.2 error as lanyard sends every error: one of the
/// expected statuses, `application/json`, `Cache-Control: no-store`, a string `error` from
/// `codes` (any code when `codes` is empty), a string `error_description` if present, and
/// no token. Returns "status error" for the pass detail, or every problem found.
pub fn expect_error(resp: &Resp, statuses: &[u16], codes: &[&str]) -> Result<String, String> {
    let mut problems = Vec::new();
    if !statuses.contains(&resp.status) {
        problems.push(format!(
            "expected HTTP {}, got {}",
            alternatives(statuses),
            resp.summary()
        ));
    }
    if resp.media_type().as_deref() != Some("application/json") {
        problems.push(format!(
            "error Content-Type is {:?}, not application/json",
            resp.header("content-type").unwrap_or("(none)")
        ));
    }
    if !resp.cache_control_has("no-store") {
        problems.push(format!(
            "error Cache-Control is {:?}, not no-store",
            resp.header_joined("cache-control")
                .unwrap_or_else(|| "(none)".to_owned())
        ));
    }
    let body = resp.json();
    let code = match body.as_ref().and_then(|b| b.get("error")) {
        Some(Value::String(code)) => {
            if !codes.is_empty() && !codes.contains(&code.as_str()) {
                problems.push(format!(
                    "expected error {}, got {code:?}",
                    alternatives(codes)
                ));
            }
            if !code.chars().all(is_error_char) || code.is_empty() {
                problems.push(format!(
                    "error code {code:?} has characters RFC 6749 §5.2 forbids"
                ));
            }
            code.clone()
        }
        Some(other) => {
            problems.push(format!("error member is not a string: {other}"));
            String::new()
        }
        None if body.as_ref().is_some_and(Value::is_object) => {
            problems.push("JSON body has no error member".to_owned());
            String::new()
        }
        None => {
            problems.push("body is not a JSON object".to_owned());
            String::new()
        }
    };
    if let Some(desc) = body.as_ref().and_then(|b| b.get("error_description"))
        && !desc.is_string()
    {
        problems.push("error_description is not a string".to_owned());
    }
    if body
        .as_ref()
        .is_some_and(|b| b.get("access_token").is_some())
    {
        problems.push("an error response carries access_token".to_owned());
    }
    if problems.is_empty() {
        Ok(format!("{} {code}", resp.status))
    } else {
        Err(problems.join(", "))
    }
}

/// RFC 6749 §5.2: `error` is limited to %x20-21 / %x23-5B / %x5D-7E.
fn is_error_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

fn alternatives<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Whether the URL's host is loopback (127.0.0.0/8, ::1, localhost): the only hosts where
/// this runner accepts plain http.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Parses an endpoint URL advertised in metadata: absolute, https (or http on loopback),
/// no fragment (RFC 8414 §2 endpoint rules).
pub fn endpoint_url(name: &str, value: Option<&Value>) -> Result<Url, String> {
    let s = match value {
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("{name} is not a string: {other}")),
        None => return Err(format!("{name} missing")),
    };
    let url = Url::parse(s).map_err(|e| format!("{name} {s:?} is not an absolute URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        scheme => {
            return Err(format!(
                "{name} {s:?} uses {scheme} (https required off loopback)"
            ));
        }
    }
    if url.fragment().is_some() {
        return Err(format!("{name} {s:?} has a fragment"));
    }
    Ok(url)
}

/// A distinctive, never-reused marker to send as a secret, assertion or token value, so an
/// echo in a response can be found (B17). Unpredictability is not needed, only uniqueness,
/// so a hash of time, process id and a counter will do.
pub fn marker(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = since_epoch().as_nanos();
    let digest = Sha256::digest(format!("{nanos}/{}/{n}", std::process::id()));
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("lanyardconf{kind}{hex}")
}

/// The media types a JWKS may be served as (RFC 7517 §8.5).
pub fn is_jwks_media_type(media: Option<&str>) -> bool {
    matches!(media, Some("application/json" | "application/jwk-set+json"))
}

/// JWS `alg` values that are asymmetric signatures (RFC 7518 §3.1, RFC 8037, RFC 8812,
/// RFC 9864). Anything else, including `none` and the HMAC family, is not.
pub fn is_asymmetric_alg(alg: &str) -> bool {
    matches!(
        alg,
        "RS256"
            | "RS384"
            | "RS512"
            | "PS256"
            | "PS384"
            | "PS512"
            | "ES256"
            | "ES384"
            | "ES512"
            | "ES256K"
            | "EdDSA"
            | "Ed25519"
            | "Ed448"
    )
}

/// The wall clock: the runner's one reading of it. The server takes time as a parameter
/// (clippy.toml); a black-box client has no clock to be handed, and must stamp `iat`/`exp`
/// with real time for the server to accept them. A clock before 1970 reads as 0, which
/// shows up as an expired-token failure rather than a panic.
#[allow(
    clippy::disallowed_methods,
    reason = "the runner's single wall-clock read"
)]
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
