//! The crypto-only limit: the signature operations of one flow, through lanyard's own crypto
//! module (the same code and keys the server uses), in a tight loop on one thread per CPU.
//!
//! One flow is: verify the RS256 ID token (leg 1), sign the ES256 ID-JAG (leg 1), verify that
//! ID-JAG (leg 2), sign the ES256 access token (leg 2). Each step includes what lanyard's
//! crypto module does around the bare operation — compact-JWS parsing and base64 for a
//! verification; claim serialization, base64 and the prebuilt header for a signature — with
//! the claims of a real ID-JAG and access token from this run. Nothing else of a request
//! (HTTP, form parsing, policy, store, audit, logging) is in it.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanyard::crypto::verify::{self, KeySet};
use lanyard::crypto::{Keyring, Typ, sign_jwt};
use serde_json::Value;

/// Everything one iteration needs.
pub struct Inputs {
    id_token: String,
    idp_set: KeySet,
    role_set: KeySet,
    idp_ring: Keyring,
    as_ring: Keyring,
    id_jag_claims: Value,
    at_claims: Value,
    now: u64,
}

fn payload(jwt: &str) -> Result<Value, String> {
    let jws = verify::parse(jwt).map_err(|e| e.to_string())?;
    serde_json::from_slice(&jws.payload).map_err(|e| e.to_string())
}

impl Inputs {
    /// From lanyard's key directory (`keys/idp`, `keys/as`), the upstream issuer's JWKS, one
    /// pre-minted ID token and one ID-JAG and access token from this run.
    pub fn load(
        keys_dir: &Path,
        idp_jwks: &Value,
        id_token: &str,
        id_jag: &str,
        access_token: &str,
        now: u64,
    ) -> Result<Self, String> {
        let idp_ring = Keyring::load(&keys_dir.join("idp"), 3600).map_err(|e| e.to_string())?;
        let as_ring = Keyring::load(&keys_dir.join("as"), 3600).map_err(|e| e.to_string())?;
        let me = Self {
            id_token: id_token.to_owned(),
            idp_set: KeySet::from_jwks(idp_jwks, &["RS256"])?,
            role_set: KeySet::from_jwks(&idp_ring.jwks(now), &["ES256"])?,
            id_jag_claims: payload(id_jag)?,
            at_claims: payload(access_token)?,
            idp_ring,
            as_ring,
            now,
        };
        // One checked iteration: every step must succeed, or the loop measures nothing.
        me.verify_id_token()?;
        let jag = me.sign_id_jag()?;
        me.verify_id_jag(&jag)?;
        me.sign_access_token()?;
        Ok(me)
    }

    fn verify_id_token(&self) -> Result<(), String> {
        let jws = verify::parse(&self.id_token).map_err(|e| e.to_string())?;
        self.idp_set
            .verify(&jws, &["RS256"])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn sign_id_jag(&self) -> Result<String, String> {
        let key = self.idp_ring.active(self.now).ok_or("no IdP-role key")?;
        sign_jwt(key, Typ::IdJag, &self.id_jag_claims).map_err(|e| e.to_string())
    }

    fn verify_id_jag(&self, jag: &str) -> Result<(), String> {
        let jws = verify::parse(jag).map_err(|e| e.to_string())?;
        self.role_set
            .verify(&jws, &["ES256"])
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn sign_access_token(&self) -> Result<String, String> {
        let key = self.as_ring.active(self.now).ok_or("no AS-role key")?;
        sign_jwt(key, Typ::AccessToken, &self.at_claims).map_err(|e| e.to_string())
    }

    fn one_flow(&self) -> bool {
        let ok = self.verify_id_token().is_ok();
        let Ok(jag) = self.sign_id_jag() else {
            return false;
        };
        let ok = ok && self.verify_id_jag(&jag).is_ok();
        ok && black_box(self.sign_access_token()).is_ok()
    }
}

/// The limit measured.
pub struct Limit {
    /// Flows per second on `threads` threads.
    pub flows_per_s: f64,
    /// Threads (one per CPU).
    pub threads: usize,
    /// CPU time per flow, µs (process CPU over flows).
    pub cpu_us_per_flow: f64,
    /// CPU cost of each step on one thread, µs: RS256 verify, ES256 sign, ES256 verify.
    pub per_op_us: [f64; 3],
}

/// CPU nanoseconds this thread has run (`/proc/thread-self/schedstat`), if readable.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// µs of this thread's CPU per call (wall time if CPU time cannot be read), so that other
/// work on the machine does not inflate it.
fn time_op(d: Duration, mut f: impl FnMut() -> bool) -> f64 {
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut n = 0u64;
    while start.elapsed() < d {
        for _ in 0..8 {
            black_box(f());
        }
        n += 8;
    }
    match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e3 / n as f64,
        _ => start.elapsed().as_secs_f64() * 1e6 / n as f64,
    }
}

/// Run the flow loop on `threads` threads for `duration`; `cpu` reads this process's CPU
/// seconds.
pub fn measure(
    inputs: &Arc<Inputs>,
    threads: usize,
    duration: Duration,
    cpu: impl Fn() -> Option<f64>,
) -> Limit {
    let quick = Duration::from_millis(300);
    let per_op_us = [
        time_op(quick, || inputs.verify_id_token().is_ok()),
        time_op(quick, || inputs.sign_access_token().is_ok()),
        {
            let jag = inputs.sign_id_jag().unwrap_or_default();
            time_op(quick, || inputs.verify_id_jag(&jag).is_ok())
        },
    ];
    let cpu0 = cpu();
    let start = Instant::now();
    let until = start + duration;
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let inp = inputs.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    for _ in 0..4 {
                        if inp.one_flow() {
                            n += 1;
                        }
                    }
                }
                n
            })
        })
        .collect();
    let flows: u64 = handles.into_iter().filter_map(|h| h.join().ok()).sum();
    let wall = start.elapsed().as_secs_f64();
    let cpu_s = match (cpu0, cpu()) {
        (Some(a), Some(b)) => b - a,
        _ => wall * threads as f64,
    };
    Limit {
        flows_per_s: flows as f64 / wall,
        threads: threads.max(1),
        cpu_us_per_flow: cpu_s * 1e6 / flows.max(1) as f64,
        per_op_us,
    }
}
