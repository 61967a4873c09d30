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
//!
//! The JSON lines are written by [`JsonLine`] rather than tracing-subscriber's JSON
//! formatter, which stores a span's fields as JSON text and parses them back into a map for
//! every event that names the span (`request_id` on every access-log line). The shape is the
//! same: `{"timestamp","level", the event's fields, "target","span":{…,"name"}}`.

use std::fmt::{self, Write as _};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

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

/// Writes through to `W`, escaping for the inside of a JSON string (RFC 8259 §7).
struct Escaped<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc: Option<&str> = match b {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'\n' => Some("\\n"),
                b'\r' => Some("\\r"),
                b'\t' => Some("\\t"),
                0..=0x1f | 0x7f => None,
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            match esc {
                Some(e) => self.0.write_str(e)?,
                None => write!(self.0, "\\u{b:04x}")?,
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// `"text"`, escaped.
fn json_str(w: &mut (impl fmt::Write + ?Sized), text: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(text)?;
    w.write_char('"')
}

/// Records fields as `"name":value` members, comma-separated (a leading comma before each
/// when `lead`).
struct Members<'a> {
    w: &'a mut dyn fmt::Write,
    lead: bool,
    result: fmt::Result,
}

impl Members<'_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        if self.lead {
            self.w.write_char(',')?;
        }
        self.lead = true;
        json_str(self.w, field.name())?;
        self.w.write_char(':')
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.w));
        }
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| json_str(w, value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.put(field, |w| write!(w, "{value}"));
        } else {
            self.put(field, |w| write!(w, "\"{value}\""));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%display` and `?debug` fields and the message itself arrive here.
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// A span's fields, formatted once when the span is made, as JSON members ready to be
/// spliced into each of its events' lines.
pub struct JsonMembers;

impl<'w> FormatFields<'w> for JsonMembers {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut m = Members {
            w: &mut writer,
            lead: false,
            result: Ok(()),
        };
        fields.record(&mut m);
        m.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let lead = !current.fields.is_empty();
        let mut m = Members {
            w: &mut current.fields,
            lead,
            result: Ok(()),
        };
        fields.record(&mut m);
        m.result
    }
}

/// One JSON object per event, on one line.
pub struct JsonLine;

impl<S> FormatEvent<S, JsonMembers> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonMembers>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\"", meta.level())?;
        let mut m = Members {
            w: &mut w,
            lead: true,
            result: Ok(()),
        };
        event.record(&mut m);
        m.result?;
        w.write_str(",\"target\":")?;
        json_str(&mut w, meta.target())?;
        if let Some(span) = ctx.lookup_current() {
            w.write_str(",\"span\":{")?;
            let ext = span.extensions();
            if let Some(f) = ext.get::<FormattedFields<JsonMembers>>()
                && !f.fields.is_empty()
            {
                w.write_str(&f.fields)?;
                w.write_char(',')?;
            }
            w.write_str("\"name\":")?;
            json_str(&mut w, span.name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
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
            .fmt_fields(JsonMembers)
            .event_format(JsonLine)
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

    /// A subscriber with the JSON line format writing into `out`.
    fn capture(out: std::sync::Arc<Mutex<Vec<u8>>>) -> impl Subscriber + Send + Sync {
        let make = move || Sink(out.clone());
        tracing_subscriber::fmt()
            .with_writer(make)
            .fmt_fields(JsonMembers)
            .event_format(JsonLine)
            .finish()
    }

    struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut g) = self.0.lock() {
                g.extend_from_slice(b);
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(out: &Mutex<Vec<u8>>) -> Vec<serde_json::Value> {
        let text = String::from_utf8(out.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }

    /// The access-log shape: fields at the top level, the request span's fields under `span`.
    #[test]
    fn an_event_is_one_json_object_with_its_span() {
        let out = std::sync::Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(capture(out.clone()), || {
            let span = tracing::info_span!("request", request_id = "r-1");
            span.in_scope(|| {
                tracing::info!(status = 200u16, path = %"/idp/token", ok = true, latency_us = 42u64, ratio = 0.5, "request");
            });
            tracing::warn!(addr = ?"127.0.0.1:1", "no span here");
        });
        let v = lines(&out);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["message"], "request");
        assert_eq!(v[0]["level"], "INFO");
        assert_eq!(v[0]["status"], 200);
        assert_eq!(v[0]["path"], "/idp/token");
        assert_eq!(v[0]["ok"], true);
        assert_eq!(v[0]["ratio"], 0.5);
        assert_eq!(v[0]["span"]["request_id"], "r-1");
        assert_eq!(v[0]["span"]["name"], "request");
        assert!(v[0]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(
            v[0]["target"]
                .as_str()
                .is_some_and(|t| t.contains("telemetry"))
        );
        assert_eq!(v[1]["addr"], "\"127.0.0.1:1\"");
        assert_eq!(v[1]["level"], "WARN");
        assert!(v[1].get("span").is_none());
    }

    /// Quotes, backslashes, newlines and control characters stay inside their string.
    #[test]
    fn values_are_escaped() {
        let out = std::sync::Arc::new(Mutex::new(Vec::new()));
        let nasty = "a\"b\\c\nd\re\tf\u{1}g\u{7f}h é";
        tracing::subscriber::with_default(capture(out.clone()), || {
            let span =
                tracing::info_span!("request", request_id = nasty, agent = tracing::field::Empty);
            span.record("agent", "second");
            span.in_scope(|| tracing::info!(error = %nasty, "{nasty}"));
        });
        let v = lines(&out);
        assert_eq!(v[0]["error"], nasty);
        assert_eq!(v[0]["message"], nasty);
        assert_eq!(v[0]["span"]["request_id"], nasty);
        assert_eq!(v[0]["span"]["agent"], "second");
    }
}
