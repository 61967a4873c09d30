//! Time as a parameter.
//!
//! Every validation takes `now` as an argument so that it can be tested at a fixed instant.
//! [`SystemClock`] is the one place in the crate that reads the wall clock (`clippy.toml`
//! forbids `SystemTime::now` elsewhere); [`ManualClock`] lets tests move time by hand.

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch, the unit of every JWT NumericDate lanyard reads or writes.
pub type UnixTime = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            // A clock before 1970 is a broken host; 0 makes every token look expired,
            // which fails closed.
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: UnixTime) -> Self {
        Self(AtomicU64::new(t))
    }
    /// Move the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    /// Set the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}
