//! Logging: `tracing` with one JSON object per line (default) or pretty output.
//!
//! One event per request at info level; never a token, assertion or secret in any event.
//!
//! Lines are formatted on the thread that logs, as before, but not written there: info and
//! debug lines go to a shared buffer that a background thread writes to stderr in one
//! `write` per batch, a few milliseconds after the first line of the batch. At thousands of
//! requests a second, one `write(2)` per line on the request path cost more CPU than the
//! rest of the logging (BENCHMARKS.md). Warnings and errors are written at once, after
//! whatever is buffered, so order is kept and nothing urgent waits. The buffer is bounded:
//! past [`MAX_BUFFERED`] the logging thread writes it out itself (back-pressure, as an
//! unbuffered writer would have). [`flush`] writes what is left; `serve` calls it on exit.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// How long the writer thread lets a batch gather after its first line.
const GATHER: Duration = Duration::from_millis(20);
/// Buffered bytes past which the logging thread writes the buffer out itself.
const MAX_BUFFERED: usize = 1 << 20;

/// The shared buffer in front of stderr.
struct Shared {
    buf: Mutex<Vec<u8>>,
    /// Held while writing out, so that batches and urgent lines keep their order.
    out: Mutex<()>,
    nonempty: Condvar,
}

impl Shared {
    fn new() -> Self {
        Self {
            buf: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(()),
            nonempty: Condvar::new(),
        }
    }

    /// Append a line; whether the buffer was empty before, and its length after.
    fn push(&self, line: &[u8]) -> (bool, usize) {
        let mut g = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let was_empty = g.is_empty();
        g.extend_from_slice(line);
        (was_empty, g.len())
    }

    /// Write the buffered lines, then `line`, to `out`.
    fn drain_to(&self, out: &mut dyn std::io::Write, line: &[u8]) {
        let _order = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = {
            let mut g = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *g)
        };
        // Nowhere to report a failing stderr: the lines are dropped.
        let _ = out.write_all(&batch);
        let _ = out.write_all(line);
        let _ = out.flush();
        // Hand the allocation back for the next batch unless it grew large.
        if batch.capacity() <= 256 * 1024 {
            batch.clear();
            let mut g = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            if g.is_empty() && g.capacity() < batch.capacity() {
                *g = batch;
            }
        }
    }
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        // The writer thread starts once the buffer exists; if it cannot start, lines are
        // written by the logging thread itself once MAX_BUFFERED is reached and by `flush`.
        let started = std::thread::Builder::new()
            .name("lanyard-log".into())
            .spawn(|| writer_loop(shared()));
        if started.is_err() {
            eprintln!("lanyard: the log writer thread failed to start");
        }
        Shared::new()
    })
}

fn writer_loop(s: &Shared) {
    loop {
        {
            let mut g = s.buf.lock().unwrap_or_else(|p| p.into_inner());
            while g.is_empty() {
                g = s.nonempty.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(GATHER);
        s.drain_to(&mut std::io::stderr().lock(), &[]);
    }
}

/// Write whatever is buffered to stderr now.
pub fn flush() {
    if let Some(s) = SHARED.get() {
        s.drain_to(&mut std::io::stderr().lock(), &[]);
    }
}

/// Whether lines of `level` skip the buffer.
fn urgent(level: &tracing::Level) -> bool {
    *level <= tracing::Level::WARN
}

/// The `MakeWriter` of the subscriber: buffered below warn, immediate from warn up.
struct Stderr;

/// One event's writer.
pub struct EventWriter {
    urgent: bool,
}

impl std::io::Write for EventWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let s = shared();
        if self.urgent {
            s.drain_to(&mut std::io::stderr().lock(), line);
            return Ok(line.len());
        }
        let (was_empty, len) = s.push(line);
        if len > MAX_BUFFERED {
            s.drain_to(&mut std::io::stderr().lock(), &[]);
        } else if was_empty {
            s.nonempty.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        EventWriter {
            urgent: urgent(meta.level()),
        }
    }
}

/// Install the global subscriber. A second call (tests) is a no-op.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_warnings_and_errors_skip_the_buffer() {
        assert!(urgent(&tracing::Level::ERROR));
        assert!(urgent(&tracing::Level::WARN));
        assert!(!urgent(&tracing::Level::INFO));
        assert!(!urgent(&tracing::Level::DEBUG));
        assert!(!urgent(&tracing::Level::TRACE));
    }

    #[test]
    fn an_urgent_line_is_written_after_the_buffered_ones() {
        let s = Shared::new();
        assert_eq!(s.push(b"a\n"), (true, 2));
        assert_eq!(s.push(b"b\n"), (false, 4));
        let mut out = Vec::new();
        s.drain_to(&mut out, b"W\n");
        assert_eq!(out, b"a\nb\nW\n");
        let mut again = Vec::new();
        s.drain_to(&mut again, &[]);
        assert!(again.is_empty(), "a drained line is written once");
    }
}
