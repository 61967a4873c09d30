//! Which serving lane (see `http::serve`) the current thread is, for what is kept per lane.
//!
//! A lane is a thread with its own single-threaded runtime that serves its connections to
//! their end. A client whose background task lives on one runtime and is called from
//! another pays a cross-thread wake-up each way (an inter-processor interrupt on a VM); the
//! Redis store therefore keeps one connection per lane, driven by that lane's runtime.

use std::cell::Cell;

thread_local! {
    static LANE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// How many lanes a server starts: one per CPU this process may use (cgroup quotas
/// included), read once, so that the server and what is kept per lane agree.
pub fn count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT
        .get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

/// Mark this thread as lane `i` (called once, by the lane's thread).
pub(crate) fn enter(i: usize) {
    LANE.with(|l| l.set(Some(i)));
}

/// The lane this thread is, if it is one.
pub fn current() -> Option<usize> {
    LANE.with(Cell::get)
}
