//! Prometheus metrics without locks: fixed label sets, atomic counters. Kept below every
//! layer that counts something (the HTTP edge counts requests; the grants will count
//! issuance and refusals), rendered by `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Endpoints with their own series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/token`
    Token,
    /// `/jwks.json`
    Jwks,
    /// RFC 8414 metadata
    Metadata,
    /// `/introspect`
    Introspect,
    /// `/revoke`
    Revoke,
    /// `/healthz`, `/readyz`, `/metrics`
    Ops,
    /// The dev IdP and dev bootstrap.
    Dev,
    /// Anything else.
    Other,
}

const ENDPOINTS: [(Endpoint, &str); 8] = [
    (Endpoint::Token, "token"),
    (Endpoint::Jwks, "jwks"),
    (Endpoint::Metadata, "metadata"),
    (Endpoint::Introspect, "introspect"),
    (Endpoint::Revoke, "revoke"),
    (Endpoint::Ops, "ops"),
    (Endpoint::Dev, "dev"),
    (Endpoint::Other, "other"),
];

impl Endpoint {
    /// Classify a request path.
    pub fn of(path: &str) -> Self {
        if path.starts_with("/dev") {
            Self::Dev
        } else if path.ends_with("/token") {
            Self::Token
        } else if path.ends_with("/jwks.json") {
            Self::Jwks
        } else if path.contains("/.well-known/") {
            Self::Metadata
        } else if path.ends_with("/introspect") {
            Self::Introspect
        } else if path.ends_with("/revoke") {
            Self::Revoke
        } else if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            Self::Ops
        } else {
            Self::Other
        }
    }

    fn index(self) -> usize {
        ENDPOINTS
            .iter()
            .position(|(e, _)| *e == self)
            .unwrap_or(ENDPOINTS.len() - 1)
    }
}

/// Status codes with their own series; everything else is "other".
const STATUSES: [u16; 12] = [200, 304, 400, 401, 403, 404, 405, 413, 429, 500, 503, 0];
/// Latency histogram bucket upper bounds, in microseconds.
const BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Request counters and latency histograms.
pub struct Metrics {
    requests: Vec<AtomicU64>,
    buckets: Vec<AtomicU64>,
    sum_us: Vec<AtomicU64>,
    count: Vec<AtomicU64>,
    /// Audit records of refusals not written because too many were already queued.
    pub denial_audit_dropped: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let n = ENDPOINTS.len();
        let mk = |k| (0..k).map(|_| AtomicU64::new(0)).collect();
        Self {
            requests: mk(n * STATUSES.len()),
            buckets: mk(n * BUCKETS_US.len()),
            sum_us: mk(n),
            count: mk(n),
            denial_audit_dropped: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Record one finished request.
    pub fn record(&self, ep: Endpoint, status: u16, micros: u64) {
        let e = ep.index();
        let s = STATUSES
            .iter()
            .position(|&c| c == status)
            .unwrap_or(STATUSES.len() - 1);
        let add = |v: &Vec<AtomicU64>, i: usize, n: u64| {
            if let Some(a) = v.get(i) {
                a.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.requests, e * STATUSES.len() + s, 1);
        add(&self.sum_us, e, micros);
        add(&self.count, e, 1);
        if let Some(b) = BUCKETS_US.iter().position(|&ub| micros <= ub) {
            add(&self.buckets, e * BUCKETS_US.len() + b, 1);
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let get = |v: &Vec<AtomicU64>, i: usize| v.get(i).map_or(0, |a| a.load(Ordering::Relaxed));
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP lanyard_http_requests_total HTTP requests by endpoint and status.\n");
        out.push_str("# TYPE lanyard_http_requests_total counter\n");
        for (ei, (_, en)) in ENDPOINTS.iter().enumerate() {
            for (si, st) in STATUSES.iter().enumerate() {
                let n = get(&self.requests, ei * STATUSES.len() + si);
                if n > 0 {
                    let st = if *st == 0 {
                        "other".to_owned()
                    } else {
                        st.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "lanyard_http_requests_total{{endpoint=\"{en}\",status=\"{st}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP lanyard_denial_audit_dropped_total Refusal audit records dropped: too many queued.\n\
             # TYPE lanyard_denial_audit_dropped_total counter\n\
             lanyard_denial_audit_dropped_total {}",
            self.denial_audit_dropped.load(Ordering::Relaxed)
        );
        out.push_str("# HELP lanyard_http_request_duration_seconds Request latency by endpoint.\n");
        out.push_str("# TYPE lanyard_http_request_duration_seconds histogram\n");
        for (ei, (_, en)) in ENDPOINTS.iter().enumerate() {
            let count = get(&self.count, ei);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (bi, ub) in BUCKETS_US.iter().enumerate() {
                cumulative += get(&self.buckets, ei * BUCKETS_US.len() + bi);
                let _ = writeln!(
                    out,
                    "lanyard_http_request_duration_seconds_bucket{{endpoint=\"{en}\",le=\"{}\"}} {cumulative}",
                    *ub as f64 / 1e6
                );
            }
            let _ = writeln!(
                out,
                "lanyard_http_request_duration_seconds_bucket{{endpoint=\"{en}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "lanyard_http_request_duration_seconds_sum{{endpoint=\"{en}\"}} {}",
                get(&self.sum_us, ei) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "lanyard_http_request_duration_seconds_count{{endpoint=\"{en}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_histogram() {
        let m = Metrics::default();
        m.record(Endpoint::of("/as/token"), 200, 300);
        m.record(Endpoint::of("/as/token"), 400, 2_000_000);
        let t = m.render();
        assert!(
            t.contains("lanyard_http_requests_total{endpoint=\"token\",status=\"200\"} 1"),
            "{t}"
        );
        assert!(t.contains("lanyard_http_requests_total{endpoint=\"token\",status=\"400\"} 1"));
        assert!(t.contains(
            "lanyard_http_request_duration_seconds_bucket{endpoint=\"token\",le=\"0.0005\"} 1"
        ));
        assert!(t.contains(
            "lanyard_http_request_duration_seconds_bucket{endpoint=\"token\",le=\"+Inf\"} 2"
        ));
        assert!(t.contains("lanyard_http_request_duration_seconds_count{endpoint=\"token\"} 2"));
    }
}
