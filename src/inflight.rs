//! How many requests this process is handling right now.
//!
//! The HTTP layer counts each request for as long as it runs ([`enter`]); the embedded store
//! asks [`alone`] before committing a write on the request's own thread, which it does only
//! for a request that has the server to itself (a lone request pays no hand-off to the
//! writer thread; under load, writes are left to the writer thread's group commit).

use std::sync::atomic::{AtomicUsize, Ordering};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one request as in flight until dropped.
#[must_use = "the request counts as in flight only while this lives"]
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Count a request as in flight while the returned guard lives.
pub fn enter() -> InFlight {
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    InFlight(())
}

/// Whether at most one request (the caller's own, if any) is in flight.
pub fn alone() -> bool {
    IN_FLIGHT.load(Ordering::Relaxed) <= 1
}
